/*
 * test_engine_quant.c - spec/engine_kernels.feature, the type and quantization scenarios:
 * traits, half-precision conversions, dequantization of hand-built blocks (bytes written
 * from the block definitions, floats checked exactly), the reference quantizers, and
 * quantize -> dequantize error bounds on random and edge rows.
 */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_types.h"
#include "quant.h"
#include "rb_test.h"

/* ---- helpers ------------------------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng;

static double rng_unit(rng *r) /* (0, 1) */
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return ((double)(r->s >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static uint32_t rng_u32(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 32);
}

static float rng_normal(rng *r)
{
    double u = rng_unit(r), v = rng_unit(r);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Quantizes n values to t and back; returns the RMS error over the RMS value (the RMS error
 * when the values are all zero). Writes the dequantized values to y and the bytes to q. */
static double round_trip(eng_type t, const float *x, float *y, uint8_t *q, int64_t n)
{
    double err = 0.0, ref = 0.0;
    ck_assert_uint_eq(eng_quantize_row(t, x, q, n), eng_type_row_bytes(t, n));
    eng_dequantize_row(t, q, y, n);
    for (int64_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(y[i]), "%s: element %ld is not finite", eng_type_name(t), (long)i);
        err += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        ref += (double)x[i] * x[i];
    }
    return ref > 0.0 ? sqrt(err / ref) : sqrt(err / (double)n);
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof v);
}

/* The types eng_quantize_row writes, with the error bounds of the random-rows table. */
typedef struct bound_row {
    eng_type type;
    double bound;
} bound_row;

static const bound_row k_bounds[] = {
    {ENG_TYPE_F16, 0.0005}, {ENG_TYPE_BF16, 0.004},   {ENG_TYPE_Q8_0, 0.008},
    {ENG_TYPE_Q8_K, 0.01},  {ENG_TYPE_Q4_0, 0.10},    {ENG_TYPE_Q4_K, 0.08},
    {ENG_TYPE_Q6_K, 0.02},  {ENG_TYPE_Q5_K, 0.04},    {ENG_TYPE_Q3_K, 0.17},
    {ENG_TYPE_Q2_K, 0.31},  {ENG_TYPE_IQ4_NL, 0.085}, {ENG_TYPE_IQ4_XS, 0.085},
};
#define N_BOUNDS (sizeof k_bounds / sizeof k_bounds[0])
#define RANDOM_N 65536
#define RANDOM_SEED 42

/* A constant row must come back within this fraction: the half-precision scale is rounded
 * to 2^-11 (about 0.05 percent), twice that leaves room for the 6-bit K-quant scales. */
#define CONST_ROW_TOL 0.001

/* ---- scenarios ---------------------------------------------------------------------- */

