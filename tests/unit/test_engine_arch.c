/*
 * Unit tests for the architecture scenarios of spec/engine_forward.feature: each supported
 * architecture's random fixture (models/test-<arch>-tiny-f16.gguf, written by rbee-gguf random
 * --like <arch>-tiny) against the float64 numpy reference (tools/reference/reference_arch.py)
 * in F16 and quantized, and the loader's refusals.
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

/* Max abs logit error against the float64 reference (run on the F16 values), per type of the
 * matrices. F16: the file's exact values in fp32 arithmetic, measured 1e-6 on every fixture
 * (logits spread over about 4 units). Q8_0 and Q4_0, made from the F16 file by the project's
 * quantizer: the weight rounding, measured up to 0.11 and 0.64 (printed by each test). The
 * fixtures' 64-wide rows are too narrow for Q4_K's 256-blocks (q4_k_m falls back to Q8_0 on
 * them, as llama.cpp does), so each architecture has a 256-wide Q4_K_M fixture too, judged
 * against the reference run on its own Q4_K/Q6_K weights: TOL_Q4_K_M, measured 0.040-0.074
 * (the activations' 8-bit quantization in the K-quant dot products). F16 also
 * agrees on top-1 at every position and on every greedy token; the quantized types agree where
 * the reference is decisive (decisive_agree: the fixtures' smallest greedy gaps are 1e-3). */
#define TOL_F16 1e-3
#define TOL_Q8_0 0.25
#define TOL_Q4_0 1.5
#define TOL_Q4_K_M 0.1

static eng_session *open_session(eng_model *m)
{
    eng_session_params sp = eng_session_params_default();
    eng_session *s = NULL;
    char err[512];
    sp.n_threads = 2;
    /* the forward pass against the float64 reference: an F32 cache, so the tolerances judge
     * the pass alone (test_engine_kv.c holds the cache types to the F32 cache) */
    sp.kv_type = ENG_TYPE_F32;
    ck_assert_msg(eng_session_open(m, &sp, &s, err, sizeof err) == RB_OK, "%s", err);
    return s;
}

/* Max abs error over every position's logits; top-1 agreements into *agree, and per position
 * into agree_at (ref->ntokens entries) unless it is NULL. */
static double compare_logits(eng_model *m, const rbt_reference *ref, int *agree, int *agree_at)
{
    eng_session *s = open_session(m);
    const float *all;
    size_t n;
    char err[256];
    double maxerr = 0;

    eng_session_keep_all_logits(s, 1);
    eng_session_reset(s, NULL, NULL, 0);
    ck_assert_msg(eng_session_prefill(s, ref->tokens, ref->ntokens, err, sizeof err) == RB_OK, "%s",
                  err);
    all = eng_session_all_logits(s, &n);
    ck_assert_int_eq(n, ref->ntokens);
    *agree = 0;
    for (size_t p = 0; p < n; p++) {
        const float *a = all + p * (size_t)ref->n_vocab;
        const float *b = ref->logits + p * (size_t)ref->n_vocab;
        for (int v = 0; v < ref->n_vocab; v++)
            if (fabs((double)a[v] - b[v]) > maxerr)
                maxerr = fabs((double)a[v] - b[v]);
        if (agree_at)
            agree_at[p] = rbt_argmax(a, ref->n_vocab) == rbt_argmax(b, ref->n_vocab);
        *agree += rbt_argmax(a, ref->n_vocab) == rbt_argmax(b, ref->n_vocab);
    }
    eng_session_free(s);
    return maxerr;
}

/* The best logit of row minus the second best. */
static double top_gap(const float *row, int n)
{
    double a = -INFINITY, b = -INFINITY;

    for (int v = 0; v < n; v++)
        if (row[v] > a) {
            b = a;
            a = row[v];
        } else if (row[v] > b) {
            b = row[v];
        }
    return a - b;
}

/* With a max abs error e, a position where the reference's best two logits are more than 2e
 * apart must have the same top-1 (agree_at); the greedy path (greedy steps followed) may leave
 * the reference's only at a step where the reference's own gap is below 2 tol. */
