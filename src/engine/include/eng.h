/*
 * eng.h - the inference engine: open a GGUF llama model, open a session, prefill a prompt,
 * then pull one token per step.
 *
 *     eng_model_params mp = eng_model_params_default();
 *     eng_model *m;
 *     if (eng_model_open("models/kjv.gguf", &mp, &m, err, sizeof err)) die(err);
 *
 *     eng_session_params sp = eng_session_params_default();     // 4096 tokens, F16 KV
 *     eng_session *s;
 *     if (eng_session_open(m, &sp, &s, err, sizeof err)) die(err);
 *
 *     eng_sampler_params smp = eng_sampler_params_default();
 *     smp.temperature = 0;                                       // greedy
 *     int32_t *ids; size_t n;
 *     eng_model_tokenize(m, "In the beginning", 16, 1, &ids, &n);  // with BOS when the model
 *     eng_session_reset(s, &smp, NULL, 0);                       // wants it
 *     if (eng_session_prefill(s, ids, n, err, sizeof err)) die(err);
 *     eng_step st;
 *     while (eng_session_step(s, &st) == RB_OK && !st.done)
 *         fwrite(st.text, 1, st.text_len, stdout);                 // UTF-8-complete deltas
 *     free(ids);
 *     eng_session_free(s);
 *     eng_model_free(m);
 *
 * Threads: a model is immutable after open and may be shared by sessions on several threads;
 * one session belongs to one thread at a time (it uses its own thread pool inside a forward
 * pass). eng_session_cancel() is the one call that may come from any thread.
 */
#ifndef ENG_H
#define ENG_H

#include <stddef.h>
#include <stdint.h>

#include "eng_types.h"
#include "rb_err.h"
#include "rb_mem.h"

typedef struct eng_model eng_model;
typedef struct eng_session eng_session;

/* Called while loading: layers_loaded goes from 0 to layers_total. */
typedef void (*eng_progress_fn)(void *user, int layers_loaded, int layers_total);

typedef struct eng_model_params {
    eng_progress_fn progress; /* may be NULL */
    void *progress_user;
    int prefault; /* touch every weight page while loading (default 1) */
    /* Read the weights into anonymous memory backed by transparent huge pages instead of
     * serving them from the file mapping (default 0, like llama.cpp's --no-mmap). Fewer TLB
     * misses make generation faster; the page cache may hold a second copy of the file. */
    int copy_weights;
} eng_model_params;

eng_model_params eng_model_params_default(void);

/* Opens and validates a GGUF model of a supported architecture (eng_supported_archs; weights
 * stay mmapped unless copy_weights). Errors name the file and the missing or malformed key
 * or tensor; an unknown architecture, rope scaling or tensor is refused. Caller frees with
 * eng_model_free(). */
rb_err eng_model_open(const char *path, const eng_model_params *p, eng_model **out, char *err,
                      size_t errlen);
/* The same from a GGUF image in memory (a fuzzer's input, a test's buffer): nothing is copied,
 * so data must stay valid and unchanged until eng_model_free; copy_weights is ignored. name
 * stands for the path in errors (NULL: "(memory)"). */
rb_err eng_model_open_mem(const void *data, size_t size, const char *name,
                          const eng_model_params *p, eng_model **out, char *err, size_t errlen);
void eng_model_free(eng_model *m); /* NULL-safe; every session must be freed first */
/* The general.architecture values eng_model_open serves, comma-separated (static). */
const char *eng_supported_archs(void);

typedef struct eng_model_info {
    char arch[32];
    char name[128];
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff, n_rot;
    float rope_freq_base, rms_eps;
    int tied_output;    /* output head shares token_embd */
    eng_type main_type; /* type of most 2-D weights */
    uint64_t n_params;
    uint64_t file_size;
    int bos, eos; /* token ids, -1 if none */
    int add_bos;  /* the model wants BOS prepended */
} eng_model_info;

void eng_model_get_info(const eng_model *m, eng_model_info *out);

/* Tokenizes text (len bytes) with the model's tokenizer; add_bos adds BOS when the model's
 * metadata asks for it. Special-token text is plain text. *ids is malloc'd (caller frees). */
rb_err eng_model_tokenize(const eng_model *m, const char *text, size_t len, int add_bos,
                          int32_t **ids, size_t *n);
/* Flags of eng_model_tokenize_ex. */
#define ENG_MODEL_TOK_ADD_BOS (1u << 0) /* BOS first when the model's metadata asks for it */
#define ENG_MODEL_TOK_SPECIAL (1u << 1) /* control-token text ("<|im_start|>") is the token */
/* eng_model_tokenize with flags: a chat prompt rendered from the model's template is
 * tokenized with ENG_MODEL_TOK_SPECIAL so that the template's markers are single tokens. */
rb_err eng_model_tokenize_ex(const eng_model *m, const char *text, size_t len, unsigned flags,
                             int32_t **ids, size_t *n);