/* Scenario Outline: Type traits follow the GGUF block sizes */
START_TEST(test_engine_kernels__type_traits_follow_the_gguf_block_sizes)
{
    static const struct {
        const char *name;
        int elements;
        size_t bytes, row;
        int supported;
    } rows[] = {
        {"f32", 1, 4, 16384, 1},     {"f16", 1, 2, 8192, 1},        {"bf16", 1, 2, 8192, 1},
        {"q4_0", 32, 18, 2304, 1},   {"q4_1", 32, 20, 2560, 1},     {"q5_0", 32, 22, 2816, 1},
        {"q5_1", 32, 24, 3072, 1},   {"q8_0", 32, 34, 4352, 1},     {"q8_1", 32, 36, 4608, 0},
        {"q2_k", 256, 84, 1344, 1},  {"q3_k", 256, 110, 1760, 1},   {"q4_k", 256, 144, 2304, 1},
        {"q5_k", 256, 176, 2816, 1}, {"q6_k", 256, 210, 3360, 1},   {"q8_k", 256, 292, 4672, 0},
        {"iq4_nl", 32, 18, 2304, 1}, {"iq4_xs", 256, 136, 2176, 1}, {"iq2_xxs", 256, 66, 1056, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int t = eng_type_parse(rows[i].name);
        ck_assert_msg(t >= 0, "%s does not parse", rows[i].name);
        ck_assert_str_eq(eng_type_name((eng_type)t), rows[i].name);
        ck_assert_int_eq(eng_type_block_elems((eng_type)t), rows[i].elements);
        ck_assert_uint_eq(eng_type_block_bytes((eng_type)t), rows[i].bytes);
        ck_assert_uint_eq(eng_type_row_bytes((eng_type)t, 4096), rows[i].row);
        ck_assert_int_eq(eng_type_supported((eng_type)t), rows[i].supported);
    }
}
END_TEST

/* Scenario: Type names parse in either case */
START_TEST(test_engine_kernels__type_names_parse_in_either_case)
{
    ck_assert_int_eq(eng_type_parse("q4_k"), 12);
    ck_assert_int_eq(eng_type_parse("Q4_K"), 12);
    ck_assert_int_eq(eng_type_parse("q4_k_m"), -1);
    ck_assert_int_eq(eng_type_parse(""), -1);
    ck_assert_int_eq(eng_type_parse(NULL), -1);
    ck_assert_str_eq(eng_type_name((eng_type)99), "unknown");
    ck_assert_str_eq(eng_type_name((eng_type)4), "unknown"); /* a hole in the numbering */
    ck_assert_uint_eq(eng_type_row_bytes(ENG_TYPE_Q4_0, 100), 0);
    ck_assert_uint_eq(eng_type_row_bytes(ENG_TYPE_Q4_0, -32), 0);
    ck_assert_int_eq(eng_type_block_elems((eng_type)99), 0);
    ck_assert_uint_eq(eng_type_block_bytes((eng_type)99), 0);
}
END_TEST

__attribute__((target("f16c"))) static uint16_t hw_f32_to_fp16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

/* Scenario: Half-precision conversion is exact and rounds to nearest even */
START_TEST(test_engine_kernels__half_precision_conversion_is_exact_and_rounds_to_nearest_even)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eng_fp16_to_f32((uint16_t)h);
        if (isnan(f))
            ck_assert(isnan(eng_fp16_to_f32(eng_f32_to_fp16(f))));
        else
            ck_assert_uint_eq(eng_f32_to_fp16(f), h);
    }
    ck_assert_float_eq(eng_fp16_to_f32(0x3C00), 1.0f);
    ck_assert_float_eq(eng_fp16_to_f32(0xC000), -2.0f);
    ck_assert_float_eq(eng_fp16_to_f32(0x0001), 0x1p-24f);
    ck_assert_float_eq(eng_fp16_to_f32(0x7BFF), 65504.0f);
    ck_assert(isinf(eng_fp16_to_f32(0x7C00)));
    ck_assert_uint_eq(eng_f32_to_fp16(1.0f + 0x1p-11f), 0x3C00);
    ck_assert_uint_eq(eng_f32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3C02);
    ck_assert_uint_eq(eng_f32_to_fp16(65519.0f), 0x7BFF);
    ck_assert_uint_eq(eng_f32_to_fp16(65520.0f), 0x7C00);
    ck_assert_uint_eq(eng_f32_to_fp16(-65520.0f), 0xFC00);
    if (__builtin_cpu_supports("f16c")) {
        rng r = {7};
        for (int i = 0; i < 1000000; i++) {
            const uint32_t bits = rng_u32(&r);
            float f;
            memcpy(&f, &bits, sizeof f);
            if (isnan(f))
                continue;
            ck_assert_msg(eng_f32_to_fp16(f) == hw_f32_to_fp16(f), "%a: 0x%04x, F16C 0x%04x",
                          (double)f, eng_f32_to_fp16(f), hw_f32_to_fp16(f));
        }
    } else {
        printf("SKIP part of %s: the CPU lacks F16C, so eng_f32_to_fp16 is not compared with "
               "the hardware conversion on random floats\n",
               rbt_test_name(__func__));
    }
}
END_TEST

/* Scenario: BF16 conversion rounds to nearest even */
START_TEST(test_engine_kernels__bf16_conversion_rounds_to_nearest_even)
{
    ck_assert_float_eq(eng_bf16_to_f32(0x3F80), 1.0f);
    ck_assert_float_eq(eng_bf16_to_f32(0xC0A0), -5.0f);
    ck_assert_uint_eq(eng_f32_to_bf16(1.0f + 0x1p-8f), 0x3F80);
    ck_assert_uint_eq(eng_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);
    ck_assert(isnan(eng_bf16_to_f32(eng_f32_to_bf16(NAN))));
}
END_TEST

