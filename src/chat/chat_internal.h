/*
 * chat_internal.h - the pieces of the chat-template renderer shared by its files: the arena
 * every value and node lives in, the syntax tree (chat_parse.c builds it), the values
 * (chat_value.c), and the evaluator's context (chat_eval.c, chat_filters.c, chat_tests.c).
 *
 * DESIGN: a template is parsed once into a tree that is never written again, so one
 * chat_template can be rendered by many threads at once. A render allocates every value in
 * its own arena and frees the arena in one go at the end: values are never freed one by one,
 * which keeps the evaluator free of reference counting. Functions that can fail return NULL
 * (values) or -1 (statements) after writing the error into the context.
 */
#ifndef CHAT_INTERNAL_H
#define CHAT_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "chat.h"
#include "rb_buf.h"

/* ---- arena ---- */
typedef struct ch_block ch_block;
typedef struct ch_arena {
    ch_block *head;
    size_t used; /* bytes handed out over all blocks */
    size_t max;  /* ch_alloc fails past this */
    int over;    /* an allocation was refused because of max */
} ch_arena;
void *ch_alloc(ch_arena *a, size_t n); /* zeroed; NULL when out of memory or past max */
char *ch_strndup(ch_arena *a, const char *s, size_t n);
void ch_arena_release(ch_arena *a);

/* ---- values ---- */
typedef enum ch_kind {
    V_UNDEF,
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST,
    V_DICT,
    V_NS,    /* namespace(): a dict whose attributes `set` may assign */
    V_MACRO, /* a {% macro %} */
    V_FUNC,  /* a global function (fn) or a method bound to self */
} ch_kind;

typedef struct ch_val ch_val;
struct ch_val {
    ch_kind k;
    union {
        int b;
        long long i;
        double f;
        struct {
            const char *s;
            size_t n;
        } s;
        struct {
            ch_val **v;
            size_t n, cap;
            int tuple;  /* prints as (a, b): items() pairs, (a, b) literals */
            int gen;    /* a one-pass iterator, as jinja2's select, map, ... return */
            size_t pos; /* gen: the items before pos were consumed */
        } l;
        struct {
            const char **key;
            ch_val **v;
            size_t n, cap;
        } d;
        const struct ch_node *macro;
        struct {
            const char *name; /* global or method name */
            ch_val *self;     /* bound object, NULL for globals */
        } fn;
    } u;
    const char *hint; /* V_UNDEF: the name that was looked up (for messages) */
    int depth;        /* containers: 1 + the deepest element (CH_MAX_NEST at most) */
};

/* Limits that keep a hostile template from exhausting the stack or the CPU: value nesting,
 * evaluation depth (expressions, blocks and macro calls together), and the number of steps
 * (expression evaluations, statements, loop iterations, comparisons) of one render. */
#define CH_MAX_NEST 256
#define CH_MAX_EVAL_DEPTH 500
#define CH_MAX_STEPS 50000000LL

/* ---- syntax tree ---- */
typedef enum ch_nkind {
    /* statements */
    N_TEXT,   /* text, s/n */
    N_OUTPUT, /* {{ a }} */
    N_IF,     /* a cond, body, orelse */
    N_FOR,    /* names targets, a iter, b filter cond, body, orelse */
    N_SET,    /* names targets (or attr: a obj name + name attr), b value */
    N_SETBLK, /* names[0] target, body */
    N_MACRO,  /* name, names params, list defaults (NULL entries: none), body */
    N_BREAK,
    N_CONTINUE,
    N_FILTBLK, /* a the filter chain applied to body's text (a's innermost operand is NULL) */
    N_BLOCK,   /* body rendered as is ({% generation %}) */
    /* expressions */
    E_LIT,    /* lit */
    E_NAME,   /* name */
    E_ATTR,   /* a.name */
    E_ITEM,   /* a[b] */
    E_SLICE,  /* a[list[0]:list[1]:list[2]] (NULL: omitted) */
    E_CALL,   /* a(list..., kw) */
    E_FILTER, /* a | name(list..., kw) */
    E_TEST,   /* a is [not] name(list...); op 1: negated */
    E_BIN,    /* a op b */
    E_CMP,    /* a op b */
    E_NEG,    /* -a */
    E_POS,    /* +a */
    E_NOT,
    E_AND,
    E_OR,
    E_COND,  /* b if a else c */
    E_LIST,  /* [list] */
    E_TUPLE, /* (list) */
    E_DICT,  /* {list[2i]: list[2i+1]} */
} ch_nkind;

