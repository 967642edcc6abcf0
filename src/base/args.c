/*
 * args.c - option parsing against a table (see rb_args.h).
 *
 * DESIGN
 * Binaries declare their options as data, so every one reports bad input the same way: one
 * line naming the program and the option. Numbers go through the strict parsers of rb_util
 * (whole string, range checked); nothing is silently clamped. The same tables make the help,
 * so a binary cannot take an option its -h/--help does not list.
 */
#include <stdio.h>
#include <string.h>

#include "rb_args.h"
#include "rb_util.h"

static const rb_opt *find_opt(const rb_opt *opts, size_t nopts, const char *name)
{
    const rb_opt *found = NULL;

    for (size_t i = 0; i < nopts && !found; i++)
        if (strcmp(opts[i].name, name) == 0)
            found = &opts[i];
    return found;
}

static rb_err store_int(const char *prog, const rb_opt *o, const char *v, int64_t *out, char *err,
                        size_t errlen)
{
    if (rb_parse_i64(v, (int64_t)o->min, (int64_t)o->max, out))
        return rb_errf(err, errlen, RB_EINVAL,
                       "%s: %s takes an integer from %.0f to %.0f, not '%s'", prog, o->name, o->min,
                       o->max, v);
    return RB_OK;
}

static rb_err store_num(const char *prog, const rb_opt *o, const char *v, const char *unit,
                        double *out, char *err, size_t errlen)
{
    if (rb_parse_double(v, o->min, o->max, out))
        return rb_errf(err, errlen, RB_EINVAL, "%s: %s takes a number%s from %g to %g, not '%s'",
                       prog, o->name, unit, o->min, o->max, v);
    return RB_OK;
}

/* Stores value v into o's target; RB_EINVAL with a message naming the option. */
static rb_err store_value(const char *prog, const rb_opt *o, const char *v, char *err,
                          size_t errlen)
{
    rb_err rc = RB_OK;
    int64_t i = 0;
    double d = 0;
    uint64_t u = 0;

    switch (o->kind) {
    case RB_OPT_STR:
        if (!*v)
            rc = rb_errf(err, errlen, RB_EINVAL, "%s: %s needs a non-empty value", prog, o->name);
        else
            *(const char **)o->out = v;
        break;
    case RB_OPT_INT:
        if (!(rc = store_int(prog, o, v, &i, err, errlen)))
            *(int *)o->out = (int)i;
        break;
    case RB_OPT_LLONG:
        if (!(rc = store_int(prog, o, v, &i, err, errlen)))
            *(long long *)o->out = (long long)i;
        break;
    case RB_OPT_NUM:
        if (!(rc = store_num(prog, o, v, "", &d, err, errlen)))
            *(double *)o->out = d;
        break;
    case RB_OPT_MS:
        if (!(rc = store_num(prog, o, v, " of seconds", &d, err, errlen)))
            *(int *)o->out = (int)(d * 1000.0 + 0.5);
        break;
    case RB_OPT_U64:
        if (rb_parse_u64(v, &u))
            rc = rb_errf(err, errlen, RB_EINVAL, "%s: %s takes a non-negative integer, not '%s'",
                         prog, o->name, v);
        else
            *(unsigned long long *)o->out = (unsigned long long)u;
        break;
    case RB_OPT_FN:
        if (o->parse(v, o->out) != 0)
            rc = rb_errf(err, errlen, RB_EINVAL, "%s: %s takes %s, not '%s'", prog, o->name,
                         o->what ? o->what : "another value", v);
        break;
    case RB_OPT_FLAG:
        *(int *)o->out = 1;
        break;
    }
    if (!rc && o->seen)
        *o->seen = 1;
    return rc;
}

rb_err rb_args_parse(const char *prog, int argc, char **argv, const rb_opt *opts, size_t nopts,
                     const char **pos, size_t max_pos, size_t *npos, char *err, size_t errlen)
{
    rb_err rc = RB_OK;
    size_t n = 0;

    for (int k = 0; k < argc && !rc; k++) {
        const char *a = argv[k];
        const rb_opt *o;

        if (a[0] != '-' || a[1] == '\0') {
            if (n < max_pos)
                pos[n++] = a;
            else
                rc = rb_errf(err, errlen, RB_EINVAL, "%s: unexpected argument '%s'", prog, a);
        } else if (!(o = find_opt(opts, nopts, a))) {
            rc = rb_errf(err, errlen, RB_EINVAL, "%s: unknown option %s", prog, a);
        } else if (o->kind == RB_OPT_FLAG) {
            rc = store_value(prog, o, "", err, errlen);
        } else if (k + 1 >= argc) {
            rc = rb_errf(err, errlen, RB_EINVAL, "%s: %s needs a value", prog, a);
        } else {
            rc = store_value(prog, o, argv[++k], err, errlen);
        }
    }
    if (npos)
        *npos = n;
    return rc;
}

/* ---- help --------------------------------------------------------------------------------- */

#define HELP_COLUMN 28 /* where an option's help text starts */

