/*
 * kernels.c - instruction-set selection, the kernels.h entry points, and the scalar twins:
 * a plain C dot product per weight type that is both the fallback on any CPU and the
 * reference every SIMD kernel is tested against.
 *
 * DESIGN. eng_matmul picks a kernel set once per call (AVX-512, else AVX2, else scalar; a
 * set without a kernel for the type falls through to the next). A set with whole-range
 * kernels (gemv, gemm) runs them; the others are walked here over the rows layout (see
 * kernels_isa.h and matmul_rows). eng_act_bytes and eng_act_prepare ask the same set which
 * layout it reads, so preparation and product always agree. Nothing allocates.
 *
 * The twins compute exactly the integers the SIMD kernels compute (per-block integer dot
 * products, then one float multiply-add per block), so the two differ only by the order of
 * float additions, whatever layout each reads its activations from (kernels_act.c).
 *
 * The chosen instruction set is the one piece of process-wide mutable state: an atomic,
 * set on first use to the best the CPU offers and changed only by eng_isa_force.
 */
#include <stdatomic.h>
#include <string.h>

#include <cpuid.h>

#include "kernels.h"
#include "kernels_isa.h"
#include "quant.h"

/* Activation bytes one chunk of tokens may occupy: about half of a 1 MiB L2, leaving room
 * for the weight rows passing through. */
#define ACT_CHUNK_BYTES (512u * 1024u)

static _Atomic int g_isa = -1; /* -1: not yet detected */

/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no "f16c". */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