typedef struct ch_node ch_node;
struct ch_node {
    ch_nkind k;
    int line, col;
    int op;             /* operator (CH_OP_*) */
    const char *name;   /* names, filter/test/attribute names */
    const char *s;      /* N_TEXT */
    size_t n;           /* N_TEXT length */
    ch_val *lit;        /* E_LIT */
    ch_node *a, *b, *c; /* operands */
    ch_node **list;     /* positional arguments, items */
    int nlist;
    const char **kwname; /* keyword arguments: kwname[i] = kwval[i] */
    ch_node **kwval;
    int nkw;
    const char **names; /* targets or parameters */
    int nnames;
    ch_node *body, *orelse; /* statement lists */
    ch_node *next;          /* next statement */
};

enum {
    CH_OP_ADD = 1,
    CH_OP_SUB,
    CH_OP_MUL,
    CH_OP_DIV,
    CH_OP_FLOORDIV,
    CH_OP_MOD,
    CH_OP_POW,
    CH_OP_CONCAT,
    CH_OP_EQ,
    CH_OP_NE,
    CH_OP_LT,
    CH_OP_LE,
    CH_OP_GT,
    CH_OP_GE,
    CH_OP_IN,
    CH_OP_NOTIN,
};

struct chat_template {
    ch_arena arena; /* every node and literal */
    ch_node *body;
};

/* ---- rendering ---- */
typedef struct ch_frame ch_frame;
struct ch_frame {
    ch_frame *parent;
    ch_val *vars; /* V_DICT */
};

typedef struct ch_ctx {
    ch_arena arena;
    rb_buf *out; /* where output goes now (macros and block sets capture) */
    ch_frame *globals;
    const chat_render_opts *o;
    char *err;
    size_t errlen;
    rb_err rc;
    int depth;         /* macro call depth */
    int eval_depth;    /* ch_eval and statement-list nesting */
    const ch_node *at; /* the expression being evaluated (for errors without a node) */
    long long steps;
    int raised; /* the error came from raise_exception() */
} ch_ctx;

