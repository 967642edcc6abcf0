/*
 * chat_lex.c - Jinja source to tokens: text, tags and what is inside them, then the whitespace
 * control of trim_blocks, lstrip_blocks and the - / + signs (see chat_parse.c's DESIGN).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "rb_utf8.h"
#include "chat_parser.h"

void chp_perr(parser *ps, int line, int col, const char *fmt, ...)
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
            chp_perr(ps, 0, 0, "out of memory");
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
        chp_perr(ps, t->line, t->col, "out of memory");
        return -1;
    }
    for (;;) {
        if (j >= ps->len) {
            chp_perr(ps, t->line, t->col, "unterminated string");
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
            chp_perr(ps, t->line, t->col, "unterminated string");
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
                    chp_perr(ps, t->line, t->col, "truncated \\%c escape in a string", e);
                    return -1;
                }
                cp = cp * 16 + (unsigned long)h;
                j++;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                chp_perr(ps, t->line, t->col, "invalid code point in a string escape");
                return -1;
            }
            if (cp == 0) {
                chp_perr(ps, t->line, t->col, "a NUL character in a string is not supported");
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
                    chp_perr(ps, t->line, t->col, "a NUL character in a string is not supported");
                    return -1;
                }
                n += rb_utf8_encode(cp, o + n);
            } else if (e == 'N') {
                chp_perr(ps, t->line, t->col, "\\N{...} escapes are not supported");
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
            chp_perr(ps, line, col, "unexpected end of template, expected '%s'",
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
                chp_perr(ps, t->line, t->col,
                         "leading zeros in integer literals are not permitted");
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
                    chp_perr(ps, t->line, t->col, "unexpected character '%.*s'", cl, s);
                    return -1;
                }
                t->op[0] = (char)ch;
                if (strchr("([{", ch)) {
                    if (depth == (int)sizeof stack) {
                        chp_perr(ps, t->line, t->col, "brackets nested too deep");
                        return -1;
                    }
                    stack[depth++] = ch == '(' ? ')' : ch == '[' ? ']' : '}';
                } else if (strchr(")]}", ch)) {
                    if (depth == 0 || stack[depth - 1] != (char)ch) {
                        if (depth)
                            chp_perr(ps, t->line, t->col, "unexpected '%c', expected '%c'", ch,
                                     stack[depth - 1]);
                        else
                            chp_perr(ps, t->line, t->col, "unexpected '%c'", ch);
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

int chp_lex(parser *ps)
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
                chp_perr(ps, t->line, t->col, "unterminated comment");
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
                chp_perr(ps, t->line, t->col, "'raw' without 'endraw'");
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
void chp_whitespace(parser *ps)
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
