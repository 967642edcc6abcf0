/*
 * kernels_ops.c - the forward pass's ops besides the weight products (RMS norm, softmax,
 * SwiGLU, attention scores), each a plain C twin and an AVX-512 version chosen by
 * eng_isa_active(); tests compare the two.
 *
 * DESIGN. The exponential is the Cephes single-precision one (range reduction by ln 2 in two
 * parts, a degree-6 polynomial, scaling by 2^n), written once for a lane and once for a
 * vector with the same fused multiply-adds in the same order, so the twins agree to the bit
 * and both stay within 2 ulp of expf. libm's expf was 5-9% of a prompt of the bundled model
 * (one call per attention score and per feed-forward element). The RMS norm sums squares in
 * double, as the reference does.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels.h"

#define AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))

#define EXP_HI 88.3762626647949f /* ln(FLT_MAX): e^x overflows above */
#define EXP_LO -88.3762626647949f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f /* ln 2 split so n * LN2_HI is exact */
#define LN2_LO -2.12194440e-4f
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f

static float exp_scalar(float x)
{
    if (x != x) /* NaN (a broken model): (int)n below would be undefined */
        return x;
    x = x > EXP_HI ? EXP_HI : x < EXP_LO ? EXP_LO : x;
    const float n = nearbyintf(x * LOG2E);
    float r = fmaf(n, -LN2_HI, x);
    r = fmaf(n, -LN2_LO, r);
    float p = P0;
    p = fmaf(p, r, P1);
    p = fmaf(p, r, P2);
    p = fmaf(p, r, P3);
    p = fmaf(p, r, P4);
    p = fmaf(p, r, P5);
    const float y = fmaf(p, r * r, r) + 1.0f;
    return ldexpf(y, (int)n);
}

static AVX512 __m512 exp_avx512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    __m512 p = _mm512_set1_ps(P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P5));
    const __m512 y =
        _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

static int use_avx512(void)
{
    return eng_isa_active() >= ENG_ISA_AVX512;
}

static __mmask16 tail_mask(int64_t m)
{
    return (__mmask16)((1u << m) - 1);
}

/* ---- softmax ------------------------------------------------------------------------- */

static void softmax_scalar(float *x, int64_t n, float scale)
{
    float max = x[0], sum = 0.0f;
    for (int64_t i = 1; i < n; i++)
        max = x[i] > max ? x[i] : max;
    for (int64_t i = 0; i < n; i++) {
        x[i] = exp_scalar((x[i] - max) * scale);
        sum += x[i];
    }
    for (int64_t i = 0; i < n; i++)
        x[i] /= sum;
}

static AVX512 void softmax_avx512(float *x, int64_t n, float scale)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY), vsum = _mm512_setzero_ps();
    int64_t i;
    for (i = 0; i + 16 <= n; i += 16)
        vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    if (i < n)
        vmax = _mm512_mask_max_ps(vmax, tail_mask(n - i), vmax,
                                  _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), s = _mm512_set1_ps(scale);
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
        const __m512 e =
            exp_avx512(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), s));
        _mm512_mask_storeu_ps(x + i, k, e);
        vsum = _mm512_mask_add_ps(vsum, k, vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv));
    }
}

void eng_softmax(float *x, int64_t n, float scale)
{
    if (use_avx512())
        softmax_avx512(x, n, scale);
    else
        softmax_scalar(x, n, scale);
}

/* ---- SwiGLU -------------------------------------------------------------------------- */

static void swiglu_scalar(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + exp_scalar(-g[i])) * u[i];
}

static AVX512 void swiglu_avx512(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_mask_storeu_ps(g + i, k, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(k, u + i)));
    }
}

void eng_swiglu(float *g, const float *u, int64_t n)
{
    if (use_avx512())
        swiglu_avx512(g, u, n);
    else
        swiglu_scalar(g, u, n);
}

/* ---- RMS norm ------------------------------------------------------------------------ */

static void rmsnorm_scalar(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

static AVX512 void rmsnorm_avx512(float *out, const float *x, const float *w, int64_t n, float eps)
{
    __m512d ss = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        const __mmask8 k = n - i >= 8 ? 0xFF : (__mmask8)((1u << (n - i)) - 1);
        const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, x + i));
        ss = _mm512_fmadd_pd(v, v, ss);
    }
    const __m512 scale =
        _mm512_set1_ps(1.0f / sqrtf((float)(_mm512_reduce_add_pd(ss) / (double)n) + eps));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xFFFF : tail_mask(n - i);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), scale);
        _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i)));
    }
}

void eng_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    if (use_avx512())
        rmsnorm_avx512(out, x, w, n, eps);
    else
        rmsnorm_scalar(out, x, w, n, eps);
}

/* ---- attention scores ------------------------------------------------------------------ */

static void scores_scalar(const float *q, int nq, int hd, const float *kt, size_t ldk, int npos,
                          float *s, size_t lds)
{
    for (int t = 0; t < nq; t++)
        for (int p = 0; p < npos; p++) {
            float acc = 0.0f;
            for (int i = 0; i < hd; i++)
                acc += q[(size_t)t * hd + i] * kt[(size_t)i * ldk + p];
            s[(size_t)t * lds + p] = acc;
        }
}

/* T queries x 64 positions in registers: per dimension, 4 key vectors and T broadcast query
 * values make 4T multiply-adds; no horizontal sums (positions are the lanes). */
#define SQ 4 /* queries per register tile */
#define SP 4 /* vectors of 16 positions per register tile */

static AVX512 void scores_tile(const int T, const float *q, int hd, const float *kt, size_t ldk,
                               int p0, int npos, float *s, size_t lds)
{
    __m512 acc[SQ][SP];
    __mmask16 k[SP];
#pragma GCC unroll 4
    for (int j = 0; j < SP; j++) {
        const int left = npos - p0 - 16 * j;
        k[j] = left >= 16 ? 0xFFFF : left > 0 ? tail_mask(left) : 0;
#pragma GCC unroll 4
        for (int t = 0; t < SQ; t++)
            acc[t][j] = _mm512_setzero_ps();
    }
    for (int i = 0; i < hd; i++) {
        const float *row = kt + (size_t)i * ldk + p0;
        __m512 kv[SP];
#pragma GCC unroll 4
        for (int j = 0; j < SP; j++)
            kv[j] = _mm512_maskz_loadu_ps(k[j], row + 16 * j);
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

static AVX512 void scores_avx512(const float *q, int nq, int hd, const float *kt, size_t ldk,
                                 int npos, float *s, size_t lds)
{
    for (int t = 0; t < nq; t += SQ) {
        const float *qt = q + (size_t)t * hd;
        float *st = s + (size_t)t * lds;
        for (int p0 = 0; p0 < npos; p0 += 16 * SP) {
            switch (nq - t < SQ ? nq - t : SQ) { /* a constant count keeps the tile in registers */
            case 1:
                scores_tile(1, qt, hd, kt, ldk, p0, npos, st, lds);
                break;
            case 2:
                scores_tile(2, qt, hd, kt, ldk, p0, npos, st, lds);
                break;
            case 3:
                scores_tile(3, qt, hd, kt, ldk, p0, npos, st, lds);
                break;
            default:
                scores_tile(4, qt, hd, kt, ldk, p0, npos, st, lds);
                break;
            }
        }
    }
}

void eng_attn_scores(const float *q, int nq, int hd, const float *kt, size_t ldk, int npos,
                     float *s, size_t lds)
{
    if (use_avx512())
        scores_avx512(q, nq, hd, kt, ldk, npos, s, lds);
    else
        scores_scalar(q, nq, hd, kt, ldk, npos, s, lds);
}
