/*
 * session.c - the pull-style generation API over the forward pass: reset, prefill, then one
 * step per token.
 *
 * DESIGN
 * A step samples from the current logits and returns the token at once; the forward pass
 * that feeds the token back runs at the start of the next step. So the caller (the worker's
 * generation thread) can send a token the moment it exists, and a generation that ends after
 * the token never computes a pass it does not need. Text goes through two filters: the
 * detokenizer (only complete UTF-8 comes out) and the stop-string filter (text that may start
 * a stop string is held back; a complete stop string ends generation and is not emitted).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openblas_config.h>

#include "kernels.h"
#include "rb_util.h"
#include "session.h"

/* OpenBLAS's own threads would fight our pool for the same cores. */
extern void openblas_set_num_threads(int n);

eng_session_params eng_session_params_default(void)
{
    eng_session_params p = {0};
    p.n_ctx = RB_CTX_DEFAULT;
    p.n_batch = 64;
    p.kv_type = ENG_TYPE_F16;
    return p;
}

int eng_model_ctx(const eng_model *m, int n_ctx)
{
    return rb_mem_ctx(n_ctx, m->hp.n_ctx_train);
}

/* Checks the cache type against the model: RB_OK or RB_EINVAL with a message. */
static rb_err kv_type_check(const eng_hparams *hp, eng_type t, char *err, size_t errlen)
{
    if (t != ENG_TYPE_F32 && t != ENG_TYPE_F16 && t != ENG_TYPE_Q8_0)
        return rb_errf(err, errlen, RB_EINVAL, "KV cache type '%s' is not one of f16, q8_0, f32",
                       eng_type_name(t));
    if (t == ENG_TYPE_Q8_0 && hp->head_dim % eng_type_block_elems(t) != 0)
        return rb_errf(err, errlen, RB_EINVAL,
                       "KV cache type q8_0 needs a head dimension that is a multiple of 32; "
                       "this model's is %d (use f16)",
                       hp->head_dim);
    return RB_OK;
}

rb_err eng_model_estimate_memory(const eng_model *m, const eng_session_params *p, int n_slots,
                                 rb_mem_estimate *out, char *err, size_t errlen)
{
    eng_session_params def = eng_session_params_default();
    const eng_hparams *hp = &m->hp;
    rb_mem_shape sh = {0};
    rb_mem_run run = rb_mem_run_default();
    rb_err rc;

    if (!p)
        p = &def;
    if ((rc = kv_type_check(hp, p->kv_type, err, errlen)))
        return rc;
    sh.weight_bytes = m->info.file_size;
    sh.n_vocab = hp->n_vocab;
    sh.n_ctx_train = hp->n_ctx_train;
    sh.n_embd = hp->n_embd;
    sh.n_layer = hp->n_layer;
    sh.n_head = hp->n_head;
    sh.n_head_kv = hp->n_head_kv;
    sh.n_ff = hp->n_ff;
    sh.n_rot = hp->n_rot;
    sh.key_length = sh.value_length = hp->head_dim;
    run.n_ctx = eng_model_ctx(m, p->n_ctx);
    run.slots = n_slots > 0 ? n_slots : 1;
    run.threads = p->n_threads > 0 ? p->n_threads : rb_physical_cores();
    run.n_batch = p->n_batch > 0 ? p->n_batch : 64;
    run.kv_block_elems = eng_type_block_elems(p->kv_type);
    run.kv_block_bytes = (int)eng_type_block_bytes(p->kv_type);
    rb_mem_estimate_compute(&sh, &run, out);
    return RB_OK;
}

static void *xalloc(size_t n, rb_err *rc)
{
    void *p = NULL;
    if (*rc)
        return NULL;
    /* 64-byte alignment for the SIMD kernels. */
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        *rc = RB_ENOMEM;
        return NULL;
    }
    memset(p, 0, n);
    return p;
}

/* cos and sin of pos * base^(-i / n_rot) for every position and even i < n_rot, computed as
 * the reference does (in float, with powf), once instead of per token. freqs: per pair
 * divisors of the angle or NULL; scale: linear rope scaling; attn: a factor on both. */
