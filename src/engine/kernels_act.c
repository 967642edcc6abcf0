/*
 * kernels_act.c - preparation of activations: quantizing float rows to the activation type
 * of a weight type and laying them out as a kernel set reads them (kernels_isa.h).
 *
 * DESIGN. The values never depend on the layout: every layout holds exactly the codes and
 * scales eng_quantize_q8_0 / eng_quantize_q8_K give for the row, so a kernel reading one
 * layout and its scalar twin reading another compute the same integers. The layouts (n
 * elements per token, nb blocks of 32):
 *
 *   ENG_ACT_ROWS       nt rows of eng_type_row_bytes(activation type, n), one after another.
 *
 *   ENG_ACT_Q8_PAIRS   one token: n code bytes, then float d[nb], then int32 c[nb], where c is
 *                      -code_offset * (sum of the block's codes): the weight codes' offset
 *                      (Q4_0 stores q + 8, and the Q8_0 kernel adds 128 to make its weights
 *                      unsigned) taken out once per block. Blocks come in groups of 8: pair p
 *                      of a group (blocks A = 2p, B = 2p + 1) is 64 code bytes
 *                      [A 0..15 | B 0..15 | A 16..31 | B 16..31], so one 256-bit multiply of
 *                      two blocks' low halves and one of their high halves leave each block
 *                      in one 128-bit lane; d and c of a group are in the order the kernel's
 *                      reduction leaves the blocks: 0 2 4 6 1 3 5 7. Blocks past the last
 *                      whole group are stored plainly (32 codes, d and c in order).
 *
 *   ENG_ACT_Q8_TILES   tiles of 16 tokens (ENG_ACT_TILE), each nb * 640 bytes: per block,
 *                      512 code bytes as 8 groups of 4 codes x 16 tokens (a 512-bit vector per
 *                      group: token t's codes 4g..4g+3 in lane t), then d[16] floats and
 *                      c[16] int32 as above. Lanes past the last token are zero.
 *
 *   ENG_ACT_Q8K_TILES  tiles of 16 tokens, each (n / 256) * 5184 bytes: per super-block,
 *                      4096 code bytes (64 groups of 4 codes x 16 tokens), d[16] floats and
 *                      the 16-code sums s[16 sums][16 tokens] as int32.
 */
#include <string.h>

#include "kernels_isa.h"
#include "quant.h"

#define PAIR_BYTES 64
#define KTILE_BLOCK_BYTES (ENG_QK_K * ENG_ACT_TILE + 4 * ENG_ACT_TILE + 16 * 4 * ENG_ACT_TILE)

/* Position of block j of a group in the group's d and c arrays. */
static const int k_pair_slot[ENG_ACT_GROUP] = {0, 4, 1, 5, 2, 6, 3, 7};

static int64_t tiles(int64_t nt)
{
    return (nt + ENG_ACT_TILE - 1) / ENG_ACT_TILE;
}

size_t eng_act_token_stride(eng_act_layout layout, eng_type at, int64_t n)
{
    switch (layout) {
    case ENG_ACT_ROWS:
        return eng_type_row_bytes(at, n);
    case ENG_ACT_Q8_PAIRS: /* codes, then a float scale and an int32 term per block */
        return ((size_t)n + 8 * (size_t)(n / ENG_QK) + 63) / 64 * 64;
    default:
        return 0;
    }
}

size_t eng_act_layout_bytes(eng_act_layout layout, eng_type at, int64_t n, int64_t nt)
{
    size_t bytes = 0;
    switch (layout) {
    case ENG_ACT_ROWS:
        bytes = (size_t)nt * eng_type_row_bytes(at, n);
        break;
    case ENG_ACT_Q8_PAIRS:
        bytes = (size_t)nt * eng_act_token_stride(layout, at, n);
        break;
    case ENG_ACT_Q8_TILES:
        bytes = (size_t)tiles(nt) * (size_t)(n / ENG_QK) * ENG_ACT_TILE_BLOCK;
        break;
    case ENG_ACT_Q8K_TILES:
        bytes = (size_t)tiles(nt) * (size_t)(n / ENG_QK_K) * KTILE_BLOCK_BYTES;
        break;
    }
    return bytes;
}

