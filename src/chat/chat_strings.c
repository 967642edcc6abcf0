/*
 * chat_strings.c - the string side of the built-ins: UTF-8 and Unicode case mapping,
 * strip/split/replace, and the methods of str, dict and list values (see chat_filters.c's DESIGN).
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
#include "chat_builtins.h"

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
int chb_wide_class(unsigned long cp, int alnum)
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

static int jtitle_delim(unsigned long cp)
{
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || cp == ' ' ||
           (cp >= 9 && cp <= 13);
}

ch_val *chb_recase(ch_ctx *c, const ch_val *v, int mode)
{
    const char *s = v->u.s.s;
    size_t n = v->u.s.n, i = 0, o = 0;
    char *out = ch_alloc(&c->arena, n * 2 + 4);
    int prev_cased = 0, word_start = 1;

    if (!out)
        return chb_oom(c);
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
int chb_case_test(const ch_val *v, int upper)
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

ch_val *chb_strip(ch_ctx *c, const ch_val *v, const ch_val *chars, int left, int right)
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
        return chb_oom(c);
    if (sep && sep->k == V_NONE)
        sep = NULL;
    if (sep) {
        if (chb_need_str(c, nd, sep, "split()"))
            return NULL;
        if (sep->u.s.n == 0)
            return ch_fail(c, nd, "empty separator");
        size_t a = 0;
        const char *hit;
        while ((maxsplit < 0 || maxsplit-- > 0) &&
               (hit = memmem(s + a, n - a, sep->u.s.s, sep->u.s.n))) {
            if (!(e = ch_str(c, s + a, (size_t)(hit - s) - a)) || ch_list_push(c, l, e))
                return chb_oom(c);
            a = (size_t)(hit - s) + sep->u.s.n;
        }
        if (!(e = ch_str(c, s + a, n - a)) || ch_list_push(c, l, e))
            return chb_oom(c);
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
                return chb_oom(c);
            break;
        }
        size_t a = i;
        while (i < n && !ch_is_space_at(s, n, i, &len))
            i += len ? len : 1;
        if (!(e = ch_str(c, s + a, i - a)) || ch_list_push(c, l, e))
            return chb_oom(c);
        if (maxsplit > 0)
            maxsplit--;
    }
    return l;
}

ch_val *chb_replace(ch_ctx *c, const ch_node *nd, const ch_val *v, const ch_val *old,
                    const ch_val *new_, const ch_val *count)
{
    long long max = -1;
    if (chb_need_str(c, nd, old, "chb_replace()") || chb_need_str(c, nd, new_, "chb_replace()"))
        return NULL;
    if (count && count->k != V_NONE && chb_need_int(c, nd, count, "chb_replace()", &max))
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
    return r ? r : chb_oom(c);
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
    if (chb_need_str(c, nd, p, end ? "endswith()" : "startswith()"))
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

int chb_in_table(const char *const *t, const char *name)
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
        return chb_in_table(str_methods, name);
    case V_DICT:
        return chb_in_table(dict_methods, name);
    case V_LIST:
        return chb_in_table(list_methods, name);
    default:
        return 0;
    }
}

ch_val *chb_dict_items(ch_ctx *c, const ch_val *d, int which)
{
    ch_val *l = ch_list(c, d->u.d.n + 1);
    if (!l)
        return chb_oom(c);
    for (size_t i = 0; i < d->u.d.n; i++) {
        ch_val *k = ch_str_own(c, d->u.d.key[i], strlen(d->u.d.key[i])), *e = k;
        if (!k)
            return chb_oom(c);
        if (which == 1)
            e = d->u.d.v[i];
        else if (which == 2) {
            if (!(e = ch_list(c, 2)) || ch_list_push(c, e, k) || ch_list_push(c, e, d->u.d.v[i]))
                return chb_oom(c);
            e->u.l.tuple = 1;
        }
        if (ch_list_push(c, l, e))
            return chb_oom(c);
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

/* Python's str.splitlines(): every line break ends a line; no empty last line. */
static ch_val *splitlines(ch_ctx *c, const ch_val *v)
{
    const unsigned char *s = (const unsigned char *)v->u.s.s;
    size_t n = v->u.s.n, start = 0, i = 0;
    ch_val *l = ch_list(c, 4), *e;

    if (!l)
        return chb_oom(c);
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
            return chb_oom(c);
        i += brk;
        start = i;
    }
    if (start < n && (!(e = ch_str(c, v->u.s.s + start, n - start)) || ch_list_push(c, l, e)))
        return chb_oom(c);
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
    return chb_oom(c);
}

