/*
 * buf.c - growable byte buffer with a required maximum.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_buf.h"

void rb_buf_init(rb_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void rb_buf_release(rb_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void rb_buf_reset(rb_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static rb_err grow(rb_buf *b, size_t need)
{
    size_t cap;
    char *p;

    if (need > b->max)
        return RB_ETOOBIG;
    if (need + 1 <= b->cap)
        return RB_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need + 1)
        cap = cap > ((size_t)-1) / 2 ? need + 1 : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if (!p)
        return RB_ENOMEM;
    b->data = p;
    b->cap = cap;
    return RB_OK;
}

rb_err rb_buf_append(rb_buf *b, const void *p, size_t n)
{
    rb_err rc;

    if (n > b->max - b->len)
        return RB_ETOOBIG;
    rc = grow(b, b->len + n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return RB_OK;
}

rb_err rb_buf_appends(rb_buf *b, const char *s)
{
    return rb_buf_append(b, s, strlen(s));
}

rb_err rb_buf_appendf(rb_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    rb_err rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RB_EINVAL;
    if ((size_t)n > b->max - b->len)
        return RB_ETOOBIG;
    rc = grow(b, b->len + (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return RB_OK;
}

void rb_buf_consume(rb_buf *b, size_t n)
{
    if (n >= b->len) {
        rb_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *rb_buf_detach(rb_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
