/*
 * chat_format.c - Python's printf-style formatting, 'fmt' % args, for the conversions real
 * templates use; anything else fails by name.
 */
#include <ctype.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wctype.h>

#include "chat_internal.h"
#include "rb_utf8.h"
#include "chat_builtins.h"

/* ---- printf-style formatting: 'fmt' % args ---- */

static int pad_append(rb_buf *b, const char *s, size_t n, long width, int left)
{
    size_t chars = ch_utf8_len(s, n);
    size_t pad = width > 0 && (size_t)width > chars ? (size_t)width - chars : 0;
    int bad = 0;
    for (size_t i = 0; !left && i < pad; i++)
        bad |= rb_buf_append(b, " ", 1) != RB_OK;
    bad |= rb_buf_append(b, s, n) != RB_OK;
    for (size_t i = 0; left && i < pad; i++)
        bad |= rb_buf_append(b, " ", 1) != RB_OK;
    return bad ? -1 : 0;
}

/* "%<flags><width>.<prec><len><conv>" for snprintf; width and prec < 0: none */
static void format_spec(char *spec, size_t n, const char *flags, long width, long prec,
                        const char *len, char conv)
{
    char w[24] = "", p[24] = "";
    if (width >= 0)
        snprintf(w, sizeof w, "%ld", width);
    if (prec >= 0)
        snprintf(p, sizeof p, ".%ld", prec);
    snprintf(spec, n, "%%%s%s%s%s%c", flags, w, p, len, conv);
}

ch_val *ch_percent_format(ch_ctx *c, const ch_node *nd, const ch_val *fmt, ch_val *arg)
{
    ch_val *const *args = &arg;
    size_t nargs = 1, used = 0;
    const char *f = fmt->u.s.s;
    size_t n = fmt->u.s.n;
    rb_buf b;
    ch_val *r = NULL;

    if (arg->k == V_LIST && arg->u.l.tuple) {
        args = arg->u.l.v;
        nargs = arg->u.l.n;
    } else if (arg->k == V_DICT && memchr(f, '(', n)) {
        return ch_fail(c, nd, "'%%(name)s' formatting is not supported");
    }
    rb_buf_init(&b, (size_t)1 << 26);
    for (size_t i = 0; i < n; i++) {
        if (f[i] != '%') {
            if (rb_buf_append(&b, f + i, 1))
                goto oom;
            continue;
        }
        char flags[8] = "";
        size_t nf = 0;
        long width = -1, prec = -1;
        i++;
        while (i < n && strchr("-+ 0#", f[i]) && nf < sizeof flags - 1)
            flags[nf++] = f[i++];
        if (i < n && f[i] == '*') {
            ch_fail(c, nd, "'*' widths in %% formatting are not supported");
            goto out;
        }
        /* digits past the limits below only keep the value above them (no overflow) */
        for (; i < n && f[i] >= '0' && f[i] <= '9'; i++)
            width = width > 100000 ? width : (width < 0 ? 0 : width) * 10 + (f[i] - '0');
        if (i < n && f[i] == '.') {
            prec = 0;
            for (i++; i < n && f[i] >= '0' && f[i] <= '9'; i++)
                prec = prec > 100000 ? prec : prec * 10 + (f[i] - '0');
        }
        if (width > 1000 || prec > 100) {
            ch_fail(c, nd, "%% format width or precision too large");
            goto out;
        }
        if (i >= n) {
            ch_fail(c, nd, "incomplete format");
            goto out;
        }
        char t = f[i];
        if (t == '%') {
            if (rb_buf_append(&b, "%", 1))
                goto oom;
            continue;
        }
        if (strchr(flags, '#')) {
            ch_fail(c, nd, "the '#' flag in %% formatting is not supported");
            goto out;
        }
        if (used >= nargs) {
            ch_fail(c, nd, "not enough arguments for format string");
            goto out;
        }
        ch_val *v = args[used++];
        int left = strchr(flags, '-') != NULL;
        if (t == 's' || t == 'r') {
            rb_buf tmp;
            rb_buf_init(&tmp, (size_t)1 << 26);
            int bad = t == 's' ? ch_to_str(&tmp, v) : ch_repr(&tmp, v);
            if (bad == -2) {
                rb_buf_release(&tmp);
                ch_str_error(c, nd, bad);
                goto out;
            }
            const char *ts = tmp.data ? tmp.data : "";
            size_t tn = tmp.len;
            if (!bad && prec >= 0)
                tn = ch_utf8_off(ts, tn, (size_t)prec);
            bad = bad || pad_append(&b, ts, tn, width, left);
            rb_buf_release(&tmp);
            if (bad)
                goto oom;
            continue;
        }
        char spec[32], out[1200];
        int len;
        if (strchr("diu", t) || strchr("xXo", t)) {
            long long iv;
            if (v->k == V_INT || v->k == V_BOOL)
                iv = v->k == V_INT ? v->u.i : v->u.b;
            else if (v->k == V_FLOAT && strchr("diu", t) && isfinite(v->u.f) &&
                     fabs(v->u.f) < 9.2e18)
                iv = (long long)v->u.f;
            else {
                ch_fail(c, nd, "%%%c format: a number is required, not %s", t, ch_kind_name(v));
                goto out;
            }
            if (strchr("xXo", t) && iv < 0) {
                ch_fail(c, nd, "%%%c of a negative number is not supported", t);
                goto out;
            }
            format_spec(spec, sizeof spec, flags, width, prec, "ll", t == 'u' ? 'd' : t);
            len = snprintf(out, sizeof out, spec, iv);
        } else if (strchr("eEfFgG", t)) {
            double dv;
            if (v->k == V_FLOAT || v->k == V_INT || v->k == V_BOOL)
                dv = v->k == V_FLOAT ? v->u.f : v->k == V_INT ? (double)v->u.i : v->u.b;
            else {
                ch_fail(c, nd, "%%%c format: a number is required, not %s", t, ch_kind_name(v));
                goto out;
            }
            format_spec(spec, sizeof spec, flags, width, prec < 0 ? 6 : prec, "", t);
            len = snprintf(out, sizeof out, spec, dv);
        } else {
            ch_fail(c, nd, "%%%c in %% formatting is not supported", t);
            goto out;
        }
        if (len < 0 || (size_t)len >= sizeof out || rb_buf_append(&b, out, (size_t)len))
            goto oom;
    }
    if (used < nargs && (arg->k == V_LIST && arg->u.l.tuple)) {
        ch_fail(c, nd, "not all arguments converted during string formatting");
        goto out;
    }
    if (used == 0 && !(arg->k == V_LIST && arg->u.l.tuple) && arg->k != V_DICT) {
        ch_fail(c, nd, "not all arguments converted during string formatting");
        goto out;
    }
    r = ch_str(c, b.data ? b.data : "", b.len);
    if (!r)
        goto oom;
out:
    rb_buf_release(&b);
    return r;
oom:
    rb_buf_release(&b);
    return chb_oom(c);
}
