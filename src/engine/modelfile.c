/*
 * modelfile.c - quantizing model files and writing random models of a real model's shape.
 *
 * Both build a new GGUF through the writer: metadata copied (or synthesised), then every
 * tensor converted row by row across a small thread pool, since quantizing a 1.1 B-parameter
 * model with the K-quant scale search is minutes of work on one core.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_gguf.h"
#include "eng_tools.h"
#include "model.h"
#include "pool.h"

typedef struct ftype_def {
    const char *name;
    eng_type type;      /* the main type */
    uint32_t file_type; /* llama.cpp's general.file_type */
} ftype_def;

/* llama.cpp's general.file_type numbers of the mixes that adjust per-tensor types */
enum {
    FT_Q2_K = 10,
    FT_Q3_K_S = 11,
    FT_Q3_K_M = 12,
    FT_Q4_K_M = 15,
    FT_IQ4_NL = 25,
    FT_IQ4_XS = 30,
};

static const ftype_def ftypes[] = {
    {"f32", ENG_TYPE_F32, 0},
    {"f16", ENG_TYPE_F16, 1},
    {"q4_0", ENG_TYPE_Q4_0, 2},
    {"q8_0", ENG_TYPE_Q8_0, 7},
    {"q2_k", ENG_TYPE_Q2_K, FT_Q2_K},
    {"q3_k_s", ENG_TYPE_Q3_K, FT_Q3_K_S},
    {"q3_k_m", ENG_TYPE_Q3_K, FT_Q3_K_M},
    {"q4_k", ENG_TYPE_Q4_K, 14},
    {"q4_k_m", ENG_TYPE_Q4_K, FT_Q4_K_M},
    {"q6_k", ENG_TYPE_Q6_K, 18},
    {"iq4_nl", ENG_TYPE_IQ4_NL, FT_IQ4_NL},
    {"iq4_xs", ENG_TYPE_IQ4_XS, FT_IQ4_XS},
    {"bf16", ENG_TYPE_BF16, 32},
};

#define FTYPE_NAMES "f32 f16 bf16 q8_0 q4_0 q2_k q3_k_s q3_k_m q4_k q4_k_m q6_k iq4_nl iq4_xs"

static const ftype_def *find_ftype(const char *name)
{
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (strcmp(ftypes[i].name, name) == 0)
            return &ftypes[i];
    return NULL;
}

int eng_ftype_known(const char *name)
{
    return find_ftype(name) != NULL;
}

