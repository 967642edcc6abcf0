/*
 * kernels_avx512_q8.c - AVX-512 VNNI kernels for Q4_0, Q8_0 and IQ4_NL weights against 8-bit
 * activations in the Q8 layouts of kernels_act.c. Their scalar twins are dot_q4_0, dot_q8_0
 * and dot_iq4_nl in kernels.c (the same per-block integers, summed in another order); the
 * tests compare the two.
 *
 * DESIGN. vpdpbusd multiplies unsigned by signed bytes and sums each four products into a
 * 32-bit lane, so the weight codes are made unsigned (Q4_0 stores q + 8 already; Q8_0 codes
 * get 128 added by flipping the top bit; IQ4_NL, laid out as Q4_0, looks its nibbles up in
 * the table of eng_iq4nl_values + 128 with one byte shuffle) and the offset comes back out
 * through the
 * activations: c = -offset * (sum of the block's activation codes), prepared once per block.
 * What remains per block is one float multiply-add of its integer sum by d_w * d_x. Both
 * kernels keep that float work off the per-block path:
 *
 *   gemv (one token): a 256-bit vector holds the low (or high) 16 codes of two blocks, so the
 *   two multiplies of a block pair leave each block's 32 products in 4 lanes of one 128-bit
 *   half. Eight blocks (four pairs) are reduced together by two rounds of unpack-and-add to
 *   eight integer sums in one vector, which then take one conversion and one multiply-add.
 *   The eight weight scales come from the 8 x 18 (or 34) bytes just read with one word
 *   permute; the activation scales and offsets were stored in the reduction's order.
 *
 *   gemm (a batch): 16 tokens sit in the lanes of a 512-bit vector (ENG_ACT_Q8_TILES). Four
 *   weight codes are broadcast to every lane and multiplied with four codes of each token, so
 *   a block needs 8 multiplies per 16 tokens, no reduction at all, and its scale is one lane-
 *   wise multiply-add. A weight row is decoded once for up to 4 tiles (64 tokens).
 *
 * Rows are read one after another (see kernels_isa.h on interleaved streams).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "kernels_isa.h"
#include "quant.h"

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))
#define GROUP ENG_ACT_GROUP
#define TILE ENG_ACT_TILE
#define MAX_TILES ENG_TILES_MAX /* tiles sharing one decode of a weight row */

enum wkind { W_Q4_0, W_Q8_0, W_IQ4_NL };

_Static_assert(sizeof(eng_block_iq4_nl) == sizeof(eng_block_q4_0), "IQ4_NL is laid out as Q4_0");

INLINE size_t block_bytes(const int kind)
{
    return kind == W_Q8_0 ? sizeof(eng_block_q8_0) : sizeof(eng_block_q4_0);
}

/* The IQ4_NL table plus 128 (unsigned, 1..241) in every 128-bit lane of a 512-bit vector. */
INLINE VNNI __m512i iq4_table(void)
{
    __m128i t = _mm_loadu_si128((const __m128i *)eng_iq4nl_values);
    return _mm512_broadcast_i32x4(_mm_xor_si128(t, _mm_set1_epi8((char)0x80)));
}

INLINE VNNI float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE VNNI __m256i two_halves(const uint8_t *a, const uint8_t *b)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                   _mm_loadu_si128((const __m128i *)b), 1);
}

/* Integer sums of blocks A = w and B = w + one block against their 64 pair-ordered
 * activation codes: A in lanes 0-3, B in lanes 4-7. */
INLINE VNNI __m256i pair_dot(const int kind, const uint8_t *w, const int8_t *y)
{
    const size_t bb = block_bytes(kind);
    __m256i lo, hi;
    if (kind != W_Q8_0) {
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        const __m256i v = two_halves(w + 2, w + bb + 2);
        lo = _mm256_and_si256(v, m4);
        hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if (kind == W_IQ4_NL) {
            const __m256i table = _mm512_castsi512_si256(iq4_table());
            lo = _mm256_shuffle_epi8(table, lo);
            hi = _mm256_shuffle_epi8(table, hi);
        }
    } else {
        const __m256i top = _mm256_set1_epi8((char)0x80);
        lo = _mm256_xor_si256(two_halves(w + 2, w + bb + 2), top);
        hi = _mm256_xor_si256(two_halves(w + 18, w + bb + 18), top);
    }
    const __m256i acc =
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, _mm256_loadu_si256((const __m256i *)y));
    return _mm256_dpbusd_epi32(acc, hi, _mm256_loadu_si256((const __m256i *)(y + 32)));
}

