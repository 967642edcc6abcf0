/*
 * chat_eval.c - runs a parsed template: statements (if, for, set, macro, filter blocks,
 * break/continue) and expressions, with jinja2's scoping and undefined-value rules.
 *
 * DESIGN: variables live in frames. The template's top level is the globals frame (it also
 * holds messages, bos_token, ... and the global functions); every loop iteration and every
 * macro call gets a new frame, so a `set` inside a for loop does not leak out of it, which is
 * why templates carry state out of loops in a namespace(). A name that is not found is an
 * undefined value: it prints as nothing and is false, but using it in arithmetic, or taking
 * an attribute of it, is an error, as in jinja2. Output goes to ctx->out; macro calls and
 * block sets point it at a buffer of their own for the time they run.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

#define CH_MAX_DEPTH 64
#define CH_MAX_OUT ((size_t)1 << 26)
#define CH_MAX_ARENA ((size_t)1 << 28)

enum { ST_OK = 0, ST_ERR = -1, ST_BREAK = 1, ST_CONTINUE = 2 };

ch_val *ch_fail(ch_ctx *c, const ch_node *nd, const char *fmt, ...)
{
    char msg[384];
    va_list ap;

    if (c->rc)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (nd)
        c->rc =
            rb_errf(c->err, c->errlen, RB_EINVAL, "line %d, column %d: %s", nd->line, nd->col, msg);
    else
        c->rc = rb_errf(c->err, c->errlen, RB_EINVAL, "%s", msg);
    return NULL;
}

static ch_val *nomem(ch_ctx *c)
{
    if (!c->rc) {
        c->rc = RB_ENOMEM;
        rb_errf(c->err, c->errlen, RB_ENOMEM, "out of memory while rendering the template");
    } else if (c->rc == RB_ENOMEM && c->err && c->errlen && !c->err[0]) {
        rb_errf(c->err, c->errlen, RB_ENOMEM, "out of memory while rendering the template");
    }
    return NULL;
}

int ch_undef_error(ch_ctx *c, const ch_node *nd, const ch_val *v)
{
    if (v->hint)
        ch_fail(c, nd, "%s", v->hint);
    else
        ch_fail(c, nd, "a value is undefined");
    return -1;
}

static ch_val *lookup(ch_frame *f, const char *name)
{
    for (; f; f = f->parent) {
        ch_val *v = ch_dict_get(f->vars, name);
        if (v)
            return v;
    }
    return NULL;
}

static ch_val *undef_msg(ch_ctx *c, const char *fmt, const char *a, const char *b)
{
    char buf[256];
    snprintf(buf, sizeof buf, fmt, a, b);
    ch_val *v = ch_new(c, V_UNDEF);
    if (!v)
        return nomem(c);
    v->hint = ch_strndup(&c->arena, buf, strlen(buf));
    return v;
}

static const char *obj_desc(const ch_val *v)
{
    switch (v->k) {
    case V_DICT:
        return "dict object";
    case V_LIST:
        return "list object";
    case V_STR:
        return "str object";
    case V_INT:
        return "int object";
    case V_FLOAT:
        return "float object";
    case V_BOOL:
        return "bool object";
    case V_NONE:
        return "None";
    case V_NS:
        return "Namespace object";
    default:
        return "object";
    }
}

ch_val *ch_getattr(ch_ctx *c, const ch_node *nd, ch_val *obj, const char *name)
{
    if (obj->k == V_UNDEF) {
        ch_undef_error(c, nd, obj);
        return NULL;
    }
    if (obj->k == V_DICT || obj->k == V_NS) {
        ch_val *v = ch_dict_get(obj, name);
        if (v)
            return v;
    }
    if (ch_has_method(obj, name)) {
        ch_val *f = ch_new(c, V_FUNC);
        if (!f)
            return nomem(c);
        f->u.fn.name = name;
        f->u.fn.self = obj;
        return f;
    }
    return undef_msg(c, "'%s' has no attribute '%s'", obj_desc(obj), name);
}

/* Python's slice index adjustment. */
static void slice_bounds(long long len, const ch_val *sv[3], long long *start, long long *stop,
                         long long *step)
{
    *step = sv[2] ? sv[2]->u.i : 1;
    long long lo = *step < 0 ? -1 : 0, hi = *step < 0 ? len - 1 : len;
    if (!sv[0])
        *start = *step < 0 ? hi : lo;
    else {
        *start = sv[0]->u.i;
        if (*start < 0) {
            *start += len;
            if (*start < lo)
                *start = lo;
        } else if (*start > hi)
            *start = hi;
    }
    if (!sv[1])
        *stop = *step < 0 ? lo : hi;
    else {
        *stop = sv[1]->u.i;
        if (*stop < 0) {
            *stop += len;
            if (*stop < lo)
                *stop = lo;
        } else if (*stop > hi)
            *stop = hi;
    }
}

