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
 *
 * Help lives here once for every binary: a command is an rb_cmd (its name, positional words,
 * one line of summary, its table and notes), rb_cmd_parse() answers -h/--help with the usage
 * built from the table on stdout, and rb_group_pick() does the same for a command made of
 * subcommands (rbee, rbee workers, rbee-hive ...) and answers --version at the top.
 */
#ifndef RB_ARGS_H
#define RB_ARGS_H

#include <stddef.h>
#include <stdio.h>

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
    const char *what; /* the value's name in the help ("HOST:PORT", "NAME"), and in the error of
                         RB_OPT_FN; NULL: one named by the kind (TEXT, N, X, SECONDS) */
    const char *help; /* one line of -h/--help: what the option does, its default */
} rb_opt;

/* Parses argv[0..argc) (the words after the program or command name). At most max_pos
 * positional words go into pos[] (borrowed), their count into *npos (pos and npos may be NULL
 * when max_pos is 0). Returns RB_EINVAL with "<prog>: <what is wrong>" in err for an unknown
 * option, a missing or bad value, or too many positional words. */
rb_err rb_args_parse(const char *prog, int argc, char **argv, const rb_opt *opts, size_t nopts,
                     const char **pos, size_t max_pos, size_t *npos, char *err, size_t errlen);

/* A command: what rb_cmd_parse parses and what its -h/--help prints. */
typedef struct rb_cmd {
    const char *prog;    /* "rbee infer": the binary and the subcommand words */
    const char *args;    /* the positional words of the usage line ("[PROMPT]"); NULL: none */
    const char *summary; /* one line under the usage line; NULL: none */
    const rb_opt *opts;
    size_t nopts;
    const char *notes; /* lines after the options (defaults, environment); NULL: none */
    int version;       /* 1 for a binary without subcommands: --version prints "<prog> <v>" */
} rb_cmd;

/* Writes cmd's usage: "usage: <prog> [options] <args>", the summary, one line per option with
 * its value and help, -h/--help (and --version), then the notes. */
void rb_cmd_usage(const rb_cmd *cmd, FILE *f);

/* rb_args_parse over cmd's table, which also knows -h/--help (and --version when cmd->version)
 * unless the table has an option of that name: then the usage (or "<prog> <version>") goes to
 * stdout, parsing stops and *shown is 1 (the caller exits 0 without looking at the options).
 * Otherwise *shown is 0 and the return is rb_args_parse's. */
rb_err rb_cmd_parse(const rb_cmd *cmd, int argc, char **argv, const char **pos, size_t max_pos,
                    size_t *npos, int *shown, char *err, size_t errlen);

/* One subcommand of a group: its name and a line of summary. */
typedef struct rb_subcmd {
    const char *name;
    const char *summary;
} rb_subcmd;

/* A command made of subcommands ("rbee", "rbee workers", "rbee-hive"). */
typedef struct rb_group {
    const char *prog; /* "rbee workers" */
    const rb_subcmd *subs;
    size_t nsubs;
    const char *notes; /* lines after the command list; NULL: none */
    int version;       /* 1 at the top of a binary: --version prints "<prog> <version>" */
} rb_group;

/* Writes "usage: <prog> COMMAND [options]", one line per subcommand, -h/--help, the notes. */
void rb_group_usage(const rb_group *g, FILE *f);

/* Picks the subcommand named by argv[0]. Returns its index in g->subs, or -1 with *status set:
 * 0 after -h/--help (the usage on stdout) or --version, 1 after one line on stderr for a
 * missing or unknown command (the caller may map 1 to its own usage status). */
int rb_group_pick(const rb_group *g, int argc, char **argv, int *status);

/* Prints "<prog> <version>" (the project's version, CMake's PROJECT_VERSION) on stdout. */
void rb_print_version(const char *prog);

#endif
