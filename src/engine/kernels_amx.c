/*
 * kernels_amx.c - batch kernels on Intel AMX (AMX-TILE + AMX-INT8) for Q4_0, Q8_0 and IQ4_NL
 * weights against Q8_0 activations in the ENG_ACT_Q8_TILES layout, the same layout and the
 * same per-block integers as the AVX-512 batch kernels (kernels_avx512_q8.c); the tests compare
 * both with the scalar twins.
 *
 * DESIGN. One AMX product (TDPBSSD, signed by signed bytes) multiplies a 16 x 32 tile A of
 * weight codes (16 weight rows, one block of 32 codes each) by an 8 x 64 tile B of activation
 * codes, which is exactly one block of a 16-token activation tile (row g holds codes 4g..4g+3
 * of the 16 tokens side by side), into 16 x 16 int32 sums: row r, token t. That is 8,192
 * multiply-adds in one instruction, against 8 AVX-512 VNNI instructions for one row of 16
 * tokens. Both operands signed, so no code offset comes back out (the layout's per-block term
 * is not read). Each block has its own scales, so the sums of one block are taken out of the
 * tile (a 1 KB store to L1) and scaled lane-wise: acc[r] += float(sum[r]) * (d_w[r] * d_x),
 * tokens in the lanes.
 *
 * The weights of a group of 16 rows are decoded once, row after row (one sequential stream,
 * see kernels_isa.h), into a per-thread buffer of A tiles (block-major: 512 bytes per block)
 * plus their float scales, then serve every 16-token tile of the batch. Even and odd blocks use
 * separate tile registers and result buffers, so the product of one block runs while the
 * previous one is scaled.
 *
 * AMX needs the kernel's permission per process (arch_prctl ARCH_REQ_XCOMP_PERM) and a tile
 * configuration per thread: each call loads the configuration and releases the tiles at the
 * end, so a thread between calls carries no tile state through context switches.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cpuid.h>

#include "kernels.h"
#include "kernels_isa.h"
#include "quant.h"

#define AMX __attribute__((target("avx512f,avx512bw,avx512vl,amx-tile,amx-int8,f16c")))
#define INLINE static inline __attribute__((always_inline))
#define TILE ENG_ACT_TILE
#define GROUP_ROWS 16                 /* weight rows per A tile */
#define A_BLOCK (GROUP_ROWS * ENG_QK) /* bytes of one block's A tile (512) */

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

enum wkind { W_Q4_0, W_Q8_0, W_IQ4_NL };

/* ---- availability ------------------------------------------------------------------------ */

/* 1 if the CPU has AMX-TILE and AMX-INT8, the OS saves the tile state (XCR0 bits 17 and 18)
 * and grants this process the tile data. */
static int amx_probe(void)
{
    unsigned a, b, c, d;
    uint32_t lo, hi;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25)))
        return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE: xgetbv works */
        return 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & (3u << 17)) != (3u << 17))
        return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

static _Atomic int g_amx_have = -1; /* -1: not probed */
static _Atomic int g_amx_on = -1;   /* -1: the default (what the CPU has, unless RBEE_NO_AMX) */

int eng_amx_available(void)
{
    int v = atomic_load_explicit(&g_amx_have, memory_order_relaxed);
    if (v < 0) {
        v = eng_isa_has_vnni() && amx_probe();
        atomic_store_explicit(&g_amx_have, v, memory_order_relaxed);
    }
    return v;
}

int eng_amx_active(void)
{
    int on = atomic_load_explicit(&g_amx_on, memory_order_relaxed);
    if (on < 0) {
        const char *no = getenv("RBEE_NO_AMX"); /* first: then no permission is asked for */
        on = !(no && *no && strcmp(no, "0") != 0) && eng_amx_available();
        atomic_store_explicit(&g_amx_on, on, memory_order_relaxed);
    }
    return on && eng_isa_active() >= ENG_ISA_AVX512;
}

int eng_amx_force(int on)
{
    on = on && eng_amx_available();
    atomic_store_explicit(&g_amx_on, on, memory_order_relaxed);
    return on;
}

/* ---- the per-thread buffer of decoded weights --------------------------------------------- */

typedef struct amx_buf {
    uint8_t *a;  /* nb A tiles of A_BLOCK bytes, 64-aligned */
    float *dw;   /* nb x 16 weight scales */
    int64_t cap; /* blocks */
} amx_buf;

static pthread_key_t g_buf_key;
static pthread_once_t g_buf_once = PTHREAD_ONCE_INIT;

static void buf_free(void *p)
{
    amx_buf *b = p;
    if (b) {
        free(b->a);
        free(b->dw);
        free(b);
    }
}

static void buf_key_init(void)
{
    (void)pthread_key_create(&g_buf_key, buf_free);
}

