/*
 * tok_internal.h - what the tokenizer files share (internal to rb_engine and its tests).
 *
 * tok.c loads the vocabulary and special tokens, cuts special tokens out of the text and
 * drives the model; tok_spm.c and tok_bpe.c encode one plain-text fragment each;
 * tok_detok.c turns ids back into text.
 */
#ifndef ENG_TOK_INTERNAL_H
#define ENG_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "eng_tok.h"
#include "strmap.h"

#define TOK_FLAG_EOG (1u << 0)    /* ends generation */
#define TOK_FLAG_LSTRIP (1u << 1) /* when cut out as special, eat whitespace on its left */
#define TOK_FLAG_RSTRIP (1u << 2) /* ... and on its right */

typedef struct tok_entry {
    uint32_t off; /* piece: tokenizer text arena offset, NUL-terminated */
    uint32_t len;
    uint32_t dec_off; /* decoded bytes: tokenizer dec arena offset, NUL-terminated */
    uint32_t dec_len;
    float score;  /* SentencePiece score; 0 when the file has none */
    uint8_t type; /* eng_tok_type */
    uint8_t flags;
} tok_entry;

typedef struct tok_bpe tok_bpe;

struct eng_tokenizer {
    eng_tok_model model;
    char pre[32];
    int32_t n_vocab;
    tok_entry *tok;    /* n_vocab entries */
    char *text;        /* pieces */
    char *dec;         /* decoded bytes */
    size_t max_dec;    /* longest decoded piece */
    eng_strmap pieces; /* piece -> id, keys in text */
    eng_token bos, eos, eot, eom, unk;
    int add_bos;
    int add_space_prefix;
    eng_token byte_id[256]; /* SentencePiece: id of "<0xNN>" (or of the raw byte), -1 */
    eng_token *special;     /* candidates for cutting out, longest piece first */
    size_t n_special;
    tok_bpe *bpe; /* byte-level BPE only */
};

/* A growable list of ids. */
typedef struct tok_vec {
    eng_token *v;
    size_t n, cap;
} tok_vec;

rb_err tok_vec_push(tok_vec *v, eng_token id);

/* A min-heap of candidate merges ordered by (pri, left): SentencePiece pushes -score so the
 * best score comes first, BPE pushes the merge rank; ties go to the leftmost pair. */
typedef struct tok_merge {
    double pri;
    int32_t left, right;
    uint32_t size; /* bytes of the merged text, to recognise stale entries */
} tok_merge;

typedef struct tok_heap {
    tok_merge *a;
    size_t n, cap;
} tok_heap;

rb_err tok_heap_push(tok_heap *h, tok_merge m);
/* Removes the smallest entry into *m; 0 when empty. */
int tok_heap_pop(tok_heap *h, tok_merge *m);

/* One symbol of a word being merged: a byte range of the word, linked to its neighbours. */
typedef struct tok_sym {
    int32_t prev, next;
    uint32_t off, n; /* n == 0 once merged into its left neighbour */
} tok_sym;

/* Encodes one fragment of plain text (no special tokens) and appends the ids to out.
 * prefix_space: SentencePiece puts a "▁" in front (the caller decides per fragment). */
rb_err tok_spm_encode(const eng_tokenizer *t, const char *text, size_t len, int prefix_space,
                      tok_vec *out);

/* Byte-level BPE: state from tokenizer.ggml.merges and the pre-tokenizer name; an unknown
 * name is RB_EUNSUPPORTED, err naming it and the supported ones. */
rb_err tok_bpe_load(eng_tokenizer *t, const eng_gguf *g, const char *pre, char *err, size_t errlen);
void tok_bpe_free(tok_bpe *b); /* NULL-safe */
rb_err tok_bpe_encode(const eng_tokenizer *t, const char *text, size_t len, tok_vec *out);
/* Maps a GPT-2 byte-level piece back to bytes into out (at most len bytes); returns the
 * number written. Characters outside the byte map are copied as their UTF-8. */
size_t tok_bpe_decode_piece(const tok_bpe *b, const char *piece, size_t len, char *out);
/* The pre-tokenizer's canonical name ("llama3" for "llama-bpe"). */
const char *tok_bpe_pre_name(const tok_bpe *b);
/* 1 when the pre-tokenizer's models want a BOS by default (llama3, tekken). */
int tok_bpe_pre_add_bos(const tok_bpe *b);
/* The words the pre-tokenizer cuts text into, as *n (offset, length) pairs in a malloc'd
 * array *words (caller frees; NULL when n is 0). For tests and tools. RB_ENOMEM, RB_ETOOBIG. */
rb_err tok_bpe_split(const eng_tokenizer *t, const char *text, size_t len, size_t **words,
                     size_t *n);

#endif
