/*
 * sampler.c - samplers and the stop-string filter.
 *
 * Top-p needs the most probable tokens in order, but only until their mass reaches p; a
 * binary max-heap over the candidates gives them one by one in O(log n) each, so a 32k-token
 * vocabulary is never fully sorted. Top-k selects with the same heap.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

eng_sampler_params eng_sampler_params_default(void)
{
    eng_sampler_params p = {0};
    p.temperature = 0.7f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0;
    return p;
}

rb_err eng_sampler_init(eng_sampler *s, int n_vocab, int recent_cap)
{
    memset(s, 0, sizeof(*s));
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof(*s->cand));
    s->recent_cap = recent_cap > 0 ? recent_cap : 1;
    s->recent = calloc((size_t)s->recent_cap, sizeof(*s->recent));
    if (!s->cand || !s->recent) {
        eng_sampler_release(s);
        return RB_ENOMEM;
    }
    s->p = eng_sampler_params_default();
    return RB_OK;
}

void eng_sampler_release(eng_sampler *s)
{
    free(s->cand);
    free(s->recent);
    s->cand = NULL;
    s->recent = NULL;
}

void eng_sampler_reset(eng_sampler *s, const eng_sampler_params *p)
{
    s->p = *p;
    if (s->p.repeat_last_n > s->recent_cap)
        s->p.repeat_last_n = s->recent_cap;
    /* splitmix64 of the seed so that nearby seeds give unrelated streams */
    uint64_t z = p->seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    s->rng = (z ^ (z >> 31)) | 1;
    s->recent_len = s->recent_head = 0;
}

void eng_sampler_accept(eng_sampler *s, int32_t token)
{
    s->recent[s->recent_head] = token;
    s->recent_head = (s->recent_head + 1) % s->recent_cap;
    if (s->recent_len < s->recent_cap)
        s->recent_len++;
}

/* xorshift64*: uniform in [0, 1). */
static double next_uniform(eng_sampler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- max-heap on logit ---- */

static void sift_down(eng_cand *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].logit > h[m].logit)
            m = l;
        if (r < n && h[r].logit > h[m].logit)
            m = r;
        if (m == i)
            return;
        eng_cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heapify(eng_cand *h, int n)
{
    for (int i = n / 2 - 1; i >= 0; i--)
        sift_down(h, n, i);
}

/* Moves the heap's maximum to position n-1 and shrinks the heap; returns the new size. */
static int heap_pop(eng_cand *h, int n)
{
    eng_cand t = h[0];
    h[0] = h[n - 1];
    h[n - 1] = t;
    sift_down(h, n - 1, 0);
    return n - 1;
}

/* Logits with the penalties applied, as llama.cpp: each distinct token of the window once,
 * the repetition penalty (divide positive, multiply negative) and then
 * count * frequency_penalty + presence_penalty subtracted. */
static void apply_penalty(eng_sampler *s)
{
    float pen = s->p.repeat_penalty, freq = s->p.frequency_penalty, pres = s->p.presence_penalty;
    int n = s->recent_len < s->p.repeat_last_n ? s->recent_len : s->p.repeat_last_n;

    if ((pen == 1.0f && freq == 0.0f && pres == 0.0f) || n <= 0)
        return;
    for (int k = 0; k < n; k++) {
        int32_t t = s->recent[(s->recent_head - 1 - k + s->recent_cap) % s->recent_cap];
        int dup = 0, count = 1;
        for (int j = 0; j < k && !dup; j++)
            dup = s->recent[(s->recent_head - 1 - j + s->recent_cap) % s->recent_cap] == t;
        if (dup || t < 0 || t >= s->n_vocab)
            continue; /* each distinct token is penalised once */
        for (int j = k + 1; j < n; j++)
            count += s->recent[(s->recent_head - 1 - j + s->recent_cap) % s->recent_cap] == t;
        eng_cand *c = &s->cand[t];
        if (pen != 1.0f)
            c->logit = c->logit > 0 ? c->logit / pen : c->logit * pen;
        c->logit -= (float)count * freq + pres;
    }
}

void eng_sampler_penalized(eng_sampler *s, const float *logits, float *out)
{
    for (int i = 0; i < s->n_vocab; i++)
        s->cand[i] = (eng_cand){i, logits[i], 0};
    apply_penalty(s);
    for (int i = 0; i < s->n_vocab; i++)
        out[i] = s->cand[i].logit;
}

float eng_logprobs(const float *logits, int n, int32_t token, int k, eng_token_logprob *top)
{
    float maxl = logits[0];
    double sum = 0, lse;
    int have = 0;

    if (k > ENG_MAX_TOP_LOGPROBS)
        k = ENG_MAX_TOP_LOGPROBS;
    if (k > n)
        k = n;
    for (int i = 1; i < n; i++)
        if (logits[i] > maxl)
            maxl = logits[i];
    for (int i = 0; i < n; i++) {
        sum += exp((double)(logits[i] - maxl));
        if (k <= 0 || (have == k && logits[i] <= top[k - 1].logprob))
            continue;
        /* Insertion into the sorted top list (raw logits for now); equal logits keep the
         * lower id first because ids arrive in order. */
        int at = have < k ? have++ : k - 1;
        while (at > 0 && top[at - 1].logprob < logits[i]) {
            top[at] = top[at - 1];
            at--;
        }
        top[at] = (eng_token_logprob){i, logits[i]};
    }
    lse = (double)maxl + log(sum);
    for (int i = 0; i < have; i++)
        top[i].logprob = (float)((double)top[i].logprob - lse);
    if (token < 0 || token >= n)
        return -INFINITY;
    return (float)((double)logits[token] - lse);
}