/* This thread's buffer for at least nb blocks, or NULL when out of memory. */
static amx_buf *thread_buf(int64_t nb)
{
    amx_buf *b;
    pthread_once(&g_buf_once, buf_key_init);
    b = pthread_getspecific(g_buf_key);
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b || pthread_setspecific(g_buf_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (b->cap < nb) {
        free(b->a);
        free(b->dw);
        b->a = aligned_alloc(64, (size_t)nb * A_BLOCK);
        b->dw = aligned_alloc(64, (size_t)nb * GROUP_ROWS * sizeof(float));
        b->cap = b->a && b->dw ? nb : 0;
        if (!b->cap) {
            free(b->a);
            free(b->dw);
            b->a = NULL;
            b->dw = NULL;
            return NULL;
        }
    }
    return b;
}

/* ---- decoding ------------------------------------------------------------------------------ */

INLINE size_t block_bytes(const int kind)
{
    return kind == W_Q8_0 ? sizeof(eng_block_q8_0) : sizeof(eng_block_q4_0);
}

/* The 32 signed codes of the weight block at wb, in order, as a 256-bit vector: the nibbles
 * (low ones are codes 0-15, high ones 16-31) minus 8, or looked up in the IQ4_NL table, or
 * Q8_0's bytes as they are. */
INLINE AMX __m256i block_codes(const int kind, const uint8_t *wb)
{
    if (kind == W_Q8_0)
        return _mm256_loadu_si256((const __m256i *)(wb + 2));
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(wb + 2)));
    const __m256i nib = _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)),
                                         _mm256_set1_epi8(0x0F));
    if (kind == W_IQ4_NL)
        return _mm256_shuffle_epi8(
            _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)eng_iq4nl_values)), nib);
    return _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
}

/* Decodes rows [0, m) (m <= 16) of the group at w into the A tiles and scales of nb blocks;
 * rows m..15 become zeros. Block by block, so each A tile and each block's 16 scales (one
 * gather) are written whole; the rows were prefetched while the previous group computed. */
INLINE AMX void decode_group(const int kind, const uint8_t *w, size_t wrow, int m, int64_t nb,
                             amx_buf *buf)
{
    const size_t bb = block_bytes(kind);
    const __mmask16 valid = (__mmask16)((1u << m) - 1u);
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)wrow));
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *wb = w + (size_t)b * bb;
        uint8_t *a = buf->a + b * A_BLOCK;
        for (int i = 0; i < m; i++)
            _mm256_store_si256((__m256i *)(a + i * ENG_QK), block_codes(kind, wb + i * wrow));
        for (int i = m; i < GROUP_ROWS; i++)
            _mm256_store_si256((__m256i *)(a + i * ENG_QK), _mm256_setzero_si256());
        const __m512i d = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, idx, wb, 1);
        _mm512_store_ps(buf->dw + b * GROUP_ROWS, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d)));
    }
}

/* ---- the product --------------------------------------------------------------------------- */

typedef struct __attribute__((aligned(64))) tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* tmm0/tmm3: A (16 x 32 bytes), tmm1/tmm4: B (8 x 64 bytes), tmm2/tmm5: C (16 x 16 int32),
 * for even and odd blocks. A constant: GCC 12 drops stores to a local configuration that only
 * ldtilecfg reads. */
static const tile_config k_config = {
    .palette = 1,
    .colsb = {ENG_QK, 4 * TILE, 4 * TILE, ENG_QK, 4 * TILE, 4 * TILE},
    .rows = {GROUP_ROWS, ENG_QK / 4, GROUP_ROWS, GROUP_ROWS, ENG_QK / 4, GROUP_ROWS},
};

/* acc[i] += sums of row i (16 tokens in the lanes) * d_w[i] * d_x */
INLINE AMX void scale_block(const int32_t (*sums)[TILE], const float *dw, const uint8_t *y,
                            __m512 *acc)
{
    const __m512 dx = _mm512_loadu_ps(y + ENG_QK * TILE);
#pragma GCC unroll 16
    for (int i = 0; i < GROUP_ROWS; i++) {
        const __m512 s = _mm512_cvtepi32_ps(_mm512_load_si512(sums[i]));
        acc[i] = _mm512_fmadd_ps(s, _mm512_mul_ps(dx, _mm512_set1_ps(dw[i])), acc[i]);
    }
}

/* One group of 16 decoded rows against one activation tile: out[i][t] = row i, token t.
 * Meanwhile the pf_bytes at pf (the next group's weights) are prefetched, spread over the
 * blocks, so memory keeps streaming while the tiles compute. */