static ch_val *do_slice(ch_ctx *c, const ch_node *nd, ch_val *obj, const ch_val *sv[3])
{
    long long start, stop, step;
    for (int i = 0; i < 3; i++) {
        if (sv[i] && sv[i]->k == V_NONE)
            sv[i] = NULL;
        if (sv[i] && sv[i]->k == V_BOOL) {
            ch_val *iv = ch_int(c, sv[i]->u.b);
            if (!iv)
                return nomem(c);
            sv[i] = iv;
        }
        if (sv[i] && sv[i]->k != V_INT)
            return ch_fail(c, nd, "slice indices must be integers or None");
    }
    if (sv[2] && sv[2]->u.i == 0)
        return ch_fail(c, nd, "slice step cannot be zero");
    if (obj->k == V_UNDEF) {
        ch_undef_error(c, nd, obj);
        return NULL;
    }
    if (obj->k == V_LIST) {
        slice_bounds((long long)obj->u.l.n, sv, &start, &stop, &step);
        ch_val *r = ch_list(c, 0);
        if (!r)
            return nomem(c);
        for (long long i = start; step > 0 ? i < stop : i > stop; i += step)
            if (ch_list_push(c, r, obj->u.l.v[i]))
                return nomem(c);
        return r;
    }
    if (obj->k == V_STR) {
        const char *s = obj->u.s.s;
        size_t n = obj->u.s.n, len = ch_utf8_len(s, n);
        slice_bounds((long long)len, sv, &start, &stop, &step);
        if (step == 1) {
            if (stop <= start)
                return ch_str(c, "", 0);
            size_t a = ch_utf8_off(s, n, (size_t)start), b = ch_utf8_off(s, n, (size_t)stop);
            return ch_str(c, s + a, b - a);
        }
        char *o = ch_alloc(&c->arena, n + 1);
        size_t on = 0;
        if (!o)
            return nomem(c);
        for (long long i = start; step > 0 ? i < stop : i > stop; i += step) {
            size_t a = ch_utf8_off(s, n, (size_t)i), b = ch_utf8_off(s, n, (size_t)i + 1);
            memcpy(o + on, s + a, b - a);
            on += b - a;
        }
        return ch_str_own(c, o, on);
    }
    return ch_fail(c, nd, "'%s' object is not subscriptable", ch_kind_name(obj));
}

ch_val *ch_getitem(ch_ctx *c, const ch_node *nd, ch_val *obj, ch_val *key)
{
    if (obj->k == V_UNDEF) {
        ch_undef_error(c, nd, obj);
        return NULL;
    }
    if ((obj->k == V_LIST || obj->k == V_STR) && (key->k == V_INT || key->k == V_BOOL)) {
        long long i = key->k == V_INT ? key->u.i : key->u.b;
        long long len = obj->k == V_LIST ? (long long)obj->u.l.n
                                         : (long long)ch_utf8_len(obj->u.s.s, obj->u.s.n);
        if (i < 0)
            i += len;
        if (i < 0 || i >= len)
            return undef_msg(c, "%s has no element %s", obj_desc(obj), "at that index");
        if (obj->k == V_LIST)
            return obj->u.l.v[i];
        size_t a = ch_utf8_off(obj->u.s.s, obj->u.s.n, (size_t)i);
        size_t b = ch_utf8_off(obj->u.s.s, obj->u.s.n, (size_t)i + 1);
        return ch_str(c, obj->u.s.s + a, b - a);
    }
    if (key->k == V_STR) {
        if (memchr(key->u.s.s, '\0', key->u.s.n))
            return undef_msg(c, "'%s' has no attribute '%s'", obj_desc(obj), "?");
        return ch_getattr(c, nd, obj, key->u.s.s);
    }
    if (obj->k == V_DICT)
        return undef_msg(c, "'%s' has no attribute '%s'", obj_desc(obj), "(non-string key)");
    return undef_msg(c, "'%s' has no element %s", obj_desc(obj), "for that key");
}

static int eval_args(ch_ctx *c, ch_frame *f, const ch_node *nd, ch_val ***args, ch_val ***kwv)
{
    *args = NULL;
    *kwv = NULL;
    if (nd->nlist) {
        *args = ch_alloc(&c->arena, (size_t)nd->nlist * sizeof(ch_val *));
        if (!*args)
            return nomem(c), -1;
        for (int i = 0; i < nd->nlist; i++)
            if (!((*args)[i] = ch_eval(c, f, nd->list[i])))
                return -1;
    }
    if (nd->nkw) {
        *kwv = ch_alloc(&c->arena, (size_t)nd->nkw * sizeof(ch_val *));
        if (!*kwv)
            return nomem(c), -1;
        for (int i = 0; i < nd->nkw; i++)
            if (!((*kwv)[i] = ch_eval(c, f, nd->kwval[i])))
                return -1;
    }
    return 0;
}

static int exec_list(ch_ctx *c, ch_frame *f, const ch_node *st);

