/*
 * sampler.h - token sampling and the stop-string filter (internal to the engine; unit-tested
 * directly).
 *
 * Sampling order, as llama.cpp's default chain: repetition penalty, then the frequency and
 * presence penalties, over the last repeat_last_n tokens, then top-k, top-p and min-p computed on
 * the untempered softmax, then temperature on what is left, then a draw from a seeded generator.
 * Temperature 0 is greedy (argmax after the penalty).
 */
#ifndef ENG_SAMPLER_H
#define ENG_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "eng.h"
#include "rb_buf.h"

typedef struct eng_cand {
    int32_t id;
    float logit;
    float p;
} eng_cand;

typedef struct eng_sampler {
    eng_sampler_params p;
    int n_vocab;
    uint64_t rng;
    eng_cand *cand;  /* (n_vocab) scratch */
    int32_t *recent; /* ring of the last repeat_last_n accepted tokens */
    int recent_cap, recent_len, recent_head;
} eng_sampler;

rb_err eng_sampler_init(eng_sampler *s, int n_vocab, int recent_cap);
void eng_sampler_release(eng_sampler *s);
/* New parameters and seed; forgets the recent tokens. */
void eng_sampler_reset(eng_sampler *s, const eng_sampler_params *p);
/* Chooses a token from logits (n_vocab floats, not modified). */
int32_t eng_sampler_sample(eng_sampler *s, const float *logits);
/* Writes logits with the penalties of the recent window applied into out (n_vocab floats);
 * what eng_sampler_sample draws from (tests). */
void eng_sampler_penalized(eng_sampler *s, const float *logits, float *out);
/* The log-softmax of logits (n floats) at token, and the k most likely tokens (k <=
 * ENG_MAX_TOP_LOGPROBS) into top, most likely first, ties by lower id. */
float eng_logprobs(const float *logits, int n, int32_t token, int k, eng_token_logprob *top);
/* Records a token as generated (or as part of the prompt) for the repetition penalty. */
void eng_sampler_accept(eng_sampler *s, int32_t token);

/* Stop-string filter: holds back text that may be the start of a stop string and cuts the
 * text at the first complete one. Buffers grow to the largest delta seen, then stay. */
#define ENG_MAX_STOP 4
#define ENG_MAX_STOP_LEN 128

typedef struct eng_stopper {
    char stops[ENG_MAX_STOP][ENG_MAX_STOP_LEN + 1];
    size_t stop_len[ENG_MAX_STOP];
    size_t nstop;
    rb_buf pending; /* text held back */
    rb_buf out;     /* text released by the last feed/flush */
} eng_stopper;

void eng_stopper_init(eng_stopper *st);
void eng_stopper_release(eng_stopper *st);
/* Copies up to ENG_MAX_STOP strings of 1..ENG_MAX_STOP_LEN bytes (RB_EINVAL otherwise). */
rb_err eng_stopper_reset(eng_stopper *st, const char *const *stop, size_t nstop);
/* Adds text; out and outlen receive the text that may be emitted now (borrowed until the next
 * call). Returns 1 when a stop string completed (the text before it is in out, the rest dropped).
 */
int eng_stopper_feed(eng_stopper *st, const char *text, size_t len, const char **out,
                     size_t *outlen);
/* Releases everything held back (generation ended without a stop string). */
void eng_stopper_flush(eng_stopper *st, const char **out, size_t *outlen);

#endif
