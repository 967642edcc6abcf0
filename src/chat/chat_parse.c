/*
 * chat_parse.c - Jinja source to syntax tree: the lexer (text, {{ }}, {% %}, {# #}, the
 * whitespace rules of trim_blocks, lstrip_blocks and the - / + signs) and a recursive-descent
 * parser with jinja2's operator precedence.
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
#include "rb_utf8.h"

#define CH_MAX_PARSE_DEPTH 200

typedef enum tkind {
    T_TEXT,
    T_VAR,     /* {{ */
    T_BLOCK,   /* {% */
    T_COMMENT, /* {# ... #}, whole */
    T_END,     /* }} or %} */
    T_NAME,
    T_STR,
    T_INT,
    T_FLOAT,
    T_OP,
    T_EOF,
} tkind;

typedef struct tok {
    tkind k;
    int line, col;
    const char *s; /* T_TEXT: source text (after trimming); T_NAME: name; T_STR: decoded */
    size_t n;
    size_t pos;      /* byte offset in the source */
    char op[3];      /* T_OP */
    long long i;     /* T_INT */
    double f;        /* T_FLOAT */
    char open_sign;  /* tag begin / comment: '-', '+' or 0 */
    char close_sign; /* T_END / comment: '-', '+' or 0 */
    tkind tag;       /* T_END: T_VAR or T_BLOCK */
    int raw;         /* T_TEXT inside {% raw %} */
} tok;

typedef struct parser {
    const char *src;
    size_t len;
    tok *t;
    size_t nt, cap;
    size_t p;  /* current token */
    tok *open; /* the tag whose body parse_body() reads next (for messages) */
    int depth; /* nesting of the recursive rules below, CH_MAX_PARSE_DEPTH at most */
    ch_arena *a;
    char *err;
    size_t errlen;
    int failed;
    /* line/column tracking for the lexer */
    size_t lc_pos;
    int lc_line, lc_col;
} parser;

