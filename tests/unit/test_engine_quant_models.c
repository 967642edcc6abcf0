/*
 * test_engine_quant_models.c - spec/engine_quant_models.feature: whole models quantized to the
 * low-bit types (Q2_K, Q3_K_S, Q3_K_M, IQ4_NL, IQ4_XS) by eng_quantize_file, checked three
 * ways against the F16 originals: the dequantized weights, the logits on the reference prompt
 * (mean KL against the PyTorch reference, which the F16 model matches within 0.02), and the
 * top-1 token at every position; and the per-tensor types of the mixes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_gguf.h"
#include "eng_tools.h"
#include "rb_models.h"
#include "rb_test.h"

/* One row of the scenario's table: the bounds per file type. rmse: relative RMS error of the
 * dequantized matrices of the main type against the F16 ones; kl: mean KL(F16 || quantized)
 * over the 36 positions of the reference prompt and its greedy continuation; agree: the
 * percentage of those positions whose top-1 token is F16's (the greedy choice). Bounds sit
 * about 2x above the measured values (in the feature file). On the random GQA model (rows of
 * 64) the K-quant mixes fall back to Q8_0 everywhere and only IQ4_NL applies; that model is
 * far more sensitive than a trained one (Q4_0 measured KL 0.195, top-1 15/36). */
typedef struct type_bound {
    const char *ftype;
    eng_type main;
    double rmse;
    double kl[2]; /* the bundled model, the random GQA model */
    int agree[2];
} type_bound;

static const type_bound k_rows[] = {
    {"q2_k", ENG_TYPE_Q2_K, 0.31, {0.03, 0.003}, {90, 75}},
    {"q3_k_s", ENG_TYPE_Q3_K, 0.17, {0.015, 0.003}, {90, 75}},
    {"q3_k_m", ENG_TYPE_Q3_K, 0.17, {0.006, 0.003}, {90, 75}},
    {"iq4_nl", ENG_TYPE_IQ4_NL, 0.085, {0.003, 0.25}, {90, 50}},
    {"iq4_xs", ENG_TYPE_IQ4_XS, 0.085, {0.003, 0.003}, {90, 75}},
};
#define N_ROWS (sizeof k_rows / sizeof k_rows[0])

/* The logits of every position of toks (n tokens); the caller frees them. */
static float *all_logits(eng_model *m, const int32_t *toks, size_t n)
{
    eng_session_params sp = eng_session_params_default();
    eng_session *s = NULL;
    const float *all;
    size_t got;
    char err[512];
    eng_model_info info;

    eng_model_get_info(m, &info);
    sp.n_threads = 2;
    ck_assert_msg(eng_session_open(m, &sp, &s, err, sizeof err) == RB_OK, "%s", err);
    eng_session_keep_all_logits(s, 1);
    eng_session_reset(s, NULL, NULL, 0);
    ck_assert_msg(eng_session_prefill(s, toks, n, err, sizeof err) == RB_OK, "%s", err);
    all = eng_session_all_logits(s, &got);
    ck_assert_int_eq(got, n);
    float *copy = malloc(sizeof(float) * n * (size_t)info.n_vocab);
    memcpy(copy, all, sizeof(float) * n * (size_t)info.n_vocab);
    eng_session_free(s);
    return copy;
}

/* Mean KL(ref || got) over n positions of nv logits; top-1 agreements into *agree. */
static double mean_kl(const float *ref, const float *got, size_t n, int nv, int *agree)
{
    double klsum = 0;
    *agree = 0;
    for (size_t p = 0; p < n; p++) {
        const float *a = got + p * (size_t)nv, *b = ref + p * (size_t)nv;
        const double ma = a[rbt_argmax(a, nv)], mb = b[rbt_argmax(b, nv)];
        double za = 0, zb = 0;
        for (int v = 0; v < nv; v++) {
            za += exp(a[v] - ma);
            zb += exp(b[v] - mb);
        }
        for (int v = 0; v < nv; v++) {
            const double pb = exp(b[v] - mb) / zb, pa = exp(a[v] - ma) / za;
            if (pb > 0)
                klsum += pb * (log(pb) - log(pa > 1e-30 ? pa : 1e-30));
        }
        *agree += rbt_argmax(a, nv) == rbt_argmax(b, nv);
    }
    return klsum / (double)n;
}

/* Relative RMS error of every matrix of type t in q against the same tensor in f (both
 * dequantized); the number of such matrices into *count. */