/* The model's tokenizer.chat_template (Jinja source), malloc'd and NUL-terminated (caller
 * frees), or NULL when the file has none (or it is not a string). */
char *eng_model_chat_template(const eng_model *m);
/* The raw bytes a token decodes to (for tools); writes at most cap bytes, returns the length. */
size_t eng_model_token_bytes(const eng_model *m, int32_t id, char *out, size_t cap);

typedef struct eng_sampler_params {
    float temperature;    /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty; /* 1: off; applied to the last repeat_last_n tokens */
    int repeat_last_n;    /* default 64 */
    /* OpenAI's penalties, as llama.cpp applies them after the repetition penalty: a token seen
     * c > 0 times among the last repeat_last_n (prompt and generated) loses
     * c * frequency_penalty + presence_penalty from its logit. 0: off. */
    float frequency_penalty, presence_penalty;
    /* Log-probabilities in every eng_step: 1 reports the sampled token's, top_logprobs
     * (0..ENG_MAX_TOP_LOGPROBS) the most likely alternatives too. They are the log-softmax of
     * the model's logits, before penalties, truncation and temperature. */
    int logprobs, top_logprobs;
    uint64_t seed;
} eng_sampler_params;

#define ENG_MAX_TOP_LOGPROBS 20

typedef struct eng_token_logprob {
    int32_t token;
    float logprob;
} eng_token_logprob;

eng_sampler_params eng_sampler_params_default(void);

typedef struct eng_session_params {
    /* Context tokens: default RB_CTX_DEFAULT (4096); 0: the model's training context; capped
     * at the training context (eng_model_ctx says what a request becomes). */
    int n_ctx;
    int n_threads;    /* 0: physical cores */
    int n_batch;      /* prompt tokens per forward pass; default 64 */
    eng_type kv_type; /* KV cache: ENG_TYPE_F16 (default), ENG_TYPE_Q8_0 or ENG_TYPE_F32 */
} eng_session_params;

eng_session_params eng_session_params_default(void);

/* The context a session of m opened with n_ctx gets (rb_mem_ctx over its training context). */
int eng_model_ctx(const eng_model *m, int n_ctx);

/* What serving m needs in memory with sessions like p (NULL: the defaults), n_slots of them:
 * the weights, the KV caches, the sessions' scratch and the process (rb_mem.h; the hive
 * computes the same from the GGUF header). RB_EINVAL with a message for a KV type the model
 * cannot use (see eng_session_open). */
rb_err eng_model_estimate_memory(const eng_model *m, const eng_session_params *p, int n_slots,
                                 rb_mem_estimate *out, char *err, size_t errlen);

/* Allocates the KV cache and every buffer a forward pass needs (nothing is allocated per
 * token afterwards). Q8_0 caches need a head dimension that is a multiple of 32 (RB_EINVAL
 * otherwise). Caller frees with eng_session_free(). */
rb_err eng_session_open(eng_model *m, const eng_session_params *p, eng_session **out, char *err,
                        size_t errlen);
void eng_session_free(eng_session *s); /* NULL-safe */
int eng_session_n_ctx(const eng_session *s);
/* Threads the session's forward passes use. */
int eng_session_threads(const eng_session *s);

/* Starts a new generation: clears the KV cache, the cancel flag and the text state, seeds the
 * sampler. stop: up to nstop strings whose text ends generation and is not emitted (copied). */
rb_err eng_session_reset(eng_session *s, const eng_sampler_params *p, const char *const *stop,
                         size_t nstop);

/* Runs the prompt through the model. RB_ETOOBIG (with the context size in err) if the prompt
 * does not fit; RB_ECANCELED if cancelled meanwhile. */
rb_err eng_session_prefill(eng_session *s, const int32_t *tokens, size_t n, char *err,
                           size_t errlen);

typedef enum eng_stop_reason {
    ENG_STOP_NONE = 0,
    ENG_STOP_EOS,      /* end-of-generation token */
    ENG_STOP_SEQUENCE, /* a stop string */
    ENG_STOP_CONTEXT,  /* context full */
    ENG_STOP_CANCELLED,
} eng_stop_reason;

typedef struct eng_step {
    int32_t token;    /* the sampled token (-1 when none) */
    const char *text; /* text delta, complete UTF-8; borrowed until the next step/reset */
    size_t text_len;  /* may be 0 (bytes held back for UTF-8 or a possible stop string) */
    int done;         /* 1: generation is over; reason says why */
    eng_stop_reason reason;
    /* With logprobs on and token >= 0: the token's log-probability and the n_top most likely
     * tokens, most likely first (ties by lower id). */
    float logprob;
    int n_top;
    eng_token_logprob top[ENG_MAX_TOP_LOGPROBS];
} eng_step;

/* Samples the next token from the current logits, then (on the next call) feeds it back.
 * The token is returned the moment it is sampled. After done, call reset before reusing.
 * Returns RB_ECANCELED (done, reason CANCELLED) once eng_session_cancel() was called. */
