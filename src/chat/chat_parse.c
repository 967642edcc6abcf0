/*
 * chat_parse.c - Jinja source to syntax tree: chat_template_parse, and the recursive-descent
 * expression parser with jinja2's operator precedence. The lexer (text, {{ }}, {% %}, {# #},
 * the whitespace rules of trim_blocks, lstrip_blocks and the - / + signs) is chat_lex.c, the
 * statements chat_stmt.c; their shared types are in chat_parser.h.
 *
 * DESIGN: the lexer turns the whole source into one token array first, as jinja2 does: text
 * tokens, a begin token for each tag, the tokens inside it, and an end token. Whitespace
 * control is a second pass over that array, because trimming a text needs both the tag
 * before it (its closing sign, trim_blocks) and the tag after it (its opening sign,
 * lstrip_blocks). The parser then reads statements and expressions from the array. Every
 * node keeps the line and column of its first token, so evaluation errors can name them.
 *
 * Precedence, lowest first (jinja2's parser): inline if-else; or; and; not; comparisons and
 * in / not in; + -; ~; * / // %; **; unary - +; primaries with . [] () and then | filters
 * and `is` tests, so `'a' + x | trim` is `'a' + (x | trim)`.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "chat_parser.h"
#include "rb_utf8.h"

/* ---- parser ---- */

tok *chp_cur(parser *ps)
{
    return &ps->t[ps->p];
}

ch_node *chp_node(parser *ps, ch_nkind k, const tok *at)
{
    ch_node *nd = ch_alloc(ps->a, sizeof(*nd));
    if (!nd) {
        chp_perr(ps, at->line, at->col, "out of memory");
        return NULL;
    }
    nd->k = k;
    nd->line = at->line;
    nd->col = at->col;
    return nd;
}

static const char *describe(const tok *t, char *buf, size_t n)
{
    switch (t->k) {
    case T_END:
        return t->tag == T_VAR ? "end of print statement" : "end of statement block";
    case T_EOF:
        return "end of template";
    case T_NAME:
        snprintf(buf, n, "'%s'", t->s);
        return buf;
    case T_STR:
        return "string";
    case T_INT:
        return "integer";
    case T_FLOAT:
        return "float";
    case T_OP:
        snprintf(buf, n, "'%s'", t->op);
        return buf;
    default:
        return "template text";
    }
}

void chp_unexpected(parser *ps, const char *expected)
{
    char b[64];
    tok *t = chp_cur(ps);
    chp_perr(ps, t->line, t->col, "expected %s, got %s", expected, describe(t, b, sizeof b));
}

int chp_is_op(parser *ps, const char *op)
{
    return chp_cur(ps)->k == T_OP && strcmp(chp_cur(ps)->op, op) == 0;
}

int chp_is_name(parser *ps, const char *name)
{
    return chp_cur(ps)->k == T_NAME && strcmp(chp_cur(ps)->s, name) == 0;
}

int chp_expect_op(parser *ps, const char *op)
{
    if (!chp_is_op(ps, op)) {
        char e[16];
        snprintf(e, sizeof e, "'%s'", op);
        chp_unexpected(ps, e);
        return -1;
    }
    ps->p++;
    return 0;
}

int chp_expect_end(parser *ps)
{
    if (chp_cur(ps)->k != T_END || chp_cur(ps)->tag != T_BLOCK) {
        chp_unexpected(ps, "end of statement block");
        return -1;
    }
    ps->p++;
    return 0;
}

const char *chp_expect_name(parser *ps)
{
    if (chp_cur(ps)->k != T_NAME) {
        chp_unexpected(ps, "a name");
        return NULL;
    }
    return ps->t[ps->p++].s;
}

/* Growable node arrays in the arena (old copies are left behind; templates are small). */
static int grow(parser *ps, void **arr, int n, size_t elem)
{
    if (n != 0 && (n < 4 || (n & (n - 1))))
        return 0; /* capacity 4, then doubled at each power of two */
    size_t cap = n ? (size_t)n * 2 : 4;
    void *na = ch_alloc(ps->a, cap * elem);
    if (!na) {
        chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col, "out of memory");
        return -1;
    }
    if (n)
        memcpy(na, *arr, (size_t)n * elem);
    *arr = na;
    return 0;
}

