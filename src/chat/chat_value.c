/*
 * chat_value.c - the renderer's values: the arena they live in, construction, conversion
 * from jansson, truth, equality and ordering as Python defines them, and the three ways a
 * value becomes text: str() (what {{ }} prints), repr() (a string inside a printed list) and
 * json.dumps(ensure_ascii=False) (the tojson filter, as Hugging Face defines it).
 *
 * DESIGN: values are small tagged structs allocated in the render's arena and never freed
 * one by one (chat_internal.h). Strings are UTF-8 byte ranges; the few operations that count
 * characters (length, slicing, indexing) walk the code points.
 */
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

struct ch_block {
    ch_block *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
};

#define CH_BLOCK (64 * 1024)

void *ch_alloc(ch_arena *a, size_t n)
{
    n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    if (n == 0)
        n = alignof(max_align_t);
    if (a->max && a->used + n > a->max)
        return NULL;
    if (!a->head || a->head->size - a->head->used < n) {
        size_t size = n > CH_BLOCK / 4 ? n : CH_BLOCK;
        ch_block *b = malloc(sizeof(*b) + size);
        if (!b)
            return NULL;
        b->size = size;
        b->used = 0;
        if (size == n && a->head) { /* a big one goes behind the current block */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
        b->used = n;
        a->used += n;
        memset(b->data, 0, n);
        if (size == n)
            return b->data;
        return b->data;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *ch_strndup(ch_arena *a, const char *s, size_t n)
{
    char *p = ch_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void ch_arena_release(ch_arena *a)
{
    for (ch_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
    a->used = 0;
}

ch_val ch_undef = {.k = V_UNDEF};
ch_val ch_none = {.k = V_NONE};
ch_val ch_true = {.k = V_BOOL, .u.b = 1};
ch_val ch_false = {.k = V_BOOL, .u.b = 0};

ch_val *ch_new(ch_ctx *c, ch_kind k)
{
    ch_val *v = ch_alloc(&c->arena, sizeof(*v));
    if (v)
        v->k = k;
    else
        c->rc = c->rc ? c->rc : RB_ENOMEM;
    return v;
}

ch_val *ch_undef_named(ch_ctx *c, const char *name)
{
    ch_val *v = ch_new(c, V_UNDEF);
    if (v)
        v->hint = name;
    return v;
}

ch_val *ch_int(ch_ctx *c, long long i)
{
    ch_val *v = ch_new(c, V_INT);
    if (v)
        v->u.i = i;
    return v;
}

ch_val *ch_float(ch_ctx *c, double f)
{
    ch_val *v = ch_new(c, V_FLOAT);
    if (v)
        v->u.f = f;
    return v;
}

ch_val *ch_bool(int b)
{
    return b ? &ch_true : &ch_false;
}

ch_val *ch_str_own(ch_ctx *c, const char *s, size_t n)
{
    ch_val *v = ch_new(c, V_STR);
    if (v) {
        v->u.s.s = s;
        v->u.s.n = n;
    }
    return v;
}

ch_val *ch_str(ch_ctx *c, const char *s, size_t n)
{
    char *p = ch_strndup(&c->arena, s, n);
    if (!p) {
        c->rc = c->rc ? c->rc : RB_ENOMEM;
        return NULL;
    }
    return ch_str_own(c, p, n);
}

ch_val *ch_list(ch_ctx *c, size_t cap)
{
    ch_val *v = ch_new(c, V_LIST);
    if (v && cap) {
        v->u.l.v = ch_alloc(&c->arena, cap * sizeof(ch_val *));
        if (!v->u.l.v)
            return NULL;
        v->u.l.cap = cap;
    }
    return v;
}

ch_val *ch_dict(ch_ctx *c, ch_kind k)
{
    return ch_new(c, k);
}

int ch_list_push(ch_ctx *c, ch_val *l, ch_val *v)
{
    if (l->u.l.n == l->u.l.cap) {
        size_t cap = l->u.l.cap ? l->u.l.cap * 2 : 8;
        ch_val **nv = ch_alloc(&c->arena, cap * sizeof(*nv));
        if (!nv) {
            c->rc = c->rc ? c->rc : RB_ENOMEM;
            return -1;
        }
        if (l->u.l.n)
            memcpy(nv, l->u.l.v, l->u.l.n * sizeof(*nv));
        l->u.l.v = nv;
        l->u.l.cap = cap;
    }
    l->u.l.v[l->u.l.n++] = v;
    return 0;
}

ch_val *ch_dict_get(const ch_val *d, const char *key)
{
    for (size_t i = 0; i < d->u.d.n; i++)
        if (strcmp(d->u.d.key[i], key) == 0)
            return d->u.d.v[i];
    return NULL;
}

int ch_dict_set(ch_ctx *c, ch_val *d, const char *key, ch_val *v)
{
    for (size_t i = 0; i < d->u.d.n; i++)
        if (strcmp(d->u.d.key[i], key) == 0) {
            d->u.d.v[i] = v;
            return 0;
        }
    if (d->u.d.n == d->u.d.cap) {
        size_t cap = d->u.d.cap ? d->u.d.cap * 2 : 8;
        const char **nk = ch_alloc(&c->arena, cap * sizeof(*nk));
        ch_val **nv = ch_alloc(&c->arena, cap * sizeof(*nv));
        if (!nk || !nv) {
            c->rc = c->rc ? c->rc : RB_ENOMEM;
            return -1;
        }
        if (d->u.d.n) {
            memcpy(nk, d->u.d.key, d->u.d.n * sizeof(*nk));
            memcpy(nv, d->u.d.v, d->u.d.n * sizeof(*nv));
        }
        d->u.d.key = nk;
        d->u.d.v = nv;
        d->u.d.cap = cap;
    }
    d->u.d.key[d->u.d.n] = key;
    d->u.d.v[d->u.d.n++] = v;
    return 0;
}

ch_val *ch_from_json(ch_ctx *c, const json_t *j)
{
    size_t i;
    const char *key;
    json_t *x;
    ch_val *v;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        if (!(v = ch_dict(c, V_DICT)))
            return NULL;
        json_object_foreach((json_t *)j, key, x)
        {
            ch_val *e = ch_from_json(c, x);
            char *k = ch_strndup(&c->arena, key, strlen(key));
            if (!e || !k || ch_dict_set(c, v, k, e))
                return NULL;
        }
        return v;
    case JSON_ARRAY:
        if (!(v = ch_list(c, json_array_size(j) ? json_array_size(j) : 1)))
            return NULL;
        json_array_foreach(j, i, x)
        {
            ch_val *e = ch_from_json(c, x);
            if (!e || ch_list_push(c, v, e))
                return NULL;
        }
        return v;
    case JSON_STRING:
        return ch_str(c, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return ch_int(c, (long long)json_integer_value(j));
    case JSON_REAL:
        return ch_float(c, json_real_value(j));
    case JSON_TRUE:
        return &ch_true;
    case JSON_FALSE:
        return &ch_false;
    default:
        return &ch_none;
    }
}

int ch_truthy(const ch_val *v)
{
    switch (v->k) {
    case V_UNDEF:
    case V_NONE:
        return 0;
    case V_BOOL:
        return v->u.b;
    case V_INT:
        return v->u.i != 0;
    case V_FLOAT:
        return v->u.f != 0.0;
    case V_STR:
        return v->u.s.n != 0;
    case V_LIST:
        return v->u.l.n != 0;
    case V_DICT:
        return v->u.d.n != 0;
    default:
        return 1;
    }
}

static int is_num(const ch_val *v)
{
    return v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL;
}

static double num(const ch_val *v)
{
    return v->k == V_FLOAT ? v->u.f : v->k == V_INT ? (double)v->u.i : (double)v->u.b;
}

int ch_equal(const ch_val *a, const ch_val *b)
{
    if (is_num(a) && is_num(b)) {
        if (a->k != V_FLOAT && b->k != V_FLOAT)
            return (a->k == V_INT ? a->u.i : a->u.b) == (b->k == V_INT ? b->u.i : b->u.b);
        return num(a) == num(b);
    }
    if (a->k != b->k)
        return 0;
    switch (a->k) {
    case V_UNDEF:
    case V_NONE:
        return 1;
    case V_STR:
        return a->u.s.n == b->u.s.n && memcmp(a->u.s.s, b->u.s.s, a->u.s.n) == 0;
    case V_LIST:
        if (a->u.l.n != b->u.l.n || a->u.l.tuple != b->u.l.tuple)
            return 0;
        for (size_t i = 0; i < a->u.l.n; i++)
            if (!ch_equal(a->u.l.v[i], b->u.l.v[i]))
                return 0;
        return 1;
    case V_DICT:
        if (a->u.d.n != b->u.d.n)
            return 0;
        for (size_t i = 0; i < a->u.d.n; i++) {
            const ch_val *o = ch_dict_get(b, a->u.d.key[i]);
            if (!o || !ch_equal(a->u.d.v[i], o))
                return 0;
        }
        return 1;
    case V_FUNC:
        return a->u.fn.name == b->u.fn.name && a->u.fn.self == b->u.fn.self;
    case V_MACRO:
        return a->u.macro == b->u.macro;
    default:
        return a == b;
    }
}

int ch_compare(const ch_val *a, const ch_val *b)
{
    if (is_num(a) && is_num(b)) {
        if (a->k != V_FLOAT && b->k != V_FLOAT) {
            long long x = a->k == V_INT ? a->u.i : a->u.b, y = b->k == V_INT ? b->u.i : b->u.b;
            return x < y ? -1 : x > y;
        }
        double x = num(a), y = num(b);
        return x < y ? -1 : x > y;
    }
    if (a->k == V_STR && b->k == V_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int r = memcmp(a->u.s.s, b->u.s.s, n);
        if (r)
            return r < 0 ? -1 : 1;
        return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
    }
    if (a->k == V_LIST && b->k == V_LIST) {
        for (size_t i = 0; i < a->u.l.n && i < b->u.l.n; i++) {
            if (ch_equal(a->u.l.v[i], b->u.l.v[i]))
                continue;
            return ch_compare(a->u.l.v[i], b->u.l.v[i]);
        }
        return a->u.l.n < b->u.l.n ? -1 : a->u.l.n > b->u.l.n;
    }
    return -2;
}

const char *ch_kind_name(const ch_val *v)
{
    static const char *names[] = {"Undefined", "NoneType", "bool",      "int",   "float",   "str",
                                  "list",      "dict",     "Namespace", "Macro", "function"};
    return names[v->k];
}

/* Python's repr(float): the shortest digits that read back, fixed notation for exponents
 * from -4 to 15, else d.ddde+XX. */
static int float_repr(rb_buf *b, double f, int json)
{
    char buf[64], digits[32];
    int exp10 = 0, nd = 0;

    if (isnan(f))
        return rb_buf_appends(b, json ? "NaN" : "nan") ? -1 : 0;
    if (isinf(f))
        return rb_buf_appends(b,
                              f < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf"))
                   ? -1
                   : 0;
    if (f == 0.0)
        return rb_buf_appends(b, signbit(f) ? "-0.0" : "0.0") ? -1 : 0;
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    /* buf: [-]d.ddde[+-]XX */
    const char *q = buf;
    char out[64];
    size_t o = 0;
    if (*q == '-')
        out[o++] = *q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[nd++] = *q;
    exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int z = 0; z < -exp10 - 1; z++)
                out[o++] = '0';
            for (int d = 0; d < nd; d++)
                out[o++] = digits[d];
        } else {
            for (int d = 0; d <= exp10; d++)
                out[o++] = d < nd ? digits[d] : '0';
            out[o++] = '.';
            if (nd > exp10 + 1)
                for (int d = exp10 + 1; d < nd; d++)
                    out[o++] = digits[d];
            else
                out[o++] = '0';
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int d = 1; d < nd; d++)
                out[o++] = digits[d];
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    return rb_buf_appends(b, out) ? -1 : 0;
}

static int repr(rb_buf *b, const ch_val *v);

static int str_repr(rb_buf *b, const char *s, size_t n)
{
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    if (rb_buf_append(b, &q, 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char e[8];
        if (ch == '\\' || ch == (unsigned char)q)
            snprintf(e, sizeof e, "\\%c", ch);
        else if (ch == '\n')
            strcpy(e, "\\n");
        else if (ch == '\r')
            strcpy(e, "\\r");
        else if (ch == '\t')
            strcpy(e, "\\t");
        else if (ch < 0x20 || ch == 0x7f)
            snprintf(e, sizeof e, "\\x%02x", ch);
        else {
            e[0] = (char)ch;
            e[1] = '\0';
        }
        if (rb_buf_appends(b, e))
            return -1;
    }
    return rb_buf_append(b, &q, 1) ? -1 : 0;
}

static int repr(rb_buf *b, const ch_val *v)
{
    switch (v->k) {
    case V_STR:
        return str_repr(b, v->u.s.s, v->u.s.n);
    case V_UNDEF:
        return 0;
    case V_LIST:
        if (rb_buf_appends(b, v->u.l.tuple ? "(" : "["))
            return -1;
        for (size_t i = 0; i < v->u.l.n; i++)
            if ((i && rb_buf_appends(b, ", ")) || repr(b, v->u.l.v[i]))
                return -1;
        if (v->u.l.tuple && v->u.l.n == 1 && rb_buf_appends(b, ","))
            return -1;
        return rb_buf_appends(b, v->u.l.tuple ? ")" : "]") ? -1 : 0;
    case V_DICT:
        if (rb_buf_appends(b, "{"))
            return -1;
        for (size_t i = 0; i < v->u.d.n; i++)
            if ((i && rb_buf_appends(b, ", ")) ||
                str_repr(b, v->u.d.key[i], strlen(v->u.d.key[i])) || rb_buf_appends(b, ": ") ||
                repr(b, v->u.d.v[i]))
                return -1;
        return rb_buf_appends(b, "}") ? -1 : 0;
    default:
        return ch_to_str(b, v);
    }
}

int ch_to_str(rb_buf *b, const ch_val *v)
{
    switch (v->k) {
    case V_UNDEF:
        return 0;
    case V_NONE:
        return rb_buf_appends(b, "None") ? -1 : 0;
    case V_BOOL:
        return rb_buf_appends(b, v->u.b ? "True" : "False") ? -1 : 0;
    case V_INT:
        return rb_buf_appendf(b, "%lld", v->u.i) ? -1 : 0;
    case V_FLOAT:
        return float_repr(b, v->u.f, 0);
    case V_STR:
        return rb_buf_append(b, v->u.s.s, v->u.s.n) ? -1 : 0;
    case V_LIST:
    case V_DICT:
        return repr(b, v);
    case V_NS:
        return rb_buf_appends(b, "<Namespace>") ? -1 : 0;
    case V_MACRO:
        return rb_buf_appends(b, "<Macro>") ? -1 : 0;
    default:
        return rb_buf_appends(b, "<function>") ? -1 : 0;
    }
}

ch_val *ch_stringify(ch_ctx *c, ch_val *v)
{
    if (v->k == V_STR)
        return v;
    rb_buf b;
    rb_buf_init(&b, (size_t)1 << 28);
    if (ch_to_str(&b, v)) {
        rb_buf_release(&b);
        c->rc = c->rc ? c->rc : RB_ENOMEM;
        return NULL;
    }
    ch_val *s = ch_str(c, b.data ? b.data : "", b.len);
    rb_buf_release(&b);
    return s;
}

static int json_str(rb_buf *b, const char *s, size_t n)
{
    if (rb_buf_appends(b, "\""))
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *e = NULL;
        char u[8];
        switch (ch) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        default:
            if (ch < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", ch);
                e = u;
            }
        }
        if (!e)
            continue;
        if (rb_buf_append(b, s + run, i - run) || rb_buf_appends(b, e))
            return -1;
        run = i + 1;
    }
    if (rb_buf_append(b, s + run, n - run))
        return -1;
    return rb_buf_appends(b, "\"") ? -1 : 0;
}

static int newline(rb_buf *b, int indent, int level)
{
    if (rb_buf_appends(b, "\n"))
        return -1;
    for (int i = 0; i < indent * level; i++)
        if (rb_buf_appends(b, " "))
            return -1;
    return 0;
}

int ch_to_json(rb_buf *b, const ch_val *v, int indent, int level)
{
    int r;
    switch (v->k) {
    case V_NONE:
        return rb_buf_appends(b, "null") ? -1 : 0;
    case V_BOOL:
        return rb_buf_appends(b, v->u.b ? "true" : "false") ? -1 : 0;
    case V_INT:
        return rb_buf_appendf(b, "%lld", v->u.i) ? -1 : 0;
    case V_FLOAT:
        return float_repr(b, v->u.f, 1);
    case V_STR:
        return json_str(b, v->u.s.s, v->u.s.n);
    case V_LIST:
        if (v->u.l.n == 0)
            return rb_buf_appends(b, "[]") ? -1 : 0;
        if (rb_buf_appends(b, "["))
            return -1;
        for (size_t i = 0; i < v->u.l.n; i++) {
            if (i && rb_buf_appends(b, indent >= 0 ? "," : ", "))
                return -1;
            if (indent >= 0 && newline(b, indent, level + 1))
                return -1;
            if ((r = ch_to_json(b, v->u.l.v[i], indent, level + 1)))
                return r;
        }
        if (indent >= 0 && newline(b, indent, level))
            return -1;
        return rb_buf_appends(b, "]") ? -1 : 0;
    case V_DICT:
        if (v->u.d.n == 0)
            return rb_buf_appends(b, "{}") ? -1 : 0;
        if (rb_buf_appends(b, "{"))
            return -1;
        for (size_t i = 0; i < v->u.d.n; i++) {
            if (i && rb_buf_appends(b, indent >= 0 ? "," : ", "))
                return -1;
            if (indent >= 0 && newline(b, indent, level + 1))
                return -1;
            if (json_str(b, v->u.d.key[i], strlen(v->u.d.key[i])) || rb_buf_appends(b, ": "))
                return -1;
            if ((r = ch_to_json(b, v->u.d.v[i], indent, level + 1)))
                return r;
        }
        if (indent >= 0 && newline(b, indent, level))
            return -1;
        return rb_buf_appends(b, "}") ? -1 : 0;
    default:
        return -2;
    }
}

size_t ch_utf8_len(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            k++;
    return k;
}

size_t ch_utf8_off(const char *s, size_t n, size_t idx)
{
    size_t k = 0, i = 0;
    for (; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (k == idx)
                return i;
            k++;
        }
    }
    return n;
}

/* Whether the character at s[i] is whitespace for Python's str.isspace(); *len: its bytes. */
int ch_is_space_at(const char *s, size_t n, size_t i, size_t *len)
{
    const unsigned char *p = (const unsigned char *)s + i;
    size_t left = n - i;
    unsigned long cp;

    *len = 1;
    if (p[0] < 0x80)
        return (p[0] >= 0x09 && p[0] <= 0x0D) || (p[0] >= 0x1C && p[0] <= 0x20);
    if ((p[0] & 0xE0) == 0xC0 && left >= 2) {
        cp = ((unsigned long)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        *len = 2;
    } else if ((p[0] & 0xF0) == 0xE0 && left >= 3) {
        cp = ((unsigned long)(p[0] & 0x0F) << 12) | ((unsigned long)(p[1] & 0x3F) << 6) |
             (p[2] & 0x3F);
        *len = 3;
    } else {
        return 0;
    }
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
