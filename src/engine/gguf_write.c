/*
 * gguf_write.c - the GGUF writer (see eng_gguf.h).
 *
 * DESIGN. Every key holds its value already encoded exactly as it will appear in the file
 * (the bytes after the type field), so writing is a straight copy and copying keys from a
 * reader is a memcpy of the reader's encoded bytes. Tensors own a copy of their data. The
 * file is written under a temporary name in the target's folder, flushed to disk, renamed
 * over the target and the folder synced, so a reader sees either the old file or the whole
 * new one, never a partial write.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eng_gguf.h"

#define WRITE_CHUNK (1u << 20) /* zero padding and copy granularity */

typedef struct wkv {
    char *key; /* owned, NUL-terminated */
    eng_gguf_vtype type;
    uint8_t *val; /* owned encoded value */
    size_t len;
} wkv;

typedef struct wtensor {
    char name[ENG_GGUF_MAX_NAME + 1];
    eng_type type;
    uint32_t ndim;
    int64_t ne[ENG_GGUF_MAX_DIMS];
    uint8_t *data; /* owned copy */
    uint64_t size;
    uint64_t offset; /* assigned when writing */
} wtensor;

struct eng_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

eng_gguf_writer *eng_gguf_writer_new(void)
{
    return calloc(1, sizeof(eng_gguf_writer));
}

void eng_gguf_writer_free(eng_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].data);
    free(w->kv);
    free(w->t);
    free(w);
}

