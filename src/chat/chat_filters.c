/*
 * chat_filters.c - the filters, tests, methods and global functions that chat templates
 * use, with the semantics of jinja2's built-ins, Python's str and dict methods, and the
 * globals Hugging Face adds (raise_exception, strftime_now, tojson as json.dumps with
 * ensure_ascii=False).
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
#include "rb_utf8.h"

/* ---- arguments ---- */

typedef struct argv_ {
    ch_val **args;
    int nargs;
    const char **kwn;
    ch_val **kwv;
    int nkw;
} argv_;

/* The argument at position pos or named name; NULL when not given. */
static ch_val *arg(const argv_ *a, int pos, const char *name)
{
    if (pos >= 0 && pos < a->nargs)
        return a->args[pos];
    for (int i = 0; name && i < a->nkw; i++)
        if (!strcmp(a->kwn[i], name))
            return a->kwv[i];
    return NULL;
}

static int check_args(ch_ctx *c, const ch_node *nd, const char *what, const char *name,
                      const argv_ *a, int maxpos, const char *const *kws)
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

static ch_val *oom(ch_ctx *c)
{
    return ch_nomem(c);
}

static int need_str(ch_ctx *c, const ch_node *nd, const ch_val *v, const char *what)
{
    if (v && v->k == V_STR)
        return 0;
    if (v && v->k == V_UNDEF)
        return ch_undef_error(c, nd, v);
    ch_fail(c, nd, "%s expects a string, not '%s'", what, v ? ch_kind_name(v) : "nothing");
    return -1;
}

static int need_int(ch_ctx *c, const ch_node *nd, const ch_val *v, const char *what, long long *out)
{
    if (v && (v->k == V_INT || v->k == V_BOOL)) {
        *out = v->k == V_INT ? v->u.i : v->u.b;
        return 0;
    }
    ch_fail(c, nd, "%s expects an integer, not '%s'", what, v ? ch_kind_name(v) : "nothing");
    return -1;
}

/* ---- UTF-8 and case ---- */

static locale_t utf8_loc;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;
static void utf8_init(void)
{
    utf8_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static unsigned long to_upper(unsigned long cp)
{
    if (cp < 0x80)
        return cp >= 'a' && cp <= 'z' ? cp - 32 : cp;
    pthread_once(&utf8_once, utf8_init);
    return utf8_loc ? (unsigned long)towupper_l((wint_t)cp, utf8_loc) : cp;
}

static unsigned long to_lower(unsigned long cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    pthread_once(&utf8_once, utf8_init);
    return utf8_loc ? (unsigned long)towlower_l((wint_t)cp, utf8_loc) : cp;
}

/* iswalnum (alnum) or iswalpha in the C.UTF-8 locale, for code points past ASCII */
static int wide_class(unsigned long cp, int alnum)
{
    pthread_once(&utf8_once, utf8_init);
    if (!utf8_loc)
        return 0;
    return alnum ? iswalnum_l((wint_t)cp, utf8_loc) != 0 : iswalpha_l((wint_t)cp, utf8_loc) != 0;
}

static int is_cased(unsigned long cp)
{
    return to_upper(cp) != cp || to_lower(cp) != cp;
}

enum { CASE_UPPER, CASE_LOWER, CASE_CAP, CASE_PYTITLE, CASE_JTITLE };

static int jtitle_delim(unsigned long cp)
{
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || cp == ' ' ||
           (cp >= 9 && cp <= 13);
}

static ch_val *recase(ch_ctx *c, const ch_val *v, int mode)
{
    const char *s = v->u.s.s;
    size_t n = v->u.s.n, i = 0, o = 0;
    char *out = ch_alloc(&c->arena, n * 2 + 4);
    int prev_cased = 0, word_start = 1;

    if (!out)
        return oom(c);
    while (i < n) {
        size_t start = i;
        unsigned long cp = rb_utf8_decode(s, n, &i), r = cp;
        switch (mode) {
        case CASE_UPPER:
            r = to_upper(cp);
            break;
        case CASE_LOWER:
            r = to_lower(cp);
            break;
        case CASE_CAP:
            r = start == 0 ? to_upper(cp) : to_lower(cp);
            break;
        case CASE_PYTITLE:
            r = prev_cased ? to_lower(cp) : to_upper(cp);
            prev_cased = is_cased(cp);
            break;
        default:
            if (jtitle_delim(cp)) {
                word_start = 1;
            } else {
                r = word_start ? to_upper(cp) : to_lower(cp);
                word_start = 0;
            }
        }
        size_t len = rb_utf8_encode(r, out + o);
        if (len != i - start && o + len > n * 2) { /* never happens for BMP case pairs */
            return ch_fail(c, NULL, "case mapping grew the string too much");
        }
        o += len;
    }
    return ch_str_own(c, out, o);
}

/* Python's str.isupper() (upper) or str.islower(): a cased character, none of the other case. */
static int case_test(const ch_val *v, int upper)
{
    int cased = 0;
    for (size_t i = 0; i < v->u.s.n;) {
        unsigned long cp = rb_utf8_decode(v->u.s.s, v->u.s.n, &i);
        int is_lower = to_upper(cp) != cp, is_upper = to_lower(cp) != cp;
        if (upper ? is_lower : is_upper)
            return 0;
        cased |= upper ? is_upper : is_lower;
    }
    return cased;
}

/* ---- strip / split / replace ---- */

static int in_chars(const ch_val *chars, const char *s, size_t n, size_t i, size_t *len)
{
    if (!chars)
        return ch_is_space_at(s, n, i, len);
    size_t j = i;
    rb_utf8_decode(s, n, &j);
    *len = j - i;
    const char *cs = chars->u.s.s;
    for (size_t k = 0; k < chars->u.s.n;) {
        size_t k0 = k;
        rb_utf8_decode(cs, chars->u.s.n, &k);
        if (k - k0 == *len && !memcmp(cs + k0, s + i, *len))
            return 1;
    }
    return 0;
}

static ch_val *strip(ch_ctx *c, const ch_val *v, const ch_val *chars, int left, int right)
{
    const char *s = v->u.s.s;
    size_t n = v->u.s.n, a = 0, b = n, len;

    if (chars && chars->k == V_NONE)
        chars = NULL;
    if (left)
        while (a < b && in_chars(chars, s, n, a, &len))
            a += len;
    if (right)
        while (b > a) {
            size_t p = b - 1;
            while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80)
                p--;
            if (!in_chars(chars, s, n, p, &len))
                break;
            b = p;
        }
    return ch_str(c, s + a, b - a);
}