static void decisive_agree(const char *file, const rbt_reference *ref, double e,
                           const int *agree_at, size_t greedy, double tol)
{
    for (size_t p = 0; p < ref->ntokens; p++) {
        const float *row = ref->logits + p * (size_t)ref->n_vocab;
        ck_assert_msg(top_gap(row, ref->n_vocab) <= 2 * e || agree_at[p],
                      "%s: top-1 differs at position %zu, reference gap %.4f", file, p,
                      top_gap(row, ref->n_vocab));
    }
    ck_assert_msg(ref->greedy_gaps != NULL, "%s: its reference has no greedy_gaps", file);
    ck_assert_msg(greedy == ref->ngreedy || ref->greedy_gaps[greedy] < 2 * tol,
                  "%s: greedy left the reference at step %zu, where its gap is %.4f", file, greedy,
                  greedy < ref->ngreedy ? ref->greedy_gaps[greedy] : 0.0f);
}

/* Greedy continuation of the reference's tokens: how many leading tokens equal the
 * reference's (prefilled at once, then one token per step). */
static size_t greedy_agree(eng_model *m, const rbt_reference *ref)
{
    eng_session *s = open_session(m);
    eng_sampler_params sp = eng_sampler_params_default();
    char err[256];
    size_t i;

    sp.temperature = 0;
    eng_session_reset(s, &sp, NULL, 0);
    ck_assert_int_eq(eng_session_prefill(s, ref->tokens, ref->ntokens, err, sizeof err), RB_OK);
    for (i = 0; i < ref->ngreedy; i++) {
        eng_step st;
        ck_assert_int_eq(eng_session_step(s, &st), RB_OK);
        if (st.token != ref->greedy[i]) {
            printf("  greedy token %zu: engine %d, reference %d\n", i, st.token, ref->greedy[i]);
            break;
        }
    }
    eng_session_free(s);
    return i;
}

/* The fixture of arch in F16, Q8_0 and Q4_0 against its reference: logits within the type's
 * tolerance; in F16 top-1 at every position and the greedy continuation identical. */
static void check_fixture(const char *fixture, const char *arch)
{
    const char *types[] = {"f16", "q8_0", "q4_0"};
    const double tol[] = {TOL_F16, TOL_Q8_0, TOL_Q4_0};
    char file[128], f16[4096], dir[4096], path[4200], err[512];
    rbt_reference ref;
    eng_model_info info;
    int *agree_at;

    snprintf(file, sizeof file, "test-%s-tiny-f16.gguf", fixture);
    ck_assert_msg(rbt_model_fixture(file) != NULL, "models/%s missing", file);
    snprintf(f16, sizeof f16, "%s", rbt_model_fixture(file));
    ck_assert_msg(rbt_reference_load(f16, &ref) == 0, "no reference JSON for %s", file);
    ck_assert_int_gt(ref.ngreedy, 0);
    agree_at = calloc(ref.ntokens, sizeof(int));
    rbt_tmpdir(dir);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        eng_model *m;
        int agree;
        double e;
        size_t g;
        if (t == 0) {
            snprintf(path, sizeof path, "%s", f16);
        } else {
            snprintf(path, sizeof path, "%s/%s-%s.gguf", dir, fixture, types[t]);
            ck_assert_msg(eng_quantize_file(f16, path, types[t], 2, err, sizeof err) == RB_OK, "%s",
                          err);
        }
        m = rbt_open_model(path);
        eng_model_get_info(m, &info);
        ck_assert_str_eq(info.arch, arch);
        e = compare_logits(m, &ref, &agree, agree_at);
        g = greedy_agree(m, &ref);
        printf("%s %s vs float64 reference: max abs logit error %.6f (tolerance %g), top-1 "
               "%d/%zu, greedy %zu/%zu\n",
               fixture, types[t], e, tol[t], agree, ref.ntokens, g, ref.ngreedy);
        ck_assert_double_lt(e, tol[t]);
        if (t == 0) {
            ck_assert_int_eq(agree, (int)ref.ntokens);
            ck_assert_int_eq(g, ref.ngreedy);
        } else {
            decisive_agree(file, &ref, e, agree_at, g, tol[t]);
        }
        eng_model_free(m);
    }
    free(agree_at);
    rbt_reference_release(&ref);
    rbt_rmtree(dir);
}

