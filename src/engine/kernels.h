/*
 * kernels.h - the engine's math kernels (internal to rb_engine and its tests).
 *
 * Weights stay in their file type. Activations are prepared once per row in the format the
 * weight type's dot product wants (eng_vec_dot_type: F32 for float weights, Q8_0 for the
 * 32-element block types, Q8_K for the K-quants) and every weight row is then dotted with
 * them. Each kernel has a plain C version (the "scalar twin") and, where it pays, AVX2 and
 * AVX-512 versions compiled with target attributes and chosen at run time; tests force each
 * instruction set with eng_isa_force() and compare against the twin.
 *
 *     eng_type at = eng_vec_dot_type(w->type);
 *     eng_act_quantize(w->type, x, xq, n);                  // xq: eng_type_row_bytes(at, n)
 *     eng_matmul(w->type, w->data, n, xq, 1, y, rows, 0, rows);   // y = W x
 */
#ifndef ENG_KERNELS_H
#define ENG_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "eng_types.h"

typedef enum eng_isa {
    ENG_ISA_SCALAR = 0,
    ENG_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    ENG_ISA_AVX512 = 2, /* AVX-512 F/BW/VL (+VNNI when present) */
} eng_isa;

/* Best instruction set this CPU supports. */
eng_isa eng_isa_detect(void);
/* The set in use (initially eng_isa_detect()). */
eng_isa eng_isa_active(void);
/* Uses isa from now on, clamped to what the CPU has; returns the set actually chosen.
 * Not thread-safe: call before starting work (tests, benchmarks). */
eng_isa eng_isa_force(eng_isa isa);
const char *eng_isa_name(eng_isa isa);

/* Activation format for weights of type wtype. */
eng_type eng_vec_dot_type(eng_type wtype);
/* Prepares n activations for dotting with wtype weights (writes
 * eng_type_row_bytes(eng_vec_dot_type(wtype), n) bytes). */
void eng_act_quantize(eng_type wtype, const float *x, void *xq, int64_t n);
/* One weight row (n elements of wtype) dotted with prepared activations. */
float eng_vec_dot(eng_type wtype, const void *w, const void *xq, int64_t n);

/* Y[t * ldy + r] = dot(row r of W, activation row t) for r in [r0, r1) and t in [0, nt).
 * W rows are eng_type_row_bytes(wtype, n) apart, activation rows
 * eng_type_row_bytes(eng_vec_dot_type(wtype), n) apart. Work is split across threads by
 * the caller through [r0, r1). */
void eng_matmul(eng_type wtype, const void *W, int64_t n, const void *Xq, int64_t nt, float *Y,
                int64_t ldy, int64_t r0, int64_t r1);

#endif
