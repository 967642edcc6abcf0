/*
 * Unit tests for spec/engine_kv.feature: the KV cache types against the F32 cache, the KV
 * cache kernels against their scalar twins, the default context and the memory estimate.
 * White-box: kernels.h forces the instruction set and calls the kernels, session.h reads what
 * a session allocated.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "kernels.h"
#include "quant.h"
#include "rb_mem.h"
#include "rb_models.h"
#include "rb_test.h"
#include "rb_util.h"
#include "session.h"

/* Max abs logit difference from the F32 cache at any position, per cache type and model,
 * measured on the reference machine (Zen 4) on every instruction set: F16 cache 0.06-0.11 on
 * the bundled Q8_0 model, whose Q8_0 weights quantize each attention output again, so a
 * rounding of the cache can move a code by one (the Q8_0 cache, quantized on the same
 * 32-element blocks, survives that step unchanged at position 0: 0.09-0.13 over all
 * positions); 0.002 on the F16 model, 0.005 on the GQA fixture; Q8_0 cache 0.045 on the F16
 * model. A cache read at the wrong position or head is off by the size of the logits (1 to
 * 10). */
#define KV_F16_LOGIT_TOL_Q8_MODEL 0.2
#define KV_F16_LOGIT_TOL 0.01
#define KV_Q8_0_LOGIT_TOL 0.25
/* A kernel on another instruction set sums the same products in another order. */
#define KV_TWIN_REL_TOL 1e-4
#define KV_REF_TOL 1e-3

static eng_session *open_kv(eng_model *m, eng_type kv, int n_ctx)
{
    eng_session_params sp = eng_session_params_default();
    eng_session *s = NULL;
    char err[512];
    sp.n_ctx = n_ctx;
    sp.n_threads = 2;
    sp.kv_type = kv;
    ck_assert_msg(eng_session_open(m, &sp, &s, err, sizeof err) == RB_OK, "%s", err);
    return s;
}

static void restore_detected_isa(void)
{
    eng_isa_force(eng_isa_detect());
}

/* Every position's logits of n synthetic tokens with a cache of type kv (malloc'd). */
static float *run_logits(eng_model *m, eng_type kv, int n)
{
    eng_session *s = open_kv(m, kv, 0);
    eng_model_info info;
    int32_t *toks = malloc((size_t)n * sizeof(*toks));
    const float *all;
    float *out;
    size_t got;
    char err[256];

    eng_model_get_info(m, &info);
    for (int i = 0; i < n; i++)
        toks[i] = i == 0 ? 1 : 3 + (int)((i * 131L) % (info.n_vocab - 3));
    eng_session_keep_all_logits(s, 1);
    eng_session_reset(s, NULL, NULL, 0);
    /* a prompt in two passes, then single tokens: the batched and the one-token paths */
    ck_assert_msg(eng_session_prefill(s, toks, (size_t)n / 2, err, sizeof err) == RB_OK, "%s", err);
    for (int i = n / 2; i < n; i++)
        ck_assert_msg(eng_session_prefill(s, toks + i, 1, err, sizeof err) == RB_OK, "%s", err);
    all = eng_session_all_logits(s, &got);
    ck_assert_int_eq(got, n);
    out = malloc((size_t)n * info.n_vocab * sizeof(float));
    memcpy(out, all, (size_t)n * info.n_vocab * sizeof(float));
    eng_session_free(s);
    free(toks);
    return out;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d)
            d = fabs((double)a[i] - b[i]);
    return d;
}

static const char *gemma3_fixture(void)
{
    return rbt_model_fixture("test-gemma3-tiny-f16.gguf"); /* sliding layers, window 5 */
}

static const char *qwen3_fixture(void)
{
    return rbt_model_fixture("test-qwen3-tiny-f16.gguf"); /* 32-dim heads, NEOX rope */
}