static ch_val *split(ch_ctx *c, const ch_node *nd, const ch_val *v, const ch_val *sep,
                     long long maxsplit)
{
    const char *s = v->u.s.s;
    size_t n = v->u.s.n;
    ch_val *l = ch_list(c, 4), *e;

    if (!l)
        return oom(c);
    if (sep && sep->k == V_NONE)
        sep = NULL;
    if (sep) {
        if (need_str(c, nd, sep, "split()"))
            return NULL;
        if (sep->u.s.n == 0)
            return ch_fail(c, nd, "empty separator");
        size_t a = 0;
        const char *hit;
        while ((maxsplit < 0 || maxsplit-- > 0) &&
               (hit = memmem(s + a, n - a, sep->u.s.s, sep->u.s.n))) {
            if (!(e = ch_str(c, s + a, (size_t)(hit - s) - a)) || ch_list_push(c, l, e))
                return oom(c);
            a = (size_t)(hit - s) + sep->u.s.n;
        }
        if (!(e = ch_str(c, s + a, n - a)) || ch_list_push(c, l, e))
            return oom(c);
        return l;
    }
    size_t i = 0, len;
    for (;;) {
        while (i < n && ch_is_space_at(s, n, i, &len))
            i += len;
        if (i >= n)
            break;
        if (maxsplit == 0) {
            size_t b = n;
            while (b > i) { /* the rest, without trailing whitespace */
                size_t p = b - 1;
                while (p > i && ((unsigned char)s[p] & 0xC0) == 0x80)
                    p--;
                if (!ch_is_space_at(s, n, p, &len))
                    break;
                b = p;
            }
            if (!(e = ch_str(c, s + i, b - i)) || ch_list_push(c, l, e))
                return oom(c);
            break;
        }
        size_t a = i;
        while (i < n && !ch_is_space_at(s, n, i, &len))
            i += len ? len : 1;
        if (!(e = ch_str(c, s + a, i - a)) || ch_list_push(c, l, e))
            return oom(c);
        if (maxsplit > 0)
            maxsplit--;
    }
    return l;
}

static ch_val *replace(ch_ctx *c, const ch_node *nd, const ch_val *v, const ch_val *old,
                       const ch_val *new_, const ch_val *count)
{
    long long max = -1;
    if (need_str(c, nd, old, "replace()") || need_str(c, nd, new_, "replace()"))
        return NULL;
    if (count && count->k != V_NONE && need_int(c, nd, count, "replace()", &max))
        return NULL;
    rb_buf b;
    rb_buf_init(&b, (size_t)1 << 26);
    const char *s = v->u.s.s;
    size_t n = v->u.s.n, i = 0;
    int bad = 0;
    if (old->u.s.n == 0) { /* Python inserts new between every character */
        while (!bad && i <= n && max != 0) {
            bad |= rb_buf_append(&b, new_->u.s.s, new_->u.s.n) != RB_OK;
            if (max > 0)
                max--;
            if (i == n) {
                i++;
                break;
            }
            size_t j = i;
            rb_utf8_decode(s, n, &j);
            bad |= rb_buf_append(&b, s + i, j - i) != RB_OK;
            i = j;
        }
        if (i < n)
            bad |= rb_buf_append(&b, s + i, n - i) != RB_OK;
    } else {
        const char *hit;
        while (max != 0 && (hit = memmem(s + i, n - i, old->u.s.s, old->u.s.n))) {
            bad |= rb_buf_append(&b, s + i, (size_t)(hit - s) - i) != RB_OK;
            bad |= rb_buf_append(&b, new_->u.s.s, new_->u.s.n) != RB_OK;
            i = (size_t)(hit - s) + old->u.s.n;
            if (max > 0)
                max--;
        }
        bad |= rb_buf_append(&b, s + i, n - i) != RB_OK;
    }
    ch_val *r = bad ? NULL : ch_str(c, b.data ? b.data : "", b.len);
    rb_buf_release(&b);
    return r ? r : oom(c);
}

static int affix(ch_ctx *c, const ch_node *nd, const ch_val *v, const ch_val *p, int end)
{
    if (p && p->k == V_LIST) {
        for (size_t i = 0; i < p->u.l.n; i++) {
            int r = affix(c, nd, v, p->u.l.v[i], end);
            if (r)
                return r;
        }
        return 0;
    }
    if (need_str(c, nd, p, end ? "endswith()" : "startswith()"))
        return -1;
    if (p->u.s.n > v->u.s.n)
        return 0;
    return !memcmp(v->u.s.s + (end ? v->u.s.n - p->u.s.n : 0), p->u.s.s, p->u.s.n);
}

/* ---- methods ---- */

