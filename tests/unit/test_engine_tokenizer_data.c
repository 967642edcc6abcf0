/*
 * test_engine_tokenizer_data.c - the tokenizer and detokenizer scenarios of
 * spec/engine_tokenizer.feature that need llama.cpp's reference vocabularies and goldens,
 * which live outside the repository in ../shared/data/tokenizer/ (or $RBEE_SHARED_DATA).
 *
 * Every test here needs that folder, so main() checks it once: without it the executable
 * runs nothing, prints one SKIP line and exits 77, which ctest reports as skipped. The
 * scenarios that need no data are in test_engine_tokenizer.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_gguf.h"
#include "eng_tok.h"
#include "rb_models.h"
#include "rb_test.h"
#include "rb_util.h"

#define SEPARATOR "\n__ggml_vocab_test__\n"
#define MAX_CASES 128

typedef struct golden {
    char *inp; /* the .inp file; cases point into it */
    char *out; /* the .out file */
    const char *text[MAX_CASES];
    size_t len[MAX_CASES];
    eng_token *ids[MAX_CASES];
    size_t n_ids[MAX_CASES];
    int n;
    eng_gguf *g;
    eng_tokenizer *tok;
} golden;

static eng_tokenizer *load_tok(const char *vocab, eng_gguf **g)
{
    eng_tokenizer *tok = NULL;
    char err[512] = "";

    ck_assert_msg(eng_gguf_open(rbt_tokenizer_data(vocab), g, err, sizeof err) == RB_OK, "%s", err);
    ck_assert_msg(eng_tokenizer_load(*g, &tok, err, sizeof err) == RB_OK, "%s: %s", vocab, err);
    return tok;
}

/* Reads ggml-vocab-NAME.gguf and its .inp/.out cases. */
static void golden_load(golden *gd, const char *name)
{
    char file[256];
    size_t len;
    char *p, *line;

    memset(gd, 0, sizeof(*gd));
    snprintf(file, sizeof file, "ggml-vocab-%s.gguf", name);
    gd->tok = load_tok(file, &gd->g);
    snprintf(file, sizeof file, "ggml-vocab-%s.gguf.inp", name);
    ck_assert_int_eq(rb_read_file(rbt_tokenizer_data(file), 1 << 24, &gd->inp, &len), RB_OK);
    /* Each text is followed by the separator; what follows the last one is not a case. */
    for (p = gd->inp; (line = strstr(p, SEPARATOR)); p = line + strlen(SEPARATOR)) {
        ck_assert_int_lt(gd->n, MAX_CASES);
        gd->text[gd->n] = p;
        gd->len[gd->n] = (size_t)(line - p);
        gd->n++;
    }
    snprintf(file, sizeof file, "ggml-vocab-%s.gguf.out", name);
    ck_assert_int_eq(rb_read_file(rbt_tokenizer_data(file), 1 << 24, &gd->out, &len), RB_OK);
    p = gd->out;
    for (int i = 0; i < gd->n; i++) {
        char *end = strchr(p, '\n');
        ck_assert_msg(end, "%s: fewer id lines than texts", name);
        *end = '\0';
        gd->ids[i] = malloc((strlen(p) / 2 + 1) * sizeof(eng_token));
        for (char *q = p; *q;) {
            char *next;
            long v = strtol(q, &next, 10);
            if (next == q)
                break;
            gd->ids[i][gd->n_ids[i]++] = (eng_token)v;
            q = next;
        }
        p = end + 1;
    }
}

static void golden_free(golden *gd)
{
    for (int i = 0; i < gd->n; i++)
        free(gd->ids[i]);
    free(gd->inp);
    free(gd->out);
    eng_tokenizer_free(gd->tok);
    eng_gguf_close(gd->g);
}

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

/* Tokenizes every case of NAME and requires the reference ids. */
static void check_golden(const char *name, int want_cases)
{
    golden gd;
    int pass = 0;

    golden_load(&gd, name);
    ck_assert_int_eq(gd.n, want_cases);
    for (int i = 0; i < gd.n; i++) {
        size_t n;
        eng_token *ids = tokenize(gd.tok, gd.text[i], gd.len[i], 0, &n);
        if (n == gd.n_ids[i] && memcmp(ids, gd.ids[i], n * sizeof(*ids)) == 0) {
            pass++;
        } else {
            char got[2048], want[2048];
            format_ids(ids, n, got, sizeof got);
            format_ids(gd.ids[i], gd.n_ids[i], want, sizeof want);
            printf("%s case %d '%.*s'\n  got %s\n  want%s\n", name, i, (int)gd.len[i], gd.text[i],
                   got, want);
        }
        free(ids);
    }
    printf("%s: %d/%d reference texts tokenize exactly\n", name, pass, gd.n);
    ck_assert_int_eq(pass, gd.n);
    golden_free(&gd);
}

