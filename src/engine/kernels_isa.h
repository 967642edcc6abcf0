/*
 * kernels_isa.h - the per-instruction-set kernel sets behind kernels.h (internal to the
 * kernels_*.c files).
 *
 * A kernel set serves one weight type on one instruction set. It names the activation layout
 * it reads (one for a single token, one for a batch) and supplies either whole-range kernels
 * or the two fixed shapes kernels.c walks over the rows:
 *
 *     dot    1 row x 1 token            rows layout: one prepared row per token
 *     tile   1 row x ENG_TILE_TOKENS    rows layout: each weight block decoded once for 4 tokens
 *     gemv   rows [r0, r1) x 1 token    its own single-token layout
 *     gemm   rows [r0, r1) x nt tokens  its own batch layout
 *
 * Every kernel reads the weights one row after another, as one sequential stream. Reading
 * several rows side by side (to share the activation work) was measured and rejected: on the
 * reference machine (Zen 4 VM) 2 to 16 interleaved row streams read DRAM at 6-13 GB/s against
 * 16-27 GB/s for one stream, with or without software prefetching. So the fast kernels share
 * work across tokens and blocks instead: a batch is laid out with 16 tokens in the lanes of a
 * vector (eng_act_layout ENG_ACT_Q8_TILES), a single token with two blocks per vector and the
 * per-block sums reduced eight blocks at a time (ENG_ACT_Q8_PAIRS).
 *
 * A call of a shape with fewer tokens (nt) than the shape repeats the last token and stores
 * only the nt valid results, so no shape needs a tail version.
 */
#ifndef ENG_KERNELS_ISA_H
#define ENG_KERNELS_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "eng_types.h"

#define ENG_TILE_TOKENS 4
#define ENG_ACT_TILE 16 /* tokens per tile of ENG_ACT_Q8_TILES (the lanes of a 512-bit vector) */
#define ENG_ACT_GROUP 8 /* blocks per reduction group of ENG_ACT_Q8_PAIRS */
/* Bytes of one block of an ENG_ACT_Q8_TILES tile (640): 32 codes of each of the 16 tokens, then
 * 16 float scales and 16 int32 terms (kernels_act.c). */
#define ENG_ACT_TILE_BLOCK (ENG_QK * ENG_ACT_TILE + 2 * 4 * ENG_ACT_TILE)

/* How prepared activations are laid out (see kernels_act.c for the byte layouts). */
typedef enum eng_act_layout {
    ENG_ACT_ROWS = 0, /* one row per token in eng_vec_dot_type: F32, Q8_0 or Q8_K blocks */
    ENG_ACT_Q8_PAIRS, /* one token of Q8_0 codes, two blocks interleaved per 64 bytes, with
                       * float scales and offset terms per block */
    ENG_ACT_Q8_TILES, /* tiles of 16 tokens of Q8_0 codes, 4 codes of each token side by side */
    ENG_ACT_Q8K_TILES /* tiles of 16 tokens of Q8_K codes, likewise */
} eng_act_layout;

/* y[t * ldy] = dot(weight row w, activation row t) for t < nt, where activation row t
 * starts at x + t * xstride (n elements each, in the weight type and its activation type).
 * 1 <= nt <= the kernel's shape. */
typedef void (*eng_tile_fn)(int64_t n, const uint8_t *w, const uint8_t *x, size_t xstride, int nt,
                            float *y, size_t ldy);

/* Y[t * ldy + r] = dot(row r of W, token t) for r in [r0, r1), t < nt; W rows are wrow bytes
 * apart and xq is laid out as the set's layout for nt tokens. */
typedef void (*eng_rows_fn)(int64_t n, const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt,
                            float *Y, size_t ldy, int64_t r0, int64_t r1);

typedef struct eng_kernel_set {
    eng_tile_fn dot;  /* 1 x 1, rows layout */
    eng_tile_fn tile; /* 1 x ENG_TILE_TOKENS, rows layout */
    eng_rows_fn gemv; /* one token in gemv_layout; NULL: dot on every row */
    eng_rows_fn gemm; /* several tokens in gemm_layout; NULL: tile over rows and tokens */
    eng_act_layout gemv_layout, gemm_layout;
    /* The weight code offset the Q8 layouts fold into their per-block term
     * (-offset * sum of the block's activation codes): 8 for Q4_0, 128 for Q8_0. */
    int code_offset;
    /* 1 for the AMX batch kernels, which pay from 3 tokens on (kernels.c, SMALL_BATCH_AMX)
     * where the others go token by token up to 7. */
    int gemm_small;
} eng_kernel_set;

