/*
 * chat_eval.c - evaluates the expressions of a parsed template (names, attributes, items,
 * slices, calls and macros) with jinja2's scoping and undefined-value rules; the operators are
 * chat_ops.c, the statements and the render entry points chat_exec.c.
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
#include "chat_evaluator.h"

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

ch_val *chev_nomem(ch_ctx *c)
{
    return ch_nomem(c);
}

int ch_undef_error(ch_ctx *c, const ch_node *nd, const ch_val *v)
{
    if (v->hint)
        ch_fail(c, nd, "%s", v->hint);
    else
        ch_fail(c, nd, "a value is undefined");
    return -1;
}

ch_val *chev_lookup(ch_frame *f, const char *name)
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
        return chev_nomem(c);
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
    /* jinja2's obj.name looks for an attribute first (dict.items is the method even when the
     * dict has an "items" key), then for an item; obj['name'] the other way round. */
    if (ch_has_method(obj, name)) {
        ch_val *f = ch_new(c, V_FUNC);
        if (!f)
            return chev_nomem(c);
        f->u.fn.name = name;
        f->u.fn.self = obj;
        return f;
    }
    if (obj->k == V_DICT || obj->k == V_NS) {
        ch_val *v = ch_dict_get(obj, name);
        if (v)
            return v;
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
                return chev_nomem(c);
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
    if (obj->k == V_LIST && !obj->u.l.gen) {
        slice_bounds((long long)obj->u.l.n, sv, &start, &stop, &step);
        ch_val *r = ch_list(c, 0);
        if (!r)
            return chev_nomem(c);
        r->u.l.tuple = obj->u.l.tuple;
        for (long long i = start; step > 0 ? i < stop : i > stop; i += step)
            if (ch_list_push(c, r, obj->u.l.v[i]))
                return chev_nomem(c);
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
            return chev_nomem(c);
        for (long long i = start; step > 0 ? i < stop : i > stop; i += step) {
            size_t a = ch_utf8_off(s, n, (size_t)i), b = ch_utf8_off(s, n, (size_t)i + 1);
            memcpy(o + on, s + a, b - a);
            on += b - a;
        }
        return ch_str_own(c, o, on);
    }
    if (obj->k == V_DICT || obj->k == V_NS)
        return ch_fail(c, nd, "unhashable type: 'slice'");
    /* jinja2 turns the TypeError of slicing anything else into an undefined value */
    return undef_msg(c, "'%s' object is not subscriptable", ch_kind_name(obj), "");
}

ch_val *ch_getitem(ch_ctx *c, const ch_node *nd, ch_val *obj, ch_val *key)
{
    if (obj->k == V_UNDEF) {
        ch_undef_error(c, nd, obj);
        return NULL;
    }
    if (obj->k == V_LIST && obj->u.l.gen)
        return undef_msg(c, "'%s' object is not subscriptable", "generator", "");
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
        if (obj->k == V_DICT || obj->k == V_NS) {
            ch_val *v = ch_dict_get(obj, key->u.s.s);
            if (v)
                return v;
        }
        return ch_getattr(c, nd, obj, key->u.s.s);
    }
    if (obj->k == V_DICT)
        return undef_msg(c, "'%s' has no attribute '%s'", obj_desc(obj), "(non-string key)");
    return undef_msg(c, "'%s' has no element %s", obj_desc(obj), "for that key");
}

int chev_eval_args(ch_ctx *c, ch_frame *f, const ch_node *nd, ch_val ***args, ch_val ***kwv)
{
    *args = NULL;
    *kwv = NULL;
    if (nd->nlist) {
        *args = ch_alloc(&c->arena, (size_t)nd->nlist * sizeof(ch_val *));
        if (!*args)
            return chev_nomem(c), -1;
        for (int i = 0; i < nd->nlist; i++)
            if (!((*args)[i] = ch_eval(c, f, nd->list[i])))
                return -1;
    }
    if (nd->nkw) {
        *kwv = ch_alloc(&c->arena, (size_t)nd->nkw * sizeof(ch_val *));
        if (!*kwv)
            return chev_nomem(c), -1;
        for (int i = 0; i < nd->nkw; i++)
            if (!((*kwv)[i] = ch_eval(c, f, nd->kwval[i])))
                return -1;
    }
    return 0;
}

ch_frame *chev_frame_new(ch_ctx *c, ch_frame *parent)
{
    ch_frame *f = ch_alloc(&c->arena, sizeof(*f));
    if (!f || !(f->vars = ch_dict(c, V_DICT)))
        return chev_nomem(c), NULL;
    f->parent = parent;
    return f;
}

/* Runs body with out pointed at a buffer of its own; the text as a value. */
ch_val *chev_capture(ch_ctx *c, ch_frame *f, const ch_node *body, const ch_node *at)
{
    rb_buf b, *saved = c->out;
    rb_buf_init(&b, CH_MAX_OUT);
    c->out = &b;
    int st = chev_exec_list(c, f, body);
    c->out = saved;
    ch_val *v = NULL;
    if (st == ST_OK)
        v = ch_str(c, b.data ? b.data : "", b.len);
    else if (st > 0)
        ch_fail(c, at, "'%s' outside of a loop", st == ST_BREAK ? "break" : "continue");
    rb_buf_release(&b);
    if (!v && !c->rc)
        chev_nomem(c);
    return v;
}