int chp_add_arg(parser *ps, ch_node *nd, ch_node *arg)
{
    if (grow(ps, (void **)&nd->list, nd->nlist, sizeof(ch_node *)))
        return -1;
    nd->list[nd->nlist++] = arg;
    return 0;
}

static int add_kw(parser *ps, ch_node *nd, const char *name, ch_node *val)
{
    if (grow(ps, (void **)&nd->kwname, nd->nkw, sizeof(char *)) ||
        grow(ps, (void **)&nd->kwval, nd->nkw, sizeof(ch_node *)))
        return -1;
    nd->kwname[nd->nkw] = name;
    nd->kwval[nd->nkw++] = val;
    return 0;
}

int chp_add_name(parser *ps, ch_node *nd, const char *name)
{
    if (grow(ps, (void **)&nd->names, nd->nnames, sizeof(char *)))
        return -1;
    nd->names[nd->nnames++] = name;
    return 0;
}

static ch_node *parse_unary(parser *ps, int with_filter);

/* (args, kw=...) after the '(' */
int chp_parse_args(parser *ps, ch_node *nd)
{
    ps->p++; /* ( */
    while (!chp_is_op(ps, ")")) {
        if (chp_cur(ps)->k == T_NAME && ps->t[ps->p + 1].k == T_OP &&
            strcmp(ps->t[ps->p + 1].op, "=") == 0) {
            const char *kw = chp_cur(ps)->s;
            ps->p += 2;
            ch_node *v = chp_parse_expr(ps, 1);
            if (!v || add_kw(ps, nd, kw, v))
                return -1;
        } else {
            if (chp_is_op(ps, "*")) {
                chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col,
                         "*args in calls are not supported");
                return -1;
            }
            if (nd->nkw) {
                chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col,
                         "positional argument after keyword argument");
                return -1;
            }
            ch_node *v = chp_parse_expr(ps, 1);
            if (!v || chp_add_arg(ps, nd, v))
                return -1;
        }
        if (chp_is_op(ps, ","))
            ps->p++;
        else if (!chp_is_op(ps, ")")) {
            chp_unexpected(ps, "',' or ')'");
            return -1;
        }
    }
    ps->p++;
    return 0;
}

static ch_node *lit(parser *ps, const tok *at, ch_val *v)
{
    ch_node *nd = chp_node(ps, E_LIT, at);
    if (nd)
        nd->lit = v;
    return nd;
}

static ch_val *lit_val(parser *ps, ch_kind k)
{
    ch_val *v = ch_alloc(ps->a, sizeof(*v));
    if (!v)
        chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col, "out of memory");
    else
        v->k = k;
    return v;
}