static ch_frame *frame_new(ch_ctx *c, ch_frame *parent)
{
    ch_frame *f = ch_alloc(&c->arena, sizeof(*f));
    if (!f || !(f->vars = ch_dict(c, V_DICT)))
        return nomem(c), NULL;
    f->parent = parent;
    return f;
}

/* Runs body with out pointed at a buffer of its own; the text as a value. */
static ch_val *capture(ch_ctx *c, ch_frame *f, const ch_node *body, const ch_node *at)
{
    rb_buf b, *saved = c->out;
    rb_buf_init(&b, CH_MAX_OUT);
    c->out = &b;
    int st = exec_list(c, f, body);
    c->out = saved;
    ch_val *v = NULL;
    if (st == ST_OK)
        v = ch_str(c, b.data ? b.data : "", b.len);
    else if (st > 0)
        ch_fail(c, at, "'%s' outside of a loop", st == ST_BREAK ? "break" : "continue");
    rb_buf_release(&b);
    if (!v && !c->rc)
        nomem(c);
    return v;
}

static ch_val *call_macro(ch_ctx *c, const ch_node *nd, const ch_node *m, ch_val **args, int nargs,
                          const char **kwn, ch_val **kwv, int nkw)
{
    if (nargs > m->nnames)
        return ch_fail(c, nd, "macro '%s' takes not more than %d argument(s)", m->name, m->nnames);
    if (c->depth >= CH_MAX_DEPTH)
        return ch_fail(c, nd, "macro calls nested deeper than %d", CH_MAX_DEPTH);
    ch_frame *f = frame_new(c, c->globals);
    if (!f)
        return NULL;
    for (int k = 0; k < nkw; k++) {
        int found = 0;
        for (int p = 0; p < m->nnames; p++)
            if (!strcmp(kwn[k], m->names[p]))
                found = 1;
        if (!found)
            return ch_fail(c, nd, "macro '%s' takes no keyword argument '%s'", m->name, kwn[k]);
    }
    for (int p = 0; p < m->nnames; p++) {
        ch_val *v = p < nargs ? args[p] : NULL;
        for (int k = 0; k < nkw && !v; k++)
            if (!strcmp(kwn[k], m->names[p]))
                v = kwv[k];
        if (!v && m->list[p] && !(v = ch_eval(c, f, m->list[p])))
            return NULL;
        if (!v && !(v = undef_msg(c, "'%s' is undefined", m->names[p], "")))
            return NULL;
        if (ch_dict_set(c, f->vars, m->names[p], v))
            return nomem(c);
    }
    c->depth++;
    ch_val *r = capture(c, f, m->body, nd);
    c->depth--;
    return r;
}

ch_val *ch_call_value(ch_ctx *c, const ch_node *nd, ch_val *fn, ch_val **args, int nargs,
                      const char **kwn, ch_val **kwv, int nkw)
{
    switch (fn->k) {
    case V_MACRO:
        return call_macro(c, nd, fn->u.macro, args, nargs, kwn, kwv, nkw);
    case V_FUNC:
        if (fn->u.fn.self)
            return ch_call_method(c, nd, fn->u.fn.self, fn->u.fn.name, args, nargs, kwn, kwv, nkw);
        return ch_call_global(c, nd, fn->u.fn.name, args, nargs, kwn, kwv, nkw);
    case V_UNDEF:
        ch_undef_error(c, nd, fn);
        return NULL;
    default:
        return ch_fail(c, nd, "'%s' object is not callable", ch_kind_name(fn));
    }
}

static int is_num(const ch_val *v)
{
    return v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL;
}

static long long ival(const ch_val *v)
{
    return v->k == V_INT ? v->u.i : v->u.b;
}

static double fval(const ch_val *v)
{
    return v->k == V_FLOAT ? v->u.f : (double)ival(v);
}

static ch_val *repeat(ch_ctx *c, const ch_node *nd, ch_val *seq, long long times)
{
    if (times < 0)
        times = 0;
    if (seq->k == V_STR) {
        if (seq->u.s.n && (unsigned long long)times > CH_MAX_OUT / seq->u.s.n)
            return ch_fail(c, nd, "string repetition over the output limit");
        size_t n = seq->u.s.n * (size_t)times;
        char *o = ch_alloc(&c->arena, n + 1);
        if (!o)
            return nomem(c);
        for (long long i = 0; i < times; i++)
            memcpy(o + (size_t)i * seq->u.s.n, seq->u.s.s, seq->u.s.n);
        return ch_str_own(c, o, n);
    }
    if (seq->u.l.n && (unsigned long long)times > CH_MAX_OUT / seq->u.l.n)
        return ch_fail(c, nd, "list repetition over the limit");
    ch_val *r = ch_list(c, 0);
    if (!r)
        return nomem(c);
    for (long long i = 0; i < times; i++)
        for (size_t k = 0; k < seq->u.l.n; k++)
            if (ch_list_push(c, r, seq->u.l.v[k]))
                return nomem(c);
    return r;
}