/* llama.cpp's rule for which layers get more bits in the _M mixes. */
static int use_more_bits(int layer, int n_layers)
{
    return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

/* Layer number of "blk.N.xxx", or -1. */
static int layer_of(const char *name)
{
    int l;
    return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The model's shape as the mixes see it. */
typedef struct mix_shape {
    int n_layers;
    int gqa;  /* attention heads per key/value head (1 without GQA) */
    int tied; /* no output.weight: token_embd.weight is the output head too */
} mix_shape;

/* The type llama.cpp's mix for ft gives a weight matrix called name (llama_tensor_get_type,
 * for a llama-architecture model without experts), or ft->type where it keeps the default.
 * attn_v and ffn_down are counted by layer, which is their order in a llama file. */
static eng_type mix_type(const ftype_def *ft, const char *name, const mix_shape *ms)
{
    const int l = layer_of(name), n = ms->n_layers;
    const int attn_v = ends_with(name, "attn_v.weight") && l >= 0;
    const int ffn_down = ends_with(name, "ffn_down.weight") && l >= 0;
    const int attn_out = ends_with(name, "attn_output.weight") && l >= 0;
    eng_type t = ft->type;

    if (ft->type == ENG_TYPE_F32 || ft->type == ENG_TYPE_F16 || ft->type == ENG_TYPE_BF16)
        return t;
    if (strcmp(name, "output.weight") == 0 || (ms->tied && strcmp(name, "token_embd.weight") == 0))
        return ft->file_type == FT_Q4_K_M || ft->file_type == FT_Q2_K ||
                       ft->file_type == FT_Q3_K_S || ft->file_type == FT_Q3_K_M ||
                       ft->file_type == FT_IQ4_NL || ft->file_type == FT_IQ4_XS
                   ? ENG_TYPE_Q6_K
                   : t;
    switch (ft->file_type) {
    case FT_Q2_K:
        if (attn_v)
            t = ms->gqa >= 4 ? ENG_TYPE_Q4_K : ENG_TYPE_Q3_K;
        else if (ffn_down || attn_out)
            t = ENG_TYPE_Q3_K;
        break;
    case FT_Q3_K_M:
        if (attn_v)
            t = l < 2 ? ENG_TYPE_Q5_K : ENG_TYPE_Q4_K;
        else if (ffn_down) /* the Q3_K branch is Falcon's only */
            t = l < n / 16 ? ENG_TYPE_Q5_K : ENG_TYPE_Q4_K;
        else if (attn_out)
            t = ENG_TYPE_Q4_K;
        break;
    case FT_Q4_K_M:
        if ((attn_v || ffn_down) && use_more_bits(l, n))
            t = ENG_TYPE_Q6_K;
        break;
    case FT_IQ4_NL:
    case FT_IQ4_XS: /* the rules without an importance matrix */
        if ((attn_v && ms->gqa >= 4) || (ffn_down && l < n / 8))
            t = ENG_TYPE_Q5_K;
        break;
    default:
        break;
    }
    return t;
}

/* The type a tensor gets in a file of type ft: F32 for vectors, the mix's type for matrices,
 * and for rows that do not fit that type's blocks Q8_0 (or F16 when 32 does not divide them
 * either). */
static eng_type target_type(const ftype_def *ft, const char *name, uint32_t ndim, int64_t ne0,
                            const mix_shape *ms)
{
    eng_type t;

    if (ndim < 2)
        return ENG_TYPE_F32;
    t = mix_type(ft, name, ms);
    if (ne0 % eng_type_block_elems(t) != 0)
        t = ne0 % eng_type_block_elems(ENG_TYPE_Q8_0) == 0 ? ENG_TYPE_Q8_0 : ENG_TYPE_F16;
    return t;
}

/* ---- parallel row conversion ----------------------------------------------------------- */

typedef struct convert_task {
    eng_type src_type, dst_type;
    const uint8_t *src; /* NULL: generate random rows */
    uint8_t *dst;
    int64_t rows, cols;
    size_t src_row, dst_row;
    float *scratch; /* (nth, cols) */
    uint64_t seed;
    float std, fill; /* random: normal(0, std); fill != 0: constant rows */
} convert_task;

/* splitmix64 */
static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A row of approximately normal values: sum of 4 uniforms, scaled (cheap and good enough for
 * benchmark weights). */
static void random_row(float *x, int64_t n, uint64_t seed, float std)
{
    uint64_t s = mix(seed);
    const float scale = std * 1.7320508f / 2.0f / 65536.0f; /* var of U(0,1) sum of 4 = 1/3 */
    for (int64_t i = 0; i < n; i++) {
        s = mix(s);
        float u = (float)(s & 0xFFFF) + (float)((s >> 16) & 0xFFFF) + (float)((s >> 32) & 0xFFFF) +
                  (float)((s >> 48) & 0xFFFF) - 2.0f * 65535.0f;
        x[i] = u * scale;
    }
}

static void convert_part(void *ctx, int ith, int nth)
{
    convert_task *t = ctx;
    float *x = t->scratch + (size_t)ith * (size_t)t->cols;
    long r0, r1;

    eng_split(t->rows, ith, nth, 1, &r0, &r1);
    for (long r = r0; r < r1; r++) {
        if (t->src)
            eng_dequantize_row(t->src_type, t->src + (size_t)r * t->src_row, x, t->cols);
        else if (t->fill != 0) {
            /* norms: constant, or jittered around the constant */
            if (t->std > 0)
                random_row(x, t->cols, t->seed ^ ((uint64_t)r * 0x100000001B3ull), t->std);
            for (int64_t i = 0; i < t->cols; i++)
                x[i] = t->std > 0 ? x[i] + t->fill : t->fill;
        } else
            random_row(x, t->cols, t->seed ^ ((uint64_t)r * 0x100000001B3ull), t->std);
        eng_quantize_row(t->dst_type, x, t->dst + (size_t)r * t->dst_row, t->cols);
    }
}

/* Converts (or generates) a tensor and adds it to the writer. */
static rb_err add_converted(eng_gguf_writer *w, eng_pool *pool, const char *name, uint32_t ndim,
                            const int64_t *ne, convert_task *t, char *err, size_t errlen)
{
    rb_err rc;
    size_t bytes;

    t->cols = ne[0];
    t->rows = 1;
    for (uint32_t d = 1; d < ndim; d++)
        t->rows *= ne[d];
    t->dst_row = eng_type_row_bytes(t->dst_type, t->cols);
    if (!t->dst_row)
        return rb_errf(err, errlen, RB_EINVAL, "tensor '%s': %lld columns do not fit type %s", name,
                       (long long)t->cols, eng_type_name(t->dst_type));
    bytes = t->dst_row * (size_t)t->rows;
    t->dst = malloc(bytes ? bytes : 1);
    t->scratch = malloc((size_t)eng_pool_max_chunks(pool) * (size_t)t->cols * sizeof(float));
    if (!t->dst || !t->scratch) {
        free(t->dst);
        free(t->scratch);
        return RB_ENOMEM;
    }
    eng_pool_for(pool, eng_pool_chunks(pool, t->rows, t->cols * 64), convert_part, t);
    rc = eng_gguf_writer_add_tensor(w, name, t->dst_type, ndim, ne, t->dst, bytes);
    if (rc)
        rb_errf(err, errlen, rc, "cannot add tensor '%s'", name);
    free(t->dst);
    free(t->scratch);
    t->dst = NULL;
    t->scratch = NULL;
    return rc;
}

rb_err eng_quantize_file(const char *in, const char *out, const char *ftype, int n_threads,
                         char *err, size_t errlen)
{
    const ftype_def *ft = find_ftype(ftype);
    eng_gguf *g = NULL;
    eng_gguf_writer *w = NULL;
    eng_pool *pool = NULL;
    uint32_t n_layers = 0, heads = 1, kv_heads = 0;
    char arch[64], key[96], gerr[256];
    mix_shape ms;
    rb_err rc;

    if (!ft)
        return rb_errf(err, errlen, RB_EINVAL, "unknown type '%s' (known: " FTYPE_NAMES ")", ftype);
    if ((rc = eng_gguf_open(in, &g, gerr, sizeof gerr))) {
        rb_errf(err, errlen, rc, "cannot open model '%s': %s", in, gerr);
        goto out;
    }
    if (eng_gguf_find_str(g, "general.architecture", arch, sizeof arch) == RB_OK) {
        snprintf(key, sizeof key, "%s.block_count", arch);
        eng_gguf_find_u32(g, key, 0, &n_layers);
        snprintf(key, sizeof key, "%s.attention.head_count", arch);
        eng_gguf_find_u32(g, key, 1, &heads);
        snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
        eng_gguf_find_u32(g, key, heads, &kv_heads);
    }
    ms.n_layers = (int)n_layers;
    ms.gqa = kv_heads > 0 && heads >= kv_heads ? (int)(heads / kv_heads) : 1;
    ms.tied = eng_gguf_find_tensor(g, "output.weight") < 0;
    w = eng_gguf_writer_new();
    pool = eng_pool_new(n_threads > 0 ? n_threads : 1);
    if (!w || !pool) {
        rc = RB_ENOMEM;
        goto out;
    }
    if ((rc = eng_gguf_writer_copy_kv(w, g)) ||
        (rc = eng_gguf_writer_set_u32(w, "general.file_type", ft->file_type))) {
        rb_errf(err, errlen, rc, "cannot copy the metadata of '%s'", in);
        goto out;
    }
    for (int64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        convert_task ct = {0};
        ct.src_type = t->type;
        ct.src = t->data;
        ct.src_row = eng_type_row_bytes(t->type, t->ne[0]);
        ct.dst_type = target_type(ft, t->name, t->ndim, t->ne[0], &ms);
        if (ct.dst_type == t->type) {
            rc = eng_gguf_writer_add_tensor(w, t->name, t->type, t->ndim, t->ne, t->data, t->size);
            if (rc)
                rb_errf(err, errlen, rc, "cannot add tensor '%s'", t->name);
        } else {
            rc = add_converted(w, pool, t->name, t->ndim, t->ne, &ct, err, errlen);
        }
        if (rc)
            goto out;
    }
    if ((rc = eng_gguf_writer_write(w, out, gerr, sizeof gerr)))
        rb_errf(err, errlen, rc, "cannot write '%s': %s", out, gerr);
out:
    eng_pool_free(pool);
    eng_gguf_writer_free(w);
    eng_gguf_close(g);
    return rc;
}

/* ---- random models ---------------------------------------------------------------------- */

/* A real model's shape (numbers from its config.json) or a small one for test fixtures.
 * std: weight scale (matrices; embeddings twice it) and jitter: norms are 1 + jitter * normal,
 * both 0.02 and 0 for the real shapes (benchmark weights), larger for fixtures so their logits
 * spread and a wrong op shows. */
typedef struct shape {
    const char *name, *arch;
    int dim, layers, heads, kv_heads, head_dim, ff, ctx, vocab;
    float rope_base, rope_base_swa, eps;
    int swa;                   /* attention.sliding_window, 0 if none */
    float attn_cap, final_cap; /* gemma2 soft-capping, 0 if none */
    int tied;                  /* no output.weight */
    float llama3_factor;       /* > 0: rope_freqs.weight for llama 3.1 scaling (factor, low 1,
                                * high 4, original context 8192) */
    float std, jitter;
    int longrope; /* phi3: rope_factors_short/long, original context = ctx, attention factor */
    float linear; /* > 0: rope.scaling.type linear with this factor (gemma3: global layers) */
} shape;

/* The fields the Q4_K_M fixture shapes share: 256 wide, 4 heads of 64, FFN 256, a 128-token
 * context and 512 pieces. */
#define WIDE(nm, ar, nl, kv)                                                                       \
    .name = nm, .arch = ar, .dim = 256, .layers = nl, .heads = 4, .kv_heads = kv, .head_dim = 64,  \
    .ff = 256, .ctx = 128, .vocab = 512, .std = 0.08f, .jitter = 0.1f

static const shape shapes[] = {
    /* name, arch, dim, layers, heads, kv heads, head_dim, ff, ctx, vocab, rope base, sliding
     * layers' base, eps, window, caps, tied, llama3 factor, std, jitter */
    {"tinyllama-1.1b",
     "llama",
     2048,
     22,
     32,
     4,
     64,
     5632,
     2048,
     32000,
     1e4f,
     0,
     1e-5f,
     0,
     0,
     0,
     0,
     0,
     0.02f,
     0},
    {"llama-3.2-1b", "llama", 2048,  16, 32, 8, 64, 8192,  131072, 128256,
     5e5f,           0,       1e-5f, 0,  0,  0, 1,  32.0f, 0.02f,  0},
    {"llama-3.1-8b", "llama", 4096,  32, 32, 8, 128, 14336, 131072, 128256,
     5e5f,           0,       1e-5f, 0,  0,  0, 0,   8.0f,  0.02f,  0},
    {"mistral-7b", "llama", 4096,  32, 32, 8, 128, 14336, 32768, 32768,
     1e6f,         0,       1e-5f, 0,  0,  0, 0,   0,     0.02f, 0},
    {"qwen2.5-0.5b", "qwen2", 896,   24, 14, 2, 64, 4864, 32768, 151936,
     1e6f,           0,       1e-6f, 0,  0,  0, 1,  0,    0.02f, 0},
    {"qwen3-0.6b", "qwen3", 1024,  28, 16, 8, 128, 3072, 40960, 151936,
     1e6f,         0,       1e-6f, 0,  0,  0, 1,   0,    0.02f, 0},
    {"phi-3-mini", "phi3", 3072,  32, 32, 32, 96, 8192, 4096,  32064,
     1e4f,         0,      1e-5f, 0,  0,  0,  0,  0,    0.02f, 0},
    {"gemma-2-2b", "gemma2", 2304,  26,   8,     4,     256, 9216, 8192,  256000,
     1e4f,         0,        1e-6f, 4096, 50.0f, 30.0f, 1,   0,    0.02f, 0},
    {"gemma-3-1b", "gemma3", 1152,  26,  4, 1, 256, 6912, 32768, 262144,
     1e6f,         1e4f,     1e-6f, 512, 0, 0, 1,   0,    0.02f, 0},
    /* 4 of llama-3.1-8b's layers, its context, a 32000-piece vocabulary: KV memory */
    {"llama-3-4layer",
     "llama",
     4096,
     4,
     32,
     8,
     128,
     14336,
     131072,
     32000,
     5e5f,
     0,
     1e-5f,
     0,
     0,
     0,
     0,
     8.0f,
     0.02f,
     0},
    {"tiny", "llama", 64, 2, 4, 2, 16, 128, 256, 512, 1e4f, 0, 1e-5f, 0, 0, 0, 0, 0, 0.02f, 0},
    /* long prompts in tests (the scheduler's chunked prefill): a 4096-token context */
    {"tiny-4k", "llama", 128, 4, 4, 2, 32, 384, 4096, 512, 1e4f, 0, 1e-5f, 0, 0, 0, 0, 0, 0.02f, 0},
    /* fixtures (models/test-<arch>-tiny-f16.gguf): 512 pieces, a 64-wide stream, untied */
    {"llama-tiny", "llama", 64,    2, 4, 2, 24, 128,  128,   512,
     5e5f,         0,       1e-5f, 0, 0, 0, 0,  8.0f, 0.15f, 0.1f},
    {"qwen2-tiny", "qwen2", 64,    2, 4, 2, 16, 128, 128,   512,
     1e6f,         0,       1e-6f, 0, 0, 0, 0,  0,   0.15f, 0.1f},
    {"qwen3-tiny", "qwen3", 64,    2, 4, 2, 32, 128, 128,   512,
     1e6f,         0,       1e-6f, 0, 0, 0, 0,  0,   0.15f, 0.1f},
    {"phi3-tiny", "phi3", 64,    2, 4, 4, 16, 128, 128,   512,
     1e4f,        0,      1e-5f, 0, 0, 0, 0,  0,   0.15f, 0.1f},
    {"phi3-longrope-tiny",
     "phi3",
     64,
     2,
     4,
     4,
     16,
     128,
     128,
     512,
     1e4f,
     0,
     1e-5f,
     0,
     0,
     0,
     0,
     0,
     0.15f,
     0.1f,
     1},
    {"gemma2-tiny", "gemma2", 64,    2, 4,     2,     32, 128, 128,   512,
     1e4f,          0,        1e-6f, 5, 50.0f, 30.0f, 0,  0,   0.15f, 0.1f},
    {"gemma3-tiny", "gemma3", 64, 6, 4, 2, 32, 128,   128,  512, 1e6f,
     1e4f,          1e-6f,    5,  0, 0, 0, 0,  0.15f, 0.1f, 0,   8.0f},
    /* Q4_K_M fixtures (models/test-<arch>-wide-q4_k_m.gguf): every matrix row a multiple of
     * the 256-value K-quant block, so no tensor falls back to Q8_0 */
    {WIDE("llama-wide", "llama", 2, 2), .rope_base = 5e5f, .eps = 1e-5f, .llama3_factor = 8.0f},
    {WIDE("qwen2-wide", "qwen2", 2, 2), .rope_base = 1e6f, .eps = 1e-6f},
    {WIDE("qwen3-wide", "qwen3", 2, 2), .rope_base = 1e6f, .eps = 1e-6f},
    {WIDE("phi3-wide", "phi3", 2, 4), .rope_base = 1e4f, .eps = 1e-5f},
    {WIDE("gemma2-wide", "gemma2", 2, 2), .rope_base = 1e4f, .eps = 1e-6f, .swa = 5,
     .attn_cap = 50.0f, .final_cap = 30.0f},
    {WIDE("gemma3-wide", "gemma3", 6, 2), .rope_base = 1e6f, .rope_base_swa = 1e4f, .eps = 1e-6f,
     .swa = 5, .linear = 8.0f},
};

#define SHAPE_LIST                                                                                 \
    "tinyllama-1.1b, llama-3.2-1b, llama-3.1-8b, mistral-7b, qwen2.5-0.5b, qwen3-0.6b, "           \
    "phi-3-mini, gemma-2-2b, gemma-3-1b, llama-3-4layer, tiny, tiny-4k, llama-tiny, qwen2-tiny, "  \
    "qwen3-tiny, phi3-tiny, phi3-longrope-tiny, gemma2-tiny, gemma3-tiny, llama-wide, "            \
    "qwen2-wide, qwen3-wide, phi3-wide, gemma2-wide, gemma3-wide"

/* llama 3.1's rope scaling as frequency divisors, one per rotated pair (llama.cpp's
 * converter writes the same into rope_freqs.weight). Fixtures take an original context of 64
 * instead of 8192, so the divisors change the rotations within a short prompt. */
static void llama3_freqs(const shape *sh, float *out)
{
    const double orig = sh->jitter > 0 ? 64 : 8192, low = 1, high = 4;
    const double factor = sh->llama3_factor;
    const int n_rot = sh->head_dim;
    for (int i = 0; i < n_rot / 2; i++) {
        const double freq = pow(sh->rope_base, -2.0 * i / n_rot), wavelen = 2 * M_PI / freq;
        if (wavelen < orig / high) {
            out[i] = 1.0f;
        } else if (wavelen > orig / low) {
            out[i] = (float)factor;
        } else {
            const double smooth = (orig / wavelen - low) / (high - low);
            out[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

/* A SentencePiece vocabulary with byte fallback and n pieces in all. */
static rb_err synth_vocab(eng_gguf_writer *w, int n)
{
    char **tok = calloc((size_t)n, sizeof(*tok));
    float *scores = calloc((size_t)n, sizeof(float));
    int32_t *types = calloc((size_t)n, sizeof(int32_t));
    rb_err rc = RB_ENOMEM;

    if (!tok || !scores || !types)
        goto out;
    for (int i = 0; i < n; i++) {
        char buf[32];
        if (i == 0)
            snprintf(buf, sizeof buf, "<unk>"), types[i] = 2;
        else if (i == 1)
            snprintf(buf, sizeof buf, "<s>"), types[i] = 3;
        else if (i == 2)
            snprintf(buf, sizeof buf, "</s>"), types[i] = 3;
        else if (i < 259)
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3), types[i] = 6;
        else
            snprintf(buf, sizeof buf, "\xE2\x96\x81t%d", i), types[i] = 1;
        scores[i] = -(float)i;
        if (!(tok[i] = strdup(buf)))
            goto out;
    }
    if ((rc = eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (rc = eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok,
                                          (uint64_t)n)) ||
        (rc = eng_gguf_writer_set_arr(w, "tokenizer.ggml.scores", ENG_GGUF_F32, scores,
                                      (uint64_t)n)) ||
        (rc = eng_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", ENG_GGUF_I32, types,
                                      (uint64_t)n)) ||
        (rc = eng_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) ||
        (rc = eng_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) ||
        (rc = eng_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)))
        goto out;
out:
    for (int i = 0; tok && i < n; i++)
        free(tok[i]);
    free(tok);
    free(scores);
    free(types);
    return rc;
}

/* Copies the tokenizer.* keys of the vocabulary file; returns its vocabulary size. */
static rb_err copy_vocab(eng_gguf_writer *w, const char *path, int *n_vocab, char *err,
                         size_t errlen)
{
    eng_gguf *v = NULL;
    char gerr[256];
    eng_gguf_vtype et;
    uint64_t n = 0;
    rb_err rc;
    int64_t k;

    if ((rc = eng_gguf_open(path, &v, gerr, sizeof gerr)))
        return rb_errf(err, errlen, rc, "cannot open vocabulary '%s': %s", path, gerr);
    k = eng_gguf_find_key(v, "tokenizer.ggml.tokens");
    if (k < 0 || eng_gguf_get_arr(v, k, &et, &n) || et != ENG_GGUF_STRING || n == 0) {
        rc = rb_errf(err, errlen, RB_EFORMAT, "'%s' has no tokenizer.ggml.tokens", path);
        goto out;
    }
    /* Only the tokenizer's keys: the vocabulary file's other settings (e.g. qwen2.*) are
     * not this model's. */
    if ((rc = eng_gguf_writer_copy_kv_prefix(w, v, "tokenizer.")))
        goto out;
    *n_vocab = (int)n;
out:
    eng_gguf_close(v);
    return rc;
}

/* Adds one random tensor: a norm (1-D, ones, jittered for fixtures), a bias (1-D, normal) or a
 * weight of rows x cols. */
enum { T_MAT, T_NORM, T_BIAS };

static rb_err add_random(eng_gguf_writer *w, eng_pool *pool, const ftype_def *ft, const shape *sh,
                         const char *name, int rows, int cols, int kind, uint64_t seed, char *err,
                         size_t errlen)
{
    convert_task ct = {0};
    int64_t ne[2] = {cols, rows};

    ct.std = kind == T_NORM ? sh->jitter : sh->std;
    if (kind == T_MAT && strcmp(name, "token_embd.weight") == 0 && sh->jitter > 0)
        ct.std = 2 * sh->std; /* fixtures: embeddings larger than the other matrices */
    ct.fill = kind == T_NORM ? 1.0f : 0.0f;
    ct.seed = seed;
    const mix_shape ms = {sh->layers, sh->kv_heads > 0 ? sh->heads / sh->kv_heads : 1, sh->tied};
    ct.dst_type = kind != T_MAT ? ENG_TYPE_F32 : target_type(ft, name, 2, ne[0], &ms);
    return add_converted(w, pool, name, kind != T_MAT ? 1 : 2, ne, &ct, err, errlen);
}

/* Phi-3's longrope tensors and keys: short factors rising from 1 to 3 and long ones from 4 to
 * 8 over the rotated pairs (fixtures: both change the rotations visibly), the shape's context
 * as the original one, and the attention factor of a 32-fold extension as llama.cpp's and
 * ollama's converters compute it, sqrt(1 + ln 32 / ln original). */
static rb_err add_longrope(eng_gguf_writer *w, const shape *sh, char *err, size_t errlen)
{
    const int half = sh->head_dim / 2;
    const int64_t ne[1] = {half};
    float s_f[256], l_f[256];
    char k[96];
    rb_err rc;

    for (int i = 0; i < half; i++) {
        s_f[i] = 1.0f + 2.0f * (float)i / (float)(half > 1 ? half - 1 : 1);
        l_f[i] = 4.0f + 4.0f * (float)i / (float)(half > 1 ? half - 1 : 1);
    }
    snprintf(k, sizeof k, "%s.rope.scaling.original_context_length", sh->arch);
    if ((rc = eng_gguf_writer_set_u32(w, k, (uint32_t)sh->ctx)))
        return rc;
    snprintf(k, sizeof k, "%s.rope.scaling.attn_factor", sh->arch);
    if ((rc = eng_gguf_writer_set_f32(w, k, (float)sqrt(1.0 + log(32.0) / log((double)sh->ctx)))))
        return rc;
    if ((rc = eng_gguf_writer_add_tensor(w, "rope_factors_long.weight", ENG_TYPE_F32, 1, ne, l_f,
                                         (size_t)half * sizeof(float))) ||
        (rc = eng_gguf_writer_add_tensor(w, "rope_factors_short.weight", ENG_TYPE_F32, 1, ne, s_f,
                                         (size_t)half * sizeof(float))))
        return rb_errf(err, errlen, rc, "cannot add the rope factors");
    return RB_OK;
}

/* The architecture's keys, "<arch>.<key>", for a shape. */
static rb_err write_hparams(eng_gguf_writer *w, const shape *sh, int n_vocab)
{
    const char *a = sh->arch;
    char k[96];
    rb_err rc;

#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a, suffix), k)
    if ((rc = eng_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)sh->ctx)) ||
        (rc = eng_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)sh->dim)) ||
        (rc = eng_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)sh->layers)) ||
        (rc = eng_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)sh->ff)) ||
        (rc = eng_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)sh->heads)) ||
        (rc = eng_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)sh->kv_heads)) ||
        (rc = eng_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)sh->head_dim)) ||
        (rc = eng_gguf_writer_set_f32(w, KEY("rope.freq_base"), sh->rope_base)) ||
        (rc = eng_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), sh->eps)) ||
        (rc = eng_gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)n_vocab)))
        return rc;
    if (sh->head_dim != sh->dim / sh->heads &&
        ((rc = eng_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)sh->head_dim)) ||
         (rc = eng_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)sh->head_dim))))
        return rc;
    if (sh->rope_base_swa > 0 &&
        (rc = eng_gguf_writer_set_f32(w, KEY("rope.freq_base_swa"), sh->rope_base_swa)))
        return rc;
    if (sh->swa &&
        (rc = eng_gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)sh->swa)))
        return rc;
    if (sh->linear > 0 &&
        ((rc = eng_gguf_writer_set_str(w, KEY("rope.scaling.type"), "linear")) ||
         (rc = eng_gguf_writer_set_f32(w, KEY("rope.scaling.factor"), sh->linear))))
        return rc;
    if (sh->attn_cap > 0 &&
        ((rc = eng_gguf_writer_set_f32(w, KEY("attn_logit_softcapping"), sh->attn_cap)) ||
         (rc = eng_gguf_writer_set_f32(w, KEY("final_logit_softcapping"), sh->final_cap))))
        return rc;