/* Scenario: SentencePiece tokenization matches the phi-3 reference ids */
START_TEST(test_engine_tokenizer__sentencepiece_tokenization_matches_the_phi_3_reference_ids)
{
    check_golden("phi-3", 46);
}
END_TEST

/* Scenario: GPT-2 byte-level tokenization matches the gpt-2 reference ids */
START_TEST(test_engine_tokenizer__gpt_2_byte_level_tokenization_matches_the_gpt_2_reference_ids)
{
    check_golden("gpt-2", 46);
}
END_TEST

/* Scenario: Qwen2 tokenization matches the qwen2 reference ids */
START_TEST(test_engine_tokenizer__qwen2_tokenization_matches_the_qwen2_reference_ids)
{
    check_golden("qwen2", 46);
}
END_TEST

static const char *const vocabs[] = {"phi-3", "gpt-2", "qwen2"};

/* Scenario: Decoding the reference texts gives them back */
START_TEST(test_engine_tokenizer__decoding_the_reference_texts_gives_them_back)
{
    int pass = 0, total = 0;

    for (size_t v = 0; v < 3; v++) {
        golden gd;
        golden_load(&gd, vocabs[v]);
        for (int i = 0; i < gd.n; i++) {
            char *text;
            size_t len;
            ck_assert_int_eq(
                eng_detokenize(gd.tok, gd.ids[i], gd.n_ids[i], ENG_DETOK_FROM_START, &text, &len),
                RB_OK);
            total++;
            if (len == gd.len[i] && memcmp(text, gd.text[i], len) == 0)
                pass++;
            else
                printf("%s case %d: decoded '%s', want '%.*s'\n", vocabs[v], i, text,
                       (int)gd.len[i], gd.text[i]);
            free(text);
        }
        golden_free(&gd);
    }
    printf("round trip: %d/%d reference texts decode to themselves\n", pass, total);
    ck_assert_int_eq(total, 138);
    ck_assert_int_eq(pass, total);
}
END_TEST

/* 1 if p[0..n) is valid UTF-8 (shortest forms, no surrogates, <= U+10FFFF). */
static int valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i], cp, need;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07;
        else
            return 0;
        if (need >= n - i)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* Pushes ids one by one; every delta must be valid UTF-8; returns their concatenation. */
static char *push_all(const eng_tokenizer *tok, const eng_token *ids, size_t n, unsigned flags,
                      size_t *len)
{
    eng_detok *d;
    char *all = malloc(16);
    size_t used = 0, cap = 16;

    ck_assert_int_eq(eng_detok_new(tok, flags, &d), RB_OK);
    for (size_t i = 0; i <= n; i++) {
        size_t k;
        const char *s = i < n ? eng_detok_push(d, ids[i], &k) : eng_detok_flush(d, &k);
        ck_assert_msg(valid_utf8((const unsigned char *)s, k), "delta %zu not UTF-8", i);
        ck_assert_uint_eq(strlen(s), k);
        while (used + k + 1 > cap)
            all = realloc(all, cap *= 2);
        memcpy(all + used, s, k);
        used += k;
    }
    all[used] = '\0';
    eng_detok_free(d);
    *len = used;
    return all;
}

/* Scenario: The incremental detokenizer holds back split UTF-8 characters */
START_TEST(test_engine_tokenizer__the_incremental_detokenizer_holds_back_split_utf_8_characters)
{
    eng_token llama[4] = {243, 162, 169, 156};
    eng_detok *d;
    eng_gguf *g;
    eng_tokenizer *tok;
    int checked = 0;

    tok = load_tok("ggml-vocab-phi-3.gguf", &g);
    ck_assert_int_eq(eng_detok_new(tok, 0, &d), RB_OK);
    for (int i = 0; i < 4; i++) {
        size_t k;
        const char *s = eng_detok_push(d, llama[i], &k);
        if (i < 3)
            ck_assert_uint_eq(k, 0);
        else
            ck_assert_str_eq(s, "\xf0\x9f\xa6\x99");
    }
    eng_detok_free(d);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);

    for (size_t v = 0; v < 3; v++) {
        golden gd;
        golden_load(&gd, vocabs[v]);
        for (int i = 0; i < gd.n; i++) {
            size_t len;
            char *s = push_all(gd.tok, gd.ids[i], gd.n_ids[i], ENG_DETOK_FROM_START, &len);
            ck_assert_msg(len == gd.len[i] && memcmp(s, gd.text[i], len) == 0,
                          "%s case %d: deltas join to '%s'", vocabs[v], i, s);
            free(s);
            checked++;
        }
        golden_free(&gd);
    }
    printf("incremental detokenizer: %d texts, every delta valid UTF-8\n", checked);
}
END_TEST

