/*
 * model.h - the loaded llama model: hyperparameters and weight views into the mmapped file
 * (internal to the engine).
 *
 * Shapes follow the GGUF convention: a 2-D weight has ne[0] = cols (input features, the
 * contiguous dimension) and ne[1] = rows (output features); y = W x has rows entries.
 */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include <stdint.h>

#include "eng.h"
#include "eng_gguf.h"
#include "eng_tok.h"

typedef struct eng_hparams {
    int n_vocab;
    int n_ctx_train;
    int n_embd; /* dim */
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim; /* n_embd / n_head */
    int kv_dim;   /* head_dim * n_head_kv */
    int n_ff;     /* hidden dim of the feed-forward */
    int n_rot;    /* rotated dims per head (rope.dimension_count) */
    float rope_base;
    float rms_eps;
} eng_hparams;

/* A 2-D weight in its file type; row r starts at data + r * row_bytes. */
typedef struct eng_weight {
    eng_type type;
    const uint8_t *data; /* borrowed from the mapping */
    int64_t rows, cols;
    size_t row_bytes;
} eng_weight;

typedef struct eng_layer {
    float *attn_norm;  /* (n_embd) owned F32 copy */
    eng_weight wq;     /* (n_embd rows, n_embd cols) */
    eng_weight wk;     /* (kv_dim, n_embd) */
    eng_weight wv;     /* (kv_dim, n_embd) */
    eng_weight wo;     /* (n_embd, n_embd) */
    float *ffn_norm;   /* (n_embd) */
    eng_weight w_gate; /* (n_ff, n_embd) */
    eng_weight w_up;   /* (n_ff, n_embd) */
    eng_weight w_down; /* (n_embd, n_ff) */
} eng_layer;

struct eng_model {
    eng_gguf *gguf;
    eng_tokenizer *tok;
    eng_hparams hp;
    eng_weight tok_embd; /* (n_vocab rows, n_embd cols) */
    eng_layer *layers;   /* (n_layer) */
    float *out_norm;     /* (n_embd) */
    eng_weight output;   /* (n_vocab, n_embd); == tok_embd when tied */
    int tied_output;
    eng_model_info info;
    /* copy_weights: the data section read into huge-page memory (wcopy, wcopy_len bytes
     * mapped) from file descriptor fd while loading; NULL when serving from the mapping */
    uint8_t *wcopy;
    size_t wcopy_len;
    int fd;
};

#endif
