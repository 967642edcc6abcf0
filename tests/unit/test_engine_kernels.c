/*
 * test_engine_kernels.c - spec/engine_kernels.feature, the kernel scenarios: instruction-set
 * selection, activation formats, every SIMD kernel against its scalar twin, the dot product
 * against a float reference, and the output placement of eng_matmul.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_types.h"
#include "kernels.h"
#include "kernels_isa.h"
#include "quant.h"
#include "rb_test.h"

/* SIMD vs scalar twin, relative to sum |w_i * x_i| (the size of the terms, so cancellation
 * in the sum cannot inflate the error). Both compute identical integers per block and differ
 * only in the order of float additions: measured at most 5e-8 for the block types and 1.8e-7
 * for the float types; the bounds are about 10 times that. */
#define TWIN_TOL_INT 5e-7
#define TWIN_TOL_FLOAT 2e-6
/* eng_vec_dot vs the float dot product of the dequantized weights, relative to |w| * |x|.
 * With float activations only rounding differs; with 8-bit activations the activation
 * rounding (0.5-0.7 percent RMS) leaves an error of about 0.006 / sqrt(n) = 1.3e-4 of
 * |w| * |x| at n = 2048 (measured at most 3.2e-4 over the types); the bound is 6 times
 * that, while a wrong kernel is off by about the size of the dot itself (~0.02). */
#define DOT_TOL_F32ACT 1e-5
#define DOT_TOL_8BITACT 0.002
#define SENTINEL -12345.0f

static const eng_type k_types[] = {ENG_TYPE_F32,  ENG_TYPE_F16,    ENG_TYPE_BF16,  ENG_TYPE_Q8_0,
                                   ENG_TYPE_Q4_0, ENG_TYPE_Q4_1,   ENG_TYPE_Q5_0,  ENG_TYPE_Q5_1,
                                   ENG_TYPE_Q4_K, ENG_TYPE_Q5_K,   ENG_TYPE_Q6_K,  ENG_TYPE_Q2_K,
                                   ENG_TYPE_Q3_K, ENG_TYPE_IQ4_NL, ENG_TYPE_IQ4_XS};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

typedef struct rng {
    uint64_t s;
} rng;

static uint32_t rng_u32(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 32);
}

static double rng_unit(rng *r) /* (0, 1) */
{
    return ((double)rng_u32(r) + 0.5) / 4294967296.0;
}

