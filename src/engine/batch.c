/*
 * batch.c - many sequences, one forward pass: the sessions of a batch share a pool and the
 * pass buffers, and eng_batch_decode runs the tokens of several of them at once, so the
 * weights are read once per pass for all. Also the prompt cache: a session's KV cache keeps
 * the tokens it holds across a reset, and a new prompt that starts with them skips their
 * positions.
 *
 * DESIGN
 * The first session of a batch is an ordinary session (the lead); the others copy its
 * pointers to the pool and the pass buffers and own only a KV cache, logits, the sampler and
 * the text state (session.h). A pass is rows of (session, position, token): the matrix
 * products do not care whose a row is, the rope, the cache stores and attention read the
 * row's own session and position (forward.c). Only the rows that end an entry get logits,
 * in one output product.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_util.h"
#include "session.h"

struct eng_batch {
    eng_session **seqs;
    int n_seq;
    int32_t *tokens; /* (n_batch) the rows of a pass */
    int *log_rows;   /* (n_seq) */
    float **log_out; /* (n_seq) */
};

/* A member of L's batch: L's buffers, its own cache and generation state. */
static rb_err member_open(eng_session *L, eng_session **out)
{
    const eng_hparams *hp = &L->m->hp;
    const size_t kvsize = (size_t)hp->n_layer * hp->n_head_kv * L->kv_head;
    eng_session *s = malloc(sizeof(*s));
    rb_err rc = RB_OK;

    if (!s)
        return RB_ENOMEM;
    memcpy(s, L, sizeof(*s));
    s->lead = L;
    s->all_logits = NULL;
    s->keep_all = 0;
    s->n_all = 0;
    s->n_past = 0;
    s->n_cached = 0;
    s->pending = -1;
    s->n_generated = 0;
    s->finished = 0;
    atomic_store(&s->cancel, 0);
    memset(&s->timings, 0, sizeof s->timings);
    memset(&s->sampler, 0, sizeof s->sampler);
    memset(&s->stopper, 0, sizeof s->stopper);
    s->detok = NULL;
    s->logits = calloc((size_t)hp->n_vocab, sizeof(float));
    s->kv_tokens = calloc((size_t)s->n_ctx, sizeof(*s->kv_tokens));
    s->key_cache = s->value_cache = NULL;
    if (posix_memalign(&s->key_cache, 64, kvsize) != 0)
        s->key_cache = NULL;
    if (posix_memalign(&s->value_cache, 64, kvsize) != 0)
        s->value_cache = NULL;
    eng_stopper_init(&s->stopper);
    if (!s->logits || !s->kv_tokens || !s->key_cache || !s->value_cache)
        rc = RB_ENOMEM;
    if (!rc)
        rc = eng_sampler_init(&s->sampler, hp->n_vocab, 256);
    if (!rc)
        rc = eng_detok_new(L->m->tok, 0, &s->detok);
    if (rc) {
        eng_session_free(s);
        return rc;
    }
    memset(s->key_cache, 0, kvsize);
    memset(s->value_cache, 0, kvsize);
    *out = s;
    return RB_OK;
}

rb_err eng_batch_open(eng_model *m, const eng_session_params *p, int n_seq, eng_batch **out,
                      char *err, size_t errlen)
{
    eng_session_params sp = p ? *p : eng_session_params_default();
    eng_batch *b;
    eng_session *L;
    rb_err rc;

    if (n_seq < 1 || n_seq > ENG_BATCH_MAX_SEQ)
        return rb_errf(err, errlen, RB_EINVAL, "a batch holds 1 to %d sequences, not %d",
                       ENG_BATCH_MAX_SEQ, n_seq);
    if (sp.n_batch <= 0)
        sp.n_batch = eng_session_params_default().n_batch;
    if (sp.n_batch < n_seq)
        sp.n_batch = n_seq; /* every sequence's token fits one pass */
    b = calloc(1, sizeof(*b));
    if (!b)
        return RB_ENOMEM;
    b->seqs = calloc((size_t)n_seq, sizeof(*b->seqs));
    b->log_rows = calloc((size_t)n_seq, sizeof(*b->log_rows));
    b->log_out = calloc((size_t)n_seq, sizeof(*b->log_out));
    if (!b->seqs || !b->log_rows || !b->log_out) {
        eng_batch_free(b);
        return RB_ENOMEM;
    }
    if ((rc = eng_session_open(m, &sp, &L, err, errlen))) {
        eng_batch_free(b);
        return rc;
    }
    b->seqs[0] = L;
    b->n_seq = 1;
    b->tokens = calloc((size_t)L->n_batch, sizeof(*b->tokens));
    L->blogits = calloc((size_t)n_seq * m->hp.n_vocab, sizeof(float));
    if (!b->tokens || !L->blogits) {
        eng_batch_free(b);
        return rb_errf(err, errlen, RB_ENOMEM, "cannot allocate a batch of %d sequences", n_seq);
    }
    for (int i = 1; i < n_seq; i++) {
        if ((rc = member_open(L, &b->seqs[i]))) {
            eng_batch_free(b);
            return rb_errf(err, errlen, rc,
                           "cannot allocate sequence %d of %d (%d context tokens each)", i + 1,
                           n_seq, L->n_ctx);
        }
        b->n_seq++;
    }
    *out = b;
    return RB_OK;
}

