/*
 * eng_tok.h - tokenizers built from GGUF metadata, and an incremental detokenizer.
 *
 *     eng_tokenizer *tok;
 *     char err[256];
 *     if (eng_tokenizer_load(g, &tok, err, sizeof err)) { puts(err); return 1; }
 *     unsigned fl = eng_tokenizer_add_bos(tok) ? ENG_TOK_ADD_BOS : 0;
 *     eng_token ids[512];
 *     size_t n;
 *     rb_err rc = eng_tokenize(tok, text, len, fl, ids, 512, &n);  // RB_ETOOBIG: n = needed
 *
 *     eng_detok *d;
 *     eng_detok_new(tok, 0, &d);                 // continuing after a prompt
 *     for (each generated id) {
 *         size_t k;
 *         const char *s = eng_detok_push(d, id, &k);   // complete UTF-8 only, maybe k == 0
 *         emit(s, k);
 *     }
 *     s = eng_detok_flush(d, &k);                // leftover bytes as U+FFFD
 *     eng_detok_free(d);
 *     eng_tokenizer_free(tok);
 *
 * Two models are read, chosen by tokenizer.ggml.model:
 *   "llama"  SentencePiece with scores: the text's spaces become U+2581 ("▁"), one is
 *            prepended when tokenizer.ggml.add_space_prefix (default true) and at the start
 *            or after a special token, then the adjacent pair whose joined piece has the
 *            highest score is merged (leftmost first on ties) until none is in the
 *            vocabulary; leftover characters become <0xNN> byte tokens, else <unk>.
 *   "gpt2"   byte-level BPE: the text is split into words by the regexes of the
 *            pre-tokenizer named by tokenizer.ggml.pre, each word's bytes are mapped to
 *            GPT-2's printable characters and merged by the rank of tokenizer.ggml.merges.
 *            Pre-tokenizers (llama.cpp's names and settings; aliases in docs/models.md):
 *            default, llama3 (llama-bpe), dbrx, gpt-2, qwen2 (deepseek-r1-qwen), qwen35,
 *            smollm, tekken, gpt-4o (llama4), falcon, deepseek-coder, deepseek-v3. A
 *            missing key means "default" with a warning logged; any other name is refused
 *            (RB_EUNSUPPORTED, the error names it and the supported ones). Text that is
 *            not valid UTF-8 is kept as raw bytes.
 * Special tokens (control, user-defined, unknown) are cut out of the text first, longest
 * first, as llama.cpp's parse_special does: user-defined ones always, control and unknown
 * ones only with ENG_TOK_PARSE_SPECIAL. Phi-3's tokens (general.name contains "phi-3" or
 * "phi3") eat the whitespace after them, except <unk>, <s> and <|endoftext|>.
 *
 * A tokenizer copies what it needs from the GGUF file: the file may be closed afterwards.
 * After load it is read-only, so eng_tokenize may run on several threads at once. A detok
 * belongs to one thread.
 */
#ifndef ENG_TOK_H
#define ENG_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "eng_gguf.h"
#include "rb_err.h"

typedef int32_t eng_token;
#define ENG_TOKEN_NONE (-1)

typedef struct eng_tokenizer eng_tokenizer;
typedef struct eng_detok eng_detok;

/* Flags of eng_tokenize. */
#define ENG_TOK_ADD_BOS (1u << 0) /* put the BOS token first (if the model has one) */
#define ENG_TOK_PARSE_SPECIAL                                                                      \
    (1u << 1) /* control-token text like "<|im_start|>" becomes the token */

/* Flags of eng_detok_new and eng_detokenize. */
#define ENG_DETOK_FROM_START                                                                       \
    (1u << 0)                       /* ids begin the text: drop the space SentencePiece            \
                                       prepended to the first token after BOS */
#define ENG_DETOK_SPECIAL (1u << 1) /* print control and unknown tokens' text too */

typedef enum eng_tok_model {
    ENG_TOK_MODEL_SPM = 1, /* "llama" */
    ENG_TOK_MODEL_BPE = 2, /* "gpt2" */
} eng_tok_model;

/* Token types, numbered as in tokenizer.ggml.token_type. */
typedef enum eng_tok_type {
    ENG_TOK_TYPE_UNDEFINED = 0,
    ENG_TOK_TYPE_NORMAL = 1,
    ENG_TOK_TYPE_UNKNOWN = 2,
    ENG_TOK_TYPE_CONTROL = 3,
    ENG_TOK_TYPE_USER_DEFINED = 4,
    ENG_TOK_TYPE_UNUSED = 5,
    ENG_TOK_TYPE_BYTE = 6,
} eng_tok_type;