static const char *opname(int op)
{
    static const char *n[] = {"",   "+",  "-", "*",  "/", "//", "%",  "**",    "~",
                              "==", "!=", "<", "<=", ">", ">=", "in", "not in"};
    return n[op];
}

static ch_val *binop(ch_ctx *c, const ch_node *nd, int op, ch_val *a, ch_val *b)
{
    if (op == CH_OP_CONCAT) {
        ch_val *x = ch_stringify(c, a), *y = x ? ch_stringify(c, b) : NULL;
        if (!y)
            return nomem(c);
        char *o = ch_alloc(&c->arena, x->u.s.n + y->u.s.n + 1);
        if (!o)
            return nomem(c);
        memcpy(o, x->u.s.s, x->u.s.n);
        memcpy(o + x->u.s.n, y->u.s.s, y->u.s.n);
        return ch_str_own(c, o, x->u.s.n + y->u.s.n);
    }
    if (a->k == V_UNDEF)
        return ch_undef_error(c, nd, a), NULL;
    if (b->k == V_UNDEF)
        return ch_undef_error(c, nd, b), NULL;
    if (is_num(a) && is_num(b)) {
        int fl = a->k == V_FLOAT || b->k == V_FLOAT;
        long long x = fl ? 0 : ival(a), y = fl ? 0 : ival(b), r = 0;
        double fx = fval(a), fy = fval(b);
        switch (op) {
        case CH_OP_ADD:
            if (fl)
                return ch_float(c, fx + fy);
            if (__builtin_add_overflow(x, y, &r))
                break;
            return ch_int(c, r);
        case CH_OP_SUB:
            if (fl)
                return ch_float(c, fx - fy);
            if (__builtin_sub_overflow(x, y, &r))
                break;
            return ch_int(c, r);
        case CH_OP_MUL:
            if (fl)
                return ch_float(c, fx * fy);
            if (__builtin_mul_overflow(x, y, &r))
                break;
            return ch_int(c, r);
        case CH_OP_DIV:
            if (fy == 0.0)
                return ch_fail(c, nd, "division by zero");
            return ch_float(c, fx / fy);
        case CH_OP_FLOORDIV:
        case CH_OP_MOD:
            if (fl) {
                if (fy == 0.0)
                    return ch_fail(c, nd, "float division by zero");
                double m = fmod(fx, fy);
                if (m != 0.0 && ((m < 0) != (fy < 0)))
                    m += fy;
                if (op == CH_OP_MOD)
                    return ch_float(c, m);
                return ch_float(c, floor((fx - m) / fy + 0.5));
            }
            if (y == 0)
                return ch_fail(c, nd, "integer division or modulo by zero");
            if (x == LLONG_MIN && y == -1)
                break;
            {
                long long q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    q--;
                    m += y;
                }
                return ch_int(c, op == CH_OP_MOD ? m : q);
            }
        case CH_OP_POW:
            if (!fl && y >= 0) {
                long long acc = 1;
                for (long long i = 0; i < y; i++)
                    if (__builtin_mul_overflow(acc, x, &acc))
                        return ch_fail(c, nd, "integer overflow in '**'");
                return ch_int(c, acc);
            }
            return ch_float(c, pow(fx, fy));
        }
        return ch_fail(c, nd, "integer overflow in '%s'", opname(op));
    }
    if (op == CH_OP_ADD && a->k == V_STR && b->k == V_STR) {
        char *o = ch_alloc(&c->arena, a->u.s.n + b->u.s.n + 1);
        if (!o)
            return nomem(c);
        memcpy(o, a->u.s.s, a->u.s.n);
        memcpy(o + a->u.s.n, b->u.s.s, b->u.s.n);
        return ch_str_own(c, o, a->u.s.n + b->u.s.n);
    }
    if (op == CH_OP_ADD && a->k == V_LIST && b->k == V_LIST) {
        ch_val *r = ch_list(c, a->u.l.n + b->u.l.n + 1);
        if (!r)
            return nomem(c);
        for (size_t i = 0; i < a->u.l.n; i++)
            ch_list_push(c, r, a->u.l.v[i]);
        for (size_t i = 0; i < b->u.l.n; i++)
            ch_list_push(c, r, b->u.l.v[i]);
        return r;
    }
    if (op == CH_OP_MUL && (a->k == V_STR || a->k == V_LIST) && (b->k == V_INT || b->k == V_BOOL))
        return repeat(c, nd, a, ival(b));
    if (op == CH_OP_MUL && (b->k == V_STR || b->k == V_LIST) && (a->k == V_INT || a->k == V_BOOL))
        return repeat(c, nd, b, ival(a));
    if (op == CH_OP_MOD && a->k == V_STR)
        return ch_fail(c, nd, "string formatting with '%%' is not supported");
    if (op == CH_OP_ADD && a->k == V_STR)
        return ch_fail(c, nd, "can only concatenate str (not \"%s\") to str", ch_kind_name(b));
    return ch_fail(c, nd, "unsupported operand type(s) for %s: '%s' and '%s'", opname(op),
                   ch_kind_name(a), ch_kind_name(b));
}

