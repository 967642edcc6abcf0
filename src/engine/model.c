/*
 * model.c - opens a GGUF llama model: reads the hyperparameters, checks every tensor's type
 * and shape against them, and builds weight views into the mapping.
 *
 * Nothing is copied but the 1-D norm weights (converted to F32), unless the caller asks for
 * copy_weights: then each weight is read (pread, so the mapping's pages stay out of the
 * process) into one anonymous region advised for transparent huge pages, at its offset in
 * the data section. Loading reports progress per layer; with prefault on, each layer's pages
 * are touched as it is checked so the progress reflects real I/O on a cold file.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model.h"

#define HUGE_PAGE ((size_t)2 << 20)

/* The supported architectures, as llama.cpp names them in general.architecture. RoPE style
 * per llama.cpp's llama_model_rope_type: llama rotates interleaved pairs, the others NEOX
 * halves. Gemma's norm weights need no offset: llama.cpp's converter stores 1 + w. */
static const eng_arch archs[] = {
    {"llama", ENG_ARCH_ROPE_FREQS, 0},
    {"qwen2", ENG_ARCH_QKV_BIAS | ENG_ARCH_ROPE_NEOX, 0},
    {"qwen3", ENG_ARCH_QK_NORM | ENG_ARCH_ROPE_NEOX, 0},
    {"phi3",
     ENG_ARCH_FUSED_QKV | ENG_ARCH_FUSED_UP | ENG_ARCH_ROPE_NEOX | ENG_ARCH_ROPE_LONGSHORT |
         ENG_ARCH_SWA_IGNORED,
     0},
    {"gemma2",
     ENG_ARCH_POST_NORMS | ENG_ARCH_EMBD_SCALE | ENG_ARCH_ROPE_NEOX | ENG_ARCH_GELU |
         ENG_ARCH_SOFTCAP,
     2, 46},
    {"gemma3",
     ENG_ARCH_QK_NORM | ENG_ARCH_POST_NORMS | ENG_ARCH_EMBD_SCALE | ENG_ARCH_ROPE_NEOX |
         ENG_ARCH_GELU | ENG_ARCH_SWA_BASE,
     6, 62},
};

#define ARCH_LIST "llama, qwen2, qwen3, phi3, gemma2, gemma3"

const eng_arch *eng_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, name) == 0)
            return &archs[i];
    return NULL;
}

const char *eng_supported_archs(void)
{
    return ARCH_LIST;
}

eng_model_params eng_model_params_default(void)
{
    eng_model_params p = {0};
    p.prefault = 1;
    return p;
}

/* Reads "<arch>.<suffix>" as u32 into *out; required unless def >= 0. */
static rb_err hp_u32(const eng_gguf *g, const char *arch, const char *suffix, int64_t def, int *out,
                     char *err, size_t errlen)
{
    char key[128];
    uint32_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (eng_gguf_find_key(g, key) < 0) {
        if (def < 0)
            return rb_errf(err, errlen, RB_EFORMAT, "missing key '%s'", key);
        *out = (int)def;
        return RB_OK;
    }
    if (eng_gguf_find_u32(g, key, 0, &v) || v == 0 || v > (1u << 30))
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' has an invalid value", key);
    *out = (int)v;
    return RB_OK;
}

static rb_err hp_f32(const eng_gguf *g, const char *arch, const char *suffix, float def, float *out,
                     char *err, size_t errlen)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (eng_gguf_find_f32(g, key, def, out) || !(*out > 0))
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' has an invalid value", key);
    return RB_OK;
}

/* 1 if "<arch>.<suffix>" is present. */
static int has_key(const eng_gguf *g, const char *arch, const char *suffix)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return eng_gguf_find_key(g, key) >= 0;
}

/* rope.scaling.type: none and linear are understood; anything else is refused rather than
 * run with the wrong positions. */
