/*
 * kernels_avx512_k.c - AVX-512 VNNI batch kernels for the K-quants Q4_K and Q6_K against
 * 8-bit activations in tiles of 16 tokens (ENG_ACT_Q8K_TILES), and the AVX-512 twin of the
 * Q8_K activation quantizer. The scalar twins are dot_q4_K and dot_q6_K in kernels.c and
 * eng_quantize_q8_K; the tests compare them.
 *
 * DESIGN. As for Q4_0 (kernels_avx512_q8.c): four weight codes are broadcast to every lane
 * and multiplied with four codes of each of 16 tokens by vpdpbusd, so a sub-block needs no
 * horizontal sum. What differs is the scales. A Q4_K sub-block of 32 codes has a 6-bit scale
 * and a 6-bit min under the super-block's d and dmin, so after its 8 multiplies the integer
 * sum of each token is converted and added with weight d * sc_j, and the min term
 * dmin * m_j * (sum of the token's 32 codes) is taken off (the sums come with the tile). A
 * Q6_K sub-block of 16 codes has an 8-bit scale; its codes are stored + 32, so its integer
 * sum starts at -32 * (sum of the token's 16 codes). The super-block's activation scale
 * multiplies each sub-block's weight (one multiply per sub-block and token vector).
 *
 * A pair of weight rows shares every activation load (see kernels_avx512_q8.c): Q4_K decodes
 * one sub-block of both rows (16 code vectors) for 2 tiles, Q6_K one sub-block of 16 codes
 * of both rows (8 vectors) for 4 tiles.
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
#define TILE ENG_ACT_TILE
#define SB_CODES (ENG_QK_K * TILE)                     /* code bytes of a super-block of a tile */
#define SB_BYTES (SB_CODES + 4 * TILE + 16 * 4 * TILE) /* and its scales and 16-code sums */
#define K4_TILES 2                                     /* tiles per decode of a Q4_K row pair */
#define K6_TILES 4                                     /* and of a Q6_K row pair */

/* The activation parts of super-block b of a tile. */
INLINE const uint8_t *sb_codes(const uint8_t *tile, int64_t b)
{
    return tile + b * SB_BYTES;
}

INLINE VNNI __m512 sb_scale(const uint8_t *tile, int64_t b)
{
    return _mm512_loadu_ps(tile + b * SB_BYTES + SB_CODES);
}

/* Sums of the 16 codes 16g..16g+15 of each token. */
INLINE VNNI __m512i sb_sum16(const uint8_t *tile, int64_t b, int g)
{
    return _mm512_loadu_si512(tile + b * SB_BYTES + SB_CODES + 4 * TILE + 64 * g);
}

INLINE VNNI __m512i bcast4(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* Stores R rows of accumulators (k tiles each) as columns r - rg.. of out. */
INLINE VNNI void store_part(const int R, const int NT, __m512 (*acc)[ENG_TILES_MAX], int64_t k,
                            int64_t r, int64_t rg, float (*out)[ENG_TILES_ROW_GROUP])
{
    for (int rr = 0; rr < R; rr++) {
        float lanes[ENG_TILES_MAX * TILE];
        for (int t = 0; t < NT; t++)
            _mm512_storeu_ps(lanes + t * TILE, acc[rr][t]);
        for (int64_t i = 0; i < k * TILE; i++)
            out[i][r + rr - rg] = lanes[i];
    }
}

/* ---- Q4_K ---------------------------------------------------------------------------- */

/* d * sc_j and dmin * m_j of the 8 sub-blocks of a Q4_K super-block. */
INLINE VNNI void k4_factors(const eng_block_q4_K *blk, float *dsc, float *dmn)
{
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        eng_k4_scale_min(j, blk->scales, &sc, &m);
        dsc[j] = _cvtsh_ss(blk->d) * (float)sc;
        dmn[j] = _cvtsh_ss(blk->dmin) * (float)m;
    }
}

