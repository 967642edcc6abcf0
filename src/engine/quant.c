/*
 * quant.c - tensor type traits, half-precision conversions, and the (de)quantizers of the
 * float types and the 32-element block types. The K-quants live in quant_k.c, the IQ4 types
 * in quant_iq.c.
 *
 * DESIGN. Everything here is plain, portable C and is the reference the SIMD kernels are
 * tested against; none of it sits in the per-token hot path except eng_quantize_q8_0, which
 * prepares one activation row per token (O(n), next to the O(n * rows) matmul it feeds).
 * The quantizers follow the GGUF reference algorithms so a row quantized here has the bytes
 * llama.cpp's reference quantizer would write, with one deliberate difference: a block scale
 * beyond the half-precision range is clamped to ENG_FP16_MAX (the block saturates) instead of
 * becoming inf, which would turn every zero code into NaN. Inputs must be finite.
 */
#include <assert.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "eng_types.h"
#include "quant.h"

typedef struct type_traits {
    const char *name;
    int block_elems;
    size_t block_bytes;
    int supported; /* readable by the engine */
} type_traits;

static const type_traits k_traits[ENG_TYPE_COUNT] = {
    [ENG_TYPE_F32] = {"f32", 1, sizeof(float), 1},
    [ENG_TYPE_F16] = {"f16", 1, sizeof(uint16_t), 1},
    [ENG_TYPE_BF16] = {"bf16", 1, sizeof(uint16_t), 1},
    [ENG_TYPE_Q4_0] = {"q4_0", ENG_QK, sizeof(eng_block_q4_0), 1},
    [ENG_TYPE_Q4_1] = {"q4_1", ENG_QK, sizeof(eng_block_q4_1), 1},
    [ENG_TYPE_Q5_0] = {"q5_0", ENG_QK, sizeof(eng_block_q5_0), 1},
    [ENG_TYPE_Q5_1] = {"q5_1", ENG_QK, sizeof(eng_block_q5_1), 1},
    [ENG_TYPE_Q8_0] = {"q8_0", ENG_QK, sizeof(eng_block_q8_0), 1},
    [ENG_TYPE_Q8_1] = {"q8_1", ENG_QK, sizeof(eng_block_q8_1), 0},
    [ENG_TYPE_Q2_K] = {"q2_k", ENG_QK_K, sizeof(eng_block_q2_K), 1},
    [ENG_TYPE_Q3_K] = {"q3_k", ENG_QK_K, sizeof(eng_block_q3_K), 1},
    [ENG_TYPE_Q4_K] = {"q4_k", ENG_QK_K, sizeof(eng_block_q4_K), 1},
    [ENG_TYPE_Q5_K] = {"q5_k", ENG_QK_K, sizeof(eng_block_q5_K), 1},
    [ENG_TYPE_Q6_K] = {"q6_k", ENG_QK_K, sizeof(eng_block_q6_K), 1},
    [ENG_TYPE_Q8_K] = {"q8_k", ENG_QK_K, sizeof(eng_block_q8_K), 0},
    [ENG_TYPE_IQ4_NL] = {"iq4_nl", ENG_QK, sizeof(eng_block_iq4_nl), 1},
    [ENG_TYPE_IQ4_XS] = {"iq4_xs", ENG_QK_K, sizeof(eng_block_iq4_xs), 1},
    /* the other ggml types, named (and sized) so a file using one is refused by name */
    [ENG_TYPE_IQ2_XXS] = {"iq2_xxs", ENG_QK_K, ENG_IQ2_XXS_BYTES, 0},
    [17] = {"iq2_xs", ENG_QK_K, 74, 0},
    [18] = {"iq3_xxs", ENG_QK_K, 98, 0},
    [19] = {"iq1_s", ENG_QK_K, 50, 0},
    [21] = {"iq3_s", ENG_QK_K, 110, 0},
    [22] = {"iq2_s", ENG_QK_K, 82, 0},
    [24] = {"i8", 1, 1, 0},
    [25] = {"i16", 1, 2, 0},
    [26] = {"i32", 1, 4, 0},
    [27] = {"i64", 1, 8, 0},
    [28] = {"f64", 1, 8, 0},
    [29] = {"iq1_m", ENG_QK_K, 56, 0},
    [34] = {"tq1_0", ENG_QK_K, 54, 0},
    [35] = {"tq2_0", ENG_QK_K, 66, 0},
    [39] = {"mxfp4", ENG_QK, 17, 0},
};

/* NULL for values outside the enum and for holes in the ggml numbering. */
static const type_traits *traits(eng_type t)
{
    const type_traits *tr = NULL;
    if ((unsigned)t < ENG_TYPE_COUNT && k_traits[t].name)
        tr = &k_traits[t];
    return tr;
}

int eng_type_supported(eng_type t)
{
    const type_traits *tr = traits(t);
    return tr ? tr->supported : 0;
}

const char *eng_type_name(eng_type t)
{
    const type_traits *tr = traits(t);
    return tr ? tr->name : "unknown";
}

