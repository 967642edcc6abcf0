/*
 * kernels_kv.c - attention over the compressed KV caches: scores against F16 keys stored
 * transposed, and the weighted sum of Q8_0 values stored one position per row. Each has a
 * plain C twin, an AVX2 (+F16C) and an AVX-512 version, chosen by eng_isa_active(); tests
 * compare them with the twin and with the F32 path.
 *
 * DESIGN. The F16 scores are eng_attn_scores with a conversion in the load: positions are the
 * vector lanes, so a row of 16 (8) halves of one key dimension becomes a float vector with one
 * instruction and no horizontal sum is needed. The AVX2 version takes full tiles of positions
 * in registers and the last few positions through the twin's loop. Q8_0 values are one
 * position per row (blocks of 32 along the head dimension, as ggml's q8_0); out += w * v_p
 * decodes each block once for all the queries of a group. The F16 values and the Q8_0 keys
 * need no kernel of their own: they are eng_matmul over the cache (a float matrix product with
 * F16 weights, and Q8_0 weights against the queries quantized to Q8_0, as ggml does).
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma,f16c")))

#define SQ 4 /* queries per register tile */

/* ---- scores against F16 keys ------------------------------------------------------------ */

static void scores_f16_scalar(const float *q, int nq, int hd, const uint16_t *kt, size_t ldk,
                              int p0, int npos, float *s, size_t lds)
{
    for (int t = 0; t < nq; t++)
        for (int p = p0; p < npos; p++) {
            float acc = 0.0f;
            for (int i = 0; i < hd; i++)
                acc += q[(size_t)t * hd + i] * eng_h2f(kt[(size_t)i * ldk + p]);
            s[(size_t)t * lds + p] = acc;
        }
}

#define SP2 2 /* vectors of 8 positions per AVX2 tile: 4 x 2 accumulators, 2 keys, 1 query */

static AVX2 void scores_f16_tile_avx2(const int T, const float *q, int hd, const uint16_t *kt,
                                      size_t ldk, int p0, float *s, size_t lds)
{
    __m256 acc[SQ][SP2];
#pragma GCC unroll 4
    for (int t = 0; t < SQ; t++)
#pragma GCC unroll 2
        for (int j = 0; j < SP2; j++)
            acc[t][j] = _mm256_setzero_ps();
    for (int i = 0; i < hd; i++) {
        const uint16_t *row = kt + (size_t)i * ldk + p0;
        __m256 kv[SP2];
#pragma GCC unroll 2
        for (int j = 0; j < SP2; j++)
            kv[j] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 8 * j)));
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const __m256 qv = _mm256_set1_ps(q[(size_t)t * hd + i]);
#pragma GCC unroll 2
            for (int j = 0; j < SP2; j++)
                acc[t][j] = _mm256_fmadd_ps(qv, kv[j], acc[t][j]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
#pragma GCC unroll 2
        for (int j = 0; j < SP2; j++)
            _mm256_storeu_ps(s + (size_t)t * lds + p0 + 8 * j, acc[t][j]);
}

static AVX2 void scores_f16_avx2(const float *q, int nq, int hd, const uint16_t *kt, size_t ldk,
                                 int npos, float *s, size_t lds)
{
    const int full = npos / (8 * SP2) * (8 * SP2);
    for (int t = 0; t < nq; t += SQ) {
        const float *qt = q + (size_t)t * hd;
        float *st = s + (size_t)t * lds;
        const int T = nq - t < SQ ? nq - t : SQ;
        for (int p0 = 0; p0 < full; p0 += 8 * SP2) {
            switch (T) { /* a constant count keeps the tile in registers */
            case 1:
                scores_f16_tile_avx2(1, qt, hd, kt, ldk, p0, st, lds);
                break;
            case 2:
                scores_f16_tile_avx2(2, qt, hd, kt, ldk, p0, st, lds);
                break;
            case 3:
                scores_f16_tile_avx2(3, qt, hd, kt, ldk, p0, st, lds);
                break;
            default:
                scores_f16_tile_avx2(4, qt, hd, kt, ldk, p0, st, lds);
                break;
            }
        }
        scores_f16_scalar(qt, T, hd, kt, ldk, full, npos, st, lds);
    }
}

#define SP 4 /* vectors of 16 positions per AVX-512 tile */

static AVX512 void scores_f16_tile_avx512(const int T, const float *q, int hd, const uint16_t *kt,
                                          size_t ldk, int p0, int npos, float *s, size_t lds)
{
    __m512 acc[SQ][SP];
    __mmask16 k[SP];
#pragma GCC unroll 4
    for (int j = 0; j < SP; j++) {
        const int left = npos - p0 - 16 * j;
        k[j] = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
#pragma GCC unroll 4
        for (int t = 0; t < SQ; t++)
            acc[t][j] = _mm512_setzero_ps();
    }
    for (int i = 0; i < hd; i++) {
        const uint16_t *row = kt + (size_t)i * ldk + p0;
        __m512 kv[SP];
#pragma GCC unroll 4
        for (int j = 0; j < SP; j++)
            kv[j] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k[j], row + 16 * j));
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const __m512 qv = _mm512_set1_ps(q[(size_t)t * hd + i]);
#pragma GCC unroll 4
            for (int j = 0; j < SP; j++)
                acc[t][j] = _mm512_fmadd_ps(qv, kv[j], acc[t][j]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int j = 0; j < SP; j++)
            _mm512_mask_storeu_ps(s + (size_t)t * lds + p0 + 16 * j, k[j], acc[t][j]);
}