/* Builds the tokenizer described by g's tokenizer.ggml.* keys. Caller frees with
 * eng_tokenizer_free(). RB_ENOTFOUND when the file has no tokenizer, RB_EUNSUPPORTED for
 * another tokenizer model or an unknown pre-tokenizer, RB_EFORMAT for inconsistent metadata (wrong
 * key types, arrays shorter than the vocabulary, duplicate pieces), RB_ENOMEM; err names the key.
 */
rb_err eng_tokenizer_load(const eng_gguf *g, eng_tokenizer **out, char *err, size_t errlen);
void eng_tokenizer_free(eng_tokenizer *t); /* NULL-safe */

eng_tok_model eng_tokenizer_model(const eng_tokenizer *t);
/* Pre-tokenizer's canonical name ("llama3" for "llama-bpe", "qwen2", ...); "" for
 * SentencePiece. Borrowed. */
const char *eng_tokenizer_pre(const eng_tokenizer *t);
int32_t eng_tokenizer_n_vocab(const eng_tokenizer *t);
/* Special ids, ENG_TOKEN_NONE when the model has none. */
eng_token eng_tokenizer_bos(const eng_tokenizer *t);
eng_token eng_tokenizer_eos(const eng_tokenizer *t);
eng_token eng_tokenizer_eot(const eng_tokenizer *t);
/* tokenizer.ggml.add_bos_token (defaults: 1 for SentencePiece, llama3 and tekken, else 0). The
 * caller decides whether to pass ENG_TOK_ADD_BOS; this is the model's advice. */
int eng_tokenizer_add_bos(const eng_tokenizer *t);
/* 1 if id ends generation: EOS, EOT, EOM and the end-of-turn tokens known by text
 * ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", ...). 0 for ids out of range. */
int eng_tokenizer_is_eog(const eng_tokenizer *t, eng_token id);
/* Type of id (control and unknown tokens are not printed by default); UNDEFINED when out of
 * range. */
eng_tok_type eng_tokenizer_type(const eng_tokenizer *t, eng_token id);
/* The vocabulary piece of id as stored ("▁Hello", "Ġworld", "<0x0A>"), NUL-terminated,
 * borrowed until eng_tokenizer_free; NULL when out of range. */
const char *eng_tokenizer_piece(const eng_tokenizer *t, eng_token id, size_t *len);
/* The bytes id stands for in text: "▁" as space, byte tokens as their byte, GPT-2
 * characters as their bytes; control text as is. May be part of a UTF-8 character.
 * Borrowed until eng_tokenizer_free; NULL when out of range. */
const char *eng_tokenizer_token_bytes(const eng_tokenizer *t, eng_token id, size_t *len);
/* The id of a piece (exact vocabulary text), or ENG_TOKEN_NONE. */
eng_token eng_tokenizer_find(const eng_tokenizer *t, const char *piece, size_t len);

/* Tokenizes len bytes of text (any bytes; no NUL needed). Writes at most cap ids and the
 * number produced to *n_out. RB_ETOOBIG when cap is too small (*n_out is then the number
 * needed and ids holds the first cap), RB_ENOMEM. Thread-safe. */
rb_err eng_tokenize(const eng_tokenizer *t, const char *text, size_t len, unsigned flags,
                    eng_token *ids, size_t cap, size_t *n_out);

/* Incremental detokenizer: fed ids one at a time, it returns only complete, valid UTF-8;
 * a character split over byte tokens waits for its last byte, and bytes that cannot form
 * a character become U+FFFD. Caller frees with eng_detok_free(). */
rb_err eng_detok_new(const eng_tokenizer *t, unsigned flags, eng_detok **out);
void eng_detok_free(eng_detok *d); /* NULL-safe */
/* Forgets pending bytes and starts over (with the same flags). */
void eng_detok_reset(eng_detok *d);
/* Feeds one id; returns the text that became complete (*len bytes, NUL-terminated; may be
 * empty), borrowed until the next call on d. Unknown ids give empty text. Does not
 * allocate. */
const char *eng_detok_push(eng_detok *d, eng_token id, size_t *len);
/* Ends the text: pending bytes of an unfinished character come out as U+FFFD. Borrowed
 * like eng_detok_push; d can be fed again afterwards. */
const char *eng_detok_flush(eng_detok *d, size_t *len);

/* Decodes a whole sequence into a malloc'd NUL-terminated string (caller frees with free()).
 * Same rules as a detok with flags, then flushed. RB_ENOMEM. */
rb_err eng_detokenize(const eng_tokenizer *t, const eng_token *ids, size_t n, unsigned flags,
                      char **out, size_t *len);

#endif
