/*
 * kernels_isa.h - the per-instruction-set kernel sets behind kernels.h (internal to the
 * kernels_*.c files).
 *
 * A kernel dots one weight row with a small tile of activation rows. Each kernel has a
 * fixed shape chosen at compile time so its accumulators live in registers:
 *
 *     dot    1 row x 1 token           eng_vec_dot, and eng_matmul with nt = 1 (decode)
 *     tile   1 row x ENG_TILE_TOKENS   eng_matmul with nt > 1 (prompt): each weight block
 *                                      is decoded once for 4 tokens
 *
 * Both read the weights as one sequential stream. Decoding 4 rows side by side (to share
 * the activation work) was measured and rejected: on the reference machine (Zen 4 VM) 2 to
 * 4 interleaved row streams of 3-6 KB read DRAM at 10-15 GB/s against 25-27 GB/s for one
 * stream, and software prefetching does not recover it.
 *
 * A call with fewer tokens (nt) than the shape repeats the last token and stores only the
 * nt valid results, so no shape needs a tail version.
 */
#ifndef ENG_KERNELS_ISA_H
#define ENG_KERNELS_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "eng_types.h"

#define ENG_TILE_TOKENS 4

/* y[t * ldy] = dot(weight row w, activation row t) for t < nt, where activation row t
 * starts at x + t * xstride (n elements each, in the weight type and its activation type).
 * 1 <= nt <= the kernel's shape. */
typedef void (*eng_tile_fn)(int64_t n, const uint8_t *w, const uint8_t *x, size_t xstride, int nt,
                            float *y, size_t ldy);

typedef struct eng_kernel_set {
    eng_tile_fn dot;  /* 1 x 1 */
    eng_tile_fn tile; /* 1 x ENG_TILE_TOKENS */
} eng_kernel_set;

/* Each fills *ks with its kernels for weights of type wtype and returns 1, or returns 0 when
 * it has none for that type (or the CPU lacks an extension it needs, e.g. AVX-512 VNNI);
 * the caller then falls back to the next instruction set down. The scalar set covers every
 * supported type. */
int eng_kernels_scalar(eng_type wtype, eng_kernel_set *ks);
int eng_kernels_avx2(eng_type wtype, eng_kernel_set *ks);
int eng_kernels_avx512(eng_type wtype, eng_kernel_set *ks);

#endif
