/*
 * args.c - option parsing against a table (see rb_args.h).
 *
 * DESIGN
 * Binaries declare their options as data, so every one reports bad input the same way: one
 * line naming the program and the option. Numbers go through the strict parsers of rb_util
 * (whole string, range checked); nothing is silently clamped.
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