/* Scenario: Float rows dequantize to their values */
START_TEST(test_engine_kernels__float_rows_dequantize_to_their_values)
{
    const float f32[2] = {1.5f, -2.25f};
    const uint16_t f16[4] = {0x3C00, 0xC000, 0x0001, 0x3555}, bf16[2] = {0x3F80, 0xC0A0};
    float y[4];
    eng_dequantize_row(ENG_TYPE_F32, f32, y, 2);
    ck_assert_float_eq(y[0], 1.5f);
    ck_assert_float_eq(y[1], -2.25f);
    eng_dequantize_row(ENG_TYPE_F16, f16, y, 4);
    ck_assert_float_eq(y[0], 1.0f);
    ck_assert_float_eq(y[1], -2.0f);
    ck_assert_float_eq(y[2], 0x1p-24f);
    ck_assert_float_eq(y[3], 0.33325195f);
    eng_dequantize_row(ENG_TYPE_BF16, bf16, y, 2);
    ck_assert_float_eq(y[0], 1.0f);
    ck_assert_float_eq(y[1], -5.0f);
}
END_TEST

/* Scenario: Q8_0 dequantization matches the block definition */
START_TEST(test_engine_kernels__q8_0_dequantization_matches_the_block_definition)
{
    uint8_t blk[34];
    float y[32];
    put16(blk, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 32; j++)
        blk[2 + j] = (uint8_t)(int8_t)(j - 16);
    eng_dequantize_row(ENG_TYPE_Q8_0, blk, y, 32);
    for (int j = 0; j < 32; j++)
        ck_assert_float_eq(y[j], (float)(j - 16) * 0.5f);
}
END_TEST

/* Scenario: Q4_0 dequantization matches the block definition */
START_TEST(test_engine_kernels__q4_0_dequantization_matches_the_block_definition)
{
    uint8_t blk[18];
    float y[32];
    put16(blk, 0x4000); /* d = 2 */
    for (int j = 0; j < 16; j++)
        blk[2 + j] = (uint8_t)((j % 16) | (15 - j) << 4);
    eng_dequantize_row(ENG_TYPE_Q4_0, blk, y, 32);
    for (int j = 0; j < 16; j++) {
        ck_assert_float_eq(y[j], (float)((j % 16) - 8) * 2.0f);
        ck_assert_float_eq(y[j + 16], (float)((15 - j) - 8) * 2.0f);
    }
    ck_assert_float_eq(y[0], -16.0f);
    ck_assert_float_eq(y[16], 14.0f);
}
END_TEST

/* Scenario: Q4_1 dequantization matches the block definition */
START_TEST(test_engine_kernels__q4_1_dequantization_matches_the_block_definition)
{
    uint8_t blk[20];
    float y[32];
    put16(blk, 0x3800);     /* d = 0.5 */
    put16(blk + 2, 0xBC00); /* m = -1 */
    for (int j = 0; j < 16; j++)
        blk[4 + j] = (uint8_t)(j | (15 - j) << 4);
    eng_dequantize_row(ENG_TYPE_Q4_1, blk, y, 32);
    for (int j = 0; j < 16; j++) {
        ck_assert_float_eq(y[j], (float)j * 0.5f - 1.0f);
        ck_assert_float_eq(y[j + 16], (float)(15 - j) * 0.5f - 1.0f);
    }
}
END_TEST

/* Element j of the Q5 test blocks: nibble of byte j = j | (15 - j) << 4, bit 4 from qh. */
static int q5_test_code(uint32_t qh, int j)
{
    int nib = j < 16 ? j : 15 - (j - 16);
    return nib | (int)((qh >> j) & 1) << 4;
}

/* Scenario: Q5_0 dequantization matches the block definition */
START_TEST(test_engine_kernels__q5_0_dequantization_matches_the_block_definition)
{
    const uint32_t qh = 0xAAAA5555;
    uint8_t blk[22];
    float y[32];
    put16(blk, 0x3C00);      /* d = 1 */
    memcpy(blk + 2, &qh, 4); /* little-endian, as in the file */
    for (int j = 0; j < 16; j++)
        blk[6 + j] = (uint8_t)(j | (15 - j) << 4);
    eng_dequantize_row(ENG_TYPE_Q5_0, blk, y, 32);
    for (int j = 0; j < 32; j++)
        ck_assert_float_eq(y[j], (float)(q5_test_code(qh, j) - 16));
    ck_assert_float_eq(y[0], 0.0f);
    ck_assert_float_eq(y[1], -15.0f);
}
END_TEST