int32_t eng_sampler_sample(eng_sampler *s, const float *logits)
{
    int n = s->n_vocab, kept, heap;
    float maxl;
    double sum, r, acc;

    for (int i = 0; i < n; i++)
        s->cand[i] = (eng_cand){i, logits[i], 0};
    apply_penalty(s);

    if (s->p.temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (s->cand[i].logit > s->cand[best].logit)
                best = i;
        return s->cand[best].id;
    }

    /* Pop candidates from the heap in descending order into the tail of the array until a
     * truncation rule stops us; kept = how many were taken. */
    heapify(s->cand, n);
    maxl = s->cand[0].logit;
    sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)(s->cand[i].logit - maxl));
    {
        int limit = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
        double mass = 0, top_p = s->p.top_p, min_ratio = s->p.min_p;
        heap = n;
        kept = 0;
        while (kept < limit) {
            eng_cand *c = &s->cand[0];
            double p = exp((double)(c->logit - maxl)) / sum;
            if (kept > 0 && min_ratio > 0 && p < min_ratio / sum) /* p_max is 1 / sum */
                break;
            heap = heap_pop(s->cand, heap);
            kept++;
            mass += p;
            if (top_p < 1.0 && mass >= top_p - 1e-6) /* p itself is rounded */
                break;
            if (heap == 0)
                break;
        }
    }
    /* The kept candidates sit at cand[n-kept .. n-1], best last. Apply temperature. */
    eng_cand *k = s->cand + (n - kept);
    sum = 0;
    for (int i = 0; i < kept; i++) {
        k[i].p = (float)exp((double)(k[i].logit - maxl) / s->p.temperature);
        sum += k[i].p;
    }
    r = next_uniform(s) * sum;
    acc = 0;
    for (int i = kept - 1; i >= 0; i--) { /* most likely first */
        acc += k[i].p;
        if (r < acc)
            return k[i].id;
    }
    return k[kept - 1].id;
}

/* ---- stop strings ---- */

void eng_stopper_init(eng_stopper *st)
{
    memset(st, 0, sizeof(*st));
    rb_buf_init(&st->pending, 1 << 20);
    rb_buf_init(&st->out, 1 << 20);
}

void eng_stopper_release(eng_stopper *st)
{
    rb_buf_release(&st->pending);
    rb_buf_release(&st->out);
}

rb_err eng_stopper_reset(eng_stopper *st, const char *const *stop, size_t nstop)
{
    st->nstop = 0;
    rb_buf_reset(&st->pending);
    rb_buf_reset(&st->out);
    if (nstop > ENG_MAX_STOP)
        return RB_EINVAL;
    for (size_t i = 0; i < nstop; i++) {
        size_t n = strlen(stop[i]);
        if (n == 0 || n > ENG_MAX_STOP_LEN)
            return RB_EINVAL;
        memcpy(st->stops[i], stop[i], n + 1);
        st->stop_len[i] = n;
    }
    st->nstop = nstop;
    return RB_OK;
}

/* Length of the longest suffix of p[0..n) that is a proper prefix of some stop string. */
static size_t held_suffix(const eng_stopper *st, const char *p, size_t n)
{
    size_t best = 0;
    for (size_t i = 0; i < st->nstop; i++) {
        size_t max = st->stop_len[i] - 1 < n ? st->stop_len[i] - 1 : n;
        for (size_t k = max; k > best; k--)
            if (memcmp(p + n - k, st->stops[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

int eng_stopper_feed(eng_stopper *st, const char *text, size_t len, const char **out,
                     size_t *outlen)
{
    size_t cut = (size_t)-1, hold;

    if (st->nstop == 0) {
        *out = text;
        *outlen = len;
        return 0;
    }
    rb_buf_reset(&st->out);
    if (rb_buf_append(&st->pending, text, len)) {
        /* Cannot hold more (a 1 MiB token?): release what is held, unfiltered. */
        rb_buf_append(&st->out, st->pending.data, st->pending.len);
        rb_buf_reset(&st->pending);
        rb_buf_append(&st->out, text, len);
        goto done;
    }
    for (size_t i = 0; i < st->nstop; i++) {
        const char *f = memmem(st->pending.data, st->pending.len, st->stops[i], st->stop_len[i]);
        if (f && (size_t)(f - st->pending.data) < cut)
            cut = (size_t)(f - st->pending.data);
    }
    if (cut != (size_t)-1) {
        rb_buf_append(&st->out, st->pending.data, cut);
        rb_buf_reset(&st->pending);
        *out = st->out.data ? st->out.data : "";
        *outlen = st->out.len;
        return 1;
    }
    hold = held_suffix(st, st->pending.data, st->pending.len);
    rb_buf_append(&st->out, st->pending.data, st->pending.len - hold);
    rb_buf_consume(&st->pending, st->pending.len - hold);
done:
    *out = st->out.data ? st->out.data : "";
    *outlen = st->out.len;
    return 0;
}

void eng_stopper_flush(eng_stopper *st, const char **out, size_t *outlen)
{
    rb_buf_reset(&st->out);
    rb_buf_append(&st->out, st->pending.data ? st->pending.data : "", st->pending.len);
    rb_buf_reset(&st->pending);
    *out = st->out.data ? st->out.data : "";
    *outlen = st->out.len;
}