static const char *const str_methods[] = {"strip",    "lstrip",  "rstrip",  "split",   "startswith",
                                          "endswith", "upper",   "lower",   "title",   "capitalize",
                                          "replace",  "find",    "count",   "join",    "isdigit",
                                          "isalpha",  "isspace", "islower", "isupper", "splitlines",
                                          "format",   NULL};
static const char *const dict_methods[] = {"get", "items", "keys", "values", NULL};
static const char *const list_methods[] = {"append", "pop",   "insert", "extend",
                                           "remove", "index", "count",  NULL};

static int in_table(const char *const *t, const char *name)
{
    for (int i = 0; t[i]; i++)
        if (!strcmp(t[i], name))
            return 1;
    return 0;
}

int ch_has_method(const ch_val *self, const char *name)
{
    switch (self->k) {
    case V_STR:
        return in_table(str_methods, name);
    case V_DICT:
        return in_table(dict_methods, name);
    case V_LIST:
        return in_table(list_methods, name);
    default:
        return 0;
    }
}

static ch_val *dict_items(ch_ctx *c, const ch_val *d, int which)
{
    ch_val *l = ch_list(c, d->u.d.n + 1);
    if (!l)
        return oom(c);
    for (size_t i = 0; i < d->u.d.n; i++) {
        ch_val *k = ch_str_own(c, d->u.d.key[i], strlen(d->u.d.key[i])), *e = k;
        if (!k)
            return oom(c);
        if (which == 1)
            e = d->u.d.v[i];
        else if (which == 2) {
            if (!(e = ch_list(c, 2)) || ch_list_push(c, e, k) || ch_list_push(c, e, d->u.d.v[i]))
                return oom(c);
            e->u.l.tuple = 1;
        }
        if (ch_list_push(c, l, e))
            return oom(c);
    }
    return l;
}

static ch_val *str_count(ch_ctx *c, const ch_val *v, const ch_val *sub)
{
    long long k = 0;
    if (sub->u.s.n == 0)
        return ch_int(c, (long long)ch_utf8_len(v->u.s.s, v->u.s.n) + 1);
    for (size_t i = 0; i + sub->u.s.n <= v->u.s.n;) {
        const char *hit = memmem(v->u.s.s + i, v->u.s.n - i, sub->u.s.s, sub->u.s.n);
        if (!hit)
            break;
        k++;
        i = (size_t)(hit - v->u.s.s) + sub->u.s.n;
    }
    return ch_int(c, k);
}

static ch_val *join(ch_ctx *c, const ch_node *nd, const ch_val *seq, const ch_val *sep,
                    const ch_val *attr);

/* Python's str.splitlines(): every line break ends a line; no empty last line. */
static ch_val *splitlines(ch_ctx *c, const ch_val *v)
{
    const unsigned char *s = (const unsigned char *)v->u.s.s;
    size_t n = v->u.s.n, start = 0, i = 0;
    ch_val *l = ch_list(c, 4), *e;

    if (!l)
        return oom(c);
    while (i < n) {
        size_t brk = 0;
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
            brk = 2;
        else if (s[i] == '\n' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f' ||
                 (s[i] >= 0x1c && s[i] <= 0x1e))
            brk = 1;
        else if (s[i] == 0xC2 && i + 1 < n && s[i + 1] == 0x85)
            brk = 2;
        else if (s[i] == 0xE2 && i + 2 < n && s[i + 1] == 0x80 &&
                 (s[i + 2] == 0xA8 || s[i + 2] == 0xA9))
            brk = 3;
        if (!brk) {
            i++;
            continue;
        }
        if (!(e = ch_str(c, v->u.s.s + start, i - start)) || ch_list_push(c, l, e))
            return oom(c);
        i += brk;
        start = i;
    }
    if (start < n && (!(e = ch_str(c, v->u.s.s + start, n - start)) || ch_list_push(c, l, e)))
        return oom(c);
    return l;
}

/* Python's str.format() with {} {0} {name} fields and {{ }}; conversions, format specs and
 * attribute or index lookups in a field fail by name. */
static ch_val *str_format(ch_ctx *c, const ch_node *nd, const ch_val *v, const argv_ *a)
{
    const char *s = v->u.s.s;
    size_t n = v->u.s.n;
    int auto_idx = 0, manual = 0;
    rb_buf b;
    ch_val *r = NULL;

    rb_buf_init(&b, (size_t)1 << 26);
    for (size_t i = 0; i < n; i++) {
        if ((s[i] == '{' || s[i] == '}') && i + 1 < n && s[i + 1] == s[i]) {
            if (rb_buf_append(&b, s + i, 1))
                goto oom;
            i++;
            continue;
        }
        if (s[i] == '}') {
            ch_fail(c, nd, "single '}' encountered in format string");
            goto out;
        }
        if (s[i] != '{') {
            if (rb_buf_append(&b, s + i, 1))
                goto oom;
            continue;
        }
        const char *close = memchr(s + i, '}', n - i);
        if (!close) {
            ch_fail(c, nd, "single '{' encountered in format string");
            goto out;
        }
        size_t fl = (size_t)(close - s) - i - 1;
        const char *field = s + i + 1;
        if (strcspn(field, "!:.[{") < fl) {
            ch_fail(c, nd, "format field '{%.*s}' is not supported (only {}, {0} and {name})",
                    (int)fl, field);
            goto out;
        }
        ch_val *x = NULL;
        if (fl == 0) {
            if (manual) {
                ch_fail(c, nd, "cannot switch from manual field numbering to automatic");
                goto out;
            }
            x = auto_idx < a->nargs ? a->args[auto_idx] : NULL;
            auto_idx++;
        } else if (strspn(field, "0123456789") >= fl) {
            long idx = strtol(field, NULL, 10);
            manual = 1;
            if (auto_idx) {
                ch_fail(c, nd, "cannot switch from automatic field numbering to manual");
                goto out;
            }
            x = idx < a->nargs ? a->args[idx] : NULL;
        } else {
            for (int k = 0; k < a->nkw && !x; k++)
                if (strlen(a->kwn[k]) == fl && !memcmp(a->kwn[k], field, fl))
                    x = a->kwv[k];
            if (!x) {
                ch_fail(c, nd, "format: no argument named '%.*s'", (int)fl, field);
                goto out;
            }
        }
        if (!x) {
            ch_fail(c, nd, "format: replacement index out of range");
            goto out;
        }
        int sr = ch_to_str(&b, x);
        if (sr) {
            ch_str_error(c, nd, sr);
            goto out;
        }
        i = (size_t)(close - s);
    }
    r = ch_str(c, b.data ? b.data : "", b.len);
    if (!r)
        goto oom;
out:
    rb_buf_release(&b);
    return r;
oom:
    rb_buf_release(&b);
    return oom(c);
}