/* Scenario: Q5_1 dequantization matches the block definition */
START_TEST(test_engine_kernels__q5_1_dequantization_matches_the_block_definition)
{
    const uint32_t qh = 0xAAAA5555;
    uint8_t blk[24];
    float y[32];
    put16(blk, 0x3400);     /* d = 0.25 */
    put16(blk + 2, 0x4000); /* m = 2 */
    memcpy(blk + 4, &qh, 4);
    for (int j = 0; j < 16; j++)
        blk[8 + j] = (uint8_t)(j | (15 - j) << 4);
    eng_dequantize_row(ENG_TYPE_Q5_1, blk, y, 32);
    for (int j = 0; j < 32; j++)
        ck_assert_float_eq(y[j], (float)q5_test_code(qh, j) * 0.25f + 2.0f);
    ck_assert_float_eq(y[0], 6.0f);
    ck_assert_float_eq(y[16], 5.75f);
}
END_TEST

/* The Q4_K/Q5_K test header: d = 1, dmin = 0.5 and these 6-bit scales and mins, packed by
 * hand: bytes 0-3 scale j (low 6 bits) and the top 2 bits of scale j+4; bytes 4-7 the same
 * for the mins; bytes 8-11 the low nibbles of scale j+4 and min j+4. */
static const int k_sc[8] = {1, 2, 3, 63, 17, 33, 48, 62};
static const int k_mn[8] = {0, 5, 63, 10, 20, 40, 61, 1};
static const uint8_t k_packed[12] = {0x41, 0x82, 0xC3, 0xFF, 0x40, 0x85,
                                     0xFF, 0x0A, 0x41, 0x81, 0xD0, 0x1E};

static void k_header(uint8_t *blk)
{
    put16(blk, 0x3C00);     /* d = 1 */
    put16(blk + 2, 0x3800); /* dmin = 0.5 */
    memcpy(blk + 4, k_packed, 12);
}

/* Scenario: Q4_K dequantization matches the block definition */
START_TEST(test_engine_kernels__q4_k_dequantization_matches_the_block_definition)
{
    uint8_t blk[144];
    float y[256];
    k_header(blk);
    for (int i = 0; i < 128; i++)
        blk[16 + i] = (uint8_t)i;
    eng_dequantize_row(ENG_TYPE_Q4_K, blk, y, 256);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            const int q = 32 * c + l; /* qs[q] = q */
            ck_assert_float_eq(y[64 * c + l], (float)(k_sc[2 * c] * (q & 15)) - 0.5f * k_mn[2 * c]);
            ck_assert_float_eq(y[64 * c + 32 + l],
                               (float)(k_sc[2 * c + 1] * (q >> 4)) - 0.5f * k_mn[2 * c + 1]);
        }
    }
    ck_assert_float_eq(y[1], 1.0f);
    ck_assert_float_eq(y[32], -2.5f);
    ck_assert_float_eq(y[200], 353.5f);
    ck_assert_float_eq(y[255], 433.5f);
}
END_TEST

/* Scenario: Q5_K dequantization matches the block definition */
START_TEST(test_engine_kernels__q5_k_dequantization_matches_the_block_definition)
{
    uint8_t blk[176];
    float y[256];
    k_header(blk);
    for (int l = 0; l < 32; l++)
        blk[16 + l] = (uint8_t)(37 * l);
    for (int i = 0; i < 128; i++)
        blk[48 + i] = (uint8_t)i;
    eng_dequantize_row(ENG_TYPE_Q5_K, blk, y, 256);
    for (int e = 0; e < 256; e++) {
        const int c = e / 64, l = e % 32, j = e / 32, q = 32 * c + l;
        const int nib = (e % 64) < 32 ? q & 15 : q >> 4;
        const int code = nib | ((((37 * l) & 255) >> j) & 1) << 4;
        ck_assert_float_eq(y[e], (float)(k_sc[j] * code) - 0.5f * k_mn[j]);
    }
    ck_assert_float_eq(y[1], 17.0f);
    ck_assert_float_eq(y[63], 31.5f);
    ck_assert_float_eq(y[200], 353.5f);
}
END_TEST