void eng_batch_free(eng_batch *b)
{
    if (!b)
        return;
    for (int i = b->n_seq - 1; i >= 0; i--) /* the members before their lead */
        eng_session_free(b->seqs[i]);
    free(b->seqs);
    free(b->tokens);
    free(b->log_rows);
    free(b->log_out);
    free(b);
}

int eng_batch_n_seq(const eng_batch *b)
{
    return b->n_seq;
}

eng_session *eng_batch_session(eng_batch *b, int i)
{
    return i >= 0 && i < b->n_seq ? b->seqs[i] : NULL;
}

int eng_batch_capacity(const eng_batch *b)
{
    return b->seqs[0]->n_batch;
}

int eng_session_wants_pass(const eng_session *s)
{
    return !s->finished && s->pending >= 0 && s->n_past < s->n_ctx;
}

/* Checks the entries against the batch; RB_OK or an error with a message. */
static rb_err check_entries(const eng_batch *b, const eng_batch_entry *e, int ne, char *err,
                            size_t errlen)
{
    const eng_session *L = b->seqs[0];
    const int nv = L->m->hp.n_vocab;
    int total = 0;

    if (ne < 1 || ne > b->n_seq)
        return rb_errf(err, errlen, RB_EINVAL, "a pass takes 1 to %d entries, not %d", b->n_seq,
                       ne);
    for (int i = 0; i < ne; i++) {
        const eng_session *s = e[i].s;
        const int n = e[i].tokens ? e[i].n : 1;
        if (!s || s->lead != L)
            return rb_errf(err, errlen, RB_EINVAL, "entry %d is not a session of this batch", i);
        for (int k = 0; k < i; k++)
            if (e[k].s == s)
                return rb_errf(err, errlen, RB_EINVAL, "entries %d and %d are one session", k, i);
        if (!e[i].tokens && !eng_session_wants_pass(s))
            return rb_errf(err, errlen, RB_EINVAL, "entry %d has no sampled token to feed", i);
        if (e[i].tokens && n < 1)
            return rb_errf(err, errlen, RB_EINVAL, "entry %d has no tokens", i);
        if (s->n_past + n > s->n_ctx)
            return rb_errf(err, errlen, RB_ETOOBIG,
                           "entry %d: %d tokens do not fit the %d left in the context", i, n,
                           s->n_ctx - s->n_past);
        for (int t = 0; e[i].tokens && t < n; t++)
            if (e[i].tokens[t] < 0 || e[i].tokens[t] >= nv)
                return rb_errf(err, errlen, RB_EINVAL, "token id %d is out of range",
                               e[i].tokens[t]);
        total += n;
    }
    if (total > L->n_batch)
        return rb_errf(err, errlen, RB_ETOOBIG, "%d tokens are more than a pass takes (%d)", total,
                       L->n_batch);
    return RB_OK;
}

rb_err eng_batch_decode(eng_batch *b, const eng_batch_entry *e, int ne, char *err, size_t errlen)
{
    eng_session *L = b->seqs[0];
    int64_t t0 = rb_now_us();
    double ms;
    int n = 0;
    rb_err rc;

    if ((rc = check_entries(b, e, ne, err, errlen)))
        return rc;
    for (int i = 0; i < ne; i++) {
        eng_session *s = e[i].s;
        const int k = e[i].tokens ? e[i].n : 1;
        for (int t = 0; t < k; t++, n++) {
            b->tokens[n] = e[i].tokens ? e[i].tokens[t] : s->pending;
            L->row_seq[n] = s;
            L->row_pos[n] = s->n_past + t;
            s->kv_tokens[s->n_past + t] = b->tokens[n];
        }
        b->log_rows[i] = n - 1;
        b->log_out[i] = s->logits;
    }
    eng_forward_rows(L, b->tokens, n, b->log_rows, b->log_out, ne);
    ms = (double)(rb_now_us() - t0) / 1000.0;
    for (int i = 0; i < ne; i++) {
        eng_session *s = e[i].s;
        if (e[i].tokens) { /* a prompt chunk: the sampler's history gets it */
            for (int t = 0; t < e[i].n; t++)
                eng_sampler_accept(&s->sampler, e[i].tokens[t]);
            s->n_past += e[i].n;
            s->timings.prefill_ms += ms;
            s->timings.prefill_tokens += e[i].n;
        } else { /* the sampled token, accepted when it was sampled */
            s->pending = -1;
            s->n_past++;
            s->timings.decode_ms += ms;
        }
        s->n_cached = s->n_past;
    }
    return RB_OK;
}

size_t eng_session_cached_prefix(const eng_session *s, const int32_t *ids, size_t n)
{
    size_t k = 0;
    while (k < n && k < (size_t)s->n_cached && s->kv_tokens[k] == ids[k])
        k++;
    return k;
}

size_t eng_session_reuse_prefix(eng_session *s, const int32_t *ids, size_t n)
{
    size_t keep = eng_session_cached_prefix(s, ids, n);

    if (keep + 1 > n) /* the last prompt token is run again for its logits */
        keep = n ? n - 1 : 0;
    if (s->n_past != 0 || keep == 0)
        return 0; /* only right after a reset */
    s->n_past = (int)keep;
    s->n_cached = (int)keep;
    for (size_t i = 0; i < keep; i++)
        eng_sampler_accept(&s->sampler, ids[i]);
    return keep;
}
