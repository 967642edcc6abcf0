/*
 * forward.c - the forward pass of every supported architecture (model.c's eng_arch table).
 *
 *   x = token_embd[tokens]                          (* sqrt(n_embd): EMBD_SCALE)
 *   for each layer:
 *       xb = rmsnorm(x) * attn_norm
 *       q, k, v = Wq xb, Wk xb, Wv xb               (+ biases: QKV_BIAS)
 *       q, k = rmsnorm per head (QK_NORM);  rope(q, k) at each position (interleaved pairs,
 *              or NEOX halves: ROPE_NEOX; the sliding layers' own table when they have one)
 *       kv cache[pos] = k, v
 *       xb2 = softmax(cap(q k^T * attn_scale)) v     (causal, within the window on sliding
 *             layers; cap = c tanh(s / c) with SOFTCAP; kv head = head / group)
 *       x += Wo xb2                                 (rmsnorm'ed first: POST_NORMS)
 *       xb = rmsnorm(x) * ffn_norm
 *       x += W_down (act(W_gate xb) * (W_up xb))    (act silu, or gelu-tanh: GELU;
 *                                                    rmsnorm'ed first: POST_NORMS)
 *   logits = W_out (rmsnorm(x) * output_norm)       (capped: SOFTCAP; last position, or all
 *                                                    for tests)
 *
 * DESIGN. Matrix products prepare their input once (eng_act_prepare, in the layout the weight
 * type's kernel reads) and split the output rows across the session's pool in chunks. Ops
 * that read the same input run as one pool job: Wq, Wk and Wv share a job over their stacked
 * rows, and W_gate and W_up another that also applies silu(gate) * up to the rows it made;
 * the residual adds happen in the Wo and W_down jobs. So a layer costs five pool jobs
 * (qkv, attention, wo, gate-up, down), which matters when a whole token takes 200 us. Types
 * without a batch kernel (eng_matmul_has_gemm) take prompts of blas_min tokens or more through
 * OpenBLAS sgemm on weight rows dequantized in chunks.
 *
 * Attention is two products per kv head and token: the scores of the group of query heads
 * that share the kv head against the cached keys (eng_attn_scores, positions in the vector
 * lanes), and the softmaxed scores against the cached values (a float matrix product, a dot
 * over positions per dimension). Both caches are stored transposed, one row of positions per
 * dimension, for that purpose, in F32 or F16 (eng_attn_scores_f16; the values are then a
 * matrix product with F16 weights). A Q8_0 cache has blocks of 32 along the head dimension,
 * so it is stored one position per row: the scores are a Q8_0 matrix product against the
 * queries quantized to Q8_0, the values a weighted sum of rows (eng_attn_values_q8_0).
 */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels.h"
#include "session.h"

#define BLAS_ROWS ENG_BLAS_ROWS
#define ROW_ALIGN 16 /* chunks of a matrix start on a multiple of this many rows */
#define MAX_PARTS 3  /* matrices in one job (q, k, v) */

/* ---- small ops ---------------------------------------------------------------------------- */

/* Rotates pairs (2i, 2i+1) of each head's first n_rot dims by pos * base^(-2i/n_rot): the
 * interleaved mode llama.cpp applies to the llama architecture. cs: the session's table for
 * this position, (cos, sin) per pair. */
static void rope(float *v, int n_heads, int head_dim, int n_rot, const float *cs)
{
    for (int i = 0; i < n_rot; i += 2) {
        float c = cs[i], s = cs[i + 1];
        for (int h = 0; h < n_heads; h++) {
            float *p = v + h * head_dim + i;
            float a = p[0], b = p[1];
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
    }
}

/* The NEOX mode (qwen2, qwen3, phi3, gemma): dimension i pairs with i + n_rot / 2, pair i
 * turning by the same angle as interleaved pair i. */
static void rope_neox(float *v, int n_heads, int head_dim, int n_rot, const float *cs)
{
    const int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1];
        for (int h = 0; h < n_heads; h++) {
            float *p = v + h * head_dim + i;
            float a = p[0], b = p[half];
            p[0] = a * c - b * s;
            p[half] = a * s + b * c;
        }
    }
}