static const char *value_name(const rb_opt *o)
{
    static const char *const by_kind[] = {
        [RB_OPT_STR] = "TEXT", [RB_OPT_INT] = "N",      [RB_OPT_LLONG] = "N", [RB_OPT_NUM] = "X",
        [RB_OPT_U64] = "N",    [RB_OPT_MS] = "SECONDS", [RB_OPT_FLAG] = "",   [RB_OPT_FN] = "VALUE",
    };
    return o->kind == RB_OPT_FLAG ? "" : o->what ? o->what : by_kind[o->kind];
}

/* "  NAME VALUE   help", the help on a line of its own when the name is too wide. */
static void help_line(FILE *f, const char *name, const char *value, const char *help)
{
    int w = fprintf(f, "  %s%s%s", name, value[0] ? " " : "", value);

    if (!help || !help[0])
        fputc('\n', f);
    else if (w < HELP_COLUMN - 1)
        fprintf(f, "%*s%s\n", HELP_COLUMN - w, "", help);
    else
        fprintf(f, "\n%*s%s\n", HELP_COLUMN, "", help);
}

static int has_opt(const rb_opt *opts, size_t nopts, const char *name)
{
    return find_opt(opts, nopts, name) != NULL;
}

void rb_cmd_usage(const rb_cmd *cmd, FILE *f)
{
    fprintf(f, "usage: %s%s%s%s\n", cmd->prog, cmd->nopts ? " [options]" : "", cmd->args ? " " : "",
            cmd->args ? cmd->args : "");
    if (cmd->summary)
        fprintf(f, "%s\n", cmd->summary);
    fputs("\noptions:\n", f);
    for (size_t i = 0; i < cmd->nopts; i++)
        help_line(f, cmd->opts[i].name, value_name(&cmd->opts[i]), cmd->opts[i].help);
    if (!has_opt(cmd->opts, cmd->nopts, "--help"))
        help_line(f, "-h, --help", "", "print this help and exit");
    if (cmd->version && !has_opt(cmd->opts, cmd->nopts, "--version"))
        help_line(f, "--version", "", "print the version and exit");
    if (cmd->notes)
        fprintf(f, "\n%s", cmd->notes);
}

void rb_print_version(const char *prog)
{
    printf("%s %s\n", prog, RB_VERSION);
}

/* 1 when word a asks for help (or the version) in cmd and the table does not take it. */
static int wants_help(const rb_cmd *cmd, const char *a)
{
    if ((strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) && !has_opt(cmd->opts, cmd->nopts, a))
        return 1;
    return cmd->version && strcmp(a, "--version") == 0 &&
           !has_opt(cmd->opts, cmd->nopts, "--version");
}

rb_err rb_cmd_parse(const rb_cmd *cmd, int argc, char **argv, const char **pos, size_t max_pos,
                    size_t *npos, int *shown, char *err, size_t errlen)
{
    *shown = 0;
    /* Only words in option position count: the value of --prompt may well be "--help". */
    for (int k = 0; k < argc; k++) {
        const rb_opt *o = find_opt(cmd->opts, cmd->nopts, argv[k]);
        if (o && o->kind != RB_OPT_FLAG) {
            k++;
        } else if (!o && wants_help(cmd, argv[k])) {
            if (strcmp(argv[k], "--version") == 0)
                rb_print_version(cmd->prog);
            else
                rb_cmd_usage(cmd, stdout);
            *shown = 1;
            if (npos)
                *npos = 0;
            return fflush(stdout) == 0 ? RB_OK : RB_EIO;
        }
    }
    return rb_args_parse(cmd->prog, argc, argv, cmd->opts, cmd->nopts, pos, max_pos, npos, err,
                         errlen);
}

void rb_group_usage(const rb_group *g, FILE *f)
{
    fprintf(f, "usage: %s COMMAND [options]\n\ncommands:\n", g->prog);
    for (size_t i = 0; i < g->nsubs; i++)
        help_line(f, g->subs[i].name, "", g->subs[i].summary);
    fputs("\noptions:\n", f);
    help_line(f, "-h, --help", "", "print this help and exit");
    if (g->version)
        help_line(f, "--version", "", "print the version and exit");
    fprintf(f, "\n'%s COMMAND --help' gives the options of a command.\n", g->prog);
    if (g->notes)
        fputs(g->notes, f);
}

static void list_names(const rb_group *g, FILE *f)
{
    for (size_t i = 0; i < g->nsubs; i++)
        fprintf(f, "%s%s", i == 0 ? "" : i + 1 == g->nsubs ? " or " : ", ", g->subs[i].name);
}

int rb_group_pick(const rb_group *g, int argc, char **argv, int *status)
{
    const char *a = argc > 0 ? argv[0] : "";

    for (size_t i = 0; i < g->nsubs && a[0]; i++)
        if (strcmp(a, g->subs[i].name) == 0)
            return (int)i;
    *status = 0;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "help") == 0) {
        rb_group_usage(g, stdout);
    } else if (g->version && strcmp(a, "--version") == 0) {
        rb_print_version(g->prog);
    } else {
        *status = 1;
        if (a[0])
            fprintf(stderr, "%s: unknown command '%s': expected ", g->prog, a);
        else
            fprintf(stderr, "%s: name a command: ", g->prog);
        list_names(g, stderr);
        fprintf(stderr, " (%s --help)\n", g->prog);
    }
    if (fflush(stdout) != 0)
        *status = 1;
    return -1;
}