eng_isa eng_isa_detect(void)
{
    eng_isa isa = ENG_ISA_SCALAR;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        isa = ENG_ISA_AVX2;
    if (isa == ENG_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        isa = ENG_ISA_AVX512;
    return isa;
}

eng_isa eng_isa_active(void)
{
    int isa = atomic_load_explicit(&g_isa, memory_order_relaxed);
    if (isa < 0) { /* racing first callers all store the same value */
        isa = (int)eng_isa_detect();
        atomic_store_explicit(&g_isa, isa, memory_order_relaxed);
    }
    return (eng_isa)isa;
}

eng_isa eng_isa_force(eng_isa isa)
{
    eng_isa best = eng_isa_detect();
    eng_isa chosen = isa > best ? best : isa < ENG_ISA_SCALAR ? ENG_ISA_SCALAR : isa;
    atomic_store_explicit(&g_isa, (int)chosen, memory_order_relaxed);
    return chosen;
}

int eng_isa_has_vnni(void)
{
    static _Atomic int has = -1; /* -1: not yet detected */
    int v = atomic_load_explicit(&has, memory_order_relaxed);
    if (v < 0) {
        v = eng_isa_detect() == ENG_ISA_AVX512 && __builtin_cpu_supports("avx512vnni");
        atomic_store_explicit(&has, v, memory_order_relaxed);
    }
    return v;
}

const char *eng_isa_name(eng_isa isa)
{
    const char *name = "unknown";
    switch (isa) {
    case ENG_ISA_SCALAR:
        name = "scalar";
        break;
    case ENG_ISA_AVX2:
        name = "avx2";
        break;
    case ENG_ISA_AVX512:
        name = "avx512";
        break;
    }
    return name;
}

/* Float weights dot float activations: converting the weight (F16, BF16) is one
 * instruction per 8 or 16 elements and the activation row is small and cache-resident, so
 * narrowing the activations would only add a conversion and lose precision. Block types
 * dot 8-bit activations with one scale per block (Q8_0: 32, Q8_K: 256 plus 16-element
 * sums for the K-quant mins and offsets); Q4_1/Q5_1 compute their per-block activation sum
 * inside the kernel, so they share Q8_0 with the other 32-element types. */
eng_type eng_vec_dot_type(eng_type wtype)
{
    eng_type at = ENG_TYPE_F32;
    switch (wtype) {
    case ENG_TYPE_Q4_0:
    case ENG_TYPE_Q4_1:
    case ENG_TYPE_Q5_0:
    case ENG_TYPE_Q5_1:
    case ENG_TYPE_Q8_0:
    case ENG_TYPE_IQ4_NL:
        at = ENG_TYPE_Q8_0;
        break;
    case ENG_TYPE_Q2_K:
    case ENG_TYPE_Q3_K:
    case ENG_TYPE_IQ4_XS:
    case ENG_TYPE_Q4_K:
    case ENG_TYPE_Q5_K:
    case ENG_TYPE_Q6_K:
        at = ENG_TYPE_Q8_K;
        break;
    default:
        break;
    }
    return at;
}

/* The kernels for wtype on the active instruction set; all NULL for an unsupported type. */
static eng_kernel_set select_kernels(eng_type wtype)
{
    eng_kernel_set ks = {0};
    eng_isa isa = eng_isa_active();
    int found = 0;
    if (isa >= ENG_ISA_AVX512)
        found = eng_kernels_avx512(wtype, &ks);
    if (!found && isa >= ENG_ISA_AVX2)
        found = eng_kernels_avx2(wtype, &ks);
    if (!found)
        eng_kernels_scalar(wtype, &ks);
    if (found && isa >= ENG_ISA_AVX512 && ks.gemm_layout == ENG_ACT_Q8_TILES) {
        const eng_rows_fn amx = eng_gemm_amx(wtype);
        if (amx) {
            ks.gemm = amx;
            ks.gemm_small = 1;
        }
    }
    return ks;
}

/* A batch kernel on 16-token tiles costs a whole tile whatever the number of tokens (measured:
 * TinyLlama Q4_0, AVX-512, 2 threads: a worker step of 2 to 8 decoding tokens 94-100 ms against
 * 18 ms for one), while each more token through the single-token kernel adds about 11 ms (2
 * tokens 28 ms, 4 tokens 49 ms). So up to SMALL_BATCH tokens go one by one through the
 * single-token kernel and its layout, and the tiles take over where they are as cheap. */
#define SMALL_BATCH 7
/* The AMX kernels (kernels_amx.c) cost about the same for 3 to 16 tokens, 2.3 single-token
 * steps (measured: TinyLlama Q4_0, Sapphire Rapids, 2 threads, `rbee-bench engine -b`: a
 * batched step of 2 tokens 0.88x the tokens/s of one, through the single-token kernel 1.39x;
 * 3 tokens 1.38x and 1.42x; 4 tokens 1.70x and 1.49x). So with AMX only 2 tokens go one by one. */
#define SMALL_BATCH_AMX 2

static int by_token(const eng_kernel_set *ks, int64_t nt)
{
    return nt == 1 ||
           (nt <= (ks->gemm_small ? SMALL_BATCH_AMX : SMALL_BATCH) && ks->gemm &&
            (ks->gemm_layout == ENG_ACT_Q8_TILES || ks->gemm_layout == ENG_ACT_Q8K_TILES));
}

static eng_act_layout layout_for(const eng_kernel_set *ks, int64_t nt)
{
    return by_token(ks, nt) ? ks->gemv_layout : ks->gemm_layout;
}

size_t eng_act_bytes(eng_type wtype, int64_t n, int64_t nt)
{
    const eng_kernel_set ks = select_kernels(wtype);
    return eng_act_layout_bytes(layout_for(&ks, nt), eng_vec_dot_type(wtype), n, nt);
}

size_t eng_act_bytes_max(int64_t n, int64_t nt)
{
    static const eng_act_layout layouts[] = {ENG_ACT_Q8_PAIRS, ENG_ACT_Q8_TILES, ENG_ACT_Q8K_TILES};
    /* float rows are the widest rows; n rounded up to whole super-blocks for the tiles */
    const int64_t nk = (n + ENG_QK_K - 1) / ENG_QK_K * ENG_QK_K;
    size_t most = eng_act_layout_bytes(ENG_ACT_ROWS, ENG_TYPE_F32, n, nt);
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        const size_t b = eng_act_layout_bytes(layouts[i], ENG_TYPE_Q8_0, nk, nt);
        most = b > most ? b : most;
    }
    return most;
}