static void perr(parser *ps, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void perr(parser *ps, int line, int col, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (ps->failed)
        return;
    ps->failed = 1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rb_errf(ps->err, ps->errlen, RB_EFORMAT, "line %d, column %d: %s", line, col, msg);
}

/* Line and column (1-based, columns in code points) of byte offset pos; pos only grows. */
static void linecol(parser *ps, size_t pos, int *line, int *col)
{
    if (pos < ps->lc_pos) {
        ps->lc_pos = 0;
        ps->lc_line = 1;
        ps->lc_col = 1;
    }
    for (; ps->lc_pos < pos && ps->lc_pos < ps->len; ps->lc_pos++) {
        unsigned char ch = (unsigned char)ps->src[ps->lc_pos];
        if (ch == '\n') {
            ps->lc_line++;
            ps->lc_col = 1;
        } else if ((ch & 0xC0) != 0x80) {
            ps->lc_col++;
        }
    }
    *line = ps->lc_line;
    *col = ps->lc_col;
}

static tok *push(parser *ps, tkind k, size_t pos)
{
    if (ps->nt == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 256;
        tok *nt = realloc(ps->t, cap * sizeof(*nt));
        if (!nt) {
            perr(ps, 0, 0, "out of memory");
            return NULL;
        }
        ps->t = nt;
        ps->cap = cap;
    }
    tok *t = &ps->t[ps->nt++];
    memset(t, 0, sizeof(*t));
    t->k = k;
    t->pos = pos;
    linecol(ps, pos, &t->line, &t->col);
    return t;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A string literal at src[*i] (the quote); Python's escapes. */
static int lex_string(parser *ps, size_t *i, tok *t)
{
    char q = ps->src[*i];
    size_t j = *i + 1;
    char *o = ch_alloc(ps->a, ps->len - *i + 1);
    size_t n = 0;

    if (!o) {
        perr(ps, t->line, t->col, "out of memory");
        return -1;
    }
    for (;;) {
        if (j >= ps->len) {
            perr(ps, t->line, t->col, "unterminated string");
            return -1;
        }
        char ch = ps->src[j];
        if (ch == q) {
            j++;
            break;
        }
        if (ch != '\\') {
            o[n++] = ch;
            j++;
            continue;
        }
        if (j + 1 >= ps->len) {
            perr(ps, t->line, t->col, "unterminated string");
            return -1;
        }
        char e = ps->src[j + 1];
        j += 2;
        switch (e) {
        case 'n':
            o[n++] = '\n';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case '\\':
            o[n++] = '\\';
            break;
        case '\'':
            o[n++] = '\'';
            break;
        case '"':
            o[n++] = '"';
            break;
        case 'a':
            o[n++] = '\a';
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'v':
            o[n++] = '\v';
            break;
        case '\n':
            break; /* line continuation */
        case 'x':
        case 'u':
        case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            unsigned long cp = 0;
            for (int d = 0; d < digits; d++) {
                int h = j < ps->len ? hexval(ps->src[j]) : -1;
                if (h < 0) {
                    perr(ps, t->line, t->col, "truncated \\%c escape in a string", e);
                    return -1;
                }
                cp = cp * 16 + (unsigned long)h;
                j++;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                perr(ps, t->line, t->col, "invalid code point in a string escape");
                return -1;
            }
            if (cp == 0) {
                perr(ps, t->line, t->col, "a NUL character in a string is not supported");
                return -1;
            }
            n += rb_utf8_encode(cp, o + n);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                unsigned long cp = (unsigned long)(e - '0');
                for (int d = 0; d < 2 && j < ps->len && ps->src[j] >= '0' && ps->src[j] <= '7'; d++)
                    cp = cp * 8 + (unsigned long)(ps->src[j++] - '0');
                if (cp == 0) {
                    perr(ps, t->line, t->col, "a NUL character in a string is not supported");
                    return -1;
                }
                n += rb_utf8_encode(cp, o + n);
            } else if (e == 'N') {
                perr(ps, t->line, t->col, "\\N{...} escapes are not supported");
                return -1;
            } else { /* unknown escapes stay as written */
                o[n++] = '\\';
                o[n++] = e;
            }
        }
    }
    o[n] = '\0';
    t->s = o;
    t->n = n;
    *i = j;
    return 0;
}

/* Tokens inside a tag from src[*i] to its end (which it consumes). kind: T_VAR or T_BLOCK. */
static int lex_tag(parser *ps, size_t *ip, tkind kind)
{
    size_t i = *ip;
    int depth = 0;
    char stack[64]; /* the closing brackets expected */
    char closer = kind == T_VAR ? '}' : '%';
    int line, col;

    for (;;) {
        while (i < ps->len && isspace((unsigned char)ps->src[i]))
            i++;
        if (i >= ps->len) {
            linecol(ps, *ip, &line, &col);
            perr(ps, line, col, "unexpected end of template, expected '%s'",
                 kind == T_VAR ? "}}" : "%}");
            return -1;
        }
        const char *s = ps->src + i;
        size_t left = ps->len - i;
        char sign = 0;
        if (depth == 0 && left >= 3 && (s[0] == '-' || (s[0] == '+' && closer == '%')) &&
            s[1] == closer && s[2] == '}')
            sign = s[0];
        if (depth == 0 && (sign || (left >= 2 && s[0] == closer && s[1] == '}'))) {
            tok *t = push(ps, T_END, i);
            if (!t)
                return -1;
            t->close_sign = sign;
            t->tag = kind;
            i += sign ? 3 : 2;
            break;
        }
        unsigned char ch = (unsigned char)s[0];
        if (isalpha(ch) || ch == '_') {
            size_t j = i;
            while (j < ps->len && (isalnum((unsigned char)ps->src[j]) || ps->src[j] == '_'))
                j++;
            tok *t = push(ps, T_NAME, i);
            if (!t)
                return -1;
            t->s = ch_strndup(ps->a, s, j - i);
            t->n = j - i;
            i = j;
        } else if (isdigit(ch)) {
            size_t j = i;
            int isf = 0;
            /* Python's digits: an underscore only between two digits */
            while (j < ps->len &&
                   (isdigit((unsigned char)ps->src[j]) || (ps->src[j] == '_' && j + 1 < ps->len &&
                                                           isdigit((unsigned char)ps->src[j + 1]))))
                j++;
            if (j + 1 < ps->len && ps->src[j] == '.' && isdigit((unsigned char)ps->src[j + 1])) {
                isf = 1;
                j++;
                while (j < ps->len && isdigit((unsigned char)ps->src[j]))
                    j++;
            }
            if (j < ps->len && (ps->src[j] == 'e' || ps->src[j] == 'E')) {
                size_t k = j + 1;
                if (k < ps->len && (ps->src[k] == '+' || ps->src[k] == '-'))
                    k++;
                if (k < ps->len && isdigit((unsigned char)ps->src[k])) {
                    isf = 1;
                    j = k;
                    while (j < ps->len && isdigit((unsigned char)ps->src[j]))
                        j++;
                }
            }
            char num[64];
            size_t m = 0;
            for (size_t k = i; k < j && m + 1 < sizeof num; k++)
                if (ps->src[k] != '_')
                    num[m++] = ps->src[k];
            num[m] = '\0';
            tok *t = push(ps, isf ? T_FLOAT : T_INT, i);
            if (!t)
                return -1;
            if (!isf && num[0] == '0' && strspn(num, "0") != strlen(num)) {
                perr(ps, t->line, t->col, "leading zeros in integer literals are not permitted");
                return -1;
            }
            if (isf)
                t->f = strtod(num, NULL);
            else
                t->i = strtoll(num, NULL, 10);
            i = j;
        } else if (ch == '"' || ch == '\'') {
            tok *t = push(ps, T_STR, i);
            if (!t || lex_string(ps, &i, t))
                return -1;
        } else {
            static const char *ops2[] = {"//", "**", "==", "!=", "<=", ">="};
            tok *t = push(ps, T_OP, i);
            if (!t)
                return -1;
            for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
                if (left >= 2 && s[0] == ops2[k][0] && s[1] == ops2[k][1]) {
                    memcpy(t->op, s, 2);
                    break;
                }
            if (!t->op[0]) {
                if (!strchr("+-*/%~<>=()[]{},.:|", ch)) {
                    int cl = 1; /* the whole character, not its first byte */
                    while ((size_t)cl < left && cl < 4 && ((unsigned char)s[cl] & 0xC0) == 0x80)
                        cl++;
                    perr(ps, t->line, t->col, "unexpected character '%.*s'", cl, s);
                    return -1;
                }
                t->op[0] = (char)ch;
                if (strchr("([{", ch)) {
                    if (depth == (int)sizeof stack) {
                        perr(ps, t->line, t->col, "brackets nested too deep");
                        return -1;
                    }
                    stack[depth++] = ch == '(' ? ')' : ch == '[' ? ']' : '}';
                } else if (strchr(")]}", ch)) {
                    if (depth == 0 || stack[depth - 1] != (char)ch) {
                        if (depth)
                            perr(ps, t->line, t->col, "unexpected '%c', expected '%c'", ch,
                                 stack[depth - 1]);
                        else
                            perr(ps, t->line, t->col, "unexpected '%c'", ch);
                        return -1;
                    }
                    depth--;
                }
            }
            i += strlen(t->op);
        }
    }
    *ip = i;
    return 0;
}

/* Is the token sequence from index b exactly NAME name, T_END? */
static int tag_is(parser *ps, size_t b, const char *name)
{
    return ps->nt == b + 2 && ps->t[b].k == T_NAME && strcmp(ps->t[b].s, name) == 0 &&
           ps->t[b + 1].k == T_END;
}

static int lex(parser *ps)
{
    size_t i = 0;

    while (i < ps->len) {
        const char *s = ps->src + i;
        const char *open = NULL;
        for (const char *q = s; (q = memchr(q, '{', (size_t)(ps->src + ps->len - q))); q++) {
            if (q + 1 < ps->src + ps->len && (q[1] == '{' || q[1] == '%' || q[1] == '#')) {
                open = q;
                break;
            }
        }
        size_t end = open ? (size_t)(open - ps->src) : ps->len;
        if (end > i) {
            tok *t = push(ps, T_TEXT, i);
            if (!t)
                return -1;
            t->s = s;
            t->n = end - i;
        }
        if (!open)
            break;
        i = end + 2;
        char sign = 0;
        if (i < ps->len && (ps->src[i] == '-' || ps->src[i] == '+'))
            sign = ps->src[i++];
        if (open[1] == '#') {
            tok *t = push(ps, T_COMMENT, end);
            if (!t)
                return -1;
            t->open_sign = sign;
            const char *c = NULL;
            for (size_t j = i; j + 1 < ps->len; j++)
                if (ps->src[j] == '#' && ps->src[j + 1] == '}') {
                    c = ps->src + j;
                    break;
                }
            if (!c) {
                perr(ps, t->line, t->col, "unterminated comment");
                return -1;
            }
            if (c > ps->src + i && (c[-1] == '-' || c[-1] == '+'))
                t->close_sign = c[-1];
            i = (size_t)(c - ps->src) + 2;
            continue;
        }
        tkind kind = open[1] == '{' ? T_VAR : T_BLOCK;
        tok *t = push(ps, kind, end);
        if (!t)
            return -1;
        t->open_sign = sign;
        size_t first = ps->nt;
        if (lex_tag(ps, &i, kind))
            return -1;
        if (kind == T_BLOCK && tag_is(ps, first, "raw")) {
            /* Everything up to {% endraw %} is text. */
            size_t j = i, stop = 0, after = 0;
            char esign = 0;
            for (; j + 1 < ps->len; j++) {
                if (ps->src[j] != '{' || ps->src[j + 1] != '%')
                    continue;
                size_t k = j + 2;
                char sg = 0;
                if (k < ps->len && (ps->src[k] == '-' || ps->src[k] == '+'))
                    sg = ps->src[k++];
                while (k < ps->len && isspace((unsigned char)ps->src[k]))
                    k++;
                if (ps->len - k >= 6 && memcmp(ps->src + k, "endraw", 6) == 0) {
                    stop = j;
                    esign = sg;
                    after = k;
                    break;
                }
            }
            if (!stop) {
                perr(ps, t->line, t->col, "'raw' without 'endraw'");
                return -1;
            }
            tok *rt = push(ps, T_TEXT, i);
            if (!rt)
                return -1;
            rt->s = ps->src + i;
            rt->n = stop - i;
            rt->raw = 1;
            tok *bt = push(ps, T_BLOCK, stop);
            if (!bt)
                return -1;
            bt->open_sign = esign;
            (void)after;
            i = stop + 2 + (esign ? 1 : 0);
            if (lex_tag(ps, &i, T_BLOCK))
                return -1;
        }
    }
    return push(ps, T_EOF, ps->len) ? 0 : -1;
}

static int ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* The whitespace rules: - strips all whitespace on its side; trim_blocks drops the newline
 * after a block or comment tag; lstrip_blocks drops the spaces and tabs between the start of
 * a line and a block or comment tag. + turns the last two off for its tag. */
static void whitespace(parser *ps)
{
    for (size_t k = 0; k < ps->nt; k++) {
        tok *t = &ps->t[k];
        if (t->k != T_TEXT)
            continue;
        const tok *prev = k > 0 ? &ps->t[k - 1] : NULL;
        const tok *next = k + 1 < ps->nt ? &ps->t[k + 1] : NULL;
        const char *s = t->s;
        size_t n = t->n;
        char psign = prev ? prev->close_sign : 0;
        int pblock = prev && (prev->k == T_COMMENT || (prev->k == T_END && prev->tag == T_BLOCK));
        if (psign == '-') {
            while (n > 0 && ws(*s)) {
                s++;
                n--;
            }
        } else if (pblock && psign != '+' && !t->raw) {
            if (n > 0 && *s == '\n') {
                s++;
                n--;
            } else if (n > 1 && s[0] == '\r' && s[1] == '\n') {
                s += 2;
                n -= 2;
            }
        }
        char nsign = next ? next->open_sign : 0;
        int nblock = next && (next->k == T_BLOCK || next->k == T_COMMENT);
        if (nsign == '-') {
            while (n > 0 && ws(s[n - 1]))
                n--;
        } else if (nblock && nsign != '+') { /* also before {% endraw %}, as jinja2 */
            size_t l = n;
            while (l > 0 && s[l - 1] != '\n')
                l--;
            size_t start = (size_t)(s - ps->src);
            int line_start = l > 0 || start == 0 || ps->src[start - 1] == '\n';
            int blank = 1;
            for (size_t q = l; q < n; q++)
                if (!ws(s[q]))
                    blank = 0;
            if (line_start && blank)
                n = l;
        }
        t->s = s;
        t->n = n;
    }
}

/* ---- parser ---- */

static tok *cur(parser *ps)
{
    return &ps->t[ps->p];
}

static ch_node *node(parser *ps, ch_nkind k, const tok *at)
{
    ch_node *nd = ch_alloc(ps->a, sizeof(*nd));
    if (!nd) {
        perr(ps, at->line, at->col, "out of memory");
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

static void unexpected(parser *ps, const char *expected)
{
    char b[64];
    tok *t = cur(ps);
    perr(ps, t->line, t->col, "expected %s, got %s", expected, describe(t, b, sizeof b));
}

static int is_op(parser *ps, const char *op)
{
    return cur(ps)->k == T_OP && strcmp(cur(ps)->op, op) == 0;
}

static int is_name(parser *ps, const char *name)
{
    return cur(ps)->k == T_NAME && strcmp(cur(ps)->s, name) == 0;
}

static int expect_op(parser *ps, const char *op)
{
    if (!is_op(ps, op)) {
        char e[16];
        snprintf(e, sizeof e, "'%s'", op);
        unexpected(ps, e);
        return -1;
    }
    ps->p++;
    return 0;
}

static int expect_end(parser *ps)
{
    if (cur(ps)->k != T_END || cur(ps)->tag != T_BLOCK) {
        unexpected(ps, "end of statement block");
        return -1;
    }
    ps->p++;
    return 0;
}

static const char *expect_name(parser *ps)
{
    if (cur(ps)->k != T_NAME) {
        unexpected(ps, "a name");
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
        perr(ps, cur(ps)->line, cur(ps)->col, "out of memory");
        return -1;
    }
    if (n)
        memcpy(na, *arr, (size_t)n * elem);
    *arr = na;
    return 0;
}

static int add_arg(parser *ps, ch_node *nd, ch_node *arg)
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

static int add_name(parser *ps, ch_node *nd, const char *name)
{
    if (grow(ps, (void **)&nd->names, nd->nnames, sizeof(char *)))
        return -1;
    nd->names[nd->nnames++] = name;
    return 0;
}

static ch_node *parse_expr(parser *ps, int with_cond);
static ch_node *parse_unary(parser *ps, int with_filter);

/* (args, kw=...) after the '(' */
static int parse_args(parser *ps, ch_node *nd)
{
    ps->p++; /* ( */
    while (!is_op(ps, ")")) {
        if (cur(ps)->k == T_NAME && ps->t[ps->p + 1].k == T_OP &&
            strcmp(ps->t[ps->p + 1].op, "=") == 0) {
            const char *kw = cur(ps)->s;
            ps->p += 2;
            ch_node *v = parse_expr(ps, 1);
            if (!v || add_kw(ps, nd, kw, v))
                return -1;
        } else {
            if (is_op(ps, "*")) {
                perr(ps, cur(ps)->line, cur(ps)->col, "*args in calls are not supported");
                return -1;
            }
            if (nd->nkw) {
                perr(ps, cur(ps)->line, cur(ps)->col, "positional argument after keyword argument");
                return -1;
            }
            ch_node *v = parse_expr(ps, 1);
            if (!v || add_arg(ps, nd, v))
                return -1;
        }
        if (is_op(ps, ","))
            ps->p++;
        else if (!is_op(ps, ")")) {
            unexpected(ps, "',' or ')'");
            return -1;
        }
    }
    ps->p++;
    return 0;
}

static ch_node *lit(parser *ps, const tok *at, ch_val *v)
{
    ch_node *nd = node(ps, E_LIT, at);
    if (nd)
        nd->lit = v;
    return nd;
}

static ch_val *lit_val(parser *ps, ch_kind k)
{
    ch_val *v = ch_alloc(ps->a, sizeof(*v));
    if (!v)
        perr(ps, cur(ps)->line, cur(ps)->col, "out of memory");
    else
        v->k = k;
    return v;
}

static ch_node *parse_primary(parser *ps)
{
    tok *t = cur(ps);
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
        nd = node(ps, E_NAME, t);
        if (nd)
            nd->name = t->s;
        return nd;
    case T_STR: {
        /* Adjacent string literals join, as in Python. */
        size_t n = 0, p0 = ps->p;
        while (cur(ps)->k == T_STR)
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
        if (is_op(ps, "(")) {
            ps->p++;
            if (is_op(ps, ")")) {
                ps->p++;
                return node(ps, E_TUPLE, t);
            }
            ch_node *e = parse_expr(ps, 1);
            if (!e)
                return NULL;
            if (is_op(ps, ",")) {
                nd = node(ps, E_TUPLE, t);
                if (!nd || add_arg(ps, nd, e))
                    return NULL;
                while (is_op(ps, ",")) {
                    ps->p++;
                    if (is_op(ps, ")"))
                        break;
                    if (!(e = parse_expr(ps, 1)) || add_arg(ps, nd, e))
                        return NULL;
                }
                e = nd;
            }
            return expect_op(ps, ")") ? NULL : e;
        }
        if (is_op(ps, "[")) {
            ps->p++;
            if (!(nd = node(ps, E_LIST, t)))
                return NULL;
            while (!is_op(ps, "]")) {
                ch_node *e = parse_expr(ps, 1);
                if (!e || add_arg(ps, nd, e))
                    return NULL;
                if (is_op(ps, ","))
                    ps->p++;
                else if (!is_op(ps, "]")) {
                    unexpected(ps, "',' or ']'");
                    return NULL;
                }
            }
            ps->p++;
            return nd;
        }
        if (is_op(ps, "{")) {
            ps->p++;
            if (!(nd = node(ps, E_DICT, t)))
                return NULL;
            while (!is_op(ps, "}")) {
                ch_node *k = parse_expr(ps, 1);
                if (!k || expect_op(ps, ":"))
                    return NULL;
                ch_node *e = parse_expr(ps, 1);
                if (!e || add_arg(ps, nd, k) || add_arg(ps, nd, e))
                    return NULL;
                if (is_op(ps, ","))
                    ps->p++;
                else if (!is_op(ps, "}")) {
                    unexpected(ps, "',' or '}'");
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
    unexpected(ps, "an expression");
    return NULL;
}

static ch_node *parse_postfix(parser *ps, ch_node *e)
{
    while (e) {
        tok *t = cur(ps);
        if (is_op(ps, ".")) {
            ps->p++;
            if (cur(ps)->k == T_INT) {
                ch_val *v = lit_val(ps, V_INT);
                ch_node *nd = node(ps, E_ITEM, t);
                if (!v || !nd)
                    return NULL;
                v->u.i = cur(ps)->i;
                ps->p++;
                nd->a = e;
                nd->b = lit(ps, t, v);
                e = nd;
                continue;
            }
            const char *name = expect_name(ps);
            ch_node *nd = node(ps, E_ATTR, t);
            if (!name || !nd)
                return NULL;
            nd->a = e;
            nd->name = name;
            e = nd;
        } else if (is_op(ps, "[")) {
            ps->p++;
            ch_node *parts[3] = {NULL, NULL, NULL};
            int np = 0, slice = 0;
            for (;;) {
                if (!is_op(ps, ":") && !is_op(ps, "]")) {
                    if (!(parts[np] = parse_expr(ps, 1)))
                        return NULL;
                }
                if (is_op(ps, ":") && np < 2) {
                    slice = 1;
                    np++;
                    ps->p++;
                    continue;
                }
                break;
            }
            if (expect_op(ps, "]"))
                return NULL;
            ch_node *nd = node(ps, slice ? E_SLICE : E_ITEM, t);
            if (!nd)
                return NULL;
            nd->a = e;
            if (slice) {
                for (int q = 0; q < 3; q++)
                    if (add_arg(ps, nd, parts[q]))
                        return NULL;
            } else {
                if (!parts[0]) {
                    unexpected(ps, "an expression");
                    return NULL;
                }
                nd->b = parts[0];
            }
            e = nd;
        } else if (is_op(ps, "(")) {
            ch_node *nd = node(ps, E_CALL, t);
            if (!nd)
                return NULL;
            nd->a = e;
            if (parse_args(ps, nd))
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
        tok *t = cur(ps);
        if (is_op(ps, "|")) {
            ps->p++;
            ch_node *nd = node(ps, E_FILTER, cur(ps));
            const char *name = expect_name(ps);
            if (!nd || !name)
                return NULL;
            /* a dotted filter name (jinja2 allows it) is not used by templates */
            nd->name = name;
            nd->a = e;
            if (is_op(ps, "(") && parse_args(ps, nd))
                return NULL;
            e = nd;
        } else if (is_name(ps, "is")) {
            ps->p++;
            ch_node *nd = node(ps, E_TEST, t);
            if (!nd)
                return NULL;
            if (is_name(ps, "not")) {
                nd->op = 1;
                ps->p++;
            }
            const char *name = expect_name(ps);
            if (!name)
                return NULL;
            nd->name = name;
            nd->a = e;
            tok *c = cur(ps);
            if (is_op(ps, "(")) {
                if (parse_args(ps, nd))
                    return NULL;
            } else if ((c->k == T_NAME || c->k == T_STR || c->k == T_INT || c->k == T_FLOAT ||
                        is_op(ps, "[") || is_op(ps, "{")) &&
                       !is_name(ps, "else") && !is_name(ps, "or") && !is_name(ps, "and")) {
                if (is_name(ps, "is")) {
                    perr(ps, c->line, c->col, "you cannot chain multiple tests with is");
                    return NULL;
                }
                ch_node *arg = parse_postfix(ps, parse_primary(ps));
                if (!arg || add_arg(ps, nd, arg))
                    return NULL;
            }
            e = nd;
        } else if (is_op(ps, "(")) {
            ch_node *nd = node(ps, E_CALL, t);
            if (!nd)
                return NULL;
            nd->a = e;
            if (parse_args(ps, nd))
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
        perr(ps, cur(ps)->line, cur(ps)->col, "nested deeper than %d", CH_MAX_PARSE_DEPTH);
        return NULL;
    }
    ps->depth++;
    ch_node *nd = parse_unary_(ps, with_filter);
    ps->depth--;
    return nd;
}

static ch_node *parse_unary_(parser *ps, int with_filter)
{
    tok *t = cur(ps);
    ch_node *e;

    if (is_op(ps, "-") || is_op(ps, "+")) {
        ps->p++;
        ch_node *inner = parse_unary(ps, 0);
        if (!inner || !(e = node(ps, t->op[0] == '-' ? E_NEG : E_POS, t)))
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
    ch_node *nd = node(ps, k, at);
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
    while (e && is_op(ps, "**")) {
        tok *t = cur(ps);
        ps->p++;
        e = binary(ps, t, CH_OP_POW, e, parse_unary(ps, 1), E_BIN);
    }
    return e;
}

static ch_node *parse_math2(parser *ps)
{
    ch_node *e = parse_pow(ps);
    for (;;) {
        int op = is_op(ps, "*")    ? CH_OP_MUL
                 : is_op(ps, "/")  ? CH_OP_DIV
                 : is_op(ps, "//") ? CH_OP_FLOORDIV
                 : is_op(ps, "%")  ? CH_OP_MOD
                                   : 0;
        if (!e || !op)
            return e;
        tok *t = cur(ps);
        ps->p++;
        e = binary(ps, t, op, e, parse_pow(ps), E_BIN);
    }
}

static ch_node *parse_concat(parser *ps)
{
    ch_node *e = parse_math2(ps);
    while (e && is_op(ps, "~")) {
        tok *t = cur(ps);
        ps->p++;
        e = binary(ps, t, CH_OP_CONCAT, e, parse_math2(ps), E_BIN);
    }
    return e;
}

static ch_node *parse_math1(parser *ps)
{
    ch_node *e = parse_concat(ps);
    for (;;) {
        int op = is_op(ps, "+") ? CH_OP_ADD : is_op(ps, "-") ? CH_OP_SUB : 0;
        if (!e || !op)
            return e;
        tok *t = cur(ps);
        ps->p++;
        e = binary(ps, t, op, e, parse_concat(ps), E_BIN);
    }
}

static ch_node *parse_compare(parser *ps)
{
    ch_node *e = parse_math1(ps);
    ch_node *chain = NULL; /* a < b < c is (a < b) and (b < c) */
    for (;;) {
        tok *t = cur(ps);
        int op = is_op(ps, "==")     ? CH_OP_EQ
                 : is_op(ps, "!=")   ? CH_OP_NE
                 : is_op(ps, "<")    ? CH_OP_LT
                 : is_op(ps, "<=")   ? CH_OP_LE
                 : is_op(ps, ">")    ? CH_OP_GT
                 : is_op(ps, ">=")   ? CH_OP_GE
                 : is_name(ps, "in") ? CH_OP_IN
                                     : 0;
        if (!op && is_name(ps, "not") && ps->t[ps->p + 1].k == T_NAME &&
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
        perr(ps, cur(ps)->line, cur(ps)->col, "nested deeper than %d", CH_MAX_PARSE_DEPTH);
        return NULL;
    }
    ps->depth++;
    ch_node *nd = parse_not_(ps);
    ps->depth--;
    return nd;
}

static ch_node *parse_not_(parser *ps)
{
    if (is_name(ps, "not")) {
        tok *t = cur(ps);
        ps->p++;
        ch_node *a = parse_not(ps);
        ch_node *nd = a ? node(ps, E_NOT, t) : NULL;
        if (nd)
            nd->a = a;
        return nd;
    }
    return parse_compare(ps);
}

static ch_node *parse_and(parser *ps)
{
    ch_node *e = parse_not(ps);
    while (e && is_name(ps, "and")) {
        tok *t = cur(ps);
        ps->p++;
        e = binary(ps, t, 0, e, parse_not(ps), E_AND);
    }
    return e;
}

static ch_node *parse_or(parser *ps)
{
    ch_node *e = parse_and(ps);
    while (e && is_name(ps, "or")) {
        tok *t = cur(ps);
        ps->p++;
        e = binary(ps, t, 0, e, parse_and(ps), E_OR);
    }
    return e;
}

static ch_node *parse_expr_(parser *ps, int with_cond);
static ch_node *parse_expr(parser *ps, int with_cond)
{
    if (ps->depth >= CH_MAX_PARSE_DEPTH) {
        perr(ps, cur(ps)->line, cur(ps)->col, "nested deeper than %d", CH_MAX_PARSE_DEPTH);
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
    while (with_cond && e && is_name(ps, "if")) {
        tok *t = cur(ps);
        ps->p++;
        ch_node *nd = node(ps, E_COND, t);
        if (!nd || !(nd->a = parse_or(ps)))
            return NULL;
        nd->b = e;
        if (is_name(ps, "else")) {
            ps->p++;
            if (!(nd->c = parse_expr(ps, 1)))
                return NULL;
        }
        e = nd;
    }
    return e;
}

/* expr or expr, expr, ... (a tuple) */
static ch_node *parse_tuple(parser *ps, int with_cond)
{
    tok *t = cur(ps);
    ch_node *e = parse_expr(ps, with_cond);
    if (!e || !is_op(ps, ","))
        return e;
    ch_node *nd = node(ps, E_TUPLE, t);
    if (!nd || add_arg(ps, nd, e))
        return NULL;
    while (is_op(ps, ",")) {
        ps->p++;
        if (cur(ps)->k == T_END)
            break;
        if (!(e = parse_expr(ps, with_cond)) || add_arg(ps, nd, e))
            return NULL;
    }
    return nd;
}

/* ---- statements ---- */

static ch_node *parse_body(parser *ps, const char *const *ends, const char **which);

static ch_node *parse_if(parser *ps, tok *at)
{
    ch_node *nd = node(ps, N_IF, at);
    const char *which = NULL;
    static const char *const ends[] = {"elif", "else", "endif", NULL};

    if (!nd || !(nd->a = parse_tuple(ps, 0)) ||
        expect_end(ps)) /* as jinja2: a tuple, no inline if */
        return NULL;
    ps->open = at;
    nd->body = parse_body(ps, ends, &which);
    if (ps->failed)
        return NULL;
    if (!strcmp(which, "elif")) {
        nd->orelse = parse_if(ps, at);
        return ps->failed ? NULL : nd; /* the nested if consumed endif */
    }
    if (!strcmp(which, "else")) {
        static const char *const ends2[] = {"endif", NULL};
        if (expect_end(ps))
            return NULL;
        ps->open = at;
        nd->orelse = parse_body(ps, ends2, &which);
        if (ps->failed)
            return NULL;
    }
    return expect_end(ps) ? NULL : nd;
}

static ch_node *parse_for(parser *ps, tok *at)
{
    ch_node *nd = node(ps, N_FOR, at);
    const char *which = NULL;
    static const char *const ends[] = {"else", "endfor", NULL};

    if (!nd)
        return NULL;
    int paren = is_op(ps, "(");
    if (paren)
        ps->p++;
    do {
        if (nd->nnames)
            ps->p++; /* , */
        const char *name = expect_name(ps);
        if (!name || add_name(ps, nd, name))
            return NULL;
    } while (is_op(ps, ","));
    if (paren && expect_op(ps, ")"))
        return NULL;
    if (!is_name(ps, "in")) {
        unexpected(ps, "'in'");
        return NULL;
    }
    ps->p++;
    if (!(nd->a = parse_tuple(ps, 0)))
        return NULL;
    if (is_name(ps, "if")) {
        ps->p++;
        if (!(nd->b = parse_expr(ps, 1)))
            return NULL;
    }
    if (is_name(ps, "recursive")) {
        perr(ps, cur(ps)->line, cur(ps)->col, "recursive loops are not supported");
        return NULL;
    }
    if (expect_end(ps))
        return NULL;
    ps->open = at;
    nd->body = parse_body(ps, ends, &which);
    if (ps->failed)
        return NULL;
    if (!strcmp(which, "else")) {
        static const char *const ends2[] = {"endfor", NULL};
        if (expect_end(ps))
            return NULL;
        ps->open = at;
        nd->orelse = parse_body(ps, ends2, &which);
        if (ps->failed)
            return NULL;
    }
    return expect_end(ps) ? NULL : nd;
}

static ch_node *parse_set(parser *ps, tok *at)
{
    ch_node *nd = node(ps, N_SET, at);
    const char *which;

    if (!nd)
        return NULL;
    const char *name = expect_name(ps);
    if (!name || add_name(ps, nd, name))
        return NULL;
    if (is_op(ps, ".")) { /* ns.attr = value */
        ps->p++;
        const char *attr = expect_name(ps);
        if (!attr)
            return NULL;
        nd->name = attr;
    } else {
        while (is_op(ps, ",")) {
            ps->p++;
            if (!(name = expect_name(ps)) || add_name(ps, nd, name))
                return NULL;
        }
    }
    if (is_op(ps, "=")) {
        ps->p++;
        if (!(nd->b = parse_tuple(ps, 1)) || expect_end(ps))
            return NULL;
        return nd;
    }
    if (nd->name || nd->nnames != 1) {
        unexpected(ps, "'='");
        return NULL;
    }
    if (is_op(ps, "|")) {
        perr(ps, cur(ps)->line, cur(ps)->col, "filters on a block set are not supported");
        return NULL;
    }
    static const char *const ends[] = {"endset", NULL};
    nd->k = N_SETBLK;
    if (expect_end(ps))
        return NULL;
    ps->open = at;
    nd->body = parse_body(ps, ends, &which);
    if (ps->failed || expect_end(ps))
        return NULL;
    return nd;
}

static ch_node *parse_macro(parser *ps, tok *at)
{
    ch_node *nd = node(ps, N_MACRO, at);
    const char *which;
    static const char *const ends[] = {"endmacro", NULL};

    if (!nd || !(nd->name = expect_name(ps)) || expect_op(ps, "("))
        return NULL;
    while (!is_op(ps, ")")) {
        const char *p = expect_name(ps);
        ch_node *def = NULL;
        if (!p)
            return NULL;
        if (is_op(ps, "=")) {
            ps->p++;
            if (!(def = parse_expr(ps, 1)))
                return NULL;
        } else if (nd->nlist && nd->list[nd->nlist - 1]) {
            perr(ps, cur(ps)->line, cur(ps)->col, "non-default argument follows default argument");
            return NULL;
        }
        if (add_name(ps, nd, p) || add_arg(ps, nd, def))
            return NULL;
        if (is_op(ps, ","))
            ps->p++;
        else if (!is_op(ps, ")")) {
            unexpected(ps, "',' or ')'");
            return NULL;
        }
    }
    ps->p++;
    if (expect_end(ps))
        return NULL;
    ps->open = at;
    nd->body = parse_body(ps, ends, &which);
    if (ps->failed)
        return NULL;
    if (cur(ps)->k == T_NAME) /* {% endmacro name %} */
        ps->p++;
    return expect_end(ps) ? NULL : nd;
}

static ch_node *parse_filter_block(parser *ps, tok *at)
{
    ch_node *nd = node(ps, N_FILTBLK, at);
    const char *which;
    static const char *const ends[] = {"endfilter", NULL};
    ch_node *chain = NULL;

    if (!nd)
        return NULL;
    do {
        if (chain)
            ps->p++; /* | */
        ch_node *f = node(ps, E_FILTER, cur(ps));
        if (!f || !(f->name = expect_name(ps)))
            return NULL;
        if (is_op(ps, "(") && parse_args(ps, f))
            return NULL;
        f->a = chain;
        chain = f;
    } while (is_op(ps, "|"));
    nd->a = chain;
    if (expect_end(ps))
        return NULL;
    ps->open = at;
    nd->body = parse_body(ps, ends, &which);
    if (ps->failed || expect_end(ps))
        return NULL;
    return nd;
}

static ch_node *parse_statement_(parser *ps);
static ch_node *parse_statement(parser *ps)
{
    if (ps->depth >= CH_MAX_PARSE_DEPTH) {
        perr(ps, cur(ps)->line, cur(ps)->col, "nested deeper than %d", CH_MAX_PARSE_DEPTH);
        return NULL;
    }
    ps->depth++;
    ch_node *nd = parse_statement_(ps);
    ps->depth--;
    return nd;
}

static ch_node *parse_statement_(parser *ps)
{
    tok *at = cur(ps);
    const char *which;

    if (at->k != T_NAME) {
        unexpected(ps, "a tag name");
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
        ch_node *nd = node(ps, name[0] == 'b' ? N_BREAK : N_CONTINUE, at);
        return !nd || expect_end(ps) ? NULL : nd;
    }
    if (!strcmp(name, "generation") || !strcmp(name, "raw")) {
        static const char *const gen[] = {"endgeneration", NULL};
        static const char *const raw[] = {"endraw", NULL};
        ch_node *nd = node(ps, N_BLOCK, at);
        if (!nd || expect_end(ps))
            return NULL;
        ps->open = at;
        nd->body = parse_body(ps, name[0] == 'g' ? gen : raw, &which);
        return ps->failed || expect_end(ps) ? NULL : nd;
    }
    static const char *const unsupported[] = {"call",  "include", "import",     "from", "extends",
                                              "block", "with",    "autoescape", "do",   "trans"};
    for (size_t k = 0; k < sizeof unsupported / sizeof *unsupported; k++)
        if (!strcmp(name, unsupported[k])) {
            perr(ps, at->line, at->col, "tag '%s' is not supported", name);
            return NULL;
        }
    perr(ps, at->line, at->col, "unknown tag '%s'", name);
    return NULL;
}

/* Statements until a block tag named in ends (NULL: until the end of the template). On
 * return cur() is the token after that tag's name and *which names it. */
static ch_node *parse_body(parser *ps, const char *const *ends, const char **which)
{
    ch_node *head = NULL, **tail = &head;
    tok *opener = ps->open;

    for (;;) {
        tok *t = cur(ps);
        ch_node *nd = NULL;
        if (t->k == T_EOF) {
            if (ends) {
                const char *last = ends[0];
                for (int q = 0; ends[q]; q++)
                    last = ends[q];
                perr(ps, t->line, t->col,
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
            if (!(nd = node(ps, N_TEXT, t)))
                return NULL;
            nd->s = t->s;
            nd->n = t->n;
        } else if (t->k == T_VAR) {
            ps->p++;
            if (!(nd = node(ps, N_OUTPUT, t)) || !(nd->a = parse_tuple(ps, 1)))
                return NULL;
            if (cur(ps)->k != T_END || cur(ps)->tag != T_VAR) {
                unexpected(ps, "end of print statement");
                return NULL;
            }
            ps->p++;
        } else if (t->k == T_BLOCK) {
            ps->p++;
            tok *nt = cur(ps);
            if (nt->k == T_NAME) {
                for (int q = 0; ends && ends[q]; q++)
                    if (!strcmp(nt->s, ends[q])) {
                        *which = ends[q];
                        ps->p++;
                        return head;
                    }
                if (!strncmp(nt->s, "end", 3) || !strcmp(nt->s, "elif") || !strcmp(nt->s, "else")) {
                    perr(ps, nt->line, nt->col, "unexpected '%s'%s%s%s", nt->s,
                         ends ? ", expected '" : "", ends ? ends[0] : "", ends ? "'" : "");
                    return NULL;
                }
            }
            if (!(nd = parse_statement(ps)))
                return NULL;
        } else {
            unexpected(ps, "template text or a tag");
            return NULL;
        }
        *tail = nd;
        tail = &nd->next;
    }
}

/* As jinja2 reads a template: every line break (\r\n, \r, \v, \f, \x1c-\x1e, U+0085,
 * U+2028, U+2029) becomes \n, and one newline at the very end is dropped
 * (keep_trailing_newline is off). */
static int normalise_newlines(parser *ps)
{
    char *o = ch_alloc(ps->a, ps->len + 1);
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)ps->src;

    if (!o) {
        perr(ps, 1, 1, "out of memory");
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
    if (normalise_newlines(&ps) == 0 && lex(&ps) == 0) {
        whitespace(&ps);
        t->body = parse_body(&ps, NULL, NULL);
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
