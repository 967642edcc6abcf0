/*
 * kernels_avx2.c - AVX2 + FMA + F16C kernels for every supported weight type. Each has a
 * scalar twin in kernels.c; the tests compare the two.
 *
 * DESIGN. Every function carries a target attribute instead of the build using -mavx2, so
 * the library runs on any x86-64 and kernels.c calls these only when the CPU has them.
 * Each type has one body: a step that dots one block of a weight row with that block of NT
 * activation rows, and a loop over the blocks. The two kernel shapes of kernels_isa.h
 * instantiate it with a constant NT (1, or 2, 3 or ENG_TILE_TOKENS for a tile); the token loops are
 * fully unrolled so the accumulators stay in registers. With one token, consecutive blocks go to
 * two accumulators so the multiply-add latency does not serialise the loop.
 *
 * Integer dot products use maddubs (unsigned 8-bit x signed 8-bit, pairs summed to 16 bits)
 * and madd (pairs of 16-bit summed to 32 bits). maddubs needs an unsigned operand, so the
 * weight codes are kept unsigned and their offset is taken out through the activations:
 * codes . y - 8 * sum(y) for Q4_0, with 8 * sum(y) from one more maddubs of the activation
 * block. Q8_0 weights are signed and use the sign trick instead: |w| . (y * sign(w)). No 16-bit sum
 * can saturate: the largest pair is 2 * 63 * 127 (Q6_K) or 2 * 128 * 127 (Q8_0).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels_isa.h"
#include "quant.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))
#define TT ENG_TILE_TOKENS /* array bound: the largest NT */

/* Token pointers of a tile; positions past nt repeat the last valid one. */
INLINE void tile_ptrs(const uint8_t *x, size_t xs, int nt, int NT, const uint8_t **xp)
{
    for (int t = 0; t < NT; t++)
        xp[t] = x + (size_t)(t < nt ? t : nt - 1) * xs;
}

INLINE AVX2 float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE AVX2 void zero_acc(__m256 *acc)
{
    for (int t = 0; t < TT; t++)
        acc[t] = _mm256_setzero_ps();
}

/* Stores the nt valid results of a tile; a second accumulator set (one-token loops) is
 * added in first. */
INLINE AVX2 void store_tile(const __m256 *acc, const __m256 *acc2, int NT, int nt, float *y,
                            size_t ldy)
{
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        if (t < nt)
            y[(size_t)t * ldy] = hsum(acc2 ? _mm256_add_ps(acc[t], acc2[t]) : acc[t]);
}

/* A half-precision scale broadcast to 8 floats. */
INLINE AVX2 __m256 h2f8(uint16_t h)
{
    return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}

/* ---- float weights: F32, F16, BF16 against F32 activations ------------------------- */

enum fkind { F_F32, F_F16, F_BF16 };

INLINE AVX2 __m256 fload8(const int kind, const uint8_t *p, int64_t i)
{
    const __m128i *h = (const __m128i *)((const uint16_t *)p + i);
    __m256 v;
    if (kind == F_F32)
        v = _mm256_loadu_ps((const float *)p + i);
    else if (kind == F_F16)
        v = _mm256_cvtph_ps(_mm_loadu_si128(h));
    else /* bf16 is the top half of a float */
        v = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(h)), 16));
    return v;
}

INLINE AVX2 float fload1(const int kind, const uint8_t *p, int64_t i)
{
    const uint16_t *h = (const uint16_t *)p;
    /* bf16 inline: an out-of-line call here would make the compiler keep the vector
     * accumulators in memory across the whole loop (vector registers are caller-saved) */
    const uint32_t bf = (uint32_t)h[i] << 16;
    float v;
    memcpy(&v, &bf, sizeof v);
    return kind == F_F32 ? ((const float *)p)[i] : kind == F_F16 ? _cvtsh_ss(h[i]) : v;
}