static float rng_normal(rng *r)
{
    double u = rng_unit(r), v = rng_unit(r);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static int is_float_type(eng_type t)
{
    return t == ENG_TYPE_F32 || t == ENG_TYPE_F16 || t == ENG_TYPE_BF16;
}

/* A random half-precision scale in [lo, lo + span), with a random sign when sign is set. */
static uint16_t rand_scale(rng *r, float lo, float span, int sign)
{
    float v = lo + span * (float)rng_unit(r);
    return eng_f32_to_fp16(sign && (rng_u32(r) & 1) ? -v : v);
}

/* Fills rows of n weights of type t: normal values for the float types; random codes and
 * sane random scales for the block types (every bit pattern of the codes occurs). */
static void fill_weights(eng_type t, uint8_t *w, int64_t n, int rows, rng *r)
{
    const size_t bytes = eng_type_row_bytes(t, n) * (size_t)rows;
    if (is_float_type(t)) {
        for (size_t i = 0; i < (size_t)n * (size_t)rows; i++) {
            float v = rng_normal(r);
            uint16_t h = t == ENG_TYPE_F16 ? eng_f32_to_fp16(v) : eng_f32_to_bf16(v);
            if (t == ENG_TYPE_F32)
                memcpy(w + 4 * i, &v, 4);
            else
                memcpy(w + 2 * i, &h, 2);
        }
    } else {
        const size_t bb = eng_type_block_bytes(t);
        for (size_t i = 0; i < bytes; i++)
            w[i] = (uint8_t)rng_u32(r);
        for (size_t o = 0; o < bytes; o += bb) {
            uint16_t d = rand_scale(r, 0.002f, 0.02f, 1), m = rand_scale(r, 0.0f, 0.01f, 1);
            if (t == ENG_TYPE_Q6_K) {
                memcpy(w + o + 208, &d, 2);
            } else if (t == ENG_TYPE_Q3_K) {
                memcpy(w + o + offsetof(eng_block_q3_K, d), &d, 2);
            } else if (t == ENG_TYPE_Q2_K) {
                memcpy(w + o + offsetof(eng_block_q2_K, d), &d, 2);
                memcpy(w + o + offsetof(eng_block_q2_K, dmin), &m, 2);
            } else {
                memcpy(w + o, &d, 2);
                if (t == ENG_TYPE_Q4_1 || t == ENG_TYPE_Q5_1 || t == ENG_TYPE_Q4_K ||
                    t == ENG_TYPE_Q5_K)
                    memcpy(w + o + 2, &m, 2);
            }
        }
    }
}

/* nt activation rows of n normal values. */
static void fill_acts(float *xf, int64_t n, int nt, rng *r)
{
    for (int64_t i = 0; i < n * nt; i++)
        xf[i] = rng_normal(r);
}

/* The instruction sets a test cannot reach on this CPU, named by what is missing. The tests
 * compare every set up to eng_isa_detect(); where the CPU stops short they print one SKIP
 * line for the part left out instead of passing as if it had been checked. needs_vnni: the
 * test covers the integer AVX-512 kernels, which also need AVX-512 VNNI. */
static void note_untested_isas(const char *test, int needs_vnni)
{
    const eng_isa best = eng_isa_detect();
    if (best == ENG_ISA_SCALAR)
        printf("SKIP part of %s: the CPU lacks AVX2/FMA/F16C, so neither the AVX2 nor the "
               "AVX-512 kernels are tested here\n",
               rbt_test_name(test));
    else if (best == ENG_ISA_AVX2)
        printf("SKIP part of %s: the CPU lacks AVX-512 F/BW/VL, so the AVX-512 kernels are not "
               "tested here\n",
               rbt_test_name(test));
    else if (needs_vnni && !eng_isa_has_vnni())
        printf("SKIP part of %s: the CPU lacks AVX-512 VNNI (avx512vnni), so the integer "
               "AVX-512 kernels are not tested here\n",
               rbt_test_name(test));
    else if (needs_vnni && !eng_amx_available())
        printf("SKIP part of %s: the CPU lacks AMX-TILE/AMX-INT8 (or the kernel does not grant "
               "it), so the AMX batch kernels are not tested here\n",
               rbt_test_name(test));
}

/* The kernel variants a test compares: the instruction sets from ENG_ISA_SCALAR to best, then
 * AVX-512 with the AMX batch kernels when this machine has them (eng_amx_available). */
static int n_variants(void)
{
    return (int)eng_isa_detect() + 1 + (eng_isa_detect() == ENG_ISA_AVX512 && eng_amx_available());
}

/* Makes variant v active; returns its name. */
static const char *use_variant(int v)
{
    if (v > (int)ENG_ISA_AVX512) {
        eng_isa_force(ENG_ISA_AVX512);
        ck_assert(eng_amx_force(1));
        return "avx512+amx";
    }
    eng_isa_force((eng_isa)v);
    eng_amx_force(0);
    return eng_isa_name((eng_isa)v);
}

/* Back to what the engine picks by itself. */
static void default_variant(void)
{
    eng_isa_force(eng_isa_detect());
    eng_amx_force(1);
}

/* 1 if the CPU has what the AVX-512 activation quantizers need (AVX-512 VNNI, detected as the
 * engine does: eng_isa_has_vnni); else prints a SKIP line naming what is missing. */
static int have_vnni(const char *test)
{
    if (eng_isa_has_vnni())
        return 1;
    printf("SKIP %s: the CPU lacks %s, which the AVX-512 activation quantizers need\n",
           rbt_test_name(test),
           eng_isa_detect() < ENG_ISA_AVX512
               ? "AVX-512 F/BW/VL and AVX-512 VNNI (avx512f, avx512bw, avx512vl, avx512vnni)"
               : "AVX-512 VNNI (avx512vnni)");
    return 0;
}

/* Prepares the nt rows of xf for weights of type t on the active instruction set, in two
 * parts as two threads would. */
static void prepare_acts(eng_type t, const float *xf, int64_t n, int nt, uint8_t *xq)
{
    eng_act_prepare(t, xf, n, nt, nt / 2, nt, xq);
    eng_act_prepare(t, xf, n, nt, 0, nt / 2, xq);
}

/* Scenario: Forcing an instruction set is clamped to what the CPU has */
START_TEST(test_engine_kernels__forcing_an_instruction_set_is_clamped_to_what_the_cpu_has)
{
    const eng_isa best = eng_isa_detect();
    ck_assert_int_le(best, ENG_ISA_AVX512);
    ck_assert_int_eq(eng_isa_force(ENG_ISA_AVX512), best);
    ck_assert_int_eq(eng_isa_active(), best);
    ck_assert_int_eq(eng_isa_force(ENG_ISA_SCALAR), ENG_ISA_SCALAR);
    ck_assert_int_eq(eng_isa_active(), ENG_ISA_SCALAR);
    ck_assert_str_eq(eng_isa_name(ENG_ISA_SCALAR), "scalar");
    ck_assert_str_eq(eng_isa_name(ENG_ISA_AVX2), "avx2");
    ck_assert_str_eq(eng_isa_name(ENG_ISA_AVX512), "avx512");
    eng_isa_force(best);
}
END_TEST

/* Scenario Outline: The activation format follows the weight type */
START_TEST(test_engine_kernels__the_activation_format_follows_the_weight_type)
{
    static const struct {
        const char *weights, *acts;
    } rows[] = {
        {"f32", "f32"},   {"f16", "f32"},     {"bf16", "f32"},    {"q8_0", "q8_0"},
        {"q4_0", "q8_0"}, {"q4_1", "q8_0"},   {"q5_0", "q8_0"},   {"q5_1", "q8_0"},
        {"q4_k", "q8_k"}, {"q5_k", "q8_k"},   {"q6_k", "q8_k"},   {"q2_k", "q8_k"},
        {"q3_k", "q8_k"}, {"iq4_nl", "q8_0"}, {"iq4_xs", "q8_k"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ck_assert_str_eq(eng_type_name(eng_vec_dot_type((eng_type)eng_type_parse(rows[i].weights))),
                         rows[i].acts);
}
END_TEST

/* sum |w_i * x_i| for weight row w and activation row x, both as the kernels see them
 * (x quantized to the activation type). */
static double abs_terms(eng_type t, const uint8_t *w, const float *x, int64_t n, float *wf,
                        float *xf)
{
    static uint8_t q[4 * 8192];
    double s = 0.0;
    eng_dequantize_row(t, w, wf, n);
    eng_quantize_row(eng_vec_dot_type(t), x, q, n);
    eng_dequantize_row(eng_vec_dot_type(t), q, xf, n);
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)wf[i] * xf[i]);
    return s;
}

/* Scenario: Every fast kernel matches its scalar twin */
START_TEST(test_engine_kernels__every_fast_kernel_matches_its_scalar_twin)
{
    /* 352: a group of 8 blocks and 3 more; 37 and 1000: float types only */
    static const int64_t ns[] = {256, 512, 768, 4352, 352, 37, 1000};
    /* and 17 and 70: more than one 16-token tile, more than 4 tiles */
    static const int nts[] = {1, 2, 3, 4, 5, 9, 17, 70};
    enum { ROWS = 7, MAX_N = 4352, MAX_NT = 70 };
    const eng_isa best = eng_isa_detect();
    uint8_t *w = malloc((size_t)ROWS * MAX_N * 4), *xq = malloc((size_t)MAX_NT * MAX_N * 4);
    float *xf = malloc(sizeof(float) * MAX_NT * MAX_N), *wf = malloc(sizeof(float) * MAX_N);
    float *tmp = malloc(sizeof(float) * MAX_N);
    float ref[MAX_NT * ROWS], got[MAX_NT * ROWS];
    double terms[MAX_NT * ROWS];
    rng r = {1234};
    int compared = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const eng_type t = k_types[ti];
        const double tol = is_float_type(t) ? TWIN_TOL_FLOAT : TWIN_TOL_INT;
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const int64_t n = ns[ni];
            if (n % eng_type_block_elems(t))
                continue;
            const size_t wr = eng_type_row_bytes(t, n);
            fill_weights(t, w, n, ROWS, &r);
            fill_acts(xf, n, MAX_NT, &r);
            for (int tt = 0; tt < MAX_NT; tt++)
                for (int row = 0; row < ROWS; row++)
                    terms[tt * ROWS + row] = abs_terms(t, w + row * wr, xf + tt * n, n, wf, tmp);
            for (size_t k = 0; k < sizeof nts / sizeof nts[0]; k++) {
                const int nt = nts[k];
                eng_isa_force(ENG_ISA_SCALAR);
                prepare_acts(t, xf, n, nt, xq);
                eng_matmul(t, w, n, xq, nt, ref, ROWS, 0, ROWS);
                for (int isa = ENG_ISA_AVX2; isa < n_variants(); isa++) {
                    const char *variant = use_variant(isa);
                    prepare_acts(t, xf, n, nt, xq);
                    eng_matmul(t, w, n, xq, nt, got, ROWS, 0, ROWS);
                    for (int tt = 0; tt < nt; tt++) {
                        for (int row = 0; row < ROWS; row++) {
                            const double s = terms[tt * ROWS + row];
                            const double diff =
                                fabs((double)got[tt * ROWS + row] - ref[tt * ROWS + row]);
                            ck_assert_msg(diff <= tol * s,
                                          "%s %s n=%ld nt=%d row %d token %d: %.9g vs scalar %.9g",
                                          eng_type_name(t), variant, (long)n, nt, row, tt,
                                          (double)got[tt * ROWS + row],
                                          (double)ref[tt * ROWS + row]);
                            compared++;
                        }
                    }
                }
            }
        }
    }
    default_variant();
    /* on a CPU without AVX2 there is nothing to compare, and nothing to fail */
    ck_assert(best == ENG_ISA_SCALAR || compared > 0);
    note_untested_isas(__func__, 1);
    free(w);
    free(xq);
    free(xf);
    free(wf);
    free(tmp);
}
END_TEST