static void rope_table(eng_session *s, float *table, float base, const float *freqs, float scale,
                       float attn)
{
    const eng_hparams *hp = &s->m->hp;
    for (int pos = 0; pos < s->n_ctx; pos++) {
        float *cs = table + (size_t)pos * hp->n_rot;
        for (int i = 0; i < hp->n_rot; i += 2) {
            float theta = (float)pos * powf(base, -(float)i / (float)hp->n_rot);
            if (freqs)
                theta /= freqs[i / 2];
            if (scale != 1.0f)
                theta /= scale;
            cs[i] = cosf(theta) * attn;
            cs[i + 1] = sinf(theta) * attn;
        }
    }
}

/* The tables of the global layers and, when their base differs, of the sliding ones. Phi3's
 * long factors serve contexts beyond the original one, as llama.cpp picks them; its attention
 * factor scales cos and sin with either set (Hugging Face's longrope attention_scaling). */
static void rope_tables(eng_session *s)
{
    const eng_model *m = s->m;
    const eng_hparams *hp = &m->hp;
    const int long_ctx = m->rope_long && s->n_ctx > m->n_ctx_orig;
    const float *freqs = long_ctx ? m->rope_long : m->rope_freqs;
    const float attn = m->rope_attn;

    rope_table(s, s->rope_cs, hp->rope_base, freqs, hp->rope_scale, attn);
    if (s->rope_swa != s->rope_cs) /* sliding layers rotate unscaled (gemma3) */
        rope_table(s, s->rope_swa, hp->rope_base_swa, freqs, 1.0f, attn);
}

rb_err eng_session_open(eng_model *m, const eng_session_params *p, eng_session **out, char *err,
                        size_t errlen)
{
    eng_session_params def = eng_session_params_default();
    const eng_hparams *hp = &m->hp;
    eng_session *s = calloc(1, sizeof(*s));
    rb_err rc = RB_OK;
    int nth;
    size_t B, kvsize, nrows;

    if (!p)
        p = &def;
    if (!s)
        return RB_ENOMEM;
    s->m = m;
    s->lead = s;
    s->pending = -1;
    if ((rc = kv_type_check(hp, p->kv_type, err, errlen)))
        goto out;
    s->kv_type = p->kv_type;
    s->n_ctx = eng_model_ctx(m, p->n_ctx);
    s->n_batch = p->n_batch > 0 ? p->n_batch : 64;
    if (s->n_batch > s->n_ctx)
        s->n_batch = s->n_ctx;
    s->blas_min = 32;
    {
        const char *e = getenv("RBEE_BLAS_MIN"); /* benchmarks compare the two paths */
        int64_t v;
        if (e && rb_parse_i64(e, 1, 1 << 20, &v) == RB_OK)
            s->blas_min = (int)v;
    }
    nth = p->n_threads > 0 ? p->n_threads : rb_physical_cores();
    s->max_cols = hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff;
    if (hp->q_dim > s->max_cols)
        s->max_cols = hp->q_dim;
    B = (size_t)s->n_batch;
    s->xq_bytes = eng_act_bytes_max(s->max_cols, s->n_batch);

    s->x = xalloc(B * hp->n_embd * sizeof(float), &rc);
    s->xb = xalloc(B * hp->n_embd * sizeof(float), &rc);
    s->xb2 = xalloc(B * hp->q_dim * sizeof(float), &rc);
    s->q = xalloc(B * hp->q_dim * sizeof(float), &rc);
    s->k = xalloc(B * hp->kv_dim * sizeof(float), &rc);
    s->v = xalloc(B * hp->kv_dim * sizeof(float), &rc);
    s->hb = xalloc(B * hp->n_ff * sizeof(float), &rc);
    s->hb2 = xalloc(B * hp->n_ff * sizeof(float), &rc);
    for (int i = 0; i < 3; i++)
        s->xq[i] = xalloc(s->xq_bytes, &rc);
    s->rope_cs = xalloc((size_t)s->n_ctx * hp->n_rot * sizeof(float), &rc);
    s->rope_swa = s->rope_cs;
    if (m->arch->flags & ENG_ARCH_SWA_BASE)
        s->rope_swa = xalloc((size_t)s->n_ctx * hp->n_rot * sizeof(float), &rc);
    s->att = NULL; /* sized once the pool exists: one row per chunk */
    s->deq = xalloc((size_t)nth * ENG_BLAS_ROWS * s->max_cols * sizeof(float), &rc);
    s->logits = xalloc((size_t)hp->n_vocab * sizeof(float), &rc);
    s->row_seq = xalloc(B * sizeof(*s->row_seq), &rc);
    s->row_pos = xalloc(B * sizeof(*s->row_pos), &rc);
    s->kv_tokens = xalloc((size_t)s->n_ctx * sizeof(*s->kv_tokens), &rc);
    /* one (layer, kv head) of a cache: head_dim rows of n_ctx, or n_ctx rows of head_dim */
    nrows = s->kv_type == ENG_TYPE_Q8_0 ? (size_t)s->n_ctx : (size_t)hp->head_dim;
    s->kv_row =
        eng_type_row_bytes(s->kv_type, s->kv_type == ENG_TYPE_Q8_0 ? hp->head_dim : s->n_ctx);
    s->kv_head = nrows * s->kv_row;
    kvsize = (size_t)hp->n_layer * hp->n_head_kv * s->kv_head;
    s->key_cache = xalloc(kvsize, &rc);
    s->value_cache = xalloc(kvsize, &rc);
    if (rc) {
        rb_errf(err, errlen, rc, "cannot allocate a session with %d context tokens", s->n_ctx);
        goto out;
    }
    if ((rc = eng_sampler_init(&s->sampler, hp->n_vocab, 256)) ||
        (rc = eng_detok_new(m->tok, 0, &s->detok))) {
        rb_errf(err, errlen, rc, "cannot create the sampler");
        goto out;
    }
    eng_stopper_init(&s->stopper);
    s->pool = eng_pool_new(nth);
    if (!s->pool) {
        rc = rb_errf(err, errlen, RB_ENOMEM, "cannot start %d threads", nth);
        goto out;
    }
    s->att_stride = (size_t)(hp->n_head / hp->n_head_kv) * s->n_ctx;
    s->att = xalloc((size_t)eng_pool_max_chunks(s->pool) * s->att_stride * sizeof(float), &rc);
    if (s->kv_type == ENG_TYPE_Q8_0) {
        s->qq_bytes = eng_act_bytes_max(hp->head_dim, hp->n_head / hp->n_head_kv);
        s->qq = xalloc((size_t)eng_pool_max_chunks(s->pool) * s->qq_bytes, &rc);
    }
    if (rc)
        goto out;
    rope_tables(s);
    openblas_set_num_threads(1);
out:
    if (rc) {
        eng_session_free(s);
        return rc;
    }
    *out = s;
    return RB_OK;
}

