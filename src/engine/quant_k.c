/*
 * quant_k.c - the K-quant super-blocks (256 elements): dequantization of Q4_K, Q5_K and
 * Q6_K, Q2_K and Q3_K, their quantizers (and Q5_K's), and Q8_K, the activation format of
 * the K-quant dot products.
 *
 * DESIGN. The quantizers follow llama.cpp's reference (no importance matrix) algorithms, so
 * their error and their bytes match what a GGUF tool would produce:
 *   Q4_K  each sub-block of 32 gets a scale and a min from a weighted least-squares fit over
 *         a sweep of candidate scales (fit_scale_min); the 8 scales and 8 mins are then
 *         quantized to 6 bits against the super-block's largest, and the codes recomputed
 *         with the scales actually stored.
 *   Q6_K  each sub-block of 16 gets a symmetric scale from a sweep around max/32 that
 *         maximises the x^2-weighted fit (fit_scale_sym); the 16 scales are quantized to
 *         int8 against the largest, and the codes recomputed.
 *   Q5_K  as Q4_K with codes 0..31 and a narrower sweep (llama.cpp's -0.5 + 0.1 k, 16 steps).
 *   Q2_K  each sub-block of 16 gets a scale and min from fit_scale_min with codes 0..3 and
 *         weights |x| (the reference minimises the absolute error; this the squared one);
 *         scales and mins are quantized to 4 bits against the largest.
 *   Q3_K  each sub-block of 16 gets a symmetric scale from fit_scale_sym with codes -4..3;
 *         the 16 scales are quantized to 6 bits (-32..31) against the largest.
 *   Q8_K  plain absmax to +-127 with a float scale, plus the sums of each 16 codes that the
 *         kernels use to apply the K-quant mins and offsets without touching codes twice.
 */
#include <math.h>
#include <string.h>

#include "eng_types.h"
#include "quant.h"

/* Largest magnitude nearest() passes through; callers clamp to a few dozen codes anyway,
 * this only keeps a degenerate quotient (a near-zero scale) inside int range. */
#define NEAREST_LIMIT 4194303.0f
/* Smallest block maximum Q8_K quantizes; below it 127 / max would overflow to inf. */
#define Q8_K_MIN_AMAX 1e-30f

/* Round to nearest, ties to even (the default FP mode), as the reference's magic-number
 * trick does. */