static AMX void group_tile(const amx_buf *buf, int64_t nb, const uint8_t *x, float (*out)[TILE],
                           const uint8_t *pf, size_t pf_bytes)
{
    const size_t pf_step = nb > 1 ? (pf_bytes / (size_t)(nb / 2) + 63) / 64 * 64 : pf_bytes;
    const uint8_t *pf_end = pf + pf_bytes;
    int32_t sums[2][GROUP_ROWS][TILE] __attribute__((aligned(64)));
    __m512 acc[GROUP_ROWS];
    for (int i = 0; i < GROUP_ROWS; i++)
        acc[i] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        for (size_t o = 0; o < pf_step && pf < pf_end; o += 64, pf += 64)
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
        _tile_loadd(0, buf->a + b * A_BLOCK, ENG_QK);
        _tile_loadd(1, x + b * ENG_ACT_TILE_BLOCK, 4 * TILE);
        _tile_zero(2);
        _tile_dpbssd(2, 0, 1);
        _tile_loadd(3, buf->a + (b + 1) * A_BLOCK, ENG_QK);
        _tile_loadd(4, x + (b + 1) * ENG_ACT_TILE_BLOCK, 4 * TILE);
        _tile_zero(5);
        _tile_dpbssd(5, 3, 4);
        _tile_stored(2, sums[0], 4 * TILE);
        scale_block((const int32_t(*)[TILE])sums[0], buf->dw + b * GROUP_ROWS,
                    x + b * ENG_ACT_TILE_BLOCK, acc);
        _tile_stored(5, sums[1], 4 * TILE);
        scale_block((const int32_t(*)[TILE])sums[1], buf->dw + (b + 1) * GROUP_ROWS,
                    x + (b + 1) * ENG_ACT_TILE_BLOCK, acc);
    }
    if (b < nb) {
        _tile_loadd(0, buf->a + b * A_BLOCK, ENG_QK);
        _tile_loadd(1, x + b * ENG_ACT_TILE_BLOCK, 4 * TILE);
        _tile_zero(2);
        _tile_dpbssd(2, 0, 1);
        _tile_stored(2, sums[0], 4 * TILE);
        scale_block((const int32_t(*)[TILE])sums[0], buf->dw + b * GROUP_ROWS,
                    x + b * ENG_ACT_TILE_BLOCK, acc);
    }
    for (int i = 0; i < GROUP_ROWS; i++)
        _mm512_storeu_ps(out[i], acc[i]);
}

/* Fallback when the buffer cannot be had: the AVX-512 kernel of the same type. */
static void fallback(eng_type wtype, int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq,
                     int64_t nt, float *Y, size_t ldy, int64_t r0, int64_t r1)
{
    eng_kernel_set ks;
    if (eng_kernels_avx512_q8(wtype, &ks) && ks.gemm)
        ks.gemm(n, W, wrow, xq, nt, Y, ldy, r0, r1);
}

INLINE AMX int gemm(const int kind, int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq,
                    int64_t nt, float *Y, size_t ldy, int64_t r0, int64_t r1)
{
    const int64_t nb = n / ENG_QK, ntiles = (nt + TILE - 1) / TILE;
    const size_t tile_bytes = (size_t)nb * ENG_ACT_TILE_BLOCK;
    amx_buf *buf = thread_buf(nb);
    float out[GROUP_ROWS][TILE];
    if (!buf)
        return -1;
    _tile_loadconfig(&k_config);
    for (int64_t rg = r0; rg < r1; rg += GROUP_ROWS) {
        const int m = r1 - rg < GROUP_ROWS ? (int)(r1 - rg) : GROUP_ROWS;
        decode_group(kind, W + (size_t)rg * wrow, wrow, m, nb, buf);
        for (int64_t t = 0; t < ntiles; t++) {
            const int64_t tok0 = t * TILE, valid = nt - tok0 < TILE ? nt - tok0 : TILE;
            const int64_t next = rg + GROUP_ROWS < r1 ? r1 - rg - GROUP_ROWS : 0;
            group_tile(buf, nb, xq + (size_t)t * tile_bytes, out,
                       W + (size_t)(rg + GROUP_ROWS) * wrow,
                       t == 0 ? (size_t)(next < GROUP_ROWS ? next : GROUP_ROWS) * wrow : 0);
            for (int64_t j = 0; j < valid; j++) {
                float *y = Y + (size_t)(tok0 + j) * ldy + (size_t)rg;
                for (int i = 0; i < m; i++)
                    y[i] = out[i][j];
            }
        }
    }
    _tile_release();
    return 0;
}

#define ROWS_ARGS                                                                                  \
    int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt, float *Y, size_t ldy, \
        int64_t r0, int64_t r1

static AMX void q4_0_gemm(ROWS_ARGS)
{
    if (gemm(W_Q4_0, n, W, wrow, xq, nt, Y, ldy, r0, r1))
        fallback(ENG_TYPE_Q4_0, n, W, wrow, xq, nt, Y, ldy, r0, r1);
}
static AMX void q8_0_gemm(ROWS_ARGS)
{
    if (gemm(W_Q8_0, n, W, wrow, xq, nt, Y, ldy, r0, r1))
        fallback(ENG_TYPE_Q8_0, n, W, wrow, xq, nt, Y, ldy, r0, r1);
}
static AMX void iq4_nl_gemm(ROWS_ARGS)
{
    if (gemm(W_IQ4_NL, n, W, wrow, xq, nt, Y, ldy, r0, r1))
        fallback(ENG_TYPE_IQ4_NL, n, W, wrow, xq, nt, Y, ldy, r0, r1);
}

eng_rows_fn eng_gemm_amx(eng_type wtype)
{
    if (!eng_amx_active())
        return NULL;
    switch (wtype) {
    case ENG_TYPE_Q4_0:
        return q4_0_gemm;
    case ENG_TYPE_Q8_0:
        return q8_0_gemm;
    case ENG_TYPE_IQ4_NL:
        return iq4_nl_gemm;
    default:
        return NULL;
    }
}
