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

/* What varies between the supported architectures (model.c's table). One forward pass reads
 * these flags; nothing else in the engine branches on the architecture's name. */
enum {
    ENG_ARCH_QKV_BIAS = 1u << 0,   /* attn_q/k/v.bias required (qwen2) */
    ENG_ARCH_QK_NORM = 1u << 1,    /* per-head RMS norm of q and k before RoPE (qwen3, gemma3) */
    ENG_ARCH_POST_NORMS = 1u << 2, /* post_attention_norm, post_ffw_norm on the branch outputs */
    ENG_ARCH_FUSED_QKV = 1u << 3,  /* one attn_qkv.weight: q rows, then k, then v (phi3) */
    ENG_ARCH_FUSED_UP = 1u << 4,   /* ffn_up.weight holds the gate rows, then the up rows */
    ENG_ARCH_EMBD_SCALE = 1u << 5, /* embeddings times sqrt(n_embd) (gemma) */
    ENG_ARCH_ROPE_NEOX = 1u << 6,  /* RoPE pairs (i, i + n_rot/2), not (2i, 2i+1) */
    ENG_ARCH_GELU = 1u << 7,       /* gelu(tanh)(gate) * up instead of silu(gate) * up */
    ENG_ARCH_SOFTCAP = 1u << 8,    /* attention and final logit soft-capping (gemma2) */
    ENG_ARCH_ROPE_FREQS = 1u << 9, /* rope_freqs.weight accepted (llama 3.1) */
    ENG_ARCH_ROPE_LONGSHORT = 1u << 10, /* rope_factors_long/short accepted (phi3) */
    ENG_ARCH_SWA_BASE = 1u << 11,       /* sliding layers rotate with rope.freq_base_swa (gemma3) */
    ENG_ARCH_SWA_IGNORED = 1u << 12,    /* attention.sliding_window accepted, not applied (phi3,
                                         * as llama.cpp runs it) */
};

typedef struct eng_arch {
    const char *name; /* general.architecture */
    unsigned flags;
    /* sliding-window layers: layer l slides when l % swa_pattern < swa_pattern - 1, with the
     * window attention.sliding_window (required then); 0: every layer is global */
    int swa_pattern;
    /* a model of this many layers scales queries by 1/sqrt(n_embd / n_head) instead of
     * 1/sqrt(key_length) (Gemma's 27B sizes; the GGUF has no query_pre_attn_scalar, so
     * llama.cpp tells them by depth); 0: never */
    int scale_by_embd_layers;
} eng_arch;

/* The descriptor of a general.architecture value, NULL if not supported. */
const eng_arch *eng_arch_find(const char *name);

typedef struct eng_hparams {
    int n_vocab;
    int n_ctx_train;
    int n_embd; /* dim */
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim; /* attention.key_length (= value_length), default n_embd / n_head */
    int q_dim;    /* head_dim * n_head */
    int kv_dim;   /* head_dim * n_head_kv */
    int n_ff;     /* hidden dim of the feed-forward */
    int n_rot;    /* rotated dims per head (rope.dimension_count) */
    float rope_base;
    float rope_base_swa; /* base of the sliding layers (== rope_base unless ENG_ARCH_SWA_BASE) */
    float rope_scale;    /* linear rope scaling: positions are divided by this (1: none) */
    float rms_eps;
    int n_swa;           /* sliding window in tokens, 0 if none */
    float attn_scale;    /* scores are q.k times this: 1/sqrt(head_dim), but see model.c */
    float attn_softcap;  /* 0: none */
    float final_softcap; /* 0: none */
} eng_hparams;

/* A 2-D weight in its file type; row r starts at data + r * row_bytes. */
typedef struct eng_weight {
    eng_type type;
    const uint8_t *data; /* borrowed from the mapping */
    int64_t rows, cols;
    size_t row_bytes;
} eng_weight;

typedef struct eng_layer {
    float *attn_norm;       /* (n_embd) owned F32 copy */
    eng_weight wq;          /* (q_dim rows, n_embd cols); fused files: views into attn_qkv */
    eng_weight wk;          /* (kv_dim, n_embd) */
    eng_weight wv;          /* (kv_dim, n_embd) */
    float *bq, *bk, *bv;    /* (q_dim), (kv_dim), (kv_dim) biases or NULL, owned */
    float *q_norm, *k_norm; /* (head_dim) per-head norms or NULL, owned */
    eng_weight wo;          /* (n_embd, q_dim) */
    float *post_attn_norm;  /* (n_embd) or NULL */
    float *ffn_norm;        /* (n_embd) */
    float *post_ffw_norm;   /* (n_embd) or NULL */
    int swa;                /* 1: sliding-window layer */
    eng_weight w_gate;      /* (n_ff, n_embd); fused files: the first half of ffn_up */
    eng_weight w_up;        /* (n_ff, n_embd) */
    eng_weight w_down;      /* (n_embd, n_ff) */
} eng_layer;

struct eng_model {
    eng_gguf *gguf;
    eng_tokenizer *tok;
    const eng_arch *arch;
    eng_hparams hp;
    /* per rotated pair (n_rot / 2): frequency divisors (rope_freqs, or phi3's factors for
     * contexts up to rope.scaling.original_context_length, and rope_long beyond it) or NULL */
    float *rope_freqs;
    float *rope_long;
    int n_ctx_orig;      /* phi3: the context the short factors cover */
    float rope_attn;     /* phi3 longrope: cos and sin are scaled by this (1: none) */
    unsigned char *used; /* (n_tensors) 1 once a tensor is bound: unknown tensors are refused */
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