static int nearest(float v)
{
    v = v > NEAREST_LIMIT ? NEAREST_LIMIT : v < -NEAREST_LIMIT ? -NEAREST_LIMIT : v;
    return (int)lrintf(v);
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Symmetric quantization of n values to codes -nmax..nmax-1 (stored in L as code + nmax),
 * weighting each value by x^2. Tries 19 scales around -nmax/max and keeps the one with
 * the best weighted least-squares fit; returns the scale (negative when the largest value
 * is positive, which lets it reach code -nmax). Zero for an all-zero group. */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -(float)nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        float w = x[i] * x[i];
        L[i] = (int8_t)(l + nmax);
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        /* sumlx^2 / suml2 is the fit's explained energy; larger is better */
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Asymmetric quantization of n values to codes 0..nmax as x ~ scale * L - min, with weights
 * w. Sweeps nstep + 1 candidate inverse scales (nmax + rmin + k * rdelta) / range, solves
 * the weighted least-squares scale and min for each candidate's codes, and keeps the one of
 * least weighted squared error. Writes the min (as a non-negative offset) to *the_min. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        min = x[i] < min ? x[i] : min;
        max = x[i] > max ? x[i] : max;
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0.0f) /* the min is an offset down from zero, never up */
        min = 0.0f;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        best_error += w[i] * diff * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                err += w[i] * diff * diff;
            }
            if (err < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Packs sub-block j's 6-bit scale ls and min lm (inverse of eng_k4_scale_min). */
static void pack_k4_scale_min(uint8_t *q, int j, uint8_t ls, uint8_t lm)
{
    if (j < 4) {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
        q[j - 4] |= (uint8_t)((ls >> 4) << 6);
        q[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

void eng_quantize_q4_K(const float *x, eng_block_q4_K *y, int64_t n)
{
    uint8_t L[ENG_QK_K], Laux[32];
    float w[32], scales[8], mins[8];

    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            float sum_x2 = 0.0f;
            for (int l = 0; l < 32; l++)
                sum_x2 += xs[l] * xs[l];
            /* weights favour large values, with a floor so small ones still count */
            const float av_x = sqrtf(sum_x2 / 32.0f);
            for (int l = 0; l < 32; l++)
                w[l] = av_x + fabsf(xs[l]);
            scales[j] = fit_scale_min(32, 15, xs, w, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20);
            max_scale = scales[j] > max_scale ? scales[j] : max_scale;
            max_min = mins[j] > max_min ? mins[j] : max_min;
        }
        const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        memset(y[b].scales, 0, sizeof y[b].scales);
        for (int j = 0; j < 8; j++) {
            uint8_t ls = (uint8_t)clampi(nearest(inv_scale * scales[j]), 0, 63);
            uint8_t lm = (uint8_t)clampi(nearest(inv_min * mins[j]), 0, 63);
            pack_k4_scale_min(y[b].scales, j, ls, lm);
        }
        y[b].d = eng_fp16_scale(max_scale / 63.0f);
        y[b].dmin = eng_fp16_scale(max_min / 63.0f);

        /* recompute the codes against the scales as stored (6-bit, half precision) */
        const float d_all = eng_h2f(y[b].d), m_all = eng_h2f(y[b].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            eng_k4_scale_min(j, y[b].scales, &sc, &m);
            const float d = d_all * sc;
            if (d == 0.0f)
                continue;
            const float dm = m_all * m;
            for (int l = 0; l < 32; l++)
                L[32 * j + l] = (uint8_t)clampi(nearest((x[32 * j + l] + dm) / d), 0, 15);
        }
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[b].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

void eng_dequantize_q4_K(const eng_block_q4_K *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        const float d = eng_h2f(x[b].d);
        const float dmin = eng_h2f(x[b].dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            eng_k4_scale_min(2 * c, x[b].scales, &sc0, &m0);
            eng_k4_scale_min(2 * c + 1, x[b].scales, &sc1, &m1);
            const float d0 = d * sc0, mm0 = dmin * m0, d1 = d * sc1, mm1 = dmin * m1;
            const uint8_t *q = x[b].qs + 32 * c;
            for (int l = 0; l < 32; l++)
                *y++ = d0 * (float)(q[l] & 0xF) - mm0;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)(q[l] >> 4) - mm1;
        }
    }
}

void eng_dequantize_q5_K(const eng_block_q5_K *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        const float d = eng_h2f(x[b].d);
        const float dmin = eng_h2f(x[b].dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            eng_k4_scale_min(2 * c, x[b].scales, &sc0, &m0);
            eng_k4_scale_min(2 * c + 1, x[b].scales, &sc1, &m1);
            const float d0 = d * sc0, mm0 = dmin * m0, d1 = d * sc1, mm1 = dmin * m1;
            const uint8_t *q = x[b].qs + 32 * c;
            const uint8_t *qh = x[b].qh;
            for (int l = 0; l < 32; l++)
                *y++ = d0 * (float)((q[l] & 0xF) | ((qh[l] >> (2 * c)) & 1) << 4) - mm0;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((q[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4) - mm1;
        }
    }
}

void eng_quantize_q6_K(const float *x, eng_block_q6_K *y, int64_t n)
{
    int8_t L[ENG_QK_K];
    float scales[16];

    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        float max_scale = 0.0f, max_abs = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > max_abs) {
                max_abs = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(&y[b], 0, sizeof y[b]);
        if (max_abs < 1e-15f) /* all zero: a zero block */
            continue;
        /* the largest scale maps to -128, using the full int8 range */
        const float iscale = -128.0f / max_scale;
        y[b].d = eng_fp16_scale(1.0f / iscale);
        for (int j = 0; j < 16; j++)
            y[b].scales[j] = (int8_t)clampi(nearest(iscale * scales[j]), -128, 127);

        const float d_all = eng_h2f(y[b].d);
        for (int j = 0; j < 16; j++) {
            const float d = d_all * y[b].scales[j];
            if (d == 0.0f)
                continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clampi(nearest(x[16 * j + l] / d), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++) {
            const int8_t *Lh = L + 128 * h;
            uint8_t *ql = y[b].ql + 64 * h, *qh = y[b].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0xF) | (Lh[l + 64] & 0xF) << 4);
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | (Lh[l + 96] & 0xF) << 4);
                qh[l] = (uint8_t)(Lh[l] >> 4 | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 |
                                  (Lh[l + 96] >> 4) << 6);
            }
        }
    }
}

