/*
 * kernels_lowbit.h - the dot and tile kernels of Q2_K, Q3_K, IQ4_NL and IQ4_XS, written once
 * and compiled twice: by kernels_lowbit_avx2.c (AVX2 + FMA + F16C) and by
 * kernels_lowbit_avx512.c (the same 256-bit code with AVX-512 VNNI fusing the integer
 * multiply-adds). Internal to those two files; the scalar twins are dot_q2_K, dot_q3_K,
 * dot_iq4_nl and dot_iq4_xs in kernels.c.
 *
 * DESIGN. The includer defines
 *   LB_ATTR              the target attribute of every function;
 *   LB_MADD(acc, p, s)   acc + (16-bit pairs of p times s, summed to 32 bits): madd + add,
 *                        or vpdpwssd;
 *   LB_DOT4(acc, u, s)   acc + (unsigned bytes u times signed bytes s, 4 summed to 32 bits):
 *                        maddubs + madd + add, or vpdpbusd.
 * Each type has one step (one weight block against NT activation blocks) instantiated for one
 * token and for ENG_TILE_TOKENS (kernels_isa.h), as in kernels_avx2.c. The K-quants follow
 * Q6_K there: unsigned codes times the Q8_K codes by maddubs (no 16-bit sum can saturate:
 * 2 * 7 * 127 at most), then the sub-block scales by LB_MADD on pairs of sub-blocks of 16;
 * Q2_K's mins and Q3_K's code offset 4 come from the Q8_K 16-element sums. The IQ4 types look
 * their 4-bit indices up in the 16-entry table with one byte shuffle per 16 indices and dot the
 * signed values with the sign trick, |v| . (y * sign(v)) (pairs at most 2 * 127 * 127). A lone
 * token spreads its integer sums over 4 chains so the multiply-add latency does not bind
 * (see kernels_avx512.c, k45_step).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels_isa.h"
#include "quant.h"

#define LB_INLINE static inline __attribute__((always_inline))
#define LB_TT ENG_TILE_TOKENS
#define LB_CHAINS 4

LB_INLINE LB_ATTR float lb_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Byte shuffle giving 8 copies of byte a, then 8 copies of byte b. */
LB_INLINE LB_ATTR __m128i lb_pair_bytes(int a, int b)
{
    return _mm_setr_epi8((char)a, (char)a, (char)a, (char)a, (char)a, (char)a, (char)a, (char)a,
                         (char)b, (char)b, (char)b, (char)b, (char)b, (char)b, (char)b, (char)b);
}

/* The 16-bit scales of sub-blocks k (first 8 lanes) and k + 1 (last 8), from 16 signed bytes. */
LB_INLINE LB_ATTR __m256i lb_scale_pair(__m128i sc8, int k)
{
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, lb_pair_bytes(k, k + 1)));
}

/* The 32 table values of a group of 32 IQ4 indices (Q4_0 nibble order). */
LB_INLINE LB_ATTR __m256i lb_iq4_values(const uint8_t *qs, __m128i table)
{
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(raw, m4));
    const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(raw, 4), m4));
    return _mm256_set_m128i(hi, lo);
}

/* Sums the chains of a lone token into chain 0. */
LB_INLINE LB_ATTR void lb_fold(const int chains, __m256i (*isum)[LB_TT])
{
#pragma GCC unroll 4
    for (int c = 1; c < chains; c++)
        isum[0][0] = _mm256_add_epi32(isum[0][0], isum[c][0]);
}