INLINE AVX2 void float_kernel(const int kind, const int NT, int64_t n, const uint8_t *w,
                              const uint8_t *x, size_t xs, int nt, float *y, size_t ldy)
{
    /* independent chains per token: 4 for a lone token, 2 each for a tile */
    enum { U = 4 };
    const int u = NT == 1 ? 4 : 2;
    const uint8_t *xp[TT];
    __m256 acc[U][TT];
    float tail[TT] = {0};
    const int64_t nv = n / (8 * u) * (8 * u);
    tile_ptrs(x, xs, nt, NT, xp);
    /* every loop over acc is unrolled, so the array lives in registers */
#pragma GCC unroll 4
    for (int k = 0; k < U; k++)
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++)
            acc[k][t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nv; i += 8 * u) {
#pragma GCC unroll 4
        for (int k = 0; k < u; k++) {
            const __m256 wv = fload8(kind, w, i + 8 * k);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++)
                acc[k][t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps((const float *)xp[t] + i + 8 * k),
                                            acc[k][t]);
        }
    }
    for (int64_t i = nv; i < n; i++)
        for (int t = 0; t < NT; t++)
            tail[t] += fload1(kind, w, i) * ((const float *)xp[t])[i];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        __m256 s = _mm256_setr_ps(tail[t], 0, 0, 0, 0, 0, 0, 0);
#pragma GCC unroll 4
        for (int k = 0; k < u; k++)
            s = _mm256_add_ps(s, acc[k][t]);
        acc[0][t] = s;
    }
    store_tile(acc[0], NULL, NT, nt, y, ldy);
}

/* ---- Q4_0, Q4_1, Q5_0, Q5_1 against Q8_0 ------------------------------------------- */

enum bkind { B_Q4_0, B_Q4_1, B_Q5_0, B_Q5_1 };

INLINE size_t bsize(const int kind)
{
    return kind == B_Q4_0   ? sizeof(eng_block_q4_0)
           : kind == B_Q4_1 ? sizeof(eng_block_q4_1)
           : kind == B_Q5_0 ? sizeof(eng_block_q5_0)
                            : sizeof(eng_block_q5_1);
}