/* Sets the error at node nd ("line L, column C: ...") once; returns NULL. */
ch_val *ch_fail(ch_ctx *c, const ch_node *nd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the out-of-memory error (or the memory-limit one) unless an error is set; NULL. */
ch_val *ch_nomem(ch_ctx *c);
/* Counts n steps; -1 (and the error set) past CH_MAX_STEPS. */
int ch_steps(ch_ctx *c, const ch_node *nd, long long n);

/* chat_value.c */
extern ch_val ch_undef, ch_none, ch_true, ch_false;
ch_val *ch_new(ch_ctx *c, ch_kind k);
ch_val *ch_undef_named(ch_ctx *c, const char *name);
ch_val *ch_int(ch_ctx *c, long long i);
ch_val *ch_float(ch_ctx *c, double f);
ch_val *ch_bool(int b);
ch_val *ch_str(ch_ctx *c, const char *s, size_t n);     /* copies */
ch_val *ch_str_own(ch_ctx *c, const char *s, size_t n); /* s already in the arena */
ch_val *ch_list(ch_ctx *c, size_t cap);
ch_val *ch_dict(ch_ctx *c, ch_kind k);
int ch_list_push(ch_ctx *c, ch_val *l, ch_val *v);                 /* -1 out of memory */
int ch_dict_set(ch_ctx *c, ch_val *d, const char *key, ch_val *v); /* key in the arena */
ch_val *ch_dict_get(const ch_val *d, const char *key);             /* NULL: absent */
ch_val *ch_from_json(ch_ctx *c, const json_t *j);
int ch_truthy(const ch_val *v);
int ch_equal(const ch_val *a, const ch_val *b);
/* -2: not comparable, else -1/0/1 */
int ch_compare(const ch_val *a, const ch_val *b);
const char *ch_kind_name(const ch_val *v); /* Python's type name */
/* str(v) appended to b; 0, -1 (out of memory) or -2 (v holds a generator, which jinja2
 * prints with its address: refused) */
int ch_to_str(rb_buf *b, const ch_val *v);
ch_val *ch_stringify(ch_ctx *c, ch_val *v); /* str(v) as a value; NULL on error (set) */
/* The items of generator g not consumed yet, as a plain list; g is consumed. */
ch_val *ch_gen_take(ch_ctx *c, ch_val *g);
/* Sets the error for ch_to_str()'s result r (-1 memory, -2 a generator); returns -1. */
int ch_str_error(ch_ctx *c, const ch_node *nd, int r);
/* json.dumps's options: indent < 0 none; item and key separators (NULL: Python's defaults,
 * ", " and ": ", or "," and ": " with an indent); sort_keys; ensure_ascii. */
typedef struct ch_json_opts {
    int indent;
    const char *item_sep, *key_sep;
    int sort_keys, ascii;
} ch_json_opts;
/* json.dumps(v, ...) appended to b. 0, -1 (memory), -2 (a value JSON cannot hold) */
int ch_to_json(rb_buf *b, const ch_val *v, const ch_json_opts *o, int level);
size_t ch_utf8_len(const char *s, size_t n); /* code points */
/* Byte offset of code point i of s (i <= length). */
size_t ch_utf8_off(const char *s, size_t n, size_t i);
int ch_is_space_at(const char *s, size_t n, size_t i, size_t *len); /* Python isspace */

/* repr(v) appended to b (strings quoted); 0 or -1 (out of memory) */
int ch_repr(rb_buf *b, const ch_val *v);

/* chat_filters.c, chat_format.c, chat_strings.c */
/* Python's fmt % arg (arg a tuple for several values): %s %r %d %i %u %x %X %o %e %f %g, the
 * flags - + space 0, width and precision; anything else fails by name. */
ch_val *ch_percent_format(ch_ctx *c, const ch_node *nd, const ch_val *fmt, ch_val *arg);
ch_val *ch_filter(ch_ctx *c, const ch_node *nd, ch_val *v, ch_val **args, int nargs,
                  const char **kwn, ch_val **kwv, int nkw);
ch_val *ch_call_method(ch_ctx *c, const ch_node *nd, ch_val *self, const char *name, ch_val **args,
                       int nargs, const char **kwn, ch_val **kwv, int nkw);
int ch_has_method(const ch_val *self, const char *name);
/* chat_tests.c */
int ch_test(ch_ctx *c, const ch_node *nd, const char *name, ch_val *v, ch_val **args,
            int nargs); /* 1/0, -1 error */
ch_val *ch_call_global(ch_ctx *c, const ch_node *nd, const char *name, ch_val **args, int nargs,
                       const char **kwn, ch_val **kwv, int nkw);

/* chat_eval.c */
ch_val *ch_eval(ch_ctx *c, ch_frame *f, const ch_node *e);
ch_val *ch_getattr(ch_ctx *c, const ch_node *nd, ch_val *obj, const char *name);
ch_val *ch_getitem(ch_ctx *c, const ch_node *nd, ch_val *obj, ch_val *key);
ch_val *ch_call_value(ch_ctx *c, const ch_node *nd, ch_val *fn, ch_val **args, int nargs,
                      const char **kwn, ch_val **kwv, int nkw);
int ch_undef_error(ch_ctx *c, const ch_node *nd, const ch_val *v); /* always -1 */
/* chat_template_render() with more globals from the JSON object extra (may be NULL);
 * *raised (may be NULL): the error came from raise_exception() */
rb_err ch_render(const chat_template *t, const json_t *messages, const chat_render_opts *o,
                 const json_t *extra, char **out, char *err, size_t errlen, int *raised);
/* strftime(fmt) of opts->today (midnight) or of now; 0 when it does not fit */
size_t ch_strftime(const chat_render_opts *o, const char *fmt, char *out, size_t n);

#endif
