/*
 * chat_stmt.c - the statements of a template: if, for, set (and namespace and block set), macro,
 * raw, filter blocks and the body lists between tags.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "rb_utf8.h"
#include "chat_parser.h"

/* ---- statements ---- */

static ch_node *parse_if(parser *ps, tok *at)
{
    ch_node *nd = chp_node(ps, N_IF, at);
    const char *which = NULL;
    static const char *const ends[] = {"elif", "else", "endif", NULL};

    if (!nd || !(nd->a = chp_parse_tuple(ps, 0)) ||
        chp_expect_end(ps)) /* as jinja2: a tuple, no inline if */
        return NULL;
    ps->open = at;
    nd->body = chp_parse_body(ps, ends, &which);
    if (ps->failed)
        return NULL;
    if (!strcmp(which, "elif")) {
        nd->orelse = parse_if(ps, at);
        return ps->failed ? NULL : nd; /* the nested if consumed endif */
    }
    if (!strcmp(which, "else")) {
        static const char *const ends2[] = {"endif", NULL};
        if (chp_expect_end(ps))
            return NULL;
        ps->open = at;
        nd->orelse = chp_parse_body(ps, ends2, &which);
        if (ps->failed)
            return NULL;
    }
    return chp_expect_end(ps) ? NULL : nd;
}

static ch_node *parse_for(parser *ps, tok *at)
{
    ch_node *nd = chp_node(ps, N_FOR, at);
    const char *which = NULL;
    static const char *const ends[] = {"else", "endfor", NULL};

    if (!nd)
        return NULL;
    int paren = chp_is_op(ps, "(");
    if (paren)
        ps->p++;
    do {
        if (nd->nnames)
            ps->p++; /* , */
        const char *name = chp_expect_name(ps);
        if (!name || chp_add_name(ps, nd, name))
            return NULL;
    } while (chp_is_op(ps, ","));
    if (paren && chp_expect_op(ps, ")"))
        return NULL;
    if (!chp_is_name(ps, "in")) {
        chp_unexpected(ps, "'in'");
        return NULL;
    }
    ps->p++;
    if (!(nd->a = chp_parse_tuple(ps, 0)))
        return NULL;
    if (chp_is_name(ps, "if")) {
        ps->p++;
        if (!(nd->b = chp_parse_expr(ps, 1)))
            return NULL;
    }
    if (chp_is_name(ps, "recursive")) {
        chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col, "recursive loops are not supported");
        return NULL;
    }
    if (chp_expect_end(ps))
        return NULL;
    ps->open = at;
    nd->body = chp_parse_body(ps, ends, &which);
    if (ps->failed)
        return NULL;
    if (!strcmp(which, "else")) {
        static const char *const ends2[] = {"endfor", NULL};
        if (chp_expect_end(ps))
            return NULL;
        ps->open = at;
        nd->orelse = chp_parse_body(ps, ends2, &which);
        if (ps->failed)
            return NULL;
    }
    return chp_expect_end(ps) ? NULL : nd;
}

static ch_node *parse_set(parser *ps, tok *at)
{
    ch_node *nd = chp_node(ps, N_SET, at);
    const char *which;

    if (!nd)
        return NULL;
    const char *name = chp_expect_name(ps);
    if (!name || chp_add_name(ps, nd, name))
        return NULL;
    if (chp_is_op(ps, ".")) { /* ns.attr = value */
        ps->p++;
        const char *attr = chp_expect_name(ps);
        if (!attr)
            return NULL;
        nd->name = attr;
    } else {
        while (chp_is_op(ps, ",")) {
            ps->p++;
            if (!(name = chp_expect_name(ps)) || chp_add_name(ps, nd, name))
                return NULL;
        }
    }
    if (chp_is_op(ps, "=")) {
        ps->p++;
        if (!(nd->b = chp_parse_tuple(ps, 1)) || chp_expect_end(ps))
            return NULL;
        return nd;
    }
    if (nd->name || nd->nnames != 1) {
        chp_unexpected(ps, "'='");
        return NULL;
    }
    if (chp_is_op(ps, "|")) {
        chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col,
                 "filters on a block set are not supported");
        return NULL;
    }
    static const char *const ends[] = {"endset", NULL};
    nd->k = N_SETBLK;
    if (chp_expect_end(ps))
        return NULL;
    ps->open = at;
    nd->body = chp_parse_body(ps, ends, &which);
    if (ps->failed || chp_expect_end(ps))
        return NULL;
    return nd;
}