void eng_act_prepare(eng_type wtype, const float *X, int64_t n, int64_t nt, int64_t t0, int64_t t1,
                     void *xq)
{
    const eng_kernel_set ks = select_kernels(wtype);
    const int fast = eng_isa_active() >= ENG_ISA_AVX512 && eng_isa_has_vnni();
    eng_act_layout_prepare(layout_for(&ks, nt), eng_vec_dot_type(wtype), ks.code_offset, fast, X, n,
                           nt, t0, t1, xq);
}

int eng_act_same_layout(eng_type a, eng_type b, int64_t nt)
{
    const eng_kernel_set ka = select_kernels(a), kb = select_kernels(b);
    return eng_vec_dot_type(a) == eng_vec_dot_type(b) &&
           layout_for(&ka, nt) == layout_for(&kb, nt) && ka.code_offset == kb.code_offset;
}

void eng_act_quantize(eng_type wtype, const float *x, void *xq, int64_t n)
{
    eng_act_prepare(wtype, x, n, 1, 0, 1, xq);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The rows-layout walk: one weight row at a time, in memory order, with one token (decode,
 * memory-bound), or 4 tokens at a time per weight row (each weight block decoded once for 4
 * tokens). Activation rows are taken in chunks that fit the L2 cache, and within a chunk
 * every weight row is visited once, so weights stream from memory once per chunk. */
static void matmul_rows(const eng_kernel_set *ks, int64_t n, const uint8_t *w, size_t wrow,
                        const uint8_t *x, size_t xrow, int64_t nt, float *Y, int64_t ldy,
                        int64_t r0, int64_t r1)
{
    if (nt == 1) {
        for (int64_t r = r0; r < r1; r++)
            ks->dot(n, w + r * wrow, x, xrow, 1, Y + r, (size_t)ldy);
        return;
    }
    int64_t chunk = (int64_t)(ACT_CHUNK_BYTES / xrow) / ENG_TILE_TOKENS * ENG_TILE_TOKENS;
    chunk = chunk < ENG_TILE_TOKENS ? ENG_TILE_TOKENS : chunk;
    for (int64_t c0 = 0; c0 < nt; c0 += chunk) {
        const int64_t c1 = min64(nt, c0 + chunk);
        for (int64_t r = r0; r < r1; r++)
            for (int64_t t = c0; t < c1; t += ENG_TILE_TOKENS)
                ks->tile(n, w + r * wrow, x + t * xrow, xrow, (int)min64(ENG_TILE_TOKENS, c1 - t),
                         Y + t * ldy + r, (size_t)ldy);
    }
}

float eng_vec_dot(eng_type wtype, const void *w, const void *xq, int64_t n)
{
    float out = 0.0f;
    eng_matmul(wtype, w, n, xq, 1, &out, 1, 0, 1);
    return out;
}

void eng_matmul(eng_type wtype, const void *W, int64_t n, const void *Xq, int64_t nt, float *Y,
                int64_t ldy, int64_t r0, int64_t r1)
{
    eng_matmul_stride(wtype, W, eng_type_row_bytes(wtype, n), n, Xq, nt, Y, ldy, r0, r1);
}

void eng_matmul_stride(eng_type wtype, const void *W, size_t wrow, int64_t n, const void *Xq,
                       int64_t nt, float *Y, int64_t ldy, int64_t r0, int64_t r1)
{
    const eng_kernel_set ks = select_kernels(wtype);
    const size_t xrow = eng_type_row_bytes(eng_vec_dot_type(wtype), n);
    const eng_rows_fn fast = nt == 1 ? ks.gemv : ks.gemm;

    if ((!ks.dot && !fast) || !eng_type_row_bytes(wtype, n)) { /* unsupported: defined output */
        for (int64_t t = 0; t < nt; t++)
            for (int64_t r = r0; r < r1; r++)
                Y[t * ldy + r] = 0.0f;
    } else if (nt > 1 && by_token(&ks, nt)) {
        const size_t stride = eng_act_token_stride(ks.gemv_layout, eng_vec_dot_type(wtype), n);
        for (int64_t t = 0; t < nt; t++) {
            const uint8_t *x = (const uint8_t *)Xq + (size_t)t * stride;
            if (ks.gemv)
                ks.gemv(n, W, wrow, x, 1, Y + t * ldy, (size_t)ldy, r0, r1);
            else
                matmul_rows(&ks, n, W, wrow, x, xrow, 1, Y + t * ldy, ldy, r0, r1);
        }
    } else if (fast) {
        fast(n, W, wrow, Xq, nt, Y, (size_t)ldy, r0, r1);
    } else {
        matmul_rows(&ks, n, W, wrow, Xq, xrow, nt, Y, ldy, r0, r1);
    }
}

int eng_matmul_has_gemm(eng_type wtype)
{
    return select_kernels(wtype).gemm != NULL;
}

/* ---- scalar twins ------------------------------------------------------------------ */

static float dot_f32(int64_t n, const void *w, const void *x)
{
    const float *a = w, *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

static float dot_f16(int64_t n, const void *w, const void *x)
{
    const uint16_t *a = w;
    const float *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += eng_h2f(a[i]) * b[i];
    return sum;
}

static float dot_bf16(int64_t n, const void *w, const void *x)
{
    const uint16_t *a = w;
    const float *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += eng_bf16_to_f32(a[i]) * b[i];
    return sum;
}

/* Sum of the 32 activation codes of a Q8_0 block (for the Q4_1/Q5_1 offset m). */
static int q8_sum(const eng_block_q8_0 *y)
{
    int s = 0;
    for (int j = 0; j < ENG_QK; j++)
        s += y->qs[j];
    return s;
}

static float dot_q8_0(int64_t n, const void *w, const void *x)
{
    const eng_block_q8_0 *a = w, *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK; b++) {
        int s = 0;
        for (int j = 0; j < ENG_QK; j++)
            s += a[b].qs[j] * y[b].qs[j];
        sum += (float)s * (eng_h2f(a[b].d) * eng_h2f(y[b].d));
    }
    return sum;
}

static float dot_q4_0(int64_t n, const void *w, const void *x)
{
    const eng_block_q4_0 *a = w;
    const eng_block_q8_0 *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK; b++) {
        int s = 0;
        for (int j = 0; j < ENG_QK / 2; j++)
            s += ((a[b].qs[j] & 0xF) - 8) * y[b].qs[j] +
                 ((a[b].qs[j] >> 4) - 8) * y[b].qs[j + ENG_QK / 2];
        sum += (float)s * (eng_h2f(a[b].d) * eng_h2f(y[b].d));
    }
    return sum;
}