void eng_dequantize_q6_K(const eng_block_q6_K *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        const float d = eng_h2f(x[b].d);
        for (int h = 0; h < 2; h++, y += 128) {
            const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
            const int8_t *sc = x[b].scales + 8 * h;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void eng_quantize_q8_K(const float *x, eng_block_q8_K *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < ENG_QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        memset(&y[b], 0, sizeof y[b]);
        if (amax < Q8_K_MIN_AMAX) /* zero, or too tiny to scale: a zero block */
            continue;
        /* +-127, never -128: the kernels may negate codes */
        const float iscale = -127.0f / max;
        for (int j = 0; j < ENG_QK_K; j++)
            y[b].qs[j] = (int8_t)clampi(nearest(iscale * x[j]), -127, 127);
        for (int g = 0; g < ENG_QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[b].qs[16 * g + l];
            y[b].bsums[g] = (int16_t)sum;
        }
        y[b].d = 1.0f / iscale;
    }
}

void eng_dequantize_q8_K(const eng_block_q8_K *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++, y += ENG_QK_K)
        for (int j = 0; j < ENG_QK_K; j++)
            y[j] = x[b].d * (float)x[b].qs[j];
}

/* ---- Q5_K, Q2_K, Q3_K -------------------------------------------------------------- */

void eng_quantize_q5_K(const float *x, eng_block_q5_K *y, int64_t n)
{
    uint8_t L[ENG_QK_K], Laux[32];
    float w[32], scales[8], mins[8];

    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            float sum_x2 = 0.0f;
            for (int l = 0; l < 32; l++)
                sum_x2 += xs[l] * xs[l];
            const float av_x = sqrtf(sum_x2 / 32.0f);
            for (int l = 0; l < 32; l++)
                w[l] = av_x + fabsf(xs[l]);
            scales[j] = fit_scale_min(32, 31, xs, w, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15);
            max_scale = scales[j] > max_scale ? scales[j] : max_scale;
            max_min = mins[j] > max_min ? mins[j] : max_min;
        }
        const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        memset(&y[b], 0, sizeof y[b]);
        for (int j = 0; j < 8; j++) {
            uint8_t ls = (uint8_t)clampi(nearest(inv_scale * scales[j]), 0, 63);
            uint8_t lm = (uint8_t)clampi(nearest(inv_min * mins[j]), 0, 63);
            pack_k4_scale_min(y[b].scales, j, ls, lm);
        }
        y[b].d = eng_fp16_scale(max_scale / 63.0f);
        y[b].dmin = eng_fp16_scale(max_min / 63.0f);

        const float d_all = eng_h2f(y[b].d), m_all = eng_h2f(y[b].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            eng_k4_scale_min(j, y[b].scales, &sc, &m);
            const float d = d_all * sc;
            if (d == 0.0f)
                continue;
            const float dm = m_all * m;
            for (int l = 0; l < 32; l++)
                L[32 * j + l] = (uint8_t)clampi(nearest((x[32 * j + l] + dm) / d), 0, 31);
        }
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                const uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                y[b].qs[32 * c + l] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
                y[b].qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
            }
    }
}

/* The 2-bit codes L[0..255] (values 0..3) packed as Q2_K/Q3_K qs (see quant.h). */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++)
            qs[32 * h + l] = (uint8_t)(L[128 * h + l] | L[128 * h + 32 + l] << 2 |
                                       L[128 * h + 64 + l] << 4 | L[128 * h + 96 + l] << 6);
}

