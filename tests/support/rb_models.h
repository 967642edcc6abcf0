/*
 * rb_models.h - where tests find the models/ fixtures, and a reader for reference JSON files
 * written by tools/reference/.
 */
#ifndef RB_MODELS_H
#define RB_MODELS_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "eng.h"

/* The bundled model in F16 and in Q8_0, and the random GQA test model (paths under models/).
 * Each returns NULL when the file is absent. */
const char *rbt_model_f16(void);
const char *rbt_model_q8(void);
const char *rbt_model_gqa(void);
/* The same network with RoPE on 8 of each head's 16 dimensions (rope.dimension_count 8). */
const char *rbt_model_gqa_rope8(void);
/* models/<file> (a static buffer, overwritten by the next call), NULL when absent. */
const char *rbt_model_fixture(const char *file);

/* Opens the model at path with the default parameters; fails the test (naming the error, or a
 * missing fixture when path is NULL) instead of returning NULL. */
eng_model *rbt_open_model(const char *path);
/* Index of the largest of v[0..n). */
int rbt_argmax(const float *v, int n);

/* Test data from outside the repository, ../shared/data (see its README.md): the folder named
 * by $RBEE_SHARED_DATA when that is set and not empty, else RB_SOURCE_DIR "/../shared/data".
 * Pointing the variable elsewhere (RBEE_SHARED_DATA=/nonexistent) shows what a machine without
 * the data does. */
#define RBT_SHARED_DATA_ENV "RBEE_SHARED_DATA"
const char *rbt_shared_data(void);
/* The tokenizer/ folder in it (llama.cpp's tokenizer test vectors), and the path of file in
 * that folder (static buffers). */
#define RBT_TOKENIZER_DATA "tokenizer"
const char *rbt_tokenizer_dir(void);
const char *rbt_tokenizer_data(const char *file);

/* main() of a suite whose every test needs the folder sub of the shared data, ntests of them.
 * When that folder is absent nothing runs: it prints the one line
 *     SKIP: ../shared/data not found at <path>; <ntests> tests need it
 * and returns 77, which ctest reports as skipped. Otherwise it returns rbt_run_counted(s,
 * ntests): the suite must also hold exactly ntests tests, so the line cannot go stale. */
int rbt_run_shared_data(Suite *s, const char *sub, int ntests);

/* Writes a one-layer model whose greedy output is a fixed cycle after any prompt:
 * <0xC3> <0xA9> "▁x" <0xC3> <0xA9> "▁x" ...  i.e. the text "é x é x ...", with "é" split over two
 * byte tokens. Its attention and feed-forward weights are zero and its embeddings one-hot, so
 * the output head alone decides the next token. 0 on success. */
int rbt_make_cycle_model(const char *path);

/* A reference produced by tools/reference/reference.py. */
typedef struct rbt_reference {
    char prompt[256];
    int32_t *tokens; /* including BOS */
    size_t ntokens;
    float *logits; /* (ntokens, n_vocab) */
    int n_vocab;
    int32_t *greedy; /* greedy continuation */
    size_t ngreedy;
    float *greedy_gaps; /* per greedy step, the reference's top-1 minus top-2 logit (NULL when
                         * the JSON has no "greedy_gaps") */
} rbt_reference;

/* Loads "<model without .gguf>.ref.json"; 0 on success. */
int rbt_reference_load(const char *model_path, rbt_reference *r);
void rbt_reference_release(rbt_reference *r);

#endif