static ch_node *parse_primary(parser *ps)
{
    tok *t = chp_cur(ps);
    ch_node *nd = NULL;
    ch_val *v;

    switch (t->k) {
    case T_NAME:
        ps->p++;
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
            return lit(ps, t, &ch_true);
        if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
            return lit(ps, t, &ch_false);
        if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
            return lit(ps, t, &ch_none);
        nd = chp_node(ps, E_NAME, t);
        if (nd)
            nd->name = t->s;
        return nd;
    case T_STR: {
        /* Adjacent string literals join, as in Python. */
        size_t n = 0, p0 = ps->p;
        while (chp_cur(ps)->k == T_STR)
            n += ps->t[ps->p++].n;
        char *s = ch_alloc(ps->a, n + 1);
        if (!(v = lit_val(ps, V_STR)) || !s)
            return NULL;
        n = 0;
        for (size_t q = p0; q < ps->p; q++) {
            memcpy(s + n, ps->t[q].s, ps->t[q].n);
            n += ps->t[q].n;
        }
        v->u.s.s = s;
        v->u.s.n = n;
        return lit(ps, t, v);
    }
    case T_INT:
        ps->p++;
        if (!(v = lit_val(ps, V_INT)))
            return NULL;
        v->u.i = t->i;
        return lit(ps, t, v);
    case T_FLOAT:
        ps->p++;
        if (!(v = lit_val(ps, V_FLOAT)))
            return NULL;
        v->u.f = t->f;
        return lit(ps, t, v);
    case T_OP:
        if (chp_is_op(ps, "(")) {
            ps->p++;
            if (chp_is_op(ps, ")")) {
                ps->p++;
                return chp_node(ps, E_TUPLE, t);
            }
            ch_node *e = chp_parse_expr(ps, 1);
            if (!e)
                return NULL;
            if (chp_is_op(ps, ",")) {
                nd = chp_node(ps, E_TUPLE, t);
                if (!nd || chp_add_arg(ps, nd, e))
                    return NULL;
                while (chp_is_op(ps, ",")) {
                    ps->p++;
                    if (chp_is_op(ps, ")"))
                        break;
                    if (!(e = chp_parse_expr(ps, 1)) || chp_add_arg(ps, nd, e))
                        return NULL;
                }
                e = nd;
            }
            return chp_expect_op(ps, ")") ? NULL : e;
        }
        if (chp_is_op(ps, "[")) {
            ps->p++;
            if (!(nd = chp_node(ps, E_LIST, t)))
                return NULL;
            while (!chp_is_op(ps, "]")) {
                ch_node *e = chp_parse_expr(ps, 1);
                if (!e || chp_add_arg(ps, nd, e))
                    return NULL;
                if (chp_is_op(ps, ","))
                    ps->p++;
                else if (!chp_is_op(ps, "]")) {
                    chp_unexpected(ps, "',' or ']'");
                    return NULL;
                }
            }
            ps->p++;
            return nd;
        }
        if (chp_is_op(ps, "{")) {
            ps->p++;
            if (!(nd = chp_node(ps, E_DICT, t)))
                return NULL;
            while (!chp_is_op(ps, "}")) {
                ch_node *k = chp_parse_expr(ps, 1);
                if (!k || chp_expect_op(ps, ":"))
                    return NULL;
                ch_node *e = chp_parse_expr(ps, 1);
                if (!e || chp_add_arg(ps, nd, k) || chp_add_arg(ps, nd, e))
                    return NULL;
                if (chp_is_op(ps, ","))
                    ps->p++;
                else if (!chp_is_op(ps, "}")) {
                    chp_unexpected(ps, "',' or '}'");
                    return NULL;
                }
            }
            ps->p++;
            return nd;
        }
        break;
    default:
        break;
    }
    chp_unexpected(ps, "an expression");
    return NULL;
}

static ch_node *parse_postfix(parser *ps, ch_node *e)
{
    while (e) {
        tok *t = chp_cur(ps);
        if (chp_is_op(ps, ".")) {
            ps->p++;
            if (chp_cur(ps)->k == T_INT) {
                ch_val *v = lit_val(ps, V_INT);
                ch_node *nd = chp_node(ps, E_ITEM, t);
                if (!v || !nd)
                    return NULL;
                v->u.i = chp_cur(ps)->i;
                ps->p++;
                nd->a = e;
                nd->b = lit(ps, t, v);
                e = nd;
                continue;
            }
            const char *name = chp_expect_name(ps);
            ch_node *nd = chp_node(ps, E_ATTR, t);
            if (!name || !nd)
                return NULL;
            nd->a = e;
            nd->name = name;
            e = nd;
        } else if (chp_is_op(ps, "[")) {
            ps->p++;
            ch_node *parts[3] = {NULL, NULL, NULL};
            int np = 0, slice = 0;
            for (;;) {
                if (!chp_is_op(ps, ":") && !chp_is_op(ps, "]")) {
                    if (!(parts[np] = chp_parse_expr(ps, 1)))
                        return NULL;
                }
                if (chp_is_op(ps, ":") && np < 2) {
                    slice = 1;
                    np++;
                    ps->p++;
                    continue;
                }
                break;
            }
            if (chp_expect_op(ps, "]"))
                return NULL;
            ch_node *nd = chp_node(ps, slice ? E_SLICE : E_ITEM, t);
            if (!nd)
                return NULL;
            nd->a = e;
            if (slice) {
                for (int q = 0; q < 3; q++)
                    if (chp_add_arg(ps, nd, parts[q]))
                        return NULL;
            } else {
                if (!parts[0]) {
                    chp_unexpected(ps, "an expression");
                    return NULL;
                }
                nd->b = parts[0];
            }
            e = nd;
        } else if (chp_is_op(ps, "(")) {
            ch_node *nd = chp_node(ps, E_CALL, t);
            if (!nd)
                return NULL;
            nd->a = e;
            if (chp_parse_args(ps, nd))
                return NULL;
            e = nd;
        } else {
            break;
        }
    }
    return e;
}