int64_t eng_gguf_writer_n_tensors(const eng_gguf_writer *w)
{
    return (int64_t)w->n_t;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Stores key = (type, val) taking ownership of val (freed on failure too). */
static rb_err set_encoded(eng_gguf_writer *w, const char *key, eng_gguf_vtype type, uint8_t *val,
                          size_t len)
{
    rb_err rc = RB_OK;
    wkv *kv = NULL;

    if (!key || !val) {
        rc = val ? RB_EINVAL : RB_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0)
            kv = &w->kv[i];
    if (kv) {
        free(kv->val);
    } else {
        if (w->n_kv == w->cap_kv) {
            size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
            wkv *p = realloc(w->kv, cap * sizeof(*p));
            if (!p) {
                rc = RB_ENOMEM;
                goto out;
            }
            w->kv = p;
            w->cap_kv = cap;
        }
        kv = &w->kv[w->n_kv];
        kv->key = strdup(key);
        if (!kv->key) {
            rc = RB_ENOMEM;
            goto out;
        }
        w->n_kv++;
    }
    kv->type = type;
    kv->val = val;
    kv->len = len;
    val = NULL;
out:
    free(val);
    return rc;
}

rb_err eng_gguf_writer_set_scalar(eng_gguf_writer *w, const char *key, eng_gguf_vtype type,
                                  const void *v)
{
    size_t sz = eng_gguf_vtype_size(type);
    uint8_t *val;

    if (!sz || !v)
        return RB_EINVAL;
    val = malloc(sz);
    if (val)
        memcpy(val, v, sz);
    return set_encoded(w, key, type, val, sz);
}

rb_err eng_gguf_writer_set_u32(eng_gguf_writer *w, const char *key, uint32_t v)
{
    return eng_gguf_writer_set_scalar(w, key, ENG_GGUF_U32, &v);
}

rb_err eng_gguf_writer_set_i32(eng_gguf_writer *w, const char *key, int32_t v)
{
    return eng_gguf_writer_set_scalar(w, key, ENG_GGUF_I32, &v);
}

rb_err eng_gguf_writer_set_f32(eng_gguf_writer *w, const char *key, float v)
{
    return eng_gguf_writer_set_scalar(w, key, ENG_GGUF_F32, &v);
}

rb_err eng_gguf_writer_set_bool(eng_gguf_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    return eng_gguf_writer_set_scalar(w, key, ENG_GGUF_BOOL, &b);
}

rb_err eng_gguf_writer_set_str(eng_gguf_writer *w, const char *key, const char *v)
{
    size_t n;
    uint8_t *val;

    if (!v)
        return RB_EINVAL;
    n = strlen(v);
    val = malloc(8 + n);
    if (val) {
        put_u64(val, n);
        memcpy(val + 8, v, n);
    }
    return set_encoded(w, key, ENG_GGUF_STRING, val, 8 + n);
}

rb_err eng_gguf_writer_set_arr(eng_gguf_writer *w, const char *key, eng_gguf_vtype etype,
                               const void *data, uint64_t n)
{
    size_t es = eng_gguf_vtype_size(etype);
    uint8_t *val;

    if (!es || (n && !data) || n > (SIZE_MAX - 12) / es)
        return RB_EINVAL;
    val = malloc(12 + n * es);
    if (val) {
        put_u32(val, (uint32_t)etype);
        put_u64(val + 4, n);
        if (n)
            memcpy(val + 12, data, n * es);
    }
    return set_encoded(w, key, ENG_GGUF_ARRAY, val, 12 + n * es);
}

rb_err eng_gguf_writer_set_arr_str(eng_gguf_writer *w, const char *key, const char *const *strs,
                                   uint64_t n)
{
    size_t len = 12, o;
    uint8_t *val;

    if (n && !strs)
        return RB_EINVAL;
    for (uint64_t j = 0; j < n; j++) {
        if (!strs[j])
            return RB_EINVAL;
        len += 8 + strlen(strs[j]);
    }
    val = malloc(len);
    if (val) {
        put_u32(val, ENG_GGUF_STRING);
        put_u64(val + 4, n);
        o = 12;
        for (uint64_t j = 0; j < n; j++) {
            size_t sl = strlen(strs[j]);
            put_u64(val + o, sl);
            memcpy(val + o + 8, strs[j], sl);
            o += 8 + sl;
        }
    }
    return set_encoded(w, key, ENG_GGUF_ARRAY, val, len);
}

rb_err eng_gguf_writer_copy_kv(eng_gguf_writer *w, const eng_gguf *g)
{
    return eng_gguf_writer_copy_kv_prefix(w, g, "");
}

rb_err eng_gguf_writer_copy_kv_prefix(eng_gguf_writer *w, const eng_gguf *g, const char *prefix)
{
    rb_err rc = RB_OK;
    char *key = NULL;
    size_t plen = strlen(prefix);

    for (int64_t i = 0; i < eng_gguf_n_keys(g) && !rc; i++) {
        eng_gguf_str name = eng_gguf_key_name(g, i);
        const void *raw;
        uint64_t len;
        uint8_t *val;

        if (name.len < plen || memcmp(name.p, prefix, plen) != 0)
            continue;
        /* Keys are NUL-terminated here; one with an embedded NUL cannot be carried over. */
        if (memchr(name.p, '\0', name.len) || eng_gguf_key_raw(g, i, &raw, &len) ||
            len > SIZE_MAX) {
            rc = RB_EINVAL;
            break;
        }
        key = strndup(name.p, name.len);
        val = malloc(len ? len : 1);
        if (!key || !val) {
            free(val);
            rc = RB_ENOMEM;
            break;
        }
        memcpy(val, raw, len);
        rc = set_encoded(w, key, eng_gguf_key_type(g, i), val, len);
        free(key);
        key = NULL;
    }
    free(key);
    return rc;
}

rb_err eng_gguf_writer_add_tensor(eng_gguf_writer *w, const char *name, eng_type type,
                                  uint32_t ndim, const int64_t *ne, const void *data, uint64_t size)
{
    uint64_t rows = 1, want;
    size_t row;
    wtensor *t;

    if (!name || strlen(name) == 0 || strlen(name) > ENG_GGUF_MAX_NAME || ndim == 0 ||
        ndim > ENG_GGUF_MAX_DIMS || !ne || (size && !data) || size > SIZE_MAX)
        return RB_EINVAL;
    for (uint32_t d = 0; d < ndim; d++) {
        if (ne[d] <= 0)
            return RB_EINVAL;
        if (d > 0 && __builtin_mul_overflow(rows, (uint64_t)ne[d], &rows))
            return RB_EINVAL;
    }
    row = eng_type_row_bytes(type, ne[0]);
    if (!row || __builtin_mul_overflow((uint64_t)row, rows, &want) || want != size)
        return RB_EINVAL;
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return RB_EINVAL;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *p = realloc(w->t, cap * sizeof(*p));
        if (!p)
            return RB_ENOMEM;
        w->t = p;
        w->cap_t = cap;
    }
    t = &w->t[w->n_t];
    memset(t, 0, sizeof(*t));
    t->data = malloc(size ? size : 1);
    if (!t->data)
        return RB_ENOMEM;
    if (size)
        memcpy(t->data, data, size);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->ndim = ndim;
    for (int d = 0; d < ENG_GGUF_MAX_DIMS; d++)
        t->ne[d] = (uint32_t)d < ndim ? ne[d] : 1;
    t->size = size;
    w->n_t++;
    return RB_OK;
}

