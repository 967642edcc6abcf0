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
#include "tok_internal.h"

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
 * "\xc4\x8a" the newline's), then two special tokens: a control token and a longer
 * user-defined one that starts with it. */
static const char *const bpe_extra[] = {
    "Hello", "\xc4\xa0world", "123", "45", "!!\xc4\x8a\xc4\x8a", "12", "34", "<|x|>", "<|x|>!"};
enum { T_HELLO = 256, T_WORLD, T_123, T_45, T_BANGS, T_12, T_34, T_CTRL, T_USER };

/* Writes a byte-level BPE vocabulary over the test pieces with tokenizer.ggml.pre = pre
 * (left out when NULL; BOS id 0) and opens it; returns the tokenizer, or NULL with err filled when
 * it does not load. */
static eng_tokenizer *bpe_vocab_try(const char *dir, const char *pre, eng_gguf **g, char *err,
                                    size_t errlen)
{
    enum { N = 256 + sizeof bpe_extra / sizeof bpe_extra[0] };
    static char bytes[256][4];
    const char *toks[N], *merges[] = {"3 4", "1 2", "12 3", "4 5"};
    int32_t types[N];
    char path[4200];
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_tokenizer *tok = NULL;

    for (int b = 0; b < 256; b++) {
        byte_piece(b, bytes[b]);
        toks[b] = bytes[b];
    }
    for (size_t i = 0; i < sizeof bpe_extra / sizeof bpe_extra[0]; i++)
        toks[256 + i] = bpe_extra[i];
    for (int i = 0; i < N; i++)
        types[i] = ENG_TOK_TYPE_NORMAL;
    types[T_CTRL] = ENG_TOK_TYPE_CONTROL;
    types[T_USER] = ENG_TOK_TYPE_USER_DEFINED;
    ck_assert_int_eq(eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), RB_OK);
    if (pre)
        ck_assert_int_eq(eng_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, N), RB_OK);
    ck_assert_int_eq(
        eng_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", ENG_GGUF_I32, types, N), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 4), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0), RB_OK);
    snprintf(path, sizeof path, "%s/bpe-%s.gguf", dir, pre ? pre : "(none)");
    ck_assert_msg(eng_gguf_writer_write(w, path, err, errlen) == RB_OK, "%s", err);
    eng_gguf_writer_free(w);
    ck_assert_msg(eng_gguf_open(path, g, err, errlen) == RB_OK, "%s", err);
    if (eng_tokenizer_load(*g, &tok, err, errlen) != RB_OK) {
        eng_gguf_close(*g);
        *g = NULL;
        return NULL;
    }
    return tok;
}

/* The same, required to load. */
static eng_tokenizer *bpe_vocab(const char *dir, const char *pre, eng_gguf **g)
{
    char err[256] = "";
    eng_tokenizer *tok = bpe_vocab_try(dir, pre, g, err, sizeof err);
    ck_assert_msg(tok, "pre-tokenizer %s: %s", pre ? pre : "(none)", err);
    return tok;
}

static void expect_ids_flags(const eng_tokenizer *tok, const char *text, unsigned flags,
                             const eng_token *want, size_t nwant)
{
    size_t n;
    eng_token *ids = tokenize(tok, text, strlen(text), flags, &n);
    char got[256], exp[256];
    format_ids(ids, n, got, sizeof got);
    format_ids(want, nwant, exp, sizeof exp);
    ck_assert_msg(n == nwant && memcmp(ids, want, n * sizeof(*ids)) == 0,
                  "pre %s, '%s': got [%s], want [%s]", eng_tokenizer_pre(tok), text, got, exp);
    free(ids);
}

