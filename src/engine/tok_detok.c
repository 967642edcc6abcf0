/*
 * tok_detok.c - ids back to text, incrementally (see eng_tok.h).
 *
 * DESIGN. Every token's bytes were worked out at load (tok.c), so a push is: pick the bytes
 * (nothing for control and unknown tokens unless asked), drop SentencePiece's leading space
 * on the first text token when the ids begin the text, then run the pending bytes plus the
 * new ones through a UTF-8 checker. Complete characters go out; an unfinished character at
 * the end waits in `pend` (at most 3 bytes); bytes that cannot start or continue a character
 * become U+FFFD, one per maximal invalid subpart as Unicode recommends. Buffers are sized
 * at creation from the longest token, so a push never allocates.
 */
#include <stdlib.h>
#include <string.h>

#include "rb_utf8.h"
#include "tok_internal.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define REPLACEMENT_LEN 3

struct eng_detok {
    const eng_tokenizer *t;
    unsigned flags;
    int started; /* a text token has been seen (for ENG_DETOK_FROM_START) */
    unsigned char pend[4];
    size_t npend;
    unsigned char *in; /* pending + new bytes: max_dec + 4 */
    char *out;         /* worst case 3 bytes out per byte in, plus NUL */
};

rb_err eng_detok_new(const eng_tokenizer *t, unsigned flags, eng_detok **out)
{
    eng_detok *d = calloc(1, sizeof(*d));
    size_t in_cap = t->max_dec + 4;
    rb_err rc = RB_OK;

    *out = NULL;
    if (!d) {
        rc = RB_ENOMEM;
        goto out;
    }
    d->t = t;
    d->flags = flags;
    d->in = malloc(in_cap);
    d->out = malloc(in_cap * REPLACEMENT_LEN + 1);
    if (!d->in || !d->out) {
        rc = RB_ENOMEM;
        goto out;
    }
    *out = d;
    d = NULL;
out:
    eng_detok_free(d);
    return rc;
}

void eng_detok_free(eng_detok *d)
{
    if (!d)
        return;
    free(d->in);
    free(d->out);
    free(d);
}

void eng_detok_reset(eng_detok *d)
{
    d->started = 0;
    d->npend = 0;
}

/* Converts d->in[0..n) to d->out; keeps an unfinished tail in pend unless final. */
static size_t convert(eng_detok *d, size_t n, int final)
{
    size_t i = 0, o = 0;

    d->npend = 0;
    while (i < n) {
        int s = rb_utf8_step(d->in + i, n - i);
        if (s > 0) {
            memcpy(d->out + o, d->in + i, (size_t)s);
            o += (size_t)s;
            i += (size_t)s;
        } else if (s == 0 && !final) {
            d->npend = n - i;
            memcpy(d->pend, d->in + i, d->npend);
            break;
        } else {
            memcpy(d->out + o, REPLACEMENT, REPLACEMENT_LEN);
            o += REPLACEMENT_LEN;
            i += s == 0 ? n - i : (size_t)-s;
        }
    }
    d->out[o] = '\0';
    return o;
}

const char *eng_detok_push(eng_detok *d, eng_token id, size_t *len)
{
    const eng_tokenizer *t = d->t;
    const char *p = "";
    size_t n = 0;
    eng_tok_type ty = eng_tokenizer_type(t, id);

    if (id >= 0 && id < t->n_vocab &&
        ((ty != ENG_TOK_TYPE_CONTROL && ty != ENG_TOK_TYPE_UNKNOWN) ||
         (d->flags & ENG_DETOK_SPECIAL))) {
        p = eng_tokenizer_token_bytes(t, id, &n);
    }
    /* The first text token of a text that starts here carries the space SentencePiece put
     * in front of the text; BOS and other control tokens before it do not count. */
    if ((d->flags & ENG_DETOK_FROM_START) && !d->started && id >= 0 && id < t->n_vocab &&
        ty != ENG_TOK_TYPE_CONTROL && ty != ENG_TOK_TYPE_UNKNOWN) {
        d->started = 1;
        if (t->add_space_prefix && n > 0 && p[0] == ' ') {
            p++;
            n--;
        }
    }
    memcpy(d->in, d->pend, d->npend);
    memcpy(d->in + d->npend, p, n);
    *len = convert(d, d->npend + n, 0);
    return d->out;
}

const char *eng_detok_flush(eng_detok *d, size_t *len)
{
    memcpy(d->in, d->pend, d->npend);
    *len = convert(d, d->npend, 1);
    return d->out;
}

rb_err eng_detokenize(const eng_tokenizer *t, const eng_token *ids, size_t n, unsigned flags,
                      char **out, size_t *len)
{
    eng_detok *d = NULL;
    char *buf = NULL;
    size_t used = 0, cap = 64;
    rb_err rc;

    *out = NULL;
    if ((rc = eng_detok_new(t, flags, &d)))
        goto out;
    buf = malloc(cap);
    if (!buf) {
        rc = RB_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i <= n; i++) {
        size_t k;
        const char *s = i < n ? eng_detok_push(d, ids[i], &k) : eng_detok_flush(d, &k);
        if (used + k + 1 > cap) {
            char *p;
            while (used + k + 1 > cap)
                cap *= 2;
            p = realloc(buf, cap);
            if (!p) {
                rc = RB_ENOMEM;
                goto out;
            }
            buf = p;
        }
        memcpy(buf + used, s, k);
        used += k;
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    buf = NULL;
out:
    free(buf);
    eng_detok_free(d);
    return rc;
}