/* What a session owns whether or not it leads: its cache, logits and text state. */
static void session_free_own(eng_session *s)
{
    eng_sampler_release(&s->sampler);
    eng_stopper_release(&s->stopper);
    eng_detok_free(s->detok);
    free(s->logits);
    free(s->all_logits);
    free(s->key_cache);
    free(s->value_cache);
    free(s->kv_tokens);
}

void eng_session_free(eng_session *s)
{
    if (!s)
        return;
    if (s->lead != s) { /* a batch's member: the buffers are the lead's */
        session_free_own(s);
        free(s);
        return;
    }
    eng_pool_free(s->pool);
    session_free_own(s);
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->hb);
    free(s->hb2);
    for (int i = 0; i < 3; i++)
        free(s->xq[i]);
    if (s->rope_swa != s->rope_cs)
        free(s->rope_swa);
    free(s->rope_cs);
    free(s->att);
    free(s->deq);
    free(s->row_seq);
    free(s->row_pos);
    free(s->blogits);
    free(s->qq);
    free(s);
}

size_t eng_session_kv_bytes(const eng_session *s)
{
    return 2 * (size_t)s->m->hp.n_layer * s->m->hp.n_head_kv * s->kv_head;
}

int eng_session_n_ctx(const eng_session *s)
{
    return s->n_ctx;
}

int eng_session_threads(const eng_session *s)
{
    return eng_pool_size(s->pool);
}