/* Scenario: Every cache type stays close to the F32 cache */
START_TEST(test_engine_kv__every_cache_type_stays_close_to_the_f32_cache)
{
    static const struct {
        const char *(*path)(void);
        const char *name;
        int n;
        double tol_f16, tol_q8; /* tol_q8 0: no Q8_0 cache for this head dimension */
    } models[] = {{rbt_model_q8, "bundled q8_0", 160, KV_F16_LOGIT_TOL_Q8_MODEL, KV_Q8_0_LOGIT_TOL},
                  {rbt_model_f16, "bundled f16", 160, KV_F16_LOGIT_TOL, KV_Q8_0_LOGIT_TOL},
                  {rbt_model_gqa, "random GQA", 100, KV_F16_LOGIT_TOL, 0},
                  {gemma3_fixture, "gemma3 fixture", 100, KV_F16_LOGIT_TOL, KV_Q8_0_LOGIT_TOL},
                  {qwen3_fixture, "qwen3 fixture", 100, KV_F16_LOGIT_TOL, KV_Q8_0_LOGIT_TOL}};

    for (int isa = (int)eng_isa_detect(); isa >= (int)ENG_ISA_SCALAR; isa--) {
        if (eng_isa_force((eng_isa)isa) != (eng_isa)isa)
            continue;
        for (size_t k = 0; k < RB_ARRAY_LEN(models); k++) {
            eng_model *m = rbt_open_model(models[k].path());
            eng_model_info info;
            eng_model_get_info(m, &info);
            const size_t nl = (size_t)models[k].n * info.n_vocab;
            float *f32 = run_logits(m, ENG_TYPE_F32, models[k].n);
            float *f16 = run_logits(m, ENG_TYPE_F16, models[k].n);
            double d16 = max_diff(f16, f32, nl), d8 = 0;
            if (models[k].tol_q8 > 0) {
                float *q8 = run_logits(m, ENG_TYPE_Q8_0, models[k].n);
                d8 = max_diff(q8, f32, nl);
                free(q8);
            }
            printf("%s, %s, %d positions: max abs logit difference from the F32 cache: f16 "
                   "%.5f, q8_0 %.5f\n",
                   models[k].name, eng_isa_name((eng_isa)isa), models[k].n, d16, d8);
            fflush(stdout);
            ck_assert_double_lt(d16, models[k].tol_f16);
            ck_assert_double_le(d8, models[k].tol_q8);
            ck_assert_double_gt(d16, 0); /* the cache type was applied */
            free(f32);
            free(f16);
            eng_model_free(m);
        }
    }
    restore_detected_isa();
}
END_TEST

static void greedy_tokens(eng_model *m, eng_type kv, int32_t *out, int n)
{
    eng_session *s = open_kv(m, kv, 0);
    eng_sampler_params sp = eng_sampler_params_default();
    int32_t *ids;
    size_t nids;
    char err[256];
    eng_step st;

    sp.temperature = 0;
    ck_assert_int_eq(eng_model_tokenize(m, "In the beginning", 16, 1, &ids, &nids), RB_OK);
    eng_session_reset(s, &sp, NULL, 0);
    ck_assert_msg(eng_session_prefill(s, ids, nids, err, sizeof err) == RB_OK, "%s", err);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(eng_session_step(s, &st), RB_OK);
        out[i] = st.token;
        if (st.done) /* an end of text: the rest stays -1 in both runs */
            break;
    }
    free(ids);
    eng_session_free(s);
}

/* Scenario: Greedy generation with the F16 cache equals the F32 cache */
START_TEST(test_engine_kv__greedy_generation_with_the_f16_cache_equals_the_f32_cache)
{
    eng_model *m = rbt_open_model(rbt_model_q8());
    int32_t a[96], b[96];

    memset(a, 0xff, sizeof a);
    memset(b, 0xff, sizeof b);
    greedy_tokens(m, ENG_TYPE_F32, a, 96);
    greedy_tokens(m, ENG_TYPE_F16, b, 96);
    for (int i = 0; i < 96; i++)
        ck_assert_msg(a[i] == b[i], "token %d: f32 cache %d, f16 cache %d", i, a[i], b[i]);
    ck_assert_int_ge(a[95], 0); /* 96 tokens were generated, not an early end */
    eng_model_free(m);
}
END_TEST

