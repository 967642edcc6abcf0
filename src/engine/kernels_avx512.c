/*
 * kernels_avx512.c - AVX-512 kernels (F/BW/VL, VNNI for the integer ones). Each has a
 * scalar twin in kernels.c; the tests compare the two.
 *
 * DESIGN. The dot and tile shapes follow kernels_avx2.c (one step per block, instantiated
 * for 1 token and for a tile of ENG_TILE_TOKENS), with two gains over AVX2:
 *   - float weights use 512-bit vectors: 16 elements per conversion and multiply-add;
 *   - VNNI fuses the integer dot products: vpdpbusd (unsigned 8-bit x signed 8-bit, four
 *     products summed into a 32-bit lane) replaces maddubs + madd, and vpdpwssd (16-bit
 *     pairs multiplied and accumulated) folds the K-quant sub-block scales into the sum.
 * Float weights also get a batch kernel (float_gemm: a 4-row x 6-token register tile).
 * Q4_0, Q8_0 and IQ4_NL have their own whole-range kernels in kernels_avx512_q8.c, Q2_K, Q3_K
 * and IQ4_XS theirs in kernels_lowbit_avx512.c. The legacy Q4_1,
 * Q5_0 and Q5_1 were not ported: eng_kernels_avx512 reports no kernel for them and
 * kernels.c falls back to AVX2.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "kernels_isa.h"
#include "quant.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))
#define TT ENG_TILE_TOKENS /* array bound: the largest NT */

/* Token pointers of a tile; positions past nt repeat the last valid one. */
INLINE void tile_ptrs(const uint8_t *x, size_t xs, int nt, int NT, const uint8_t **xp)
{
    for (int t = 0; t < NT; t++)
        xp[t] = x + (size_t)(t < nt ? t : nt - 1) * xs;
}

INLINE AVX512 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Stores the nt valid results of a tile of 256-bit accumulators (plus a second set, for
 * one-token loops). */
INLINE AVX512 void store8(const __m256 *acc, const __m256 *acc2, int NT, int nt, float *y,
                          size_t ldy)
{
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        if (t < nt)
            y[(size_t)t * ldy] = hsum8(acc2 ? _mm256_add_ps(acc[t], acc2[t]) : acc[t]);
}

/* ---- float weights: F32, F16, BF16 against F32 activations ------------------------- */

enum fkind { F_F32, F_F16, F_BF16 };

INLINE AVX512 __m512 fload16(const int kind, const uint8_t *p, int64_t i)
{
    const __m256i *h = (const __m256i *)((const uint16_t *)p + i);
    __m512 v;
    if (kind == F_F32)
        v = _mm512_loadu_ps((const float *)p + i);
    else if (kind == F_F16)
        v = _mm512_cvtph_ps(_mm256_loadu_si256(h));
    else /* bf16 is the top half of a float */
        v = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(h)), 16));
    return v;
}

INLINE AVX512 float fload1(const int kind, const uint8_t *p, int64_t i)
{
    const uint16_t *h = (const uint16_t *)p;
    /* bf16 inline: an out-of-line call here would make the compiler keep the vector
     * accumulators in memory across the whole loop (vector registers are caller-saved) */
    const uint32_t bf = (uint32_t)h[i] << 16;
    float v;
    memcpy(&v, &bf, sizeof v);
    return kind == F_F32 ? ((const float *)p)[i] : kind == F_F16 ? _cvtsh_ss(h[i]) : v;
}