static void expect_ids(const eng_tokenizer *tok, const char *text, const eng_token *want,
                       size_t nwant)
{
    expect_ids_flags(tok, text, 0, want, nwant);
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

/* The words a pre-tokenizer should cut text into, worked out by hand from its regexes (the
 * comment on each group says why). Each test text holds one kind of trouble: contractions and
 * digit runs, CJK, whitespace runs with newlines, upper-case contractions, punctuation runs
 * before newlines, camel case, a combining mark. */
#define T_DIGITS "I'm 12345 apples"
#define T_CJK "中文字符 テスト"
#define T_SPACES "a  \n\n  b\t!"
#define T_UPPER "HELLO WORLD'S"
#define T_PUNCT "x...?!\n\ny"
#define T_CAMEL "camelCase getHTTPResponse"
#define T_MARK "e\xcc\x81x" /* e, U+0301 COMBINING ACUTE ACCENT, x */

typedef struct split_case {
    const char *pre, *text;
    const char *words[12]; /* NULL-terminated */
} split_case;

static const split_case split_cases[] = {
    /* llama3: contractions first (any case), letters with one leading non-letter, digits in
     * threes, punctuation runs with their newlines, whitespace ending in newlines, whitespace
     * not followed by a non-space, and what is left of a whitespace run. */
    {"llama-bpe", T_DIGITS, {"I", "'m", " ", "123", "45", " apples"}},
    {"llama-bpe", T_CJK, {"中文字符", " テスト"}},
    {"llama-bpe", T_SPACES, {"a", "  \n\n", " ", " b", "\t", "!"}},
    {"llama-bpe", T_UPPER, {"HELLO", " WORLD", "'S"}},
    {"llama-bpe", T_PUNCT, {"x", "...?!\n\n", "y"}},
    {"llama-bpe", T_CAMEL, {"camelCase", " getHTTPResponse"}},
    {"llama-bpe", T_MARK, {"e", "\xcc\x81x"}},
    {"llama-bpe",
     "a.\xc3\x89"
     "c",
     {"a", ".\xc3\x89"
           "c"}},
    /* qwen2 (and deepseek-r1-qwen, its alias): llama3 with single digits. */
    {"qwen2", T_DIGITS, {"I", "'m", " ", "1", "2", "3", "4", "5", " apples"}},
    {"qwen2", T_CJK, {"中文字符", " テスト"}},
    {"qwen2", T_SPACES, {"a", "  \n\n", " ", " b", "\t", "!"}},
    {"qwen2", T_UPPER, {"HELLO", " WORLD", "'S"}},
    {"qwen2", T_PUNCT, {"x", "...?!\n\n", "y"}},
    {"qwen2", T_MARK, {"e", "\xcc\x81x"}},
    {"deepseek-r1-qwen", T_DIGITS, {"I", "'m", " ", "1", "2", "3", "4", "5", " apples"}},
    {"deepseek-r1-qwen", T_SPACES, {"a", "  \n\n", " ", " b", "\t", "!"}},
    /* qwen35: qwen2 with combining marks counted as letters. */
    {"qwen35", T_MARK, {"e\xcc\x81x"}},
    {"qwen35", T_DIGITS, {"I", "'m", " ", "1", "2", "3", "4", "5", " apples"}},
    /* smollm: every digit alone first, then GPT-2's regex on the rest (contractions in lower
     * case only, a space joins the word after it, whitespace keeps its last space for the
     * next word). */
    {"smollm", T_DIGITS, {"I", "'m", " ", "1", "2", "3", "4", "5", " apples"}},
    {"smollm", T_CJK, {"中文字符", " テスト"}},
    {"smollm", T_SPACES, {"a", "  \n\n ", " b", "\t", "!"}},
    {"smollm", T_UPPER, {"HELLO", " WORLD", "'", "S"}},
    {"smollm", T_PUNCT, {"x", "...?!", "\n", "\n", "y"}},
    /* gpt-2: as smollm's second stage, digits stay together with their space. */
    {"gpt-2", T_DIGITS, {"I", "'m", " 12345", " apples"}},
    {"gpt-2", T_SPACES, {"a", "  \n\n ", " b", "\t", "!"}},
    {"gpt-2", T_UPPER, {"HELLO", " WORLD", "'", "S"}},
    {"gpt-2", T_PUNCT, {"x", "...?!", "\n", "\n", "y"}},
    /* tekken: words split at case changes (upper-case letters, then lower-case ones; Lo and
     * marks count as both), single digits, no contraction rule. */
    {"tekken", T_DIGITS, {"I", "'m", " ", "1", "2", "3", "4", "5", " apples"}},
    {"tekken", T_CJK, {"中文字符", " テスト"}},
    {"tekken", T_SPACES, {"a", "  \n\n", " ", " b", "\t", "!"}},
    {"tekken", T_UPPER, {"HELLO", " WORLD", "'S"}},
    {"tekken", T_PUNCT, {"x", "...?!\n\n", "y"}},
    {"tekken", T_CAMEL, {"camel", "Case", " get", "HTTPResponse"}},
    {"tekken", T_MARK, {"e\xcc\x81x"}},
    /* gpt-4o (llama4): tekken's words with a contraction attached, digits in threes. */
    {"gpt-4o", T_DIGITS, {"I'm", " ", "123", "45", " apples"}},
    {"gpt-4o", T_UPPER, {"HELLO", " WORLD'S"}},
    {"gpt-4o", T_CAMEL, {"camel", "Case", " get", "HTTPResponse"}},
    {"gpt-4o", T_SPACES, {"a", "  \n\n", " ", " b", "\t", "!"}},
    /* default: punctuation runs cut first (so "'" leaves "m"), then GPT-2's regex, then
     * digit runs, then digits in threes. */
    {"default", T_DIGITS, {"I", "'", "m", " ", "123", "45", " apples"}},
    {"default", T_PUNCT, {"x", "...?!", "\n", "\n", "y"}},
    {"default", "1234567", {"123", "456", "7"}},
    /* falcon: default without the digit-run stage. */
    {"falcon", T_DIGITS, {"I", "'", "m", " ", "123", "45", " apples"}},
    /* deepseek-v3: digits in threes, then runs of CJK and kana, then words where ASCII
     * punctuation joins only an ASCII word after it. */
    /* deepseek-coder: newlines alone, then letter runs with one leading space, punctuation
     * runs with one leading space, CJK/kana/Hangul runs, single digits. */
    {"deepseek-coder", T_DIGITS, {"I", "'", "m", " ", "1", "2", "3", "4", "5", " apples"}},
    {"deepseek-coder", T_CJK, {"中文字符", " ", "テスト"}},
    {"deepseek-coder", T_SPACES, {"a", "  ", "\n", "\n", " ", " b", "\t!"}},
    {"deepseek-v3", T_DIGITS, {"I", "'m", " ", "123", "45", " apples"}},
    {"deepseek-v3", T_CJK, {"中文字符", " ", "テスト"}},
    {"deepseek-v3", T_PUNCT, {"x", "...?!\n\n", "y"}},
    {"deepseek-v3",
     "a.\xc3\x89"
     "c",
     {"a", ".",
      "\xc3\x89"
      "c"}},
};

static void format_words(const char *text, const size_t *w, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 4 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "[%.*s]", (int)w[2 * i + 1], text + w[2 * i]);
}

