/*
 * rb_buf.h - growable byte buffer that requires a maximum.
 *
 *     rb_buf b;
 *     rb_buf_init(&b, 1 << 20);          // never grows past 1 MiB
 *     if (rb_buf_append(&b, p, n)) ...   // RB_ETOOBIG past the limit, RB_ENOMEM
 *     use(b.data, b.len);                // data is always NUL-terminated
 *     rb_buf_release(&b);
 */
#ifndef RB_BUF_H
#define RB_BUF_H

#include <stddef.h>
#include "rb_err.h"

typedef struct rb_buf {
    char *data; /* NUL-terminated when non-NULL; owned */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* len never exceeds max */
} rb_buf;

void rb_buf_init(rb_buf *b, size_t max);
/* Frees the memory; b can be initialised again. NULL-safe. */
void rb_buf_release(rb_buf *b);
void rb_buf_reset(rb_buf *b); /* len = 0, keeps memory */
rb_err rb_buf_append(rb_buf *b, const void *p, size_t n);
rb_err rb_buf_appendf(rb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
rb_err rb_buf_appends(rb_buf *b, const char *s);
/* Removes the first n bytes (n <= len). */
void rb_buf_consume(rb_buf *b, size_t n);
/* Hands the memory to the caller (caller frees with free()); b becomes empty. */
char *rb_buf_detach(rb_buf *b, size_t *len);

#endif