INLINE AVX512 void float_kernel(const int kind, const int NT, int64_t n, const uint8_t *w,
                                const uint8_t *x, size_t xs, int nt, float *y, size_t ldy)
{
    /* independent chains per token: 4 for a lone token, 2 each for a tile */
    enum { U = 4 };
    const int u = NT == 1 ? 4 : 2;
    const uint8_t *xp[TT];
    __m512 acc[U][TT];
    float tail[TT] = {0};
    const int64_t nv = n / (16 * u) * (16 * u);
    tile_ptrs(x, xs, nt, NT, xp);
    /* every loop over acc is unrolled, so the array lives in registers */
#pragma GCC unroll 4
    for (int k = 0; k < U; k++)
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++)
            acc[k][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nv; i += 16 * u) {
#pragma GCC unroll 4
        for (int k = 0; k < u; k++) {
            const __m512 wv = fload16(kind, w, i + 16 * k);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++)
                acc[k][t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps((const float *)xp[t] + i + 16 * k),
                                            acc[k][t]);
        }
    }
    for (int64_t i = nv; i < n; i++)
        for (int t = 0; t < NT; t++)
            tail[t] += fload1(kind, w, i) * ((const float *)xp[t])[i];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        __m512 s = acc[0][t];
#pragma GCC unroll 4
        for (int k = 1; k < u; k++)
            s = _mm512_add_ps(s, acc[k][t]);
        if (t < nt)
            y[(size_t)t * ldy] = _mm512_reduce_add_ps(s) + tail[t];
    }
}

/* Masked (zero-filled) load of the last m < 16 elements. */
INLINE AVX512 __m512 fload16_tail(const int kind, const uint8_t *p, int64_t i, int m)
{
    const __mmask16 k = (__mmask16)((1u << m) - 1);
    const uint16_t *h = (const uint16_t *)p + i;
    __m512 v;
    if (kind == F_F32)
        v = _mm512_maskz_loadu_ps(k, (const float *)p + i);
    else if (kind == F_F16)
        v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, h));
    else
        v = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, h)), 16));
    return v;
}

