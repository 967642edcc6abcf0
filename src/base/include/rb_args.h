/*
 * rb_args.h - command-line parsing for every binary: a table of options, each checked against
 * its type and range, with a one-line error that names the program and the option.
 *
 *     long long max_tokens = 128;
 *     const char *prompt = NULL;
 *     int json = 0;
 *     const rb_opt opts[] = {
 *         {"--prompt", RB_OPT_STR, &prompt},
 *         {"--max-tokens", RB_OPT_LLONG, &max_tokens, 1, 2048},
 *         {"--json", RB_OPT_FLAG, &json},
 *     };
 *     if (rb_args_parse("rbee infer", argc, argv, opts, RB_ARRAY_LEN(opts), NULL, 0, NULL, err,
 *                       sizeof err)) ...
 *     // err: "rbee infer: --max-tokens takes an integer from 1 to 2048, not 'zero'"
 *
 * A word that starts with '-' and is longer than "-" is an option ("--name" or "-n"); every
 * other word is positional. Values are borrowed from argv. An option given twice keeps the
 * last value. Nothing is clamped: a value out of range is an error.
 */
#ifndef RB_ARGS_H
#define RB_ARGS_H

#include <stddef.h>

#include "rb_err.h"

typedef enum rb_opt_kind {
    RB_OPT_STR,   /* const char ** (non-empty) */
    RB_OPT_INT,   /* int *, a whole number in [min, max] */
    RB_OPT_LLONG, /* long long *, a whole number in [min, max] */
    RB_OPT_NUM,   /* double *, in [min, max] */
    RB_OPT_U64,   /* unsigned long long *, any non-negative whole number */
    RB_OPT_MS,    /* int * in milliseconds, given in seconds (fractions allowed) in [min, max] */
    RB_OPT_FLAG,  /* int *, set to 1; takes no value */
    RB_OPT_FN     /* parse(value, out) returns 0 when the value is valid; what names the form */
} rb_opt_kind;

typedef struct rb_opt {
    const char *name; /* "--max-tokens", "-m" */
    rb_opt_kind kind;
    void *out;
    double min, max; /* RB_OPT_INT, RB_OPT_LLONG, RB_OPT_NUM, RB_OPT_MS */
    int *seen;       /* set to 1 when given; may be NULL */
    int (*parse)(const char *value, void *out); /* RB_OPT_FN */
    const char *what;                           /* RB_OPT_FN: "HOST:PORT" */
} rb_opt;

/* Parses argv[0..argc) (the words after the program or command name). At most max_pos
 * positional words go into pos[] (borrowed), their count into *npos (pos and npos may be NULL
 * when max_pos is 0). Returns RB_EINVAL with "<prog>: <what is wrong>" in err for an unknown
 * option, a missing or bad value, or too many positional words. */
rb_err rb_args_parse(const char *prog, int argc, char **argv, const rb_opt *opts, size_t nopts,
                     const char **pos, size_t max_pos, size_t *npos, char *err, size_t errlen);

#endif