/* Scenario: Invalid byte sequences decode to U+FFFD */
START_TEST(test_engine_tokenizer__invalid_byte_sequences_decode_to_u_fffd)
{
    eng_gguf *g;
    eng_tokenizer *tok;
    eng_detok *d;
    eng_token ff, f0, x9f, e2, a;
    const char *s;
    size_t k;

    tok = load_tok("ggml-vocab-phi-3.gguf", &g);
    ff = eng_tokenizer_find(tok, "<0xFF>", 6);
    f0 = eng_tokenizer_find(tok, "<0xF0>", 6);
    x9f = eng_tokenizer_find(tok, "<0x9F>", 6);
    e2 = eng_tokenizer_find(tok, "<0xE2>", 6);
    a = eng_tokenizer_find(tok,
                           "\xe2\x96\x81"
                           "a",
                           4);
    ck_assert(ff >= 0 && f0 >= 0 && x9f >= 0 && e2 >= 0 && a >= 0);
    ck_assert_int_eq(eng_tokenizer_type(tok, ff), ENG_TOK_TYPE_BYTE);
    ck_assert_int_eq(eng_detok_new(tok, 0, &d), RB_OK);
    s = eng_detok_push(d, ff, &k);
    ck_assert_str_eq(s, "\xef\xbf\xbd");
    s = eng_detok_push(d, f0, &k);
    ck_assert_uint_eq(k, 0);
    s = eng_detok_push(d, x9f, &k);
    ck_assert_uint_eq(k, 0);
    s = eng_detok_push(d, a, &k);
    ck_assert_str_eq(s, "\xef\xbf\xbd a");
    s = eng_detok_push(d, e2, &k);
    ck_assert_uint_eq(k, 0);
    s = eng_detok_flush(d, &k);
    ck_assert_str_eq(s, "\xef\xbf\xbd");
    s = eng_detok_flush(d, &k);
    ck_assert_uint_eq(k, 0);
    /* Out-of-range ids print nothing. */
    s = eng_detok_push(d, -5, &k);
    ck_assert_uint_eq(k, 0);
    s = eng_detok_push(d, 1 << 30, &k);
    ck_assert_uint_eq(k, 0);
    eng_detok_free(d);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
}
END_TEST

static char *decode(const eng_tokenizer *tok, const eng_token *ids, size_t n, unsigned flags)
{
    char *s;
    size_t len;
    ck_assert_int_eq(eng_detokenize(tok, ids, n, flags, &s, &len), RB_OK);
    return s;
}

/* Scenario: Control tokens are not printed unless asked */
START_TEST(test_engine_tokenizer__control_tokens_are_not_printed_unless_asked)
{
    eng_token ids[2] = {1, 15043};
    eng_gguf *g;
    eng_tokenizer *tok;
    char *s;

    tok = load_tok("ggml-vocab-phi-3.gguf", &g);
    ck_assert_int_eq(eng_tokenizer_type(tok, 1), ENG_TOK_TYPE_CONTROL);
    s = decode(tok, ids, 2, ENG_DETOK_FROM_START);
    ck_assert_str_eq(s, "Hello");
    free(s);
    s = decode(tok, ids, 2, ENG_DETOK_FROM_START | ENG_DETOK_SPECIAL);
    ck_assert_str_eq(s, "<s>Hello");
    free(s);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
}
END_TEST

/* Scenario: The space SentencePiece prepends is dropped only at the start of the text */
START_TEST(
    test_engine_tokenizer__the_space_sentencepiece_prepends_is_dropped_only_at_the_start_of_the_text)
{
    eng_token id = 15043;
    eng_gguf *g;
    eng_tokenizer *tok;
    size_t n;
    const char *piece;
    char *s;

    tok = load_tok("ggml-vocab-phi-3.gguf", &g);
    piece = eng_tokenizer_piece(tok, id, &n);
    ck_assert_str_eq(piece, "\xe2\x96\x81Hello");
    s = decode(tok, &id, 1, ENG_DETOK_FROM_START);
    ck_assert_str_eq(s, "Hello");
    free(s);
    s = decode(tok, &id, 1, 0);
    ck_assert_str_eq(s, " Hello");
    free(s);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
}
END_TEST