/* 32 bytes, byte i = 0xFF if bit i of bits is set, else 0. */
INLINE AVX2 __m256i bits_to_bytes(uint32_t bits)
{
    /* byte i takes byte i / 8 of bits, then every bit but bit i % 8 is forced on */
    const __m256i spread =
        _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i others = _mm256_set1_epi64x(0x7FBFDFEFF7FBFDFELL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    return _mm256_cmpeq_epi8(_mm256_or_si256(v, others), _mm256_set1_epi64x(-1));
}

/* The 32 nibbles of 16 bytes in element order: the low nibbles, then the high ones. The
 * bytes are broadcast to both halves and the upper half shifted right by 4 (per 32-bit
 * lane; the bits that cross into a byte's top half are masked off with the rest). */
INLINE AVX2 __m256i nibbles32(const uint8_t *qs)
{
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    return _mm256_and_si256(_mm256_srlv_epi32(both, shift), _mm256_set1_epi8(0x0F));
}

/* The 32 unsigned codes of a block in element order: 0..15, or 0..31 for Q5. */
INLINE AVX2 __m256i bcodes(const int kind, const uint8_t *blk)
{
    const uint8_t *qs = kind == B_Q4_0   ? ((const eng_block_q4_0 *)blk)->qs
                        : kind == B_Q4_1 ? ((const eng_block_q4_1 *)blk)->qs
                        : kind == B_Q5_0 ? ((const eng_block_q5_0 *)blk)->qs
                                         : ((const eng_block_q5_1 *)blk)->qs;
    __m256i q = nibbles32(qs);
    if (kind == B_Q5_0 || kind == B_Q5_1) {
        const uint8_t *qh =
            kind == B_Q5_0 ? ((const eng_block_q5_0 *)blk)->qh : ((const eng_block_q5_1 *)blk)->qh;
        q = _mm256_or_si256(q,
                            _mm256_and_si256(bits_to_bytes(eng_q5_qh(qh)), _mm256_set1_epi8(0x10)));
    }
    return q;
}

INLINE uint16_t bscale(const int kind, const uint8_t *blk)
{
    return kind == B_Q4_0   ? ((const eng_block_q4_0 *)blk)->d
           : kind == B_Q4_1 ? ((const eng_block_q4_1 *)blk)->d
           : kind == B_Q5_0 ? ((const eng_block_q5_0 *)blk)->d
                            : ((const eng_block_q5_1 *)blk)->d;
}

INLINE uint16_t bmin(const int kind, const uint8_t *blk)
{
    return kind == B_Q4_1 ? ((const eng_block_q4_1 *)blk)->m : ((const eng_block_q5_1 *)blk)->m;
}

/* Block b of the weight row w against block b of the NT activation rows xp. */
INLINE AVX2 void blk_step(const int kind, const int NT, const uint8_t *w, const uint8_t **xp,
                          int64_t b, __m256 *acc)
{
    const int has_min = kind == B_Q4_1 || kind == B_Q5_1;
    const __m256i ones16 = _mm256_set1_epi16(1);
    /* codes stand for code - offset (Q4_0, Q5_0), or code * d + m (offset 1 then yields
     * the pair sums of y, for the m term) */
    const __m256i offset = _mm256_set1_epi8(kind == B_Q4_0 ? 8 : kind == B_Q5_0 ? 16 : 1);
    const uint8_t *blk = w + (size_t)b * bsize(kind);
    const __m256i q = bcodes(kind, blk);
    const __m256 dw = h2f8(bscale(kind, blk));
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_0 *yb = (const eng_block_q8_0 *)xp[t] + b;
        const __m256i yq = _mm256_loadu_si256((const __m256i *)yb->qs);
        const __m256 dy = h2f8(yb->d);
        const __m256i yoff = _mm256_maddubs_epi16(offset, yq);
        __m256i p = _mm256_maddubs_epi16(q, yq);
        if (!has_min)
            p = _mm256_sub_epi16(p, yoff);
        const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones16));
        acc[t] = _mm256_fmadd_ps(s, _mm256_mul_ps(dw, dy), acc[t]);
        if (has_min) {
            const __m256 ysum = _mm256_cvtepi32_ps(_mm256_madd_epi16(yoff, ones16));
            acc[t] = _mm256_fmadd_ps(ysum, _mm256_mul_ps(h2f8(bmin(kind, blk)), dy), acc[t]);
        }
    }
}

INLINE AVX2 void blk_kernel(const int kind, const int NT, int64_t n, const uint8_t *w,
                            const uint8_t *x, size_t xs, int nt, float *y, size_t ldy)
{
    const int64_t nb = n / ENG_QK;
    const uint8_t *xp[TT];
    __m256 acc[TT], acc2[TT];
    int64_t b = 0;
    tile_ptrs(x, xs, nt, NT, xp);
    zero_acc(acc);
    zero_acc(acc2);
    for (; NT == 1 && b + 2 <= nb; b += 2) {
        blk_step(kind, NT, w, xp, b, acc);
        blk_step(kind, NT, w, xp, b + 1, acc2);
    }
    for (; b < nb; b++)
        blk_step(kind, NT, w, xp, b, acc);
    store_tile(acc, NT == 1 ? acc2 : NULL, NT, nt, y, ldy);
}

/* ---- Q8_0 against Q8_0 ------------------------------------------------------------- */

