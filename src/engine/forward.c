/*
 * forward.c - the llama forward pass.
 *
 *   x = token_embd[tokens]
 *   for each layer:
 *       xb = rmsnorm(x) * attn_norm
 *       q, k, v = Wq xb, Wk xb, Wv xb;  rope(q, k) at each position (interleaved pairs)
 *       kv cache[pos] = k, v
 *       xb2 = softmax(q k^T / sqrt(head_dim)) v      (causal; kv head = head / group)
 *       x += Wo xb2
 *       xb = rmsnorm(x) * ffn_norm
 *       x += W_down (silu(W_gate xb) * (W_up xb))
 *   logits = W_out (rmsnorm(x) * output_norm)        (last position, or all for tests)
 *
 * Matrix products go through one of two paths. Decoding (few tokens) prepares the activations
 * once in the weight type's dot format (eng_act_quantize) and uses the quantized kernels;
 * a prompt batch of at least blas_min tokens dequantizes weight rows in chunks and multiplies
 * with OpenBLAS sgemm. Both split the output rows across the session's thread pool.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "session.h"

#define BLAS_ROWS ENG_BLAS_ROWS

/* ---- small ops ---------------------------------------------------------------------------- */

static void rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

/* Rotates pairs (2i, 2i+1) of each head's first n_rot dims by pos * base^(-2i/n_rot): the
 * interleaved mode llama.cpp applies to the llama architecture. */
static void rope(float *v, int n_heads, int head_dim, int n_rot, int pos, float base)
{
    for (int i = 0; i < n_rot; i += 2) {
        float theta = (float)pos * powf(base, -(float)i / (float)n_rot);
        float c = cosf(theta), s = sinf(theta);
        for (int h = 0; h < n_heads; h++) {
            float *p = v + h * head_dim + i;
            float a = p[0], b = p[1];
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
    }
}

static void softmax(float *x, int n)
{
    float max = x[0], sum = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

/* ---- matrix products ---------------------------------------------------------------------- */

typedef struct mm_task {
    eng_session *s;
    const eng_weight *w;
    const float *X;    /* (nt, cols) float input (sgemm path) */
    int nt;
    float *Y;          /* (nt, rows) */
} mm_task;

static void mm_quant_part(void *ctx, int ith, int nth)
{
    mm_task *t = ctx;
    long r0, r1;
    eng_split(t->w->rows, ith, nth, 16, &r0, &r1);
    if (r0 < r1)
        eng_matmul(t->w->type, t->w->data, t->w->cols, t->s->xq, t->nt, t->Y, t->w->rows, r0,
                   r1);
}

static void mm_blas_part(void *ctx, int ith, int nth)
{
    mm_task *t = ctx;
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
    }
}

typedef struct prep_task {
    eng_session *s;
    eng_type wtype;
    const float *X;
    int nt, cols;
} prep_task;

static void prep_part(void *ctx, int ith, int nth)
{
    prep_task *t = ctx;
    long b0, b1;
    eng_split(t->nt, ith, nth, 1, &b0, &b1);
    if (b0 < b1)
        eng_act_prepare(t->wtype, t->X, t->cols, t->nt, b0, b1, t->s->xq);
}

/* Prepares X (nt rows of cols) for weights of type wtype, unless it already is. */
static void prepare(eng_session *s, const float *X, int nt, int cols, eng_type wtype)
{
    prep_task t = {s, wtype, X, nt, cols};
    if (nt == 1)
        eng_act_quantize(wtype, X, s->xq, cols);
    else
        eng_pool_for(s->pool, eng_pool_chunks(s->pool, nt, cols), prep_part, &t);
}

/* Y (nt, w->rows) = X (nt, w->cols) W^T. prepared: X already prepared for w's dot format. */
static void matmul(eng_session *s, const eng_weight *w, const float *X, int nt, float *Y,
                   int prepared)
{
    mm_task t = {s, w, X, nt, Y};

    if (nt >= s->blas_min && !eng_matmul_has_gemm(w->type)) {
        /* One chunk per thread: each owns a slice of the dequantization scratch. */
        eng_pool_for(s->pool, eng_pool_size(s->pool), mm_blas_part, &t);
        return;
    }
    if (!prepared)
        prepare(s, X, nt, (int)w->cols, w->type);
    eng_pool_for(s->pool, eng_pool_chunks(s->pool, w->rows / 16, 16 * w->cols * nt),
                 mm_quant_part, &t);
}

/* 1 if weights a and b take activations in the same format (so one preparation serves both). */
static int same_format(const eng_weight *a, const eng_weight *b)
{
    return eng_vec_dot_type(a->type) == eng_vec_dot_type(b->type);
}

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct att_task {
    eng_session *s;
    int layer, nt, pos0;
} att_task;

static void attention_part(void *ctx, int ith, int nth)
{
    att_task *t = ctx;
    eng_session *s = t->s;
    const eng_hparams *hp = &s->m->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    float *att = s->att + (size_t)ith * s->n_ctx; /* one scratch row per chunk */
    const float *kc = s->key_cache + (size_t)t->layer * s->n_ctx * hp->kv_dim;
    const float *vc = s->value_cache + (size_t)t->layer * s->n_ctx * hp->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    long w0, w1;

    eng_split((long)t->nt * hp->n_head, ith, nth, 1, &w0, &w1);
    for (long w = w0; w < w1; w++) {
        int b = (int)(w / hp->n_head), h = (int)(w % hp->n_head);
        int pos = t->pos0 + b, kvh = h / group;
        const float *q = s->q + (size_t)b * hp->n_embd + (size_t)h * hd;
        float *out = s->xb2 + (size_t)b * hp->n_embd + (size_t)h * hd;

        for (int p = 0; p <= pos; p++)
            att[p] = eng_vec_dot(ENG_TYPE_F32, kc + (size_t)p * hp->kv_dim + (size_t)kvh * hd, q,
                                 hd) * scale;
        softmax(att, pos + 1);
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int p = 0; p <= pos; p++) {
            const float *v = vc + (size_t)p * hp->kv_dim + (size_t)kvh * hd;
            float a = att[p];
            for (int i = 0; i < hd; i++)
                out[i] += a * v[i];
        }
    }
}

