/*
 * quant.h - the GGUF quantization blocks as packed structs (internal to rb_engine and its
 * tests), plus the small helpers that the (de)quantizers and the dot-product kernels share.
 *
 * DESIGN. A quantized row is an array of blocks; each block holds a few scales and the packed
 * integer codes of 32 (or 256, for the K-quants) consecutive elements. The layouts below are
 * the GGUF ones bit for bit, so tensors are used straight from the mmapped file. Every struct
 * is packed and its size asserted: a block is never padded, and rows are plain byte arrays
 * whose blocks may sit at any alignment (use unaligned loads).
 *
 * Element order inside a block (j counts bytes of qs):
 *   Q4_0/Q4_1/Q5_x  element j is the low nibble of qs[j], element j+16 the high nibble;
 *                   Q5_x take bit 4 of element i from bit i of the 32-bit little-endian qh.
 *   Q4_K/Q5_K       8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes
 *                   (eng_k4_scale_min); qs is 4 chunks of 32 bytes, chunk c holding elements
 *                   64c..64c+31 in the low nibbles and 64c+32..64c+63 in the high nibbles;
 *                   Q5_K takes bit 4 of element 64c+l from bit 2c of qh[l] and of element
 *                   64c+32+l from bit 2c+1.
 *   Q6_K            16 sub-blocks of 16 with int8 scales; two halves of 128 elements, each
 *                   with 64 bytes of ql and 32 of qh: element l, l+32, l+64, l+96 of a half
 *                   take their low 4 bits from ql[l] low, ql[l+32] low, ql[l] high,
 *                   ql[l+32] high, and their top 2 bits from qh[l] bits 0-1, 2-3, 4-5, 6-7;
 *                   codes are 0..63 and stand for code - 32.
 *   Q2_K/Q3_K       16 sub-blocks of 16; qs is 2 chunks of 32 bytes, chunk h holding element
 *                   128h + 32j + l in bits 2j..2j+1 of byte l; Q3_K adds a third bit from
 *                   bit 4h + j of hmask[l] (set: code - 0, clear: code - 4).
 *   IQ4_NL/IQ4_XS   nibbles as Q4_0 per 32 elements, each an index into eng_iq4nl_values.
 */
#ifndef ENG_QUANT_H
#define ENG_QUANT_H

#include <stdint.h>
#include <string.h>

#include "eng_types.h"

#define ENG_QK 32             /* elements per Q4_0 .. Q8_1 block */
#define ENG_QK_K 256          /* elements per K-quant super-block */
#define ENG_K_SCALES 12       /* 8 six-bit scales and 8 six-bit mins of Q4_K/Q5_K, packed */
#define ENG_FP16_MAX 65504.0f /* largest finite half; block scales are clamped to it */

/* x = d * (q - 8) */
typedef struct __attribute__((packed)) eng_block_q4_0 {
    uint16_t d; /* fp16 */
    uint8_t qs[ENG_QK / 2];
} eng_block_q4_0;
_Static_assert(sizeof(eng_block_q4_0) == sizeof(uint16_t) + ENG_QK / 2, "q4_0 block is 18 bytes");

/* x = d * q + m */
typedef struct __attribute__((packed)) eng_block_q4_1 {
    uint16_t d; /* fp16 */
    uint16_t m; /* fp16 */
    uint8_t qs[ENG_QK / 2];
} eng_block_q4_1;
_Static_assert(sizeof(eng_block_q4_1) == 2 * sizeof(uint16_t) + ENG_QK / 2,
               "q4_1 block is 20 bytes");

/* x = d * (q - 16), q of 5 bits */
typedef struct __attribute__((packed)) eng_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[ENG_QK / 2];
} eng_block_q5_0;
_Static_assert(sizeof(eng_block_q5_0) == sizeof(uint16_t) + sizeof(uint32_t) + ENG_QK / 2,
               "q5_0 block is 22 bytes");

/* x = d * q + m, q of 5 bits */
typedef struct __attribute__((packed)) eng_block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[ENG_QK / 2];
} eng_block_q5_1;
_Static_assert(sizeof(eng_block_q5_1) == 2 * sizeof(uint16_t) + sizeof(uint32_t) + ENG_QK / 2,
               "q5_1 block is 24 bytes");

/* x = d * q; also the activation format of the 32-element block types */
typedef struct __attribute__((packed)) eng_block_q8_0 {
    uint16_t d;
    int8_t qs[ENG_QK];
} eng_block_q8_0;
_Static_assert(sizeof(eng_block_q8_0) == sizeof(uint16_t) + ENG_QK, "q8_0 block is 34 bytes");

/* Q8_0 plus s = d * sum(qs); known for its size only (never read or produced here) */
typedef struct __attribute__((packed)) eng_block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[ENG_QK];
} eng_block_q8_1;
_Static_assert(sizeof(eng_block_q8_1) == 2 * sizeof(uint16_t) + ENG_QK, "q8_1 block is 36 bytes");