INLINE AVX2 void q8_0_step(const int NT, const uint8_t *w, const uint8_t **xp, int64_t b,
                           __m256 *acc)
{
    const eng_block_q8_0 *wb = (const eng_block_q8_0 *)w + b;
    const __m256i q = _mm256_loadu_si256((const __m256i *)wb->qs);
    const __m256i aq = _mm256_sign_epi8(q, q);
    const __m256 dw = h2f8(wb->d);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_0 *yb = (const eng_block_q8_0 *)xp[t] + b;
        const __m256i yq = _mm256_loadu_si256((const __m256i *)yb->qs);
        const __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(yq, q));
        const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
        acc[t] = _mm256_fmadd_ps(s, _mm256_mul_ps(dw, h2f8(yb->d)), acc[t]);
    }
}

INLINE AVX2 void q8_0_kernel(const int NT, int64_t n, const uint8_t *w, const uint8_t *x, size_t xs,
                             int nt, float *y, size_t ldy)
{
    const int64_t nb = n / ENG_QK;
    const uint8_t *xp[TT];
    __m256 acc[TT], acc2[TT];
    int64_t b = 0;
    tile_ptrs(x, xs, nt, NT, xp);
    zero_acc(acc);
    zero_acc(acc2);
    for (; NT == 1 && b + 2 <= nb; b += 2) {
        q8_0_step(NT, w, xp, b, acc);
        q8_0_step(NT, w, xp, b + 1, acc2);
    }
    for (; b < nb; b++)
        q8_0_step(NT, w, xp, b, acc);
    store_tile(acc, NT == 1 ? acc2 : NULL, NT, nt, y, ldy);
}

/* ---- Q4_K, Q5_K against Q8_K ------------------------------------------------------- */

/* The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K/Q5_K super-block, unpacked
 * from their 12-byte 6-bit packing four at a time (see eng_k4_scale_min). */
INLINE AVX2 __m128i k4_scales_mins(const uint8_t *q)
{
    uint32_t a, b, c;
    memcpy(&a, q, 4);
    memcpy(&b, q + 4, 4);
    memcpy(&c, q + 8, 4);
    const uint32_t lo6 = 0x3F3F3F3F, lo4 = 0x0F0F0F0F, lo2 = 0x03030303;
    const uint32_t sc03 = a & lo6, m03 = b & lo6;
    const uint32_t sc47 = (c & lo4) | ((a >> 6) & lo2) << 4;
    const uint32_t m47 = ((c >> 4) & lo4) | ((b >> 6) & lo2) << 4;
    return _mm_setr_epi32((int)sc03, (int)sc47, (int)m03, (int)m47);
}

/* Byte shuffle that spreads 16-bit lane k over a whole 128-bit lane. */
INLINE AVX2 __m256i lane16(int k)
{
    return _mm256_set1_epi16((short)((2 * k + 1) << 8 | 2 * k));
}

INLINE AVX2 void k45_step(const int q5, const int NT, const uint8_t *w, const uint8_t **xp,
                          int64_t b, __m256 *acc)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    const uint8_t *blk = w + (size_t)b * (q5 ? sizeof(eng_block_q5_K) : sizeof(eng_block_q4_K));
    /* Q4_K and Q5_K agree on the first 16 bytes: d, dmin, scales */
    const eng_block_q4_K *hd = (const eng_block_q4_K *)blk;
    const uint8_t *qs = q5 ? ((const eng_block_q5_K *)blk)->qs : hd->qs;
    const __m128i sm = k4_scales_mins(hd->scales);
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    const __m128i mn16 = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
    const float d = _cvtsh_ss(hd->d), dmin = _cvtsh_ss(hd->dmin);
    __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)((const eng_block_q5_K *)blk)->qh)
                    : _mm256_setzero_si256();
    __m256i isum[TT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        isum[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) { /* chunk c: sub-blocks 2c (low nibbles) and 2c + 1 */
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i lo = _mm256_and_si256(raw, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        if (q5) { /* bits 2c and 2c + 1 of qh, shifted down to bits 0 and 1, go to bit 4 */
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
            qh = _mm256_srli_epi16(qh, 2);
        }
        const __m256i slo = _mm256_shuffle_epi8(sc16, lane16(2 * c));
        const __m256i shi = _mm256_shuffle_epi8(sc16, lane16(2 * c + 1));
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const int8_t *yq = ((const eng_block_q8_K *)xp[t] + b)->qs + 64 * c;
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)yq));
            const __m256i phi =
                _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(yq + 32)));
            isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(plo, slo),
                                                                 _mm256_madd_epi16(phi, shi)));
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_K *yb = (const eng_block_q8_K *)xp[t] + b;
        /* the mins: sum_j m_j * (sum of y over sub-block j), from the 16-element sums */
        const __m128i ysub = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)yb->bsums),
                                            _mm_loadu_si128((const __m128i *)yb->bsums + 1));
        const __m256 mins = _mm256_zextps128_ps256(_mm_cvtepi32_ps(_mm_madd_epi16(mn16, ysub)));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * yb->d), _mm256_cvtepi32_ps(isum[t]), acc[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * yb->d), mins, acc[t]);
    }
}