/* ---- the pass ----------------------------------------------------------------------------- */

static void embed(eng_session *s, const int32_t *tokens, int n)
{
    const eng_weight *e = &s->m->tok_embd;
    for (int b = 0; b < n; b++)
        eng_dequantize_row(e->type, e->data + (size_t)tokens[b] * e->row_bytes,
                           s->x + (size_t)b * s->m->hp.n_embd, e->cols);
}

static void layer_forward(eng_session *s, int l, int n)
{
    const eng_hparams *hp = &s->m->hp;
    const eng_layer *L = &s->m->layers[l];
    int dim = hp->n_embd, kv = hp->kv_dim, ff = hp->n_ff;
    float *kc = s->key_cache + (size_t)l * s->n_ctx * kv;
    float *vc = s->value_cache + (size_t)l * s->n_ctx * kv;

    for (int b = 0; b < n; b++)
        rmsnorm(s->xb + (size_t)b * dim, s->x + (size_t)b * dim, L->attn_norm, dim, hp->rms_eps);
    matmul(s, &L->wq, s->xb, n, s->q, 0);
    matmul(s, &L->wk, s->xb, n, s->k, same_format(&L->wq, &L->wk));
    matmul(s, &L->wv, s->xb, n, s->v, same_format(&L->wk, &L->wv));
    for (int b = 0; b < n; b++) {
        int pos = s->n_past + b;
        rope(s->q + (size_t)b * dim, hp->n_head, hp->head_dim, hp->n_rot, pos, hp->rope_base);
        rope(s->k + (size_t)b * kv, hp->n_head_kv, hp->head_dim, hp->n_rot, pos, hp->rope_base);
        memcpy(kc + (size_t)pos * kv, s->k + (size_t)b * kv, (size_t)kv * sizeof(float));
        memcpy(vc + (size_t)pos * kv, s->v + (size_t)b * kv, (size_t)kv * sizeof(float));
    }
    att_task at = {s, l, n, s->n_past};
    eng_pool_for(s->pool,
                 eng_pool_chunks(s->pool, (long)n * hp->n_head,
                                 (long)(s->n_past + n) * hp->head_dim * 2),
                 attention_part, &at);
    matmul(s, &L->wo, s->xb2, n, s->xb, 0);
    for (size_t i = 0; i < (size_t)n * dim; i++)
        s->x[i] += s->xb[i];

    for (int b = 0; b < n; b++)
        rmsnorm(s->xb + (size_t)b * dim, s->x + (size_t)b * dim, L->ffn_norm, dim, hp->rms_eps);
    matmul(s, &L->w_gate, s->xb, n, s->hb, 0);
    matmul(s, &L->w_up, s->xb, n, s->hb2, same_format(&L->w_gate, &L->w_up));
    for (size_t i = 0; i < (size_t)n * ff; i++) {
        float g = s->hb[i];
        s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
    }
    matmul(s, &L->w_down, s->hb, n, s->xb, 0);
    for (size_t i = 0; i < (size_t)n * dim; i++)
        s->x[i] += s->xb[i];
}

void eng_forward(eng_session *s, const int32_t *tokens, int n)
{
    const eng_hparams *hp = &s->m->hp;
    int dim = hp->n_embd;

    embed(s, tokens, n);
    for (int l = 0; l < hp->n_layer; l++)
        layer_forward(s, l, n);

    if (s->keep_all) {
        /* Every position's logits (tests compare them with the reference). */
        for (int b = 0; b < n; b++)
            rmsnorm(s->xb + (size_t)b * dim, s->x + (size_t)b * dim, s->m->out_norm, dim,
                    hp->rms_eps);
        for (int b = 0; b < n; b++) {
            float *dst = s->all_logits + (s->n_all + (size_t)b) * (size_t)hp->n_vocab;
            matmul(s, &s->m->output, s->xb + (size_t)b * dim, 1, dst, 0);
        }
        s->n_all += (size_t)n;
        memcpy(s->logits, s->all_logits + (s->n_all - 1) * (size_t)hp->n_vocab,
               (size_t)hp->n_vocab * sizeof(float));
    } else {
        rmsnorm(s->xb, s->x + (size_t)(n - 1) * dim, s->m->out_norm, dim, hp->rms_eps);
        matmul(s, &s->m->output, s->xb, 1, s->logits, 0);
    }
    s->n_past += n;
}
