/*
 * chat_parser.h - the parser's private types: tokens, the token array and the parser state, shared
 * by the lexer (chat_lex.c), the expression parser (chat_parse.c) and the statement parser
 * (chat_stmt.c).
 */
#ifndef CHAT_PARSER_H
#define CHAT_PARSER_H

#include <stdarg.h>
#include "chat_internal.h"

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
    tok *open; /* the tag whose body chp_parse_body() reads next (for messages) */
    int depth; /* nesting of the recursive rules below, CH_MAX_PARSE_DEPTH at most */
    ch_arena *a;
    char *err;
    size_t errlen;
    int failed;
    /* line/column tracking for the lexer */
    size_t lc_pos;
    int lc_line, lc_col;
} parser;

/* Shared by the three parts of the parser (chp_: chat parser, private to the module). */
int chp_add_arg(parser *ps, ch_node *nd, ch_node *arg);
int chp_add_name(parser *ps, ch_node *nd, const char *name);
tok *chp_cur(parser *ps);
int chp_expect_end(parser *ps);
const char *chp_expect_name(parser *ps);
int chp_expect_op(parser *ps, const char *op);
int chp_is_name(parser *ps, const char *name);
int chp_is_op(parser *ps, const char *op);
int chp_lex(parser *ps);
ch_node *chp_node(parser *ps, ch_nkind k, const tok *at);
int chp_normalise_newlines(parser *ps);
int chp_parse_args(parser *ps, ch_node *nd);
ch_node *chp_parse_body(parser *ps, const char *const *ends, const char **which);
ch_node *chp_parse_expr(parser *ps, int with_cond);
ch_node *chp_parse_tuple(parser *ps, int with_cond);
void chp_perr(parser *ps, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void chp_unexpected(parser *ps, const char *expected);
void chp_whitespace(parser *ps);

#endif