/* 1/0, -1 error */
static int contains(ch_ctx *c, const ch_node *nd, ch_val *item, ch_val *seq)
{
    switch (seq->k) {
    case V_UNDEF:
        return 0;
    case V_STR:
        if (item->k != V_STR) {
            ch_fail(c, nd, "'in <string>' requires string as left operand, not %s",
                    ch_kind_name(item));
            return -1;
        }
        if (item->u.s.n == 0)
            return 1;
        return memmem(seq->u.s.s, seq->u.s.n, item->u.s.s, item->u.s.n) != NULL;
    case V_LIST:
        for (size_t i = 0; i < seq->u.l.n; i++)
            if (ch_equal(item, seq->u.l.v[i]))
                return 1;
        return 0;
    case V_DICT:
    case V_NS:
        if (item->k != V_STR)
            return 0;
        for (size_t i = 0; i < seq->u.d.n; i++)
            if (strlen(seq->u.d.key[i]) == item->u.s.n &&
                !memcmp(seq->u.d.key[i], item->u.s.s, item->u.s.n))
                return 1;
        return 0;
    default:
        ch_fail(c, nd, "argument of type '%s' is not iterable", ch_kind_name(seq));
        return -1;
    }
}

static ch_val *cmpop(ch_ctx *c, const ch_node *nd, int op, ch_val *a, ch_val *b)
{
    int r;
    switch (op) {
    case CH_OP_EQ:
        return ch_bool(ch_equal(a, b));
    case CH_OP_NE:
        return ch_bool(!ch_equal(a, b));
    case CH_OP_IN:
    case CH_OP_NOTIN:
        if ((r = contains(c, nd, a, b)) < 0)
            return NULL;
        return ch_bool(op == CH_OP_IN ? r : !r);
    default:
        break;
    }
    if (a->k == V_UNDEF)
        return ch_undef_error(c, nd, a), NULL;
    if (b->k == V_UNDEF)
        return ch_undef_error(c, nd, b), NULL;
    r = ch_compare(a, b);
    if (r == -2)
        return ch_fail(c, nd, "'%s' not supported between instances of '%s' and '%s'", opname(op),
                       ch_kind_name(a), ch_kind_name(b));
    switch (op) {
    case CH_OP_LT:
        return ch_bool(r < 0);
    case CH_OP_LE:
        return ch_bool(r <= 0);
    case CH_OP_GT:
        return ch_bool(r > 0);
    default:
        return ch_bool(r >= 0);
    }
}