ch_val *ch_call_method(ch_ctx *c, const ch_node *nd, ch_val *self, const char *name, ch_val **args,
                       int nargs, const char **kwn, ch_val **kwv, int nkw)
{
    argv_ a = {args, nargs, kwn, kwv, nkw};
    static const char *const none[] = {NULL};
    ch_val *x;

    if (self->k == V_STR) {
        if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
            if (check_args(c, nd, "method", name, &a, 1, none))
                return NULL;
            x = arg(&a, 0, NULL);
            if (x && x->k != V_NONE && need_str(c, nd, x, name))
                return NULL;
            return strip(c, self, x, name[0] != 'r', name[0] != 'l');
        }
        if (!strcmp(name, "split")) {
            static const char *const kw[] = {"sep", "maxsplit", NULL};
            long long max = -1;
            if (check_args(c, nd, "method", name, &a, 2, kw))
                return NULL;
            if ((x = arg(&a, 1, "maxsplit")) && need_int(c, nd, x, "split()", &max))
                return NULL;
            return split(c, nd, self, arg(&a, 0, "sep"), max);
        }
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            if (check_args(c, nd, "method", name, &a, 1, none))
                return NULL;
            int r = affix(c, nd, self, arg(&a, 0, NULL), name[0] == 'e');
            return r < 0 ? NULL : ch_bool(r);
        }
        if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
            !strcmp(name, "capitalize")) {
            if (check_args(c, nd, "method", name, &a, 0, none))
                return NULL;
            return recase(c, self,
                          name[0] == 'u'   ? CASE_UPPER
                          : name[0] == 'l' ? CASE_LOWER
                          : name[0] == 't' ? CASE_PYTITLE
                                           : CASE_CAP);
        }
        if (!strcmp(name, "replace")) {
            if (check_args(c, nd, "method", name, &a, 3, none))
                return NULL;
            return replace(c, nd, self, arg(&a, 0, NULL), arg(&a, 1, NULL), arg(&a, 2, NULL));
        }
        if (!strcmp(name, "find") || !strcmp(name, "count")) {
            if (check_args(c, nd, "method", name, &a, 1, none) ||
                need_str(c, nd, x = arg(&a, 0, NULL), name))
                return NULL;
            if (name[0] == 'c')
                return str_count(c, self, x);
            const char *hit = memmem(self->u.s.s, self->u.s.n, x->u.s.s, x->u.s.n);
            return ch_int(c, hit ? (long long)ch_utf8_len(self->u.s.s, (size_t)(hit - self->u.s.s))
                                 : -1);
        }
        if (!strcmp(name, "join")) {
            if (check_args(c, nd, "method", name, &a, 1, none))
                return NULL;
            return join(c, nd, arg(&a, 0, NULL), self, NULL);
        }
        if (!strcmp(name, "islower") || !strcmp(name, "isupper")) {
            if (check_args(c, nd, "method", name, &a, 0, none))
                return NULL;
            return ch_bool(case_test(self, name[2] == 'u'));
        }
        if (!strcmp(name, "isdigit") || !strcmp(name, "isalpha") || !strcmp(name, "isspace")) {
            int ok = self->u.s.n > 0;
            if (check_args(c, nd, "method", name, &a, 0, none))
                return NULL;
            for (size_t i = 0; i < self->u.s.n && ok;) {
                size_t i0 = i, len;
                unsigned long cp = rb_utf8_decode(self->u.s.s, self->u.s.n, &i);
                if (name[2] == 'd')
                    ok = cp >= '0' && cp <= '9';
                else if (name[2] == 'a')
                    ok = cp < 0x80 ? isalpha((int)cp) != 0 : wide_class(cp, 0);
                else
                    ok = ch_is_space_at(self->u.s.s, self->u.s.n, i0, &len);
            }
            return ch_bool(ok);
        }
        if (!strcmp(name, "splitlines")) {
            if (check_args(c, nd, "method", name, &a, 0, none))
                return NULL;
            return splitlines(c, self);
        }
        if (!strcmp(name, "format"))
            return str_format(c, nd, self, &a);
        return ch_fail(c, nd, "method str.%s() is not supported", name);
    }
    if (self->k == V_DICT) {
        if (!strcmp(name, "get")) {
            if (check_args(c, nd, "method", name, &a, 2, none))
                return NULL;
            x = arg(&a, 0, NULL);
            if (!x)
                return ch_fail(c, nd, "get() needs a key");
            ch_val *r = x->k == V_STR ? ch_dict_get(self, x->u.s.s) : NULL;
            if (r)
                return r;
            r = arg(&a, 1, NULL);
            return r ? r : &ch_none;
        }
        if (check_args(c, nd, "method", name, &a, 0, none))
            return NULL;
        return dict_items(c, self, !strcmp(name, "keys") ? 0 : !strcmp(name, "values") ? 1 : 2);
    }
    if (self->k == V_LIST && (!strcmp(name, "index") || !strcmp(name, "count"))) {
        if (check_args(c, nd, "method", name, &a, 1, none) || !(x = arg(&a, 0, NULL)))
            return ch_fail(c, nd, "%s() needs one argument", name);
        long long k = 0;
        for (size_t i = 0; i < self->u.l.n; i++)
            if (ch_equal(self->u.l.v[i], x)) {
                if (name[0] == 'i')
                    return ch_int(c, (long long)i);
                k++;
            }
        if (name[0] == 'i')
            return ch_fail(c, nd, "value is not in the list");
        return ch_int(c, k);
    }
    return ch_fail(c, nd, "method %s.%s() is not allowed: templates cannot change values",
                   ch_kind_name(self), name);
}