/* Scenario: Every fast kernel matches its scalar twin (the AVX-512 activation quantizer,
 * which must give eng_quantize_q8_0's bytes exactly: the twins read those bytes) */
START_TEST(test_engine_kernels__every_fast_kernel_matches_its_scalar_twin_quantizer)
{
    enum { NB = 64, N = NB * 32 };
    static const float scales[] = {1.0f, 1e-6f, 1e4f, 1e9f, 1e-30f};
    float x[N];
    eng_block_q8_0 want[NB], got[NB];
    int32_t sums[NB];
    rng r = {77};
    if (!have_vnni(__func__))
        return;
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        for (int i = 0; i < N; i++)
            x[i] = rng_normal(&r) * scales[si];
        /* block 0: zeros; block 1: d = 1 and halves that round away from zero */
        memset(x, 0, 32 * sizeof(float));
        for (int j = 0; j < 32; j++)
            x[32 + j] = j == 0 ? 127.0f : (j % 2 ? 1.0f : -1.0f) * ((float)(j % 7) + 0.5f);
        eng_quantize_q8_0(x, want, N);
        eng_quantize_q8_0_avx512(x, got, sums, N);
        ck_assert_mem_eq(got, want, sizeof want);
        for (int b = 0; b < NB; b++) {
            int32_t sum = 0;
            for (int j = 0; j < 32; j++)
                sum += want[b].qs[j];
            ck_assert_int_eq(sums[b], sum);
        }
    }
}
END_TEST

