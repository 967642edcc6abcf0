/*
 * chat_exec.c - running a template: for loops and their loop variable, if, set, macro and filter
 * blocks, the statement list, and the render entry points (ch_render, chat_template_render).
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "chat_evaluator.h"

/* The items a for loop walks. */
static ch_val *iter_items(ch_ctx *c, const ch_node *nd, ch_val *v)
{
    ch_val *l;
    switch (v->k) {
    case V_LIST:
        return v->u.l.gen ? ch_gen_take(c, v) : v;
    case V_UNDEF:
        return ch_list(c, 0);
    case V_DICT:
        if (!(l = ch_list(c, v->u.d.n + 1)))
            return chev_nomem(c);
        for (size_t i = 0; i < v->u.d.n; i++) {
            ch_val *k = ch_str_own(c, v->u.d.key[i], strlen(v->u.d.key[i]));
            if (!k || ch_list_push(c, l, k))
                return chev_nomem(c);
        }
        return l;
    case V_STR:
        if (!(l = ch_list(c, v->u.s.n + 1)))
            return chev_nomem(c);
        for (size_t i = 0; i < v->u.s.n;) {
            size_t j = i + 1;
            while (j < v->u.s.n && ((unsigned char)v->u.s.s[j] & 0xC0) == 0x80)
                j++;
            ch_val *ch = ch_str_own(c, v->u.s.s + i, j - i);
            if (!ch || ch_list_push(c, l, ch))
                return chev_nomem(c);
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
        return ch_dict_set(c, f->vars, nd->names[0], item) ? (chev_nomem(c), -1) : 0;
    if (item->k != V_LIST || item->u.l.n != (size_t)nd->nnames) {
        if (item->k == V_LIST)
            ch_fail(c, nd, "cannot unpack %zu values into %d names", item->u.l.n, nd->nnames);
        else
            ch_fail(c, nd, "cannot unpack a '%s' into %d names", ch_kind_name(item), nd->nnames);
        return -1;
    }
    for (int i = 0; i < nd->nnames; i++)
        if (ch_dict_set(c, f->vars, nd->names[i], item->u.l.v[i]))
            return chev_nomem(c), -1;
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
            return chev_nomem(c), ST_ERR;
        for (size_t i = 0; i < items->u.l.n; i++) {
            ch_frame *tf = chev_frame_new(c, f);
            ch_val *cv;
            if (!tf || bind(c, nd, tf, items->u.l.v[i]) || !(cv = ch_eval(c, tf, nd->b)))
                return ST_ERR;
            if (ch_truthy(cv) && ch_list_push(c, kept, items->u.l.v[i]))
                return chev_nomem(c), ST_ERR;
        }
        items = kept;
    }
    size_t n = items->u.l.n;
    for (size_t i = 0; i < n; i++) {
        if (ch_steps(c, nd, 1))
            return ST_ERR;
        ch_frame *lf = chev_frame_new(c, f);
        ch_val *loop = ch_dict(c, V_DICT);
        if (!lf || !loop)
            return chev_nomem(c), ST_ERR;
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
                return chev_nomem(c), ST_ERR;
        if ((i > 0 && ch_dict_set(c, loop, "previtem", items->u.l.v[i - 1])) ||
            (i + 1 < n && ch_dict_set(c, loop, "nextitem", items->u.l.v[i + 1])) ||
            ch_dict_set(c, lf->vars, "loop", loop) || bind(c, nd, lf, items->u.l.v[i]))
            return c->rc ? ST_ERR : (chev_nomem(c), ST_ERR);
        int st = chev_exec_list(c, lf, nd->body);
        if (st == ST_ERR)
            return st;
        if (st == ST_BREAK)
            break;
    }
    if (n == 0 && nd->orelse) {
        ch_frame *ef = chev_frame_new(c, f);
        if (!ef)
            return ST_ERR;
        return chev_exec_list(c, ef, nd->orelse);
    }
    return ST_OK;
}

static ch_val *apply_filter_chain(ch_ctx *c, ch_frame *f, const ch_node *chain, ch_val *text)
{
    ch_val *v = chain->a ? apply_filter_chain(c, f, chain->a, text) : text, **args, **kwv;
    if (!v || chev_eval_args(c, f, chain, &args, &kwv))
        return NULL;
    return ch_filter(c, chain, v, args, chain->nlist, chain->kwname, kwv, chain->nkw);
}

static int exec_stmts(ch_ctx *c, ch_frame *f, const ch_node *st);

int chev_exec_list(ch_ctx *c, ch_frame *f, const ch_node *st)
{
    if (!st)
        return ST_OK;
    if (c->eval_depth >= CH_MAX_EVAL_DEPTH) {
        ch_fail(c, st, "expressions and blocks nested deeper than %d", CH_MAX_EVAL_DEPTH);
        return ST_ERR;
    }
    c->eval_depth++;
    int r = exec_stmts(c, f, st);
    c->eval_depth--;
    return r;
}

static int exec_stmts(ch_ctx *c, ch_frame *f, const ch_node *st)
{
    for (; st; st = st->next) {
        if (ch_steps(c, st, 1))
            return ST_ERR;
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
            if ((r = ch_to_str(c->out, v))) {
                if (r == -2)
                    ch_str_error(c, st, r);
                else
                    ch_fail(c, st, "the rendered text is over %zu bytes", (size_t)CH_MAX_OUT);
                return ST_ERR;
            }
            break;
        case N_IF:
            if (!(v = ch_eval(c, f, st->a)))
                return ST_ERR;
            r = chev_exec_list(c, f, ch_truthy(v) ? st->body : st->orelse);
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
                ch_val *ns = chev_lookup(f, st->names[0]);
                if (!ns || ns->k != V_NS) {
                    ch_fail(c, st, "cannot assign attribute '%s' on %s: not a namespace", st->name,
                            ns ? ch_kind_name(ns) : "an undefined name");
                    return ST_ERR;
                }
                if (ch_dict_set(c, ns, st->name, v))
                    return chev_nomem(c), ST_ERR;
            } else if (st->nnames == 1) {
                if (ch_dict_set(c, f->vars, st->names[0], v))
                    return chev_nomem(c), ST_ERR;
            } else if (bind(c, st, f, v)) {
                return ST_ERR;
            }
            break;
        case N_SETBLK:
            if (!(v = chev_capture(c, f, st->body, st)) || ch_dict_set(c, f->vars, st->names[0], v))
                return c->rc ? ST_ERR : (chev_nomem(c), ST_ERR);
            break;
        case N_MACRO:
            if (!(v = ch_new(c, V_MACRO)))
                return chev_nomem(c), ST_ERR;
            v->u.macro = st;
            if (ch_dict_set(c, f->vars, st->name, v))
                return chev_nomem(c), ST_ERR;
            break;
        case N_BREAK:
            return ST_BREAK;
        case N_CONTINUE:
            return ST_CONTINUE;
        case N_FILTBLK:
            if (!(v = chev_capture(c, f, st->body, st)) ||
                !(v = apply_filter_chain(c, f, st->a, v)))
                return ST_ERR;
            if ((r = ch_to_str(c->out, v))) {
                if (r == -2)
                    ch_str_error(c, st, r);
                else
                    ch_fail(c, st, "the rendered text is over %zu bytes", (size_t)CH_MAX_OUT);
                return ST_ERR;
            }
            break;
        case N_BLOCK:
            if ((r = chev_exec_list(c, f, st->body)) != ST_OK)
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
    if (!(c.globals = chev_frame_new(&c, NULL)) ||
        set_global(&c, "messages", ch_from_json(&c, messages)) ||
        set_global(&c, "bos_token", ch_str(&c, bos, strlen(bos))) ||
        set_global(&c, "eos_token", ch_str(&c, eos, strlen(eos))) ||
        set_global(&c, "add_generation_prompt", ch_bool(o->add_generation_prompt)) ||
        set_global(&c, "tools", &ch_none) || set_func(&c, "raise_exception") ||
        set_func(&c, "strftime_now") || set_func(&c, "namespace") || set_func(&c, "range") ||
        set_func(&c, "dict") || set_extra(&c, extra)) {
        chev_nomem(&c);
    } else {
        int st = chev_exec_list(&c, c.globals, t->body);
        if (st > 0)
            ch_fail(&c, NULL, "'%s' outside of a loop", st == ST_BREAK ? "break" : "continue");
        else if (st < 0 && !c.rc)
            chev_nomem(&c);
    }
    if (!c.rc && b.data && memchr(b.data, '\0', b.len)) /* the caller gets a C string */
        ch_fail(&c, NULL, "the rendered text contains a NUL character");
    if (c.rc && (!err || !errlen || !err[0]))
        ch_nomem(&c); /* an allocation failed deep down: say so */
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