INLINE AVX2 void k45_kernel(const int q5, const int NT, int64_t n, const uint8_t *w,
                            const uint8_t *x, size_t xs, int nt, float *y, size_t ldy)
{
    const uint8_t *xp[TT];
    __m256 acc[TT];
    tile_ptrs(x, xs, nt, NT, xp);
    zero_acc(acc);
    for (int64_t b = 0; b < n / ENG_QK_K; b++)
        k45_step(q5, NT, w, xp, b, acc);
    store_tile(acc, NULL, NT, nt, y, ldy);
}

/* ---- Q6_K against Q8_K ------------------------------------------------------------- */

/* Byte shuffle giving 8 copies of byte a, then 8 copies of byte b. */
INLINE AVX2 __m128i pair_bytes(int a, int b)
{
    return _mm_setr_epi8((char)a, (char)a, (char)a, (char)a, (char)a, (char)a, (char)a, (char)a,
                         (char)b, (char)b, (char)b, (char)b, (char)b, (char)b, (char)b, (char)b);
}

INLINE AVX2 void q6_K_step(const int NT, const uint8_t *w, const uint8_t **xp, int64_t b,
                           __m256 *acc)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const eng_block_q6_K *wb = (const eng_block_q6_K *)w + b;
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)wb->scales);
    const float d = _cvtsh_ss(wb->d);
    __m256i isum[TT];
    /* codes are stored + 32: take 32 * sum_g sc_g * (sum of y over g) back out */
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_K *yb = (const eng_block_q8_K *)xp[t] + b;
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8),
                                              _mm256_loadu_si256((const __m256i *)yb->bsums));
        isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(wb->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(wb->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(wb->qh + 32 * h));
        __m256i q[4], s[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                               _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                               _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                               _mm256_and_si256(qh, m30));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) /* q[k] covers sub-blocks 8h + 2k and 8h + 2k + 1 */
            s[k] = _mm256_cvtepi8_epi16(
                _mm_shuffle_epi8(sc8, pair_bytes(8 * h + 2 * k, 8 * h + 2 * k + 1)));
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const int8_t *yq = ((const eng_block_q8_K *)xp[t] + b)->qs + 128 * h;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i p =
                    _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(yq + 32 * k)));
                isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, s[k]));
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const float dy = ((const eng_block_q8_K *)xp[t] + b)->d;
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(isum[t]), acc[t]);
    }
}

INLINE AVX2 void q6_K_kernel(const int NT, int64_t n, const uint8_t *w, const uint8_t *x, size_t xs,
                             int nt, float *y, size_t ldy)
{
    const uint8_t *xp[TT];
    __m256 acc[TT];
    tile_ptrs(x, xs, nt, NT, xp);
    zero_acc(acc);
    for (int64_t b = 0; b < n / ENG_QK_K; b++)
        q6_K_step(NT, w, xp, b, acc);
    store_tile(acc, NULL, NT, nt, y, ldy);
}