/* Scenario: Every fast kernel matches its scalar twin (the AVX-512 Q8_K activation
 * quantizer: eng_quantize_q8_K's bytes exactly) */
START_TEST(test_engine_kernels__every_fast_kernel_matches_its_scalar_twin_quantizer_k)
{
    enum { NB = 8, N = NB * 256 };
    static const float scales[] = {1.0f, 1e-6f, 1e4f, 1e-35f};
    float x[N];
    eng_block_q8_K want[NB], got[NB];
    rng r = {78};
    if (!have_vnni(__func__))
        return;
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        for (int i = 0; i < N; i++)
            x[i] = rng_normal(&r) * scales[si];
        /* block 0: zeros; block 1: the largest magnitude twice, negative first; block 2:
         * values that land on halves (ties to even) */
        memset(x, 0, 256 * sizeof(float));
        x[256 + 5] = -3.0f;
        x[256 + 9] = 3.0f;
        for (int j = 0; j < 256; j++)
            x[512 + j] = j == 0 ? -127.0f : (float)(j % 9) + 0.5f;
        eng_quantize_q8_K(x, want, N);
        eng_quantize_q8_K_avx512(x, got, N);
        ck_assert_mem_eq(got, want, sizeof want);
    }
}
END_TEST

/* Scenario: Every fast kernel matches its scalar twin (the element-wise ops of the forward
 * pass: both agree with the libm formulas within OPS_TOL, relative) */
#define OPS_TOL 1e-6
static void check_close(const float *got, const double *want, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= OPS_TOL * (fabs(want[i]) + 1e-30),
                      "%s[%d]: %.9g vs %.9g", what, i, (double)got[i], want[i]);
}