/* Scenario: Each pre-tokenizer splits tricky text into the words its regexes give */
START_TEST(
    test_engine_tokenizer__each_pre_tokenizer_splits_tricky_text_into_the_words_its_regexes_give)
{
    char dir[4096];
    int checked = 0;

    rbt_tmpdir(dir);
    for (size_t c = 0; c < sizeof split_cases / sizeof *split_cases; c++) {
        const split_case *sc = &split_cases[c];
        eng_gguf *g;
        eng_tokenizer *tok = bpe_vocab(dir, sc->pre, &g);
        size_t *w, n, nwant = 0, pos = 0;
        char got[512], want[512] = "";
        int ok;

        ck_assert_int_eq(tok_bpe_split(tok, sc->text, strlen(sc->text), &w, &n), RB_OK);
        while (sc->words[nwant])
            nwant++;
        ok = n == nwant;
        for (size_t i = 0; i < n && ok; i++) {
            /* Words cover the text in order, without gaps. */
            ok = w[2 * i] == pos && w[2 * i + 1] == strlen(sc->words[i]) &&
                 memcmp(sc->text + pos, sc->words[i], w[2 * i + 1]) == 0;
            pos += w[2 * i + 1];
        }
        format_words(sc->text, w, n, got, sizeof got);
        for (size_t i = 0, o = 0; i < nwant; i++)
            o += (size_t)snprintf(want + o, sizeof want - o, "[%s]", sc->words[i]);
        ck_assert_msg(ok, "pre %s, '%s':\n  got  %s\n  want %s", sc->pre, sc->text, got, want);
        free(w);
        eng_tokenizer_free(tok);
        eng_gguf_close(g);
        checked++;
    }
    printf("pre-tokenizer splits: %d texts as worked out by hand\n", checked);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Pre-tokenizer names select llama.cpp's settings */
START_TEST(test_engine_tokenizer__pre_tokenizer_names_select_llama_cpp_s_settings)
{
    /* The value in the file, the name it reports, whether a BOS is advised, whether a word
     * that is a piece skips merging ("!!\n\n" is one word for all of them except gpt-2,
     * smollm and default, which cut it into "!!" "\n" "\n"; the test vocabulary has the
     * piece but no merges that build it). */
    static const struct {
        const char *pre, *name;
        int bos, ignore_merges;
    } names[] = {
        {"llama-bpe", "llama3", 1, 1},
        {"llama3", "llama3", 1, 1},
        {"falcon3", "llama3", 1, 1},
        {"tekken", "tekken", 1, 1},
        {"qwen2", "qwen2", 0, 0},
        {"deepseek-r1-qwen", "qwen2", 0, 0},
        {"qwen35", "qwen35", 0, 0},
        {"smollm", "smollm", 0, 0},
        {"starcoder", "smollm", 0, 0},
        {"gpt-2", "gpt-2", 0, 0},
        {"llama4", "gpt-4o", 0, 0},
        {"default", "default", 0, 0},
        {"dbrx", "dbrx", 0, 0},
        {"falcon", "falcon", 0, 0},
        {"deepseek-v3", "deepseek-v3", 0, 0},
        {"deepseek-coder", "deepseek-coder", 0, 0},
        {NULL, "default", 0, 0}, /* key absent: llama.cpp's default, with a warning */
    };
    char dir[4096];

    rbt_tmpdir(dir);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        eng_gguf *g;
        eng_tokenizer *tok = bpe_vocab(dir, names[i].pre, &g);
        const char *pre = names[i].pre ? names[i].pre : "(none)";
        ck_assert_msg(strcmp(eng_tokenizer_pre(tok), names[i].name) == 0, "%s reports %s", pre,
                      eng_tokenizer_pre(tok));
        ck_assert_msg(eng_tokenizer_add_bos(tok) == names[i].bos, "%s: add_bos %d", pre,
                      eng_tokenizer_add_bos(tok));
        if (names[i].ignore_merges)
            expect_ids(tok, "!!\n\n", (const eng_token[]){T_BANGS}, 1);
        else
            expect_ids(tok, "!!\n\n", (const eng_token[]){'!', '!', '\n', '\n'}, 4);
        eng_tokenizer_free(tok);
        eng_gguf_close(g);
    }
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: An unknown pre-tokenizer is refused, naming it and the supported ones */
START_TEST(
    test_engine_tokenizer__an_unknown_pre_tokenizer_is_refused_naming_it_and_the_supported_ones)
{
    char dir[4096], err[256] = "";
    eng_gguf *g = NULL;
    eng_tokenizer *tok;

    rbt_tmpdir(dir);
    tok = bpe_vocab_try(dir, "mystery", &g, err, sizeof err);
    ck_assert_ptr_null(tok);
    ck_assert_msg(strstr(err, "unknown pre-tokenizer 'mystery'"), "%s", err);
    ck_assert_msg(strstr(err, "llama3") && strstr(err, "qwen2") && strstr(err, "tekken") &&
                      strstr(err, "smollm"),
                  "%s", err);
    printf("unknown pre-tokenizer: %s\n", err);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Special tokens are cut out longest first, control ones only when asked */
START_TEST(
    test_engine_tokenizer__special_tokens_are_cut_out_longest_first_control_ones_only_when_asked)
{
    const char *text = "a<|x|>!b<|x|>";
    char dir[4096], *back;
    size_t n, blen;
    eng_token *ids;
    eng_gguf *g;
    eng_tokenizer *tok;

    rbt_tmpdir(dir);
    tok = bpe_vocab(dir, "llama-bpe", &g);
    ck_assert_int_eq(eng_tokenizer_type(tok, T_CTRL), ENG_TOK_TYPE_CONTROL);
    ck_assert_int_eq(eng_tokenizer_type(tok, T_USER), ENG_TOK_TYPE_USER_DEFINED);
    /* Parsing special tokens: the longer user-defined "<|x|>!" wins over "<|x|>" inside it. */
    expect_ids_flags(tok, text, ENG_TOK_PARSE_SPECIAL,
                     (const eng_token[]){'a', T_USER, 'b', T_CTRL}, 4);
    /* Without the flag the user-defined token is still matched, the control one is text. */
    ids = tokenize(tok, text, strlen(text), 0, &n);
    ck_assert_uint_gt(n, 3);
    ck_assert_int_eq(ids[0], 'a');
    ck_assert_int_eq(ids[1], T_USER);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], T_CTRL);
    ck_assert_int_eq(eng_detokenize(tok, ids + 2, n - 2, 0, &back, &blen), RB_OK);
    ck_assert_str_eq(back, "b<|x|>");
    free(back);
    free(ids);
    /* A special token at either end, twice in a row, and alone. */
    expect_ids_flags(tok, "<|x|><|x|>", ENG_TOK_PARSE_SPECIAL, (const eng_token[]){T_CTRL, T_CTRL},
                     2);
    expect_ids_flags(tok, "<|x|>", ENG_TOK_PARSE_SPECIAL | ENG_TOK_ADD_BOS,
                     (const eng_token[]){0, T_CTRL}, 2);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
    rbt_rmtree(dir);
}
END_TEST