#undef KEY
    return RB_OK;
}

/* The tensors of one layer, in llama.cpp's names, for the shape's architecture. */
static rb_err add_layer(eng_gguf_writer *w, eng_pool *pool, const ftype_def *ft, const shape *sh,
                        const eng_arch *arch, int l, uint64_t *tseed, char *err, size_t errlen)
{
    const int d = sh->dim, q = sh->heads * sh->head_dim, kv = sh->kv_heads * sh->head_dim;
    const unsigned f = arch->flags;
    const int fused_qkv = (f & ENG_ARCH_FUSED_QKV) != 0, fused_up = (f & ENG_ARCH_FUSED_UP) != 0;
    const int bias = (f & ENG_ARCH_QKV_BIAS) != 0, qk_norm = (f & ENG_ARCH_QK_NORM) != 0;
    const int post = (f & ENG_ARCH_POST_NORMS) != 0;
    const struct {
        const char *suffix;
        int rows, cols, kind, on;
    } t[] = {
        {"attn_norm.weight", 1, d, T_NORM, 1},
        {"attn_qkv.weight", q + 2 * kv, d, T_MAT, fused_qkv},
        {"attn_q.weight", q, d, T_MAT, !fused_qkv},
        {"attn_k.weight", kv, d, T_MAT, !fused_qkv},
        {"attn_v.weight", kv, d, T_MAT, !fused_qkv},
        {"attn_q.bias", 1, q, T_BIAS, bias},
        {"attn_k.bias", 1, kv, T_BIAS, bias},
        {"attn_v.bias", 1, kv, T_BIAS, bias},
        {"attn_q_norm.weight", 1, sh->head_dim, T_NORM, qk_norm},
        {"attn_k_norm.weight", 1, sh->head_dim, T_NORM, qk_norm},
        {"attn_output.weight", d, q, T_MAT, 1},
        {"post_attention_norm.weight", 1, d, T_NORM, post},
        {"ffn_norm.weight", 1, d, T_NORM, 1},
        {"ffn_gate.weight", sh->ff, d, T_MAT, !fused_up},
        {"ffn_up.weight", fused_up ? 2 * sh->ff : sh->ff, d, T_MAT, 1},
        {"ffn_down.weight", d, sh->ff, T_MAT, 1},
        {"post_ffw_norm.weight", 1, d, T_NORM, post},
    };
    char name[96];
    rb_err rc;

    for (size_t p = 0; p < sizeof t / sizeof t[0]; p++) {
        if (!t[p].on)
            continue;
        snprintf(name, sizeof name, "blk.%d.%s", l, t[p].suffix);
        *tseed = mix(*tseed + 1);
        if ((rc = add_random(w, pool, ft, sh, name, t[p].rows, t[p].cols, t[p].kind, *tseed, err,
                             errlen)))
            return rc;
    }
    return RB_OK;
}