/* Scenario: A Q8_0 cache needs a head dimension that is a multiple of 32 */
START_TEST(test_engine_kv__a_q8_0_cache_needs_a_head_dimension_that_is_a_multiple_of_32)
{
    eng_model *m = rbt_open_model(rbt_model_gqa());
    eng_session_params sp = eng_session_params_default();
    eng_session *s = NULL;
    rb_mem_estimate e;
    char err[512] = "";

    sp.kv_type = ENG_TYPE_Q8_0;
    ck_assert_int_eq(eng_session_open(m, &sp, &s, err, sizeof err), RB_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "q8_0") && strstr(err, "32") && strstr(err, "is 16"), "%s", err);
    ck_assert_int_eq(eng_model_estimate_memory(m, &sp, 1, &e, err, sizeof err), RB_EINVAL);
    sp.kv_type = ENG_TYPE_Q4_0;
    ck_assert_int_eq(eng_session_open(m, &sp, &s, err, sizeof err), RB_EINVAL);
    ck_assert_msg(strstr(err, "q4_0") != NULL, "%s", err);
    eng_model_free(m);
}
END_TEST

static float frand(unsigned *st)
{
    *st = *st * 1103515245u + 12345u;
    return (float)((*st >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* Scenario: The KV cache kernels agree with their scalar twins */
START_TEST(test_engine_kv__the_kv_cache_kernels_agree_with_their_scalar_twins)
{
    enum { HD = 64, NQ = 5, LDK = 208, MAXP = 200 };
    static const int npos[] = {1, 7, 16, 17, 63, 64, 65, 130, 200};
    float q[NQ * HD], w[NQ * MAXP], vf[MAXP * HD];
    uint16_t kt[HD * LDK];
    eng_block_q8_0 vq[MAXP * HD / ENG_QK];
    float want[NQ * MAXP], got[NQ * MAXP], ref[NQ * MAXP];
    unsigned st = 7;

    for (int i = 0; i < NQ * HD; i++)
        q[i] = frand(&st);
    for (int i = 0; i < HD * LDK; i++)
        kt[i] = eng_f32_to_fp16(frand(&st));
    for (int i = 0; i < NQ * MAXP; i++)
        w[i] = 0.5f + 0.5f * frand(&st);
    for (int i = 0; i < MAXP * HD; i++)
        vf[i] = 3.0f * frand(&st);
    eng_quantize_q8_0(vf, vq, MAXP * HD);

    for (size_t c = 0; c < RB_ARRAY_LEN(npos); c++) {
        const int n = npos[c];
        /* float64 references over the stored (converted) values */
        for (int t = 0; t < NQ; t++)
            for (int p = 0; p < n; p++) {
                double acc = 0;
                for (int i = 0; i < HD; i++)
                    acc += (double)q[t * HD + i] * eng_fp16_to_f32(kt[i * LDK + p]);
                ref[t * MAXP + p] = (float)acc;
            }
        for (int isa = ENG_ISA_SCALAR; isa <= (int)eng_isa_detect(); isa++) {
            if (eng_isa_force((eng_isa)isa) != (eng_isa)isa)
                continue;
            memset(got, 0, sizeof got);
            eng_attn_scores_f16(q, NQ, HD, kt, LDK, n, got, MAXP);
            if (isa == ENG_ISA_SCALAR)
                memcpy(want, got, sizeof got);
            for (int t = 0; t < NQ; t++)
                for (int p = 0; p < n; p++) {
                    const float a = got[t * MAXP + p], b = want[t * MAXP + p];
                    ck_assert_msg(fabsf(a - b) <= KV_TWIN_REL_TOL * (1 + fabsf(b)),
                                  "scores %s npos %d [%d][%d]: %g vs scalar %g",
                                  eng_isa_name((eng_isa)isa), n, t, p, a, b);
                    ck_assert_msg(fabsf(a - ref[t * MAXP + p]) <= KV_REF_TOL,
                                  "scores %s npos %d: %g vs reference %g",
                                  eng_isa_name((eng_isa)isa), n, a, ref[t * MAXP + p]);
                }
            if (n < MAXP) /* nothing past npos */
                ck_assert_float_eq(got[(NQ - 1) * MAXP + n], 0);
        }
        /* values: out[t][i] = sum_p w[t][p] v_p[i] */
        for (int t = 0; t < NQ; t++)
            for (int i = 0; i < HD; i++) {
                double acc = 0;
                for (int p = 0; p < n; p++) {
                    const eng_block_q8_0 *b = &vq[(p * HD + i) / ENG_QK];
                    acc += (double)w[t * MAXP + p] * eng_fp16_to_f32(b->d) * b->qs[i % ENG_QK];
                }
                ref[t * HD + i] = (float)acc;
            }
        for (int isa = ENG_ISA_SCALAR; isa <= (int)eng_isa_detect(); isa++) {
            if (eng_isa_force((eng_isa)isa) != (eng_isa)isa)
                continue;
            for (int i = 0; i < NQ * HD; i++)
                got[i] = 1e9f; /* the kernel overwrites, it does not accumulate */
            eng_attn_values_q8_0(w, NQ, MAXP, n, vq, HD, got, HD);
            if (isa == ENG_ISA_SCALAR)
                memcpy(want, got, NQ * HD * sizeof(float));
            for (int i = 0; i < NQ * HD; i++) {
                ck_assert_msg(fabsf(got[i] - want[i]) <= KV_TWIN_REL_TOL * (1 + fabsf(want[i])),
                              "values %s npos %d [%d]: %g vs scalar %g", eng_isa_name((eng_isa)isa),
                              n, i, got[i], want[i]);
                ck_assert_msg(fabsf(got[i] - ref[i]) <= KV_REF_TOL * (1 + fabsf(ref[i])),
                              "values %s npos %d [%d]: %g vs reference %g",
                              eng_isa_name((eng_isa)isa), n, i, got[i], ref[i]);
            }
        }
    }
    restore_detected_isa();
}
END_TEST

/* Scenario: The default context is 4096 tokens capped at the training context */
START_TEST(test_engine_kv__the_default_context_is_4096_tokens_capped_at_the_training_context)
{
    eng_model *m = rbt_open_model(rbt_model_q8());
    eng_session *s;

    ck_assert_int_eq(eng_session_params_default().n_ctx, 4096);
    ck_assert_int_eq(eng_session_params_default().kv_type, ENG_TYPE_F16);
    ck_assert_int_eq(rb_mem_ctx(-1, 131072), 4096);
    ck_assert_int_eq(rb_mem_ctx(0, 131072), 131072);
    ck_assert_int_eq(rb_mem_ctx(8192, 131072), 8192);
    ck_assert_int_eq(rb_mem_ctx(200000, 131072), 131072);
    ck_assert_int_eq(rb_mem_ctx(-1, 2048), 2048);
    ck_assert_int_eq(eng_model_ctx(m, 4096), 512);
    ck_assert_int_eq(eng_model_ctx(m, 0), 512);
    ck_assert_int_eq(eng_model_ctx(m, 100), 100);
    s = open_kv(m, ENG_TYPE_F16, eng_session_params_default().n_ctx);
    ck_assert_int_eq(eng_session_n_ctx(s), 512);
    eng_session_free(s);
    s = open_kv(m, ENG_TYPE_F16, 100);
    ck_assert_int_eq(eng_session_n_ctx(s), 100);
    eng_session_free(s);
    eng_model_free(m);
}
END_TEST

/* Scenario: The memory estimate counts the weights, the KV cache and the scratch */
START_TEST(test_engine_kv__the_memory_estimate_counts_the_weights_the_kv_cache_and_the_scratch)
{
    eng_model *m = rbt_open_model(rbt_model_q8());
    eng_session_params sp = eng_session_params_default();
    rb_mem_estimate e;
    char err[256];

    /* 6 layers, 4 KV heads of 32, 256 dim, 688 FFN, 32 rotated dims, 4096 tokens, 8 heads */
    sp.n_ctx = 512;
    sp.n_threads = 2;
    ck_assert_int_eq(eng_model_estimate_memory(m, &sp, 2, &e, err, sizeof err), RB_OK);
    ck_assert_uint_eq(e.weights, 6837056);                /* the file */
    ck_assert_uint_eq(e.kv, 2ull * 512 * 6 * 4 * 64 * 2); /* 3145728 */
    /* once, shared by the batch's slots: 64 x (3 x 256 + 256 + 2 x 128 + 2 x 688) x 4
     * activations, 3 x 64 x 688 x 4 prepared inputs, 512 x 32 x 4 RoPE, 2 x 64 x 688 x 4
     * sgemm, 4 x 2 x 2 x 512 x 4 scores, 64 x 16 row bookkeeping = 1659904; per slot 4096 x 20
     * logits and sampler and 512 x 4 cached tokens = 83968, twice; 2 x 4096 x 4 batched logits;
     * 4096 x 64 of tokenizer */
    ck_assert_uint_eq(e.scratch, 1659904ull + 2 * 83968 + 2 * 4096 * 4 + 4096 * 64);
    ck_assert_uint_eq(e.scratch, 2122752);
    ck_assert_uint_eq(e.process, RB_MEM_PROCESS_BYTES);
    ck_assert_uint_eq(e.total, 6837056ull + 3145728 + 2122752 + 50331648);

    /* the KV part is what a session allocates, per type */
    static const struct {
        eng_type t;
        uint64_t bytes; /* one slot of 512 tokens */
    } kv[] = {{ENG_TYPE_F16, 1572864}, {ENG_TYPE_F32, 3145728}, {ENG_TYPE_Q8_0, 835584}};
    for (size_t i = 0; i < RB_ARRAY_LEN(kv); i++) {
        eng_session *s = open_kv(m, kv[i].t, 512);
        sp.kv_type = kv[i].t;
        ck_assert_int_eq(eng_model_estimate_memory(m, &sp, 1, &e, err, sizeof err), RB_OK);
        ck_assert_uint_eq(e.kv, kv[i].bytes);
        ck_assert_uint_eq(eng_session_kv_bytes(s), kv[i].bytes);
        eng_session_free(s);
    }
    eng_model_free(m);

    /* Llama-3.1-8B: 32 layers, 8 KV heads of 128, trained on 131072 tokens */
    {
        rb_mem_shape sh = {.weight_bytes = 4920734176ull,
                           .n_vocab = 128256,
                           .n_ctx_train = 131072,
                           .n_embd = 4096,
                           .n_layer = 32,
                           .n_head = 32,
                           .n_head_kv = 8,
                           .n_ff = 14336,
                           .n_rot = 128};
        rb_mem_run run = rb_mem_run_default();
        run.n_ctx = rb_mem_ctx(-1, sh.n_ctx_train);
        ck_assert_int_eq(rb_kv_type_parse("F16", &run.kv_block_elems, &run.kv_block_bytes), RB_OK);
        rb_mem_estimate_compute(&sh, &run, &e);
        ck_assert_uint_eq(e.kv, 512ull << 20);
        run.n_ctx = rb_mem_ctx(0, sh.n_ctx_train);
        ck_assert_int_eq(rb_kv_type_parse("f32", &run.kv_block_elems, &run.kv_block_bytes), RB_OK);
        rb_mem_estimate_compute(&sh, &run, &e);
        ck_assert_uint_eq(e.kv, 32ull << 30);
        /* key_length and value_length count when they differ from n_embd / n_head */
        sh.key_length = 192;
        sh.value_length = 128;
        rb_mem_estimate_compute(&sh, &run, &e);
        ck_assert_uint_eq(e.kv, 131072ull * 32 * 8 * (192 + 128) * 4);
        ck_assert_int_eq(rb_kv_type_parse("q4_0", &run.kv_block_elems, &run.kv_block_bytes),
                         RB_EINVAL);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_kv");
    TCase *tc = rbt_tcase(s, "kv", 120);
    tcase_add_checked_fixture(tc, NULL, restore_detected_isa);
    tcase_add_test(tc, test_engine_kv__every_cache_type_stays_close_to_the_f32_cache);
    tcase_add_test(tc, test_engine_kv__greedy_generation_with_the_f16_cache_equals_the_f32_cache);
    tcase_add_test(tc,
                   test_engine_kv__a_q8_0_cache_needs_a_head_dimension_that_is_a_multiple_of_32);
    tcase_add_test(tc, test_engine_kv__the_kv_cache_kernels_agree_with_their_scalar_twins);
    tcase_add_test(
        tc, test_engine_kv__the_default_context_is_4096_tokens_capped_at_the_training_context);
    tcase_add_test(
        tc, test_engine_kv__the_memory_estimate_counts_the_weights_the_kv_cache_and_the_scratch);
    return rbt_run(s);
}