/* x = d * sc * q - dmin * m over 8 sub-blocks of 32 */
typedef struct __attribute__((packed)) eng_block_q4_K {
    uint16_t d;    /* scale of the 6-bit sub-block scales */
    uint16_t dmin; /* scale of the 6-bit sub-block mins */
    uint8_t scales[ENG_K_SCALES];
    uint8_t qs[ENG_QK_K / 2];
} eng_block_q4_K;
_Static_assert(sizeof(eng_block_q4_K) == 2 * sizeof(uint16_t) + ENG_K_SCALES + ENG_QK_K / 2,
               "q4_K block is 144 bytes");

/* as Q4_K with a fifth bit per code in qh */
typedef struct __attribute__((packed)) eng_block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[ENG_K_SCALES];
    uint8_t qh[ENG_QK_K / 8];
    uint8_t qs[ENG_QK_K / 2];
} eng_block_q5_K;
_Static_assert(sizeof(eng_block_q5_K) ==
                   2 * sizeof(uint16_t) + ENG_K_SCALES + ENG_QK_K / 8 + ENG_QK_K / 2,
               "q5_K block is 176 bytes");

/* x = d * sc * (q - 32) over 16 sub-blocks of 16 */
typedef struct __attribute__((packed)) eng_block_q6_K {
    uint8_t ql[ENG_QK_K / 2];
    uint8_t qh[ENG_QK_K / 4];
    int8_t scales[ENG_QK_K / 16];
    uint16_t d;
} eng_block_q6_K;
_Static_assert(sizeof(eng_block_q6_K) == sizeof(uint16_t) + ENG_QK_K / 16 + 3 * ENG_QK_K / 4,
               "q6_K block is 210 bytes");

/* Activations for the K-quants: x = d * q, with the sums of each 16 codes precomputed */
typedef struct __attribute__((packed)) eng_block_q8_K {
    float d;
    int8_t qs[ENG_QK_K];
    int16_t bsums[ENG_QK_K / 16];
} eng_block_q8_K;
_Static_assert(sizeof(eng_block_q8_K) == sizeof(float) + ENG_QK_K + ENG_QK_K / 16 * sizeof(int16_t),
               "q8_K block is 292 bytes");

/* x = d * (sc & 15) * q - dmin * (sc >> 4) over 16 sub-blocks of 16, q of 2 bits. Element
 * 128h + 32j + l (l < 32) is bits 2j..2j+1 of qs[32h + l]; sub-block k is elements
 * 16k..16k+15 and takes scales[k]. */
typedef struct __attribute__((packed)) eng_block_q2_K {
    uint8_t scales[ENG_QK_K / 16]; /* low nibble: scale, high nibble: min */
    uint8_t qs[ENG_QK_K / 4];
    uint16_t d;    /* fp16 scale of the 4-bit scales */
    uint16_t dmin; /* fp16 scale of the 4-bit mins */
} eng_block_q2_K;
#define ENG_Q2_K_BYTES (ENG_QK_K / 16 + ENG_QK_K / 4 + 2 * sizeof(uint16_t))
_Static_assert(sizeof(eng_block_q2_K) == ENG_Q2_K_BYTES, "q2_K block is 84 bytes");
_Static_assert(ENG_Q2_K_BYTES == 84, "q2_K block is 84 bytes");

/* x = d * (sc - 32) * (q - 4) over 16 sub-blocks of 16, q of 3 bits: the low 2 bits as in
 * Q2_K's qs, the third from bit 4h + j of hmask[l] for element 128h + 32j + l. The 16 six-bit
 * scales: low 4 bits in the nibbles of bytes 0..7 (scale k < 8 low nibble of byte k, k >= 8
 * high nibble of byte k - 8), top 2 bits in bits 2(k / 4).. of byte 8 + k % 4. */