static ch_node *parse_macro(parser *ps, tok *at)
{
    ch_node *nd = chp_node(ps, N_MACRO, at);
    const char *which;
    static const char *const ends[] = {"endmacro", NULL};

    if (!nd || !(nd->name = chp_expect_name(ps)) || chp_expect_op(ps, "("))
        return NULL;
    while (!chp_is_op(ps, ")")) {
        const char *p = chp_expect_name(ps);
        ch_node *def = NULL;
        if (!p)
            return NULL;
        if (chp_is_op(ps, "=")) {
            ps->p++;
            if (!(def = chp_parse_expr(ps, 1)))
                return NULL;
        } else if (nd->nlist && nd->list[nd->nlist - 1]) {
            chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col,
                     "non-default argument follows default argument");
            return NULL;
        }
        if (chp_add_name(ps, nd, p) || chp_add_arg(ps, nd, def))
            return NULL;
        if (chp_is_op(ps, ","))
            ps->p++;
        else if (!chp_is_op(ps, ")")) {
            chp_unexpected(ps, "',' or ')'");
            return NULL;
        }
    }
    ps->p++;
    if (chp_expect_end(ps))
        return NULL;
    ps->open = at;
    nd->body = chp_parse_body(ps, ends, &which);
    if (ps->failed)
        return NULL;
    if (chp_cur(ps)->k == T_NAME) /* {% endmacro name %} */
        ps->p++;
    return chp_expect_end(ps) ? NULL : nd;
}

static ch_node *parse_filter_block(parser *ps, tok *at)
{
    ch_node *nd = chp_node(ps, N_FILTBLK, at);
    const char *which;
    static const char *const ends[] = {"endfilter", NULL};
    ch_node *chain = NULL;

    if (!nd)
        return NULL;
    do {
        if (chain)
            ps->p++; /* | */
        ch_node *f = chp_node(ps, E_FILTER, chp_cur(ps));
        if (!f || !(f->name = chp_expect_name(ps)))
            return NULL;
        if (chp_is_op(ps, "(") && chp_parse_args(ps, f))
            return NULL;
        f->a = chain;
        chain = f;
    } while (chp_is_op(ps, "|"));
    nd->a = chain;
    if (chp_expect_end(ps))
        return NULL;
    ps->open = at;
    nd->body = chp_parse_body(ps, ends, &which);
    if (ps->failed || chp_expect_end(ps))
        return NULL;
    return nd;
}

static ch_node *parse_statement_(parser *ps);
static ch_node *parse_statement(parser *ps)
{
    if (ps->depth >= CH_MAX_PARSE_DEPTH) {
        chp_perr(ps, chp_cur(ps)->line, chp_cur(ps)->col, "nested deeper than %d",
                 CH_MAX_PARSE_DEPTH);
        return NULL;
    }
    ps->depth++;
    ch_node *nd = parse_statement_(ps);
    ps->depth--;
    return nd;
}

static ch_node *parse_statement_(parser *ps)
{
    tok *at = chp_cur(ps);
    const char *which;

    if (at->k != T_NAME) {
        chp_unexpected(ps, "a tag name");
        return NULL;
    }
    const char *name = at->s;
    ps->p++;
    if (!strcmp(name, "if"))
        return parse_if(ps, at);
    if (!strcmp(name, "for"))
        return parse_for(ps, at);
    if (!strcmp(name, "set"))
        return parse_set(ps, at);
    if (!strcmp(name, "macro"))
        return parse_macro(ps, at);
    if (!strcmp(name, "filter"))
        return parse_filter_block(ps, at);
    if (!strcmp(name, "break") || !strcmp(name, "continue")) {
        ch_node *nd = chp_node(ps, name[0] == 'b' ? N_BREAK : N_CONTINUE, at);
        return !nd || chp_expect_end(ps) ? NULL : nd;
    }
    if (!strcmp(name, "generation") || !strcmp(name, "raw")) {
        static const char *const gen[] = {"endgeneration", NULL};
        static const char *const raw[] = {"endraw", NULL};
        ch_node *nd = chp_node(ps, N_BLOCK, at);
        if (!nd || chp_expect_end(ps))
            return NULL;
        ps->open = at;
        nd->body = chp_parse_body(ps, name[0] == 'g' ? gen : raw, &which);
        return ps->failed || chp_expect_end(ps) ? NULL : nd;
    }
    static const char *const unsupported[] = {"call",  "include", "import",     "from", "extends",
                                              "block", "with",    "autoescape", "do",   "trans"};
    for (size_t k = 0; k < sizeof unsupported / sizeof *unsupported; k++)
        if (!strcmp(name, unsupported[k])) {
            chp_perr(ps, at->line, at->col, "tag '%s' is not supported", name);
            return NULL;
        }
    chp_perr(ps, at->line, at->col, "unknown tag '%s'", name);
    return NULL;
}

