/*
 * chat_filters.c - the filters that chat templates use and the argument helpers every built-in
 * shares (tests and global functions are chat_tests.c, the methods of str, dict and list
 * chat_strings.c, printf-style % chat_format.c), with the semantics of jinja2's built-ins and
 * Hugging Face's additions (tojson as json.dumps with ensure_ascii=False).
 *
 * DESIGN: each family is one dispatch on the name; a name that is not in the table fails
 * with "filter 'x' is not supported" (or test, method), so a template that needs something
 * missing stops with a clear message instead of rendering different text. Case mapping goes
 * through the C library's towupper/towlower in a C.UTF-8 locale, so it is Unicode-aware.
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
#include <wctype.h>

#include "chat_internal.h"
#include "chat_builtins.h"
#include "rb_utf8.h"

/* ---- arguments ---- */

/* The argument at position pos or named name; NULL when not given. */
ch_val *chb_arg(const argv_ *a, int pos, const char *name)
{
    if (pos >= 0 && pos < a->nargs)
        return a->args[pos];
    for (int i = 0; name && i < a->nkw; i++)
        if (!strcmp(a->kwn[i], name))
            return a->kwv[i];
    return NULL;
}

int chb_check_args(ch_ctx *c, const ch_node *nd, const char *what, const char *name, const argv_ *a,
                   int maxpos, const char *const *kws)
{
    if (a->nargs > maxpos) {
        ch_fail(c, nd, "%s '%s' takes at most %d argument(s), got %d", what, name, maxpos,
                a->nargs);
        return -1;
    }
    for (int i = 0; i < a->nkw; i++) {
        int ok = 0;
        for (int k = 0; kws && kws[k]; k++)
            if (!strcmp(kws[k], a->kwn[i]))
                ok = 1;
        if (!ok) {
            ch_fail(c, nd, "%s '%s' does not support the argument '%s'", what, name, a->kwn[i]);
            return -1;
        }
    }
    return 0;
}

ch_val *chb_oom(ch_ctx *c)
{
    return ch_nomem(c);
}

int chb_need_str(ch_ctx *c, const ch_node *nd, const ch_val *v, const char *what)
{
    if (v && v->k == V_STR)
        return 0;
    if (v && v->k == V_UNDEF)
        return ch_undef_error(c, nd, v);
    ch_fail(c, nd, "%s expects a string, not '%s'", what, v ? ch_kind_name(v) : "nothing");
    return -1;
}

int chb_need_int(ch_ctx *c, const ch_node *nd, const ch_val *v, const char *what, long long *out)
{
    if (v && (v->k == V_INT || v->k == V_BOOL)) {
        *out = v->k == V_INT ? v->u.i : v->u.b;
        return 0;
    }
    ch_fail(c, nd, "%s expects an integer, not '%s'", what, v ? ch_kind_name(v) : "nothing");
    return -1;
}

/* ---- filters ---- */

static ch_val *as_list(ch_ctx *c, const ch_node *nd, ch_val *v)
{
    ch_val *l;
    switch (v->k) {
    case V_LIST:
        return v->u.l.gen ? ch_gen_take(c, v) : v;
    case V_UNDEF:
        return ch_list(c, 0);
    case V_DICT:
        return chb_dict_items(c, v, 0);
    case V_STR:
        if (!(l = ch_list(c, v->u.s.n + 1)))
            return chb_oom(c);
        for (size_t i = 0; i < v->u.s.n;) {
            size_t i0 = i;
            rb_utf8_decode(v->u.s.s, v->u.s.n, &i);
            ch_val *e = ch_str(c, v->u.s.s + i0, i - i0);
            if (!e || ch_list_push(c, l, e))
                return chb_oom(c);
        }
        return l;
    default:
        return ch_fail(c, nd, "'%s' object is not iterable", ch_kind_name(v));
    }
}