/* Scenario: Q6_K dequantization matches the block definition */
START_TEST(test_engine_kernels__q6_k_dequantization_matches_the_block_definition)
{
    static const int8_t sc[16] = {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 127, -128};
    uint8_t blk[210];
    float y[256];
    for (int i = 0; i < 128; i++)
        blk[i] = (uint8_t)(7 * i); /* ql */
    for (int i = 0; i < 64; i++)
        blk[128 + i] = (uint8_t)(13 * i); /* qh */
    memcpy(blk + 192, sc, 16);
    put16(blk + 208, 0x3800); /* d = 0.5 */
    eng_dequantize_row(ENG_TYPE_Q6_K, blk, y, 256);
    for (int e = 0; e < 256; e++) {
        /* half h, quarter k, position l: low 4 bits from ql (low nibble for quarters 0, 1,
         * high for 2, 3; bytes 32 on for quarters 1, 3), top 2 bits from qh bits 2k, 2k+1 */
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int qlb = (7 * (64 * h + l + ((k & 1) ? 32 : 0))) & 255;
        const int lo = k < 2 ? qlb & 15 : qlb >> 4;
        const int hi = (((13 * (32 * h + l)) & 255) >> (2 * k)) & 3;
        ck_assert_float_eq(y[e], 0.5f * (float)sc[e / 16] * (float)((lo | hi << 4) - 32));
    }
    ck_assert_float_eq(y[0], -16.0f);
    ck_assert_float_eq(y[1], -4.5f);
    ck_assert_float_eq(y[16], 16.0f);
    ck_assert_float_eq(y[128], -80.0f);
    ck_assert_float_eq(y[255], 1600.0f);
}
END_TEST

/* Bytes i * 29 + 7, the code bytes of the hand-built Q2_K, Q3_K and IQ4_XS blocks. */
static void code_bytes(uint8_t *p, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 29 + 7);
}

/* Scenario: Q2_K dequantization matches the block definition */
START_TEST(test_engine_kernels__q2_k_dequantization_matches_the_block_definition)
{
    uint8_t blk[84];
    float y[256];
    for (int k = 0; k < 16; k++)
        blk[k] = (uint8_t)(((k % 15) + 1) | k << 4); /* scale k % 15 + 1, min k */
    code_bytes(blk + 16, 64);
    put16(blk + 80, 0x3800); /* d = 0.5 */
    put16(blk + 82, 0x3400); /* dmin = 0.25 */
    eng_dequantize_row(ENG_TYPE_Q2_K, blk, y, 256);
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32, k = e / 16;
        const int q = (((32 * h + l) * 29 + 7) & 255) >> (2 * j) & 3;
        ck_assert_float_eq(y[e], 0.5f * (float)((k % 15) + 1) * (float)q - 0.25f * (float)k);
    }
    ck_assert_float_eq(y[0], 1.5f);     /* qs[0] = 7: code 3, scale 1, min 0 */
    ck_assert_float_eq(y[33], 1.0f);    /* qs[1] = 36 bits 2-3: code 1, scale 3, min 2 */
    ck_assert_float_eq(y[255], -3.75f); /* qs[63] = 42 bits 6-7: code 0, min 15 */
}
END_TEST

/* Scenario: Q3_K dequantization matches the block definition */
START_TEST(test_engine_kernels__q3_k_dequantization_matches_the_block_definition)
{
    uint8_t blk[110] = {0};
    float y[256];
    int ls[16];
    for (int l = 0; l < 32; l++)
        blk[l] = (uint8_t)(l * 37 + 11); /* hmask */
    code_bytes(blk + 32, 64);
    for (int k = 0; k < 16; k++) { /* 6-bit scales packed as the block definition says */
        ls[k] = (k * 13 + 5) % 64;
        blk[96 + k % 8] |= (uint8_t)((ls[k] & 15) << (k < 8 ? 0 : 4));
        blk[96 + 8 + k % 4] |= (uint8_t)((ls[k] >> 4) << (2 * (k / 4)));
    }
    put16(blk + 108, 0x3400); /* d = 0.25 */
    eng_dequantize_row(ENG_TYPE_Q3_K, blk, y, 256);
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32, k = e / 16;
        const int lo = (((32 * h + l) * 29 + 7) & 255) >> (2 * j) & 3;
        const int hi = (((l * 37 + 11) & 255) >> (4 * h + j)) & 1;
        ck_assert_float_eq(y[e], 0.25f * (float)(ls[k] - 32) * (float)(lo - (hi ? 0 : 4)));
    }
    ck_assert_float_eq(y[0], -20.25f); /* scale 5 - 32, code 3 with the high bit set */
    ck_assert_float_eq(y[40], -0.75f); /* scale 31 - 32, code 3, high bit set */
    ck_assert_float_eq(y[200], -1.0f); /* scale 33 - 32, code 0, high bit clear: -4 */
}
END_TEST