/* Quantizes blocks b0..b0+nb-1 of x (nb <= CHUNK) with their code sums. The Q8 layouts are
 * only read by the AVX-512 VNNI kernels, so the AVX-512 quantizer is always there. */
#define CHUNK 64
static void quantize_chunk(const float *x, int64_t b0, int64_t nb, eng_block_q8_0 *q, int32_t *sum)
{
    eng_quantize_q8_0_avx512(x + b0 * ENG_QK, q, sum, nb * ENG_QK);
}

static void prepare_pairs(int code_offset, const float *x, int64_t n, uint8_t *xq)
{
    const int64_t nb = n / ENG_QK, whole = nb / ENG_ACT_GROUP * ENG_ACT_GROUP;
    int8_t *codes = (int8_t *)xq;
    float *d = (float *)(xq + n);
    int32_t *c = (int32_t *)(xq + n + 4 * nb);
    eng_block_q8_0 q[CHUNK];
    int32_t sum[CHUNK];

    for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
        const int64_t k = nb - b0 < CHUNK ? nb - b0 : CHUNK;
        quantize_chunk(x, b0, k, q, sum);
        for (int64_t i = 0; i < k; i++) {
            const int64_t b = b0 + i;
            int64_t slot = b;
            if (b < whole) {
                const int64_t g = b / ENG_ACT_GROUP, j = b % ENG_ACT_GROUP;
                int8_t *pair = codes + g * ENG_ACT_GROUP * ENG_QK + (j / 2) * PAIR_BYTES;
                memcpy(pair + 16 * (j & 1), q[i].qs, 16);
                memcpy(pair + 32 + 16 * (j & 1), q[i].qs + 16, 16);
                slot = g * ENG_ACT_GROUP + k_pair_slot[j];
            } else {
                memcpy(codes + b * ENG_QK, q[i].qs, ENG_QK);
            }
            d[slot] = eng_h2f(q[i].d);
            c[slot] = -code_offset * sum[i];
        }
    }
}

/* Token t of a tile: lane t of every vector. */
static void prepare_tile_q8(int code_offset, const float *x, int64_t n, int lane, uint8_t *tile)
{
    const int64_t nb = n / ENG_QK;
    eng_block_q8_0 q[CHUNK];
    int32_t sum[CHUNK];

    for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
        const int64_t k = nb - b0 < CHUNK ? nb - b0 : CHUNK;
        quantize_chunk(x, b0, k, q, sum);
        for (int64_t i = 0; i < k; i++) {
            uint8_t *blk = tile + (b0 + i) * ENG_ACT_TILE_BLOCK;
            for (int g = 0; g < ENG_QK / 4; g++)
                memcpy(blk + (g * ENG_ACT_TILE + lane) * 4, q[i].qs + 4 * g, 4);
            const float d = eng_h2f(q[i].d);
            const int32_t c = -code_offset * sum[i];
            memcpy(blk + ENG_QK * ENG_ACT_TILE + 4 * lane, &d, 4);
            memcpy(blk + ENG_QK * ENG_ACT_TILE + 4 * ENG_ACT_TILE + 4 * lane, &c, 4);
        }
    }
}