void eng_quantize_q2_K(const float *x, eng_block_q2_K *y, int64_t n)
{
    uint8_t L[ENG_QK_K], Laux[16];
    float w[16], scales[16], mins[16];

    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int k = 0; k < 16; k++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * k + l]);
            scales[k] =
                fit_scale_min(16, 3, x + 16 * k, w, L + 16 * k, &mins[k], Laux, -0.5f, 0.1f, 15);
            max_scale = scales[k] > max_scale ? scales[k] : max_scale;
            max_min = mins[k] > max_min ? mins[k] : max_min;
        }
        memset(&y[b], 0, sizeof y[b]);
        const float inv_scale = max_scale > 0.0f ? 15.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0.0f ? 15.0f / max_min : 0.0f;
        for (int k = 0; k < 16; k++)
            y[b].scales[k] = (uint8_t)(clampi(nearest(inv_scale * scales[k]), 0, 15) |
                                       clampi(nearest(inv_min * mins[k]), 0, 15) << 4);
        y[b].d = eng_fp16_scale(max_scale / 15.0f);
        y[b].dmin = eng_fp16_scale(max_min / 15.0f);

        const float d_all = eng_h2f(y[b].d), m_all = eng_h2f(y[b].dmin);
        for (int k = 0; k < 16; k++) {
            const float d = d_all * (float)(y[b].scales[k] & 0xF);
            const float dm = m_all * (float)(y[b].scales[k] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * k + l] =
                    d == 0.0f ? 0 : (uint8_t)clampi(nearest((x[16 * k + l] + dm) / d), 0, 3);
        }
        pack_2bit(L, y[b].qs);
    }
}

void eng_dequantize_q2_K(const eng_block_q2_K *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++, y += ENG_QK_K) {
        const float d = eng_h2f(x[b].d), dmin = eng_h2f(x[b].dmin);
        for (int e = 0; e < ENG_QK_K; e++) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            const uint8_t sc = x[b].scales[e / 16];
            const int q = (x[b].qs[32 * h + l] >> (2 * j)) & 3;
            y[e] = d * (float)(sc & 0xF) * (float)q - dmin * (float)(sc >> 4);
        }
    }
}

void eng_quantize_q3_K(const float *x, eng_block_q3_K *y, int64_t n)
{
    int8_t L[ENG_QK_K];
    uint8_t U[ENG_QK_K];
    float scales[16];

    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        float max_scale = 0.0f, max_abs = 0.0f;
        for (int k = 0; k < 16; k++) {
            scales[k] = fit_scale_sym(16, 4, x + 16 * k, L + 16 * k);
            if (fabsf(scales[k]) > max_abs) {
                max_abs = fabsf(scales[k]);
                max_scale = scales[k];
            }
        }
        memset(&y[b], 0, sizeof y[b]);
        if (max_abs < 1e-15f) /* all zero: d = 0, a zero block */
            continue;
        /* the largest scale maps to -32, the 6-bit range's end */
        const float iscale = -32.0f / max_scale;
        for (int k = 0; k < 16; k++) {
            const int ls = clampi(nearest(iscale * scales[k]), -32, 31) + 32;
            if (k < 8)
                y[b].scales[k] = (uint8_t)(ls & 0xF);
            else
                y[b].scales[k - 8] |= (uint8_t)((ls & 0xF) << 4);
            y[b].scales[8 + k % 4] |= (uint8_t)((ls >> 4) << (2 * (k / 4)));
        }
        y[b].d = eng_fp16_scale(1.0f / iscale);

        int8_t sc[16];
        eng_q3_K_scales(y[b].scales, sc);
        const float d_all = eng_h2f(y[b].d);
        for (int k = 0; k < 16; k++) {
            const float d = d_all * (float)sc[k];
            for (int l = 0; l < 16; l++)
                U[16 * k + l] =
                    (uint8_t)(d == 0.0f ? 4 : clampi(nearest(x[16 * k + l] / d), -4, 3) + 4);
        }
        for (int e = 0; e < ENG_QK_K; e++) { /* the third bit: set for codes 4..7 */
            if (U[e] > 3) {
                y[b].hmask[e % 32] |= (uint8_t)(1u << (e / 32));
                U[e] = (uint8_t)(U[e] - 4);
            }
        }
        pack_2bit(U, y[b].qs);
    }
}

void eng_dequantize_q3_K(const eng_block_q3_K *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++, y += ENG_QK_K) {
        const float d = eng_h2f(x[b].d);
        int8_t sc[16];
        eng_q3_K_scales(x[b].scales, sc);
        for (int e = 0; e < ENG_QK_K; e++) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            const int lo = (x[b].qs[32 * h + l] >> (2 * j)) & 3;
            const int hi = (x[b].hmask[l] >> (4 * h + j)) & 1;
            y[e] = d * (float)sc[e / 16] * (float)(lo - (hi ? 0 : 4));
        }
    }
}
