/*
 * fuzz_tokenizer - libFuzzer target: every tokenizer the tree can load (the bundled model's
 * SentencePiece one, and the byte-level BPE vocabularies of ../shared/data/tokenizer when that
 * folder is there) encodes arbitrary bytes with and without special-token parsing, and the ids
 * are decoded again, whole and token by token through the streaming detokenizer.
 * The first input byte picks the tokenizer and the flags.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "eng_gguf.h"
#include "eng_tok.h"

#define MAX_TOK 8

static eng_gguf *files[MAX_TOK];
static eng_tokenizer *toks[MAX_TOK];
static int ntok;

static void load(const char *path)
{
    char err[256];
    if (ntok < MAX_TOK && eng_gguf_open(path, &files[ntok], err, sizeof err) == RB_OK) {
        if (eng_tokenizer_load(files[ntok], &toks[ntok], err, sizeof err) == RB_OK)
            ntok++;
        else
            eng_gguf_close(files[ntok]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const shared[] = {"ggml-vocab-gpt-2.gguf", "ggml-vocab-qwen2.gguf",
                                         "ggml-vocab-phi-3.gguf"};
    char path[4096];
    (void)argc, (void)argv;
    load(RB_SOURCE_DIR "/models/kjv-5m-q8_0.gguf");
    for (size_t i = 0; i < sizeof shared / sizeof *shared; i++) {
        snprintf(path, sizeof path, "%s/../shared/data/tokenizer/%s", RB_SOURCE_DIR, shared[i]);
        load(path);
    }
    if (!ntok) {
        fprintf(stderr, "fuzz_tokenizer: no tokenizer could be loaded\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const eng_tokenizer *t;
    unsigned flags = 0;
    eng_token ids[4096];
    size_t n = 0;
    char *text = NULL;
    size_t tlen = 0;
    eng_detok *d = NULL;

    if (size < 1)
        return 0;
    t = toks[data[0] % ntok];
    if (data[0] & 0x10)
        flags |= ENG_TOK_PARSE_SPECIAL;
    if (data[0] & 0x20)
        flags |= ENG_TOK_ADD_BOS;
    if (eng_tokenize(t, (const char *)data + 1, size - 1, flags, ids, 4096, &n) != RB_OK)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= eng_tokenizer_n_vocab(t))
            __builtin_trap();
    if (eng_detokenize(t, ids, n, 0, &text, &tlen) == RB_OK)
        free(text);
    if (eng_detok_new(t, 0, &d) == RB_OK) {
        size_t len;
        for (size_t i = 0; i < n; i++)
            (void)eng_detok_push(d, ids[i], &len);
        (void)eng_detok_flush(d, &len);
        eng_detok_free(d);
    }
    return 0;
}