/* Four pair sums to the 8 block sums, in the order 0 2 4 6 1 3 5 7. */
INLINE VNNI __m256i reduce_pairs(__m256i a0, __m256i a1, __m256i a2, __m256i a3)
{
    const __m256i t01 =
        _mm256_add_epi32(_mm256_unpacklo_epi32(a0, a1), _mm256_unpackhi_epi32(a0, a1));
    const __m256i t23 =
        _mm256_add_epi32(_mm256_unpacklo_epi32(a2, a3), _mm256_unpackhi_epi32(a2, a3));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
}

/* The 8 weight scales of a group of blocks, in the reduction's order, as floats. */
INLINE VNNI __m256 group_scales(const int kind, const uint8_t *w)
{
    __m128i h;
    if (kind != W_Q8_0) { /* scales at bytes 18j: words 9j of the first 128 bytes */
        const __m128i idx = _mm_setr_epi16(0, 18, 36, 54, 9, 27, 45, 63);
        h = _mm512_castsi512_si128(_mm512_permutex2var_epi16(
            _mm512_loadu_si512(w), _mm512_castsi128_si512(idx), _mm512_loadu_si512(w + 64)));
    } else { /* scales at bytes 34j: blocks 0-3 in the first 128 bytes, 4-7 in the next */
        const __m128i idx = _mm_setr_epi16(0, 34, 4, 38, 17, 51, 21, 55);
        const __m128i a = _mm512_castsi512_si128(_mm512_permutex2var_epi16(
            _mm512_loadu_si512(w), _mm512_castsi128_si512(idx), _mm512_loadu_si512(w + 64)));
        const __m128i b = _mm512_castsi512_si128(_mm512_permutex2var_epi16(
            _mm512_loadu_si512(w + 128), _mm512_castsi128_si512(idx), _mm512_loadu_si512(w + 192)));
        h = _mm_mask_blend_epi16(0xCC, a, b);
    }
    return _mm256_cvtph_ps(h);
}

/* One block the plain way (the blocks after the last whole group). */
INLINE VNNI float single_block(const int kind, const uint8_t *w, const int8_t *y, float dx,
                               int32_t c)
{
    __m256i q;
    if (kind != W_Q8_0) {
        const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(w + 2)));
        q = _mm256_and_si256(_mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                             _mm256_set1_epi8(0x0F));
        if (kind == W_IQ4_NL)
            q = _mm256_shuffle_epi8(_mm512_castsi512_si256(iq4_table()), q);
    } else {
        q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(w + 2)),
                             _mm256_set1_epi8((char)0x80));
    }
    const __m256i p =
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)y));
    const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    const __m128i s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    const int32_t s = _mm_cvtsi128_si32(s2) + _mm_extract_epi32(s2, 1) + c;
    uint16_t dw;
    memcpy(&dw, w, sizeof dw);
    return (float)s * (_cvtsh_ss(dw) * dx);
}