/* Scenario: IQ4_NL dequantization matches the block definition */
START_TEST(test_engine_kernels__iq4_nl_dequantization_matches_the_block_definition)
{
    static const int values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};
    uint8_t blk[18];
    float y[32];
    put16(blk, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 16; j++)
        blk[2 + j] = (uint8_t)(j | (15 - j) << 4);
    eng_dequantize_row(ENG_TYPE_IQ4_NL, blk, y, 32);
    for (int j = 0; j < 16; j++) {
        ck_assert_float_eq(y[j], 0.5f * (float)values[j]);
        ck_assert_float_eq(y[j + 16], 0.5f * (float)values[15 - j]);
    }
    ck_assert_float_eq(y[0], -63.5f);
    ck_assert_float_eq(y[15], 56.5f);
    ck_assert_float_eq(y[31], -63.5f);
}
END_TEST

/* Scenario: IQ4_XS dequantization matches the block definition */
START_TEST(test_engine_kernels__iq4_xs_dequantization_matches_the_block_definition)
{
    static const int values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};
    uint8_t blk[136] = {0};
    float y[256];
    uint16_t sh = 0;
    put16(blk, 0x3800); /* d = 0.5 */
    for (int ib = 0; ib < 8; ib++) {
        const int ls = 8 * ib + 5;
        blk[4 + ib / 2] |= (uint8_t)((ls & 15) << (4 * (ib % 2)));
        sh |= (uint16_t)((ls >> 4) << (2 * ib));
    }
    put16(blk + 2, sh);
    code_bytes(blk + 8, 128);
    eng_dequantize_row(ENG_TYPE_IQ4_XS, blk, y, 256);
    for (int e = 0; e < 256; e++) {
        const int ib = e / 32, j = e % 32;
        const int byte = ((16 * ib + j % 16) * 29 + 7) & 255;
        const int idx = j < 16 ? byte & 15 : byte >> 4;
        ck_assert_float_eq(y[e], 0.5f * (float)(8 * ib + 5 - 32) * (float)values[idx]);
    }
    ck_assert_float_eq(y[0], 135.0f);    /* scale 5 - 32, index 7 (-10) */
    ck_assert_float_eq(y[255], -319.0f); /* scale 61 - 32, qs[127] = 0x6A high nibble: -22 */
}
END_TEST

/* Scenario: Q4_0 quantization picks the reference codes */
START_TEST(test_engine_kernels__q4_0_quantization_picks_the_reference_codes)
{
    float x[32];
    uint8_t blk[18];
    uint16_t d;
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    ck_assert_uint_eq(eng_quantize_row(ENG_TYPE_Q4_0, x, blk, 32), 18);
    memcpy(&d, blk, 2);
    ck_assert_float_eq(eng_fp16_to_f32(d), 2.0f);
    ck_assert_uint_eq(blk[2] & 15, 0);       /* x = -16 */
    ck_assert_uint_eq(blk[3] & 15, 1);       /* x = -15 */
    ck_assert_uint_eq(blk[2 + 15] & 15, 8);  /* x = -1 */
    ck_assert_uint_eq(blk[2] >> 4, 8);       /* x = 0 */
    ck_assert_uint_eq(blk[2 + 15] >> 4, 15); /* x = 15 */
}
END_TEST

/* Scenario: Q8_0 quantization rounds half away from zero */
START_TEST(test_engine_kernels__q8_0_quantization_rounds_half_away_from_zero)
{
    float x[32] = {127.0f, 2.5f, -2.5f, 0.4f};
    uint8_t blk[34];
    uint16_t d;
    ck_assert_uint_eq(eng_quantize_row(ENG_TYPE_Q8_0, x, blk, 32), 34);
    memcpy(&d, blk, 2);
    ck_assert_float_eq(eng_fp16_to_f32(d), 1.0f);
    ck_assert_int_eq((int8_t)blk[2], 127);
    ck_assert_int_eq((int8_t)blk[3], 3);
    ck_assert_int_eq((int8_t)blk[4], -3);
    ck_assert_int_eq((int8_t)blk[5], 0);
    ck_assert_uint_eq(eng_quantize_row(ENG_TYPE_Q4_1, x, blk, 32), 0); /* not a target */
    ck_assert_uint_eq(eng_quantize_row(ENG_TYPE_Q8_0, x, blk, 31), 0); /* not whole blocks */
}
END_TEST

