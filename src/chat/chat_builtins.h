/*
 * chat_builtins.h - what the built-ins share: the argument list of a call and the helpers of
 * chat_filters.c (arguments, filters), chat_tests.c (tests, globals), chat_strings.c (UTF-8, case,
 * strip/split/replace, str and dict methods) and chat_format.c (printf-style %).
 */
#ifndef CHAT_BUILTINS_H
#define CHAT_BUILTINS_H

#include "chat_internal.h"

typedef struct argv_ {
    ch_val **args;
    int nargs;
    const char **kwn;
    ch_val **kwv;
    int nkw;
} argv_;

/* The case mappings of chb_recase (upper, lower, capitalize, Python's and jinja2's title). */
enum { CASE_UPPER, CASE_LOWER, CASE_CAP, CASE_PYTITLE, CASE_JTITLE };

/* Shared by the built-ins' files (chb_: chat built-ins, private to the module). */
ch_val *chb_arg(const argv_ *a, int pos, const char *name);
int chb_case_test(const ch_val *v, int upper);
int chb_check_args(ch_ctx *c, const ch_node *nd, const char *what, const char *name, const argv_ *a,
                   int maxpos, const char *const *kws);
ch_val *chb_dict_items(ch_ctx *c, const ch_val *d, int which);
int chb_in_table(const char *const *t, const char *name);
int chb_need_int(ch_ctx *c, const ch_node *nd, const ch_val *v, const char *what, long long *out);
int chb_need_str(ch_ctx *c, const ch_node *nd, const ch_val *v, const char *what);
ch_val *chb_oom(ch_ctx *c);
ch_val *chb_recase(ch_ctx *c, const ch_val *v, int mode);
ch_val *chb_replace(ch_ctx *c, const ch_node *nd, const ch_val *v, const ch_val *old,
                    const ch_val *new_, const ch_val *count);
ch_val *chb_strip(ch_ctx *c, const ch_val *v, const ch_val *chars, int left, int right);
ch_val *chb_join(ch_ctx *c, const ch_node *nd, const ch_val *seq, const ch_val *sep,
                 const ch_val *attr);
int chb_wide_class(unsigned long cp, int alnum);

#endif