LB_INLINE LB_ATTR void lb_zero(const int NT, const int chains, __m256i (*isum)[LB_TT])
{
#pragma GCC unroll 4
    for (int c = 0; c < chains; c++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            isum[c][t] = _mm256_setzero_si256();
}

/* ---- Q2_K against Q8_K ------------------------------------------------------------- */

LB_INLINE LB_ATTR void q2_K_step(const int NT, const uint8_t *w, const uint8_t **xp, int64_t b,
                                 __m256 *acc)
{
    const eng_block_q2_K *wb = (const eng_block_q2_K *)w + b;
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)wb->scales);
    const __m128i scl = _mm_and_si128(sc8, _mm_set1_epi8(0x0F));
    const __m256i mn16 =
        _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0F)));
    const __m256i m3 = _mm256_set1_epi8(3);
    const float d = _cvtsh_ss(wb->d), dmin = _cvtsh_ss(wb->dmin);
    const int chains = NT == 1 ? LB_CHAINS : 1;
    __m256i isum[LB_CHAINS][LB_TT];
    lb_zero(NT, chains, isum);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(wb->qs + 32 * h));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) { /* elements 128h + 32j ..: sub-blocks 8h + 2j, + 1 */
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3);
            const __m256i s16 = _mm256_cvtepu8_epi16(
                _mm_shuffle_epi8(scl, lb_pair_bytes(8 * h + 2 * j, 8 * h + 2 * j + 1)));
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *yq = ((const eng_block_q8_K *)xp[t] + b)->qs + 128 * h + 32 * j;
                const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)yq));
                isum[j % chains][t] = LB_MADD(isum[j % chains][t], p, s16);
            }
        }
    }
    lb_fold(chains, isum);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_K *yb = (const eng_block_q8_K *)xp[t] + b;
        const __m256i mins =
            _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)yb->bsums));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * yb->d), _mm256_cvtepi32_ps(isum[0][t]), acc[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * yb->d), _mm256_cvtepi32_ps(mins), acc[t]);
    }
}

/* ---- Q3_K against Q8_K ------------------------------------------------------------- */

/* The 16 Q3_K scales minus 32 (eng_q3_K_scales), unpacked four at a time. */
LB_INLINE LB_ATTR __m128i q3_K_scales(const uint8_t *q)
{
    uint32_t a[3];
    memcpy(a, q, sizeof a);
    const uint32_t lo4 = 0x0F0F0F0F, lo2 = 0x03030303;
    const __m128i s = _mm_setr_epi32((int)((a[0] & lo4) | (a[2] & lo2) << 4),
                                     (int)((a[1] & lo4) | ((a[2] >> 2) & lo2) << 4),
                                     (int)(((a[0] >> 4) & lo4) | ((a[2] >> 4) & lo2) << 4),
                                     (int)(((a[1] >> 4) & lo4) | ((a[2] >> 6) & lo2) << 4));
    return _mm_sub_epi8(s, _mm_set1_epi8(32));
}

LB_INLINE LB_ATTR void q3_K_step(const int NT, const uint8_t *w, const uint8_t **xp, int64_t b,
                                 __m256 *acc)
{
    const eng_block_q3_K *wb = (const eng_block_q3_K *)w + b;
    const __m128i sc8 = q3_K_scales(wb->scales);
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    const __m256i m3 = _mm256_set1_epi8(3), bit2 = _mm256_set1_epi8(4);
    const __m256i hm = _mm256_loadu_si256((const __m256i *)wb->hmask);
    const float d = _cvtsh_ss(wb->d);
    const int chains = NT == 1 ? LB_CHAINS : 1;
    __m256i isum[LB_CHAINS][LB_TT];
    lb_zero(NT, chains, isum);
    /* codes are stored + 4: take 4 * sum_k sc_k * (sum of y over k) back out */
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_K *yb = (const eng_block_q8_K *)xp[t] + b;
        const __m256i off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)yb->bsums));
        isum[0][t] = _mm256_sub_epi32(isum[0][t], _mm256_slli_epi32(off, 2));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(wb->qs + 32 * h));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const int s = 4 * h + j; /* the hmask bit of these 32 elements, moved to bit 2 */
            const __m256i hb = s >= 2 ? _mm256_srli_epi16(hm, s - 2) : _mm256_slli_epi16(hm, 2 - s);
            const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3),
                                              _mm256_and_si256(hb, bit2));
            const __m256i s16 = lb_scale_pair(sc8, 8 * h + 2 * j);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *yq = ((const eng_block_q8_K *)xp[t] + b)->qs + 128 * h + 32 * j;
                const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)yq));
                isum[j % chains][t] = LB_MADD(isum[j % chains][t], p, s16);
            }
        }
    }
    lb_fold(chains, isum);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const float dy = ((const eng_block_q8_K *)xp[t] + b)->d;
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(isum[0][t]), acc[t]);
    }
}