ch_val *ch_eval(ch_ctx *c, ch_frame *f, const ch_node *e)
{
    ch_val *a, *b, **args, **kwv;

    if (c->rc)
        return NULL;
    switch (e->k) {
    case E_LIT:
        return e->lit;
    case E_NAME:
        if ((a = lookup(f, e->name)))
            return a;
        return undef_msg(c, "'%s' is undefined", e->name, "");
    case E_ATTR:
        if (!(a = ch_eval(c, f, e->a)))
            return NULL;
        return ch_getattr(c, e, a, e->name);
    case E_ITEM:
        if (!(a = ch_eval(c, f, e->a)) || !(b = ch_eval(c, f, e->b)))
            return NULL;
        return ch_getitem(c, e, a, b);
    case E_SLICE: {
        const ch_val *sv[3] = {NULL, NULL, NULL};
        if (!(a = ch_eval(c, f, e->a)))
            return NULL;
        for (int i = 0; i < 3; i++)
            if (e->list[i] && !(sv[i] = ch_eval(c, f, e->list[i])))
                return NULL;
        return do_slice(c, e, a, sv);
    }
    case E_CALL:
        if (e->a->k == E_ATTR) { /* a method call: obj.name(...) */
            ch_val *obj = ch_eval(c, f, e->a->a);
            if (!obj)
                return NULL;
            if (!((obj->k == V_DICT || obj->k == V_NS) && ch_dict_get(obj, e->a->name)) &&
                ch_has_method(obj, e->a->name)) {
                if (eval_args(c, f, e, &args, &kwv))
                    return NULL;
                return ch_call_method(c, e, obj, e->a->name, args, e->nlist, e->kwname, kwv,
                                      e->nkw);
            }
            a = ch_getattr(c, e->a, obj, e->a->name);
        } else {
            a = ch_eval(c, f, e->a);
        }
        if (!a || eval_args(c, f, e, &args, &kwv))
            return NULL;
        if (a->k == V_UNDEF && e->a->k == E_NAME)
            return ch_fail(c, e, "'%s' is undefined", e->a->name);
        return ch_call_value(c, e, a, args, e->nlist, e->kwname, kwv, e->nkw);
    case E_FILTER:
        if (!(a = ch_eval(c, f, e->a)) || eval_args(c, f, e, &args, &kwv))
            return NULL;
        return ch_filter(c, e, a, args, e->nlist, e->kwname, kwv, e->nkw);
    case E_TEST: {
        if (!(a = ch_eval(c, f, e->a)) || eval_args(c, f, e, &args, &kwv))
            return NULL;
        int r = ch_test(c, e, e->name, a, args, e->nlist);
        if (r < 0)
            return NULL;
        return ch_bool(e->op ? !r : r);
    }
    case E_BIN:
        if (!(a = ch_eval(c, f, e->a)) || !(b = ch_eval(c, f, e->b)))
            return NULL;
        return binop(c, e, e->op, a, b);
    case E_CMP:
        if (!(a = ch_eval(c, f, e->a)) || !(b = ch_eval(c, f, e->b)))
            return NULL;
        return cmpop(c, e, e->op, a, b);
    case E_NEG:
    case E_POS:
        if (!(a = ch_eval(c, f, e->a)))
            return NULL;
        if (a->k == V_UNDEF)
            return ch_undef_error(c, e, a), NULL;
        if (!is_num(a))
            return ch_fail(c, e, "bad operand type for unary %c: '%s'", e->k == E_NEG ? '-' : '+',
                           ch_kind_name(a));
        if (e->k == E_POS)
            return a->k == V_BOOL ? ch_int(c, a->u.b) : a;
        if (a->k == V_FLOAT)
            return ch_float(c, -a->u.f);
        if (ival(a) == LLONG_MIN)
            return ch_fail(c, e, "integer overflow in unary -");
        return ch_int(c, -ival(a));
    case E_NOT:
        if (!(a = ch_eval(c, f, e->a)))
            return NULL;
        return ch_bool(!ch_truthy(a));
    case E_AND:
        if (!(a = ch_eval(c, f, e->a)))
            return NULL;
        return ch_truthy(a) ? ch_eval(c, f, e->b) : a;
    case E_OR:
        if (!(a = ch_eval(c, f, e->a)))
            return NULL;
        return ch_truthy(a) ? a : ch_eval(c, f, e->b);
    case E_COND:
        if (!(a = ch_eval(c, f, e->a)))
            return NULL;
        if (ch_truthy(a))
            return ch_eval(c, f, e->b);
        return e->c ? ch_eval(c, f, e->c) : undef_msg(c, "%s%s", "the inline if has no else", "");
    case E_LIST:
    case E_TUPLE: {
        ch_val *l = ch_list(c, e->nlist ? (size_t)e->nlist : 1);
        if (!l)
            return nomem(c);
        l->u.l.tuple = e->k == E_TUPLE;
        for (int i = 0; i < e->nlist; i++) {
            if (!(a = ch_eval(c, f, e->list[i])))
                return NULL;
            if (ch_list_push(c, l, a))
                return nomem(c);
        }
        return l;
    }
    case E_DICT: {
        ch_val *d = ch_dict(c, V_DICT);
        if (!d)
            return nomem(c);
        for (int i = 0; i + 1 < e->nlist; i += 2) {
            if (!(a = ch_eval(c, f, e->list[i])) || !(b = ch_eval(c, f, e->list[i + 1])))
                return NULL;
            if (a->k != V_STR || memchr(a->u.s.s, '\0', a->u.s.n))
                return ch_fail(c, e->list[i], "dict keys other than strings are not supported");
            if (ch_dict_set(c, d, a->u.s.s, b))
                return nomem(c);
        }
        return d;
    }
    default:
        return ch_fail(c, e, "not an expression");
    }
}

/* The items a for loop walks. */
static ch_val *iter_items(ch_ctx *c, const ch_node *nd, ch_val *v)
{
    ch_val *l;
    switch (v->k) {
    case V_LIST:
        return v;
    case V_UNDEF:
        return ch_list(c, 0);
    case V_DICT:
        if (!(l = ch_list(c, v->u.d.n + 1)))
            return nomem(c);
        for (size_t i = 0; i < v->u.d.n; i++) {
            ch_val *k = ch_str_own(c, v->u.d.key[i], strlen(v->u.d.key[i]));
            if (!k || ch_list_push(c, l, k))
                return nomem(c);
        }
        return l;
    case V_STR:
        if (!(l = ch_list(c, v->u.s.n + 1)))
            return nomem(c);
        for (size_t i = 0; i < v->u.s.n;) {
            size_t j = i + 1;
            while (j < v->u.s.n && ((unsigned char)v->u.s.s[j] & 0xC0) == 0x80)
                j++;
            ch_val *ch = ch_str_own(c, v->u.s.s + i, j - i);
            if (!ch || ch_list_push(c, l, ch))
                return nomem(c);
            i = j;
        }
        return l;
    default:
        return ch_fail(c, nd, "'%s' object is not iterable", ch_kind_name(v));
    }
}