/* Scenario: Every architecture in Q4_K_M matches the reference of its own weights */
START_TEST(
    test_engine_forward__every_architecture_in_q4_k_m_matches_the_reference_of_its_own_weights)
{
    const char *archs[] = {"llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"};

    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        char file[128], path[4096], err[512];
        rbt_reference ref;
        eng_model_info info;
        eng_gguf *g = NULL;
        eng_model *m;
        int agree, k_quants = 0, *agree_at;
        double e;
        size_t greedy;

        snprintf(file, sizeof file, "test-%s-wide-q4_k_m.gguf", archs[a]);
        ck_assert_msg(rbt_model_fixture(file) != NULL, "models/%s missing", file);
        snprintf(path, sizeof path, "%s", rbt_model_fixture(file));
        ck_assert_msg(rbt_reference_load(path, &ref) == 0, "no reference JSON for %s", file);
        /* every matrix is a K-quant: no row fell back to Q8_0 */
        ck_assert_msg(eng_gguf_open(path, &g, err, sizeof err) == RB_OK, "%s", err);
        for (int64_t t = 0; t < eng_gguf_n_tensors(g); t++) {
            const eng_gguf_tensor *ti = eng_gguf_tensor_at(g, t);
            if (ti->ndim < 2)
                continue;
            ck_assert_msg(ti->type == ENG_TYPE_Q4_K || ti->type == ENG_TYPE_Q6_K,
                          "%s: %s is not Q4_K or Q6_K", file, ti->name);
            k_quants++;
        }
        eng_gguf_close(g);
        m = rbt_open_model(path);
        eng_model_get_info(m, &info);
        ck_assert_str_eq(info.arch, archs[a]);
        agree_at = calloc(ref.ntokens, sizeof(int));
        e = compare_logits(m, &ref, &agree, agree_at);
        greedy = greedy_agree(m, &ref);
        printf("%s q4_k_m (%d K-quant matrices) vs float64 reference of the same weights: max abs "
               "logit error %.6f (tolerance %g), top-1 %d/%zu, greedy %zu/%zu\n",
               archs[a], k_quants, e, TOL_Q4_K_M, agree, ref.ntokens, greedy, ref.ngreedy);
        ck_assert_double_lt(e, TOL_Q4_K_M);
        decisive_agree(file, &ref, e, agree_at, greedy, TOL_Q4_K_M);
        free(agree_at);
        eng_model_free(m);
        rbt_reference_release(&ref);
    }
}
END_TEST

static void check_arch(const char *arch)
{
    check_fixture(arch, arch);
}

/* Scenario: A llama model with rope_freqs and a key_length of its own matches its reference */
START_TEST(
    test_engine_forward__a_llama_model_with_rope_freqs_and_a_key_length_of_its_own_matches_its_reference)
{
    check_arch("llama");
}
END_TEST

/* Scenario: A qwen2 model matches its reference */
START_TEST(test_engine_forward__a_qwen2_model_matches_its_reference)
{
    check_arch("qwen2");
}
END_TEST

/* Scenario: A qwen3 model matches its reference */
START_TEST(test_engine_forward__a_qwen3_model_matches_its_reference)
{
    check_arch("qwen3");
}
END_TEST

/* Scenario: A gemma2 model matches its reference */
START_TEST(test_engine_forward__a_gemma2_model_matches_its_reference)
{
    check_arch("gemma2");
}
END_TEST

/* Scenario: A gemma3 model matches its reference */
START_TEST(test_engine_forward__a_gemma3_model_matches_its_reference)
{
    check_arch("gemma3");
}
END_TEST

/* Scenario: A phi3 model matches its reference */
START_TEST(test_engine_forward__a_phi3_model_matches_its_reference)
{
    check_arch("phi3");
}
END_TEST

/* Scenario: A phi3 model with longrope factors matches its reference */
START_TEST(test_engine_forward__a_phi3_model_with_longrope_factors_matches_its_reference)
{
    char plain[4096];
    rbt_reference ref;
    eng_model *m;
    int agree;
    double diff;

    check_fixture("phi3-longrope", "phi3");
    /* the same weights without the factors: the factors are not ignored */
    ck_assert_ptr_nonnull(rbt_model_fixture("test-phi3-tiny-f16.gguf"));
    snprintf(plain, sizeof plain, "%s", rbt_model_fixture("test-phi3-tiny-f16.gguf"));
    ck_assert_int_eq(rbt_reference_load(plain, &ref), 0);
    m = rbt_open_model(rbt_model_fixture("test-phi3-longrope-tiny-f16.gguf"));
    diff = compare_logits(m, &ref, &agree, NULL);
    printf("phi3 with rope factors vs the reference without: max abs logit difference %.3f\n",
           diff);
    ck_assert_double_gt(diff, 0.05);
    eng_model_free(m);
    rbt_reference_release(&ref);
}
END_TEST