/* ---- IQ4_XS against Q8_K ----------------------------------------------------------- */

/* The sub-block scales of an IQ4_XS super-block as 16-bit words, minus 32. */
LB_INLINE LB_ATTR void iq4_xs_scales(const eng_block_iq4_xs *wb, int16_t *sc)
{
    uint32_t lo;
    memcpy(&lo, wb->scales_l, sizeof lo);
    const uint32_t hi = wb->scales_h;
#pragma GCC unroll 8
    for (int ib = 0; ib < 8; ib++)
        sc[ib] = (int16_t)((int)(((lo >> (4 * ib)) & 0xF) | ((hi >> (2 * ib)) & 3) << 4) - 32);
}

/* Two sub-blocks per 32 bytes of indices: the low and the high nibbles are looked up for both
 * at once, then the 128-bit halves regrouped per sub-block. */
LB_INLINE LB_ATTR void iq4_xs_step(const int NT, const uint8_t *w, const uint8_t **xp, int64_t b,
                                   __m256 *acc)
{
    const eng_block_iq4_xs *wb = (const eng_block_iq4_xs *)w + b;
    const __m256i table =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)eng_iq4nl_values));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const float d = _cvtsh_ss(wb->d);
    const int chains = NT == 1 ? LB_CHAINS : 1;
    int16_t sc[8];
    __m256i isum[LB_CHAINS][LB_TT];
    iq4_xs_scales(wb, sc);
    lb_zero(NT, chains, isum);
#pragma GCC unroll 4
    for (int pr = 0; pr < 4; pr++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(wb->qs + 32 * pr));
        const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(raw, m4));
        const __m256i hi =
            _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4));
        const __m256i v[2] = {_mm256_permute2x128_si256(lo, hi, 0x20),
                              _mm256_permute2x128_si256(lo, hi, 0x31)};
#pragma GCC unroll 2
        for (int i = 0; i < 2; i++) {
            const int ib = 2 * pr + i;
            const __m256i av = _mm256_sign_epi8(v[i], v[i]);
            const __m256i s16 = _mm256_set1_epi16(sc[ib]);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *yq = ((const eng_block_q8_K *)xp[t] + b)->qs + 32 * ib;
                const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)yq), v[i]);
                isum[ib % chains][t] =
                    LB_MADD(isum[ib % chains][t], _mm256_maddubs_epi16(av, sy), s16);
            }
        }
    }
    lb_fold(chains, isum);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const float dy = ((const eng_block_q8_K *)xp[t] + b)->d;
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(isum[0][t]), acc[t]);
    }
}

/* ---- the K-quant and IQ4_XS loops --------------------------------------------------- */

enum lb_kind { LB_Q2_K, LB_Q3_K, LB_IQ4_XS };

LB_INLINE LB_ATTR void lb_k_kernel(const int kind, const int NT, int64_t n, const uint8_t *w,
                                   const uint8_t *x, size_t xs, int nt, float *y, size_t ldy)
{
    const uint8_t *xp[LB_TT];
    __m256 acc[LB_TT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        xp[t] = x + (size_t)(t < nt ? t : nt - 1) * xs;
        acc[t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        if (kind == LB_Q2_K)
            q2_K_step(NT, w, xp, b, acc);
        else if (kind == LB_Q3_K)
            q3_K_step(NT, w, xp, b, acc);
        else
            iq4_xs_step(NT, w, xp, b, acc);
    }
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        if (t < nt)
            y[(size_t)t * ldy] = lb_hsum(acc[t]);
}

/* ---- IQ4_NL against Q8_0 ----------------------------------------------------------- */

LB_INLINE LB_ATTR void iq4_nl_step(const int NT, const uint8_t *w, const uint8_t **xp, int64_t b,
                                   __m128i table, __m256 *acc)
{
    const eng_block_iq4_nl *wb = (const eng_block_iq4_nl *)w + b;
    const __m256i v = lb_iq4_values(wb->qs, table);
    const __m256i av = _mm256_sign_epi8(v, v);
    const float d = _cvtsh_ss(wb->d);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const eng_block_q8_0 *yb = (const eng_block_q8_0 *)xp[t] + b;
        const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)yb->qs), v);
        const __m256i s = LB_DOT4(_mm256_setzero_si256(), av, sy);
        acc[t] =
            _mm256_fmadd_ps(_mm256_set1_ps(d * _cvtsh_ss(yb->d)), _mm256_cvtepi32_ps(s), acc[t]);
    }
}