/* Scenario: BOS is added only when requested */
START_TEST(test_engine_tokenizer__bos_is_added_only_when_requested)
{
    eng_gguf *g, *g2;
    eng_tokenizer *phi, *qwen;
    eng_token *ids;
    size_t n;

    phi = load_tok("ggml-vocab-phi-3.gguf", &g);
    qwen = load_tok("ggml-vocab-qwen2.gguf", &g2);
    ck_assert_int_eq(eng_tokenizer_add_bos(phi), 1);
    ck_assert_int_eq(eng_tokenizer_add_bos(qwen), 0);
    ck_assert_int_eq(eng_tokenizer_bos(phi), 1);
    ck_assert_int_eq(eng_tokenizer_eos(phi), 32000);
    ids = tokenize(phi, "Hello", 5, ENG_TOK_ADD_BOS, &n);
    ck_assert(n == 2 && ids[0] == 1 && ids[1] == 15043);
    free(ids);
    ids = tokenize(phi, "Hello", 5, 0, &n);
    ck_assert(n == 1 && ids[0] == 15043);
    free(ids);
    ids = tokenize(qwen, "", 0, ENG_TOK_ADD_BOS, &n);
    ck_assert(n == 1 && ids[0] == 151643);
    free(ids);
    eng_tokenizer_free(phi);
    eng_tokenizer_free(qwen);
    eng_gguf_close(g);
    eng_gguf_close(g2);
}
END_TEST

/* Scenario: Special token text is matched only when parsing special tokens */
START_TEST(test_engine_tokenizer__special_token_text_is_matched_only_when_parsing_special_tokens)
{
    const char *text = "<|im_start|>user";
    eng_gguf *g, *g2;
    eng_tokenizer *qwen, *phi;
    eng_token *ids;
    size_t n;
    char *s;

    qwen = load_tok("ggml-vocab-qwen2.gguf", &g);
    ids = tokenize(qwen, text, strlen(text), ENG_TOK_PARSE_SPECIAL, &n);
    ck_assert(n == 2 && ids[0] == 151644 && ids[1] == 872);
    free(ids);
    ids = tokenize(qwen, text, strlen(text), 0, &n);
    ck_assert_uint_gt(n, 2);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], 151644);
    s = decode(qwen, ids, n, ENG_DETOK_FROM_START);
    ck_assert_str_eq(s, text);
    free(s);
    free(ids);

    phi = load_tok("ggml-vocab-phi-3.gguf", &g2);
    ck_assert_int_eq(eng_tokenizer_type(phi, 2), ENG_TOK_TYPE_USER_DEFINED);
    ids = tokenize(phi, "a</s>b", 6, 0, &n);
    ck_assert(n == 3 && ids[1] == 2);
    free(ids);
    ids = tokenize(phi, "a<s>b", 5, 0, &n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], 1);
    free(ids);
    ids = tokenize(phi, "a<s>b", 5, ENG_TOK_PARSE_SPECIAL, &n);
    ck_assert(n == 3 && ids[1] == 1);
    free(ids);
    eng_tokenizer_free(qwen);
    eng_tokenizer_free(phi);
    eng_gguf_close(g);
    eng_gguf_close(g2);
}
END_TEST

/* Scenario: End-of-generation tokens are recognised */
START_TEST(test_engine_tokenizer__end_of_generation_tokens_are_recognised)
{
    eng_gguf *g, *g2;
    eng_tokenizer *qwen, *phi;

    qwen = load_tok("ggml-vocab-qwen2.gguf", &g);
    ck_assert(eng_tokenizer_is_eog(qwen, 151643));
    ck_assert(eng_tokenizer_is_eog(qwen, 151645));
    ck_assert(!eng_tokenizer_is_eog(qwen, 151644));
    ck_assert(!eng_tokenizer_is_eog(qwen, 9707));
    ck_assert(!eng_tokenizer_is_eog(qwen, -1));
    ck_assert(!eng_tokenizer_is_eog(qwen, 1 << 30));
    phi = load_tok("ggml-vocab-phi-3.gguf", &g2);
    ck_assert_int_eq(eng_tokenizer_eot(phi), 32007);
    ck_assert(eng_tokenizer_is_eog(phi, 32007));
    ck_assert(eng_tokenizer_is_eog(phi, 32000));
    eng_tokenizer_free(qwen);
    eng_tokenizer_free(phi);
    eng_gguf_close(g);
    eng_gguf_close(g2);
}
END_TEST