rb_err eng_session_reset(eng_session *s, const eng_sampler_params *p, const char *const *stop,
                         size_t nstop)
{
    eng_sampler_params def = eng_sampler_params_default();
    rb_err rc;

    s->n_past = 0;
    s->n_all = 0;
    s->pending = -1;
    s->n_generated = 0;
    s->finished = 0;
    atomic_store(&s->cancel, 0);
    memset(&s->timings, 0, sizeof s->timings);
    eng_sampler_reset(&s->sampler, p ? p : &def);
    eng_detok_reset(s->detok);
    rc = eng_stopper_reset(&s->stopper, stop, nstop);
    return rc;
}

void eng_session_keep_all_logits(eng_session *s, int on)
{
    s->keep_all = on;
    if (on && !s->all_logits)
        s->all_logits = calloc((size_t)s->n_ctx * s->m->hp.n_vocab, sizeof(float));
    if (!s->all_logits)
        s->keep_all = 0;
}

const float *eng_session_all_logits(const eng_session *s, size_t *n)
{
    *n = s->n_all;
    return s->all_logits;
}

const float *eng_session_logits(const eng_session *s)
{
    return s->logits;
}

void eng_session_cancel(eng_session *s)
{
    atomic_store(&s->cancel, 1);
}

void eng_session_timings(const eng_session *s, eng_timings *out)
{
    *out = s->timings;
}

rb_err eng_session_prefill(eng_session *s, const int32_t *tokens, size_t n, char *err,
                           size_t errlen)
{
    int64_t t0 = rb_now_us();
    int nv = s->m->hp.n_vocab;

    if (n == 0)
        return rb_errf(err, errlen, RB_EINVAL, "empty prompt");
    if ((size_t)s->n_past + n > (size_t)s->n_ctx)
        return rb_errf(err, errlen, RB_ETOOBIG,
                       "prompt of %zu tokens does not fit the context of %d tokens", n,
                       s->n_ctx - s->n_past);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            return rb_errf(err, errlen, RB_EINVAL, "token id %d is out of range", tokens[i]);
    for (size_t i = 0; i < n; i += (size_t)s->n_batch) {
        size_t chunk = n - i < (size_t)s->n_batch ? n - i : (size_t)s->n_batch;
        if (atomic_load(&s->cancel))
            return rb_errf(err, errlen, RB_ECANCELED, "canceled");
        eng_forward(s, tokens + i, (int)chunk);
    }
    for (size_t i = 0; i < n; i++)
        eng_sampler_accept(&s->sampler, tokens[i]);
    s->timings.prefill_ms += (double)(rb_now_us() - t0) / 1000.0;
    s->timings.prefill_tokens += (int)n;
    return RB_OK;
}

/* Ends generation: releases held-back text and records why. */
static void finish(eng_session *s, eng_step *out, eng_stop_reason why)
{
    const char *t1, *t2;
    size_t n1, n2;

    s->finished = 1;
    out->done = 1;
    out->reason = why;
    if (why == ENG_STOP_SEQUENCE || why == ENG_STOP_CANCELLED)
        return;
    /* Pending UTF-8 bytes, then whatever the stop filter held back. */
    t1 = eng_detok_flush(s->detok, &n1);
    eng_stopper_feed(&s->stopper, t1, n1, &t1, &n1);
    size_t k = n1 < sizeof s->text ? n1 : sizeof s->text;
    memcpy(s->text, t1, k);
    eng_stopper_flush(&s->stopper, &t2, &n2);
    if (k + n2 > sizeof s->text)
        n2 = sizeof s->text - k;
    memcpy(s->text + k, t2, n2);
    out->text = s->text;
    out->text_len = k + n2;
}

void eng_session_flush(eng_session *s, eng_step *out)
{
    memset(out, 0, sizeof(*out));
    out->token = -1;
    out->text = "";
    if (s->finished) {
        out->done = 1;
        return;
    }
    finish(s, out, ENG_STOP_NONE);
}

