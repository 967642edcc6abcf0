/*
 * types_traits_tmp.c - the five type-trait functions of eng_types.h that the GGUF reader and
 * writer need (names, block sizes, row sizes, readability).
 *
 * Temporary: quant.c, written in parallel, carries the full eng_types.h implementation
 * (conversions, dequantization, quantization) and replaces this file when both are merged.
 * The numbers are the ggml block definitions, so GGUF type numbers map directly.
 */
#include "eng_types.h"

typedef struct type_traits {
    const char *name;
    int block_elems;    /* elements per block; 0 marks a type number ggml does not define */
    size_t block_bytes; /* bytes per block */
    int supported;      /* 1 if this engine reads it */
} type_traits;

static const type_traits traits[ENG_TYPE_COUNT] = {
    [ENG_TYPE_F32] = {"f32", 1, 4, 1},       [ENG_TYPE_F16] = {"f16", 1, 2, 1},
    [ENG_TYPE_Q4_0] = {"q4_0", 32, 18, 1},   [ENG_TYPE_Q4_1] = {"q4_1", 32, 20, 1},
    [ENG_TYPE_Q5_0] = {"q5_0", 32, 22, 1},   [ENG_TYPE_Q5_1] = {"q5_1", 32, 24, 1},
    [ENG_TYPE_Q8_0] = {"q8_0", 32, 34, 1},   [ENG_TYPE_Q8_1] = {"q8_1", 32, 36, 0},
    [ENG_TYPE_Q2_K] = {"q2_k", 256, 84, 0},  [ENG_TYPE_Q3_K] = {"q3_k", 256, 110, 0},
    [ENG_TYPE_Q4_K] = {"q4_k", 256, 144, 1}, [ENG_TYPE_Q5_K] = {"q5_k", 256, 176, 1},
    [ENG_TYPE_Q6_K] = {"q6_k", 256, 210, 1}, [ENG_TYPE_Q8_K] = {"q8_k", 256, 292, 0},
    [ENG_TYPE_BF16] = {"bf16", 1, 2, 1},
};

static const type_traits *traits_of(eng_type t)
{
    if ((int)t < 0 || (int)t >= ENG_TYPE_COUNT || traits[t].block_elems == 0)
        return NULL;
    return &traits[t];
}

int eng_type_supported(eng_type t)
{
    const type_traits *tt = traits_of(t);
    return tt ? tt->supported : 0;
}

const char *eng_type_name(eng_type t)
{
    const type_traits *tt = traits_of(t);
    return tt ? tt->name : "unknown";
}

int eng_type_block_elems(eng_type t)
{
    const type_traits *tt = traits_of(t);
    return tt ? tt->block_elems : 0;
}

size_t eng_type_block_bytes(eng_type t)
{
    const type_traits *tt = traits_of(t);
    return tt ? tt->block_bytes : 0;
}

size_t eng_type_row_bytes(eng_type t, int64_t n)
{
    const type_traits *tt = traits_of(t);

    if (!tt || n < 0 || n % tt->block_elems)
        return 0;
    /* n / block_elems blocks; callers keep n within a tensor row, far from overflow. */
    return (size_t)(n / tt->block_elems) * tt->block_bytes;
}