/* Random rows of RANDOM_N normal values times scale, checked against k_bounds. */
static void check_bounds(float scale)
{
    float *x = malloc(RANDOM_N * sizeof *x), *y = malloc(RANDOM_N * sizeof *y);
    uint8_t *q = malloc(RANDOM_N * 4);
    rng r = {RANDOM_SEED};
    for (int i = 0; i < RANDOM_N; i++)
        x[i] = rng_normal(&r) * scale;
    for (size_t i = 0; i < N_BOUNDS; i++) {
        double e = round_trip(k_bounds[i].type, x, y, q, RANDOM_N);
        if (getenv("RBT_PRINT_RMSE"))
            printf("%s scale %g: %.5f\n", eng_type_name(k_bounds[i].type), (double)scale, e);
        ck_assert_msg(e < k_bounds[i].bound, "%s at scale %g: relative RMS error %.5f >= %.5f",
                      eng_type_name(k_bounds[i].type), (double)scale, e, k_bounds[i].bound);
    }
    free(x);
    free(y);
    free(q);
}

/* Scenario Outline: Quantizing random rows keeps the error within the type's bound */
START_TEST(test_engine_kernels__quantizing_random_rows_keeps_the_error_within_the_type_s_bound)
{
    check_bounds(1.0f);
}
END_TEST

/* Scenario: Large and small magnitudes keep the error bound */
START_TEST(test_engine_kernels__large_and_small_magnitudes_keep_the_error_bound)
{
    check_bounds(1e4f);
    check_bounds(1e-2f);
}
END_TEST

/* Scenario: An all-zero row quantizes to exact zeros in every target type */
START_TEST(test_engine_kernels__an_all_zero_row_quantizes_to_exact_zeros_in_every_target_type)
{
    float x[512] = {0}, y[512];
    uint8_t q[4096];
    for (size_t i = 0; i < N_BOUNDS; i++) {
        round_trip(k_bounds[i].type, x, y, q, 512);
        for (int j = 0; j < 512; j++)
            ck_assert_msg(y[j] == 0.0f, "%s: element %d is %g", eng_type_name(k_bounds[i].type), j,
                          (double)y[j]);
    }
}
END_TEST

/* Scenario: A constant row comes back within 0.1 percent in every block type */
START_TEST(test_engine_kernels__a_constant_row_comes_back_within_0_1_percent_in_every_block_type)
{
    static const eng_type types[] = {ENG_TYPE_Q8_0,   ENG_TYPE_Q4_0,  ENG_TYPE_Q4_K, ENG_TYPE_Q6_K,
                                     ENG_TYPE_Q8_K,   ENG_TYPE_Q5_K,  ENG_TYPE_Q3_K, ENG_TYPE_Q2_K,
                                     ENG_TYPE_IQ4_NL, ENG_TYPE_IQ4_XS};
    float x[256], y[256];
    uint8_t q[1024];
    for (int sign = -1; sign <= 1; sign += 2) {
        for (int j = 0; j < 256; j++)
            x[j] = 0.37f * (float)sign;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            round_trip(types[i], x, y, q, 256);
            for (int j = 0; j < 256; j++)
                ck_assert_msg(fabsf(y[j] - x[j]) <= CONST_ROW_TOL * 0.37f, "%s: %g for %g",
                              eng_type_name(types[i]), (double)y[j], (double)x[j]);
        }
    }
}
END_TEST

/* Scenario: A single outlier is kept and disturbs only its own block */
START_TEST(test_engine_kernels__a_single_outlier_is_kept_and_disturbs_only_its_own_block)
{
    static const eng_type types[] = {ENG_TYPE_Q8_0, ENG_TYPE_Q4_0, ENG_TYPE_Q4_K, ENG_TYPE_Q6_K};
    float x[512], y[512];
    uint8_t with[4096], without[4096];
    rng r = {RANDOM_SEED};
    for (int j = 0; j < 512; j++)
        x[j] = rng_normal(&r);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const eng_type t = types[i];
        const size_t bb = eng_type_block_bytes(t), rb = eng_type_row_bytes(t, 512);
        const size_t ob = (size_t)(37 / eng_type_block_elems(t)) * bb; /* the outlier's block */
        const float keep = x[37];
        round_trip(t, x, y, without, 512);
        x[37] = 100.0f;
        round_trip(t, x, y, with, 512);
        x[37] = keep;
        ck_assert_msg(fabsf(y[37] - 100.0f) <= 0.5f, "%s: outlier came back as %g",
                      eng_type_name(t), (double)y[37]);
        ck_assert_msg(memcmp(with, without, ob) == 0 &&
                          memcmp(with + ob + bb, without + ob + bb, rb - ob - bb) == 0,
                      "%s: blocks without the outlier changed", eng_type_name(t));
    }
}
END_TEST