/* ---- the kernel shapes ------------------------------------------------------------- */

/* Every shape has the eng_tile_fn signature. */
#define SHAPES(name, call)                                                                         \
    static AVX2 void name##_dot(int64_t n, const uint8_t *w, const uint8_t *x, size_t xs, int nt,  \
                                float *y, size_t ldy)                                              \
    {                                                                                              \
        call(1, n, w, x, xs, nt, y, ldy);                                                          \
    }                                                                                              \
    static AVX2 void name##_tile(int64_t n, const uint8_t *w, const uint8_t *x, size_t xs, int nt, \
                                 float *y, size_t ldy)                                             \
    {                                                                                              \
        /* a short tile (a batch of 2 or 3 decoding sequences) computes only its tokens */         \
        if (nt == 2)                                                                               \
            call(2, n, w, x, xs, nt, y, ldy);                                                      \
        else if (nt == 3)                                                                          \
            call(3, n, w, x, xs, nt, y, ldy);                                                      \
        else                                                                                       \
            call(TT, n, w, x, xs, nt, y, ldy);                                                     \
    }

#define F32_K(NT, ...) float_kernel(F_F32, NT, __VA_ARGS__)
#define F16_K(NT, ...) float_kernel(F_F16, NT, __VA_ARGS__)
#define BF16_K(NT, ...) float_kernel(F_BF16, NT, __VA_ARGS__)
#define Q4_0_K(NT, ...) blk_kernel(B_Q4_0, NT, __VA_ARGS__)
#define Q4_1_K(NT, ...) blk_kernel(B_Q4_1, NT, __VA_ARGS__)
#define Q5_0_K(NT, ...) blk_kernel(B_Q5_0, NT, __VA_ARGS__)
#define Q5_1_K(NT, ...) blk_kernel(B_Q5_1, NT, __VA_ARGS__)
#define Q4_K_K(NT, ...) k45_kernel(0, NT, __VA_ARGS__)
#define Q5_K_K(NT, ...) k45_kernel(1, NT, __VA_ARGS__)

SHAPES(f32, F32_K)
SHAPES(f16, F16_K)
SHAPES(bf16, BF16_K)
SHAPES(q4_0, Q4_0_K)
SHAPES(q4_1, Q4_1_K)
SHAPES(q5_0, Q5_0_K)
SHAPES(q5_1, Q5_1_K)
SHAPES(q8_0, q8_0_kernel)
SHAPES(q4_K, Q4_K_K)
SHAPES(q5_K, Q5_K_K)
SHAPES(q6_K, q6_K_kernel)

int eng_kernels_avx2(eng_type wtype, eng_kernel_set *ks)
{
    static const eng_kernel_set sets[ENG_TYPE_COUNT] = {
        [ENG_TYPE_F32] = {f32_dot, f32_tile},    [ENG_TYPE_F16] = {f16_dot, f16_tile},
        [ENG_TYPE_BF16] = {bf16_dot, bf16_tile}, [ENG_TYPE_Q4_0] = {q4_0_dot, q4_0_tile},
        [ENG_TYPE_Q4_1] = {q4_1_dot, q4_1_tile}, [ENG_TYPE_Q5_0] = {q5_0_dot, q5_0_tile},
        [ENG_TYPE_Q5_1] = {q5_1_dot, q5_1_tile}, [ENG_TYPE_Q8_0] = {q8_0_dot, q8_0_tile},
        [ENG_TYPE_Q4_K] = {q4_K_dot, q4_K_tile}, [ENG_TYPE_Q5_K] = {q5_K_dot, q5_K_tile},
        [ENG_TYPE_Q6_K] = {q6_K_dot, q6_K_tile},
    };
    int found = (unsigned)wtype < ENG_TYPE_COUNT && sets[wtype].dot;
    if (found)
        *ks = sets[wtype];
    return found || eng_kernels_avx2_lowbit(wtype, ks);
}