/* Scenario: Bytes that are not UTF-8 survive byte-level tokenization */
START_TEST(test_engine_tokenizer__bytes_that_are_not_utf_8_survive_byte_level_tokenization)
{
    const char in[] = "\xff\xfe"
                      "ab";
    char joined[64] = "";
    eng_gguf *g;
    eng_tokenizer *tok;
    eng_token *ids;
    size_t n, used = 0;
    char *s;

    tok = load_tok("ggml-vocab-gpt-2.gguf", &g);
    ids = tokenize(tok, in, 4, 0, &n);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *b = eng_tokenizer_token_bytes(tok, ids[i], &k);
        memcpy(joined + used, b, k);
        used += k;
    }
    ck_assert_uint_eq(used, 4);
    ck_assert(memcmp(joined, in, 4) == 0);
    s = decode(tok, ids, n, ENG_DETOK_FROM_START);
    ck_assert_str_eq(s, "\xef\xbf\xbd\xef\xbf\xbd"
                        "ab");
    free(s);
    free(ids);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
}
END_TEST

/* Tokenizes text with and without ENG_TOK_PARSE_SPECIAL: with it the ids must be want;
 * without it none of the special ids in want may appear. */
static void expect_special(const char *vocab, const char *text, const eng_token *want, size_t nwant,
                           const char *const *pieces)
{
    eng_gguf *g;
    eng_tokenizer *tok = load_tok(vocab, &g);
    char got[512], exp[512];
    eng_token *ids;
    size_t n;

    /* The ids name the pieces they should: the expectation is readable, not just numbers. */
    for (size_t i = 0; i < nwant; i++) {
        const char *p = eng_tokenizer_piece(tok, want[i], NULL);
        ck_assert_msg(p && strcmp(p, pieces[i]) == 0, "%s: id %d is '%s', not '%s'", vocab, want[i],
                      p ? p : "(none)", pieces[i]);
    }
    ids = tokenize(tok, text, strlen(text), ENG_TOK_PARSE_SPECIAL, &n);
    format_ids(ids, n, got, sizeof got);
    format_ids(want, nwant, exp, sizeof exp);
    ck_assert_msg(n == nwant && memcmp(ids, want, n * sizeof(*ids)) == 0,
                  "%s, '%s': got [%s], want [%s]", vocab, text, got, exp);
    printf("%s special: [%s]\n", vocab, got);
    free(ids);
    ids = tokenize(tok, text, strlen(text), 0, &n);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nwant; k++)
            if (eng_tokenizer_type(tok, want[k]) == ENG_TOK_TYPE_CONTROL)
                ck_assert_msg(ids[i] != want[k], "%s: control id %d without the flag", vocab,
                              want[k]);
    free(ids);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
}

/* Scenario: Each reference vocabulary's chat tokens become single ids when parsing special tokens
 */
START_TEST(
    test_engine_tokenizer__each_reference_vocabulary_s_chat_tokens_become_single_ids_when_parsing_special_tokens)
{
    expect_special("ggml-vocab-qwen2.gguf", "<|im_start|>user\nHi<|im_end|>\n<|endoftext|>",
                   (const eng_token[]){151644, 872, 198, 13048, 151645, 198, 151643}, 7,
                   (const char *const[]){"<|im_start|>", "user", "\xc4\x8a", "Hi", "<|im_end|>",
                                         "\xc4\x8a", "<|endoftext|>"});
    /* Phi-3's chat tokens eat the whitespace after them (llama.cpp's rule for Phi-3), and the
     * text after a special token gets SentencePiece's leading space. */
    expect_special("ggml-vocab-phi-3.gguf", "<|user|>\nHi<|end|>\n<|assistant|>",
                   (const eng_token[]){32010, 6324, 32007, 32001}, 4,
                   (const char *const[]){"<|user|>", "\xe2\x96\x81Hi", "<|end|>", "<|assistant|>"});
    /* "<|endoftext|>" does not strip, so "Hello" keeps its leading space: "▁Hello". */
    expect_special("ggml-vocab-phi-3.gguf", "<|endoftext|>Hello", (const eng_token[]){32000, 15043},
                   2, (const char *const[]){"<|endoftext|>", "\xe2\x96\x81Hello"});
    expect_special("ggml-vocab-gpt-2.gguf", "Hi<|endoftext|>Hello",
                   (const eng_token[]){17250, 50256, 15496}, 3,
                   (const char *const[]){"Hi", "<|endoftext|>", "Hello"});
}
END_TEST

