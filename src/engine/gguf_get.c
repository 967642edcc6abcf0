/*
 * gguf_get.c - read access to an opened GGUF file: keys, typed values, arrays, tensors.
 *
 * Everything here was validated by gguf.c at open time, so accessors only check their own
 * arguments (index in range, type as asked). Values are read with memcpy because the
 * mapping keeps the file's packing and gives no alignment.
 */
#include <string.h>
#include <sys/stat.h>

#include "gguf_internal.h"

uint32_t eng_gguf_version(const eng_gguf *g)
{
    return g->version;
}

int eng_gguf_same_file(const eng_gguf *g, int fd)
{
    struct stat st;
    return g->map && fstat(fd, &st) == 0 && (uint64_t)st.st_dev == g->dev &&
           (uint64_t)st.st_ino == g->ino && (uint64_t)st.st_size == g->size;
}

uint64_t eng_gguf_file_size(const eng_gguf *g)
{
    return g->size;
}

uint32_t eng_gguf_alignment(const eng_gguf *g)
{
    return g->alignment;
}

uint64_t eng_gguf_data_offset(const eng_gguf *g)
{
    return g->data_start;
}

int64_t eng_gguf_n_keys(const eng_gguf *g)
{
    return g->n_kv;
}

int64_t eng_gguf_find_key(const eng_gguf *g, const char *key)
{
    return eng_strmap_get(&g->keys, key, strlen(key));
}

static const gguf_kv *kv_at(const eng_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

eng_gguf_str eng_gguf_key_name(const eng_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    eng_gguf_str none = {"", 0};
    return kv ? kv->key : none;
}

eng_gguf_vtype eng_gguf_key_type(const eng_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : ENG_GGUF_VTYPE_COUNT;
}

rb_err eng_gguf_key_raw(const eng_gguf *g, int64_t i, const void **data, uint64_t *len)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv)
        return RB_EINVAL;
    *data = kv->val;
    *len = kv->val_len;
    return RB_OK;
}

int64_t eng_gguf_n_tensors(const eng_gguf *g)
{
    return g->n_tensors;
}

int64_t eng_gguf_find_tensor(const eng_gguf *g, const char *name)
{
    return eng_strmap_get(&g->names, name, strlen(name));
}

const eng_gguf_tensor *eng_gguf_tensor_at(const eng_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

rb_err eng_gguf_get_arr(const eng_gguf *g, int64_t i, eng_gguf_vtype *etype, uint64_t *n)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != ENG_GGUF_ARRAY)
        return RB_EINVAL;
    *etype = kv->etype;
    *n = kv->n;
    return RB_OK;
}

rb_err eng_gguf_arr_str(const eng_gguf *g, int64_t i, uint64_t j, eng_gguf_str *out)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != ENG_GGUF_ARRAY || kv->etype != ENG_GGUF_STRING || j >= kv->n)
        return RB_EINVAL;
    *out = kv->strs[j];
    return RB_OK;
}

const void *eng_gguf_arr_data(const eng_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != ENG_GGUF_ARRAY || !eng_gguf_vtype_size(kv->etype))
        return NULL;
    return kv->elems;
}

/* Integer value of kv in *v, of any width and signedness; *is_u64_big is set when a U64
 * exceeds INT64_MAX (*v is then meaningless). Returns -1 when kv is not an integer. */
static int kv_int(const gguf_kv *kv, int64_t *v, int *is_u64_big)
{
    size_t sz = eng_gguf_vtype_size(kv->type);
    uint64_t x = 0;
    int is_signed;

    switch (kv->type) {
    case ENG_GGUF_U8:
    case ENG_GGUF_U16:
    case ENG_GGUF_U32:
    case ENG_GGUF_U64:
        is_signed = 0;
        break;
    case ENG_GGUF_I8:
    case ENG_GGUF_I16:
    case ENG_GGUF_I32:
    case ENG_GGUF_I64:
        is_signed = 1;
        break;
    default:
        return -1;
    }
    for (size_t k = sz; k-- > 0;)
        x = x << 8 | kv->val[k];
    if (is_signed && sz < 8 && (x >> (8 * sz - 1)) & 1)
        x |= ~0ull << (8 * sz);
    *is_u64_big = !is_signed && x > INT64_MAX;
    *v = (int64_t)(x & (*is_u64_big ? 0 : ~0ull));
    return 0;
}

rb_err eng_gguf_get_u32(const eng_gguf *g, int64_t i, uint32_t *out)
{
    const gguf_kv *kv = kv_at(g, i);
    int64_t v;
    int big;

    if (!kv || kv_int(kv, &v, &big) || big || v < 0 || v > UINT32_MAX)
        return RB_EINVAL;
    *out = (uint32_t)v;
    return RB_OK;
}

rb_err eng_gguf_get_i64(const eng_gguf *g, int64_t i, int64_t *out)
{
    const gguf_kv *kv = kv_at(g, i);
    int64_t v;
    int big;

    if (!kv || kv_int(kv, &v, &big) || big)
        return RB_EINVAL;
    *out = v;
    return RB_OK;
}

rb_err eng_gguf_get_f32(const eng_gguf *g, int64_t i, float *out)
{
    const gguf_kv *kv = kv_at(g, i);

    if (kv && kv->type == ENG_GGUF_F32) {
        memcpy(out, kv->val, 4);
        return RB_OK;
    }
    if (kv && kv->type == ENG_GGUF_F64) {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
        return RB_OK;
    }
    return RB_EINVAL;
}

rb_err eng_gguf_get_bool(const eng_gguf *g, int64_t i, int *out)
{
    const gguf_kv *kv = kv_at(g, i);

    if (!kv || kv->type != ENG_GGUF_BOOL)
        return RB_EINVAL;
    *out = kv->val[0] != 0;
    return RB_OK;
}

rb_err eng_gguf_get_str(const eng_gguf *g, int64_t i, eng_gguf_str *out)
{
    const gguf_kv *kv = kv_at(g, i);
    uint64_t len;

    if (!kv || kv->type != ENG_GGUF_STRING)
        return RB_EINVAL;
    memcpy(&len, kv->val, 8);
    out->p = (const char *)kv->val + 8;
    out->len = len;
    return RB_OK;
}

rb_err eng_gguf_find_str(const eng_gguf *g, const char *key, char *out, size_t outlen)
{
    int64_t i = eng_gguf_find_key(g, key);
    eng_gguf_str s;
    size_t n;

    if (i < 0)
        return RB_ENOTFOUND;
    if (eng_gguf_get_str(g, i, &s) || !outlen)
        return RB_EINVAL;
    n = s.len < outlen ? (size_t)s.len : outlen - 1;
    memcpy(out, s.p, n);
    out[n] = '\0';
    return n == s.len ? RB_OK : RB_ETOOBIG;
}

rb_err eng_gguf_find_u32(const eng_gguf *g, const char *key, uint32_t def, uint32_t *out)
{
    int64_t i = eng_gguf_find_key(g, key);

    if (i < 0) {
        *out = def;
        return RB_OK;
    }
    return eng_gguf_get_u32(g, i, out);
}

rb_err eng_gguf_find_f32(const eng_gguf *g, const char *key, float def, float *out)
{
    int64_t i = eng_gguf_find_key(g, key);

    if (i < 0) {
        *out = def;
        return RB_OK;
    }
    return eng_gguf_get_f32(g, i, out);
}