/* Statements until a block tag named in ends (NULL: until the end of the template). On
 * return chp_cur() is the token after that tag's name and *which names it. */
ch_node *chp_parse_body(parser *ps, const char *const *ends, const char **which)
{
    ch_node *head = NULL, **tail = &head;
    tok *opener = ps->open;

    for (;;) {
        tok *t = chp_cur(ps);
        ch_node *nd = NULL;
        if (t->k == T_EOF) {
            if (ends) {
                const char *last = ends[0];
                for (int q = 0; ends[q]; q++)
                    last = ends[q];
                chp_perr(ps, t->line, t->col,
                         "unexpected end of template, expected '%s' to close '%s' (line %d, "
                         "column %d)",
                         last, opener ? opener->s : "?", opener ? opener->line : 0,
                         opener ? opener->col : 0);
                return NULL;
            }
            return head;
        }
        if (t->k == T_COMMENT) {
            ps->p++;
            continue;
        }
        if (t->k == T_TEXT) {
            ps->p++;
            if (t->n == 0)
                continue;
            if (!(nd = chp_node(ps, N_TEXT, t)))
                return NULL;
            nd->s = t->s;
            nd->n = t->n;
        } else if (t->k == T_VAR) {
            ps->p++;
            if (!(nd = chp_node(ps, N_OUTPUT, t)) || !(nd->a = chp_parse_tuple(ps, 1)))
                return NULL;
            if (chp_cur(ps)->k != T_END || chp_cur(ps)->tag != T_VAR) {
                chp_unexpected(ps, "end of print statement");
                return NULL;
            }
            ps->p++;
        } else if (t->k == T_BLOCK) {
            ps->p++;
            tok *nt = chp_cur(ps);
            if (nt->k == T_NAME) {
                for (int q = 0; ends && ends[q]; q++)
                    if (!strcmp(nt->s, ends[q])) {
                        *which = ends[q];
                        ps->p++;
                        return head;
                    }
                if (!strncmp(nt->s, "end", 3) || !strcmp(nt->s, "elif") || !strcmp(nt->s, "else")) {
                    chp_perr(ps, nt->line, nt->col, "unexpected '%s'%s%s%s", nt->s,
                             ends ? ", expected '" : "", ends ? ends[0] : "", ends ? "'" : "");
                    return NULL;
                }
            }
            if (!(nd = parse_statement(ps)))
                return NULL;
        } else {
            chp_unexpected(ps, "template text or a tag");
            return NULL;
        }
        *tail = nd;
        tail = &nd->next;
    }
}

/* As jinja2 reads a template: every line break (\r\n, \r, \v, \f, \x1c-\x1e, U+0085,
 * U+2028, U+2029) becomes \n, and one newline at the very end is dropped
 * (keep_trailing_newline is off). */
int chp_normalise_newlines(parser *ps)
{
    char *o = ch_alloc(ps->a, ps->len + 1);
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)ps->src;

    if (!o) {
        chp_perr(ps, 1, 1, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < ps->len; i++) {
        if (s[i] == '\r') {
            if (i + 1 < ps->len && s[i + 1] == '\n')
                i++;
            o[n++] = '\n';
        } else if (s[i] == '\v' || s[i] == '\f' || (s[i] >= 0x1c && s[i] <= 0x1e)) {
            o[n++] = '\n';
        } else if (s[i] == 0xC2 && i + 1 < ps->len && s[i + 1] == 0x85) {
            o[n++] = '\n';
            i++;
        } else if (s[i] == 0xE2 && i + 2 < ps->len && s[i + 1] == 0x80 &&
                   (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
            o[n++] = '\n';
            i += 2;
        } else {
            o[n++] = (char)s[i];
        }
    }
    if (n > 0 && o[n - 1] == '\n')
        n--;
    o[n] = '\0';
    ps->src = o;
    ps->len = n;
    return 0;
}