START_TEST(test_engine_kernels__every_fast_kernel_matches_its_scalar_twin_ops)
{
    enum { N = 1000 }; /* not a multiple of 16: the vector tails too */
    const eng_isa best = eng_isa_detect();
    static float x[N], u[N], w[N], got[N];
    static double want[N];
    rng r = {79};
    for (int i = 0; i < N; i++) {
        x[i] = 8.0f * rng_normal(&r);
        u[i] = rng_normal(&r);
        w[i] = 1.0f + 0.1f * rng_normal(&r);
    }
    for (int isa = ENG_ISA_SCALAR; isa <= (int)best; isa++) {
        eng_isa_force((eng_isa)isa);
        /* softmax of 1, 7 and 1000 values */
        for (int n = 1; n <= N; n = n == 1 ? 7 : n == 7 ? N : N + 1) {
            double max = x[0], sum = 0.0;
            for (int i = 0; i < n; i++)
                max = x[i] > max ? x[i] : max;
            for (int i = 0; i < n; i++)
                sum += exp((x[i] - max) * 0.125);
            for (int i = 0; i < n; i++)
                want[i] = exp((x[i] - max) * 0.125) / sum;
            memcpy(got, x, sizeof(float) * (size_t)n);
            eng_softmax(got, n, 0.125f);
            check_close(got, want, n, "softmax");
        }
        for (int i = 0; i < N; i++)
            want[i] = x[i] / (1.0 + exp(-(double)x[i])) * u[i];
        memcpy(got, x, sizeof got);
        eng_swiglu(got, u, N);
        check_close(got, want, N, "swiglu");
        double ss = 0.0;
        for (int i = 0; i < N; i++)
            ss += (double)x[i] * x[i];
        for (int i = 0; i < N; i++)
            want[i] = x[i] / sqrt(ss / N + 1e-5) * w[i];
        eng_rmsnorm(got, x, w, N, 1e-5f);
        check_close(got, want, N, "rmsnorm");
        /* attention scores of 5 queries against keys stored transposed (row stride 150): x
         * holds the keys, u the queries */
        for (int npos = 1; npos <= 130; npos = npos == 1 ? 17 : npos == 17 ? 70 : npos + 60) {
            enum { HD = 6, NQ = 5, LDK = 150 };
            for (int t = 0; t < NQ; t++)
                for (int p = 0; p < npos; p++) {
                    double a = 0.0;
                    for (int i = 0; i < HD; i++)
                        a += (double)u[t * HD + i] * x[i * LDK + p];
                    want[t * npos + p] = a;
                }
            eng_attn_scores(u, NQ, HD, x, LDK, npos, got, (size_t)npos);
            for (int i = 0; i < NQ * npos; i++)
                ck_assert_msg(fabs(got[i] - want[i]) <= 1e-5 * (1.0 + fabs(want[i])),
                              "scores npos=%d [%d]: %.9g vs %.9g", npos, i, (double)got[i],
                              want[i]);
        }
    }
    eng_isa_force(best);
    note_untested_isas(__func__, 0);
}
END_TEST

/* Scenario: The dot product approximates the float dot product */
START_TEST(test_engine_kernels__the_dot_product_approximates_the_float_dot_product)
{
    enum { N = 2048 };
    const eng_isa best = eng_isa_detect();
    uint8_t *w = malloc(N * 4), *xq = malloc(N * 4);
    float *xf = malloc(sizeof(float) * N), *wf = malloc(sizeof(float) * N);
    rng r = {99};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const eng_type t = k_types[ti];
        fill_weights(t, w, N, 1, &r);
        fill_acts(xf, N, 1, &r);
        eng_dequantize_row(t, w, wf, N);
        double ref = 0.0, ww = 0.0, xx = 0.0;
        for (int i = 0; i < N; i++) {
            ref += (double)wf[i] * xf[i];
            ww += (double)wf[i] * wf[i];
            xx += (double)xf[i] * xf[i];
        }
        const double tol =
            (eng_vec_dot_type(t) == ENG_TYPE_F32 ? DOT_TOL_F32ACT : DOT_TOL_8BITACT) *
            sqrt(ww * xx);
        for (int isa = ENG_ISA_SCALAR; isa <= (int)best; isa++) {
            eng_isa_force((eng_isa)isa);
            eng_act_quantize(t, xf, xq, N);
            const float got = eng_vec_dot(t, w, xq, N);
            ck_assert_msg(fabs(got - ref) <= tol, "%s %s: %.7g vs float %.7g (|w||x| = %.4g)",
                          eng_type_name(t), eng_isa_name((eng_isa)isa), (double)got, ref,
                          sqrt(ww * xx));
        }
    }
    eng_isa_force(best);
    note_untested_isas(__func__, 1);
    free(w);
    free(xq);
    free(xf);
    free(wf);
}
END_TEST