INLINE VNNI void k4_rows(const int R, const int NT, int64_t n, const uint8_t *w, size_t wrow,
                         const uint8_t *x, size_t tile_bytes, __m512 (*acc)[ENG_TILES_MAX])
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        float dsc[2][8], dmn[2][8];
        const eng_block_q4_K *blk[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            blk[r] = (const eng_block_q4_K *)(w + r * wrow) + b;
            k4_factors(blk[r], dsc[r], dmn[r]);
        }
        for (int j = 0; j < 8; j++) { /* sub-block j: the low or high nibbles of chunk j / 2 */
            __m512i q[2][8];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    const __m512i v = bcast4(blk[r]->qs + 32 * (j / 2) + 4 * g);
                    q[r][g] = _mm512_and_si512(j & 1 ? _mm512_srli_epi16(v, 4) : v, m4);
                }
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const uint8_t *tile = x + t * tile_bytes;
                const uint8_t *y = sb_codes(tile, b) + 64 * 8 * j;
                const __m512 dy = sb_scale(tile, b);
                /* dy * (sum of the token's 32 codes), for the min term */
                const __m512 ysum =
                    _mm512_mul_ps(dy, _mm512_cvtepi32_ps(_mm512_add_epi32(
                                          sb_sum16(tile, b, 2 * j), sb_sum16(tile, b, 2 * j + 1))));
                __m512i s[2];
#pragma GCC unroll 2
                for (int r = 0; r < R; r++)
                    s[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    const __m512i yv = _mm512_loadu_si512(y + 64 * g);
#pragma GCC unroll 2
                    for (int r = 0; r < R; r++)
                        s[r] = _mm512_dpbusd_epi32(s[r], q[r][g], yv);
                }
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) {
                    const __m512 f = _mm512_mul_ps(dy, _mm512_set1_ps(dsc[r][j]));
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]), f, acc[r][t]);
                    acc[r][t] = _mm512_fnmadd_ps(ysum, _mm512_set1_ps(dmn[r][j]), acc[r][t]);
                }
            }
        }
    }
}

/* ---- Q6_K ---------------------------------------------------------------------------- */

/* The 4 code vectors of sub-block g (codes 16g..16g+15, stored + 32) of a Q6_K super-block:
 * in half h = g / 8, quarter Q = (g % 8) / 2, the codes at l = 16 (g % 2) + 4i .. take their
 * low 4 bits from ql[l] (Q = 0, 2) or ql[l + 32] (Q = 1, 3), low or high nibble, and their top
 * 2 bits from bits 2Q, 2Q + 1 of qh[l] (see quant.h). */
INLINE VNNI void k6_codes(const eng_block_q6_K *blk, int g, __m512i *q)
{
    const int h = g / 8, Q = (g % 8) / 2;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const int l = 16 * (g % 2) + 4 * i;
        const __m512i lo = bcast4(blk->ql + 64 * h + 32 * (Q & 1) + l);
        const __m512i hb = bcast4(blk->qh + 32 * h + l);
        /* the 2 high bits moved to bits 4-5 of each byte */
        const __m512i top = _mm512_and_si512(
            Q < 2 ? _mm512_slli_epi16(hb, 4 - 2 * Q) : _mm512_srli_epi16(hb, 2 * Q - 4), m30);
        const __m512i nib = Q < 2 ? lo : _mm512_srli_epi16(lo, 4);
        q[i] = _mm512_ternarylogic_epi32(nib, m4, top, 0xEA); /* (nib & m4) | top */
    }
}

INLINE VNNI void k6_rows(const int R, const int NT, int64_t n, const uint8_t *w, size_t wrow,
                         const uint8_t *x, size_t tile_bytes, __m512 (*acc)[ENG_TILES_MAX])
{
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        const eng_block_q6_K *blk[2];
        float d[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            blk[r] = (const eng_block_q6_K *)(w + r * wrow) + b;
            d[r] = _cvtsh_ss(blk[r]->d);
        }
        for (int g = 0; g < 16; g++) {
            __m512i q[2][4];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                k6_codes(blk[r], g, q[r]);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const uint8_t *tile = x + t * tile_bytes;
                const uint8_t *y = sb_codes(tile, b) + 64 * 4 * g;
                const __m512 dy = sb_scale(tile, b);
                const __m512i off = _mm512_sub_epi32(_mm512_setzero_si512(),
                                                     _mm512_slli_epi32(sb_sum16(tile, b, g), 5));
                __m512i s[2];
#pragma GCC unroll 2
                for (int r = 0; r < R; r++)
                    s[r] = off;
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    const __m512i yv = _mm512_loadu_si512(y + 64 * i);
#pragma GCC unroll 2
                    for (int r = 0; r < R; r++)
                        s[r] = _mm512_dpbusd_epi32(s[r], q[r][i], yv);
                }
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) {
                    const __m512 f = _mm512_mul_ps(dy, _mm512_set1_ps(d[r] * blk[r]->scales[g]));
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]), f, acc[r][t]);
                }
            }
        }
    }
}

/* ---- the parts and sets ------------------------------------------------------------ */

enum kkind { K_Q4, K_Q6 };