/* g = gelu(g) * u with the tanh approximation (gemma's gelu_pytorch_tanh). */
static void geglu(float *g, const float *u, long n)
{
    for (long i = 0; i < n; i++) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x))) * u[i];
    }
}

/* ---- matrix products ---------------------------------------------------------------------- */

/* One pool job of up to MAX_PARTS matrices with the same input, their rows stacked. */
typedef struct mm_job {
    eng_session *s;
    int nt;
    int nparts;
    const eng_weight *w[MAX_PARTS];
    const void *xq[MAX_PARTS]; /* prepared input of each part */
    float *Y[MAX_PARTS];       /* (nt, w->rows) */
    float *add;                /* x += Y[0] on the chunk's rows (wo, down), or NULL */
    int swiglu; /* Y[0] = act(Y[0]) * Y[1] on the chunk's rows (gate, up): 1 silu, 2 gelu */
} mm_job;

static long job_rows(const mm_job *j)
{
    long rows = 0;
    for (int p = 0; p < j->nparts; p++)
        rows += (long)j->w[p]->rows;
    return rows;
}

static void mm_part(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    /* swiglu: gate and up rows go together, so the chunk covers the same rows of both */
    const long total = j->swiglu ? (long)j->w[0]->rows : job_rows(j);
    long a, b, base = 0;

    eng_split(total, ith, nth, ROW_ALIGN, &a, &b);
    for (int p = 0; p < j->nparts && a < b; p++) {
        const eng_weight *w = j->w[p];
        const long lo = j->swiglu ? a : a - base, hi = j->swiglu ? b : b - base;
        const long r0 = lo < 0 ? 0 : lo, r1 = hi > w->rows ? (long)w->rows : hi;
        if (r0 < r1 && j->xq[p]) /* no xq: done by sgemm */
            eng_matmul(w->type, w->data, w->cols, j->xq[p], j->nt, j->Y[p], w->rows, r0, r1);
        base += (long)w->rows;
    }
    for (int t = 0; t < j->nt && a < b; t++) {
        const size_t rows = (size_t)j->w[0]->rows, o = (size_t)t * rows;
        if (j->swiglu == 2) {
            geglu(j->Y[0] + o + a, j->Y[1] + o + a, b - a);
        } else if (j->swiglu) {
            eng_swiglu(j->Y[0] + o + a, j->Y[1] + o + a, b - a);
        } else if (j->add) {
            for (long r = a; r < b && r < (long)rows; r++)
                j->add[o + r] += j->Y[0][o + r];
        }
    }
}

/* sgemm calls so far (eng_forward_sgemm_calls): one relaxed add per call of 64 weight rows. */
static atomic_long g_sgemm_calls;

long eng_forward_sgemm_calls(void)
{
    return atomic_load_explicit(&g_sgemm_calls, memory_order_relaxed);
}

typedef struct blas_job {
    eng_session *s;
    const eng_weight *w;
    const float *X; /* (nt, cols) */
    int nt;
    float *Y; /* (nt, rows) */
} blas_job;