static float dot_q4_1(int64_t n, const void *w, const void *x)
{
    const eng_block_q4_1 *a = w;
    const eng_block_q8_0 *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK; b++) {
        int s = 0;
        for (int j = 0; j < ENG_QK / 2; j++)
            s += (a[b].qs[j] & 0xF) * y[b].qs[j] + (a[b].qs[j] >> 4) * y[b].qs[j + ENG_QK / 2];
        const float dy = eng_h2f(y[b].d);
        sum += (float)s * (eng_h2f(a[b].d) * dy);
        sum += (float)q8_sum(&y[b]) * (eng_h2f(a[b].m) * dy);
    }
    return sum;
}

/* Code j of a Q5 block, 0..31. */
static int q5_code(const uint8_t *qs, uint32_t qh, int j)
{
    int nib = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return nib | (int)((qh >> j) & 1) << 4;
}

static float dot_q5_0(int64_t n, const void *w, const void *x)
{
    const eng_block_q5_0 *a = w;
    const eng_block_q8_0 *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK; b++) {
        const uint32_t qh = eng_q5_qh(a[b].qh);
        int s = 0;
        for (int j = 0; j < ENG_QK; j++)
            s += (q5_code(a[b].qs, qh, j) - 16) * y[b].qs[j];
        sum += (float)s * (eng_h2f(a[b].d) * eng_h2f(y[b].d));
    }
    return sum;
}

