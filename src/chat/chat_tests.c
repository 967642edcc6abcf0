/*
 * chat_tests.c - the tests (`is defined`, `is divisibleby`, ...) and the global functions
 * (range, namespace, raise_exception, strftime_now, ...) chat templates call, with jinja2's
 * and Hugging Face's semantics; an unknown one fails by name (chat_filters.c has the filters).
 */
#include <ctype.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_internal.h"
#include "chat_builtins.h"
#include "rb_utf8.h"

/* ---- globals ---- */

static locale_t c_loc; /* strftime_now prints English month and day names, as Python does */
static pthread_once_t c_once = PTHREAD_ONCE_INIT;
static void c_init(void)
{
    c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

size_t ch_strftime(const chat_render_opts *o, const char *fmt, char *out, size_t n)
{
    struct tm tm;
    int y, mo, d;

    memset(&tm, 0, sizeof tm);
    if (o->today && sscanf(o->today, "%4d-%2d-%2d", &y, &mo, &d) == 3) {
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = 12;
        time_t t = timegm(&tm);
        gmtime_r(&t, &tm); /* fills the day of the week and of the year */
        tm.tm_hour = 0;
    } else {
        time_t t = time(NULL);
        localtime_r(&t, &tm);
    }
    pthread_once(&c_once, c_init);
    return c_loc ? strftime_l(out, n, fmt, &tm, c_loc) : strftime(out, n, fmt, &tm);
}

ch_val *ch_call_global(ch_ctx *c, const ch_node *nd, const char *name, ch_val **args, int nargs,
                       const char **kwn, ch_val **kwv, int nkw)
{
    argv_ a = {args, nargs, kwn, kwv, nkw};
    static const char *const none[] = {NULL};

    if (!strcmp(name, "raise_exception")) {
        ch_val *m = chb_arg(&a, 0, NULL);
        ch_val *s = m ? ch_stringify(c, m) : NULL;
        if (m && !s)
            return chb_oom(c);
        if (!c->rc) {
            c->rc = rb_errf(c->err, c->errlen, RB_EINVAL, "%.*s", s ? (int)s->u.s.n : 0,
                            s ? s->u.s.s : "");
            if (!s || !s->u.s.n)
                rb_errf(c->err, c->errlen, RB_EINVAL,
                        "line %d, column %d: the template raised "
                        "an exception",
                        nd->line, nd->col);
            c->raised = 1;
        }
        return NULL;
    }
    if (!strcmp(name, "strftime_now")) {
        ch_val *fmt = chb_arg(&a, 0, NULL);
        char out[256];
        if (chb_check_args(c, nd, "function", name, &a, 1, none) ||
            chb_need_str(c, nd, fmt, "strftime_now()"))
            return NULL;
        size_t n = ch_strftime(c->o, fmt->u.s.s, out, sizeof out);
        if (n == 0 && fmt->u.s.n)
            return ch_fail(c, nd, "strftime_now(): the date does not fit");
        return ch_str(c, out, n);
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        ch_val *ns = ch_dict(c, name[0] == 'n' ? V_NS : V_DICT);
        if (!ns)
            return chb_oom(c);
        if (nargs > 1 || (nargs == 1 && args[0]->k != V_DICT && args[0]->k != V_NS))
            return ch_fail(c, nd, "%s() takes keyword arguments or one dict", name);
        if (nargs)
            for (size_t i = 0; i < args[0]->u.d.n; i++)
                if (ch_dict_set(c, ns, args[0]->u.d.key[i], args[0]->u.d.v[i]))
                    return chb_oom(c);
        for (int i = 0; i < nkw; i++)
            if (ch_dict_set(c, ns, kwn[i], kwv[i]))
                return chb_oom(c);
        return ns;
    }
    if (!strcmp(name, "range")) {
        long long v[3] = {0, 0, 1};
        if (chb_check_args(c, nd, "function", name, &a, 3, none))
            return NULL;
        if (nargs == 0)
            return ch_fail(c, nd, "range() needs an argument");
        for (int i = 0; i < nargs; i++)
            if (chb_need_int(c, nd, args[i], "range()", &v[nargs == 1 ? 1 : i]))
                return NULL;
        if (v[2] == 0)
            return ch_fail(c, nd, "range() step must not be zero");
        ch_val *l = ch_list(c, 8);
        if (!l)
            return chb_oom(c);
        for (long long i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
            if (l->u.l.n >= 100000)
                return ch_fail(c, nd, "range() over 100000 items");
            ch_val *e = ch_int(c, i);
            if (!e || ch_list_push(c, l, e))
                return chb_oom(c);
        }
        return l;
    }
    return ch_fail(c, nd, "function '%s' is not supported", name);
}

/* ---- tests ---- */

static int is_intlike(const ch_val *v)
{
    return v->k == V_INT || v->k == V_BOOL;
}

int ch_test(ch_ctx *c, const ch_node *nd, const char *name, ch_val *v, ch_val **args, int nargs)
{
    ch_val *x = nargs > 0 ? args[0] : NULL;
    long long n;

    static const char *const unary[] = {"defined",  "undefined", "none",   "string",   "mapping",
                                        "iterable", "sequence",  "number", "integer",  "float",
                                        "boolean",  "true",      "false",  "callable", "odd",
                                        "even",     "lower",     "upper",  NULL};
    if (nargs > 0 && chb_in_table(unary, name)) {
        ch_fail(c, nd, "test '%s' takes no argument", name);
        return -1;
    }
    if (!strcmp(name, "defined"))
        return v->k != V_UNDEF;
    if (!strcmp(name, "undefined"))
        return v->k == V_UNDEF;
    if (!strcmp(name, "none"))
        return v->k == V_NONE;
    if (!strcmp(name, "string"))
        return v->k == V_STR;
    if (!strcmp(name, "mapping"))
        return v->k == V_DICT;
    if (!strcmp(name, "iterable"))
        return v->k == V_STR || v->k == V_LIST || v->k == V_DICT || v->k == V_UNDEF;
    if (!strcmp(name, "sequence")) /* has len() and [] */
        return v->k == V_STR || (v->k == V_LIST && !v->u.l.gen) || v->k == V_DICT ||
               v->k == V_UNDEF;
    if (!strcmp(name, "number"))
        return v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL;
    if (!strcmp(name, "integer"))
        return v->k == V_INT;
    if (!strcmp(name, "float"))
        return v->k == V_FLOAT;
    if (!strcmp(name, "boolean"))
        return v->k == V_BOOL;
    if (!strcmp(name, "true"))
        return v->k == V_BOOL && v->u.b;
    if (!strcmp(name, "false"))
        return v->k == V_BOOL && !v->u.b;
    if (!strcmp(name, "callable"))
        return v->k == V_MACRO || v->k == V_FUNC;
    if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        if (v->k == V_FLOAT) { /* Python: value % 2 == 1 (or 0) */
            double m = fmod(v->u.f, 2.0);
            if (m < 0)
                m += 2.0;
            return name[0] == 'o' ? m == 1.0 : m == 0.0;
        }
        if (!is_intlike(v)) {
            ch_fail(c, nd, "test '%s' needs a number, not '%s'", name, ch_kind_name(v));
            return -1;
        }
        n = v->k == V_INT ? v->u.i : v->u.b;
        return name[0] == 'o' ? (n % 2 != 0) : (n % 2 == 0);
    }
    if (!strcmp(name, "divisibleby")) {
        if (!is_intlike(v) || !x || chb_need_int(c, nd, x, "divisibleby", &n))
            return c->rc ? -1 : (ch_fail(c, nd, "test 'divisibleby' needs integers"), -1);
        if (n == 0) {
            ch_fail(c, nd, "integer division or modulo by zero");
            return -1;
        }
        return (v->k == V_INT ? v->u.i : v->u.b) % n == 0;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) { /* str(value).islower() */
        ch_val *sv = ch_stringify(c, v);
        return sv ? chb_case_test(sv, name[0] == 'u') : -1;
    }
    static const char *const cmp[][3] = {{"equalto", "eq", "=="},        {"ne", "!=", "ne"},
                                         {"lt", "<", "lessthan"},        {"le", "<=", "le"},
                                         {"gt", ">", "greaterthan"},     {"ge", ">=", "ge"},
                                         {"sameas", "sameas", "sameas"}, {"in", "in", "in"}};
    for (int k = 0; k < 8; k++) {
        if (strcmp(name, cmp[k][0]) && strcmp(name, cmp[k][1]) && strcmp(name, cmp[k][2]))
            continue;
        if (!x) {
            ch_fail(c, nd, "test '%s' needs an argument", name);
            return -1;
        }
        if (k == 0)
            return ch_equal(v, x);
        if (k == 1)
            return !ch_equal(v, x);
        if (k == 6) /* identity: None, booleans and (small) integers are singletons */
            return v == x || ((v->k == V_NONE || v->k == V_BOOL || v->k == V_INT) && v->k == x->k &&
                              ch_equal(v, x));
        if (k == 7) {
            if (x->k == V_STR) {
                if (v->k != V_STR) {
                    ch_fail(c, nd, "'in <string>' requires string as left operand");
                    return -1;
                }
                return memmem(x->u.s.s, x->u.s.n, v->u.s.s, v->u.s.n) != NULL || !v->u.s.n;
            }
            if (x->k == V_LIST) {
                for (size_t i = 0; i < x->u.l.n; i++)
                    if (ch_equal(v, x->u.l.v[i]))
                        return 1;
                return 0;
            }
            if (x->k == V_DICT)
                return v->k == V_STR && ch_dict_get(x, v->u.s.s) != NULL;
            ch_fail(c, nd, "test 'in' needs a container");
            return -1;
        }
        if (v->k == V_UNDEF || x->k == V_UNDEF)
            return ch_undef_error(c, nd, v->k == V_UNDEF ? v : x);
        int r = ch_compare(v, x);
        if (r == -2) {
            ch_fail(c, nd, "test '%s' cannot compare '%s' and '%s'", name, ch_kind_name(v),
                    ch_kind_name(x));
            return -1;
        }
        return k == 2 ? r < 0 : k == 3 ? r <= 0 : k == 4 ? r > 0 : r >= 0;
    }
    ch_fail(c, nd, "test '%s' is not supported", name);
    return -1;
}