/* Copies src to dst with metadata key `key` set to the string `value` (when key is not NULL)
 * and without the tensor `drop` (when not NULL), or with a copy of it named `dup` in addition
 * (when dup is not NULL). */
static void rewrite(const char *src, const char *dst, const char *key, const char *value,
                    const char *drop, const char *dup)
{
    eng_gguf *g = NULL;
    eng_gguf_writer *w = eng_gguf_writer_new();
    char err[512];

    ck_assert_ptr_nonnull(w);
    ck_assert_msg(eng_gguf_open(src, &g, err, sizeof err) == RB_OK, "%s", err);
    ck_assert_int_eq(eng_gguf_writer_copy_kv(w, g), RB_OK);
    if (key)
        ck_assert_int_eq(eng_gguf_writer_set_str(w, key, value), RB_OK);
    for (int64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        const int match = drop && strcmp(t->name, drop) == 0;
        if (!match || dup)
            ck_assert_int_eq(
                eng_gguf_writer_add_tensor(w, t->name, t->type, t->ndim, t->ne, t->data, t->size),
                RB_OK);
        if (match && dup)
            ck_assert_int_eq(
                eng_gguf_writer_add_tensor(w, dup, t->type, t->ndim, t->ne, t->data, t->size),
                RB_OK);
    }
    ck_assert_msg(eng_gguf_writer_write(w, dst, err, sizeof err) == RB_OK, "%s", err);
    eng_gguf_writer_free(w);
    eng_gguf_close(g);
}

static void expect_refused(const char *path, const char *needle1, const char *needle2)
{
    eng_model *m = NULL;
    char err[512] = "";
    ck_assert_int_ne(eng_model_open(path, NULL, &m, err, sizeof err), RB_OK);
    ck_assert_ptr_null(m);
    printf("refused: %s\n", err);
    ck_assert_msg(strstr(err, needle1) != NULL, "'%s' not in: %s", needle1, err);
    ck_assert_msg(!needle2 || strstr(err, needle2) != NULL, "'%s' not in: %s", needle2, err);
}

/* Scenario: What the engine does not understand is refused by name */
START_TEST(test_engine_forward__what_the_engine_does_not_understand_is_refused_by_name)
{
    char src[4096], dir[4096], path[4200];

    ck_assert_ptr_nonnull(rbt_model_fixture("test-qwen2-tiny-f16.gguf"));
    snprintf(src, sizeof src, "%s", rbt_model_fixture("test-qwen2-tiny-f16.gguf"));
    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/x.gguf", dir);
    rewrite(src, path, "general.architecture", "mamba", NULL, NULL);
    expect_refused(path, "'mamba'", eng_supported_archs());
    ck_assert_ptr_nonnull(strstr(eng_supported_archs(), "gemma3"));
    rewrite(src, path, NULL, NULL, "blk.1.attn_k.bias", NULL);
    expect_refused(path, "missing tensor 'blk.1.attn_k.bias'", NULL);
    /* a tensor the architecture has no use for is not silently skipped */
    rewrite(src, path, NULL, NULL, "blk.0.attn_norm.weight", "blk.0.attn_q_norm.weight");
    expect_refused(path, "'blk.0.attn_q_norm.weight' is not understood", "qwen2");
    rewrite(src, path, "qwen2.rope.scaling.type", "yarn", NULL, NULL);
    expect_refused(path, "yarn", "linear");
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_arch");
    TCase *tc = rbt_tcase(s, "arch", 120);
    tcase_add_test(
        tc,
        test_engine_forward__a_llama_model_with_rope_freqs_and_a_key_length_of_its_own_matches_its_reference);
    tcase_add_test(tc, test_engine_forward__a_qwen2_model_matches_its_reference);
    tcase_add_test(tc, test_engine_forward__a_qwen3_model_matches_its_reference);
    tcase_add_test(tc, test_engine_forward__a_gemma2_model_matches_its_reference);
    tcase_add_test(tc, test_engine_forward__a_gemma3_model_matches_its_reference);
    tcase_add_test(tc, test_engine_forward__a_phi3_model_matches_its_reference);
    tcase_add_test(tc,
                   test_engine_forward__a_phi3_model_with_longrope_factors_matches_its_reference);
    tcase_add_test(tc, test_engine_forward__what_the_engine_does_not_understand_is_refused_by_name);
    tcase_add_test(
        tc,
        test_engine_forward__every_architecture_in_q4_k_m_matches_the_reference_of_its_own_weights);
    return rbt_run(s);
}