static int bind(ch_ctx *c, const ch_node *nd, ch_frame *f, ch_val *item)
{
    if (nd->nnames == 1)
        return ch_dict_set(c, f->vars, nd->names[0], item) ? (nomem(c), -1) : 0;
    if (item->k != V_LIST || item->u.l.n != (size_t)nd->nnames) {
        if (item->k == V_LIST)
            ch_fail(c, nd, "cannot unpack %zu values into %d names", item->u.l.n, nd->nnames);
        else
            ch_fail(c, nd, "cannot unpack a '%s' into %d names", ch_kind_name(item), nd->nnames);
        return -1;
    }
    for (int i = 0; i < nd->nnames; i++)
        if (ch_dict_set(c, f->vars, nd->names[i], item->u.l.v[i]))
            return nomem(c), -1;
    return 0;
}

static int exec_for(ch_ctx *c, ch_frame *f, const ch_node *nd)
{
    ch_val *src = ch_eval(c, f, nd->a);
    ch_val *items = src ? iter_items(c, nd->a, src) : NULL;
    if (!items)
        return ST_ERR;
    if (nd->b) { /* for x in xs if cond: filter first, so loop.length counts what is kept */
        ch_val *kept = ch_list(c, items->u.l.n + 1);
        if (!kept)
            return nomem(c), ST_ERR;
        for (size_t i = 0; i < items->u.l.n; i++) {
            ch_frame *tf = frame_new(c, f);
            ch_val *cv;
            if (!tf || bind(c, nd, tf, items->u.l.v[i]) || !(cv = ch_eval(c, tf, nd->b)))
                return ST_ERR;
            if (ch_truthy(cv) && ch_list_push(c, kept, items->u.l.v[i]))
                return nomem(c), ST_ERR;
        }
        items = kept;
    }
    size_t n = items->u.l.n;
    for (size_t i = 0; i < n; i++) {
        ch_frame *lf = frame_new(c, f);
        ch_val *loop = ch_dict(c, V_DICT);
        if (!lf || !loop)
            return nomem(c), ST_ERR;
        ch_val *vals[] = {ch_int(c, (long long)i + 1),
                          ch_int(c, (long long)i),
                          ch_int(c, (long long)(n - i)),
                          ch_int(c, (long long)(n - i - 1)),
                          ch_bool(i == 0),
                          ch_bool(i + 1 == n),
                          ch_int(c, (long long)n),
                          ch_int(c, 1),
                          ch_int(c, 0)};
        static const char *keys[] = {"index", "index0", "revindex", "revindex0", "first",
                                     "last",  "length", "depth",    "depth0"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            if (!vals[k] || ch_dict_set(c, loop, keys[k], vals[k]))
                return nomem(c), ST_ERR;
        if ((i > 0 && ch_dict_set(c, loop, "previtem", items->u.l.v[i - 1])) ||
            (i + 1 < n && ch_dict_set(c, loop, "nextitem", items->u.l.v[i + 1])) ||
            ch_dict_set(c, lf->vars, "loop", loop) || bind(c, nd, lf, items->u.l.v[i]))
            return c->rc ? ST_ERR : (nomem(c), ST_ERR);
        int st = exec_list(c, lf, nd->body);
        if (st == ST_ERR)
            return st;
        if (st == ST_BREAK)
            break;
    }
    if (n == 0 && nd->orelse) {
        ch_frame *ef = frame_new(c, f);
        if (!ef)
            return ST_ERR;
        return exec_list(c, ef, nd->orelse);
    }
    return ST_OK;
}

static ch_val *apply_filter_chain(ch_ctx *c, ch_frame *f, const ch_node *chain, ch_val *text)
{
    ch_val *v = chain->a ? apply_filter_chain(c, f, chain->a, text) : text, **args, **kwv;
    if (!v || eval_args(c, f, chain, &args, &kwv))
        return NULL;
    return ch_filter(c, chain, v, args, chain->nlist, chain->kwname, kwv, chain->nkw);
}

static int exec_list(ch_ctx *c, ch_frame *f, const ch_node *st)
{
    for (; st; st = st->next) {
        ch_val *v;
        int r;
        switch (st->k) {
        case N_TEXT:
            if (rb_buf_append(c->out, st->s, st->n)) {
                ch_fail(c, st, "the rendered text is over %zu bytes", (size_t)CH_MAX_OUT);
                return ST_ERR;
            }
            break;
        case N_OUTPUT:
            if (!(v = ch_eval(c, f, st->a)))
                return ST_ERR;
            if (ch_to_str(c->out, v)) {
                ch_fail(c, st, "the rendered text is over %zu bytes", (size_t)CH_MAX_OUT);
                return ST_ERR;
            }
            break;
        case N_IF:
            if (!(v = ch_eval(c, f, st->a)))
                return ST_ERR;
            r = exec_list(c, f, ch_truthy(v) ? st->body : st->orelse);
            if (r != ST_OK)
                return r;
            break;
        case N_FOR:
            if ((r = exec_for(c, f, st)) != ST_OK)
                return r;
            break;
        case N_SET:
            if (!(v = ch_eval(c, f, st->b)))
                return ST_ERR;
            if (st->name) {
                ch_val *ns = lookup(f, st->names[0]);
                if (!ns || ns->k != V_NS) {
                    ch_fail(c, st, "cannot assign attribute '%s' on %s: not a namespace", st->name,
                            ns ? ch_kind_name(ns) : "an undefined name");
                    return ST_ERR;
                }
                if (ch_dict_set(c, ns, st->name, v))
                    return nomem(c), ST_ERR;
            } else if (st->nnames == 1) {
                if (ch_dict_set(c, f->vars, st->names[0], v))
                    return nomem(c), ST_ERR;
            } else if (bind(c, st, f, v)) {
                return ST_ERR;
            }
            break;
        case N_SETBLK:
            if (!(v = capture(c, f, st->body, st)) || ch_dict_set(c, f->vars, st->names[0], v))
                return c->rc ? ST_ERR : (nomem(c), ST_ERR);
            break;
        case N_MACRO:
            if (!(v = ch_new(c, V_MACRO)))
                return nomem(c), ST_ERR;
            v->u.macro = st;
            if (ch_dict_set(c, f->vars, st->name, v))
                return nomem(c), ST_ERR;
            break;
        case N_BREAK:
            return ST_BREAK;
        case N_CONTINUE:
            return ST_CONTINUE;
        case N_FILTBLK:
            if (!(v = capture(c, f, st->body, st)) || !(v = apply_filter_chain(c, f, st->a, v)))
                return ST_ERR;
            if (ch_to_str(c->out, v)) {
                ch_fail(c, st, "the rendered text is over %zu bytes", (size_t)CH_MAX_OUT);
                return ST_ERR;
            }
            break;
        case N_BLOCK:
            if ((r = exec_list(c, f, st->body)) != ST_OK)
                return r;
            break;
        default:
            ch_fail(c, st, "not a statement");
            return ST_ERR;
        }
    }
    return ST_OK;
}

static int set_global(ch_ctx *c, const char *name, ch_val *v)
{
    return !v || ch_dict_set(c, c->globals->vars, name, v) ? -1 : 0;
}

static int set_func(ch_ctx *c, const char *name)
{
    ch_val *f = ch_new(c, V_FUNC);
    if (!f)
        return -1;
    f->u.fn.name = name;
    return set_global(c, name, f);
}

static int set_extra(ch_ctx *c, const json_t *extra)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)extra, key, v)
    {
        char *k = ch_strndup(&c->arena, key, strlen(key));
        if (!k || set_global(c, k, ch_from_json(c, v)))
            return -1;
    }
    return 0;
}