static ch_node *parse_filter_expr(parser *ps, ch_node *e)
{
    while (e) {
        tok *t = chp_cur(ps);
        if (chp_is_op(ps, "|")) {
            ps->p++;
            ch_node *nd = chp_node(ps, E_FILTER, chp_cur(ps));
            const char *name = chp_expect_name(ps);
            if (!nd || !name)
                return NULL;
            /* a dotted filter name (jinja2 allows it) is not used by templates */
            nd->name = name;
            nd->a = e;
            if (chp_is_op(ps, "(") && chp_parse_args(ps, nd))
                return NULL;
            e = nd;
        } else if (chp_is_name(ps, "is")) {
            ps->p++;
            ch_node *nd = chp_node(ps, E_TEST, t);
            if (!nd)
                return NULL;
            if (chp_is_name(ps, "not")) {
                nd->op = 1;
                ps->p++;
            }
            const char *name = chp_expect_name(ps);
            if (!name)
                return NULL;
            nd->name = name;
            nd->a = e;
            tok *c = chp_cur(ps);
            if (chp_is_op(ps, "(")) {
                if (chp_parse_args(ps, nd))
                    return NULL;
            } else if ((c->k == T_NAME || c->k == T_STR || c->k == T_INT || c->k == T_FLOAT ||
                        chp_is_op(ps, "[") || chp_is_op(ps, "{")) &&
                       !chp_is_name(ps, "else") && !chp_is_name(ps, "or") &&
                       !chp_is_name(ps, "and")) {
                if (chp_is_name(ps, "is")) {
                    chp_perr(ps, c->line, c->col, "you cannot chain multiple tests with is");
                    return NULL;
                }
                ch_node *arg = parse_postfix(ps, parse_primary(ps));
                if (!arg || chp_add_arg(ps, nd, arg))
                    return NULL;
            }
            e = nd;
        } else if (chp_is_op(ps, "(")) {
            ch_node *nd = chp_node(ps, E_CALL, t);
            if (!nd)
                return NULL;
            nd->a = e;
            if (chp_parse_args(ps, nd))
                return NULL;
            e = nd;
        } else {
            break;
        }
    }
    return e;
}

static ch_node *parse_unary_(parser *ps, int with_filter);
static ch_node *parse_unary(parser *ps, int with_filter)
{
    if (ps->depth >= CH_MAX_PARSE_DEPTH) {
        chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col, "nested deeper than %d",
                 CH_MAX_PARSE_DEPTH);
        return NULL;
    }
    ps->depth++;
    ch_node *nd = parse_unary_(ps, with_filter);
    ps->depth--;
    return nd;
}

static ch_node *parse_unary_(parser *ps, int with_filter)
{
    tok *t = chp_cur(ps);
    ch_node *e;

    if (chp_is_op(ps, "-") || chp_is_op(ps, "+")) {
        ps->p++;
        ch_node *inner = parse_unary(ps, 0);
        if (!inner || !(e = chp_node(ps, t->op[0] == '-' ? E_NEG : E_POS, t)))
            return NULL;
        e->a = inner;
    } else {
        e = parse_postfix(ps, parse_primary(ps));
    }
    return with_filter ? parse_filter_expr(ps, e) : e;
}