static double weights_rmse(const eng_gguf *f, const eng_gguf *q, eng_type t, int *count)
{
    double err = 0, ref = 0;
    *count = 0;
    for (int64_t i = 0; i < eng_gguf_n_tensors(q); i++) {
        const eng_gguf_tensor *tq = eng_gguf_tensor_at(q, i);
        if (tq->type != t)
            continue;
        const eng_gguf_tensor *tf = eng_gguf_tensor_at(f, eng_gguf_find_tensor(f, tq->name));
        const int64_t cols = tq->ne[0], rows = tq->ne[1];
        float *a = malloc(sizeof(float) * (size_t)cols), *b = malloc(sizeof(float) * (size_t)cols);
        const size_t rq = eng_type_row_bytes(tq->type, cols),
                     rf = eng_type_row_bytes(tf->type, cols);
        for (int64_t r = 0; r < rows; r++) {
            eng_dequantize_row(tq->type, (const uint8_t *)tq->data + r * rq, a, cols);
            eng_dequantize_row(tf->type, (const uint8_t *)tf->data + r * rf, b, cols);
            for (int64_t c = 0; c < cols; c++) {
                err += ((double)a[c] - b[c]) * ((double)a[c] - b[c]);
                ref += (double)b[c] * b[c];
            }
        }
        free(a);
        free(b);
        (*count)++;
    }
    return ref > 0 ? sqrt(err / ref) : 0;
}

/* Quantizes model to every row's type and checks the three bounds (column which of the
 * rows' KL and agreement bounds). The tokens are the reference prompt and its greedy
 * continuation, and the reference logits the F16 model's own. dims256: the model has rows of
 * 256 (else every K-quant matrix falls back to Q8_0 and only IQ4_NL applies). */
static void check_model(const char *model, int which, int dims256)
{
    char dir[4096], path[4200], err[512];
    rbt_reference ref;
    eng_gguf *f = NULL;
    eng_model_info info;

    ck_assert_ptr_nonnull(model);
    ck_assert_int_eq(rbt_reference_load(model, &ref), 0);
    ck_assert_int_eq(eng_gguf_open(model, &f, err, sizeof err), RB_OK);
    const size_t n = ref.ntokens + ref.ngreedy;
    int32_t *toks = malloc(sizeof(int32_t) * n);
    memcpy(toks, ref.tokens, sizeof(int32_t) * ref.ntokens);
    memcpy(toks + ref.ntokens, ref.greedy, sizeof(int32_t) * ref.ngreedy);
    eng_model *m16 = rbt_open_model(model);
    eng_model_get_info(m16, &info);
    float *want = all_logits(m16, toks, n);
    eng_model_free(m16);
    rbt_tmpdir(dir);
    for (size_t i = 0; i < N_ROWS; i++) {
        const type_bound *row = &k_rows[i];
        eng_gguf *q = NULL;
        int agree, count;
        snprintf(path, sizeof path, "%s/model-%s.gguf", dir, row->ftype);
        ck_assert_msg(eng_quantize_file(model, path, row->ftype, 2, err, sizeof err) == RB_OK, "%s",
                      err);
        ck_assert_int_eq(eng_gguf_open(path, &q, err, sizeof err), RB_OK);
        const double rmse = weights_rmse(f, q, row->main, &count);
        eng_model *m = rbt_open_model(path);
        float *got = all_logits(m, toks, n);
        const double kl = mean_kl(want, got, n, info.n_vocab, &agree);
        printf("%s %s: %d %s matrices, weight rmse %.4f; mean KL %.5f; top-1 %d/%zu\n",
               strrchr(model, '/') + 1, row->ftype, count, eng_type_name(row->main), rmse, kl,
               agree, n);
        if (dims256 || row->main == ENG_TYPE_IQ4_NL) {
            ck_assert_msg(count > 0, "%s: no %s matrix", row->ftype, eng_type_name(row->main));
            ck_assert_msg(rmse < row->rmse, "%s: weight rmse %.4f >= %.4f", row->ftype, rmse,
                          row->rmse);
        }
        ck_assert_msg(kl < row->kl[which], "%s: mean KL %.5f >= %.5f", row->ftype, kl,
                      row->kl[which]);
        ck_assert_msg(100 * agree >= row->agree[which] * (int)n, "%s: top-1 %d/%zu", row->ftype,
                      agree, n);
        free(got);
        eng_model_free(m);
        eng_gguf_close(q);
    }
    free(want);
    free(toks);
    eng_gguf_close(f);
    rbt_reference_release(&ref);
    rbt_rmtree(dir);
}

/* Scenario: Low-bit variants of the bundled model stay close to F16 */
START_TEST(test_engine_quant_models__low_bit_variants_of_the_bundled_model_stay_close_to_f16)
{
    check_model(rbt_model_f16(), 0, 1);
}
END_TEST