INLINE VNNI void k_part(const int kind, const int R, int64_t n, const uint8_t *w, size_t wrow,
                        const uint8_t *x, size_t tile_bytes, int64_t k, int64_t r, int64_t rg,
                        float (*out)[ENG_TILES_ROW_GROUP])
{
    __m512 acc[2][ENG_TILES_MAX];
#define K_ROWS(NT)                                                                                 \
    do {                                                                                           \
        if (kind == K_Q4)                                                                          \
            k4_rows(R, NT, n, w, wrow, x, tile_bytes, acc);                                        \
        else                                                                                       \
            k6_rows(R, NT, n, w, wrow, x, tile_bytes, acc);                                        \
    } while (0)
    switch (k) { /* a constant tile count keeps the accumulators in registers */
    case 1:
        K_ROWS(1);
        store_part(R, 1, acc, k, r, rg, out);
        break;
    case 2:
        K_ROWS(2);
        store_part(R, 2, acc, k, r, rg, out);
        break;
    case 3:
        K_ROWS(3);
        store_part(R, 3, acc, k, r, rg, out);
        break;
    default:
        K_ROWS(4);
        store_part(R, 4, acc, k, r, rg, out);
        break;
    }
#undef K_ROWS
}

#define PART(name, kind)                                                                           \
    static VNNI void name##_part(int64_t n, const uint8_t *w, size_t wrow, const uint8_t *x,       \
                                 size_t tile_bytes, int R, int64_t k, int64_t r, int64_t rg,       \
                                 float(*out)[ENG_TILES_ROW_GROUP])                                 \
    {                                                                                              \
        if (R == 2)                                                                                \
            k_part(kind, 2, n, w, wrow, x, tile_bytes, k, r, rg, out);                             \
        else                                                                                       \
            k_part(kind, 1, n, w, wrow, x, tile_bytes, k, r, rg, out);                             \
    }

PART(q4_K, K_Q4)
PART(q6_K, K_Q6)

static void q4_K_gemm(int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt,
                      float *Y, size_t ldy, int64_t r0, int64_t r1)
{
    eng_gemm_tiles(q4_K_part, K4_TILES, (size_t)(n / ENG_QK_K) * SB_BYTES, n, W, wrow, xq, nt, Y,
                   ldy, r0, r1);
}

static void q6_K_gemm(int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt,
                      float *Y, size_t ldy, int64_t r0, int64_t r1)
{
    eng_gemm_tiles(q6_K_part, K6_TILES, (size_t)(n / ENG_QK_K) * SB_BYTES, n, W, wrow, xq, nt, Y,
                   ldy, r0, r1);
}

eng_rows_fn eng_gemm_avx512_k(eng_type wtype)
{
    eng_rows_fn f = NULL;
    if (eng_isa_has_vnni())
        f = wtype == ENG_TYPE_Q4_K ? q4_K_gemm : wtype == ENG_TYPE_Q6_K ? q6_K_gemm : NULL;
    return f;
}

/* ---- activation quantization ------------------------------------------------------- */

VNNI void eng_quantize_q8_K_avx512(const float *x, eng_block_q8_K *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        __m512 v[16], amax = _mm512_setzero_ps();
        for (int i = 0; i < 16; i++) {
            v[i] = _mm512_loadu_ps(x + 16 * i);
            amax = _mm512_max_ps(amax, _mm512_abs_ps(v[i]));
        }
        const float am = _mm512_reduce_max_ps(amax);
        memset(&y[b], 0, sizeof y[b]);
        if (am < 1e-30f) /* as eng_quantize_q8_K: a zero block */
            continue;
        float max = 0.0f; /* the first value of largest magnitude, with its sign */
        for (int i = 0; i < 16; i++) {
            const __mmask16 hit =
                _mm512_cmp_ps_mask(_mm512_abs_ps(v[i]), _mm512_set1_ps(am), _CMP_EQ_OQ);
            if (hit) {
                max = x[16 * i + __builtin_ctz(hit)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m512 is = _mm512_set1_ps(iscale), lim = _mm512_set1_ps(4194303.0f);
        for (int i = 0; i < 16; i++) {
            /* nearest (ties to even, the default rounding) of the clamped value, then +-127 */
            const __m512 c = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(v[i], is), lim),
                                           _mm512_sub_ps(_mm512_setzero_ps(), lim));
            __m512i q = _mm512_cvtps_epi32(c);
            q = _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)),
                                 _mm512_set1_epi32(-127));
            _mm_storeu_si128((__m128i *)(y[b].qs + 16 * i), _mm512_cvtepi32_epi8(q));
            y[b].bsums[i] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        y[b].d = 1.0f / iscale;
    }
}