static AVX512 void scores_f16_avx512(const float *q, int nq, int hd, const uint16_t *kt, size_t ldk,
                                     int npos, float *s, size_t lds)
{
    for (int t = 0; t < nq; t += SQ) {
        const float *qt = q + (size_t)t * hd;
        float *st = s + (size_t)t * lds;
        for (int p0 = 0; p0 < npos; p0 += 16 * SP) {
            switch (nq - t < SQ ? nq - t : SQ) {
            case 1:
                scores_f16_tile_avx512(1, qt, hd, kt, ldk, p0, npos, st, lds);
                break;
            case 2:
                scores_f16_tile_avx512(2, qt, hd, kt, ldk, p0, npos, st, lds);
                break;
            case 3:
                scores_f16_tile_avx512(3, qt, hd, kt, ldk, p0, npos, st, lds);
                break;
            default:
                scores_f16_tile_avx512(4, qt, hd, kt, ldk, p0, npos, st, lds);
                break;
            }
        }
    }
}

void eng_attn_scores_f16(const float *q, int nq, int hd, const uint16_t *kt, size_t ldk, int npos,
                         float *s, size_t lds)
{
    const eng_isa isa = eng_isa_active();
    if (isa >= ENG_ISA_AVX512)
        scores_f16_avx512(q, nq, hd, kt, ldk, npos, s, lds);
    else if (isa >= ENG_ISA_AVX2)
        scores_f16_avx2(q, nq, hd, kt, ldk, npos, s, lds);
    else
        scores_f16_scalar(q, nq, hd, kt, ldk, 0, npos, s, lds);
}

/* ---- weighted sum of Q8_0 values -------------------------------------------------------- */

static void values_q8_0_scalar(const float *w, int nq, size_t ldw, int npos, const void *v, int hd,
                               float *out, size_t ldo)
{
    const int nb = hd / ENG_QK;
    for (int t = 0; t < nq; t++)
        memset(out + (size_t)t * ldo, 0, (size_t)hd * sizeof(float));
    for (int p = 0; p < npos; p++) {
        const eng_block_q8_0 *row = (const eng_block_q8_0 *)v + (size_t)p * nb;
        for (int b = 0; b < nb; b++) {
            const float d = eng_h2f(row[b].d);
            for (int t = 0; t < nq; t++) {
                const float wd = w[(size_t)t * ldw + p] * d;
                float *o = out + (size_t)t * ldo + b * ENG_QK;
                for (int j = 0; j < ENG_QK; j++)
                    o[j] += wd * (float)row[b].qs[j];
            }
        }
    }
}

static AVX2 void values_q8_0_avx2(const float *w, int nq, size_t ldw, int npos, const void *v,
                                  int hd, float *out, size_t ldo)
{
    const int nb = hd / ENG_QK;
    for (int t = 0; t < nq; t++)
        memset(out + (size_t)t * ldo, 0, (size_t)hd * sizeof(float));
    for (int p = 0; p < npos; p++) {
        const eng_block_q8_0 *row = (const eng_block_q8_0 *)v + (size_t)p * nb;
        for (int b = 0; b < nb; b++) {
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(row[b].d));
            __m256 x[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m128i c = _mm_loadl_epi64((const __m128i *)(row[b].qs + 8 * j));
                x[j] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)));
            }
            for (int t = 0; t < nq; t++) {
                const __m256 wt = _mm256_set1_ps(w[(size_t)t * ldw + p]);
                float *o = out + (size_t)t * ldo + b * ENG_QK;
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++)
                    _mm256_storeu_ps(o + 8 * j,
                                     _mm256_fmadd_ps(wt, x[j], _mm256_loadu_ps(o + 8 * j)));
            }
        }
    }
}

static AVX512 void values_q8_0_avx512(const float *w, int nq, size_t ldw, int npos, const void *v,
                                      int hd, float *out, size_t ldo)
{
    const int nb = hd / ENG_QK;
    for (int t = 0; t < nq; t++)
        memset(out + (size_t)t * ldo, 0, (size_t)hd * sizeof(float));
    for (int p = 0; p < npos; p++) {
        const eng_block_q8_0 *row = (const eng_block_q8_0 *)v + (size_t)p * nb;
        for (int b = 0; b < nb; b++) {
            const __m512 d = _mm512_set1_ps(_cvtsh_ss(row[b].d));
            __m512 x[2];
#pragma GCC unroll 2
            for (int j = 0; j < 2; j++) {
                const __m128i c = _mm_loadu_si128((const __m128i *)(row[b].qs + 16 * j));
                x[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)));
            }
            for (int t = 0; t < nq; t++) {
                const __m512 wt = _mm512_set1_ps(w[(size_t)t * ldw + p]);
                float *o = out + (size_t)t * ldo + b * ENG_QK;
#pragma GCC unroll 2
                for (int j = 0; j < 2; j++)
                    _mm512_storeu_ps(o + 16 * j,
                                     _mm512_fmadd_ps(wt, x[j], _mm512_loadu_ps(o + 16 * j)));
            }
        }
    }
}

void eng_attn_values_q8_0(const float *w, int nq, size_t ldw, int npos, const void *v, int hd,
                          float *out, size_t ldo)
{
    const eng_isa isa = eng_isa_active();
    if (isa >= ENG_ISA_AVX512)
        values_q8_0_avx512(w, nq, ldw, npos, v, hd, out, ldo);
    else if (isa >= ENG_ISA_AVX2)
        values_q8_0_avx2(w, nq, ldw, npos, v, hd, out, ldo);
    else
        values_q8_0_scalar(w, nq, ldw, npos, v, hd, out, ldo);
}