static ch_node *binary(parser *ps, const tok *at, int op, ch_node *a, ch_node *b, ch_nkind k)
{
    if (!a || !b)
        return NULL;
    ch_node *nd = chp_node(ps, k, at);
    if (nd) {
        nd->op = op;
        nd->a = a;
        nd->b = b;
    }
    return nd;
}

static ch_node *parse_pow(parser *ps)
{
    ch_node *e = parse_unary(ps, 1);
    while (e && chp_is_op(ps, "**")) {
        tok *t = chp_cur(ps);
        ps->p++;
        e = binary(ps, t, CH_OP_POW, e, parse_unary(ps, 1), E_BIN);
    }
    return e;
}

static ch_node *parse_math2(parser *ps)
{
    ch_node *e = parse_pow(ps);
    for (;;) {
        int op = chp_is_op(ps, "*")    ? CH_OP_MUL
                 : chp_is_op(ps, "/")  ? CH_OP_DIV
                 : chp_is_op(ps, "//") ? CH_OP_FLOORDIV
                 : chp_is_op(ps, "%")  ? CH_OP_MOD
                                       : 0;
        if (!e || !op)
            return e;
        tok *t = chp_cur(ps);
        ps->p++;
        e = binary(ps, t, op, e, parse_pow(ps), E_BIN);
    }
}

static ch_node *parse_concat(parser *ps)
{
    ch_node *e = parse_math2(ps);
    while (e && chp_is_op(ps, "~")) {
        tok *t = chp_cur(ps);
        ps->p++;
        e = binary(ps, t, CH_OP_CONCAT, e, parse_math2(ps), E_BIN);
    }
    return e;
}

static ch_node *parse_math1(parser *ps)
{
    ch_node *e = parse_concat(ps);
    for (;;) {
        int op = chp_is_op(ps, "+") ? CH_OP_ADD : chp_is_op(ps, "-") ? CH_OP_SUB : 0;
        if (!e || !op)
            return e;
        tok *t = chp_cur(ps);
        ps->p++;
        e = binary(ps, t, op, e, parse_concat(ps), E_BIN);
    }
}

static ch_node *parse_compare(parser *ps)
{
    ch_node *e = parse_math1(ps);
    ch_node *chain = NULL; /* a < b < c is (a < b) and (b < c) */
    for (;;) {
        tok *t = chp_cur(ps);
        int op = chp_is_op(ps, "==")     ? CH_OP_EQ
                 : chp_is_op(ps, "!=")   ? CH_OP_NE
                 : chp_is_op(ps, "<")    ? CH_OP_LT
                 : chp_is_op(ps, "<=")   ? CH_OP_LE
                 : chp_is_op(ps, ">")    ? CH_OP_GT
                 : chp_is_op(ps, ">=")   ? CH_OP_GE
                 : chp_is_name(ps, "in") ? CH_OP_IN
                                         : 0;
        if (!op && chp_is_name(ps, "not") && ps->t[ps->p + 1].k == T_NAME &&
            strcmp(ps->t[ps->p + 1].s, "in") == 0) {
            op = CH_OP_NOTIN;
            ps->p++;
        }
        if (!e || !op)
            break;
        ps->p++;
        ch_node *left = chain ? chain->b : e;
        ch_node *c = binary(ps, t, op, left, parse_math1(ps), E_CMP);
        if (!c)
            return NULL;
        e = chain ? binary(ps, t, 0, e, c, E_AND) : c;
        chain = c;
    }
    return e;
}

static ch_node *parse_not_(parser *ps);
static ch_node *parse_not(parser *ps)
{
    if (ps->depth >= CH_MAX_PARSE_DEPTH) {
        chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col, "nested deeper than %d",
                 CH_MAX_PARSE_DEPTH);
        return NULL;
    }
    ps->depth++;
    ch_node *nd = parse_not_(ps);
    ps->depth--;
    return nd;
}