/* A SentencePiece vocabulary laid out like Gemma's: <pad> <eos> <bos> <unk>, the chat tokens
 * (control), byte tokens, then pieces with scores. add_space_prefix < 0 leaves the key out. */
enum {
    G_PAD,
    G_EOS,
    G_BOS,
    G_UNK,
    G_SOT,
    G_EOT,
    G_BYTE0,
    G_SPACE = G_BYTE0 + 256,
    G_H,
    G_I,
    G_HI,
    G_SPACE_HI,
    G_U,
    G_S,
    G_E,
    G_R,
    G_US,
    G_ER,
    G_USER,
    G_N
};

static eng_tokenizer *spm_vocab(const char *dir, int add_space_prefix, eng_gguf **g)
{
    static char bytes[256][8];
    static const char *const pieces[] = {
        "\xe2\x96\x81", "H", "i", "Hi", "\xe2\x96\x81Hi", "u", "s", "e", "r", "us", "er", "user"};
    static const float piece_scores[] = {-10, -20, -20, -5, -3, -20, -20, -20, -20, -8, -8, -4};
    const char *toks[G_N] = {"<pad>", "<eos>",           "<bos>",
                             "<unk>", "<start_of_turn>", "<end_of_turn>"};
    int32_t types[G_N];
    float scores[G_N];
    char path[4200], err[256] = "";
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_tokenizer *tok = NULL;

    for (int i = 0; i < G_N; i++) {
        types[i] = ENG_TOK_TYPE_NORMAL;
        scores[i] = 0;
    }
    types[G_PAD] = types[G_EOS] = types[G_BOS] = types[G_SOT] = types[G_EOT] = ENG_TOK_TYPE_CONTROL;
    types[G_UNK] = ENG_TOK_TYPE_UNKNOWN;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[G_BYTE0 + b] = bytes[b];
        types[G_BYTE0 + b] = ENG_TOK_TYPE_BYTE;
    }
    for (int i = 0; i < G_N - G_SPACE; i++) {
        toks[G_SPACE + i] = pieces[i];
        scores[G_SPACE + i] = piece_scores[i];
    }
    ck_assert_int_eq(eng_gguf_writer_set_str(w, "general.name", "gemma-like"), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, G_N), RB_OK);
    ck_assert_int_eq(
        eng_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", ENG_GGUF_I32, types, G_N), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr(w, "tokenizer.ggml.scores", ENG_GGUF_F32, scores, G_N),
                     RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", G_BOS), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", G_EOS), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", G_UNK), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1), RB_OK);
    if (add_space_prefix >= 0)
        ck_assert_int_eq(
            eng_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", add_space_prefix),
            RB_OK);
    snprintf(path, sizeof path, "%s/spm-%d.gguf", dir, add_space_prefix);
    ck_assert_msg(eng_gguf_writer_write(w, path, err, sizeof err) == RB_OK, "%s", err);
    eng_gguf_writer_free(w);
    ck_assert_msg(eng_gguf_open(path, g, err, sizeof err) == RB_OK, "%s", err);
    ck_assert_msg(eng_tokenizer_load(*g, &tok, err, sizeof err) == RB_OK, "%s", err);
    return tok;
}

