/*
 * test_engine_tokenizer.c - tokenizer scenarios of spec/engine_tokenizer.feature that need no
 * data from outside the repository: the vocabularies here are written by the tests. Those
 * that need llama.cpp's reference vocabularies (../shared/data/tokenizer/) are in
 * test_engine_tokenizer_data.c, which ctest reports as skipped when that folder is absent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_gguf.h"
#include "eng_tok.h"
#include "rb_test.h"

static eng_token *tokenize(const eng_tokenizer *tok, const char *s, size_t len, unsigned flags,
                           size_t *n)
{
    size_t cap = len + 8;
    eng_token *ids = malloc(cap * sizeof(*ids));
    rb_err rc = eng_tokenize(tok, s, len, flags, ids, cap, n);
    ck_assert_msg(rc == RB_OK, "tokenize: %s", rb_strerror(rc));
    return ids;
}

static void format_ids(const eng_token *ids, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 12 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, " %d", ids[i]);
}

/* Scenario: A file without a tokenizer is refused */
START_TEST(test_engine_tokenizer__a_file_without_a_tokenizer_is_refused)
{
    char dir[4096], path[4200], err[256] = "";
    const char *pieces[2] = {"a", "b"};
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_tokenizer *tok = (eng_tokenizer *)1;
    eng_gguf *g;

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/none.gguf", dir);
    eng_gguf_writer_set_str(w, "general.name", "none");
    ck_assert_int_eq(eng_gguf_writer_write(w, path, err, sizeof err), RB_OK);
    ck_assert_int_eq(eng_gguf_open(path, &g, err, sizeof err), RB_OK);
    ck_assert_int_eq(eng_tokenizer_load(g, &tok, err, sizeof err), RB_ENOTFOUND);
    ck_assert_ptr_null(tok);
    ck_assert_str_eq(err, "no tokenizer: key 'tokenizer.ggml.model' is missing");
    eng_gguf_close(g);

    eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, 2);
    ck_assert_int_eq(eng_gguf_writer_write(w, path, err, sizeof err), RB_OK);
    ck_assert_int_eq(eng_gguf_open(path, &g, err, sizeof err), RB_OK);
    ck_assert_int_eq(eng_tokenizer_load(g, &tok, err, sizeof err), RB_EUNSUPPORTED);
    ck_assert_msg(strstr(err, "'bert'"), "%s", err);
    eng_gguf_close(g);

    /* A gpt2 tokenizer without merges names the missing key. */
    eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    ck_assert_int_eq(eng_gguf_writer_write(w, path, err, sizeof err), RB_OK);
    ck_assert_int_eq(eng_gguf_open(path, &g, err, sizeof err), RB_OK);
    ck_assert_int_eq(eng_tokenizer_load(g, &tok, err, sizeof err), RB_EFORMAT);
    ck_assert_msg(strstr(err, "tokenizer.ggml.merges"), "%s", err);
    eng_gguf_close(g);
    eng_gguf_writer_free(w);
    rbt_rmtree(dir);
}
END_TEST

/* GPT-2's printable stand-in for byte b (bytes_to_unicode), as UTF-8 into out. */
static void byte_piece(int b, char out[4])
{
    int cp = b, extra = 0;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        for (int x = 0; x < b; x++)
            extra += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255));
        cp = 256 + extra;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* Extra pieces of the test vocabulary, ids 256.. ("\xc4\xa0" is the space stand-in,
 * "\xc4\x8a" the newline's). */
static const char *const bpe_extra[] = {
    "Hello", "\xc4\xa0world", "123", "45", "!!\xc4\x8a\xc4\x8a", "12", "34"};
enum { T_HELLO = 256, T_WORLD, T_123, T_45, T_BANGS, T_12, T_34 };

/* A byte-level BPE tokenizer with pre-tokenizer pre over the test vocabulary. */
static eng_tokenizer *bpe_vocab(const char *dir, const char *pre, eng_gguf **g)
{
    enum { N = 256 + sizeof bpe_extra / sizeof bpe_extra[0] };
    static char bytes[256][4];
    const char *toks[N], *merges[] = {"3 4", "1 2", "12 3", "4 5"};
    int32_t types[N];
    char path[4200], err[256] = "";
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_tokenizer *tok = NULL;

    for (int b = 0; b < 256; b++) {
        byte_piece(b, bytes[b]);
        toks[b] = bytes[b];
    }
    for (size_t i = 0; i < sizeof bpe_extra / sizeof bpe_extra[0]; i++)
        toks[256 + i] = bpe_extra[i];
    for (int i = 0; i < N; i++)
        types[i] = 1;
    ck_assert_int_eq(eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, N), RB_OK);
    ck_assert_int_eq(
        eng_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", ENG_GGUF_I32, types, N), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 4), RB_OK);
    snprintf(path, sizeof path, "%s/bpe-%s.gguf", dir, pre);
    ck_assert_msg(eng_gguf_writer_write(w, path, err, sizeof err) == RB_OK, "%s", err);
    eng_gguf_writer_free(w);
    ck_assert_msg(eng_gguf_open(path, g, err, sizeof err) == RB_OK, "%s", err);
    ck_assert_msg(eng_tokenizer_load(*g, &tok, err, sizeof err) == RB_OK, "%s", err);
    return tok;
}

static void expect_ids(const eng_tokenizer *tok, const char *text, const eng_token *want,
                       size_t nwant)
{
    size_t n;
    eng_token *ids = tokenize(tok, text, strlen(text), 0, &n);
    char got[256], exp[256];
    format_ids(ids, n, got, sizeof got);
    format_ids(want, nwant, exp, sizeof exp);
    ck_assert_msg(n == nwant && memcmp(ids, want, n * sizeof(*ids)) == 0,
                  "pre %s, '%s': got [%s], want [%s]", eng_tokenizer_pre(tok), text, got, exp);
    free(ids);
}

/* Scenario: The default and llama3 pre-tokenizers split words as llama.cpp's regexes do */
START_TEST(
    test_engine_tokenizer__the_default_and_llama3_pre_tokenizers_split_words_as_llama_cpp_s_regexes_do)
{
    char dir[4096];
    eng_gguf *g;
    eng_tokenizer *tok;

    rbt_tmpdir(dir);
    tok = bpe_vocab(dir, "default", &g);
    ck_assert_str_eq(eng_tokenizer_pre(tok), "default");
    expect_ids(tok, "12345", (const eng_token[]){T_123, T_45}, 2);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);

    tok = bpe_vocab(dir, "gpt-2", &g);
    ck_assert_str_eq(eng_tokenizer_pre(tok), "gpt-2");
    expect_ids(tok, "12345", (const eng_token[]){T_12, T_34, '5'}, 3);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);

    tok = bpe_vocab(dir, "llama-bpe", &g);
    ck_assert_str_eq(eng_tokenizer_pre(tok), "llama3");
    expect_ids(tok, "Hello 12345 world!!\n\n",
               (const eng_token[]){T_HELLO, ' ', T_123, T_45, T_WORLD, T_BANGS}, 6);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_tokenizer");
    TCase *tc = rbt_tcase(s, "behaviour", 30);
    tcase_add_test(tc, test_engine_tokenizer__a_file_without_a_tokenizer_is_refused);
    tcase_add_test(
        tc,
        test_engine_tokenizer__the_default_and_llama3_pre_tokenizers_split_words_as_llama_cpp_s_regexes_do);
    return rbt_run(s);
}