/* Scenario: Matrix products write only their rows and columns */
START_TEST(test_engine_kernels__matrix_products_write_only_their_rows_and_columns)
{
    static const eng_type types[] = {ENG_TYPE_F16,  ENG_TYPE_Q4_0,   ENG_TYPE_Q6_K,
                                     ENG_TYPE_Q3_K, ENG_TYPE_IQ4_NL, ENG_TYPE_IQ4_XS};
    /* rows 3..36: two whole groups of 16 rows of the AMX kernels and a part of one */
    enum { ROWS = 40, NT = 5, LDY = 43, N = 512, R0 = 3, R1 = 37 };
    uint8_t *w = malloc(ROWS * N * 4), *xq = malloc(NT * N * 8), *x1 = malloc(N * 4);
    float *xf = malloc(sizeof(float) * NT * N), y[NT * LDY];
    rng r = {5};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const eng_type t = types[ti];
        const size_t wr = eng_type_row_bytes(t, N);
        fill_weights(t, w, N, ROWS, &r);
        fill_acts(xf, N, NT, &r);
        for (int isa = ENG_ISA_SCALAR; isa < n_variants(); isa++) {
            const char *variant = use_variant(isa);
            for (int nt = 1; nt <= NT; nt += NT - 1) { /* the decode path and a tile */
                for (int i = 0; i < NT * LDY; i++)
                    y[i] = SENTINEL;
                prepare_acts(t, xf, N, nt, xq);
                eng_matmul(t, w, N, xq, nt, y, LDY, R0, R1);
                for (int tt = 0; tt < NT; tt++) {
                    for (int c = 0; c < LDY; c++) {
                        const float v = y[tt * LDY + c];
                        if (tt < nt && c >= R0 && c < R1) {
                            eng_act_quantize(t, xf + tt * N, x1, N);
                            const float want = eng_vec_dot(t, w + c * wr, x1, N);
                            ck_assert_msg(fabsf(v - want) <= 1e-4f * (1.0f + fabsf(want)),
                                          "%s %s nt=%d: Y[%d][%d] = %g, want %g", eng_type_name(t),
                                          variant, nt, tt, c, (double)v, (double)want);
                        } else {
                            ck_assert_msg(v == SENTINEL, "%s %s nt=%d: Y[%d][%d] was written",
                                          eng_type_name(t), variant, nt, tt, c);
                        }
                    }
                }
            }
        }
    }
    default_variant();
    note_untested_isas(__func__, 1);
    free(w);
    free(xq);
    free(x1);
    free(xf);
}
END_TEST

/* Scenario: Unsupported weight types produce zeros */
START_TEST(test_engine_kernels__unsupported_weight_types_produce_zeros)
{
    uint8_t w[3 * ENG_IQ2_XXS_BYTES] = {0};
    float x[512] = {1.0f}, y[6];
    for (int i = 0; i < 6; i++)
        y[i] = SENTINEL;
    eng_matmul(ENG_TYPE_IQ2_XXS, w, 256, x, 2, y, 3, 0, 3);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(y[i], 0.0f);
    ck_assert_float_eq(eng_vec_dot(ENG_TYPE_IQ2_XXS, w, x, 256), 0.0f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_kernels");
    TCase *tc = rbt_tcase(s, "dispatch", 10);
    tcase_add_test(tc,
                   test_engine_kernels__forcing_an_instruction_set_is_clamped_to_what_the_cpu_has);
    tcase_add_test(tc, test_engine_kernels__the_activation_format_follows_the_weight_type);
    tcase_add_test(tc, test_engine_kernels__unsupported_weight_types_produce_zeros);
    /* the twin comparison dequantizes every row for every token: seconds under sanitizers */
    tc = rbt_tcase(s, "kernels", 90);
    tcase_add_test(tc, test_engine_kernels__every_fast_kernel_matches_its_scalar_twin);
    tcase_add_test(tc, test_engine_kernels__every_fast_kernel_matches_its_scalar_twin_quantizer);
    tcase_add_test(tc, test_engine_kernels__every_fast_kernel_matches_its_scalar_twin_quantizer_k);
    tcase_add_test(tc, test_engine_kernels__every_fast_kernel_matches_its_scalar_twin_ops);
    tcase_add_test(tc, test_engine_kernels__the_dot_product_approximates_the_float_dot_product);
    tcase_add_test(tc, test_engine_kernels__matrix_products_write_only_their_rows_and_columns);
    return rbt_run(s);
}