rb_err ch_render(const chat_template *t, const json_t *messages, const chat_render_opts *o,
                 const json_t *extra, char **out, char *err, size_t errlen, int *raised)
{
    ch_ctx c;
    rb_buf b;
    chat_render_opts def = chat_render_opts_default();

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!t)
        return rb_errf(err, errlen, RB_EINVAL, "no template");
    if (!json_is_array(messages))
        return rb_errf(err, errlen, RB_EINVAL, "messages must be a JSON array");
    if (!o)
        o = &def;
    memset(&c, 0, sizeof c);
    c.arena.max = CH_MAX_ARENA;
    c.err = err;
    c.errlen = errlen;
    c.o = o;
    rb_buf_init(&b, CH_MAX_OUT);
    c.out = &b;
    const char *bos = o->bos_token ? o->bos_token : "", *eos = o->eos_token ? o->eos_token : "";
    if (!(c.globals = frame_new(&c, NULL)) ||
        set_global(&c, "messages", ch_from_json(&c, messages)) ||
        set_global(&c, "bos_token", ch_str(&c, bos, strlen(bos))) ||
        set_global(&c, "eos_token", ch_str(&c, eos, strlen(eos))) ||
        set_global(&c, "add_generation_prompt", ch_bool(o->add_generation_prompt)) ||
        set_global(&c, "tools", &ch_none) || set_func(&c, "raise_exception") ||
        set_func(&c, "strftime_now") || set_func(&c, "namespace") || set_func(&c, "range") ||
        set_func(&c, "dict") || set_extra(&c, extra)) {
        nomem(&c);
    } else {
        int st = exec_list(&c, c.globals, t->body);
        if (st > 0)
            ch_fail(&c, NULL, "'%s' outside of a loop", st == ST_BREAK ? "break" : "continue");
        else if (st < 0 && !c.rc)
            nomem(&c);
    }
    rb_err rc = c.rc;
    if (raised)
        *raised = c.raised;
    if (!rc) {
        size_t n;
        *out = b.data ? rb_buf_detach(&b, &n) : strdup("");
        if (!*out)
            rc = rb_errf(err, errlen, RB_ENOMEM, "out of memory");
    }
    rb_buf_release(&b);
    ch_arena_release(&c.arena);
    return rc;
}

rb_err chat_template_render(const chat_template *t, const json_t *messages,
                            const chat_render_opts *o, char **out, char *err, size_t errlen)
{
    return ch_render(t, messages, o, NULL, out, err, errlen, NULL);
}
