/*
 * chat_evaluator.h - what the evaluator's files share: its limits and status codes and the helpers
 * of chat_eval.c (names, attributes, items, calls, expressions), chat_ops.c (arithmetic,
 * comparison, membership) and chat_exec.c (statements and rendering).
 */
#ifndef CHAT_EVALUATOR_H
#define CHAT_EVALUATOR_H

#include <stdarg.h>
#include "chat_internal.h"

#define CH_MAX_DEPTH 64
#define CH_MAX_OUT ((size_t)1 << 26)
#define CH_MAX_ARENA ((size_t)1 << 28)

enum { ST_OK = 0, ST_ERR = -1, ST_BREAK = 1, ST_CONTINUE = 2 };

/* Shared by the evaluator's files (chev_: chat evaluator, private to the module). */
ch_val *chev_binop(ch_ctx *c, const ch_node *nd, int op, ch_val *a, ch_val *b);
ch_val *chev_capture(ch_ctx *c, ch_frame *f, const ch_node *body, const ch_node *at);
ch_val *chev_cmpop(ch_ctx *c, const ch_node *nd, int op, ch_val *a, ch_val *b);
int chev_eval_args(ch_ctx *c, ch_frame *f, const ch_node *nd, ch_val ***args, ch_val ***kwv);
int chev_exec_list(ch_ctx *c, ch_frame *f, const ch_node *st);
ch_frame *chev_frame_new(ch_ctx *c, ch_frame *parent);
int chev_is_num(const ch_val *v);
long long chev_ival(const ch_val *v);
ch_val *chev_lookup(ch_frame *f, const char *name);
ch_val *chev_nomem(ch_ctx *c);

#endif
