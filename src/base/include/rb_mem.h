/*
 * rb_mem.h - what a worker needs in memory to serve a model, as one formula shared by the
 * engine (which knows the model it loaded: eng_model_estimate_memory) and the hive (which
 * reads the same numbers from the GGUF header before it spawns, hive_gguf.h). Pure
 * arithmetic over plain numbers, so neither side needs the other's code; and the resident
 * set of a process, which the worker reports in /metrics and the hive in /v1/workers/list.
 *
 *     rb_mem_shape sh = {.weight_bytes = size, .n_layer = 32, ...};   // from the model
 *     rb_mem_run run = rb_mem_run_default();
 *     run.n_ctx = rb_mem_ctx(-1, sh.n_ctx_train);                     // the default 4096
 *     rb_kv_type_parse("f16", &run.kv_block_elems, &run.kv_block_bytes);
 *     rb_mem_estimate e;
 *     rb_mem_estimate_compute(&sh, &run, &e);                        // e.total bytes
 */
#ifndef RB_MEM_H
#define RB_MEM_H

#include <stdint.h>
#include <sys/types.h>

#include "rb_err.h"

/* Context tokens of a session when none is asked for (llama.cpp's and ollama's default). */
#define RB_CTX_DEFAULT 4096
/* The process besides its model and sessions: code, libraries, OpenBLAS and HTTP threads. */
#define RB_MEM_PROCESS_BYTES (48ull << 20)

/* The model's numbers. key_length and value_length are per head (GGUF
 * <arch>.attention.key_length / value_length); 0 means n_embd / n_head. */
typedef struct rb_mem_shape {
    uint64_t weight_bytes; /* the tensors (the file size is a close upper bound) */
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff, n_rot;
    int key_length, value_length;
} rb_mem_shape;

/* How the worker runs it. */
typedef struct rb_mem_run {
    int n_ctx;   /* context tokens per slot, already resolved by rb_mem_ctx */
    int slots;   /* sessions, each with its own KV cache and scratch */
    int threads; /* threads per session */
    int n_batch; /* prompt tokens per forward pass */
    int kv_block_elems, kv_block_bytes; /* the cache type: f32 1/4, f16 1/2, q8_0 32/34 */
} rb_mem_run;

/* Bytes, by part; total = weights + kv + scratch + process. */
typedef struct rb_mem_estimate {
    uint64_t weights, kv, scratch, process, total;
} rb_mem_estimate;

/* n_ctx 4096, 1 slot, 1 thread, batch 64, an F16 cache. */
rb_mem_run rb_mem_run_default(void);

/* The context a session gets: requested < 0 is RB_CTX_DEFAULT capped at the training context,
 * 0 the training context, anything else capped at it (the caller warns when it caps). */
int rb_mem_ctx(int requested, int n_ctx_train);

/* The KV cache types ("f32", "f16", "q8_0", case-insensitive) as a block of elems elements in
 * bytes bytes. RB_EINVAL for another name. */
rb_err rb_kv_type_parse(const char *name, int *elems, int *bytes);

/* KV cache: slots x n_ctx x n_layer x n_head_kv x (key_length + value_length) x the type's
 * size. Scratch: what a session allocates besides it (activations of n_batch tokens, the RoPE
 * table, attention scores, dequantization and sampler buffers) and the tokenizer, per slot.
 * Overflow saturates at UINT64_MAX. */
void rb_mem_estimate_compute(const rb_mem_shape *m, const rb_mem_run *r, rb_mem_estimate *out);

/* Resident set of process pid (0: this process) in bytes, from /proc/<pid>/statm. RB_EIO when
 * it cannot be read (the process is gone). */
rb_err rb_proc_rss_bytes(pid_t pid, uint64_t *out);

#endif
