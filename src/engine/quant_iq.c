/*
 * quant_iq.c - the IQ4 types: IQ4_NL (blocks of 32, one fp16 scale) and IQ4_XS (super-blocks
 * of 256, an fp16 scale over 8 six-bit sub-block scales), both 4-bit indices into the fixed
 * non-linear table eng_iq4nl_values.
 *
 * DESIGN. The quantizer needs no importance matrix (llama.cpp quantizes both types without
 * one too). It is a plain RMSE-minimising scale search per group of 32: candidate inverse
 * scales (v0 + 0.1 k) / max for k = -10..10, where max is the signed value of largest
 * magnitude and v0 = -127 the table's end; each candidate maps every value to its nearest table
 * entry, the least-squares scale for those indices is sum(q x) / sum(q^2), and the candidate
 * that explains the most energy, (sum q x)^2 / sum q^2, wins. The scale is then stored (fp16,
 * or for IQ4_XS 6 bits under the super-block scale) and every index recomputed against the
 * stored scale, so the codes fit the value the kernels will use.
 */
#include <math.h>
#include <string.h>

#include "eng_types.h"
#include "quant.h"

const int8_t eng_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

#define SEARCH_STEPS 10
#define GROUP 32

/* The midpoints between neighbouring table entries. */
static const float k_mid[15] = {-115.5f, -93.5f, -74.0f, -57.0f, -42.0f, -28.5f, -16.0f, -4.5f,
                                7.0f,    19.0f,  31.5f,  45.5f,  61.0f,  79.0f,  101.0f};

/* Index of the table entry nearest v (a tie goes to the larger entry): the number of
 * midpoints at or below v, counted without branches (a binary search mispredicts on almost
 * every step, which made quantizing a 1.1 B model take minutes). */
static int nearest_index(float v)
{
    int idx = 0;
    for (int i = 0; i < 15; i++)
        idx += v >= k_mid[i];
    return idx;
}

/* The best scale for a group of 32 (see DESIGN); 0 for an all-zero group. */
static float search_scale(const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < GROUP; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    if (amax < 1e-30f)
        return 0.0f;
    float best_scale = max / eng_iq4nl_values[0], best = -1.0f;
    for (int k = -SEARCH_STEPS; k <= SEARCH_STEPS; k++) {
        const float id = ((float)eng_iq4nl_values[0] + 0.1f * (float)k) / max;
        float sqx = 0.0f, sq2 = 0.0f;
        for (int j = 0; j < GROUP; j++) {
            const float q = eng_iq4nl_values[nearest_index(id * x[j])];
            sqx += q * x[j];
            sq2 += q * q;
        }
        if (sq2 > 0.0f && sqx * sqx > best * sq2) {
            best = sqx * sqx / sq2;
            best_scale = sqx / sq2;
        }
    }
    return best_scale;
}

/* Indices of a group of 32 against scale d, packed as Q4_0 nibbles. */
static void pack_indices(const float *x, float d, uint8_t *qs)
{
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < GROUP / 2; j++) {
        /* a zero scale maps everything to index 8 (value 1), times 0 */
        const int lo = d != 0.0f ? nearest_index(id * x[j]) : 8;
        const int hi = d != 0.0f ? nearest_index(id * x[j + GROUP / 2]) : 8;
        qs[j] = (uint8_t)(lo | hi << 4);
    }
}

void eng_quantize_iq4_nl(const float *x, eng_block_iq4_nl *y, int64_t n)
{
    for (int64_t b = 0; b < n / GROUP; b++, x += GROUP) {
        y[b].d = eng_fp16_scale(search_scale(x));
        pack_indices(x, eng_h2f(y[b].d), y[b].qs);
    }
}

void eng_dequantize_iq4_nl(const eng_block_iq4_nl *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / GROUP; b++, y += GROUP) {
        const float d = eng_h2f(x[b].d);
        for (int j = 0; j < GROUP / 2; j++) {
            y[j] = d * (float)eng_iq4nl_values[x[b].qs[j] & 0xF];
            y[j + GROUP / 2] = d * (float)eng_iq4nl_values[x[b].qs[j] >> 4];
        }
    }
}

void eng_quantize_iq4_xs(const float *x, eng_block_iq4_xs *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++, x += ENG_QK_K) {
        float scales[8], max_scale = 0.0f, amax = 0.0f;
        for (int ib = 0; ib < 8; ib++) {
            scales[ib] = search_scale(x + GROUP * ib);
            if (fabsf(scales[ib]) > amax) {
                amax = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        memset(&y[b], 0, sizeof y[b]);
        /* the largest sub-block scale maps to ls - 32 = -32, the 6-bit range's end */
        const float d = max_scale / -32.0f;
        y[b].d = eng_fp16_scale(d);
        const float ds = eng_h2f(y[b].d), id = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int ib = 0; ib < 8; ib++) {
            long l = lrintf(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const int ls = (int)l + 32;
            y[b].scales_l[ib / 2] |= (uint8_t)((ls & 0xF) << (4 * (ib % 2)));
            y[b].scales_h |= (uint16_t)((ls >> 4) << (2 * ib));
            pack_indices(x + GROUP * ib, ds * (float)(ls - 32), y[b].qs + 16 * ib);
        }
    }
}

void eng_dequantize_iq4_xs(const eng_block_iq4_xs *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        const float d = eng_h2f(x[b].d);
        for (int ib = 0; ib < 8; ib++, y += GROUP) {
            const float dl = d * (float)eng_iq4_xs_scale(&x[b], ib);
            const uint8_t *qs = x[b].qs + 16 * ib;
            for (int j = 0; j < GROUP / 2; j++) {
                y[j] = dl * (float)eng_iq4nl_values[qs[j] & 0xF];
                y[j + GROUP / 2] = dl * (float)eng_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}
