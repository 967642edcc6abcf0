/*
 * eng_types.h - tensor element types: traits, dequantization and quantization.
 *
 *     size_t rb = eng_type_row_bytes(ENG_TYPE_Q4_0, 4096);   // bytes of one row of 4096
 *     eng_dequantize_row(ENG_TYPE_Q4_0, row, out, 4096);     // out: 4096 floats
 *     eng_quantize_row(ENG_TYPE_Q8_0, x, dst, 4096);         // n a multiple of the block size
 *
 * Types are numbered as in ggml so GGUF files map directly. Block layouts follow the GGUF
 * block definitions bit for bit (see quant.h for the packed structs).
 */
#ifndef ENG_TYPES_H
#define ENG_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef enum eng_type {
    ENG_TYPE_F32 = 0,
    ENG_TYPE_F16 = 1,
    ENG_TYPE_Q4_0 = 2,
    ENG_TYPE_Q4_1 = 3,
    ENG_TYPE_Q5_0 = 6,
    ENG_TYPE_Q5_1 = 7,
    ENG_TYPE_Q8_0 = 8,
    ENG_TYPE_Q8_1 = 9,
    ENG_TYPE_Q2_K = 10,
    ENG_TYPE_Q3_K = 11,
    ENG_TYPE_Q4_K = 12,
    ENG_TYPE_Q5_K = 13,
    ENG_TYPE_Q6_K = 14,
    ENG_TYPE_Q8_K = 15,
    ENG_TYPE_IQ2_XXS = 16,
    ENG_TYPE_IQ4_NL = 20,
    ENG_TYPE_IQ4_XS = 23,
    ENG_TYPE_BF16 = 30,
    ENG_TYPE_COUNT = 40 /* table size; not a type */
} eng_type;

/* 1 if the type is one this engine can read (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS); other ggml types are known by name but
 * refused. */
int eng_type_supported(eng_type t);
/* "q4_0", "f16", ...; "unknown" for others. */
const char *eng_type_name(eng_type t);
/* Parses a name ("q4_0", "Q4_0", "q4_k_m" is not a type: see eng_quantize_file). -1 if
 * unknown. */
int eng_type_parse(const char *name);
/* Elements per block (1 for float types, 32, or 256). 0 for unknown types. */
int eng_type_block_elems(eng_type t);
/* Bytes per block. 0 for unknown types. */
size_t eng_type_block_bytes(eng_type t);
/* Bytes of a row of n elements; n must be a multiple of the block size (else 0). */
size_t eng_type_row_bytes(eng_type t, int64_t n);

/* FP16 and BF16 conversions (exact, round-to-nearest-even for the narrowing ones). */
float eng_fp16_to_f32(uint16_t h);
uint16_t eng_f32_to_fp16(float f);
float eng_bf16_to_f32(uint16_t h);
uint16_t eng_f32_to_bf16(float f);

/* Dequantizes n elements (a multiple of the block size) of a supported type into y. */
void eng_dequantize_row(eng_type t, const void *x, float *y, int64_t n);
/* Quantizes n floats into a row of type t. Supported targets: F32, F16, BF16, Q8_0, Q4_0,
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS (and Q8_K for activations). Returns bytes written, 0
 * if t cannot be a target or n is not a multiple of the block size. */
size_t eng_quantize_row(eng_type t, const float *x, void *y, int64_t n);

#endif