/* The sums of 4 vectors, in lanes 0-3. */
INLINE AVX512 __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 h =
        _mm256_add_ps(_mm512_castps512_ps256(s),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* Float weights against one token. A row of a few hundred elements is only a few dozen
 * multiply-adds, so its own accumulator chains and final sum cost as much as the row: short
 * rows go 4 at a time, one accumulator each, summed together at the end. Long rows go one at
 * a time (float_kernel): 4 rows side by side are 4 interleaved streams, which read DRAM at
 * half the speed of one (kernels_isa.h), while 4 short rows are one run of a few cache lines. */
#define SHORT_ROW_BYTES 2048

INLINE AVX512 void float_gemv(const int kind, int64_t n, const uint8_t *W, size_t wrow,
                              const uint8_t *xq, float *Y, int64_t r0, int64_t r1)
{
    const float *x = (const float *)xq;
    int64_t r = r0;
    for (; wrow <= SHORT_ROW_BYTES && r + 4 <= r1; r += 4) {
        const uint8_t *w = W + r * wrow;
        __m512 acc[4];
        int64_t i = 0;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            acc[k] = _mm512_setzero_ps();
        for (; i + 16 <= n; i += 16) {
            const __m512 xv = _mm512_loadu_ps(x + i);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                acc[k] = _mm512_fmadd_ps(fload16(kind, w + k * wrow, i), xv, acc[k]);
        }
        if (i < n) {
            const int m = (int)(n - i);
            const __m512 xv = _mm512_maskz_loadu_ps((__mmask16)((1u << m) - 1), x + i);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                acc[k] = _mm512_fmadd_ps(fload16_tail(kind, w + k * wrow, i, m), xv, acc[k]);
        }
        _mm_storeu_ps(Y + r, reduce4(acc[0], acc[1], acc[2], acc[3]));
    }
    for (; r < r1; r++)
        float_kernel(kind, 1, n, W + r * wrow, xq, 0, 1, Y + r, 1);
}

/* Float weights against a batch: R rows x T tokens in registers, each accumulator holding 16
 * partial sums over the columns, so a weight vector is converted once for T tokens and an
 * activation vector loaded once for R rows (R * T multiply-adds per R + T loads). The
 * partial sums are added up once per row and token, at the end. */
#define FR 4 /* rows per register tile */
#define FT 6 /* tokens per register tile */

INLINE AVX512 void float_rt(const int kind, const int R, int64_t n, const uint8_t *w, size_t wrow,
                            const float *const *xp, int nt, float *y, size_t ldy)
{
    __m512 acc[FR][FT];
    int64_t i = 0;
#pragma GCC unroll 4
    for (int r = 0; r < FR; r++)
#pragma GCC unroll 6
        for (int t = 0; t < FT; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        __m512 wv[FR];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = fload16(kind, w + r * wrow, i);
#pragma GCC unroll 6
        for (int t = 0; t < FT; t++) {
            const __m512 xv = _mm512_loadu_ps(xp[t] + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    if (i < n) {
        const int m = (int)(n - i);
        __m512 wv[FR];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = fload16_tail(kind, w + r * wrow, i, m);
#pragma GCC unroll 6
        for (int t = 0; t < FT; t++) {
            const __m512 xv = _mm512_maskz_loadu_ps((__mmask16)((1u << m) - 1), xp[t] + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 6
    for (int t = 0; t < FT; t++) {
        if (t >= nt)
            continue;
        if (R == FR) /* the 4 rows of a token are adjacent in y: one combined sum */
            _mm_storeu_ps(y + (size_t)t * ldy, reduce4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
        else
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                y[(size_t)t * ldy + (size_t)r] = _mm512_reduce_add_ps(acc[r][t]);
    }
}

INLINE AVX512 void float_gemm(const int kind, int64_t n, const uint8_t *W, size_t wrow,
                              const uint8_t *xq, int64_t nt, float *Y, size_t ldy, int64_t r0,
                              int64_t r1)
{
    const float *x = (const float *)xq;
    for (int64_t r = r0; r < r1; r += FR) {
        const int whole = r1 - r >= FR;
        for (int64_t t = 0; t < nt; t += FT) {
            const float *xp[FT];
            const int k = nt - t < FT ? (int)(nt - t) : FT;
            for (int j = 0; j < FT; j++) /* a short tile repeats its last token */
                xp[j] = x + (t + (j < k ? j : k - 1)) * n;
            if (whole) {
                float_rt(kind, FR, n, W + r * wrow, wrow, xp, k, Y + t * ldy + r, ldy);
            } else {
                for (int64_t rr = r; rr < r1; rr++)
                    float_rt(kind, 1, n, W + rr * wrow, wrow, xp, k, Y + t * ldy + rr, ldy);
            }
        }
    }
}

/* ---- Q4_K, Q5_K against Q8_K ------------------------------------------------------------- */

/* The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K/Q5_K super-block (see
 * eng_k4_scale_min), unpacked four at a time. */
INLINE VNNI __m128i k4_scales_mins(const uint8_t *q)
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
INLINE VNNI __m256i lane16(int k)
{
    return _mm256_set1_epi16((short)((2 * k + 1) << 8 | 2 * k));
}

/* One Q4_K (q5 = 0) or Q5_K (q5 = 1) super-block against NT Q8_K blocks. */
INLINE VNNI void k45_step(const int q5, const int NT, const uint8_t *w, const uint8_t **xp,
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
    /* A lone token spreads its sums over 4 chains: one chain of 8 dependent vpdpwssd per
     * super-block made the kernel latency-bound (12 GB/s in L2, 30 with 4 chains). */
    enum { C = 4 };
    const int chains = NT == 1 ? C : 1;
    __m256i isum[C][TT];
#pragma GCC unroll 4
    for (int k = 0; k < chains; k++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            isum[k][t] = _mm256_setzero_si256();
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
            isum[c % chains][t] =
                _mm256_dpwssd_epi32(_mm256_dpwssd_epi32(isum[c % chains][t], plo, slo), phi, shi);
        }
    }
#pragma GCC unroll 4
    for (int k = 1; k < chains; k++)
        isum[0][0] = _mm256_add_epi32(isum[0][0], isum[k][0]);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_K *yb = (const eng_block_q8_K *)xp[t] + b;
        /* the mins: sum_j m_j * (sum of y over sub-block j), from the 16-element sums */
        const __m128i ysub = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)yb->bsums),
                                            _mm_loadu_si128((const __m128i *)yb->bsums + 1));
        const __m256 mins = _mm256_zextps128_ps256(_mm_cvtepi32_ps(_mm_madd_epi16(mn16, ysub)));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * yb->d), _mm256_cvtepi32_ps(isum[0][t]), acc[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * yb->d), mins, acc[t]);
    }
}

INLINE VNNI void k45_kernel(const int q5, const int NT, int64_t n, const uint8_t *w,
                            const uint8_t *x, size_t xs, int nt, float *y, size_t ldy)
{
    const uint8_t *xp[TT];
    __m256 acc[TT];
    tile_ptrs(x, xs, nt, NT, xp);
    for (int t = 0; t < TT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / ENG_QK_K; b++)
        k45_step(q5, NT, w, xp, b, acc);
    store8(acc, NULL, NT, nt, y, ldy);
}

/* ---- Q6_K against Q8_K ------------------------------------------------------------- */

/* Byte shuffle giving 8 copies of byte a, then 8 copies of byte b. */
INLINE VNNI __m128i pair_bytes(int a, int b)
{
    return _mm_setr_epi8((char)a, (char)a, (char)a, (char)a, (char)a, (char)a, (char)a, (char)a,
                         (char)b, (char)b, (char)b, (char)b, (char)b, (char)b, (char)b, (char)b);
}

INLINE VNNI void q6_K_step(const int NT, const uint8_t *w, const uint8_t **xp, int64_t b,
                           __m256 *acc)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const eng_block_q6_K *wb = (const eng_block_q6_K *)w + b;
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)wb->scales);
    const float d = _cvtsh_ss(wb->d);
    /* a lone token spreads its sums over 4 chains (see k45_step) */
    enum { C = 4 };
    const int chains = NT == 1 ? C : 1;
    __m256i isum[C][TT];
    /* codes are stored + 32: take 32 * sum_g sc_g * (sum of y over g) back out */
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_K *yb = (const eng_block_q8_K *)xp[t] + b;
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8),
                                              _mm256_loadu_si256((const __m256i *)yb->bsums));
        isum[0][t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
    }
