/*
 * kpr_args.h - the keeper's use of rb_args: options of "rbee <command>" (errors read
 * "rbee infer: --max-tokens needs a value") and the --file hint of model references.
 */
#ifndef KPR_ARGS_H
#define KPR_ARGS_H

#include <stddef.h>

#include "rb_args.h"
#include "rb_err.h"

/* rb_args_parse with the program name "rbee <cmd>". */
rb_err kpr_args_parse(const char *cmd, int argc, char **argv, const rb_opt *opts, size_t nopts,
                      const char **pos, size_t max_pos, size_t *npos, char *err, size_t errlen);

/* The --file hint: with file NULL, copies ref; else ref must be hf:<org>/<repo> with no file
 * name and file a bare *.gguf name, and out gets hf:<org>/<repo>/<file>. RB_EINVAL with a
 * one-line message naming the command otherwise. */
rb_err kpr_ref_with_file(const char *cmd, const char *ref, const char *file, char *out,
                         size_t outlen, char *err, size_t errlen);

#endif