/* Scenario: A short id buffer reports the size needed */
START_TEST(test_engine_tokenizer__a_short_id_buffer_reports_the_size_needed)
{
    eng_gguf *g;
    eng_tokenizer *tok;
    eng_token ids[1];
    size_t n = 0;

    tok = load_tok("ggml-vocab-qwen2.gguf", &g);
    ck_assert_int_eq(eng_tokenize(tok, "Hello world", 11, 0, ids, 1, &n), RB_ETOOBIG);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 9707);
    ck_assert_int_eq(eng_tokenize(tok, "Hello world", 11, 0, NULL, 0, &n), RB_ETOOBIG);
    ck_assert_uint_eq(n, 2);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
}
END_TEST

/* Scenario: The qwen2 vocabulary loads in under one second */
START_TEST(test_engine_tokenizer__the_qwen2_vocabulary_loads_in_under_one_second)
{
    eng_gguf *g;
    eng_tokenizer *tok = NULL;
    char err[256] = "";
    int64_t t0, ms;

    ck_assert_int_eq(
        eng_gguf_open(rbt_tokenizer_data("ggml-vocab-qwen2.gguf"), &g, err, sizeof err), RB_OK);
    t0 = rbt_ms();
    ck_assert_int_eq(eng_tokenizer_load(g, &tok, err, sizeof err), RB_OK);
    ms = rbt_ms() - t0;
    printf("qwen2 tokenizer: %d pieces loaded in %lld ms\n", eng_tokenizer_n_vocab(tok),
           (long long)ms);
    ck_assert_int_eq(eng_tokenizer_n_vocab(tok), 151936);
    ck_assert_str_eq(eng_tokenizer_pre(tok), "qwen2");
    ck_assert_int_lt(ms, 1000);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_tokenizer_data");
    TCase *tc = rbt_tcase(s, "reference", 60);
    tcase_add_test(
        tc, test_engine_tokenizer__sentencepiece_tokenization_matches_the_phi_3_reference_ids);
    tcase_add_test(
        tc, test_engine_tokenizer__gpt_2_byte_level_tokenization_matches_the_gpt_2_reference_ids);
    tcase_add_test(tc, test_engine_tokenizer__qwen2_tokenization_matches_the_qwen2_reference_ids);
    tcase_add_test(tc, test_engine_tokenizer__decoding_the_reference_texts_gives_them_back);

    tc = rbt_tcase(s, "detok", 30);
    tcase_add_test(
        tc, test_engine_tokenizer__the_incremental_detokenizer_holds_back_split_utf_8_characters);
    tcase_add_test(tc, test_engine_tokenizer__invalid_byte_sequences_decode_to_u_fffd);
    tcase_add_test(tc, test_engine_tokenizer__control_tokens_are_not_printed_unless_asked);
    tcase_add_test(
        tc,
        test_engine_tokenizer__the_space_sentencepiece_prepends_is_dropped_only_at_the_start_of_the_text);

    tc = rbt_tcase(s, "behaviour", 30);
    tcase_add_test(tc, test_engine_tokenizer__bos_is_added_only_when_requested);
    tcase_add_test(
        tc, test_engine_tokenizer__special_token_text_is_matched_only_when_parsing_special_tokens);
    tcase_add_test(tc, test_engine_tokenizer__end_of_generation_tokens_are_recognised);
    tcase_add_test(tc,
                   test_engine_tokenizer__bytes_that_are_not_utf_8_survive_byte_level_tokenization);
    tcase_add_test(
        tc,
        test_engine_tokenizer__each_reference_vocabulary_s_chat_tokens_become_single_ids_when_parsing_special_tokens);
    tcase_add_test(tc, test_engine_tokenizer__a_short_id_buffer_reports_the_size_needed);
    tcase_add_test(tc, test_engine_tokenizer__the_qwen2_vocabulary_loads_in_under_one_second);
    return rbt_run_shared_data(s, RBT_TOKENIZER_DATA, 15);
}