static float dot_q5_1(int64_t n, const void *w, const void *x)
{
    const eng_block_q5_1 *a = w;
    const eng_block_q8_0 *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK; b++) {
        const uint32_t qh = eng_q5_qh(a[b].qh);
        int s = 0;
        for (int j = 0; j < ENG_QK; j++)
            s += q5_code(a[b].qs, qh, j) * y[b].qs[j];
        const float dy = eng_h2f(y[b].d);
        sum += (float)s * (eng_h2f(a[b].d) * dy);
        sum += (float)q8_sum(&y[b]) * (eng_h2f(a[b].m) * dy);
    }
    return sum;
}

/* Sum of Q8_K codes 32 * j .. 32 * j + 31, from the stored 16-element sums. */
static int q8k_sum32(const eng_block_q8_K *y, int j)
{
    return y->bsums[2 * j] + y->bsums[2 * j + 1];
}

/* Integer part of a Q4_K/Q5_K super-block (qh NULL for Q4_K):
 * *isum = sum_j sc_j * (codes . y)_j and *msum = sum_j m_j * (sum of y)_j over the 8
 * sub-blocks j, so the block contributes d * isum - dmin * msum (times the activation
 * scale). Sub-block j is the low (j even) or high nibble of chunk j / 2; its fifth bit, in
 * Q5_K, is bit j of qh[l]. */
static void k45_block(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                      const eng_block_q8_K *y, int *isum, int *msum)
{
    *isum = *msum = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        eng_k4_scale_min(j, scales, &sc, &m);
        const uint8_t *q = qs + 32 * (j / 2);
        const int shift = 4 * (j & 1);
        int s = 0;
        for (int l = 0; l < 32; l++) {
            int code = (q[l] >> shift) & 0xF;
            if (qh)
                code |= ((qh[l] >> j) & 1) << 4;
            s += code * y->qs[32 * j + l];
        }
        *isum += sc * s;
        *msum += m * q8k_sum32(y, j);
    }
}

static float dot_q4_K(int64_t n, const void *w, const void *x)
{
    const eng_block_q4_K *a = w;
    const eng_block_q8_K *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        int isum, msum;
        k45_block(a[b].scales, a[b].qs, NULL, &y[b], &isum, &msum);
        sum += eng_h2f(a[b].d) * y[b].d * (float)isum - eng_h2f(a[b].dmin) * y[b].d * (float)msum;
    }
    return sum;
}

static float dot_q5_K(int64_t n, const void *w, const void *x)
{
    const eng_block_q5_K *a = w;
    const eng_block_q8_K *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        int isum, msum;
        k45_block(a[b].scales, a[b].qs, a[b].qh, &y[b], &isum, &msum);
        sum += eng_h2f(a[b].d) * y[b].d * (float)isum - eng_h2f(a[b].dmin) * y[b].d * (float)msum;
    }
    return sum;
}

static float dot_q6_K(int64_t n, const void *w, const void *x)
{
    const eng_block_q6_K *a = w;
    const eng_block_q8_K *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        int isum = 0;
        for (int g = 0; g < 16; g++) { /* sub-block g: elements 16g .. 16g + 15 */
            const int h = g / 8, e0 = 16 * (g % 8), k = e0 / 32;
            const uint8_t *ql = a[b].ql + 64 * h + 32 * (k & 1);
            const uint8_t *qh = a[b].qh + 32 * h;
            int s = 0;
            for (int i = 0; i < 16; i++) {
                const int l = e0 % 32 + i;
                const int lo = (ql[l] >> (4 * (k >> 1))) & 0xF;
                const int hi = (qh[l] >> (2 * k)) & 3;
                s += ((lo | hi << 4) - 32) * y[b].qs[16 * g + i];
            }
            isum += a[b].scales[g] * s;
        }
        sum += eng_h2f(a[b].d) * y[b].d * (float)isum;
    }
    return sum;
}