/* Scenario: Block scales beyond the half-precision range saturate instead of becoming infinite */
START_TEST(
    test_engine_kernels__block_scales_beyond_the_half_precision_range_saturate_instead_of_becoming_infinite)
{
    static const eng_type types[] = {ENG_TYPE_Q8_0, ENG_TYPE_Q4_0, ENG_TYPE_Q4_K, ENG_TYPE_Q6_K};
    float x[256], y[256];
    uint8_t q[1024];
    for (int j = 0; j < 256; j++)
        x[j] = j % 2 ? 1e9f : -1e9f;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        ck_assert_uint_gt(eng_quantize_row(types[i], x, q, 256), 0);
        eng_dequantize_row(types[i], q, y, 256);
        for (int j = 0; j < 256; j++) {
            ck_assert_msg(isfinite(y[j]), "%s: element %d is %g", eng_type_name(types[i]), j,
                          (double)y[j]);
            ck_assert_msg((y[j] > 0) == (x[j] > 0), "%s: element %d has the wrong sign",
                          eng_type_name(types[i]), j);
        }
        if (types[i] == ENG_TYPE_Q8_0)
            ck_assert_float_eq(y[1], 65504.0f * 127.0f);
    }
}
END_TEST

/* Scenario: A NaN quantizes to the code of zero */
START_TEST(test_engine_kernels__a_nan_quantizes_to_the_code_of_zero)
{
    float x[32];
    uint8_t blk[34];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    x[3] = NAN; /* a broken model's activation: converting it to an integer is undefined */
    ck_assert_uint_eq(eng_quantize_row(ENG_TYPE_Q8_0, x, blk, 32), 34);
    ck_assert_int_eq((int8_t)blk[2 + 3], 0);
    ck_assert_int_eq((int8_t)blk[2 + 31], 127 * 15 / 16);
    ck_assert_uint_eq(eng_quantize_row(ENG_TYPE_Q4_0, x, blk, 32), 18);
    ck_assert_int_eq(blk[2 + 3] & 0x0F, 8); /* code 8 stands for 0 */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_quant");
    TCase *tc = rbt_tcase(s, "types", 30);
    tcase_add_test(tc, test_engine_kernels__type_traits_follow_the_gguf_block_sizes);
    tcase_add_test(tc, test_engine_kernels__type_names_parse_in_either_case);
    tcase_add_test(
        tc, test_engine_kernels__half_precision_conversion_is_exact_and_rounds_to_nearest_even);
    tcase_add_test(tc, test_engine_kernels__bf16_conversion_rounds_to_nearest_even);
    tc = rbt_tcase(s, "dequantize", 10);
    tcase_add_test(tc, test_engine_kernels__float_rows_dequantize_to_their_values);
    tcase_add_test(tc, test_engine_kernels__q8_0_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q4_0_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q4_1_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q5_0_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q5_1_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q4_k_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q5_k_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q6_k_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q2_k_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__q3_k_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__iq4_nl_dequantization_matches_the_block_definition);
    tcase_add_test(tc, test_engine_kernels__iq4_xs_dequantization_matches_the_block_definition);
    tc = rbt_tcase(s, "quantize", 60);
    tcase_add_test(tc, test_engine_kernels__q4_0_quantization_picks_the_reference_codes);
    tcase_add_test(tc, test_engine_kernels__q8_0_quantization_rounds_half_away_from_zero);
    tcase_add_test(
        tc, test_engine_kernels__quantizing_random_rows_keeps_the_error_within_the_type_s_bound);
    tcase_add_test(tc, test_engine_kernels__large_and_small_magnitudes_keep_the_error_bound);
    tcase_add_test(
        tc, test_engine_kernels__an_all_zero_row_quantizes_to_exact_zeros_in_every_target_type);
    tcase_add_test(
        tc, test_engine_kernels__a_constant_row_comes_back_within_0_1_percent_in_every_block_type);
    tcase_add_test(tc,
                   test_engine_kernels__a_single_outlier_is_kept_and_disturbs_only_its_own_block);
    tcase_add_test(
        tc,
        test_engine_kernels__block_scales_beyond_the_half_precision_range_saturate_instead_of_becoming_infinite);
    tcase_add_test(tc, test_engine_kernels__a_nan_quantizes_to_the_code_of_zero);
    return rbt_run(s);
}
