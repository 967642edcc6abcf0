/*
 * kpr_args.h - what the keeper adds to rb_args: the --file hint of model references. Its
 * commands parse with rb_cmd_parse under the name "rbee <command>", so errors read
 * "rbee infer: --max-tokens needs a value" and -h/--help prints the command's table.
 */
#ifndef KPR_ARGS_H
#define KPR_ARGS_H

#include <stddef.h>

#include "rb_args.h"
#include "rb_err.h"

/* What the help of every command that runs a model says about --model, and its notes. */
#define KPR_MODEL_HELP "kjv (bundled, default), hf:ORG/REPO[/FILE.gguf], file:PATH or a path"
#define KPR_HELP_NOTES                                                                             \
    "defaults: node localhost (127.0.0.1:$RBEE_HIVE_PORT, 8080); state in $RBEE_HOME (~/.rbee);\n" \
    "          token from RBEE_API_TOKEN or $RBEE_HOME/config.json.\n"                             \
    "exit status: 0, 1 on failure, 130 after Ctrl+C.\n"

/* 1 when ref is a path rather than a reference: it starts with /, ./ or ../, or it ends in
 * .gguf and has no scheme (no ':'). */
int kpr_ref_is_path(const char *ref);
/* "file:<path>" with path made absolute against the working directory (leading ./ dropped;
 * not checked for existence: a remote node's path means nothing here). */
rb_err kpr_ref_from_path(const char *cmd, const char *path, char *out, size_t outlen, char *err,
                         size_t errlen);

/* The --file hint: with file NULL, copies ref (a bare path becomes file:<absolute path>); else ref
 * must be hf:<org>/<repo> with no file name and file a bare *.gguf name, and out gets
 * hf:<org>/<repo>/<file>. RB_EINVAL with a one-line message naming the command otherwise. */
rb_err kpr_ref_with_file(const char *cmd, const char *ref, const char *file, char *out,
                         size_t outlen, char *err, size_t errlen);

#endif