/* Q2_K: sub-block k contributes d * (sc_k & 15) * (codes . y)_k - dmin * (sc_k >> 4) *
 * (sum of y)_k, the sums of y coming with the Q8_K block. */
static float dot_q2_K(int64_t n, const void *w, const void *x)
{
    const eng_block_q2_K *a = w;
    const eng_block_q8_K *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        int isum = 0, msum = 0;
        for (int k = 0; k < 16; k++) {
            int s = 0;
            for (int i = 0; i < 16; i++) {
                const int e = 16 * k + i, h = e / 128, j = (e % 128) / 32, l = e % 32;
                s += ((a[b].qs[32 * h + l] >> (2 * j)) & 3) * y[b].qs[e];
            }
            isum += (a[b].scales[k] & 0xF) * s;
            msum += (a[b].scales[k] >> 4) * y[b].bsums[k];
        }
        sum += eng_h2f(a[b].d) * y[b].d * (float)isum - eng_h2f(a[b].dmin) * y[b].d * (float)msum;
    }
    return sum;
}

/* Q3_K: codes 0..7 stand for code - 4; sub-block k has the signed scale sc_k. */
static float dot_q3_K(int64_t n, const void *w, const void *x)
{
    const eng_block_q3_K *a = w;
    const eng_block_q8_K *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        int8_t sc[16];
        int isum = 0;
        eng_q3_K_scales(a[b].scales, sc);
        for (int k = 0; k < 16; k++) {
            int s = 0;
            for (int i = 0; i < 16; i++) {
                const int e = 16 * k + i, h = e / 128, j = (e % 128) / 32, l = e % 32;
                const int lo = (a[b].qs[32 * h + l] >> (2 * j)) & 3;
                const int hi = (a[b].hmask[l] >> (4 * h + j)) & 1;
                s += (lo + 4 * hi - 4) * y[b].qs[e];
            }
            isum += sc[k] * s;
        }
        sum += eng_h2f(a[b].d) * y[b].d * (float)isum;
    }
    return sum;
}

/* Integer dot of one group of 32 IQ4 indices (Q4_0 nibble order) with 32 activation codes. */
static int iq4_group(const uint8_t *qs, const int8_t *y)
{
    int s = 0;
    for (int j = 0; j < ENG_QK / 2; j++)
        s += eng_iq4nl_values[qs[j] & 0xF] * y[j] + eng_iq4nl_values[qs[j] >> 4] * y[j + 16];
    return s;
}

static float dot_iq4_nl(int64_t n, const void *w, const void *x)
{
    const eng_block_iq4_nl *a = w;
    const eng_block_q8_0 *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK; b++)
        sum += (float)iq4_group(a[b].qs, y[b].qs) * (eng_h2f(a[b].d) * eng_h2f(y[b].d));
    return sum;
}

static float dot_iq4_xs(int64_t n, const void *w, const void *x)
{
    const eng_block_iq4_xs *a = w;
    const eng_block_q8_K *y = x;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        int isum = 0;
        for (int ib = 0; ib < 8; ib++)
            isum += eng_iq4_xs_scale(&a[b], ib) * iq4_group(a[b].qs + 16 * ib, y[b].qs + 32 * ib);
        sum += eng_h2f(a[b].d) * y[b].d * (float)isum;
    }
    return sum;
}

typedef float (*row_dot_fn)(int64_t n, const void *w, const void *x);

/* Every scalar kernel shape is this loop over the tokens. */
static void scalar_tile(row_dot_fn f, int64_t n, const uint8_t *w, const uint8_t *x, size_t xs,
                        int nt, float *y, size_t ldy)
{
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ldy] = f(n, w, x + (size_t)t * xs);
}