/* Scenario: Low-bit variants of the random GQA model stay close to F16 */
START_TEST(test_engine_quant_models__low_bit_variants_of_the_random_gqa_model_stay_close_to_f16)
{
    check_model(rbt_model_gqa(), 1, 0);
}
END_TEST

/* The type llama.cpp's rule gives a tensor of the bundled model (6 layers, 8 heads on 4 KV
 * heads, tied head, rows of 256 except ffn_down's 688) in file type ft. */
static eng_type expected_type(const char *ft, const char *name, int ndim, int64_t ne0)
{
    int l = -1;
    const int v = strstr(name, "attn_v.weight") != NULL, o = strstr(name, "attn_output") != NULL;
    eng_type t = strcmp(ft, "q2_k") == 0     ? ENG_TYPE_Q2_K
                 : strcmp(ft, "iq4_xs") == 0 ? ENG_TYPE_IQ4_XS
                 : strcmp(ft, "iq4_nl") == 0 ? ENG_TYPE_IQ4_NL
                                             : ENG_TYPE_Q3_K;
    sscanf(name, "blk.%d.", &l);
    if (ndim == 1)
        return ENG_TYPE_F32;
    if (strcmp(name, "token_embd.weight") == 0) /* the tied head */
        t = ENG_TYPE_Q6_K;
    else if (strcmp(ft, "q3_k_m") == 0 && v)
        t = l < 2 ? ENG_TYPE_Q5_K : ENG_TYPE_Q4_K;
    else if (strcmp(ft, "q3_k_m") == 0 && o)
        t = ENG_TYPE_Q4_K;
    else if (strcmp(ft, "q2_k") == 0 && (v || o)) /* 2 heads per KV head: Q3_K, not Q4_K */
        t = ENG_TYPE_Q3_K;
    if (ne0 % eng_type_block_elems(t) != 0) /* ffn_down's 688: not even whole Q8_0 blocks */
        t = ne0 % 32 == 0 ? ENG_TYPE_Q8_0 : ENG_TYPE_F16;
    return t;
}

/* Scenario: The Q3_K_M, Q3_K_S, Q2_K and IQ4 mixes follow llama.cpp's rules */
START_TEST(test_engine_quant_models__the_q3_k_m_q3_k_s_q2_k_and_iq4_mixes_follow_llama_cpp_s_rules)
{
    static const char *fts[] = {"q3_k_m", "q3_k_s", "q2_k", "iq4_nl", "iq4_xs"};
    char dir[4096], out[4200], err[512];
    rbt_tmpdir(dir);
    for (size_t i = 0; i < sizeof fts / sizeof fts[0]; i++) {
        eng_gguf *g = NULL;
        int checked = 0;
        snprintf(out, sizeof out, "%s/%s.gguf", dir, fts[i]);
        ck_assert_msg(eng_quantize_file(rbt_model_f16(), out, fts[i], 2, err, sizeof err) == RB_OK,
                      "%s", err);
        ck_assert_int_eq(eng_gguf_open(out, &g, err, sizeof err), RB_OK);
        for (int64_t k = 0; k < eng_gguf_n_tensors(g); k++) {
            const eng_gguf_tensor *t = eng_gguf_tensor_at(g, k);
            const eng_type want = expected_type(fts[i], t->name, (int)t->ndim, t->ne[0]);
            ck_assert_msg(t->type == want, "%s: %s is %s, expected %s", fts[i], t->name,
                          eng_type_name(t->type), eng_type_name(want));
            checked++;
        }
        ck_assert_int_gt(checked, 6 * 9);
        eng_gguf_close(g);
    }
    /* a type the quantizer does not write is refused with the list */
    ck_assert_int_eq(eng_quantize_file(rbt_model_f16(), out, "q5_k_m", 2, err, sizeof err),
                     RB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "unknown type 'q5_k_m'"));
    ck_assert_ptr_nonnull(strstr(err, "iq4_xs"));
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_quant_models");
    TCase *tc = rbt_tcase(s, "models", 240);
    tcase_add_test(
        tc, test_engine_quant_models__low_bit_variants_of_the_bundled_model_stay_close_to_f16);
    tcase_add_test(
        tc, test_engine_quant_models__low_bit_variants_of_the_random_gqa_model_stay_close_to_f16);
    tcase_add_test(
        tc,
        test_engine_quant_models__the_q3_k_m_q3_k_s_q2_k_and_iq4_mixes_follow_llama_cpp_s_rules);
    return rbt_run(s);
}
