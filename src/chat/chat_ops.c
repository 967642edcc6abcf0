/*
 * chat_ops.c - the operators of expressions with Python's semantics: + - * / // % ** on numbers, +
 * and * on strings and lists, ~, comparisons and in / not in.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "chat_evaluator.h"

int chev_is_num(const ch_val *v)
{
    return v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL;
}

long long chev_ival(const ch_val *v)
{
    return v->k == V_INT ? v->u.i : v->u.b;
}

static double fval(const ch_val *v)
{
    return v->k == V_FLOAT ? v->u.f : (double)chev_ival(v);
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
            return chev_nomem(c);
        for (long long i = 0; i < times; i++)
            memcpy(o + (size_t)i * seq->u.s.n, seq->u.s.s, seq->u.s.n);
        return ch_str_own(c, o, n);
    }
    if (seq->u.l.n && (unsigned long long)times > CH_MAX_OUT / seq->u.l.n)
        return ch_fail(c, nd, "list repetition over the limit");
    ch_val *r = ch_list(c, 0);
    if (!r)
        return chev_nomem(c);
    for (long long i = 0; i < times; i++)
        for (size_t k = 0; k < seq->u.l.n; k++)
            if (ch_list_push(c, r, seq->u.l.v[k]))
                return chev_nomem(c);
    return r;
}

static const char *opname(int op)
{
    static const char *n[] = {"",   "+",  "-", "*",  "/", "//", "%",  "**",    "~",
                              "==", "!=", "<", "<=", ">", ">=", "in", "not in"};
    return n[op];
}

ch_val *chev_binop(ch_ctx *c, const ch_node *nd, int op, ch_val *a, ch_val *b)
{
    if (op == CH_OP_CONCAT) {
        ch_val *x = ch_stringify(c, a), *y = x ? ch_stringify(c, b) : NULL;
        if (!y)
            return chev_nomem(c);
        char *o = ch_alloc(&c->arena, x->u.s.n + y->u.s.n + 1);
        if (!o)
            return chev_nomem(c);
        memcpy(o, x->u.s.s, x->u.s.n);
        memcpy(o + x->u.s.n, y->u.s.s, y->u.s.n);
        return ch_str_own(c, o, x->u.s.n + y->u.s.n);
    }
    if (op == CH_OP_MOD && a->k == V_STR) /* str % args: formatting, even of undefined */
        return ch_percent_format(c, nd, a, b);
    if (a->k == V_UNDEF)
        return ch_undef_error(c, nd, a), NULL;
    if (b->k == V_UNDEF)
        return ch_undef_error(c, nd, b), NULL;
    if (chev_is_num(a) && chev_is_num(b)) {
        int fl = a->k == V_FLOAT || b->k == V_FLOAT;
        long long x = fl ? 0 : chev_ival(a), y = fl ? 0 : chev_ival(b), r = 0;
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
            return chev_nomem(c);
        memcpy(o, a->u.s.s, a->u.s.n);
        memcpy(o + a->u.s.n, b->u.s.s, b->u.s.n);
        return ch_str_own(c, o, a->u.s.n + b->u.s.n);
    }
    if ((a->k == V_LIST && a->u.l.gen) || (b->k == V_LIST && b->u.l.gen))
        return ch_fail(c, nd, "unsupported operand type(s) for %s: '%s' and '%s'", opname(op),
                       ch_kind_name(a), ch_kind_name(b));
    if (op == CH_OP_ADD && a->k == V_LIST && b->k == V_LIST) {
        ch_val *r = ch_list(c, a->u.l.n + b->u.l.n + 1);
        if (!r)
            return chev_nomem(c);
        for (size_t i = 0; i < a->u.l.n; i++)
            ch_list_push(c, r, a->u.l.v[i]);
        for (size_t i = 0; i < b->u.l.n; i++)
            ch_list_push(c, r, b->u.l.v[i]);
        return r;
    }
    if (op == CH_OP_MUL && (a->k == V_STR || a->k == V_LIST) && (b->k == V_INT || b->k == V_BOOL))
        return repeat(c, nd, a, chev_ival(b));
    if (op == CH_OP_MUL && (b->k == V_STR || b->k == V_LIST) && (a->k == V_INT || a->k == V_BOOL))
        return repeat(c, nd, b, chev_ival(a));
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
        if (ch_steps(c, nd, (long long)seq->u.l.n))
            return -1;
        for (size_t i = seq->u.l.gen ? seq->u.l.pos : 0; i < seq->u.l.n; i++)
            if (ch_equal(item, seq->u.l.v[i])) {
                if (seq->u.l.gen) /* a generator is consumed up to the match */
                    seq->u.l.pos = i + 1;
                return 1;
            }
        if (seq->u.l.gen)
            seq->u.l.pos = seq->u.l.n;
        return 0;
    case V_DICT:
    case V_NS:
        if ((item->k == V_LIST && !item->u.l.tuple) || item->k == V_DICT || item->k == V_NS) {
            ch_fail(c, nd, "unhashable type: '%s'", ch_kind_name(item));
            return -1;
        }
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

ch_val *chev_cmpop(ch_ctx *c, const ch_node *nd, int op, ch_val *a, ch_val *b)
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