static ch_node *parse_not_(parser *ps)
{
    if (chp_is_name(ps, "not")) {
        tok *t = chp_cur(ps);
        ps->p++;
        ch_node *a = parse_not(ps);
        ch_node *nd = a ? chp_node(ps, E_NOT, t) : NULL;
        if (nd)
            nd->a = a;
        return nd;
    }
    return parse_compare(ps);
}

static ch_node *parse_and(parser *ps)
{
    ch_node *e = parse_not(ps);
    while (e && chp_is_name(ps, "and")) {
        tok *t = chp_cur(ps);
        ps->p++;
        e = binary(ps, t, 0, e, parse_not(ps), E_AND);
    }
    return e;
}

static ch_node *parse_or(parser *ps)
{
    ch_node *e = parse_and(ps);
    while (e && chp_is_name(ps, "or")) {
        tok *t = chp_cur(ps);
        ps->p++;
        e = binary(ps, t, 0, e, parse_and(ps), E_OR);
    }
    return e;
}

static ch_node *parse_expr_(parser *ps, int with_cond);
ch_node *chp_parse_expr(parser *ps, int with_cond)
{
    if (ps->depth >= CH_MAX_PARSE_DEPTH) {
        chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col, "nested deeper than %d",
                 CH_MAX_PARSE_DEPTH);
        return NULL;
    }
    ps->depth++;
    ch_node *nd = parse_expr_(ps, with_cond);
    ps->depth--;
    return nd;
}

static ch_node *parse_expr_(parser *ps, int with_cond)
{
    ch_node *e = parse_or(ps);
    while (with_cond && e && chp_is_name(ps, "if")) {
        tok *t = chp_cur(ps);
        ps->p++;
        ch_node *nd = chp_node(ps, E_COND, t);
        if (!nd || !(nd->a = parse_or(ps)))
            return NULL;
        nd->b = e;
        if (chp_is_name(ps, "else")) {
            ps->p++;
            if (!(nd->c = chp_parse_expr(ps, 1)))
                return NULL;
        }
        e = nd;
    }
    return e;
}

/* expr or expr, expr, ... (a tuple) */
ch_node *chp_parse_tuple(parser *ps, int with_cond)
{
    tok *t = chp_cur(ps);
    ch_node *e = chp_parse_expr(ps, with_cond);
    if (!e || !chp_is_op(ps, ","))
        return e;
    ch_node *nd = chp_node(ps, E_TUPLE, t);
    if (!nd || chp_add_arg(ps, nd, e))
        return NULL;
    while (chp_is_op(ps, ",")) {
        ps->p++;
        if (chp_cur(ps)->k == T_END)
            break;
        if (!(e = chp_parse_expr(ps, with_cond)) || chp_add_arg(ps, nd, e))
            return NULL;
    }
    return nd;
}

rb_err chat_template_parse(const char *src, size_t len, chat_template **out, char *err,
                           size_t errlen)
{
    chat_template *t = calloc(1, sizeof(*t));
    parser ps;
    rb_err rc = RB_OK;

    *out = NULL;
    if (!t)
        return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
    memset(&ps, 0, sizeof ps);
    t->arena.max = (size_t)1 << 30;
    ps.src = src ? src : "";
    ps.len = src ? len : 0;
    ps.a = &t->arena;
    ps.err = err;
    ps.errlen = errlen;
    ps.lc_line = ps.lc_col = 1;
    if (memchr(ps.src, '\0', ps.len)) {
        rc = rb_errf(err, errlen, RB_EFORMAT, "line 1, column 1: template contains a NUL byte");
        goto out;
    }
    if (chp_normalise_newlines(&ps) == 0 && chp_lex(&ps) == 0) {
        chp_whitespace(&ps);
        t->body = chp_parse_body(&ps, NULL, NULL);
    }
    if (ps.failed)
        rc = RB_EFORMAT;
out:
    free(ps.t);
    if (rc) {
        chat_template_free(t);
        return rc;
    }
    *out = t;
    return RB_OK;
}

void chat_template_free(chat_template *t)
{
    if (!t)
        return;
    ch_arena_release(&t->arena);
    free(t);
}
