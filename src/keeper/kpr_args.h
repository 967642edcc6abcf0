/*
 * kpr_args.h - option parsing for the keeper's commands: a table of "--name value" options,
 * each checked against its type and range, with a one-line error that names the option.
 *
 *     long long max_tokens = 128;
 *     const char *prompt = NULL;
 *     int json = 0;
 *     const kpr_opt opts[] = {
 *         {"--prompt", KPR_OPT_STR, &prompt, 0, 0, NULL},
 *         {"--max-tokens", KPR_OPT_INT, &max_tokens, 1, 2048, NULL},
 *         {"--json", KPR_OPT_FLAG, &json, 0, 0, NULL},
 *     };
 *     if (kpr_args_parse("infer", argc, argv, opts, 3, NULL, 0, NULL, err, sizeof err)) ...
 *     // err: "rbee infer: --max-tokens takes an integer from 1 to 2048, not 'zero'"
 *
 * Values are borrowed from argv. An option given twice keeps the last value.
 */
#ifndef KPR_ARGS_H
#define KPR_ARGS_H

#include <stddef.h>

#include "rb_err.h"

typedef enum kpr_opt_kind {
    KPR_OPT_STR, /* const char ** (non-empty) */
    KPR_OPT_INT, /* long long *, in [min, max] */
    KPR_OPT_NUM, /* double *, in [min, max] */
    KPR_OPT_U64, /* unsigned long long * */
    KPR_OPT_FLAG /* int *, set to 1; takes no value */
} kpr_opt_kind;

typedef struct kpr_opt {
    const char *name; /* "--max-tokens" */
    kpr_opt_kind kind;
    void *out;
    double min, max; /* KPR_OPT_INT and KPR_OPT_NUM */
    int *seen;       /* set to 1 when given; may be NULL */
} kpr_opt;

/* Parses argv[0..argc) (the words after the command). Words that do not start with "--" are
 * positional: at most max_pos of them go into pos[] (borrowed), their count into *npos (pos
 * and npos may be NULL when max_pos is 0). Returns RB_EINVAL with a one-line message in err
 * for an unknown option, a missing or bad value, or too many positional words. */
rb_err kpr_args_parse(const char *cmd, int argc, char **argv, const kpr_opt *opts, size_t nopts,
                      const char **pos, size_t max_pos, size_t *npos, char *err, size_t errlen);

/* The --file hint: with file NULL, copies ref; else ref must be hf:<org>/<repo> with no file
 * name and file a bare *.gguf name, and out gets hf:<org>/<repo>/<file>. RB_EINVAL with a
 * one-line message naming the command otherwise. */
rb_err kpr_ref_with_file(const char *cmd, const char *ref, const char *file, char *out,
                         size_t outlen, char *err, size_t errlen);

#endif