int eng_type_parse(const char *name)
{
    int found = -1;
    for (int t = 0; name && t < ENG_TYPE_COUNT && found < 0; t++)
        if (k_traits[t].name && strcasecmp(name, k_traits[t].name) == 0)
            found = t;
    return found;
}

int eng_type_block_elems(eng_type t)
{
    const type_traits *tr = traits(t);
    return tr ? tr->block_elems : 0;
}

size_t eng_type_block_bytes(eng_type t)
{
    const type_traits *tr = traits(t);
    return tr ? tr->block_bytes : 0;
}

size_t eng_type_row_bytes(eng_type t, int64_t n)
{
    const type_traits *tr = traits(t);
    size_t bytes = 0;
    if (tr && n >= 0 && n % tr->block_elems == 0) {
        uint64_t blocks = (uint64_t)(n / tr->block_elems);
        if (blocks <= SIZE_MAX / tr->block_bytes)
            bytes = (size_t)blocks * tr->block_bytes;
    }
    return bytes;
}

/* ---- half precision ---------------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float eng_fp16_to_f32(uint16_t h)
{
    return eng_h2f(h);
}

uint16_t eng_f32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7FFFFFFF;
    uint32_t h;
    if (ax > 0x7F800000) { /* NaN: keep it a (quiet) NaN */
        h = 0x7E00 | ((ax >> 13) & 0x3FF);
    } else if (ax >= 0x477FF000) { /* 65520 and up round to inf (ties go to even = inf) */
        h = 0x7C00;
    } else if (ax >= 0x38800000) { /* normal half: rebias, round to nearest even */
        h = (ax - 0x38000000 + 0xFFF + ((ax >> 13) & 1)) >> 13;
    } else { /* subnormal half: round(|f| * 2^24) to nearest even */
        float r = bits_f32(ax) * 0x1p24f + 0x1p23f;
        h = f32_bits(r) - 0x4B000000;
    }
    return (uint16_t)(sign | h);
}

float eng_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t eng_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t h;
    if ((x & 0x7FFFFFFF) > 0x7F800000)
        h = (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    else
        h = (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
    return h;
}

/* ---- dequantization of the 32-element blocks -------------------------------------- */

static void dequant_q4_0(const eng_block_q4_0 *x, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, y += ENG_QK) {
        const float d = eng_h2f(x[b].d);
        for (int j = 0; j < ENG_QK / 2; j++) {
            y[j] = (float)((x[b].qs[j] & 0xF) - 8) * d;
            y[j + ENG_QK / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const eng_block_q4_1 *x, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, y += ENG_QK) {
        const float d = eng_h2f(x[b].d);
        const float m = eng_h2f(x[b].m);
        for (int j = 0; j < ENG_QK / 2; j++) {
            y[j] = (float)(x[b].qs[j] & 0xF) * d + m;
            y[j + ENG_QK / 2] = (float)(x[b].qs[j] >> 4) * d + m;
        }
    }
}

/* Code j (0..31) of a Q5 block: nibble from qs, bit 4 from bit j of qh. */
static int q5_code(const uint8_t *qs, uint32_t qh, int j)
{
    int nib = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return nib | (int)((qh >> j) & 1) << 4;
}

static void dequant_q5_0(const eng_block_q5_0 *x, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, y += ENG_QK) {
        const float d = eng_h2f(x[b].d);
        const uint32_t qh = eng_q5_qh(x[b].qh);
        for (int j = 0; j < ENG_QK; j++)
            y[j] = (float)(q5_code(x[b].qs, qh, j) - 16) * d;
    }
}

static void dequant_q5_1(const eng_block_q5_1 *x, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, y += ENG_QK) {
        const float d = eng_h2f(x[b].d);
        const float m = eng_h2f(x[b].m);
        const uint32_t qh = eng_q5_qh(x[b].qh);
        for (int j = 0; j < ENG_QK; j++)
            y[j] = (float)q5_code(x[b].qs, qh, j) * d + m;
    }
}

static void dequant_q8_0(const eng_block_q8_0 *x, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++, y += ENG_QK) {
        const float d = eng_h2f(x[b].d);
        for (int j = 0; j < ENG_QK; j++)
            y[j] = (float)x[b].qs[j] * d;
    }
}

