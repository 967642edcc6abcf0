/*
 * kernels_avx512_k.c - AVX-512 VNNI batch kernels for the K-quants Q4_K, Q6_K, Q2_K, Q3_K and
 * for IQ4_XS against 8-bit activations in tiles of 16 tokens (ENG_ACT_Q8K_TILES), and the
 * AVX-512 twin of the Q8_K activation quantizer. The scalar twins are dot_q4_K, dot_q6_K,
 * dot_q2_K, dot_q3_K, dot_iq4_xs in kernels.c and eng_quantize_q8_K; the tests compare them.
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
 * Q2_K and Q3_K follow Q6_K (16 codes per sub-block; Q3_K's codes stored + 4, Q2_K's min term
 * as Q4_K's), IQ4_XS follows Q4_K (32 per sub-block) with its indices looked up in the table
 * plus 128 and the 128 taken out through the token's sums.
 *
 * A pair of weight rows shares every activation load (see kernels_avx512_q8.c): Q4_K and
 * IQ4_XS decode one sub-block of both rows (16 code vectors) for 2 tiles, Q6_K, Q2_K and Q3_K
 * one sub-block of 16 codes of both rows (8 vectors) for 4 tiles.
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

/* ---- Q2_K, Q3_K ------------------------------------------------------------------- */

/* The 4 code vectors of sub-block g (codes 16g..16g+15) of a Q2_K (hm NULL) or Q3_K
 * super-block: element 128h + 32j + l, h = g / 8, j = (g % 8) / 2, l = 16 (g % 2) + 4i ..,
 * has its low 2 bits at bits 2j of qs[32h + l] and (Q3_K) its third bit at bit 4h + j of
 * hm[l], moved to bit 2 (see quant.h). */
INLINE VNNI void k23_codes(const uint8_t *qs, const uint8_t *hm, int g, __m512i *q)
{
    const int h = g / 8, j = (g % 8) / 2, sh = 4 * h + j;
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const int l = 16 * (g % 2) + 4 * i;
        __m512i c = _mm512_and_si512(_mm512_srli_epi16(bcast4(qs + 32 * h + l), 2 * j),
                                     _mm512_set1_epi8(3));
        if (hm) {
            const __m512i hb = bcast4(hm + l);
            const __m512i top =
                sh >= 2 ? _mm512_srli_epi16(hb, sh - 2) : _mm512_slli_epi16(hb, 2 - sh);
            c = _mm512_ternarylogic_epi32(top, _mm512_set1_epi8(4), c, 0xEA); /* (top & 4) | c */
        }
        q[i] = c;
    }
}

/* Q2_K (q3 = 0): sub-block g adds d * (sc & 15) * (codes . y) - dmin * (sc >> 4) * (sum of y);
 * Q3_K (q3 = 1): d * (sc - 32) * (codes . y - 4 * sum of y), the codes stored + 4. */
INLINE VNNI void k23_rows(const int q3, const int R, const int NT, int64_t n, const uint8_t *w,
                          size_t wrow, const uint8_t *x, size_t tile_bytes,
                          __m512 (*acc)[ENG_TILES_MAX])
{
    const size_t bb = q3 ? sizeof(eng_block_q3_K) : sizeof(eng_block_q2_K);
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        const uint8_t *qs[2], *hm[2];
        float f[2][16], m[2][16];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + r * wrow + (size_t)b * bb;
            if (q3) {
                const eng_block_q3_K *k3 = (const eng_block_q3_K *)blk;
                int8_t sc[16];
                eng_q3_K_scales(k3->scales, sc);
                qs[r] = k3->qs;
                hm[r] = k3->hmask;
                for (int g = 0; g < 16; g++)
                    f[r][g] = _cvtsh_ss(k3->d) * (float)sc[g];
            } else {
                const eng_block_q2_K *k2 = (const eng_block_q2_K *)blk;
                qs[r] = k2->qs;
                hm[r] = NULL;
                for (int g = 0; g < 16; g++) {
                    f[r][g] = _cvtsh_ss(k2->d) * (float)(k2->scales[g] & 0xF);
                    m[r][g] = _cvtsh_ss(k2->dmin) * (float)(k2->scales[g] >> 4);
                }
            }
        }
        for (int g = 0; g < 16; g++) {
            __m512i q[2][4];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                k23_codes(qs[r], hm[r], g, q[r]);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const uint8_t *tile = x + t * tile_bytes;
                const uint8_t *y = sb_codes(tile, b) + 64 * 4 * g;
                const __m512 dy = sb_scale(tile, b);
                const __m512i sum = sb_sum16(tile, b, g);
                const __m512i off =
                    q3 ? _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 2))
                       : _mm512_setzero_si512();
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
                const __m512 ysum = q3 ? dy : _mm512_mul_ps(dy, _mm512_cvtepi32_ps(sum));
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) {
                    const __m512 fr = _mm512_mul_ps(dy, _mm512_set1_ps(f[r][g]));
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]), fr, acc[r][t]);
                    if (!q3)
                        acc[r][t] = _mm512_fnmadd_ps(ysum, _mm512_set1_ps(m[r][g]), acc[r][t]);
                }
            }
        }
    }
}

/* ---- IQ4_XS ------------------------------------------------------------------------ */

/* IQ4_XS sub-block ib of 32 is an IQ4_NL block under the scale d * (ls - 32): its codes are
 * the table values + 128 (unsigned), looked up 4 at a time as Q4_0's nibbles are decoded
 * (codes 4g.. in the low nibbles, 16 + 4g.. in the high ones), and the 128 comes back out as
 * -128 * (sum of the token's 32 codes). */