/* item.attr for map/selectattr/sort/join attribute=; dotted paths and integer parts */
static ch_val *attr_path(ch_ctx *c, const ch_node *nd, ch_val *item, const ch_val *attr)
{
    if (attr->k == V_INT)
        return ch_getitem(c, nd, item, (ch_val *)attr);
    if (chb_need_str(c, nd, attr, "attribute"))
        return NULL;
    const char *s = attr->u.s.s;
    while (item) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        char *part = ch_strndup(&c->arena, s, len);
        if (!part)
            return chb_oom(c);
        char *end;
        long long idx = strtoll(part, &end, 10);
        if (len && *end == '\0' && item->k == V_LIST) {
            ch_val *iv = ch_int(c, idx);
            item = iv ? ch_getitem(c, nd, item, iv) : NULL;
        } else if (item->k == V_UNDEF) {
            return item;
        } else {
            item = ch_getattr(c, nd, item, part);
        }
        if (!dot)
            break;
        s = dot + 1;
    }
    return item;
}

ch_val *chb_join(ch_ctx *c, const ch_node *nd, const ch_val *seq, const ch_val *sep,
                 const ch_val *attr)
{
    ch_val *l = seq ? as_list(c, nd, (ch_val *)seq) : NULL;
    if (!l)
        return c->rc ? NULL : ch_fail(c, nd, "join needs a sequence");
    if (sep && sep->k != V_STR && !(sep = ch_stringify(c, (ch_val *)sep)))
        return chb_oom(c);
    rb_buf b;
    rb_buf_init(&b, (size_t)1 << 26);
    int bad = 0;
    for (size_t i = 0; i < l->u.l.n && !bad; i++) {
        ch_val *e = l->u.l.v[i];
        if (attr && !(e = attr_path(c, nd, e, attr))) {
            rb_buf_release(&b);
            return NULL;
        }
        if (i && sep)
            bad |= rb_buf_append(&b, sep->u.s.s, sep->u.s.n) != RB_OK;
        int sr = ch_to_str(&b, e);
        if (sr) {
            rb_buf_release(&b);
            return ch_str_error(c, nd, sr), NULL;
        }
    }
    ch_val *r = bad ? NULL : ch_str(c, b.data ? b.data : "", b.len);
    rb_buf_release(&b);
    return r ? r : chb_oom(c);
}

static ch_val *lowered(ch_ctx *c, ch_val *v)
{
    return v->k == V_STR ? chb_recase(c, v, CASE_LOWER) : v;
}

/* select/reject/selectattr/rejectattr: the items whose test (or truth) is want. */
static ch_val *select_items(ch_ctx *c, const ch_node *nd, ch_val *v, const argv_ *a, int attr,
                            int want)
{
    ch_val *l = as_list(c, nd, v), *r;
    int first = attr ? 1 : 0;
    if (!l || !(r = ch_list(c, l->u.l.n + 1)))
        return c->rc ? NULL : chb_oom(c);
    if (attr && a->nargs < 1)
        return ch_fail(c, nd, "%s needs an attribute name", want ? "selectattr" : "rejectattr");
    ch_val *test = a->nargs > first ? a->args[first] : NULL;
    if (test && chb_need_str(c, nd, test, "the test name"))
        return NULL;
    for (size_t i = 0; i < l->u.l.n; i++) {
        ch_val *item = l->u.l.v[i], *subject = item;
        if (attr && !(subject = attr_path(c, nd, item, a->args[0])))
            return NULL;
        int t;
        if (test) {
            t = ch_test(c, nd, test->u.s.s, subject, a->args + first + 1, a->nargs - first - 1);
            if (t < 0)
                return NULL;
        } else {
            t = ch_truthy(subject);
        }
        if (t == want && ch_list_push(c, r, item))
            return chb_oom(c);
    }
    r->u.l.gen = 1;
    return r;
}

static int sort_cmp(ch_ctx *c, const ch_node *nd, ch_val *x, ch_val *y, const ch_val *attr, int cs,
                    int *out)
{
    if (ch_steps(c, nd, 1))
        return -1;
    if (attr && (!(x = attr_path(c, nd, x, attr)) || !(y = attr_path(c, nd, y, attr))))
        return -1;
    if (!cs && (!(x = lowered(c, x)) || !(y = lowered(c, y))))
        return -1;
    int r = ch_compare(x, y);
    if (r == -2) {
        ch_fail(c, nd, "cannot sort '%s' and '%s'", ch_kind_name(x), ch_kind_name(y));
        return -1;
    }
    *out = r;
    return 0;
}