static void expect_text(const eng_tokenizer *tok, const eng_token *ids, size_t n, unsigned flags,
                        const char *want)
{
    char *s;
    size_t len;
    ck_assert_int_eq(eng_detokenize(tok, ids, n, flags, &s, &len), RB_OK);
    ck_assert_str_eq(s, want);
    free(s);
}

/* Scenario: Gemma's SentencePiece settings: no space prefix, byte fallback, BOS */
START_TEST(test_engine_tokenizer__gemma_s_sentencepiece_settings_no_space_prefix_byte_fallback_bos)
{
    const char *chat = "<start_of_turn>user\nHi<end_of_turn>";
    char dir[4096];
    eng_gguf *g, *g2;
    eng_tokenizer *gemma, *llama;

    rbt_tmpdir(dir);
    gemma = spm_vocab(dir, 0, &g);
    llama = spm_vocab(dir, -1, &g2);
    /* Gemma writes add_space_prefix = false: no "▁" in front of the text; Llama-2-style files
     * leave the key out and get one. */
    expect_ids(gemma, "Hi", (const eng_token[]){G_HI}, 1);
    expect_ids(llama, "Hi", (const eng_token[]){G_SPACE_HI}, 1);
    expect_ids(gemma, " Hi", (const eng_token[]){G_SPACE_HI}, 1);
    /* A character the vocabulary lacks becomes its UTF-8 bytes ("é" is C3 A9). */
    expect_ids(gemma, "\xc3\xa9", (const eng_token[]){G_BYTE0 + 0xC3, G_BYTE0 + 0xA9}, 2);
    /* Chat tokens: no space after them either, the newline is a byte token. */
    expect_ids_flags(gemma, chat, ENG_TOK_PARSE_SPECIAL | ENG_TOK_ADD_BOS,
                     (const eng_token[]){G_BOS, G_SOT, G_USER, G_BYTE0 + '\n', G_HI, G_EOT}, 6);
    expect_ids_flags(llama, chat, ENG_TOK_PARSE_SPECIAL,
                     (const eng_token[]){G_SOT, G_SPACE, G_USER, G_BYTE0 + '\n', G_HI, G_EOT}, 6);
    ck_assert_int_eq(eng_tokenizer_add_bos(gemma), 1);
    ck_assert_int_eq(eng_tokenizer_eot(gemma), G_EOT);
    ck_assert(eng_tokenizer_is_eog(gemma, G_EOT));
    ck_assert(eng_tokenizer_is_eog(gemma, G_EOS));
    /* Decoding from the start drops only a prefix space the encoder added. */
    expect_text(gemma, (const eng_token[]){G_SPACE_HI}, 1, ENG_DETOK_FROM_START, " Hi");
    expect_text(llama, (const eng_token[]){G_SPACE_HI}, 1, ENG_DETOK_FROM_START, "Hi");
    expect_text(gemma, (const eng_token[]){G_BOS, G_SOT, G_USER, G_BYTE0 + '\n', G_HI, G_EOT}, 6,
                ENG_DETOK_FROM_START | ENG_DETOK_SPECIAL,
                "<bos><start_of_turn>user\nHi<end_of_turn>");
    eng_tokenizer_free(gemma);
    eng_tokenizer_free(llama);
    eng_gguf_close(g);
    eng_gguf_close(g2);
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
    tcase_add_test(
        tc,
        test_engine_tokenizer__each_pre_tokenizer_splits_tricky_text_into_the_words_its_regexes_give);
    tcase_add_test(tc, test_engine_tokenizer__pre_tokenizer_names_select_llama_cpp_s_settings);
    tcase_add_test(
        tc,
        test_engine_tokenizer__an_unknown_pre_tokenizer_is_refused_naming_it_and_the_supported_ones);
    tcase_add_test(
        tc,
        test_engine_tokenizer__special_tokens_are_cut_out_longest_first_control_ones_only_when_asked);
    tcase_add_test(
        tc,
        test_engine_tokenizer__gemma_s_sentencepiece_settings_no_space_prefix_byte_fallback_bos);
    return rbt_run(s);
}