/* Each fills *ks with its kernels for weights of type wtype and returns 1, or returns 0 when
 * it has none for that type (or the CPU lacks an extension it needs, e.g. AVX-512 VNNI);
 * the caller then falls back to the next instruction set down. The scalar set covers every
 * supported type. */
int eng_kernels_scalar(eng_type wtype, eng_kernel_set *ks);
int eng_kernels_avx2(eng_type wtype, eng_kernel_set *ks);
int eng_kernels_avx512(eng_type wtype, eng_kernel_set *ks);
/* The sets for Q2_K, Q3_K, IQ4_NL and IQ4_XS (kernels_lowbit_*.c); called by
 * eng_kernels_avx2 and (with VNNI only) eng_kernels_avx512. */
int eng_kernels_avx2_lowbit(eng_type wtype, eng_kernel_set *ks);
int eng_kernels_avx512_lowbit(eng_type wtype, eng_kernel_set *ks);
/* The AVX-512 sets for Q4_0, Q8_0 and IQ4_NL (kernels_avx512_q8.c); called by eng_kernels_avx512.
 */
int eng_kernels_avx512_q8(eng_type wtype, eng_kernel_set *ks);

/* The batch kernels of the tile layouts share one driver (eng_gemm_tiles, in
 * kernels_avx512_q8.c): it walks groups of up to max_tiles tiles and groups of
 * ENG_TILES_ROW_GROUP rows, calls part() for each pair of rows (or a last single row) with w
 * at row r and x at the first tile of the group, and writes each group's results to Y token
 * by token. part() writes the result of row r + i for token 16 * t + l of the group to
 * out[16 * t + l][r + i - rg]. */
#define ENG_TILES_ROW_GROUP 16
#define ENG_TILES_MAX 4
typedef void (*eng_tiles_part_fn)(int64_t n, const uint8_t *w, size_t wrow, const uint8_t *x,
                                  size_t tile_bytes, int R, int64_t k, int64_t r, int64_t rg,
                                  float (*out)[ENG_TILES_ROW_GROUP]);
void eng_gemm_tiles(eng_tiles_part_fn part, int max_tiles, size_t tile_bytes, int64_t n,
                    const uint8_t *W, size_t wrow, const uint8_t *xq, int64_t nt, float *Y,
                    size_t ldy, int64_t r0, int64_t r1);

/* eng_quantize_q8_0 on AVX-512 (the same bytes), plus the sum of each block's codes into
 * sums[n / 32] when sums is not NULL. Only for CPUs with AVX-512 VNNI (the Q8 layouts). */
struct eng_block_q8_0;
void eng_quantize_q8_0_avx512(const float *x, struct eng_block_q8_0 *y, int32_t *sums, int64_t n);

/* eng_quantize_q8_K on AVX-512 (the same bytes). Only for CPUs with AVX-512 VNNI. */
struct eng_block_q8_K;
void eng_quantize_q8_K_avx512(const float *x, struct eng_block_q8_K *y, int64_t n);
/* The AVX-512 batch kernel of Q4_K, Q6_K, Q2_K, Q3_K or IQ4_XS weights (ENG_ACT_Q8K_TILES), or NULL
 * (kernels_avx512_k.c). */
eng_rows_fn eng_gemm_avx512_k(eng_type wtype);

/* The AMX batch kernel of Q4_0, Q8_0 or IQ4_NL weights (ENG_ACT_Q8_TILES, as the AVX-512 one),
 * or NULL when AMX is not in use (eng_amx_active) or the type has none (kernels_amx.c). */
eng_rows_fn eng_gemm_amx(eng_type wtype);

/* Layout helpers shared by the preparation code and the kernels (kernels_act.c). */
size_t eng_act_layout_bytes(eng_act_layout layout, eng_type at, int64_t n, int64_t nt);
/* Bytes from one token to the next in a per-token layout (ENG_ACT_ROWS, ENG_ACT_Q8_PAIRS:
 * 64-byte aligned); 0 for the tiled layouts. */
size_t eng_act_token_stride(eng_act_layout layout, eng_type at, int64_t n);
/* fast: the AVX-512 quantizers may be used for the rows layout too (same bytes) */
void eng_act_layout_prepare(eng_act_layout layout, eng_type at, int code_offset, int fast,
                            const float *X, int64_t n, int64_t nt, int64_t t0, int64_t t1,
                            void *xq);

#endif