static void blas_part(void *ctx, int ith, int nth)
{
    blas_job *t = ctx;
    const eng_weight *w = t->w;
    float *deq = t->s->deq + (size_t)ith * BLAS_ROWS * (size_t)t->s->max_cols;
    long r0, r1;

    eng_split(w->rows, ith, nth, BLAS_ROWS, &r0, &r1);
    for (long r = r0; r < r1; r += BLAS_ROWS) {
        long nr = r1 - r < BLAS_ROWS ? r1 - r : BLAS_ROWS;
        const float *wf;
        if (w->type == ENG_TYPE_F32) {
            wf = (const float *)(w->data + (size_t)r * w->row_bytes);
        } else {
            for (long i = 0; i < nr; i++)
                eng_dequantize_row(w->type, w->data + (size_t)(r + i) * w->row_bytes,
                                   deq + i * w->cols, w->cols);
            wf = deq;
        }
        /* Y[:, r:r+nr] = X (nt x cols) * Wc^T (cols x nr) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t->nt, (int)nr, (int)w->cols, 1.0f,
                    t->X, (int)w->cols, wf, (int)w->cols, 0.0f, t->Y + r, (int)w->rows);
        atomic_fetch_add_explicit(&g_sgemm_calls, 1, memory_order_relaxed);
    }
}

typedef struct prep_job {
    eng_type wtype;
    const float *X;
    int nt, cols;
    void *xq;
} prep_job;

static void prep_part(void *ctx, int ith, int nth)
{
    prep_job *t = ctx;
    long b0, b1;
    eng_split(t->nt, ith, nth, 1, &b0, &b1);
    if (b0 < b1)
        eng_act_prepare(t->wtype, t->X, t->cols, t->nt, b0, b1, t->xq);
}

/* Prepares X (nt rows of cols) for weights of type wtype into xq. */
static void prepare(eng_session *s, const float *X, int nt, int cols, eng_type wtype, void *xq)
{
    prep_job t = {wtype, X, nt, cols, xq};
    if (nt == 1)
        eng_act_quantize(wtype, X, xq, cols);
    else
        eng_pool_for(s->pool, eng_pool_chunks(s->pool, nt, cols), prep_part, &t);
}

/* 1 if the batch goes through sgemm (no batch kernel for the type). */
static int use_blas(const eng_session *s, const eng_weight *w, int nt)
{
    return nt >= s->blas_min && !eng_matmul_has_gemm(w->type);
}

/* Runs a job: prepares the input X (nt rows) for each part, once per distinct layout, and
 * multiplies. Parts that take the sgemm path run first, on their own; the job then only
 * applies its epilogue to them. */
static void run_job(eng_session *s, mm_job *j, const float *X)
{
    const int cols = (int)j->w[0]->cols;
    const long rows = j->swiglu ? (long)j->w[0]->rows : job_rows(j);

    for (int p = 0; p < j->nparts; p++) {
        j->xq[p] = NULL;
        if (use_blas(s, j->w[p], j->nt)) {
            blas_job b = {s, j->w[p], X, j->nt, j->Y[p]};
            /* one chunk per thread: each owns a slice of the dequantization scratch */
            eng_pool_for(s->pool, eng_pool_size(s->pool), blas_part, &b);
            continue;
        }
        for (int q = 0; q < p && !j->xq[p]; q++)
            if (j->xq[q] && eng_act_same_layout(j->w[q]->type, j->w[p]->type, j->nt))
                j->xq[p] = j->xq[q];
        if (!j->xq[p] && eng_vec_dot_type(j->w[p]->type) == ENG_TYPE_F32) {
            j->xq[p] = X; /* float weights take the float rows as they are */
        } else if (!j->xq[p]) {
            prepare(s, X, j->nt, cols, j->w[p]->type, s->xq[p]);
            j->xq[p] = s->xq[p];
        }
    }
    eng_pool_for(s->pool,
                 eng_pool_chunks(s->pool, rows / ROW_ALIGN,
                                 ROW_ALIGN * (long)cols * j->nt * (j->swiglu ? 2 : 1)),
                 mm_part, j);
}

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct att_job {
    eng_session *s;
    int layer, nt;
} att_job;

/* The first position a query at pos sees: 0, or the start of the window on a sliding
 * layer (keys within n_swa - 1 positions before the query, as llama.cpp masks). */
static int attn_window_start(const eng_session *s, int layer, int pos)
{
    const int n_swa = s->m->hp.n_swa;
    return s->m->layers[layer].swa && pos >= n_swa ? pos - n_swa + 1 : 0;
}

/* Softmax of one query's scores times scale, soft-capped first when cap > 0:
 * x = cap * tanh(x * scale / cap) (gemma2). */
static void attn_softmax(float *att, int npos, float scale, float cap)
{
    if (cap > 0) {
        for (int p = 0; p < npos; p++)
            att[p] = cap * tanhf(att[p] * scale / cap);
        scale = 1.0f;
    }
    eng_softmax(att, npos, scale);
}

/* One (token, kv head) unit: the group of query heads that share the kv head attend over
 * positions 0..pos (the window's on a sliding layer) of the row's own session's caches. */
static void attend(eng_session *s, int layer, int b, int kvh, int pos, float *att, void *qq)
{
    const eng_session *seq = s->row_seq[b];
    const eng_hparams *hp = &s->m->hp;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const int p0 = attn_window_start(s, layer, pos), npos = pos + 1 - p0;
    /* the first position's bytes: a column of the transposed caches, a row of Q8_0 */
    const size_t first = s->kv_type == ENG_TYPE_Q8_0
                             ? (size_t)p0 * s->kv_row
                             : (size_t)p0 * eng_type_block_bytes(s->kv_type);
    const size_t head = (size_t)(layer * hp->n_head_kv + kvh) * s->kv_head + first;
    const uint8_t *kc = (const uint8_t *)seq->key_cache + head;               /* one head */
    const uint8_t *vc = (const uint8_t *)seq->value_cache + head;             /* one head */
    const float *q = s->q + (size_t)b * hp->q_dim + (size_t)kvh * group * hd; /* (group, hd) */
    float *out = s->xb2 + (size_t)b * hp->q_dim + (size_t)kvh * group * hd;   /* (group, hd) */
    const size_t ldk = (size_t)s->n_ctx;

    switch (s->kv_type) { /* att: (group, npos) */
    case ENG_TYPE_Q8_0:
        eng_act_prepare(ENG_TYPE_Q8_0, q, hd, group, 0, group, qq);
        eng_matmul(ENG_TYPE_Q8_0, kc, hd, qq, group, att, npos, 0, npos);
        break;
    case ENG_TYPE_F16:
        eng_attn_scores_f16(q, group, hd, (const uint16_t *)kc, ldk, npos, att, npos);
        break;
    default:
        eng_attn_scores(q, group, hd, (const float *)kc, ldk, npos, att, npos);
        break;
    }
    for (int g = 0; g < group; g++)
        attn_softmax(att + (size_t)g * npos, npos, hp->attn_scale, hp->attn_softcap);
    if (s->kv_type == ENG_TYPE_Q8_0)
        eng_attn_values_q8_0(att, group, npos, npos, vc, hd, out, hd);
    else
        eng_matmul_stride(s->kv_type, vc, s->kv_row, npos, att, group, out, hd, 0, hd);
}

static void attention_part(void *ctx, int ith, int nth)
{
    att_job *t = ctx;
    eng_session *s = t->s;
    const int n_kv = s->m->hp.n_head_kv;
    float *att = s->att + (size_t)ith * s->att_stride; /* one scratch block per chunk */
    void *qq = s->qq ? (uint8_t *)s->qq + (size_t)ith * s->qq_bytes : NULL;
    long w0, w1;

    eng_split((long)t->nt * n_kv, ith, nth, 1, &w0, &w1);
    for (long w = w0; w < w1; w++)
        attend(s, t->layer, (int)(w / n_kv), (int)(w % n_kv), s->row_pos[w / n_kv], att, qq);
}

/* Stores one head's key k and value v (hd floats each) of position pos in seq's caches'
 * head at byte offset head, in the cache type. */
static void kv_store(const eng_session *s, eng_session *seq, size_t head, int pos, const float *k,
                     const float *v, int hd)
{
    uint8_t *kc = (uint8_t *)seq->key_cache + head, *vc = (uint8_t *)seq->value_cache + head;
    const size_t n_ctx = (size_t)s->n_ctx;

    switch (s->kv_type) {
    case ENG_TYPE_Q8_0: /* one row per position */
        eng_quantize_row(ENG_TYPE_Q8_0, k, kc + (size_t)pos * s->kv_row, hd);
        eng_quantize_row(ENG_TYPE_Q8_0, v, vc + (size_t)pos * s->kv_row, hd);
        break;
    case ENG_TYPE_F16: /* transposed */
        for (int i = 0; i < hd; i++) {
            ((uint16_t *)kc)[(size_t)i * n_ctx + pos] = eng_f32_to_fp16(k[i]);
            ((uint16_t *)vc)[(size_t)i * n_ctx + pos] = eng_f32_to_fp16(v[i]);
        }
        break;
    default:
        for (int i = 0; i < hd; i++) {
            ((float *)kc)[(size_t)i * n_ctx + pos] = k[i];
            ((float *)vc)[(size_t)i * n_ctx + pos] = v[i];
        }
        break;
    }
}

/* Adds the q, k, v biases and applies the per-head q and k norms the layer has. */
static void qkv_extras(eng_session *s, const eng_layer *L, int n)
{
    const eng_hparams *hp = &s->m->hp;
    for (int b = 0; b < n; b++) {
        float *q = s->q + (size_t)b * hp->q_dim, *k = s->k + (size_t)b * hp->kv_dim;
        float *v = s->v + (size_t)b * hp->kv_dim;
        for (int i = 0; L->bq && i < hp->q_dim; i++)
            q[i] += L->bq[i];
        for (int i = 0; L->bk && i < hp->kv_dim; i++) {
            k[i] += L->bk[i];
            v[i] += L->bv[i];
        }
        for (int h = 0; L->q_norm && h < hp->n_head; h++)
            eng_rmsnorm(q + h * hp->head_dim, q + h * hp->head_dim, L->q_norm, hp->head_dim,
                        hp->rms_eps);
        for (int h = 0; L->k_norm && h < hp->n_head_kv; h++)
            eng_rmsnorm(k + h * hp->head_dim, k + h * hp->head_dim, L->k_norm, hp->head_dim,
                        hp->rms_eps);
    }
}

/* Ropes q and k of the new tokens and stores k and v in the caches. */
static void rope_store(eng_session *s, int l, int n)
{
    const eng_hparams *hp = &s->m->hp;
    const int hd = hp->head_dim, kv = hp->kv_dim;
    const int neox = (s->m->arch->flags & ENG_ARCH_ROPE_NEOX) != 0;
    const float *table = s->m->layers[l].swa ? s->rope_swa : s->rope_cs;
    for (int b = 0; b < n; b++) {
        const int pos = s->row_pos[b];
        const float *cs = table + (size_t)pos * hp->n_rot;
        if (neox) {
            rope_neox(s->q + (size_t)b * hp->q_dim, hp->n_head, hd, hp->n_rot, cs);
            rope_neox(s->k + (size_t)b * kv, hp->n_head_kv, hd, hp->n_rot, cs);
        } else {
            rope(s->q + (size_t)b * hp->q_dim, hp->n_head, hd, hp->n_rot, cs);
            rope(s->k + (size_t)b * kv, hp->n_head_kv, hd, hp->n_rot, cs);
        }
        for (int h = 0; h < hp->n_head_kv; h++)
            kv_store(s, s->row_seq[b], (size_t)(l * hp->n_head_kv + h) * s->kv_head, pos,
                     s->k + (size_t)b * kv + (size_t)h * hd, s->v + (size_t)b * kv + (size_t)h * hd,
                     hd);
    }
}

/* ---- the pass ----------------------------------------------------------------------------- */

static void embed(eng_session *s, const int32_t *tokens, int n)
{
    const eng_weight *e = &s->m->tok_embd;
    const int dim = s->m->hp.n_embd;
    const float scale = sqrtf((float)dim);
    for (int b = 0; b < n; b++) {
        float *x = s->x + (size_t)b * dim;
        eng_dequantize_row(e->type, e->data + (size_t)tokens[b] * e->row_bytes, x, e->cols);
        for (int i = 0; (s->m->arch->flags & ENG_ARCH_EMBD_SCALE) && i < dim; i++)
            x[i] *= scale;
    }
}

/* x += rmsnorm(y) * w for n rows: a branch output normalised before the residual add. */
static void add_post_norm(eng_session *s, float *y, const float *w, int n)
{
    const int dim = s->m->hp.n_embd;
    for (int b = 0; b < n; b++) {
        float *r = y + (size_t)b * dim, *x = s->x + (size_t)b * dim;
        eng_rmsnorm(r, r, w, dim, s->m->hp.rms_eps);
        for (int i = 0; i < dim; i++)
            x[i] += r[i];
    }
}

/* logits = cap * tanh(logits / cap) (gemma2's final soft-capping). */
static void cap_logits(float *logits, size_t n, float cap)
{
    for (size_t i = 0; cap > 0 && i < n; i++)
        logits[i] = cap * tanhf(logits[i] / cap);
}

static void norm_rows(eng_session *s, const float *w, int n)
{
    const int dim = s->m->hp.n_embd;
    for (int b = 0; b < n; b++)
        eng_rmsnorm(s->xb + (size_t)b * dim, s->x + (size_t)b * dim, w, dim, s->m->hp.rms_eps);
}

static void layer_forward(eng_session *s, int l, int n, int max_pos)
{
    const eng_hparams *hp = &s->m->hp;
    const eng_layer *L = &s->m->layers[l];

    norm_rows(s, L->attn_norm, n);
    mm_job qkv = {s, n, 3, {&L->wq, &L->wk, &L->wv}, {0}, {s->q, s->k, s->v}, NULL, 0};
    run_job(s, &qkv, s->xb);
    qkv_extras(s, L, n);
    rope_store(s, l, n);

    att_job at = {s, l, n};
    eng_pool_for(
        s->pool,
        eng_pool_chunks(s->pool, (long)n * hp->n_head_kv,
                        (long)(max_pos + 1) * hp->head_dim * 2 * (hp->n_head / hp->n_head_kv)),
        attention_part, &at);

    mm_job wo = {s, n, 1, {&L->wo}, {0}, {s->xb}, L->post_attn_norm ? NULL : s->x, 0};
    run_job(s, &wo, s->xb2);
    if (L->post_attn_norm)
        add_post_norm(s, s->xb, L->post_attn_norm, n);

    norm_rows(s, L->ffn_norm, n);
    mm_job ffn = {s,    n,
                  2,    {&L->w_gate, &L->w_up},
                  {0},  {s->hb, s->hb2},
                  NULL, s->m->arch->flags & ENG_ARCH_GELU ? 2 : 1};
    run_job(s, &ffn, s->xb);

    mm_job down = {s, n, 1, {&L->w_down}, {0}, {s->xb}, L->post_ffw_norm ? NULL : s->x, 0};
    run_job(s, &down, s->hb);
    if (L->post_ffw_norm)
        add_post_norm(s, s->xb, L->post_ffw_norm, n);
}

/* logits (n rows of n_vocab) of the normalised rows of xb. */
static void output(eng_session *s, int n, float *logits)
{
    mm_job out = {s, n, 1, {&s->m->output}, {0}, {logits}, NULL, 0};
    run_job(s, &out, s->xb);
    cap_logits(logits, (size_t)n * (size_t)s->m->hp.n_vocab, s->m->hp.final_softcap);
}

/* The layers over n rows already embedded in x. */
static void layers(eng_session *s, int n)
{
    int max_pos = 0;
    for (int b = 0; b < n; b++)
        if (s->row_pos[b] > max_pos)
            max_pos = s->row_pos[b];
    for (int l = 0; l < s->m->hp.n_layer; l++)
        layer_forward(s, l, n, max_pos);
}

void eng_forward_rows(eng_session *L, const int32_t *tokens, int n, const int *log_rows,
                      float *const *log_out, int nlog)
{
    const eng_hparams *hp = &L->m->hp;
    const int dim = hp->n_embd;
    const size_t nv = (size_t)hp->n_vocab;

    embed(L, tokens, n);
    layers(L, n);
    for (int i = 0; i < nlog; i++)
        eng_rmsnorm(L->xb + (size_t)i * dim, L->x + (size_t)log_rows[i] * dim, L->m->out_norm, dim,
                    hp->rms_eps);
    if (nlog == 1) {
        output(L, 1, log_out[0]);
        return;
    }
    /* one product for every row that wants logits, then each row to its session */
    output(L, nlog, L->blogits);
    for (int i = 0; i < nlog; i++)
        memcpy(log_out[i], L->blogits + (size_t)i * nv, nv * sizeof(float));
}

void eng_forward(eng_session *s, const int32_t *tokens, int n)
{
    eng_session *L = s->lead;
    const eng_hparams *hp = &s->m->hp;

    for (int b = 0; b < n; b++) {
        L->row_seq[b] = s;
        L->row_pos[b] = s->n_past + b;
        s->kv_tokens[s->n_past + b] = tokens[b];
    }
    if (s->keep_all) {
        /* Every position's logits (tests compare them with the reference). */
        embed(L, tokens, n);
        layers(L, n);
        norm_rows(L, s->m->out_norm, n);
        output(L, n, s->all_logits + s->n_all * (size_t)hp->n_vocab);
        s->n_all += (size_t)n;
        memcpy(s->logits, s->all_logits + (s->n_all - 1) * (size_t)hp->n_vocab,
               (size_t)hp->n_vocab * sizeof(float));
    } else {
        int last = n - 1;
        float *out = s->logits;
        eng_forward_rows(L, tokens, n, &last, &out, 1);
    }
    s->n_past += n;
    s->n_cached = s->n_past;
}
