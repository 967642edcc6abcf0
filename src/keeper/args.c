/*
 * args.c - "--name value" option parsing against a table (see kpr_args.h).
 *
 * DESIGN
 * Commands declare their options as data, so every command reports bad input the same way:
 * one line naming the command and the option, exit status 1. Numbers go through the project's
 * strict parsers (whole string, range checked); nothing is silently clamped.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kpr_args.h"
#include "rb_util.h"

static const kpr_opt *find_opt(const kpr_opt *opts, size_t nopts, const char *name)
{
    const kpr_opt *found = NULL;

    for (size_t i = 0; i < nopts && !found; i++)
        if (strcmp(opts[i].name, name) == 0)
            found = &opts[i];
    return found;
}

/* Stores value v into o's target; RB_EINVAL with a message naming the option. */
static rb_err store_value(const char *cmd, const kpr_opt *o, const char *v, char *err,
                          size_t errlen)
{
    rb_err rc = RB_OK;
    int64_t i = 0;
    double d = 0;
    uint64_t u = 0;

    switch (o->kind) {
    case KPR_OPT_STR:
        if (!*v)
            rc = rb_errf(err, errlen, RB_EINVAL, "rbee %s: %s needs a non-empty value", cmd,
                         o->name);
        else
            *(const char **)o->out = v;
        break;
    case KPR_OPT_INT:
        if (rb_parse_i64(v, (int64_t)o->min, (int64_t)o->max, &i))
            rc = rb_errf(err, errlen, RB_EINVAL,
                         "rbee %s: %s takes an integer from %.0f to %.0f, not '%s'", cmd, o->name,
                         o->min, o->max, v);
        else
            *(long long *)o->out = (long long)i;
        break;
    case KPR_OPT_NUM:
        if (rb_parse_double(v, o->min, o->max, &d))
            rc = rb_errf(err, errlen, RB_EINVAL,
                         "rbee %s: %s takes a number from %g to %g, not '%s'", cmd, o->name, o->min,
                         o->max, v);
        else
            *(double *)o->out = d;
        break;
    case KPR_OPT_U64:
        if (rb_parse_u64(v, &u))
            rc = rb_errf(err, errlen, RB_EINVAL,
                         "rbee %s: %s takes a non-negative integer, not '%s'", cmd, o->name, v);
        else
            *(unsigned long long *)o->out = (unsigned long long)u;
        break;
    case KPR_OPT_FLAG:
        *(int *)o->out = 1;
        break;
    }
    if (!rc && o->seen)
        *o->seen = 1;
    return rc;
}

rb_err kpr_args_parse(const char *cmd, int argc, char **argv, const kpr_opt *opts, size_t nopts,
                      const char **pos, size_t max_pos, size_t *npos, char *err, size_t errlen)
{
    rb_err rc = RB_OK;
    size_t n = 0;

    for (int k = 0; k < argc && !rc; k++) {
        const char *a = argv[k];
        const kpr_opt *o;

        if (strncmp(a, "--", 2) != 0) {
            if (n < max_pos)
                pos[n++] = a;
            else
                rc = rb_errf(err, errlen, RB_EINVAL, "rbee %s: unexpected argument '%s'", cmd, a);
        } else if (!(o = find_opt(opts, nopts, a))) {
            rc = rb_errf(err, errlen, RB_EINVAL, "rbee %s: unknown option %s", cmd, a);
        } else if (o->kind == KPR_OPT_FLAG) {
            rc = store_value(cmd, o, "", err, errlen);
        } else if (k + 1 >= argc) {
            rc = rb_errf(err, errlen, RB_EINVAL, "rbee %s: %s needs a value", cmd, a);
        } else {
            rc = store_value(cmd, o, argv[++k], err, errlen);
        }
    }
    if (npos)
        *npos = n;
    return rc;
}

rb_err kpr_ref_with_file(const char *cmd, const char *ref, const char *file, char *out,
                         size_t outlen, char *err, size_t errlen)
{
    const char *repo = strncmp(ref, "hf:", 3) == 0 ? strchr(ref + 3, '/') : NULL;
    size_t n = strlen(file ? file : "");

    if (!file)
        return snprintf(out, outlen, "%s", ref) < (int)outlen
                   ? RB_OK
                   : rb_errf(err, errlen, RB_EINVAL, "rbee %s: the model reference is too long",
                             cmd);
    if (!repo || repo == ref + 3 || !repo[1] || strchr(repo + 1, '/'))
        return rb_errf(err, errlen, RB_EINVAL,
                       "rbee %s: --file applies to a reference hf:<org>/<repo> without a file "
                       "name, not '%s'",
                       cmd, ref);
    if (n <= 5 || strcasecmp(file + n - 5, ".gguf") != 0 || strchr(file, '/'))
        return rb_errf(err, errlen, RB_EINVAL,
                       "rbee %s: --file must name a .gguf file of the repository, not '%s'", cmd,
                       file);
    if (snprintf(out, outlen, "%s/%s", ref, file) >= (int)outlen)
        return rb_errf(err, errlen, RB_EINVAL, "rbee %s: the model reference is too long", cmd);
    return RB_OK;
}