ch_val *ch_call_method(ch_ctx *c, const ch_node *nd, ch_val *self, const char *name, ch_val **args,
                       int nargs, const char **kwn, ch_val **kwv, int nkw)
{
    argv_ a = {args, nargs, kwn, kwv, nkw};
    static const char *const none[] = {NULL};
    ch_val *x;

    if (self->k == V_STR) {
        if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
            if (chb_check_args(c, nd, "method", name, &a, 1, none))
                return NULL;
            x = chb_arg(&a, 0, NULL);
            if (x && x->k != V_NONE && chb_need_str(c, nd, x, name))
                return NULL;
            return chb_strip(c, self, x, name[0] != 'r', name[0] != 'l');
        }
        if (!strcmp(name, "split")) {
            static const char *const kw[] = {"sep", "maxsplit", NULL};
            long long max = -1;
            if (chb_check_args(c, nd, "method", name, &a, 2, kw))
                return NULL;
            if ((x = chb_arg(&a, 1, "maxsplit")) && chb_need_int(c, nd, x, "split()", &max))
                return NULL;
            return split(c, nd, self, chb_arg(&a, 0, "sep"), max);
        }
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            if (chb_check_args(c, nd, "method", name, &a, 1, none))
                return NULL;
            int r = affix(c, nd, self, chb_arg(&a, 0, NULL), name[0] == 'e');
            return r < 0 ? NULL : ch_bool(r);
        }
        if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
            !strcmp(name, "capitalize")) {
            if (chb_check_args(c, nd, "method", name, &a, 0, none))
                return NULL;
            return chb_recase(c, self,
                              name[0] == 'u'   ? CASE_UPPER
                              : name[0] == 'l' ? CASE_LOWER
                              : name[0] == 't' ? CASE_PYTITLE
                                               : CASE_CAP);
        }
        if (!strcmp(name, "replace")) {
            if (chb_check_args(c, nd, "method", name, &a, 3, none))
                return NULL;
            return chb_replace(c, nd, self, chb_arg(&a, 0, NULL), chb_arg(&a, 1, NULL),
                               chb_arg(&a, 2, NULL));
        }
        if (!strcmp(name, "find") || !strcmp(name, "count")) {
            if (chb_check_args(c, nd, "method", name, &a, 1, none) ||
                chb_need_str(c, nd, x = chb_arg(&a, 0, NULL), name))
                return NULL;
            if (name[0] == 'c')
                return str_count(c, self, x);
            const char *hit = memmem(self->u.s.s, self->u.s.n, x->u.s.s, x->u.s.n);
            return ch_int(c, hit ? (long long)ch_utf8_len(self->u.s.s, (size_t)(hit - self->u.s.s))
                                 : -1);
        }
        if (!strcmp(name, "join")) {
            if (chb_check_args(c, nd, "method", name, &a, 1, none))
                return NULL;
            return chb_join(c, nd, chb_arg(&a, 0, NULL), self, NULL);
        }
        if (!strcmp(name, "islower") || !strcmp(name, "isupper")) {
            if (chb_check_args(c, nd, "method", name, &a, 0, none))
                return NULL;
            return ch_bool(chb_case_test(self, name[2] == 'u'));
        }
        if (!strcmp(name, "isdigit") || !strcmp(name, "isalpha") || !strcmp(name, "isspace")) {
            int ok = self->u.s.n > 0;
            if (chb_check_args(c, nd, "method", name, &a, 0, none))
                return NULL;
            for (size_t i = 0; i < self->u.s.n && ok;) {
                size_t i0 = i, len;
                unsigned long cp = rb_utf8_decode(self->u.s.s, self->u.s.n, &i);
                if (name[2] == 'd')
                    ok = cp >= '0' && cp <= '9';
                else if (name[2] == 'a')
                    ok = cp < 0x80 ? isalpha((int)cp) != 0 : chb_wide_class(cp, 0);
                else
                    ok = ch_is_space_at(self->u.s.s, self->u.s.n, i0, &len);
            }
            return ch_bool(ok);
        }
        if (!strcmp(name, "splitlines")) {
            if (chb_check_args(c, nd, "method", name, &a, 0, none))
                return NULL;
            return splitlines(c, self);
        }
        if (!strcmp(name, "format"))
            return str_format(c, nd, self, &a);
        return ch_fail(c, nd, "method str.%s() is not supported", name);
    }
    if (self->k == V_DICT) {
        if (!strcmp(name, "get")) {
            if (chb_check_args(c, nd, "method", name, &a, 2, none))
                return NULL;
            x = chb_arg(&a, 0, NULL);
            if (!x)
                return ch_fail(c, nd, "get() needs a key");
            ch_val *r = x->k == V_STR ? ch_dict_get(self, x->u.s.s) : NULL;
            if (r)
                return r;
            r = chb_arg(&a, 1, NULL);
            return r ? r : &ch_none;
        }
        if (chb_check_args(c, nd, "method", name, &a, 0, none))
            return NULL;
        return chb_dict_items(c, self, !strcmp(name, "keys") ? 0 : !strcmp(name, "values") ? 1 : 2);
    }
    if (self->k == V_LIST && (!strcmp(name, "index") || !strcmp(name, "count"))) {
        if (chb_check_args(c, nd, "method", name, &a, 1, none) || !(x = chb_arg(&a, 0, NULL)))
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