/* A sorted copy of l (stable: an insertion sort; templates sort a handful of items). */
static ch_val *sort_list(ch_ctx *c, const ch_node *nd, ch_val *l, const ch_val *attr, int sens,
                         int descending)
{
    ch_val *r = ch_list(c, l->u.l.n + 1);
    if (!r)
        return chb_oom(c);
    for (size_t i = 0; i < l->u.l.n; i++) {
        size_t j = r->u.l.n;
        if (ch_list_push(c, r, l->u.l.v[i]))
            return chb_oom(c);
        while (j > 0) {
            int cmpv;
            if (sort_cmp(c, nd, r->u.l.v[j - 1], r->u.l.v[j], attr, sens, &cmpv))
                return NULL;
            if (descending ? cmpv >= 0 : cmpv <= 0)
                break;
            ch_val *t = r->u.l.v[j - 1];
            r->u.l.v[j - 1] = r->u.l.v[j];
            r->u.l.v[j] = t;
            j--;
        }
    }
    return r;
}

ch_val *ch_filter(ch_ctx *c, const ch_node *nd, ch_val *v, ch_val **args, int nargs,
                  const char **kwn, ch_val **kwv, int nkw)
{
    argv_ a = {args, nargs, kwn, kwv, nkw};
    const char *name = nd->name;
    static const char *const none[] = {NULL};
    ch_val *x, *l, *r;
    long long n;

#define ARGS(maxpos, ...)                                                                          \
    do {                                                                                           \
        static const char *const kws_[] = {__VA_ARGS__, NULL};                                     \
        if (chb_check_args(c, nd, "filter", name, &a, maxpos, kws_))                               \
            return NULL;                                                                           \
    } while (0)

    if (!strcmp(name, "tojson")) {
        ARGS(1, "indent", "ensure_ascii", "sort_keys", "separators");
        ch_json_opts jo = {-1, NULL, NULL, 0, 0};
        if ((x = chb_arg(&a, 0, "indent")) && x->k != V_NONE) {
            if (chb_need_int(c, nd, x, "tojson indent", &n))
                return NULL;
            jo.indent = n < 0 ? 0 : n > 64 ? 64 : (int)n;
        }
        jo.ascii = (x = chb_arg(&a, -1, "ensure_ascii")) && ch_truthy(x);
        jo.sort_keys = (x = chb_arg(&a, -1, "sort_keys")) && ch_truthy(x);
        if ((x = chb_arg(&a, -1, "separators")) && x->k != V_NONE) {
            if (x->k != V_LIST || x->u.l.n != 2 || x->u.l.v[0]->k != V_STR ||
                x->u.l.v[1]->k != V_STR)
                return ch_fail(c, nd, "tojson separators must be two strings");
            jo.item_sep = x->u.l.v[0]->u.s.s;
            jo.key_sep = x->u.l.v[1]->u.s.s;
        }
        rb_buf b;
        rb_buf_init(&b, (size_t)1 << 26);
        int rc = ch_to_json(&b, v, &jo, 0);
        r = rc ? NULL : ch_str(c, b.data ? b.data : "", b.len);
        rb_buf_release(&b);
        if (rc == -2) {
            if (v->k == V_UNDEF)
                return ch_undef_error(c, nd, v), NULL;
            return ch_fail(c, nd, "tojson: a value of type '%s' is not JSON serializable",
                           ch_kind_name(v));
        }
        return r ? r : chb_oom(c);
    }
    if (!strcmp(name, "trim")) {
        ARGS(1, "chars");
        if (chb_need_str(c, nd, v = ch_stringify(c, v), "trim"))
            return NULL;
        x = chb_arg(&a, 0, "chars");
        if (x && x->k != V_NONE && chb_need_str(c, nd, x, "trim"))
            return NULL;
        return chb_strip(c, v, x, 1, 1);
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        ARGS(0, NULL);
        if (v->k == V_LIST && v->u.l.gen)
            return ch_fail(c, nd, "object of type 'generator' has no len(); add '| list' first");
        switch (v->k) {
        case V_STR:
            return ch_int(c, (long long)ch_utf8_len(v->u.s.s, v->u.s.n));
        case V_LIST:
            return ch_int(c, (long long)v->u.l.n);
        case V_DICT:
        case V_NS:
            return ch_int(c, (long long)v->u.d.n);
        case V_UNDEF:
            return ch_int(c, 0);
        default:
            return ch_fail(c, nd, "object of type '%s' has no len()", ch_kind_name(v));
        }
    }
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        ARGS(2, "default_value", "boolean");
        x = chb_arg(&a, 1, "boolean");
        int use = v->k == V_UNDEF || (x && ch_truthy(x) && !ch_truthy(v));
        if (!use)
            return v;
        r = chb_arg(&a, 0, "default_value");
        return r ? r : ch_str(c, "", 0);
    }
    if (!strcmp(name, "join")) {
        ARGS(2, "d", "attribute");
        return chb_join(c, nd, v, chb_arg(&a, 0, "d"), chb_arg(&a, 1, "attribute"));
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
        !strcmp(name, "capitalize")) {
        ARGS(0, NULL);
        if (!(v = ch_stringify(c, v)))
            return chb_oom(c);
        return chb_recase(c, v,
                          name[0] == 'u'   ? CASE_UPPER
                          : name[0] == 'l' ? CASE_LOWER
                          : name[0] == 't' ? CASE_JTITLE
                                           : CASE_CAP);
    }
    if (!strcmp(name, "replace")) {
        ARGS(3, "old", "new", "count");
        if (!(v = ch_stringify(c, v)))
            return chb_oom(c);
        return chb_replace(c, nd, v, chb_arg(&a, 0, "old"), chb_arg(&a, 1, "new"),
                           chb_arg(&a, 2, "count"));
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        ARGS(0, NULL);
        if (v->k == V_LIST && v->u.l.gen) { /* next(iter(g)); reversed(g) fails */
            if (name[0] == 'l')
                return ch_fail(c, nd, "'generator' object is not reversible; add '| list' first");
            if (v->u.l.pos >= v->u.l.n)
                return ch_undef_named(c, "the sequence is empty");
            return v->u.l.v[v->u.l.pos++];
        }
        if (!(l = as_list(c, nd, v)))
            return NULL;
        if (l->u.l.n == 0)
            return ch_undef_named(c, "the sequence is empty");
        return l->u.l.v[name[0] == 'f' ? 0 : l->u.l.n - 1];
    }
    if (!strcmp(name, "list")) {
        ARGS(0, NULL);
        if (!(l = as_list(c, nd, v)))
            return NULL;
        if (l != v)
            return l;
        r = ch_list(c, l->u.l.n + 1);
        for (size_t i = 0; r && i < l->u.l.n; i++)
            if (ch_list_push(c, r, l->u.l.v[i]))
                return chb_oom(c);
        return r ? r : chb_oom(c);
    }
    if (!strcmp(name, "map")) {
        if (!(l = as_list(c, nd, v)) || !(r = ch_list(c, l->u.l.n + 1)))
            return c->rc ? NULL : chb_oom(c);
        ch_val *attr = chb_arg(&a, -1, "attribute"), *def = chb_arg(&a, -1, "default");
        if (attr) {
            if (nargs)
                return ch_fail(c, nd, "map(attribute=...) takes no other arguments");
            for (size_t i = 0; i < l->u.l.n; i++) {
                ch_val *e = attr_path(c, nd, l->u.l.v[i], attr);
                if (!e)
                    return NULL;
                if (e->k == V_UNDEF && def)
                    e = def;
                if (ch_list_push(c, r, e))
                    return chb_oom(c);
            }
            r->u.l.gen = 1;
            return r;
        }
        if (nargs < 1 || chb_need_str(c, nd, args[0], "map"))
            return c->rc ? NULL : ch_fail(c, nd, "map needs a filter name or attribute=");
        ch_node fn = *nd;
        fn.name = args[0]->u.s.s;
        for (size_t i = 0; i < l->u.l.n; i++) {
            ch_val *e = ch_filter(c, &fn, l->u.l.v[i], args + 1, nargs - 1, kwn, kwv, nkw);
            if (!e || ch_list_push(c, r, e))
                return c->rc ? NULL : chb_oom(c);
        }
        r->u.l.gen = 1;
        return r;
    }
    if (!strcmp(name, "select") || !strcmp(name, "reject"))
        return select_items(c, nd, v, &a, 0, name[0] == 's');
    if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return select_items(c, nd, v, &a, 1, name[0] == 's');
    if (!strcmp(name, "items")) {
        ARGS(0, NULL);
        if (v->k == V_UNDEF)
            return ch_list(c, 0);
        if (v->k != V_DICT && v->k != V_NS)
            return ch_fail(c, nd, "filter 'items' needs a mapping, not '%s'", ch_kind_name(v));
        if (!(r = chb_dict_items(c, v, 2)))
            return NULL;
        r->u.l.gen = 1; /* jinja2's items filter is a generator */
        return r;
    }
    if (!strcmp(name, "indent")) {
        ARGS(3, "width", "first", "blank");
        long long w = 4;
        ch_val *first = chb_arg(&a, 1, "first"), *blank = chb_arg(&a, 2, "blank");
        if ((x = chb_arg(&a, 0, "width"))) {
            if (x->k == V_STR)
                return ch_fail(c, nd, "indent with a string width is not supported");
            if (chb_need_int(c, nd, x, "indent width", &w))
                return NULL;
        }
        if (chb_need_str(c, nd, v, "filter 'indent'"))
            return NULL;
        rb_buf b;
        rb_buf_init(&b, (size_t)1 << 26);
        int bad = 0, at_start = 1;
        const char *s = v->u.s.s;
        size_t len = v->u.s.n;
        for (size_t i = 0, line = 0; i <= len; i++) {
            if (i < len && s[i] != '\n')
                continue;
            size_t ll = i - line;
            int empty = ll == 0 || (ll == 1 && s[line] == '\r');
            int pad =
                at_start ? (first && ch_truthy(first)) : (!empty || (blank && ch_truthy(blank)));
            if (i == len && ll == 0 && !at_start)
                pad = 0;
            for (long long k = 0; pad && k < w; k++)
                bad |= rb_buf_append(&b, " ", 1) != RB_OK;
            bad |= rb_buf_append(&b, s + line, ll + (i < len)) != RB_OK;
            line = i + 1;
            at_start = 0;
        }
        r = bad ? NULL : ch_str(c, b.data ? b.data : "", b.len);
        rb_buf_release(&b);
        return r ? r : chb_oom(c);
    }
    if (!strcmp(name, "safe")) { /* Markup(value): a string */
        ARGS(0, NULL);
        return v->k == V_STR ? v : ch_stringify(c, v);
    }
    if (!strcmp(name, "string")) {
        ARGS(0, NULL);
        return v->k == V_STR ? v : ch_stringify(c, v);
    }
    if (!strcmp(name, "escape") || !strcmp(name, "e")) {
        ARGS(0, NULL);
        if (!(v = ch_stringify(c, v)))
            return chb_oom(c);
        rb_buf b;
        rb_buf_init(&b, (size_t)1 << 26);
        int bad = 0;
        for (size_t i = 0; i < v->u.s.n; i++) {
            char ch = v->u.s.s[i];
            const char *e = ch == '&'    ? "&amp;"
                            : ch == '<'  ? "&lt;"
                            : ch == '>'  ? "&gt;"
                            : ch == '"'  ? "&#34;"
                            : ch == '\'' ? "&#39;"
                                         : NULL;
            bad |= (e ? rb_buf_appends(&b, e) : rb_buf_append(&b, &ch, 1)) != RB_OK;
        }
        r = bad ? NULL : ch_str(c, b.data ? b.data : "", b.len);
        rb_buf_release(&b);
        return r ? r : chb_oom(c);
    }
    if (!strcmp(name, "int")) {
        ARGS(2, "default", "base");
        ch_val *def = chb_arg(&a, 0, "default");
        long long base = 10;
        if ((x = chb_arg(&a, 1, "base")) && chb_need_int(c, nd, x, "int base", &base))
            return NULL;
        if (v->k == V_UNDEF)
            return ch_undef_error(c, nd, v), NULL;
        if (v->k == V_INT)
            return v;
        if (v->k == V_BOOL)
            return ch_int(c, v->u.b);
        if (v->k == V_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9.2e18)
            return ch_int(c, (long long)v->u.f);
        if (v->k == V_STR) {
            char *end;
            const char *s = v->u.s.s;
            long long iv = strtoll(s, &end, (int)base);
            while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
            if (end != s && *end == '\0')
                return ch_int(c, iv);
            double fv = strtod(s, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
            if (end != s && *end == '\0' && isfinite(fv) && fabs(fv) < 9.2e18)
                return ch_int(c, (long long)fv);
        }
        return def ? def : ch_int(c, 0);
    }
    if (!strcmp(name, "float")) {
        ARGS(1, "default");
        ch_val *def = chb_arg(&a, 0, "default");
        if (v->k == V_UNDEF)
            return ch_undef_error(c, nd, v), NULL;
        if (v->k == V_FLOAT)
            return v;
        if (v->k == V_INT || v->k == V_BOOL)
            return ch_float(c, v->k == V_INT ? (double)v->u.i : v->u.b);
        if (v->k == V_STR) {
            char *end;
            double fv = strtod(v->u.s.s, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
            if (end != v->u.s.s && *end == '\0')
                return ch_float(c, fv);
        }
        return def ? def : ch_float(c, 0.0);
    }
    if (!strcmp(name, "abs")) {
        ARGS(0, NULL);
        if (v->k == V_INT && v->u.i != LLONG_MIN)
            return v->u.i < 0 ? ch_int(c, -v->u.i) : v;
        if (v->k == V_BOOL)
            return ch_int(c, v->u.b);
        if (v->k == V_FLOAT)
            return ch_float(c, fabs(v->u.f));
        return ch_fail(c, nd, "bad operand type for abs(): '%s'", ch_kind_name(v));
    }
    if (!strcmp(name, "round")) {
        ARGS(2, "precision", "method");
        long long p = 0;
        if ((x = chb_arg(&a, 0, "precision")) && chb_need_int(c, nd, x, "round precision", &p))
            return NULL;
        x = chb_arg(&a, 1, "method");
        const char *m = x && x->k == V_STR ? x->u.s.s : "common";
        if (v->k != V_INT && v->k != V_FLOAT && v->k != V_BOOL)
            return ch_fail(c, nd, "filter 'round' needs a number, not '%s'", ch_kind_name(v));
        double f = v->k == V_FLOAT ? v->u.f : v->k == V_INT ? (double)v->u.i : v->u.b;
        double scale = pow(10.0, (double)p), y = f * scale;
        if (!strcmp(m, "common"))
            y = nearbyint(y);
        else if (!strcmp(m, "ceil"))
            y = ceil(y);
        else if (!strcmp(m, "floor"))
            y = floor(y);
        else
            return ch_fail(c, nd, "round method must be common, ceil or floor");
        if (v->k != V_FLOAT && !strcmp(m, "common") && p >= 0)
            return v->k == V_BOOL ? ch_int(c, v->u.b) : v;
        return ch_float(c, y / scale);
    }
    if (!strcmp(name, "unique")) {
        ARGS(1, "case_sensitive", "attribute");
        ch_val *cs = chb_arg(&a, 0, "case_sensitive"), *attr = chb_arg(&a, -1, "attribute");
        if (!(l = as_list(c, nd, v)) || !(r = ch_list(c, l->u.l.n + 1)))
            return c->rc ? NULL : chb_oom(c);
        ch_val *seen = ch_list(c, l->u.l.n + 1);
        if (!seen)
            return chb_oom(c);
        for (size_t i = 0; i < l->u.l.n; i++) {
            ch_val *key = l->u.l.v[i];
            if (attr && !(key = attr_path(c, nd, key, attr)))
                return NULL;
            if (!(cs && ch_truthy(cs)) && !(key = lowered(c, key)))
                return chb_oom(c);
            int dup = 0;
            if (ch_steps(c, nd, (long long)seen->u.l.n))
                return NULL;
            for (size_t k = 0; k < seen->u.l.n && !dup; k++)
                dup = ch_equal(seen->u.l.v[k], key);
            if (!dup && (ch_list_push(c, seen, key) || ch_list_push(c, r, l->u.l.v[i])))
                return chb_oom(c);
        }
        r->u.l.gen = 1;
        return r;
    }
    if (!strcmp(name, "sort")) {
        ARGS(3, "reverse", "case_sensitive", "attribute");
        ch_val *rev = chb_arg(&a, 0, "reverse"), *cs = chb_arg(&a, 1, "case_sensitive"),
               *attr = chb_arg(&a, 2, "attribute");
        if (!(l = as_list(c, nd, v)))
            return NULL;
        return sort_list(c, nd, l, attr, cs && ch_truthy(cs), rev && ch_truthy(rev));
    }
    if (!strcmp(name, "dictsort")) {
        ARGS(3, "case_sensitive", "by", "reverse");
        ch_val *cs = chb_arg(&a, 0, "case_sensitive"), *by = chb_arg(&a, 1, "by"),
               *rev = chb_arg(&a, 2, "reverse"), *key;
        if (v->k != V_DICT && v->k != V_NS)
            return ch_fail(c, nd, "filter 'dictsort' needs a mapping, not '%s'", ch_kind_name(v));
        if (by && (by->k != V_STR || (strcmp(by->u.s.s, "key") && strcmp(by->u.s.s, "value"))))
            return ch_fail(c, nd, "dictsort: 'by' must be 'key' or 'value'");
        if (!(l = chb_dict_items(c, v, 2)) ||
            !(key = ch_int(c, by && !strcmp(by->u.s.s, "value") ? 1 : 0)))
            return chb_oom(c);
        return sort_list(c, nd, l, key, cs && ch_truthy(cs), rev && ch_truthy(rev));
    }
    if (!strcmp(name, "reverse")) {
        ARGS(0, NULL);
        if (v->k == V_STR) {
            char *o = ch_alloc(&c->arena, v->u.s.n + 1);
            if (!o)
                return chb_oom(c);
            size_t on = v->u.s.n;
            for (size_t i = 0; i < v->u.s.n;) {
                size_t i0 = i;
                rb_utf8_decode(v->u.s.s, v->u.s.n, &i);
                on -= i - i0;
                memcpy(o + on, v->u.s.s + i0, i - i0);
            }
            return ch_str_own(c, o, v->u.s.n);
        }
        int was_gen = v->k == V_LIST && v->u.l.gen;
        if (!(l = as_list(c, nd, v)) || !(r = ch_list(c, l->u.l.n + 1)))
            return c->rc ? NULL : chb_oom(c);
        for (size_t i = l->u.l.n; i > 0; i--)
            if (ch_list_push(c, r, l->u.l.v[i - 1]))
                return chb_oom(c);
        r->u.l.gen = !was_gen; /* reversed(list) is an iterator; a generator becomes a list */
        return r;
    }
    if (!strcmp(name, "sum")) {
        ARGS(2, "attribute", "start");
        ch_val *attr = chb_arg(&a, 0, "attribute"), *acc = chb_arg(&a, 1, "start");
        if (!(l = as_list(c, nd, v)))
            return NULL;
        if (!acc && !(acc = ch_int(c, 0)))
            return chb_oom(c);
        for (size_t i = 0; i < l->u.l.n; i++) {
            ch_val *e = l->u.l.v[i];
            if (attr && !(e = attr_path(c, nd, e, attr)))
                return NULL;
            if ((e->k != V_INT && e->k != V_FLOAT && e->k != V_BOOL) ||
                (acc->k != V_INT && acc->k != V_FLOAT && acc->k != V_BOOL))
                return ch_fail(c, nd, "filter 'sum' needs numbers");
            if (acc->k == V_FLOAT || e->k == V_FLOAT)
                acc = ch_float(
                    c, (acc->k == V_FLOAT ? acc->u.f
                                          : (double)(acc->k == V_INT ? acc->u.i : acc->u.b)) +
                           (e->k == V_FLOAT ? e->u.f : (double)(e->k == V_INT ? e->u.i : e->u.b)));
            else {
                long long s;
                if (__builtin_add_overflow(acc->k == V_INT ? acc->u.i : acc->u.b,
                                           e->k == V_INT ? e->u.i : e->u.b, &s))
                    return ch_fail(c, nd, "integer overflow in 'sum'");
                acc = ch_int(c, s);
            }
            if (!acc)
                return chb_oom(c);
        }
        return acc;
    }
    if (!strcmp(name, "min") || !strcmp(name, "max")) {
        ARGS(0, "case_sensitive", "attribute");
        ch_val *cs = chb_arg(&a, -1, "case_sensitive"), *attr = chb_arg(&a, -1, "attribute");
        if (!(l = as_list(c, nd, v)))
            return NULL;
        if (l->u.l.n == 0)
            return ch_undef_named(c, "no min/max of an empty sequence");
        ch_val *best = l->u.l.v[0];
        for (size_t i = 1; i < l->u.l.n; i++) {
            int cmpv;
            if (sort_cmp(c, nd, l->u.l.v[i], best, attr, cs && ch_truthy(cs), &cmpv))
                return NULL;
            if (name[1] == 'i' ? cmpv < 0 : cmpv > 0)
                best = l->u.l.v[i];
        }
        return best;
    }
    if (!strcmp(name, "batch")) {
        ARGS(2, "linecount", "fill_with");
        ch_val *fill = chb_arg(&a, 1, "fill_with");
        if (chb_need_int(c, nd, chb_arg(&a, 0, "linecount"), "batch", &n))
            return NULL;
        if (n < 1)
            return ch_fail(c, nd, "batch needs a positive size");
        if (!(l = as_list(c, nd, v)) || !(r = ch_list(c, 4)))
            return c->rc ? NULL : chb_oom(c);
        ch_val *cur = NULL;
        for (size_t i = 0; i < l->u.l.n; i++) {
            if (!cur && (!(cur = ch_list(c, (size_t)n)) || ch_list_push(c, r, cur)))
                return chb_oom(c);
            if (ch_list_push(c, cur, l->u.l.v[i]))
                return chb_oom(c);
            if (cur->u.l.n == (size_t)n)
                cur = NULL;
        }
        while (cur && fill && fill->k != V_NONE && cur->u.l.n < (size_t)n)
            if (ch_list_push(c, cur, fill))
                return chb_oom(c);
        r->u.l.gen = 1;
        return r;
    }
    if (!strcmp(name, "wordcount")) { /* runs of \w characters, as jinja2's regex counts */
        ARGS(0, NULL);
        if (!(v = ch_stringify(c, v)))
            return NULL;
        long long words = 0;
        int in_word = 0;
        for (size_t i = 0; i < v->u.s.n;) {
            unsigned long cp = rb_utf8_decode(v->u.s.s, v->u.s.n, &i);
            int w = cp == '_' || (cp < 0x80 ? isalnum((int)cp) != 0 : chb_wide_class(cp, 1));
            words += w && !in_word;
            in_word = w;
        }
        return ch_int(c, words);
    }
    (void)none;
    return ch_fail(c, nd, "filter '%s' is not supported", name);
#undef ARGS
}