rb_err eng_session_step(eng_session *s, eng_step *out)
{
    int64_t t0 = rb_now_us();
    const char *t;
    size_t n;

    memset(out, 0, sizeof(*out));
    out->token = -1;
    out->text = "";
    if (s->finished) {
        out->done = 1;
        return RB_OK;
    }
    if (atomic_load(&s->cancel)) {
        finish(s, out, ENG_STOP_CANCELLED);
        return RB_ECANCELED;
    }
    if (s->pending >= 0) {
        /* Feed back the token returned by the previous step. */
        if (s->n_past >= s->n_ctx) {
            finish(s, out, ENG_STOP_CONTEXT);
            return RB_OK;
        }
        eng_forward(s, &s->pending, 1);
        s->pending = -1;
    } else if (s->n_past == 0) {
        return RB_EINVAL; /* nothing prefilled */
    }
    int32_t tok = eng_sampler_sample(&s->sampler, s->logits);
    eng_sampler_accept(&s->sampler, tok);
    out->token = tok;
    if (s->sampler.p.logprobs) {
        out->n_top = s->sampler.p.top_logprobs;
        if (out->n_top > ENG_MAX_TOP_LOGPROBS)
            out->n_top = ENG_MAX_TOP_LOGPROBS;
        if (out->n_top < 0)
            out->n_top = 0;
        out->logprob = eng_logprobs(s->logits, s->m->hp.n_vocab, tok, out->n_top, out->top);
        if (out->n_top > s->m->hp.n_vocab)
            out->n_top = s->m->hp.n_vocab;
    }
    s->timings.decode_ms += (double)(rb_now_us() - t0) / 1000.0;
    s->timings.decode_tokens++;
    s->n_generated++;
    if (eng_tokenizer_is_eog(s->m->tok, tok)) {
        finish(s, out, ENG_STOP_EOS);
        return RB_OK;
    }
    s->pending = tok;
    t = eng_detok_push(s->detok, tok, &n);
    if (eng_stopper_feed(&s->stopper, t, n, &t, &n)) {
        out->text = t;
        out->text_len = n;
        out->done = 1;
        out->reason = ENG_STOP_SEQUENCE;
        s->finished = 1;
        return RB_OK;
    }
    out->text = t;
    out->text_len = n;
    return RB_OK;
}

rb_err eng_model_tokenize(const eng_model *m, const char *text, size_t len, int add_bos,
                          int32_t **ids, size_t *n)
{
    return eng_model_tokenize_ex(m, text, len, add_bos ? ENG_MODEL_TOK_ADD_BOS : 0, ids, n);
}

char *eng_model_chat_template(const eng_model *m)
{
    int64_t i = eng_gguf_find_key(m->gguf, "tokenizer.chat_template");
    eng_gguf_str v;
    char *out;

    if (i < 0 || eng_gguf_get_str(m->gguf, i, &v) != RB_OK)
        return NULL;
    out = malloc((size_t)v.len + 1);
    if (!out)
        return NULL;
    memcpy(out, v.p, (size_t)v.len);
    out[v.len] = 0;
    return out;
}

rb_err eng_model_tokenize_ex(const eng_model *m, const char *text, size_t len, unsigned mflags,
                             int32_t **ids, size_t *n)
{
    unsigned flags =
        (mflags & ENG_MODEL_TOK_ADD_BOS) && eng_tokenizer_add_bos(m->tok) ? ENG_TOK_ADD_BOS : 0;
    if (mflags & ENG_MODEL_TOK_SPECIAL)
        flags |= ENG_TOK_PARSE_SPECIAL;
    size_t cap = len + 8, need = 0;
    int32_t *p = malloc(cap * sizeof(*p));
    rb_err rc;

    if (!p)
        return RB_ENOMEM;
    rc = eng_tokenize(m->tok, text, len, flags, p, cap, &need);
    if (rc == RB_ETOOBIG) {
        int32_t *q = realloc(p, need * sizeof(*p));
        if (!q) {
            free(p);
            return RB_ENOMEM;
        }
        p = q;
        rc = eng_tokenize(m->tok, text, len, flags, p, need, &need);
    }
    if (rc) {
        free(p);
        return rc;
    }
    *ids = p;
    *n = need;
    return RB_OK;
}

size_t eng_model_token_bytes(const eng_model *m, int32_t id, char *out, size_t cap)
{
    size_t len = 0;
    const char *b = eng_tokenizer_token_bytes(m->tok, id, &len);
    if (!b)
        return 0;
    if (len > cap)
        len = cap;
    memcpy(out, b, len);
    return len;
}