/* The alignment the file will declare: general.alignment when set, else the default. */
static rb_err writer_alignment(const eng_gguf_writer *w, uint64_t *align, char *err, size_t errlen)
{
    *align = ENG_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        uint32_t a;
        if (strcmp(w->kv[i].key, "general.alignment") != 0)
            continue;
        if (w->kv[i].type != ENG_GGUF_U32)
            return rb_errf(err, errlen, RB_EINVAL, "key 'general.alignment' must be a u32");
        memcpy(&a, w->kv[i].val, 4);
        if (a == 0 || (a & (a - 1)))
            return rb_errf(err, errlen, RB_EINVAL,
                           "key 'general.alignment' must be a power of two, got %u", a);
        *align = a;
    }
    return RB_OK;
}

static int put_bytes(FILE *f, const void *p, size_t n)
{
    return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int put_le32(FILE *f, uint32_t v)
{
    uint8_t b[4];
    put_u32(b, v);
    return put_bytes(f, b, 4);
}

static int put_le64(FILE *f, uint64_t v)
{
    uint8_t b[8];
    put_u64(b, v);
    return put_bytes(f, b, 8);
}

static int put_zeros(FILE *f, uint64_t n)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (put_bytes(f, zeros, k))
            return -1;
        n -= k;
    }
    return 0;
}

/* Writes the whole file to f; returns 0 or -1 (errno set by stdio). */
static int write_body(eng_gguf_writer *w, FILE *f, uint64_t align)
{
    uint64_t pos = 24, off = 0;

    /* Offsets first, so the tensor infos can be written in one pass. */
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off += (w->t[i].size + align - 1) & ~(align - 1);
    }
    if (put_bytes(f, "GGUF", 4) || put_le32(f, 3) || put_le64(f, w->n_t) || put_le64(f, w->n_kv))
        return -1;
    for (size_t i = 0; i < w->n_kv; i++) {
        wkv *kv = &w->kv[i];
        size_t kl = strlen(kv->key);
        if (put_le64(f, kl) || put_bytes(f, kv->key, kl) || put_le32(f, kv->type) ||
            put_bytes(f, kv->val, kv->len))
            return -1;
        pos += 8 + kl + 4 + kv->len;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        size_t nl = strlen(t->name);
        if (put_le64(f, nl) || put_bytes(f, t->name, nl) || put_le32(f, t->ndim))
            return -1;
        for (uint32_t d = 0; d < t->ndim; d++)
            if (put_le64(f, (uint64_t)t->ne[d]))
                return -1;
        if (put_le32(f, (uint32_t)t->type) || put_le64(f, t->offset))
            return -1;
        pos += 8 + nl + 4 + 8ull * t->ndim + 4 + 8;
    }
    if (w->n_t && put_zeros(f, ((pos + align - 1) & ~(align - 1)) - pos))
        return -1;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        uint64_t padded = (t->size + align - 1) & ~(align - 1);
        if (put_bytes(f, t->data, t->size) || put_zeros(f, padded - t->size))
            return -1;
    }
    return 0;
}

static void sync_dir_of(const char *path)
{
    char *copy = strdup(path);
    int fd;

    if (!copy)
        return;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

rb_err eng_gguf_writer_write(eng_gguf_writer *w, const char *path, char *err, size_t errlen)
{
    char *tmp = NULL;
    FILE *f = NULL;
    int fd = -1, created = 0;
    uint64_t align;
    rb_err rc;

    if ((rc = writer_alignment(w, &align, err, errlen)))
        goto out;
    if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
        tmp = NULL;
        rc = rb_errf(err, errlen, RB_ENOMEM, "out of memory");
        goto out;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    created = 1;
    fchmod(fd, 0644);
    f = fdopen(fd, "wb");
    if (!f) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (write_body(w, f, align) || fflush(f) || fsync(fileno(f))) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        goto out;
    }
    if (fclose(f)) {
        f = NULL;
        rc = rb_errf(err, errlen, RB_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        goto out;
    }
    f = NULL;
    if (rename(tmp, path)) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot rename '%s' to '%s': %s", tmp, path,
                     strerror(errno));
        goto out;
    }
    created = 0;
    sync_dir_of(path);
out:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    free(tmp);
    return rc;
}