INLINE VNNI float gemv_row(const int kind, int64_t n, const uint8_t *w, const uint8_t *xq)
{
    const size_t bb = block_bytes(kind);
    const int64_t nb = n / ENG_QK, whole = nb / GROUP * GROUP;
    const int8_t *codes = (const int8_t *)xq;
    const float *dx = (const float *)(xq + n);
    const int32_t *cx = (const int32_t *)(xq + n + 4 * nb);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float tail = 0.0f;
    int64_t b = 0;

    /* two accumulators so consecutive groups' multiply-adds overlap */
    for (; b < whole; b += GROUP) {
        const uint8_t *wb = w + b * bb;
        const int8_t *y = codes + b * ENG_QK;
        __m256i s = reduce_pairs(pair_dot(kind, wb, y), pair_dot(kind, wb + 2 * bb, y + 64),
                                 pair_dot(kind, wb + 4 * bb, y + 128),
                                 pair_dot(kind, wb + 6 * bb, y + 192));
        s = _mm256_add_epi32(s, _mm256_loadu_si256((const __m256i *)(cx + b)));
        const __m256 scale = _mm256_mul_ps(group_scales(kind, wb), _mm256_loadu_ps(dx + b));
        if ((b / GROUP) & 1)
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc1);
        else
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc0);
    }
    for (; b < nb; b++)
        tail += single_block(kind, w + b * bb, codes + b * ENG_QK, dx[b], cx[b]);
    return hsum8(_mm256_add_ps(acc0, acc1)) + tail;
}

INLINE VNNI void gemv(const int kind, int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq,
                      float *Y, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        Y[r] = gemv_row(kind, n, W + r * wrow, xq);
}

/* The 8 code vectors of one weight block, each 4 codes broadcast to every lane: q[g] holds
 * codes 4g..4g+3 (the order of the tile's groups). */
INLINE VNNI void block_codes(const int kind, const uint8_t *wb, __m512i *q)
{
    const int fetched = kind == W_Q8_0 ? 8 : 4; /* 4-code words read from the block */
#pragma GCC unroll 8
    for (int g = 0; g < fetched; g++) {
        int32_t four;
        memcpy(&four, wb + 2 + 4 * g, sizeof four);
        const __m512i v = _mm512_set1_epi32(four);
        if (kind != W_Q8_0) { /* low nibbles: codes 4g.., high nibbles: codes 16 + 4g.. */
            q[g] = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
            q[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
            if (kind == W_IQ4_NL) {
                q[g] = _mm512_shuffle_epi8(iq4_table(), q[g]);
                q[g + 4] = _mm512_shuffle_epi8(iq4_table(), q[g + 4]);
            }
        } else {
            q[g] = _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
        }
    }
}

INLINE VNNI __m512 block_scale(const uint8_t *wb)
{
    uint16_t dh;
    memcpy(&dh, wb, sizeof dh);
    return _mm512_set1_ps(_cvtsh_ss(dh));
}

/* R adjacent weight rows against NT tiles (16 * NT tokens): acc[r][t] lane l = row r, token
 * 16t + l. Each activation vector loaded serves R rows: one row at a time, the 640-byte
 * activation blocks stream from L2 faster than the multiplies can use them. */
INLINE VNNI void gemm_rows(const int kind, const int R, const int NT, int64_t n, const uint8_t *w,
                           size_t wrow, const uint8_t *x, size_t tile_bytes,
                           __m512 acc[][MAX_TILES])
{
    const size_t bb = block_bytes(kind);
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / ENG_QK; b++) {
        __m512i q[2][8];
        __m512 dw[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            block_codes(kind, w + r * wrow + b * bb, q[r]);
            dw[r] = block_scale(w + r * wrow + b * bb);
        }
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const uint8_t *y = x + t * tile_bytes + b * ENG_ACT_TILE_BLOCK;
            const __m512i c = _mm512_loadu_si512(y + ENG_QK * TILE + 4 * TILE);
            const __m512 dx = _mm512_loadu_ps(y + ENG_QK * TILE);
            __m512i s[2];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                s[r] = c;
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                const __m512i yv = _mm512_loadu_si512(y + 64 * g);
#pragma GCC unroll 2
                for (int r = 0; r < R; r++)
                    s[r] = _mm512_dpbusd_epi32(s[r], q[r][g], yv);
            }
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                acc[r][t] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]), _mm512_mul_ps(dw[r], dx), acc[r][t]);
        }
    }
}

/* Stores R rows of accumulators (k tiles each) as columns r - rg.. of out. */
INLINE VNNI void store_part(const int R, __m512 acc[][MAX_TILES], int64_t k, int64_t r, int64_t rg,
                            float (*out)[ENG_TILES_ROW_GROUP])
{
    for (int rr = 0; rr < R; rr++) {
        float lanes[MAX_TILES * TILE];
        for (int64_t t = 0; t < k; t++)
            _mm512_storeu_ps(lanes + t * TILE, acc[rr][t]);
        for (int64_t i = 0; i < k * TILE; i++)
            out[i][r + rr - rg] = lanes[i];
    }
}