#pragma GCC unroll 4
    for (int k = 1; k < chains; k++)
        isum[k][0] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(wb->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(wb->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(wb->qh + 32 * h));
        __m256i q[4], s[4];
        /* vpternlog: (a & m) | b in one instruction (0xEA = (A & B) | C) */
        q[0] = _mm256_ternarylogic_epi32(
            ql0, m4, _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4), 0xEA);
        q[1] = _mm256_ternarylogic_epi32(
            ql1, m4, _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2), 0xEA);
        q[2] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(ql0, 4), m4, _mm256_and_si256(qh, m30),
                                         0xEA);
        q[3] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(ql1, 4), m4,
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30), 0xEA);
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
                isum[k % chains][t] = _mm256_dpwssd_epi32(isum[k % chains][t], p, s[k]);
            }
        }
    }
#pragma GCC unroll 4
    for (int k = 1; k < chains; k++)
        isum[0][0] = _mm256_add_epi32(isum[0][0], isum[k][0]);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const float dy = ((const eng_block_q8_K *)xp[t] + b)->d;
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(isum[0][t]), acc[t]);
    }
}

INLINE VNNI void q6_K_kernel(const int NT, int64_t n, const uint8_t *w, const uint8_t *x, size_t xs,
                             int nt, float *y, size_t ldy)
{
    const uint8_t *xp[TT];
    __m256 acc[TT];
    tile_ptrs(x, xs, nt, NT, xp);
    for (int t = 0; t < TT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / ENG_QK_K; b++)
        q6_K_step(NT, w, xp, b, acc);
    store8(acc, NULL, NT, nt, y, ldy);
}

/* ---- the kernel shapes ------------------------------------------------------------- */

/* Every shape has the eng_tile_fn signature. */
#define SHAPES(name, attr, call)                                                                   \
    static attr void name##_dot(int64_t n, const uint8_t *w, const uint8_t *x, size_t xs, int nt,  \
                                float *y, size_t ldy)                                              \
    {                                                                                              \
        call(1, n, w, x, xs, nt, y, ldy);                                                          \
    }                                                                                              \
    static attr void name##_tile(int64_t n, const uint8_t *w, const uint8_t *x, size_t xs, int nt, \
                                 float *y, size_t ldy)                                             \
    {                                                                                              \
        call(TT, n, w, x, xs, nt, y, ldy);                                                         \
    }