static void prepare_tile_q8k(const float *x, int64_t n, int lane, uint8_t *tile)
{
    for (int64_t b = 0; b < n / ENG_QK_K; b++) {
        uint8_t *blk = tile + b * KTILE_BLOCK_BYTES;
        uint8_t *sums = blk + ENG_QK_K * ENG_ACT_TILE + 4 * ENG_ACT_TILE;
        eng_block_q8_K q;
        eng_quantize_q8_K_avx512(x + b * ENG_QK_K, &q, ENG_QK_K);
        for (int g = 0; g < ENG_QK_K / 4; g++)
            memcpy(blk + (g * ENG_ACT_TILE + lane) * 4, q.qs + 4 * g, 4);
        memcpy(blk + ENG_QK_K * ENG_ACT_TILE + 4 * lane, &q.d, 4);
        for (int s = 0; s < ENG_QK_K / 16; s++) {
            const int32_t v = q.bsums[s];
            memcpy(sums + (s * ENG_ACT_TILE + lane) * 4, &v, 4);
        }
    }
}

/* Zeroes the lanes of the last tile past the batch's last token. */
static void clear_tail_lanes(eng_act_layout layout, int64_t n, int64_t nt, uint8_t *tile)
{
    const int64_t blocks = layout == ENG_ACT_Q8_TILES ? n / ENG_QK : n / ENG_QK_K;
    const size_t block_bytes = layout == ENG_ACT_Q8_TILES ? ENG_ACT_TILE_BLOCK : KTILE_BLOCK_BYTES;
    const int used = (int)(nt % ENG_ACT_TILE);
    if (used == 0)
        return;
    /* every vector of a block is 16 lanes of 4 bytes */
    for (int64_t b = 0; b < blocks; b++)
        for (size_t v = 0; v < block_bytes / (4 * ENG_ACT_TILE); v++)
            memset(tile + b * block_bytes + v * 4 * ENG_ACT_TILE + 4 * used, 0,
                   4 * (size_t)(ENG_ACT_TILE - used));
}

void eng_act_layout_prepare(eng_act_layout layout, eng_type at, int code_offset, int fast,
                            const float *X, int64_t n, int64_t nt, int64_t t0, int64_t t1, void *xq)
{
    uint8_t *out = xq;
    const size_t row = eng_type_row_bytes(at, n);

    for (int64_t t = t0; t < t1; t++) {
        const float *x = X + t * n;
        switch (layout) {
        case ENG_ACT_ROWS:
            if (at == ENG_TYPE_Q8_0 && fast)
                eng_quantize_q8_0_avx512(x, (eng_block_q8_0 *)(out + t * row), NULL, n);
            else if (at == ENG_TYPE_Q8_0)
                eng_quantize_q8_0(x, (eng_block_q8_0 *)(out + t * row), n);
            else if (at == ENG_TYPE_Q8_K && fast)
                eng_quantize_q8_K_avx512(x, (eng_block_q8_K *)(out + t * row), n);
            else if (at == ENG_TYPE_Q8_K)
                eng_quantize_q8_K(x, (eng_block_q8_K *)(out + t * row), n);
            else
                memcpy(out + t * row, x, (size_t)n * sizeof(float));
            break;
        case ENG_ACT_Q8_PAIRS:
            prepare_pairs(code_offset, x, n, out + t * eng_act_token_stride(layout, at, n));
            break;
        case ENG_ACT_Q8_TILES:
            prepare_tile_q8(code_offset, x, n, (int)(t % ENG_ACT_TILE),
                            out + (t / ENG_ACT_TILE) * (n / ENG_QK) * ENG_ACT_TILE_BLOCK);
            break;
        case ENG_ACT_Q8K_TILES:
            prepare_tile_q8k(x, n, (int)(t % ENG_ACT_TILE),
                             out + (t / ENG_ACT_TILE) * (n / ENG_QK_K) * KTILE_BLOCK_BYTES);
            break;
        }
    }
    if ((layout == ENG_ACT_Q8_TILES || layout == ENG_ACT_Q8K_TILES) && t1 == nt && t0 < t1)
        clear_tail_lanes(layout, n, nt,
                         out + eng_act_layout_bytes(layout, at, n, nt) -
                             eng_act_layout_bytes(layout, at, n, 1));
}