INLINE VNNI void gemm_part(const int kind, const int R, int64_t n, const uint8_t *w, size_t wrow,
                           const uint8_t *x, size_t tile_bytes, int64_t k, int64_t r, int64_t rg,
                           float (*out)[ENG_TILES_ROW_GROUP])
{
    __m512 acc[2][MAX_TILES];
    switch (k) { /* a constant tile count keeps the accumulators in registers */
    case 1:
        gemm_rows(kind, R, 1, n, w, wrow, x, tile_bytes, acc);
        break;
    case 2:
        gemm_rows(kind, R, 2, n, w, wrow, x, tile_bytes, acc);
        break;
    case 3:
        gemm_rows(kind, R, 3, n, w, wrow, x, tile_bytes, acc);
        break;
    default:
        gemm_rows(kind, R, 4, n, w, wrow, x, tile_bytes, acc);
        break;
    }
    store_part(R, acc, k, r, rg, out);
}

#define PART(name, kind)                                                                           \
    static VNNI void name##_part(int64_t n, const uint8_t *w, size_t wrow, const uint8_t *x,       \
                                 size_t tile_bytes, int R, int64_t k, int64_t r, int64_t rg,       \
                                 float(*out)[ENG_TILES_ROW_GROUP])                                 \
    {                                                                                              \
        if (R == 2)                                                                                \
            gemm_part(kind, 2, n, w, wrow, x, tile_bytes, k, r, rg, out);                          \
        else                                                                                       \
            gemm_part(kind, 1, n, w, wrow, x, tile_bytes, k, r, rg, out);                          \
    }

PART(q4_0, W_Q4_0)
PART(q8_0, W_Q8_0)
PART(iq4_nl, W_IQ4_NL)

/* Rows go in groups of ENG_TILES_ROW_GROUP, and each group's results are written token by
 * token as runs of that many floats: Y is token-major, and storing one row's results for 64
 * tokens touches 64 cache lines (and pages) for 64 floats. */
void eng_gemm_tiles(eng_tiles_part_fn part, int max_tiles, size_t tile_bytes, int64_t n,
                    const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt, float *Y,
                    size_t ldy, int64_t r0, int64_t r1)
{
    const int64_t ntiles = (nt + TILE - 1) / TILE;
    float out[MAX_TILES * TILE][ENG_TILES_ROW_GROUP];
    for (int64_t t0 = 0; t0 < ntiles; t0 += max_tiles) {
        const int64_t k = ntiles - t0 < max_tiles ? ntiles - t0 : max_tiles;
        const int64_t tok0 = t0 * TILE, valid = nt - tok0 < k * TILE ? nt - tok0 : k * TILE;
        const uint8_t *x = xq + t0 * tile_bytes;
        for (int64_t rg = r0; rg < r1; rg += ENG_TILES_ROW_GROUP) {
            const int64_t re = r1 - rg < ENG_TILES_ROW_GROUP ? r1 : rg + ENG_TILES_ROW_GROUP;
            int64_t r = rg;
            for (; r + 2 <= re; r += 2)
                part(n, W + r * wrow, wrow, x, tile_bytes, 2, k, r, rg, out);
            if (r < re)
                part(n, W + r * wrow, wrow, x, tile_bytes, 1, k, r, rg, out);
            for (int64_t i = 0; i < valid; i++)
                memcpy(Y + (size_t)(tok0 + i) * ldy + (size_t)rg, out[i],
                       (size_t)(re - rg) * sizeof(float));
        }
    }
}

/* ---- activation quantization ------------------------------------------------------- */

/* roundf (half away from zero) of every lane: truncate, then step away from zero when the
 * dropped fraction is at least one half (the fraction v - trunc(v) is exact). */