#define DOT(name, attr, call)                                                                      \
    static attr void name##_dot(int64_t n, const uint8_t *w, const uint8_t *x, size_t xs, int nt,  \
                                float *y, size_t ldy)                                              \
    {                                                                                              \
        call(1, n, w, x, xs, nt, y, ldy);                                                          \
    }

#define F32_K(NT, ...) float_kernel(F_F32, NT, __VA_ARGS__)
#define F16_K(NT, ...) float_kernel(F_F16, NT, __VA_ARGS__)
#define BF16_K(NT, ...) float_kernel(F_BF16, NT, __VA_ARGS__)
#define Q4_K_K(NT, ...) k45_kernel(0, NT, __VA_ARGS__)
#define Q5_K_K(NT, ...) k45_kernel(1, NT, __VA_ARGS__)

SHAPES(f32, AVX512, F32_K)
SHAPES(f16, AVX512, F16_K)
SHAPES(bf16, AVX512, BF16_K)
DOT(q4_K, VNNI, Q4_K_K)
SHAPES(q5_K, VNNI, Q5_K_K)
DOT(q6_K, VNNI, q6_K_kernel)

#define GEMM(name, kind)                                                                           \
    static AVX512 void name##_gemm(int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq,    \
                                   int64_t nt, float *Y, size_t ldy, int64_t r0, int64_t r1)       \
    {                                                                                              \
        float_gemm(kind, n, W, wrow, xq, nt, Y, ldy, r0, r1);                                      \
    }                                                                                              \
    static AVX512 void name##_gemv(int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq,    \
                                   int64_t nt, float *Y, size_t ldy, int64_t r0, int64_t r1)       \
    {                                                                                              \
        (void)nt, (void)ldy;                                                                       \
        float_gemv(kind, n, W, wrow, xq, Y, r0, r1);                                               \
    }

GEMM(f32, F_F32)
GEMM(f16, F_F16)
GEMM(bf16, F_BF16)

int eng_kernels_avx512(eng_type wtype, eng_kernel_set *ks)
{
    static const eng_kernel_set sets[ENG_TYPE_COUNT] = {
        [ENG_TYPE_F32] = {f32_dot, f32_tile, f32_gemv, f32_gemm},
        [ENG_TYPE_F16] = {f16_dot, f16_tile, f16_gemv, f16_gemm},
        [ENG_TYPE_BF16] = {bf16_dot, bf16_tile, bf16_gemv, bf16_gemm},
    };
    static const eng_kernel_set vnni_sets[ENG_TYPE_COUNT] = {
        [ENG_TYPE_Q4_K] = {q4_K_dot, NULL}, /* batches: eng_gemm_avx512_k */
        [ENG_TYPE_Q5_K] = {q5_K_dot, q5_K_tile},
        [ENG_TYPE_Q6_K] = {q6_K_dot, NULL},
    };
    eng_kernel_set found = {0};
    if (eng_kernels_avx512_q8(wtype, ks))
        return 1;
    if (eng_isa_has_vnni() && eng_kernels_avx512_lowbit(wtype, ks)) {
        /* Q2_K, Q3_K and IQ4_XS batches: the 16-token tiles of kernels_avx512_k.c */
        ks->gemm = eng_gemm_avx512_k(wtype);
        ks->gemm_layout = ks->gemm ? ENG_ACT_Q8K_TILES : ENG_ACT_ROWS;
        return 1;
    }
    if ((unsigned)wtype < ENG_TYPE_COUNT) {
        found = sets[wtype];
        if (!found.dot && eng_isa_has_vnni())
            found = vnni_sets[wtype];
    }
    if (found.dot && !found.tile) {
        found.gemm = eng_gemm_avx512_k(wtype);
        found.gemm_layout = ENG_ACT_Q8K_TILES;
    }
    if (found.dot)
        *ks = found;
    return found.dot != NULL;
}
