/*
 * kernels.h - the engine's math kernels (internal to rb_engine and its tests).
 *
 * Weights stay in their file type. For float weights (F32, F16, BF16) the prepared
 * activations are the float rows themselves, one after another, on every instruction set:
 * callers may pass float rows without preparing them.
 *
 * Weights stay in their file type. Activations are prepared once per matrix product in the
 * format the weight type's dot product wants (eng_vec_dot_type: F32 for float weights, Q8_0
 * for the 32-element block types, Q8_K for the K-quants), laid out as the chosen kernel
 * reads them, and every weight row is then dotted with them. Each kernel has a plain C version
 * (the "scalar twin") and, where it pays, AVX2 and AVX-512 versions compiled with target
 * attributes and chosen at run time; tests force each instruction set with eng_isa_force()
 * and compare against the twin.
 *
 *     void *xq = malloc(eng_act_bytes(w->type, n, nt));
 *     eng_act_prepare(w->type, X, n, nt, 0, nt, xq);          // X: nt rows of n floats
 *     eng_matmul(w->type, w->data, n, xq, nt, Y, rows, 0, rows);  // Y = X W^T
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
/* 1 if the CPU has AVX-512 VNNI on top of ENG_ISA_AVX512 (F/BW/VL). The integer AVX-512
 * kernels (Q4_0, Q8_0 and the K-quants) and the AVX-512 activation quantizers need it; without
 * it the AVX-512 set serves the float types only and the others take the AVX2 kernels. What
 * the CPU has, whatever eng_isa_force chose; the one test of VNNI in the engine. */
int eng_isa_has_vnni(void);

/* Intel AMX (AMX-TILE and AMX-INT8) for the batch products of Q4_0, Q8_0 and IQ4_NL weights.
 * eng_amx_available: the CPU has it, the kernel saves its state and granted it to this process
 * (asked once, on the first call), and AVX-512 VNNI is there too. eng_amx_active: in use now,
 * which is what is available unless RBEE_NO_AMX is set (to anything but 0) or eng_amx_force
 * said otherwise, and only while the active instruction set is AVX-512. eng_amx_force(on): uses
 * AMX from now on when on and available; returns whether it will. Not thread-safe, as
 * eng_isa_force. */
int eng_amx_available(void);
int eng_amx_active(void);
int eng_amx_force(int on);

/* Activation quantization for weights of type wtype: the type whose values the kernels
 * multiply (F32, Q8_0 or Q8_K). How those values are laid out in memory is the kernels'
 * business: see eng_act_bytes and eng_act_prepare. */
eng_type eng_vec_dot_type(eng_type wtype);

/* Bytes of prepared activations for nt rows of n elements dotted with wtype weights on the
 * active instruction set. The layout depends on wtype, nt and the instruction set: prepare and
 * multiply with the same nt and without forcing another instruction set in between. */
size_t eng_act_bytes(eng_type wtype, int64_t n, int64_t nt);
/* Prepares rows t0..t1-1 of a batch of nt activation rows (row t at X + t * n) into xq,
 * which holds eng_act_bytes(wtype, n, nt) bytes. Disjoint ranges of one batch may be
 * prepared concurrently; together they must cover [0, nt). */
void eng_act_prepare(eng_type wtype, const float *X, int64_t n, int64_t nt, int64_t t0, int64_t t1,
                     void *xq);
/* At least eng_act_bytes(wtype, n, nt) for every weight type on every instruction set: the
 * size of a buffer that serves any matrix of n columns. */
size_t eng_act_bytes_max(int64_t n, int64_t nt);
/* 1 if weights of types a and b take identical prepared activations for nt rows (one
 * preparation serves both). */
int eng_act_same_layout(eng_type a, eng_type b, int64_t nt);
/* One row: eng_act_prepare(wtype, x, n, 1, 0, 1, xq). */
void eng_act_quantize(eng_type wtype, const float *x, void *xq, int64_t n);
/* One weight row (n elements of wtype) dotted with one prepared activation row. */
float eng_vec_dot(eng_type wtype, const void *w, const void *xq, int64_t n);

/* Y[t * ldy + r] = dot(row r of W, activation row t) for r in [r0, r1) and t in [0, nt).
 * W rows are eng_type_row_bytes(wtype, n) apart; Xq holds nt prepared rows
 * (eng_act_prepare). Work is split across threads by the caller through [r0, r1). */
void eng_matmul(eng_type wtype, const void *W, int64_t n, const void *Xq, int64_t nt, float *Y,
                int64_t ldy, int64_t r0, int64_t r1);
/* eng_matmul with weight rows wrow bytes apart (a sub-matrix of a wider one). */
void eng_matmul_stride(eng_type wtype, const void *W, size_t wrow, int64_t n, const void *Xq,
                       int64_t nt, float *Y, int64_t ldy, int64_t r0, int64_t r1);
/* 1 if eng_matmul has a batch kernel for wtype on the active instruction set that beats
 * dequantizing the weights for a float matrix product. */
int eng_matmul_has_gemm(eng_type wtype);

/* Element-wise ops of the forward pass (kernels_ops.c), on the active instruction set. */
/* out = x / rms(x) * w (rms with eps added to the mean square); out may be x. */
void eng_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);
/* x = softmax(x * scale), scale > 0 (the maximum is taken out first). n >= 1. */
void eng_softmax(float *x, int64_t n, float scale);
/* g = silu(g) * u = g / (1 + e^-g) * u. */
void eng_swiglu(float *g, const float *u, int64_t n);
/* s[t * lds + p] = q_t . k_p for nq queries of hd floats (q_t at q + t * hd) and keys 0..npos-1
 * stored transposed: dimension i of key p at kt[i * ldk + p]. */
void eng_attn_scores(const float *q, int nq, int hd, const float *kt, size_t ldk, int npos,
                     float *s, size_t lds);

/* The KV cache kernels of the compressed cache types (kernels_kv.c). */
/* eng_attn_scores over F16 keys: dimension i of key p at kt[i * ldk + p]. */
void eng_attn_scores_f16(const float *q, int nq, int hd, const uint16_t *kt, size_t ldk, int npos,
                         float *s, size_t lds);
/* out[t * ldo + i] = sum over p < npos of w[t * ldw + p] * v_p[i] for nq weight rows, where
 * v_p, the value of position p, is hd / 32 Q8_0 blocks at v + p * (hd / 32) blocks.
 * hd is a multiple of 32. */
void eng_attn_values_q8_0(const float *w, int nq, size_t ldw, int npos, const void *v, int hd,
                          float *out, size_t ldo);

#endif
