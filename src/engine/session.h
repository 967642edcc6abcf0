/*
 * session.h - a generation session: activations, KV cache, sampler and text state
 * (internal to the engine). Like llama2.c's RunState: everything a forward pass touches is
 * allocated once in eng_session_open(), so decoding allocates nothing.
 */
#ifndef ENG_SESSION_H
#define ENG_SESSION_H

#include <stdatomic.h>

#include "model.h"
#include "pool.h"
#include "sampler.h"

#define ENG_BLAS_ROWS 64 /* weight rows dequantized per sgemm call */

struct eng_session {
    eng_model *m;
    /* The session whose pool and buffers this one uses: itself, or a batch's first session
     * (eng_batch_open). A pass of a batch runs on the lead's buffers; every field up to the KV
     * cache is the lead's (copied pointers), the rest is this session's own. */
    eng_session *lead;
    eng_pool *pool;
    int n_ctx;
    int n_batch;  /* max tokens per forward pass */
    int blas_min; /* batches of at least this many tokens use sgemm */
    int max_cols; /* max(n_embd, n_ff): widest input of a matrix product */

    /* activations for up to n_batch tokens */
    float *x;          /* (n_batch, n_embd) residual stream */
    float *xb;         /* (n_batch, n_embd) normalised input of a block */
    float *xb2;        /* (n_batch, q_dim) attention output */
    float *q;          /* (n_batch, q_dim) */
    float *k;          /* (n_batch, kv_dim) */
    float *v;          /* (n_batch, kv_dim) */
    float *hb;         /* (n_batch, n_ff) gate, then silu(gate) * up */
    float *hb2;        /* (n_batch, n_ff) up */
    void *xq[3];       /* prepared inputs of up to n_batch rows of max_cols, any layout: one per
                        * matrix of a job whose matrices want different layouts (q, k, v) */
    size_t xq_bytes;   /* eng_act_bytes_max(max_cols, n_batch) each */
    float *att;        /* (max pool chunks, att_stride) attention scores scratch */
    size_t att_stride; /* group * n_ctx floats: the scores of the query heads of one kv head */
    float *rope_cs;    /* (n_ctx, n_rot / 2, 2) cos and sin of each position's rotations */
    float *rope_swa;   /* the same for sliding-window layers; == rope_cs unless they differ */
    float *deq;        /* (n_threads, blas_rows * max(n_embd, n_ff)) sgemm weight scratch */
    float *logits;     /* (n_vocab) of the last position */
    float *all_logits; /* (n_ctx, n_vocab) when keep_all is on */
    size_t n_all;
    int keep_all;
    /* the rows of the pass being run (used in the lead): the session and position of each */
    eng_session **row_seq; /* (n_batch) */
    int *row_pos;          /* (n_batch) */
    float *blogits;        /* a batch's lead: (n_seq, n_vocab) logits of a batched pass */

    /* kv cache, in kv_type. F32 and F16: both transposed, attention reads a row of positions
     * per dimension (forward.c). Q8_0: one position per row, head_dim / 32 blocks. */
    eng_type kv_type;
    void *key_cache;   /* F32, F16: (n_layer, n_head_kv, head_dim, n_ctx); Q8_0: (n_layer,
                        * n_head_kv, n_ctx, head_dim / 32 blocks) */
    void *value_cache; /* the same shape */
    size_t kv_head;    /* bytes of one (layer, kv head) of either cache */
    size_t kv_row;     /* Q8_0: bytes of one position of one head */
    void *qq;          /* Q8_0: (max pool chunks, qq_bytes) the queries quantized for the keys */
    size_t qq_bytes;
    int n_past;
    int32_t *kv_tokens; /* (n_ctx) the token at each cached position */
    int n_cached;       /* positions of kv_tokens whose KV is valid (survives a reset) */

    /* generation state */
    eng_sampler sampler;
    eng_stopper stopper;
    eng_detok *detok; /* generated ids -> UTF-8-complete text */
    int32_t pending;  /* sampled but not yet fed back, -1 if none */
    int n_generated;
    int finished;
    atomic_int cancel;
    char text[1024]; /* the last step's text when it had to be assembled */

    eng_timings timings;
};

/* Runs n tokens at positions n_past.. through the model, leaving the last position's logits in
 * s->logits (and every position's in all_logits when keep_all). n <= n_batch; the caller
 * checks the context. */
void eng_forward(eng_session *s, const int32_t *tokens, int n);
/* The pass of a batch: n tokens whose sessions and positions are in L->row_seq and
 * L->row_pos (L the lead); the logits of rows log_rows[0..nlog) go to log_out[i] (n_vocab
 * floats each). Positions and caches are not advanced: the caller does it. */
void eng_forward_rows(eng_session *L, const int32_t *tokens, int n, const int *log_rows,
                      float *const *log_out, int nlog);
/* Bytes of the session's two KV caches (tests and the memory estimate). */
size_t eng_session_kv_bytes(const eng_session *s);
/* OpenBLAS sgemm calls eng_forward has made in this process (every session): tests read it
 * to prove a prompt took the sgemm path. */
long eng_forward_sgemm_calls(void);

#endif