INLINE VNNI __m512 round_away(__m512 v)
{
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN));
    const __m512 one = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.0f)), sign)); /* +-1 */
    return _mm512_mask_add_ps(t, up, t, one);
}

VNNI void eng_quantize_q8_0_avx512(const float *x, eng_block_q8_0 *y, int32_t *sums, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK; b++, x += ENG_QK) {
        const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
        const float amax =
            _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
        float d = amax / 127.0f;
        d = d > ENG_FP16_MAX ? ENG_FP16_MAX : d; /* amax >= 0: only the top can saturate */
        const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        const __m512 lim = _mm512_set1_ps(127.0f);
        const __m512 qlo = _mm512_max_ps(_mm512_min_ps(round_away(_mm512_mul_ps(lo, id)), lim),
                                         _mm512_sub_ps(_mm512_setzero_ps(), lim));
        const __m512 qhi = _mm512_max_ps(_mm512_min_ps(round_away(_mm512_mul_ps(hi, id)), lim),
                                         _mm512_sub_ps(_mm512_setzero_ps(), lim));
        const __m512i ilo = _mm512_cvtps_epi32(qlo), ihi = _mm512_cvtps_epi32(qhi);
        y[b].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)y[b].qs, _mm512_cvtepi32_epi8(ilo));
        _mm_storeu_si128((__m128i *)(y[b].qs + 16), _mm512_cvtepi32_epi8(ihi));
        if (sums)
            sums[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(ilo, ihi));
    }
}

#define ROWS_ARGS                                                                                  \
    int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt, float *Y, size_t ldy, \
        int64_t r0, int64_t r1

static VNNI void q4_0_gemv(ROWS_ARGS)
{
    (void)nt, (void)ldy;
    gemv(W_Q4_0, n, W, wrow, xq, Y, r0, r1);
}
static VNNI void q8_0_gemv(ROWS_ARGS)
{
    (void)nt, (void)ldy;
    gemv(W_Q8_0, n, W, wrow, xq, Y, r0, r1);
}
static VNNI void iq4_nl_gemv(ROWS_ARGS)
{
    (void)nt, (void)ldy;
    gemv(W_IQ4_NL, n, W, wrow, xq, Y, r0, r1);
}
static void iq4_nl_gemm(ROWS_ARGS)
{
    eng_gemm_tiles(iq4_nl_part, MAX_TILES, (size_t)(n / ENG_QK) * ENG_ACT_TILE_BLOCK, n, W, wrow,
                   xq, nt, Y, ldy, r0, r1);
}
static void q4_0_gemm(ROWS_ARGS)
{
    eng_gemm_tiles(q4_0_part, MAX_TILES, (size_t)(n / ENG_QK) * ENG_ACT_TILE_BLOCK, n, W, wrow, xq,
                   nt, Y, ldy, r0, r1);
}
static void q8_0_gemm(ROWS_ARGS)
{
    eng_gemm_tiles(q8_0_part, MAX_TILES, (size_t)(n / ENG_QK) * ENG_ACT_TILE_BLOCK, n, W, wrow, xq,
                   nt, Y, ldy, r0, r1);
}

int eng_kernels_avx512_q8(eng_type wtype, eng_kernel_set *ks)
{
    eng_kernel_set s = {0};
    if (!eng_isa_has_vnni())
        return 0;
    if (wtype == ENG_TYPE_Q4_0) {
        s.gemv = q4_0_gemv;
        s.gemm = q4_0_gemm;
        s.code_offset = 8;
    } else if (wtype == ENG_TYPE_Q8_0) {
        s.gemv = q8_0_gemv;
        s.gemm = q8_0_gemm;
        s.code_offset = 128;
    } else if (wtype == ENG_TYPE_IQ4_NL) {
        s.gemv = iq4_nl_gemv;
        s.gemm = iq4_nl_gemm;
        s.code_offset = 128;
    } else {
        return 0;
    }
    s.gemv_layout = ENG_ACT_Q8_PAIRS;
    s.gemm_layout = ENG_ACT_Q8_TILES;
    /* dot and tile stay empty: eng_matmul only calls gemv and gemm for this set */
    *ks = s;
    return 1;
}