rb_err eng_session_step(eng_session *s, eng_step *out);

/* Ends the generation early (the caller's token limit): releases text held back for UTF-8 or a
 * possible stop string into out (done = 1, reason NONE). */
void eng_session_flush(eng_session *s, eng_step *out);

/* Asks the session to stop at its next token; safe from any thread. */
void eng_session_cancel(eng_session *s);

/* Last computed logits (n_vocab floats), borrowed until the next prefill or step. */
const float *eng_session_logits(const eng_session *s);
/* Logits of every prompt position of the last prefill, if requested with
 * eng_session_keep_all_logits(s, 1) before prefill (tests). Row-major (n, n_vocab). */
void eng_session_keep_all_logits(eng_session *s, int on);
const float *eng_session_all_logits(const eng_session *s, size_t *n);

/* Timings of the current generation, milliseconds. */
typedef struct eng_timings {
    double prefill_ms;
    int prefill_tokens;
    double decode_ms;
    int decode_tokens;
} eng_timings;
void eng_session_timings(const eng_session *s, eng_timings *out);

/* ---- batches: many sequences, one pass ---------------------------------------------------
 *
 *     eng_batch *b;
 *     eng_batch_open(m, &sp, 4, &b, err, sizeof err);           // 4 sessions, one pool
 *     eng_session *s0 = eng_batch_session(b, 0), *s1 = eng_batch_session(b, 1);
 *     eng_session_reset(s0, &smp, NULL, 0); eng_session_reset(s1, &smp, NULL, 0);
 *     eng_batch_entry e[2] = {{s0, ids0, n0}, {s1, ids1, n1}};  // two prompts, one pass
 *     eng_batch_decode(b, e, 2, err, sizeof err);
 *     for (;;) {
 *         eng_session_step(s0, &st0); eng_session_step(s1, &st1);  // sample each at once
 *         ...                                                      // send st0, st1
 *         eng_batch_entry f[2] = {{s0, NULL, 0}, {s1, NULL, 0}};   // feed both back
 *         eng_batch_decode(b, f, 2, err, sizeof err);
 *     }
 */
typedef struct eng_batch eng_batch;

#define ENG_BATCH_MAX_SEQ 64

/* Opens n_seq sessions of m that share one thread pool and one set of pass buffers (p as
 * for eng_session_open; n_batch is raised to n_seq). Each is a full session
 * (eng_batch_session) with its own KV cache, sampler and text state, usable with every
 * session call; eng_batch_decode runs one forward pass over tokens of several of them, so the
 * weights are read once for all. One thread drives a batch and its sessions
 * (eng_session_cancel excepted); never free a batch's session with eng_session_free. */
rb_err eng_batch_open(eng_model *m, const eng_session_params *p, int n_seq, eng_batch **out,
                      char *err, size_t errlen);
void eng_batch_free(eng_batch *b); /* NULL-safe; frees its sessions */
int eng_batch_n_seq(const eng_batch *b);
eng_session *eng_batch_session(eng_batch *b, int i); /* NULL when i is out of range */
/* Tokens one eng_batch_decode takes in all (the sessions' n_batch). */
int eng_batch_capacity(const eng_batch *b);

typedef struct eng_batch_entry {
    eng_session *s;        /* a session of the batch, at most once per pass */
    const int32_t *tokens; /* prompt tokens to run, or NULL: the token s's last step sampled */
    int n;                 /* number of tokens (ignored when tokens is NULL) */
} eng_batch_entry;

/* One forward pass over the entries' tokens, at most eng_batch_capacity() in all. A prompt
 * may come in chunks over several passes: each appends to the session's context and its
 * sampler's history. Afterwards each session's logits are those of its last token, so its
 * next eng_session_step samples at once, with no pass of its own. RB_EINVAL (err says why)
 * for an entry of another batch, a session given twice, a NULL-tokens entry whose session
 * does not want a pass (eng_session_wants_pass) or a token out of range; RB_ETOOBIG for more
 * tokens than a pass takes or than a session's context has left. Nothing runs on error. */
rb_err eng_batch_decode(eng_batch *b, const eng_batch_entry *e, int ne, char *err, size_t errlen);

/* 1 when s's last step sampled a token that a pass must feed back before the next step
 * (an entry with tokens NULL), and the context has room for it. */
int eng_session_wants_pass(const eng_session *s);

/* Prompt cache: a session's KV cache keeps the tokens of its last generation, prompt and
 * generated, across eng_session_reset. How many leading tokens of ids it holds. */
size_t eng_session_cached_prefix(const eng_session *s, const int32_t *ids, size_t n);
/* Right after eng_session_reset: keeps the cached prefix of ids as the start of the new
 * context (at most n - 1 tokens, so the last prompt token still makes logits) and returns
 * its length k; the caller prefills ids + k only. 0 when nothing is kept. */
size_t eng_session_reuse_prefix(eng_session *s, const int32_t *ids, size_t n);

#endif