static rb_err read_rope_scaling(eng_model *m, const char *arch, char *err, size_t errlen)
{
    char key[128], type[32];
    eng_hparams *hp = &m->hp;
    rb_err rc;

    hp->rope_scale = 1.0f;
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (eng_gguf_find_key(m->gguf, key) < 0)
        return RB_OK;
    if (eng_gguf_find_str(m->gguf, key, type, sizeof type))
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' has an invalid value", key);
    if (strcmp(type, "none") == 0)
        return RB_OK;
    if (strcmp(type, "linear") == 0)
        return hp_f32(m->gguf, arch, "rope.scaling.factor", 1.0f, &hp->rope_scale, err, errlen);
    if (strcmp(type, "longrope") == 0 && (m->arch->flags & ENG_ARCH_ROPE_LONGSHORT))
        return RB_OK; /* the factors are tensors (bind_rope) */
    rc = rb_errf(err, errlen, RB_EUNSUPPORTED, "%s is '%s'; supported rope scaling: none, linear%s",
                 key, type, m->arch->flags & ENG_ARCH_ROPE_LONGSHORT ? ", longrope" : "");
    return rc;
}

static rb_err read_arch_hparams(eng_model *m, const char *arch, char *err, size_t errlen)
{
    const eng_gguf *g = m->gguf;
    const eng_arch *a = m->arch;
    eng_hparams *hp = &m->hp;
    rb_err rc;

    /* Gemma 2 27B (46 layers) and Gemma 3 27B (62) scale queries by 1/sqrt(n_embd / n_head),
     * 1/sqrt(144) and 1/sqrt(168), not by their key_length 128 */
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    if (a->scale_by_embd_layers && hp->n_layer == a->scale_by_embd_layers)
        hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    hp->rope_base_swa = hp->rope_base;
    if ((a->flags & ENG_ARCH_SWA_BASE) &&
        (rc = hp_f32(g, arch, "rope.freq_base_swa", 10000.0f, &hp->rope_base_swa, err, errlen)))
        return rc;
    if (a->swa_pattern &&
        (rc = hp_u32(g, arch, "attention.sliding_window", -1, &hp->n_swa, err, errlen)))
        return rc;
    if (a->flags & ENG_ARCH_SOFTCAP) {
        if ((rc = hp_f32(g, arch, "attn_logit_softcapping", 50.0f, &hp->attn_softcap, err,
                         errlen)) ||
            (rc = hp_f32(g, arch, "final_logit_softcapping", 30.0f, &hp->final_softcap, err,
                         errlen)))
            return rc;
    } else if (has_key(g, arch, "attn_logit_softcapping") ||
               has_key(g, arch, "final_logit_softcapping")) {
        return rb_errf(err, errlen, RB_EUNSUPPORTED,
                       "soft-capping keys are not supported for architecture '%s'", arch);
    }
    if (!a->swa_pattern && !(a->flags & ENG_ARCH_SWA_IGNORED) &&
        has_key(g, arch, "attention.sliding_window"))
        return rb_errf(err, errlen, RB_EUNSUPPORTED,
                       "attention.sliding_window is not supported for architecture '%s'", arch);
    return read_rope_scaling(m, arch, err, errlen);
}

static rb_err read_hparams(eng_model *m, const char *arch, char *err, size_t errlen)
{
    const eng_gguf *g = m->gguf;
    eng_hparams *hp = &m->hp;
    int key_len, val_len;
    rb_err rc;

    if ((rc = hp_u32(g, arch, "embedding_length", -1, &hp->n_embd, err, errlen)) ||
        (rc = hp_u32(g, arch, "block_count", -1, &hp->n_layer, err, errlen)) ||
        (rc = hp_u32(g, arch, "feed_forward_length", -1, &hp->n_ff, err, errlen)) ||
        (rc = hp_u32(g, arch, "attention.head_count", -1, &hp->n_head, err, errlen)) ||
        (rc =
             hp_u32(g, arch, "attention.head_count_kv", hp->n_head, &hp->n_head_kv, err, errlen)) ||
        (rc = hp_u32(g, arch, "context_length", 2048, &hp->n_ctx_train, err, errlen)) ||
        (rc = hp_f32(g, arch, "rope.freq_base", 10000.0f, &hp->rope_base, err, errlen)) ||
        (rc =
             hp_f32(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err, errlen)))
        return rc;
    if (hp->n_head % hp->n_head_kv)
        return rb_errf(err, errlen, RB_EFORMAT,
                       "head_count %d is not a multiple of head_count_kv %d", hp->n_head,
                       hp->n_head_kv);
    if ((rc = hp_u32(g, arch, "attention.key_length",
                     hp->n_embd % hp->n_head ? -1 : hp->n_embd / hp->n_head, &key_len, err,
                     errlen)) ||
        (rc = hp_u32(g, arch, "attention.value_length", key_len, &val_len, err, errlen)))
        return rc;
    if (key_len != val_len)
        return rb_errf(err, errlen, RB_EUNSUPPORTED,
                       "attention.key_length %d differs from attention.value_length %d", key_len,
                       val_len);
    if (key_len > 1024 || hp->n_head > 1024)
        return rb_errf(err, errlen, RB_EFORMAT, "attention.key_length %d is implausible", key_len);
    hp->head_dim = key_len;
    hp->q_dim = hp->head_dim * hp->n_head;
    hp->kv_dim = hp->head_dim * hp->n_head_kv;
    if ((rc = hp_u32(g, arch, "rope.dimension_count", hp->head_dim, &hp->n_rot, err, errlen)))
        return rc;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return rb_errf(err, errlen, RB_EFORMAT, "rope.dimension_count %d does not fit head size %d",
                       hp->n_rot, hp->head_dim);
    if (hp->n_layer > 1024)
        return rb_errf(err, errlen, RB_EFORMAT, "block_count %d is implausible", hp->n_layer);
    return read_arch_hparams(m, arch, err, errlen);
}