void eng_dequantize_row(eng_type t, const void *x, float *y, int64_t n)
{
    const int64_t be = eng_type_block_elems(t);
    const int64_t nb = be ? n / be : 0;
    const uint16_t *h = x;
    assert(be && n % be == 0);
    switch (t) {
    case ENG_TYPE_F32:
        memcpy(y, x, (size_t)n * sizeof(float));
        break;
    case ENG_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            y[i] = eng_h2f(h[i]);
        break;
    case ENG_TYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            y[i] = eng_bf16_to_f32(h[i]);
        break;
    case ENG_TYPE_Q4_0:
        dequant_q4_0(x, y, nb);
        break;
    case ENG_TYPE_Q4_1:
        dequant_q4_1(x, y, nb);
        break;
    case ENG_TYPE_Q5_0:
        dequant_q5_0(x, y, nb);
        break;
    case ENG_TYPE_Q5_1:
        dequant_q5_1(x, y, nb);
        break;
    case ENG_TYPE_Q8_0:
        dequant_q8_0(x, y, nb);
        break;
    case ENG_TYPE_Q2_K:
        eng_dequantize_q2_K(x, y, nb * ENG_QK_K);
        break;
    case ENG_TYPE_Q3_K:
        eng_dequantize_q3_K(x, y, nb * ENG_QK_K);
        break;
    case ENG_TYPE_IQ4_NL:
        eng_dequantize_iq4_nl(x, y, nb * ENG_QK);
        break;
    case ENG_TYPE_IQ4_XS:
        eng_dequantize_iq4_xs(x, y, nb * ENG_QK_K);
        break;
    case ENG_TYPE_Q4_K:
        eng_dequantize_q4_K(x, y, nb * ENG_QK_K);
        break;
    case ENG_TYPE_Q5_K:
        eng_dequantize_q5_K(x, y, nb * ENG_QK_K);
        break;
    case ENG_TYPE_Q6_K:
        eng_dequantize_q6_K(x, y, nb * ENG_QK_K);
        break;
    case ENG_TYPE_Q8_K: /* activations; handy for tests */
        eng_dequantize_q8_K(x, y, nb * ENG_QK_K);
        break;
    default: /* unsupported: defined output rather than stale memory */
        memset(y, 0, (size_t)(n > 0 ? n : 0) * sizeof(float));
        break;
    }
}

/* ---- quantization of the 32-element blocks ----------------------------------------- */

static float clamp_scale(float d)
{
    return d > ENG_FP16_MAX ? ENG_FP16_MAX : d < -ENG_FP16_MAX ? -ENG_FP16_MAX : d;
}

void eng_quantize_q8_0(const float *x, eng_block_q8_0 *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK; b++, x += ENG_QK) {
        float amax = 0.0f;
        for (int j = 0; j < ENG_QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = clamp_scale(amax / 127.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = eng_f32_to_fp16(d);
        for (int j = 0; j < ENG_QK; j++) {
            /* roundf (ties away from zero) as the reference; the clamp only bites when
             * the scale saturated */
            float q = roundf(x[j] * id);
            if (q != q) /* NaN (a broken model's activations): converting it is undefined */
                q = 0.0f;
            y[b].qs[j] = (int8_t)(q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q);
        }
    }
}

/* The reference's (int8_t)(v + 8.5f): truncation, i.e. v rounded half up, within 0..15. */
static uint8_t q4_0_code(float v)
{
    float c = v + 8.5f;
    c = c != c ? 8.0f : c < 0.0f ? 0.0f : c > 15.0f ? 15.0f : c; /* NaN: the code of 0 */
    return (uint8_t)c;
}

void eng_quantize_q4_0(const float *x, eng_block_q4_0 *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK; b++, x += ENG_QK) {
        /* The element of largest magnitude maps to code 0 (-8), keeping its sign: the
         * asymmetric range -8..7 then loses nothing at that extreme. */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < ENG_QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = clamp_scale(max / -8.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = eng_f32_to_fp16(d);
        for (int j = 0; j < ENG_QK / 2; j++)
            y[b].qs[j] = (uint8_t)(q4_0_code(x[j] * id) | q4_0_code(x[j + ENG_QK / 2] * id) << 4);
    }
}

size_t eng_quantize_row(eng_type t, const float *x, void *y, int64_t n)
{
    const size_t bytes = eng_type_row_bytes(t, n);
    size_t written = bytes;
    uint16_t *h = y;
    switch (bytes ? t : ENG_TYPE_COUNT) {
    case ENG_TYPE_F32:
        memcpy(y, x, bytes);
        break;
    case ENG_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            h[i] = eng_f32_to_fp16(x[i]);
        break;
    case ENG_TYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            h[i] = eng_f32_to_bf16(x[i]);
        break;
    case ENG_TYPE_Q8_0:
        eng_quantize_q8_0(x, y, n);
        break;
    case ENG_TYPE_Q4_0:
        eng_quantize_q4_0(x, y, n);
        break;
    case ENG_TYPE_Q2_K:
        eng_quantize_q2_K(x, y, n);
        break;
    case ENG_TYPE_Q3_K:
        eng_quantize_q3_K(x, y, n);
        break;
    case ENG_TYPE_Q4_K:
        eng_quantize_q4_K(x, y, n);
        break;
    case ENG_TYPE_Q5_K:
        eng_quantize_q5_K(x, y, n);
        break;
    case ENG_TYPE_IQ4_NL:
        eng_quantize_iq4_nl(x, y, n);
        break;
    case ENG_TYPE_IQ4_XS:
        eng_quantize_iq4_xs(x, y, n);
        break;
    case ENG_TYPE_Q6_K:
        eng_quantize_q6_K(x, y, n);
        break;
    case ENG_TYPE_Q8_K:
        eng_quantize_q8_K(x, y, n);
        break;
    default: /* not a target, or n not a whole number of blocks (n = 0 writes nothing) */
        written = 0;
        break;
    }
    return written;
}