INLINE VNNI void iq4xs_rows(const int R, const int NT, int64_t n, const uint8_t *w, size_t wrow,
                            const uint8_t *x, size_t tile_bytes, __m512i table,
                            __m512 (*acc)[ENG_TILES_MAX])
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        const eng_block_iq4_xs *blk[2];
        float f[2][8];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            blk[r] = (const eng_block_iq4_xs *)(w + r * wrow) + b;
            for (int ib = 0; ib < 8; ib++)
                f[r][ib] = _cvtsh_ss(blk[r]->d) * (float)eng_iq4_xs_scale(blk[r], ib);
        }
        for (int ib = 0; ib < 8; ib++) {
            __m512i q[2][8];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
#pragma GCC unroll 4
                for (int g = 0; g < 4; g++) {
                    const __m512i v = bcast4(blk[r]->qs + 16 * ib + 4 * g);
                    q[r][g] = _mm512_shuffle_epi8(table, _mm512_and_si512(v, m4));
                    q[r][g + 4] =
                        _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
                }
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const uint8_t *tile = x + t * tile_bytes;
                const uint8_t *y = sb_codes(tile, b) + 64 * 8 * ib;
                const __m512 dy = sb_scale(tile, b);
                const __m512i off = _mm512_sub_epi32(
                    _mm512_setzero_si512(),
                    _mm512_slli_epi32(
                        _mm512_add_epi32(sb_sum16(tile, b, 2 * ib), sb_sum16(tile, b, 2 * ib + 1)),
                        7));
                __m512i s[2];
#pragma GCC unroll 2
                for (int r = 0; r < R; r++)
                    s[r] = off;
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    const __m512i yv = _mm512_loadu_si512(y + 64 * g);
#pragma GCC unroll 2
                    for (int r = 0; r < R; r++)
                        s[r] = _mm512_dpbusd_epi32(s[r], q[r][g], yv);
                }
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) {
                    const __m512 fr = _mm512_mul_ps(dy, _mm512_set1_ps(f[r][ib]));
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]), fr, acc[r][t]);
                }
            }
        }
    }
}

/* ---- the parts and sets ------------------------------------------------------------ */

enum kkind { K_Q4, K_Q6, K_Q2, K_Q3, K_IQ4XS };

INLINE VNNI void k_part(const int kind, const int R, int64_t n, const uint8_t *w, size_t wrow,
                        const uint8_t *x, size_t tile_bytes, int64_t k, int64_t r, int64_t rg,
                        float (*out)[ENG_TILES_ROW_GROUP])
{
    __m512 acc[2][ENG_TILES_MAX];
    const __m512i iq4_table = _mm512_broadcast_i32x4(_mm_xor_si128(
        _mm_loadu_si128((const __m128i *)eng_iq4nl_values), _mm_set1_epi8((char)0x80)));
#define K_ROWS(NT)                                                                                 \
    do {                                                                                           \
        if (kind == K_Q4)                                                                          \
            k4_rows(R, NT, n, w, wrow, x, tile_bytes, acc);                                        \
        else if (kind == K_Q6)                                                                     \
            k6_rows(R, NT, n, w, wrow, x, tile_bytes, acc);                                        \
        else if (kind == K_Q2 || kind == K_Q3)                                                     \
            k23_rows(kind == K_Q3, R, NT, n, w, wrow, x, tile_bytes, acc);                         \
        else                                                                                       \
            iq4xs_rows(R, NT, n, w, wrow, x, tile_bytes, iq4_table, acc);                          \
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
PART(q2_K, K_Q2)
PART(q3_K, K_Q3)
PART(iq4_xs, K_IQ4XS)

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

static void q2_K_gemm(int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt,
                      float *Y, size_t ldy, int64_t r0, int64_t r1)
{
    eng_gemm_tiles(q2_K_part, K6_TILES, (size_t)(n / ENG_QK_K) * SB_BYTES, n, W, wrow, xq, nt, Y,
                   ldy, r0, r1);
}

static void q3_K_gemm(int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt,
                      float *Y, size_t ldy, int64_t r0, int64_t r1)
{
    eng_gemm_tiles(q3_K_part, K6_TILES, (size_t)(n / ENG_QK_K) * SB_BYTES, n, W, wrow, xq, nt, Y,
                   ldy, r0, r1);
}

static void iq4_xs_gemm(int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt,
                        float *Y, size_t ldy, int64_t r0, int64_t r1)
{
    eng_gemm_tiles(iq4_xs_part, K4_TILES, (size_t)(n / ENG_QK_K) * SB_BYTES, n, W, wrow, xq, nt, Y,
                   ldy, r0, r1);
}

eng_rows_fn eng_gemm_avx512_k(eng_type wtype)
{
    eng_rows_fn f = NULL;
    if (eng_isa_has_vnni()) {
        switch (wtype) {
        case ENG_TYPE_Q4_K:
            f = q4_K_gemm;
            break;
        case ENG_TYPE_Q6_K:
            f = q6_K_gemm;
            break;
        case ENG_TYPE_Q2_K:
            f = q2_K_gemm;
            break;
        case ENG_TYPE_Q3_K:
            f = q3_K_gemm;
            break;
        case ENG_TYPE_IQ4_XS:
            f = iq4_xs_gemm;
            break;
        default:
            break;
        }
    }
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