/* The tensor, marked as used (the loader refuses files with tensors nothing reads). */
static const eng_gguf_tensor *find(const eng_model *m, const char *name)
{
    int64_t i = eng_gguf_find_tensor(m->gguf, name);
    if (i < 0)
        return NULL;
    if (m->used)
        m->used[i] = 1;
    return eng_gguf_tensor_at(m->gguf, i);
}

/* 1 if the file has the tensor (without marking it). */
static int has_tensor(const eng_model *m, const char *name)
{
    return eng_gguf_find_tensor(m->gguf, name) >= 0;
}

/* A weight of rows [r0, r0 + rows) of w: fused tensors are views of their parts. */
static eng_weight weight_rows(const eng_weight *w, int64_t r0, int64_t rows)
{
    eng_weight v = *w;
    v.data = w->data + (size_t)r0 * w->row_bytes;
    v.rows = rows;
    return v;
}

/* Binds a 2-D weight and checks its shape is (rows, cols). */
static rb_err bind_weight(eng_model *m, const char *name, int64_t rows, int64_t cols, eng_weight *w,
                          char *err, size_t errlen)
{
    const eng_gguf_tensor *t = find(m, name);

    if (!t)
        return rb_errf(err, errlen, RB_EFORMAT, "missing tensor '%s'", name);
    if (t->ndim != 2 || t->ne[0] != cols || t->ne[1] != rows)
        return rb_errf(err, errlen, RB_EFORMAT,
                       "tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)cols, (long long)rows);
    if (!eng_type_supported(t->type) || cols % eng_type_block_elems(t->type))
        return rb_errf(err, errlen, RB_EFORMAT,
                       "tensor '%s' has unsupported type %s for %lld columns", name,
                       eng_type_name(t->type), (long long)cols);
    w->type = t->type;
    w->data = t->data;
    if (m->wcopy) {
        uint8_t *dst = m->wcopy + t->offset;
        off_t at = (off_t)(eng_gguf_data_offset(m->gguf) + t->offset);
        for (uint64_t done = 0; done < t->size;) {
            ssize_t k = pread(m->fd, dst + done, (size_t)(t->size - done), at + (off_t)done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return rb_errf(err, errlen, RB_EIO, "cannot read tensor '%s': %s", name,
                               k < 0 ? strerror(errno) : "unexpected end of file");
            done += (uint64_t)k;
        }
        w->data = dst;
    }
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = eng_type_row_bytes(t->type, cols);
    return RB_OK;
}

/* Copies a 1-D norm weight of n entries into a new F32 array. */
static rb_err bind_norm(eng_model *m, const char *name, int64_t n, float **out, char *err,
                        size_t errlen)
{
    const eng_gguf_tensor *t = find(m, name);
    float *v;

    if (!t)
        return rb_errf(err, errlen, RB_EFORMAT, "missing tensor '%s'", name);
    if (t->ndim != 1 || t->ne[0] != n)
        return rb_errf(err, errlen, RB_EFORMAT, "tensor '%s' has %lld entries, expected %lld", name,
                       (long long)t->ne[0], (long long)n);
    if (t->type != ENG_TYPE_F32 && t->type != ENG_TYPE_F16 && t->type != ENG_TYPE_BF16)
        return rb_errf(err, errlen, RB_EFORMAT, "tensor '%s' has type %s; norms must be float",
                       name, eng_type_name(t->type));
    v = malloc((size_t)n * sizeof(float));
    if (!v)
        return RB_ENOMEM;
    eng_dequantize_row(t->type, t->data, v, n);
    *out = v;
    return RB_OK;
}

/* Reads every byte of the weight so the pages are resident before serving. */
static void touch(const eng_weight *w)
{
    volatile uint8_t sink = 0;
    size_t bytes = (size_t)w->rows * w->row_bytes;
    for (size_t i = 0; i < bytes; i += 4096)
        sink ^= w->data[i];
    (void)sink;
}

static rb_err bind_layer(eng_model *m, int l, int prefault, char *err, size_t errlen)
{
    const eng_hparams *hp = &m->hp;
    const unsigned f = m->arch->flags;
    eng_layer *L = &m->layers[l];
    char name[96];
    rb_err rc;

#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
    if ((rc = bind_norm(m, NAME("attn_norm.weight"), hp->n_embd, &L->attn_norm, err, errlen)))
        return rc;
    if (f & ENG_ARCH_FUSED_QKV) {
        eng_weight qkv;
        if ((rc = bind_weight(m, NAME("attn_qkv.weight"), hp->q_dim + 2 * hp->kv_dim, hp->n_embd,
                              &qkv, err, errlen)))
            return rc;
        L->wq = weight_rows(&qkv, 0, hp->q_dim);
        L->wk = weight_rows(&qkv, hp->q_dim, hp->kv_dim);
        L->wv = weight_rows(&qkv, hp->q_dim + hp->kv_dim, hp->kv_dim);
    } else if ((rc = bind_weight(m, NAME("attn_q.weight"), hp->q_dim, hp->n_embd, &L->wq, err,
                                 errlen)) ||
               (rc = bind_weight(m, NAME("attn_k.weight"), hp->kv_dim, hp->n_embd, &L->wk, err,
                                 errlen)) ||
               (rc = bind_weight(m, NAME("attn_v.weight"), hp->kv_dim, hp->n_embd, &L->wv, err,
                                 errlen))) {
        return rc;
    }
    if ((f & ENG_ARCH_QKV_BIAS) &&
        ((rc = bind_norm(m, NAME("attn_q.bias"), hp->q_dim, &L->bq, err, errlen)) ||
         (rc = bind_norm(m, NAME("attn_k.bias"), hp->kv_dim, &L->bk, err, errlen)) ||
         (rc = bind_norm(m, NAME("attn_v.bias"), hp->kv_dim, &L->bv, err, errlen))))
        return rc;
    if ((f & ENG_ARCH_QK_NORM) &&
        ((rc = bind_norm(m, NAME("attn_q_norm.weight"), hp->head_dim, &L->q_norm, err, errlen)) ||
         (rc = bind_norm(m, NAME("attn_k_norm.weight"), hp->head_dim, &L->k_norm, err, errlen))))
        return rc;
    if ((rc = bind_weight(m, NAME("attn_output.weight"), hp->n_embd, hp->q_dim, &L->wo, err,
                          errlen)) ||
        (rc = bind_norm(m, NAME("ffn_norm.weight"), hp->n_embd, &L->ffn_norm, err, errlen)))
        return rc;
    if ((f & ENG_ARCH_POST_NORMS) &&
        ((rc = bind_norm(m, NAME("post_attention_norm.weight"), hp->n_embd, &L->post_attn_norm, err,
                         errlen)) ||
         (rc = bind_norm(m, NAME("post_ffw_norm.weight"), hp->n_embd, &L->post_ffw_norm, err,
                         errlen))))
        return rc;
    if (f & ENG_ARCH_FUSED_UP) {
        eng_weight up;
        if ((rc = bind_weight(m, NAME("ffn_up.weight"), 2 * (int64_t)hp->n_ff, hp->n_embd, &up, err,
                              errlen)))
            return rc;
        L->w_gate = weight_rows(&up, 0, hp->n_ff);
        L->w_up = weight_rows(&up, hp->n_ff, hp->n_ff);
    } else if ((rc = bind_weight(m, NAME("ffn_gate.weight"), hp->n_ff, hp->n_embd, &L->w_gate, err,
                                 errlen)) ||
               (rc = bind_weight(m, NAME("ffn_up.weight"), hp->n_ff, hp->n_embd, &L->w_up, err,
                                 errlen))) {
        return rc;
    }
    if ((rc = bind_weight(m, NAME("ffn_down.weight"), hp->n_embd, hp->n_ff, &L->w_down, err,
                          errlen)))
        return rc;
    /* llama.cpp's converters repeat the rope factors per layer in some files: the same
     * values as the model-wide tensor, which bind_rope read */
    if (has_tensor(m, NAME("rope_freqs.weight")))
        find(m, name);
#undef NAME
    L->swa = m->arch->swa_pattern && l % m->arch->swa_pattern < m->arch->swa_pattern - 1;
    if (prefault) {
        const eng_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            touch(ws[i]);
    }
    return RB_OK;
}

/* The rope frequency divisors: rope_freqs.weight (llama 3.1), or phi3's rope_factors_short
 * and rope_factors_long with the attention factor longrope applies to cos and sin. */
static rb_err bind_rope(eng_model *m, const char *arch, char *err, size_t errlen)
{
    const eng_hparams *hp = &m->hp;
    const unsigned f = m->arch->flags;
    const int half = hp->n_rot / 2;
    rb_err rc;

    m->rope_attn = 1.0f;
    if (has_tensor(m, "rope_freqs.weight")) {
        if (!(f & ENG_ARCH_ROPE_FREQS))
            return rb_errf(err, errlen, RB_EUNSUPPORTED,
                           "tensor 'rope_freqs.weight' is not supported for architecture '%s'",
                           arch);
        return bind_norm(m, "rope_freqs.weight", half, &m->rope_freqs, err, errlen);
    }
    if (!has_tensor(m, "rope_factors_short.weight") && !has_tensor(m, "rope_factors_long.weight"))
        return RB_OK;
    if (!(f & ENG_ARCH_ROPE_LONGSHORT))
        return rb_errf(err, errlen, RB_EUNSUPPORTED,
                       "rope_factors tensors are not supported for architecture '%s'", arch);
    if ((rc = bind_norm(m, "rope_factors_short.weight", half, &m->rope_freqs, err, errlen)) ||
        (rc = bind_norm(m, "rope_factors_long.weight", half, &m->rope_long, err, errlen)) ||
        (rc = hp_u32(m->gguf, arch, "rope.scaling.original_context_length", -1, &m->n_ctx_orig, err,
                     errlen)) ||
        (rc = hp_f32(m->gguf, arch, "rope.scaling.attn_factor", 1.0f, &m->rope_attn, err, errlen)))
        return rc;
    return RB_OK;
}

/* Refuses a file with a tensor nothing bound: it would be computed without. */
static rb_err check_all_used(const eng_model *m, const char *arch, char *err, size_t errlen)
{
    for (int64_t i = 0; i < eng_gguf_n_tensors(m->gguf); i++)
        if (!m->used[i])
            return rb_errf(err, errlen, RB_EUNSUPPORTED,
                           "tensor '%s' is not understood for architecture '%s'",
                           eng_gguf_tensor_at(m->gguf, i)->name, arch);
    return RB_OK;
}

/* Maps the region copy_weights reads the data section into and opens the file for pread. */
static rb_err copy_open(eng_model *m, const char *path, char *err, size_t errlen)
{
    uint64_t data = eng_gguf_data_offset(m->gguf), size = eng_gguf_file_size(m->gguf);
    size_t len = (size_t)(size > data ? size - data : 1);
    void *p;

    len = (len + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return rb_errf(err, errlen, RB_ENOMEM, "cannot allocate %zu bytes for the weights", len);
    madvise(p, len, MADV_HUGEPAGE); /* advice only: without huge pages it still works */
    m->wcopy = p;
    m->wcopy_len = len;
    m->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (m->fd < 0)
        return rb_errf(err, errlen, RB_EIO, "cannot open: %s", strerror(errno));
    if (!eng_gguf_same_file(m->gguf, m->fd))
        return rb_errf(err, errlen, RB_EIO, "the file was replaced while loading");
    return RB_OK;
}

/* Ends the copy: closes the file and drops the mapping's pages of the data section from
 * the process. Reading the norms faulted some in, and the page cache's large folios map up
 * to 2 MiB around each one; nothing reads the data section through the mapping afterwards. */
static void copy_close(eng_model *m)
{
    const eng_gguf_tensor *t;

    if (m->fd < 0)
        return;
    t = eng_gguf_n_tensors(m->gguf) ? eng_gguf_tensor_at(m->gguf, 0) : NULL;
    close(m->fd);
    m->fd = -1;
    if (t) {
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = (uintptr_t)t->data - t->offset;
        uintptr_t hi = lo + (eng_gguf_file_size(m->gguf) - eng_gguf_data_offset(m->gguf));
        lo = (lo + page - 1) & ~(page - 1);
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
}

static void fill_info(eng_model *m, const char *arch)
{
    eng_model_info *in = &m->info;
    const eng_hparams *hp = &m->hp;
    uint64_t n = 0;

    snprintf(in->arch, sizeof in->arch, "%s", arch);
    if (eng_gguf_find_str(m->gguf, "general.name", in->name, sizeof in->name))
        snprintf(in->name, sizeof in->name, "%s", "unnamed");
    in->n_vocab = hp->n_vocab;
    in->n_ctx_train = hp->n_ctx_train;
    in->n_embd = hp->n_embd;
    in->n_layer = hp->n_layer;
    in->n_head = hp->n_head;
    in->n_head_kv = hp->n_head_kv;
    in->n_ff = hp->n_ff;
    in->n_rot = hp->n_rot;
    in->rope_freq_base = hp->rope_base;
    in->rms_eps = hp->rms_eps;
    in->tied_output = m->tied_output;
    in->main_type = m->layers[0].w_up.type; /* the feed-forward dominates the size */
    for (int64_t i = 0; i < eng_gguf_n_tensors(m->gguf); i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(m->gguf, i);
        uint64_t e = 1;
        for (uint32_t d = 0; d < t->ndim; d++)
            e *= (uint64_t)t->ne[d];
        n += e;
    }
    in->n_params = n;
    in->file_size = eng_gguf_file_size(m->gguf);
    in->bos = eng_tokenizer_bos(m->tok);
    in->eos = eng_tokenizer_eos(m->tok);
    in->add_bos = eng_tokenizer_add_bos(m->tok);
}

/* Validates and binds the model whose GGUF is open in m->gguf; name names it in errors, path is
 * the file copy_weights reads (NULL for a model in memory). Frees m on failure. */
static rb_err model_load(eng_model *m, const char *path, const char *name,
                         const eng_model_params *p, eng_model **out, char *err, size_t errlen)
{
    char arch[32], gerr[256];
    rb_err rc;

    if (eng_gguf_find_str(m->gguf, "general.architecture", arch, sizeof arch)) {
        rc = rb_errf(err, errlen, RB_EFORMAT, "model '%s' has no general.architecture", name);
        goto out;
    }
    if (!(m->arch = eng_arch_find(arch))) {
        rc = rb_errf(err, errlen, RB_EUNSUPPORTED,
                     "model '%s' has architecture '%s'; supported: " ARCH_LIST, name, arch);
        goto out;
    }
    m->used = calloc((size_t)eng_gguf_n_tensors(m->gguf) + 1, 1);
    if (!m->used) {
        rc = RB_ENOMEM;
        goto out;
    }
    if ((rc = read_hparams(m, arch, gerr, sizeof gerr))) {
        rb_errf(err, errlen, rc, "model '%s': %s", name, gerr);
        goto out;
    }
    if ((rc = eng_tokenizer_load(m->gguf, &m->tok, gerr, sizeof gerr))) {
        rb_errf(err, errlen, rc, "model '%s': tokenizer: %s", name, gerr);
        goto out;
    }
    m->hp.n_vocab = eng_tokenizer_n_vocab(m->tok);
    if (p->copy_weights && path && (rc = copy_open(m, path, gerr, sizeof gerr)))
        goto bad;

    {
        const eng_hparams *hp = &m->hp;
        if ((rc = bind_weight(m, "token_embd.weight", hp->n_vocab, hp->n_embd, &m->tok_embd, gerr,
                              sizeof gerr)) ||
            (rc =
                 bind_norm(m, "output_norm.weight", hp->n_embd, &m->out_norm, gerr, sizeof gerr)) ||
            (rc = bind_rope(m, arch, gerr, sizeof gerr)))
            goto bad;
        if (find(m, "output.weight")) {
            if ((rc = bind_weight(m, "output.weight", hp->n_vocab, hp->n_embd, &m->output, gerr,
                                  sizeof gerr)))
                goto bad;
        } else {
            m->output = m->tok_embd;
            m->tied_output = 1;
        }
        m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
        if (!m->layers) {
            rc = RB_ENOMEM;
            goto out;
        }
        if (p->progress)
            p->progress(p->progress_user, 0, hp->n_layer);
        for (int l = 0; l < hp->n_layer; l++) {
            if ((rc = bind_layer(m, l, p->prefault, gerr, sizeof gerr)))
                goto bad;
            if (p->progress)
                p->progress(p->progress_user, l + 1, hp->n_layer);
        }
        if ((rc = check_all_used(m, arch, gerr, sizeof gerr)))
            goto bad;
    }
    fill_info(m, arch);
    copy_close(m);
    goto out;
bad:
    rb_errf(err, errlen, rc, "model '%s': %s", name, gerr);
out:
    if (rc) {
        eng_model_free(m);
        return rc;
    }
    *out = m;
    return RB_OK;
}

rb_err eng_model_open(const char *path, const eng_model_params *p, eng_model **out, char *err,
                      size_t errlen)
{
    eng_model_params def = eng_model_params_default();
    eng_model *m = calloc(1, sizeof(*m));
    char gerr[256];
    rb_err rc;

    *out = NULL;
    if (!m)
        return RB_ENOMEM;
    m->fd = -1;
    if ((rc = eng_gguf_open(path, &m->gguf, gerr, sizeof gerr))) {
        rb_errf(err, errlen, rc, "cannot open model '%s': %s", path, gerr);
        eng_model_free(m);
        return rc;
    }
    return model_load(m, path, path, p ? p : &def, out, err, errlen);
}

rb_err eng_model_open_mem(const void *data, size_t size, const char *name,
                          const eng_model_params *p, eng_model **out, char *err, size_t errlen)
{
    eng_model_params def = eng_model_params_default();
    eng_model *m = calloc(1, sizeof(*m));
    char gerr[256];
    rb_err rc;

    *out = NULL;
    if (!name)
        name = "(memory)";
    if (!m)
        return RB_ENOMEM;
    m->fd = -1;
    if ((rc = eng_gguf_open_mem(data, size, &m->gguf, gerr, sizeof gerr))) {
        rb_errf(err, errlen, rc, "cannot open model '%s': %s", name, gerr);
        eng_model_free(m);
        return rc;
    }
    return model_load(m, NULL, name, p ? p : &def, out, err, errlen);
}

void eng_model_free(eng_model *m)
{
    if (!m)
        return;
    for (int l = 0; m->layers && l < m->hp.n_layer; l++) {
        eng_layer *L = &m->layers[l];
        free(L->attn_norm);
        free(L->ffn_norm);
        free(L->bq);
        free(L->bk);
        free(L->bv);
        free(L->q_norm);
        free(L->k_norm);
        free(L->post_attn_norm);
        free(L->post_ffw_norm);
    }
    free(m->rope_freqs);
    free(m->rope_long);
    free(m->used);
    free(m->layers);
    free(m->out_norm);
    eng_tokenizer_free(m->tok);
    copy_close(m); /* reads the tensor table and the mapping: before they go */
    eng_gguf_close(m->gguf);
    if (m->wcopy)
        munmap(m->wcopy, m->wcopy_len);
    free(m);
}

void eng_model_get_info(const eng_model *m, eng_model_info *out)
{
    *out = m->info;
}
