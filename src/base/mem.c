/*
 * mem.c - the worker's memory estimate and process resident sets (rb_mem.h).
 *
 * DESIGN. The scratch terms follow what eng_session_open allocates (src/engine/session.c),
 * rounded up where the engine's exact figure depends on the instruction set; the engine's
 * unit tests hold the two together. Multiplications go through mul() so that a nonsense
 * header (a billion layers) saturates instead of wrapping into a small, accepted number.
 */
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

#include "rb_mem.h"

#define SCRATCH_F32 4ull    /* bytes of a float */
#define BLAS_ROWS 64ull     /* weight rows the sgemm path dequantizes at once per thread */
#define CHUNKS_PER_THREAD 4 /* attention score rows per thread (eng_pool_max_chunks) */
#define TOKEN_BYTES 64ull   /* tokenizer memory per vocabulary entry: text, score, maps */

static uint64_t mul(uint64_t a, uint64_t b)
{
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static uint64_t add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t pos(int v)
{
    return v > 0 ? (uint64_t)v : 0;
}

rb_mem_run rb_mem_run_default(void)
{
    rb_mem_run r = {RB_CTX_DEFAULT, 1, 1, 64, 1, 2};
    return r;
}

int rb_mem_ctx(int requested, int n_ctx_train)
{
    int want = requested < 0 ? RB_CTX_DEFAULT : requested == 0 ? n_ctx_train : requested;
    return n_ctx_train > 0 && want > n_ctx_train ? n_ctx_train : want;
}

rb_err rb_kv_type_parse(const char *name, int *elems, int *bytes)
{
    static const struct {
        const char *name;
        int elems, bytes;
    } types[] = {{"f32", 1, 4}, {"f16", 1, 2}, {"q8_0", 32, 34}};

    for (size_t i = 0; name && i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(name, types[i].name) == 0) {
            *elems = types[i].elems;
            *bytes = types[i].bytes;
            return RB_OK;
        }
    return RB_EINVAL;
}

/* What a sequence owns besides its KV cache: logits, sampler, the cached tokens
 * (session.c, batch.c). */
static uint64_t seq_scratch(const rb_mem_shape *m, const rb_mem_run *r)
{
    return add(mul(pos(m->n_vocab), 3 * SCRATCH_F32 + 8), mul(pos(r->n_ctx), 4));
}

/* The pass buffers, which every sequence of a batch shares (session.c, batch.c: a batch's
 * n_batch is at least its number of sequences). */
static uint64_t session_scratch(const rb_mem_shape *m, const rb_mem_run *r)
{
    const uint64_t ctx = pos(r->n_ctx), embd = pos(m->n_embd), ff = pos(m->n_ff);
    const uint64_t nb = pos(r->n_batch) > pos(r->slots) ? pos(r->n_batch) : pos(r->slots);
    const uint64_t batch = nb < ctx ? nb : ctx;
    const uint64_t kl = m->key_length > 0 ? (uint64_t)m->key_length
                        : m->n_head > 0   ? embd / (uint64_t)m->n_head
                                          : 0;
    const uint64_t kv_dim = mul(kl, pos(m->n_head_kv));
    const uint64_t q_dim = mul(kl, pos(m->n_head)) > embd ? mul(kl, pos(m->n_head)) : embd;
    const uint64_t cols = embd > ff ? embd : ff;
    const uint64_t group = m->n_head_kv > 0 ? pos(m->n_head) / (uint64_t)m->n_head_kv : 1;
    uint64_t b = 0;

    /* x, xb, xb2, q; k, v; hb, hb2 for n_batch tokens */
    b = add(b, mul(mul(batch, add(add(mul(3, embd), q_dim), add(mul(2, kv_dim), mul(2, ff)))),
                   SCRATCH_F32));
    b = add(b, mul(mul(3, mul(batch, cols)), SCRATCH_F32));                   /* prepared inputs */
    b = add(b, mul(mul(ctx, pos(m->n_rot)), SCRATCH_F32));                    /* RoPE table */
    b = add(b, mul(mul(pos(r->threads), mul(BLAS_ROWS, cols)), SCRATCH_F32)); /* sgemm */
    b = add(b, mul(mul(mul(CHUNKS_PER_THREAD, pos(r->threads)), mul(group, ctx)),
                   SCRATCH_F32));      /* attention scores */
    b = add(b, mul(mul(batch, 8), 2)); /* the rows' sessions and positions */
    return b;
}

void rb_mem_estimate_compute(const rb_mem_shape *m, const rb_mem_run *r, rb_mem_estimate *out)
{
    const uint64_t kl = m->key_length > 0 ? (uint64_t)m->key_length
                        : m->n_head > 0   ? pos(m->n_embd) / (uint64_t)m->n_head
                                          : 0;
    const uint64_t vl = m->value_length > 0 ? (uint64_t)m->value_length : kl;
    const uint64_t elems =
        mul(mul(mul(pos(r->n_ctx), pos(m->n_layer)), pos(m->n_head_kv)), add(kl, vl));
    const uint64_t per_slot =
        r->kv_block_elems > 0
            ? mul(elems / (uint64_t)r->kv_block_elems + (elems % (uint64_t)r->kv_block_elems != 0),
                  pos(r->kv_block_bytes))
            : 0;

    out->weights = m->weight_bytes;
    out->kv = mul(per_slot, pos(r->slots));
    out->scratch = add(add(session_scratch(m, r), mul(seq_scratch(m, r), pos(r->slots))),
                       mul(pos(m->n_vocab), TOKEN_BYTES));
    if (pos(r->slots) > 1) /* the batched output's logits rows */
        out->scratch = add(out->scratch, mul(mul(pos(r->slots), pos(m->n_vocab)), SCRATCH_F32));
    out->process = RB_MEM_PROCESS_BYTES;
    out->total = add(add(out->weights, out->kv), add(out->scratch, out->process));
}

rb_err rb_proc_rss_bytes(pid_t pid, uint64_t *out)
{
    char path[64];
    unsigned long long size = 0, resident = 0;
    long page = sysconf(_SC_PAGESIZE);
    FILE *f;
    rb_err rc = RB_OK;

    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    else
        snprintf(path, sizeof path, "/proc/self/statm");
    f = fopen(path, "r");
    if (!f)
        return RB_EIO;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2 || page <= 0)
        rc = RB_EIO;
    else
        *out = (uint64_t)resident * (uint64_t)page;
    fclose(f);
    return rc;
}