typedef struct __attribute__((packed)) eng_block_q3_K {
    uint8_t hmask[ENG_QK_K / 8];
    uint8_t qs[ENG_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} eng_block_q3_K;
#define ENG_Q3_K_BYTES (ENG_QK_K / 8 + ENG_QK_K / 4 + ENG_QK_K / 16 * 6 / 8 + sizeof(uint16_t))
_Static_assert(sizeof(eng_block_q3_K) == ENG_Q3_K_BYTES, "q3_K block is 110 bytes");
_Static_assert(ENG_Q3_K_BYTES == 110, "q3_K block is 110 bytes");

/* x = d * eng_iq4nl_values[q]: 4-bit indices into a fixed non-linear table, nibbles ordered
 * as Q4_0 (element j low nibble of qs[j], element j + 16 its high nibble). */
typedef struct __attribute__((packed)) eng_block_iq4_nl {
    uint16_t d;
    uint8_t qs[ENG_QK / 2];
} eng_block_iq4_nl;
_Static_assert(sizeof(eng_block_iq4_nl) == sizeof(uint16_t) + ENG_QK / 2,
               "iq4_nl block is 18 bytes");

/* IQ4_NL codes under 8 six-bit sub-block scales: x = d * (ls - 32) * eng_iq4nl_values[q] for
 * sub-block ib of 32 (qs[16 ib ..] as one IQ4_NL block); ls has its low 4 bits in nibble ib % 2
 * of scales_l[ib / 2] and its top 2 bits in bits 2 ib, 2 ib + 1 of scales_h. */
typedef struct __attribute__((packed)) eng_block_iq4_xs {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[ENG_QK_K / 64];
    uint8_t qs[ENG_QK_K / 2];
} eng_block_iq4_xs;
_Static_assert(sizeof(eng_block_iq4_xs) == 2 * sizeof(uint16_t) + ENG_QK_K / 64 + ENG_QK_K / 2,
               "iq4_xs block is 136 bytes");

/* The 16 values the IQ4 indices stand for (ggml's kvalues_iq4nl). */
extern const int8_t eng_iq4nl_values[16];

/* Sizes only: a type we name but do not read (IQ2_XXS: fp16 d and 64 bytes of grid codes). */
#define ENG_IQ2_XXS_BYTES (sizeof(uint16_t) + ENG_QK_K / 4)

/* The 16 six-bit Q3_K scales, minus 32, from their 12 packed bytes. */
static inline void eng_q3_K_scales(const uint8_t *q, int8_t *sc)
{
    for (int k = 0; k < 16; k++) {
        const int lo = k < 8 ? q[k] & 0xF : q[k - 8] >> 4;
        const int hi = (q[8 + k % 4] >> (2 * (k / 4))) & 3;
        sc[k] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* The 6-bit scale of IQ4_XS sub-block ib, minus 32. */
static inline int eng_iq4_xs_scale(const eng_block_iq4_xs *b, int ib)
{
    const int lo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
    const int hi = (b->scales_h >> (2 * ib)) & 3;
    return (lo | hi << 4) - 32;
}

/* Scale (*sc) and min (*m) of sub-block j (0..7) from the 12 packed bytes of Q4_K/Q5_K:
 * sub-blocks 0-3 keep 6 bits in bytes j and j+4; sub-blocks 4-7 keep their low 4 bits in
 * byte j+4 and their top 2 bits in the spare top bits of bytes j-4 and j. */
static inline void eng_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* The 32 high bits of a Q5_0/Q5_1 block as one little-endian word. */
static inline uint32_t eng_q5_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* Quantizers of the K-quant family (quant_k.c); n is a multiple of ENG_QK_K. */
void eng_quantize_q4_K(const float *x, eng_block_q4_K *y, int64_t n);
void eng_quantize_q6_K(const float *x, eng_block_q6_K *y, int64_t n);
void eng_quantize_q8_K(const float *x, eng_block_q8_K *y, int64_t n);
void eng_dequantize_q4_K(const eng_block_q4_K *x, float *y, int64_t n);
void eng_dequantize_q5_K(const eng_block_q5_K *x, float *y, int64_t n);
void eng_dequantize_q6_K(const eng_block_q6_K *x, float *y, int64_t n);
void eng_dequantize_q8_K(const eng_block_q8_K *x, float *y, int64_t n);
void eng_quantize_q2_K(const float *x, eng_block_q2_K *y, int64_t n);
void eng_quantize_q3_K(const float *x, eng_block_q3_K *y, int64_t n);
void eng_quantize_q5_K(const float *x, eng_block_q5_K *y, int64_t n);
void eng_dequantize_q2_K(const eng_block_q2_K *x, float *y, int64_t n);
void eng_dequantize_q3_K(const eng_block_q3_K *x, float *y, int64_t n);

/* The IQ4 types (quant_iq.c): n a multiple of 32 (IQ4_NL) or 256 (IQ4_XS). */
void eng_quantize_iq4_nl(const float *x, eng_block_iq4_nl *y, int64_t n);
void eng_quantize_iq4_xs(const float *x, eng_block_iq4_xs *y, int64_t n);
void eng_dequantize_iq4_nl(const eng_block_iq4_nl *x, float *y, int64_t n);
void eng_dequantize_iq4_xs(const eng_block_iq4_xs *x, float *y, int64_t n);

/* Quantizers of the 32-element family (quant.c), also used for the activations. */
void eng_quantize_q8_0(const float *x, eng_block_q8_0 *y, int64_t n);
void eng_quantize_q4_0(const float *x, eng_block_q4_0 *y, int64_t n);

/* eng_fp16_to_f32 inlined for the scalar loops (exact; subnormals, inf and NaN kept). */
static inline float eng_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    uint32_t bits;
    float f;
    if (exp == 0x1F) { /* inf or NaN, payload kept */
        bits = sign | 0x7F800000 | man << 13;
    } else if (exp) { /* rebias 15 -> 127 */
        bits = sign | (exp + 112) << 23 | man << 13;
    } else { /* zero or subnormal: man * 2^-24, exact in float */
        f = (float)man * 0x1p-24f;
        memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    }
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Half-precision scale of a block, clamped so a huge block saturates instead of turning
 * into inf (and inf * 0 into NaN). */
static inline uint16_t eng_fp16_scale(float d)
{
    return eng_f32_to_fp16(d > ENG_FP16_MAX ? ENG_FP16_MAX : d < -ENG_FP16_MAX ? -ENG_FP16_MAX : d);
}

#endif