rb_err eng_random_model(const char *out, const char *like, const char *ftype,
                        const char *vocab_path, uint64_t seed, int n_threads, char *err,
                        size_t errlen)
{
    const ftype_def *ft = find_ftype(ftype);
    const shape *sh = NULL;
    const eng_arch *arch;
    eng_gguf_writer *w = NULL;
    eng_pool *pool = NULL;
    int n_vocab;
    char gerr[256], name[128];
    rb_err rc;

    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(shapes[i].name, like) == 0)
            sh = &shapes[i];
    if (!sh)
        return rb_errf(err, errlen, RB_EINVAL, "unknown shape '%s' (known: " SHAPE_LIST ")", like);
    if (!ft)
        return rb_errf(err, errlen, RB_EINVAL, "unknown type '%s'", ftype);
    arch = eng_arch_find(sh->arch);
    n_vocab = sh->vocab;
    w = eng_gguf_writer_new();
    pool = eng_pool_new(n_threads > 0 ? n_threads : 1);
    if (!w || !pool || !arch) {
        rc = RB_ENOMEM;
        goto out;
    }
    if (vocab_path)
        rc = copy_vocab(w, vocab_path, &n_vocab, err, errlen);
    else
        rc = synth_vocab(w, n_vocab);
    if (rc)
        goto out;
    snprintf(name, sizeof name, "random %s %s", sh->name, ft->name);
    if ((rc = eng_gguf_writer_set_str(w, "general.architecture", sh->arch)) ||
        (rc = eng_gguf_writer_set_str(w, "general.name", name)) ||
        (rc = eng_gguf_writer_set_u32(w, "general.file_type", ft->file_type)) ||
        (rc = write_hparams(w, sh, n_vocab)))
        goto out;

    {
        uint64_t tseed = seed;

        if ((rc = add_random(w, pool, ft, sh, "token_embd.weight", n_vocab, sh->dim, T_MAT,
                             mix(++tseed), err, errlen)))
            goto out;
        if (sh->llama3_factor > 0) {
            float fr[512];
            const int64_t ne[1] = {sh->head_dim / 2};
            llama3_freqs(sh, fr);
            if ((rc = eng_gguf_writer_add_tensor(w, "rope_freqs.weight", ENG_TYPE_F32, 1, ne, fr,
                                                 (size_t)ne[0] * sizeof(float)))) {
                rb_errf(err, errlen, rc, "cannot add tensor 'rope_freqs.weight'");
                goto out;
            }
        }
        if (sh->longrope && (rc = add_longrope(w, sh, err, errlen)))
            goto out;
        for (int l = 0; l < sh->layers; l++) {
            tseed = mix(tseed + 1);
            if ((rc = add_layer(w, pool, ft, sh, arch, l, &tseed, err, errlen)))
                goto out;
        }
        if ((rc = add_random(w, pool, ft, sh, "output_norm.weight", 1, sh->dim, T_NORM,
                             mix(++tseed), err, errlen)) ||
            (!sh->tied && (rc = add_random(w, pool, ft, sh, "output.weight", n_vocab, sh->dim,
                                           T_MAT, mix(++tseed), err, errlen))))
            goto out;
    }
    if ((rc = eng_gguf_writer_write(w, out, gerr, sizeof gerr)))
        rb_errf(err, errlen, rc, "cannot write '%s': %s", out, gerr);
out:
    eng_pool_free(pool);
    eng_gguf_writer_free(w);
    return rc;
}