/* ---- printf-style formatting: 'fmt' % args ---- */

static int pad_append(rb_buf *b, const char *s, size_t n, long width, int left)
{
    size_t chars = ch_utf8_len(s, n);
    size_t pad = width > 0 && (size_t)width > chars ? (size_t)width - chars : 0;
    int bad = 0;
    for (size_t i = 0; !left && i < pad; i++)
        bad |= rb_buf_append(b, " ", 1) != RB_OK;
    bad |= rb_buf_append(b, s, n) != RB_OK;
    for (size_t i = 0; left && i < pad; i++)
        bad |= rb_buf_append(b, " ", 1) != RB_OK;
    return bad ? -1 : 0;
}

/* "%<flags><width>.<prec><len><conv>" for snprintf; width and prec < 0: none */
static void format_spec(char *spec, size_t n, const char *flags, long width, long prec,
                        const char *len, char conv)
{
    char w[24] = "", p[24] = "";
    if (width >= 0)
        snprintf(w, sizeof w, "%ld", width);
    if (prec >= 0)
        snprintf(p, sizeof p, ".%ld", prec);
    snprintf(spec, n, "%%%s%s%s%s%c", flags, w, p, len, conv);
}

ch_val *ch_percent_format(ch_ctx *c, const ch_node *nd, const ch_val *fmt, ch_val *arg)
{
    ch_val *const *args = &arg;
    size_t nargs = 1, used = 0;
    const char *f = fmt->u.s.s;
    size_t n = fmt->u.s.n;
    rb_buf b;
    ch_val *r = NULL;

    if (arg->k == V_LIST && arg->u.l.tuple) {
        args = arg->u.l.v;
        nargs = arg->u.l.n;
    } else if (arg->k == V_DICT && memchr(f, '(', n)) {
        return ch_fail(c, nd, "'%%(name)s' formatting is not supported");
    }
    rb_buf_init(&b, (size_t)1 << 26);
    for (size_t i = 0; i < n; i++) {
        if (f[i] != '%') {
            if (rb_buf_append(&b, f + i, 1))
                goto oom;
            continue;
        }
        char flags[8] = "";
        size_t nf = 0;
        long width = -1, prec = -1;
        i++;
        while (i < n && strchr("-+ 0#", f[i]) && nf < sizeof flags - 1)
            flags[nf++] = f[i++];
        if (i < n && f[i] == '*') {
            ch_fail(c, nd, "'*' widths in %% formatting are not supported");
            goto out;
        }
        /* digits past the limits below only keep the value above them (no overflow) */
        for (; i < n && f[i] >= '0' && f[i] <= '9'; i++)
            width = width > 100000 ? width : (width < 0 ? 0 : width) * 10 + (f[i] - '0');
        if (i < n && f[i] == '.') {
            prec = 0;
            for (i++; i < n && f[i] >= '0' && f[i] <= '9'; i++)
                prec = prec > 100000 ? prec : prec * 10 + (f[i] - '0');
        }
        if (width > 1000 || prec > 100) {
            ch_fail(c, nd, "%% format width or precision too large");
            goto out;
        }
        if (i >= n) {
            ch_fail(c, nd, "incomplete format");
            goto out;
        }
        char t = f[i];
        if (t == '%') {
            if (rb_buf_append(&b, "%", 1))
                goto oom;
            continue;
        }
        if (strchr(flags, '#')) {
            ch_fail(c, nd, "the '#' flag in %% formatting is not supported");
            goto out;
        }
        if (used >= nargs) {
            ch_fail(c, nd, "not enough arguments for format string");
            goto out;
        }
        ch_val *v = args[used++];
        int left = strchr(flags, '-') != NULL;
        if (t == 's' || t == 'r') {
            rb_buf tmp;
            rb_buf_init(&tmp, (size_t)1 << 26);
            int bad = t == 's' ? ch_to_str(&tmp, v) : ch_repr(&tmp, v);
            if (bad == -2) {
                rb_buf_release(&tmp);
                ch_str_error(c, nd, bad);
                goto out;
            }
            const char *ts = tmp.data ? tmp.data : "";
            size_t tn = tmp.len;
            if (!bad && prec >= 0)
                tn = ch_utf8_off(ts, tn, (size_t)prec);
            bad = bad || pad_append(&b, ts, tn, width, left);
            rb_buf_release(&tmp);
            if (bad)
                goto oom;
            continue;
        }
        char spec[32], out[1200];
        int len;
        if (strchr("diu", t) || strchr("xXo", t)) {
            long long iv;
            if (v->k == V_INT || v->k == V_BOOL)
                iv = v->k == V_INT ? v->u.i : v->u.b;
            else if (v->k == V_FLOAT && strchr("diu", t) && isfinite(v->u.f) &&
                     fabs(v->u.f) < 9.2e18)
                iv = (long long)v->u.f;
            else {
                ch_fail(c, nd, "%%%c format: a number is required, not %s", t, ch_kind_name(v));
                goto out;
            }
            if (strchr("xXo", t) && iv < 0) {
                ch_fail(c, nd, "%%%c of a negative number is not supported", t);
                goto out;
            }
            format_spec(spec, sizeof spec, flags, width, prec, "ll", t == 'u' ? 'd' : t);
            len = snprintf(out, sizeof out, spec, iv);
        } else if (strchr("eEfFgG", t)) {
            double dv;
            if (v->k == V_FLOAT || v->k == V_INT || v->k == V_BOOL)
                dv = v->k == V_FLOAT ? v->u.f : v->k == V_INT ? (double)v->u.i : v->u.b;
            else {
                ch_fail(c, nd, "%%%c format: a number is required, not %s", t, ch_kind_name(v));
                goto out;
            }
            format_spec(spec, sizeof spec, flags, width, prec < 0 ? 6 : prec, "", t);
            len = snprintf(out, sizeof out, spec, dv);
        } else {
            ch_fail(c, nd, "%%%c in %% formatting is not supported", t);
            goto out;
        }
        if (len < 0 || (size_t)len >= sizeof out || rb_buf_append(&b, out, (size_t)len))
            goto oom;
    }
    if (used < nargs && (arg->k == V_LIST && arg->u.l.tuple)) {
        ch_fail(c, nd, "not all arguments converted during string formatting");
        goto out;
    }
    if (used == 0 && !(arg->k == V_LIST && arg->u.l.tuple) && arg->k != V_DICT) {
        ch_fail(c, nd, "not all arguments converted during string formatting");
        goto out;
    }
    r = ch_str(c, b.data ? b.data : "", b.len);
    if (!r)
        goto oom;
out:
    rb_buf_release(&b);
    return r;
oom:
    rb_buf_release(&b);
    return oom(c);
}

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
        ch_val *m = arg(&a, 0, NULL);
        ch_val *s = m ? ch_stringify(c, m) : NULL;
        if (m && !s)
            return oom(c);
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
        ch_val *fmt = arg(&a, 0, NULL);
        char out[256];
        if (check_args(c, nd, "function", name, &a, 1, none) ||
            need_str(c, nd, fmt, "strftime_now()"))
            return NULL;
        size_t n = ch_strftime(c->o, fmt->u.s.s, out, sizeof out);
        if (n == 0 && fmt->u.s.n)
            return ch_fail(c, nd, "strftime_now(): the date does not fit");
        return ch_str(c, out, n);
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        ch_val *ns = ch_dict(c, name[0] == 'n' ? V_NS : V_DICT);
        if (!ns)
            return oom(c);
        if (nargs > 1 || (nargs == 1 && args[0]->k != V_DICT && args[0]->k != V_NS))
            return ch_fail(c, nd, "%s() takes keyword arguments or one dict", name);
        if (nargs)
            for (size_t i = 0; i < args[0]->u.d.n; i++)
                if (ch_dict_set(c, ns, args[0]->u.d.key[i], args[0]->u.d.v[i]))
                    return oom(c);
        for (int i = 0; i < nkw; i++)
            if (ch_dict_set(c, ns, kwn[i], kwv[i]))
                return oom(c);
        return ns;
    }
    if (!strcmp(name, "range")) {
        long long v[3] = {0, 0, 1};
        if (check_args(c, nd, "function", name, &a, 3, none))
            return NULL;
        if (nargs == 0)
            return ch_fail(c, nd, "range() needs an argument");
        for (int i = 0; i < nargs; i++)
            if (need_int(c, nd, args[i], "range()", &v[nargs == 1 ? 1 : i]))
                return NULL;
        if (v[2] == 0)
            return ch_fail(c, nd, "range() step must not be zero");
        ch_val *l = ch_list(c, 8);
        if (!l)
            return oom(c);
        for (long long i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
            if (l->u.l.n >= 100000)
                return ch_fail(c, nd, "range() over 100000 items");
            ch_val *e = ch_int(c, i);
            if (!e || ch_list_push(c, l, e))
                return oom(c);
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
    if (nargs > 0 && in_table(unary, name)) {
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
        if (!is_intlike(v) || !x || need_int(c, nd, x, "divisibleby", &n))
            return c->rc ? -1 : (ch_fail(c, nd, "test 'divisibleby' needs integers"), -1);
        if (n == 0) {
            ch_fail(c, nd, "integer division or modulo by zero");
            return -1;
        }
        return (v->k == V_INT ? v->u.i : v->u.b) % n == 0;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) { /* str(value).islower() */
        ch_val *sv = ch_stringify(c, v);
        return sv ? case_test(sv, name[0] == 'u') : -1;
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
        return dict_items(c, v, 0);
    case V_STR:
        if (!(l = ch_list(c, v->u.s.n + 1)))
            return oom(c);
        for (size_t i = 0; i < v->u.s.n;) {
            size_t i0 = i;
            rb_utf8_decode(v->u.s.s, v->u.s.n, &i);
            ch_val *e = ch_str(c, v->u.s.s + i0, i - i0);
            if (!e || ch_list_push(c, l, e))
                return oom(c);
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
    if (need_str(c, nd, attr, "attribute"))
        return NULL;
    const char *s = attr->u.s.s;
    while (item) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        char *part = ch_strndup(&c->arena, s, len);
        if (!part)
            return oom(c);
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

static ch_val *join(ch_ctx *c, const ch_node *nd, const ch_val *seq, const ch_val *sep,
                    const ch_val *attr)
{
    ch_val *l = seq ? as_list(c, nd, (ch_val *)seq) : NULL;
    if (!l)
        return c->rc ? NULL : ch_fail(c, nd, "join needs a sequence");
    if (sep && sep->k != V_STR && !(sep = ch_stringify(c, (ch_val *)sep)))
        return oom(c);
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
    return r ? r : oom(c);
}

static ch_val *lowered(ch_ctx *c, ch_val *v)
{
    return v->k == V_STR ? recase(c, v, CASE_LOWER) : v;
}

/* select/reject/selectattr/rejectattr: the items whose test (or truth) is want. */
static ch_val *select_items(ch_ctx *c, const ch_node *nd, ch_val *v, const argv_ *a, int attr,
                            int want)
{
    ch_val *l = as_list(c, nd, v), *r;
    int first = attr ? 1 : 0;
    if (!l || !(r = ch_list(c, l->u.l.n + 1)))
        return c->rc ? NULL : oom(c);
    if (attr && a->nargs < 1)
        return ch_fail(c, nd, "%s needs an attribute name", want ? "selectattr" : "rejectattr");
    ch_val *test = a->nargs > first ? a->args[first] : NULL;
    if (test && need_str(c, nd, test, "the test name"))
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
            return oom(c);
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
        return oom(c);
    for (size_t i = 0; i < l->u.l.n; i++) {
        size_t j = r->u.l.n;
        if (ch_list_push(c, r, l->u.l.v[i]))
            return oom(c);
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
        if (check_args(c, nd, "filter", name, &a, maxpos, kws_))                                   \
            return NULL;                                                                           \
    } while (0)

    if (!strcmp(name, "tojson")) {
        ARGS(1, "indent", "ensure_ascii", "sort_keys", "separators");
        ch_json_opts jo = {-1, NULL, NULL, 0, 0};
        if ((x = arg(&a, 0, "indent")) && x->k != V_NONE) {
            if (need_int(c, nd, x, "tojson indent", &n))
                return NULL;
            jo.indent = n < 0 ? 0 : n > 64 ? 64 : (int)n;
        }
        jo.ascii = (x = arg(&a, -1, "ensure_ascii")) && ch_truthy(x);
        jo.sort_keys = (x = arg(&a, -1, "sort_keys")) && ch_truthy(x);
        if ((x = arg(&a, -1, "separators")) && x->k != V_NONE) {
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
        return r ? r : oom(c);
    }
    if (!strcmp(name, "trim")) {
        ARGS(1, "chars");
        if (need_str(c, nd, v = ch_stringify(c, v), "trim"))
            return NULL;
        x = arg(&a, 0, "chars");
        if (x && x->k != V_NONE && need_str(c, nd, x, "trim"))
            return NULL;
        return strip(c, v, x, 1, 1);
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
        x = arg(&a, 1, "boolean");
        int use = v->k == V_UNDEF || (x && ch_truthy(x) && !ch_truthy(v));
        if (!use)
            return v;
        r = arg(&a, 0, "default_value");
        return r ? r : ch_str(c, "", 0);
    }
    if (!strcmp(name, "join")) {
        ARGS(2, "d", "attribute");
        return join(c, nd, v, arg(&a, 0, "d"), arg(&a, 1, "attribute"));
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
        !strcmp(name, "capitalize")) {
        ARGS(0, NULL);
        if (!(v = ch_stringify(c, v)))
            return oom(c);
        return recase(c, v,
                      name[0] == 'u'   ? CASE_UPPER
                      : name[0] == 'l' ? CASE_LOWER
                      : name[0] == 't' ? CASE_JTITLE
                                       : CASE_CAP);
    }
    if (!strcmp(name, "replace")) {
        ARGS(3, "old", "new", "count");
        if (!(v = ch_stringify(c, v)))
            return oom(c);
        return replace(c, nd, v, arg(&a, 0, "old"), arg(&a, 1, "new"), arg(&a, 2, "count"));
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
                return oom(c);
        return r ? r : oom(c);
    }
    if (!strcmp(name, "map")) {
        if (!(l = as_list(c, nd, v)) || !(r = ch_list(c, l->u.l.n + 1)))
            return c->rc ? NULL : oom(c);
        ch_val *attr = arg(&a, -1, "attribute"), *def = arg(&a, -1, "default");
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
                    return oom(c);
            }
            r->u.l.gen = 1;
            return r;
        }
        if (nargs < 1 || need_str(c, nd, args[0], "map"))
            return c->rc ? NULL : ch_fail(c, nd, "map needs a filter name or attribute=");
        ch_node fn = *nd;
        fn.name = args[0]->u.s.s;
        for (size_t i = 0; i < l->u.l.n; i++) {
            ch_val *e = ch_filter(c, &fn, l->u.l.v[i], args + 1, nargs - 1, kwn, kwv, nkw);
            if (!e || ch_list_push(c, r, e))
                return c->rc ? NULL : oom(c);
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
        if (!(r = dict_items(c, v, 2)))
            return NULL;
        r->u.l.gen = 1; /* jinja2's items filter is a generator */
        return r;
    }
    if (!strcmp(name, "indent")) {
        ARGS(3, "width", "first", "blank");
        long long w = 4;
        ch_val *first = arg(&a, 1, "first"), *blank = arg(&a, 2, "blank");
        if ((x = arg(&a, 0, "width"))) {
            if (x->k == V_STR)
                return ch_fail(c, nd, "indent with a string width is not supported");
            if (need_int(c, nd, x, "indent width", &w))
                return NULL;
        }
        if (need_str(c, nd, v, "filter 'indent'"))
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
        return r ? r : oom(c);
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
            return oom(c);
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
        return r ? r : oom(c);
    }
    if (!strcmp(name, "int")) {
        ARGS(2, "default", "base");
        ch_val *def = arg(&a, 0, "default");
        long long base = 10;
        if ((x = arg(&a, 1, "base")) && need_int(c, nd, x, "int base", &base))
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
        ch_val *def = arg(&a, 0, "default");
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
        if ((x = arg(&a, 0, "precision")) && need_int(c, nd, x, "round precision", &p))
            return NULL;
        x = arg(&a, 1, "method");
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
        ch_val *cs = arg(&a, 0, "case_sensitive"), *attr = arg(&a, -1, "attribute");
        if (!(l = as_list(c, nd, v)) || !(r = ch_list(c, l->u.l.n + 1)))
            return c->rc ? NULL : oom(c);
        ch_val *seen = ch_list(c, l->u.l.n + 1);
        if (!seen)
            return oom(c);
        for (size_t i = 0; i < l->u.l.n; i++) {
            ch_val *key = l->u.l.v[i];
            if (attr && !(key = attr_path(c, nd, key, attr)))
                return NULL;
            if (!(cs && ch_truthy(cs)) && !(key = lowered(c, key)))
                return oom(c);
            int dup = 0;
            if (ch_steps(c, nd, (long long)seen->u.l.n))
                return NULL;
            for (size_t k = 0; k < seen->u.l.n && !dup; k++)
                dup = ch_equal(seen->u.l.v[k], key);
            if (!dup && (ch_list_push(c, seen, key) || ch_list_push(c, r, l->u.l.v[i])))
                return oom(c);
        }
        r->u.l.gen = 1;
        return r;
    }
    if (!strcmp(name, "sort")) {
        ARGS(3, "reverse", "case_sensitive", "attribute");
        ch_val *rev = arg(&a, 0, "reverse"), *cs = arg(&a, 1, "case_sensitive"),
               *attr = arg(&a, 2, "attribute");
        if (!(l = as_list(c, nd, v)))
            return NULL;
        return sort_list(c, nd, l, attr, cs && ch_truthy(cs), rev && ch_truthy(rev));
    }
    if (!strcmp(name, "dictsort")) {
        ARGS(3, "case_sensitive", "by", "reverse");
        ch_val *cs = arg(&a, 0, "case_sensitive"), *by = arg(&a, 1, "by"),
               *rev = arg(&a, 2, "reverse"), *key;
        if (v->k != V_DICT && v->k != V_NS)
            return ch_fail(c, nd, "filter 'dictsort' needs a mapping, not '%s'", ch_kind_name(v));
        if (by && (by->k != V_STR || (strcmp(by->u.s.s, "key") && strcmp(by->u.s.s, "value"))))
            return ch_fail(c, nd, "dictsort: 'by' must be 'key' or 'value'");
        if (!(l = dict_items(c, v, 2)) ||
            !(key = ch_int(c, by && !strcmp(by->u.s.s, "value") ? 1 : 0)))
            return oom(c);
        return sort_list(c, nd, l, key, cs && ch_truthy(cs), rev && ch_truthy(rev));
    }
    if (!strcmp(name, "reverse")) {
        ARGS(0, NULL);
        if (v->k == V_STR) {
            char *o = ch_alloc(&c->arena, v->u.s.n + 1);
            if (!o)
                return oom(c);
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
            return c->rc ? NULL : oom(c);
        for (size_t i = l->u.l.n; i > 0; i--)
            if (ch_list_push(c, r, l->u.l.v[i - 1]))
                return oom(c);
        r->u.l.gen = !was_gen; /* reversed(list) is an iterator; a generator becomes a list */
        return r;
    }
    if (!strcmp(name, "sum")) {
        ARGS(2, "attribute", "start");
        ch_val *attr = arg(&a, 0, "attribute"), *acc = arg(&a, 1, "start");
        if (!(l = as_list(c, nd, v)))
            return NULL;
        if (!acc && !(acc = ch_int(c, 0)))
            return oom(c);
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
                return oom(c);
        }
        return acc;
    }
    if (!strcmp(name, "min") || !strcmp(name, "max")) {
        ARGS(0, "case_sensitive", "attribute");
        ch_val *cs = arg(&a, -1, "case_sensitive"), *attr = arg(&a, -1, "attribute");
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
        ch_val *fill = arg(&a, 1, "fill_with");
        if (need_int(c, nd, arg(&a, 0, "linecount"), "batch", &n))
            return NULL;
        if (n < 1)
            return ch_fail(c, nd, "batch needs a positive size");
        if (!(l = as_list(c, nd, v)) || !(r = ch_list(c, 4)))
            return c->rc ? NULL : oom(c);
        ch_val *cur = NULL;
        for (size_t i = 0; i < l->u.l.n; i++) {
            if (!cur && (!(cur = ch_list(c, (size_t)n)) || ch_list_push(c, r, cur)))
                return oom(c);
            if (ch_list_push(c, cur, l->u.l.v[i]))
                return oom(c);
            if (cur->u.l.n == (size_t)n)
                cur = NULL;
        }
        while (cur && fill && fill->k != V_NONE && cur->u.l.n < (size_t)n)
            if (ch_list_push(c, cur, fill))
                return oom(c);
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
            int w = cp == '_' || (cp < 0x80 ? isalnum((int)cp) != 0 : wide_class(cp, 1));
            words += w && !in_word;
            in_word = w;
        }
        return ch_int(c, words);
    }
    (void)none;
    return ch_fail(c, nd, "filter '%s' is not supported", name);
#undef ARGS
}