static ch_val *call_macro(ch_ctx *c, const ch_node *nd, const ch_node *m, ch_val **args, int nargs,
                          const char **kwn, ch_val **kwv, int nkw)
{
    if (nargs > m->nnames)
        return ch_fail(c, nd, "macro '%s' takes not more than %d argument(s)", m->name, m->nnames);
    if (c->depth >= CH_MAX_DEPTH)
        return ch_fail(c, nd, "macro calls nested deeper than %d", CH_MAX_DEPTH);
    ch_frame *f = chev_frame_new(c, c->globals);
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
            return chev_nomem(c);
    }
    c->depth++;
    ch_val *r = chev_capture(c, f, m->body, nd);
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

int ch_steps(ch_ctx *c, const ch_node *nd, long long n)
{
    c->steps += n;
    if (c->steps <= CH_MAX_STEPS)
        return 0;
    ch_fail(c, nd, "the template ran over %lld steps", (long long)CH_MAX_STEPS);
    return -1;
}

static ch_val *eval(ch_ctx *c, ch_frame *f, const ch_node *e);

ch_val *ch_eval(ch_ctx *c, ch_frame *f, const ch_node *e)
{
    if (c->rc || ch_steps(c, e, 1))
        return NULL;
    if (c->eval_depth >= CH_MAX_EVAL_DEPTH)
        return ch_fail(c, e, "expressions and blocks nested deeper than %d", CH_MAX_EVAL_DEPTH);
    c->eval_depth++;
    c->at = e;
    ch_val *v = eval(c, f, e);
    c->eval_depth--;
    return v;
}

static ch_val *eval(ch_ctx *c, ch_frame *f, const ch_node *e)
{
    ch_val *a, *b, **args, **kwv;

    switch (e->k) {
    case E_LIT:
        return e->lit;
    case E_NAME:
        if ((a = chev_lookup(f, e->name)))
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
            if (ch_has_method(obj, e->a->name)) {
                if (chev_eval_args(c, f, e, &args, &kwv))
                    return NULL;
                return ch_call_method(c, e, obj, e->a->name, args, e->nlist, e->kwname, kwv,
                                      e->nkw);
            }
            a = ch_getattr(c, e->a, obj, e->a->name);
        } else {
            a = ch_eval(c, f, e->a);
        }
        if (!a || chev_eval_args(c, f, e, &args, &kwv))
            return NULL;
        if (a->k == V_UNDEF && e->a->k == E_NAME)
            return ch_fail(c, e, "'%s' is undefined", e->a->name);
        return ch_call_value(c, e, a, args, e->nlist, e->kwname, kwv, e->nkw);
    case E_FILTER:
        if (!(a = ch_eval(c, f, e->a)) || chev_eval_args(c, f, e, &args, &kwv))
            return NULL;
        return ch_filter(c, e, a, args, e->nlist, e->kwname, kwv, e->nkw);
    case E_TEST: {
        if (!(a = ch_eval(c, f, e->a)) || chev_eval_args(c, f, e, &args, &kwv))
            return NULL;
        int r = ch_test(c, e, e->name, a, args, e->nlist);
        if (r < 0)
            return NULL;
        return ch_bool(e->op ? !r : r);
    }
    case E_BIN:
        if (!(a = ch_eval(c, f, e->a)) || !(b = ch_eval(c, f, e->b)))
            return NULL;
        return chev_binop(c, e, e->op, a, b);
    case E_CMP:
        if (!(a = ch_eval(c, f, e->a)) || !(b = ch_eval(c, f, e->b)))
            return NULL;
        return chev_cmpop(c, e, e->op, a, b);
    case E_NEG:
    case E_POS:
        if (!(a = ch_eval(c, f, e->a)))
            return NULL;
        if (a->k == V_UNDEF)
            return ch_undef_error(c, e, a), NULL;
        if (!chev_is_num(a))
            return ch_fail(c, e, "bad operand type for unary %c: '%s'", e->k == E_NEG ? '-' : '+',
                           ch_kind_name(a));
        if (e->k == E_POS)
            return a->k == V_BOOL ? ch_int(c, a->u.b) : a;
        if (a->k == V_FLOAT)
            return ch_float(c, -a->u.f);
        if (chev_ival(a) == LLONG_MIN)
            return ch_fail(c, e, "integer overflow in unary -");
        return ch_int(c, -chev_ival(a));
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
            return chev_nomem(c);
        l->u.l.tuple = e->k == E_TUPLE;
        for (int i = 0; i < e->nlist; i++) {
            if (!(a = ch_eval(c, f, e->list[i])))
                return NULL;
            if (ch_list_push(c, l, a))
                return chev_nomem(c);
        }
        return l;
    }
    case E_DICT: {
        ch_val *d = ch_dict(c, V_DICT);
        if (!d)
            return chev_nomem(c);
        for (int i = 0; i + 1 < e->nlist; i += 2) {
            if (!(a = ch_eval(c, f, e->list[i])) || !(b = ch_eval(c, f, e->list[i + 1])))
                return NULL;
            if (a->k != V_STR || memchr(a->u.s.s, '\0', a->u.s.n))
                return ch_fail(c, e->list[i], "dict keys other than strings are not supported");
            if (ch_dict_set(c, d, a->u.s.s, b))
                return chev_nomem(c);
        }
        return d;
    }
    default:
        return ch_fail(c, e, "not an expression");
    }
}