#define SCALAR_ARGS                                                                                \
    int64_t n, const uint8_t *w, const uint8_t *x, size_t xs, int nt, float *y, size_t ldy

static void tile_f32(SCALAR_ARGS)
{
    scalar_tile(dot_f32, n, w, x, xs, nt, y, ldy);
}
static void tile_f16(SCALAR_ARGS)
{
    scalar_tile(dot_f16, n, w, x, xs, nt, y, ldy);
}
static void tile_bf16(SCALAR_ARGS)
{
    scalar_tile(dot_bf16, n, w, x, xs, nt, y, ldy);
}
static void tile_q8_0(SCALAR_ARGS)
{
    scalar_tile(dot_q8_0, n, w, x, xs, nt, y, ldy);
}
static void tile_q4_0(SCALAR_ARGS)
{
    scalar_tile(dot_q4_0, n, w, x, xs, nt, y, ldy);
}
static void tile_q4_1(SCALAR_ARGS)
{
    scalar_tile(dot_q4_1, n, w, x, xs, nt, y, ldy);
}
static void tile_q5_0(SCALAR_ARGS)
{
    scalar_tile(dot_q5_0, n, w, x, xs, nt, y, ldy);
}
static void tile_q5_1(SCALAR_ARGS)
{
    scalar_tile(dot_q5_1, n, w, x, xs, nt, y, ldy);
}
static void tile_q4_K(SCALAR_ARGS)
{
    scalar_tile(dot_q4_K, n, w, x, xs, nt, y, ldy);
}
static void tile_q5_K(SCALAR_ARGS)
{
    scalar_tile(dot_q5_K, n, w, x, xs, nt, y, ldy);
}
static void tile_q6_K(SCALAR_ARGS)
{
    scalar_tile(dot_q6_K, n, w, x, xs, nt, y, ldy);
}
static void tile_q2_K(SCALAR_ARGS)
{
    scalar_tile(dot_q2_K, n, w, x, xs, nt, y, ldy);
}
static void tile_q3_K(SCALAR_ARGS)
{
    scalar_tile(dot_q3_K, n, w, x, xs, nt, y, ldy);
}
static void tile_iq4_nl(SCALAR_ARGS)
{
    scalar_tile(dot_iq4_nl, n, w, x, xs, nt, y, ldy);
}
static void tile_iq4_xs(SCALAR_ARGS)
{
    scalar_tile(dot_iq4_xs, n, w, x, xs, nt, y, ldy);
}

int eng_kernels_scalar(eng_type wtype, eng_kernel_set *ks)
{
    eng_tile_fn f = NULL;
    switch (wtype) {
    case ENG_TYPE_F32:
        f = tile_f32;
        break;
    case ENG_TYPE_F16:
        f = tile_f16;
        break;
    case ENG_TYPE_BF16:
        f = tile_bf16;
        break;
    case ENG_TYPE_Q8_0:
        f = tile_q8_0;
        break;
    case ENG_TYPE_Q4_0:
        f = tile_q4_0;
        break;
    case ENG_TYPE_Q4_1:
        f = tile_q4_1;
        break;
    case ENG_TYPE_Q5_0:
        f = tile_q5_0;
        break;
    case ENG_TYPE_Q5_1:
        f = tile_q5_1;
        break;
    case ENG_TYPE_Q4_K:
        f = tile_q4_K;
        break;
    case ENG_TYPE_Q5_K:
        f = tile_q5_K;
        break;
    case ENG_TYPE_Q6_K:
        f = tile_q6_K;
        break;
    case ENG_TYPE_Q2_K:
        f = tile_q2_K;
        break;
    case ENG_TYPE_Q3_K:
        f = tile_q3_K;
        break;
    case ENG_TYPE_IQ4_NL:
        f = tile_iq4_nl;
        break;
    case ENG_TYPE_IQ4_XS:
        f = tile_iq4_xs;
        break;
    default:
        break;
    }
    ks->dot = ks->tile = f;
    return f != NULL;
}
