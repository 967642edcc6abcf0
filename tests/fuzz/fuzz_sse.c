/*
 * fuzz_sse - libFuzzer target: the SSE frame parser on arbitrary bytes, fed in slices whose
 * sizes come from the input itself, with a small line limit so the RB_ETOOBIG path is taken.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rb_sse.h"

static int on_event(void *user, const char *event, const char *data, size_t len)
{
    size_t *n = user;
    (void)event;
    if (len && data[len] != '\0')
        __builtin_trap(); /* the parser promises NUL-terminated data */
    return ++*n > 100000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_sse_parser p;
    size_t events = 0, at = 0;
    unsigned seed = size ? data[0] : 0;

    rb_sse_parser_init(&p, 512, on_event, &events);
    while (at < size) {
        size_t n = 1 + (seed % 17);
        seed = seed * 1103515245u + 12345u;
        if (n > size - at)
            n = size - at;
        if (rb_sse_parser_feed(&p, (const char *)data + at, n) != RB_OK)
            break;
        at += n;
    }
    rb_sse_parser_release(&p);
    return 0;
}