LB_INLINE LB_ATTR void lb_nl_kernel(const int NT, int64_t n, const uint8_t *w, const uint8_t *x,
                                    size_t xs, int nt, float *y, size_t ldy)
{
    const __m128i table = _mm_loadu_si128((const __m128i *)eng_iq4nl_values);
    const uint8_t *xp[LB_TT];
    __m256 acc[LB_TT], acc2[LB_TT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        xp[t] = x + (size_t)(t < nt ? t : nt - 1) * xs;
        acc[t] = acc2[t] = _mm256_setzero_ps();
    }
    const int64_t nb = n / ENG_QK;
    int64_t b = 0;
    if (NT == 1) /* two accumulators, so consecutive blocks do not wait on each other */
        for (; b + 1 < nb; b += 2) {
            iq4_nl_step(NT, w, xp, b, table, acc);
            iq4_nl_step(NT, w, xp, b + 1, table, acc2);
        }
    for (; b < nb; b++)
        iq4_nl_step(NT, w, xp, b, table, acc);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        if (t < nt)
            y[(size_t)t * ldy] = lb_hsum(_mm256_add_ps(acc[t], acc2[t]));
}

/* ---- the shapes and the table ------------------------------------------------------ */

#define LB_SHAPES(name, call)                                                                      \
    static LB_ATTR void name##_dot(int64_t n, const uint8_t *w, const uint8_t *x, size_t xs,       \
                                   int nt, float *y, size_t ldy)                                   \
    {                                                                                              \
        call(1, n, w, x, xs, nt, y, ldy);                                                          \
    }                                                                                              \
    static LB_ATTR void name##_tile(int64_t n, const uint8_t *w, const uint8_t *x, size_t xs,      \
                                    int nt, float *y, size_t ldy)                                  \
    {                                                                                              \
        call(LB_TT, n, w, x, xs, nt, y, ldy);                                                      \
    }

#define LB_Q2_K_K(NT, ...) lb_k_kernel(LB_Q2_K, NT, __VA_ARGS__)
#define LB_Q3_K_K(NT, ...) lb_k_kernel(LB_Q3_K, NT, __VA_ARGS__)
#define LB_IQ4_XS_K(NT, ...) lb_k_kernel(LB_IQ4_XS, NT, __VA_ARGS__)

LB_SHAPES(q2_K, LB_Q2_K_K)
LB_SHAPES(q3_K, LB_Q3_K_K)
LB_SHAPES(iq4_xs, LB_IQ4_XS_K)
LB_SHAPES(iq4_nl, lb_nl_kernel)

/* The set for wtype, or 0 when it is not one of these four types. */
static int lb_select(eng_type wtype, eng_kernel_set *ks)
{
    eng_kernel_set found = {0};
    switch (wtype) {
    case ENG_TYPE_Q2_K:
        found = (eng_kernel_set){q2_K_dot, q2_K_tile};
        break;
    case ENG_TYPE_Q3_K:
        found = (eng_kernel_set){q3_K_dot, q3_K_tile};
        break;
    case ENG_TYPE_IQ4_NL:
        found = (eng_kernel_set){iq4_nl_dot, iq4_nl_tile};
        break;
    case ENG_TYPE_IQ4_XS:
        found = (eng_kernel_set){iq4_xs_dot, iq4_xs_tile};
        break;
    default:
        break;
    }
    if (found.dot)
        *ks = found;
    return found.dot != NULL;
}
