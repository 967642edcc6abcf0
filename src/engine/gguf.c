/*
 * gguf.c - the GGUF reader: maps a file read-only and validates all of it before anyone
 * uses it (see eng_gguf.h).
 *
 * DESIGN. The file is parsed once, front to back, by a bounds-checked cursor. Every length
 * and count read from the file is compared with the bytes that remain before it is used to
 * advance or to size an allocation (an element needs at least one byte, a string eight), so
 * a hostile file can neither read past the mapping nor make us allocate more than a small
 * multiple of its own size. Values stay in the mapping: a key records where its encoded
 * value lies; string arrays get one index of (pointer, length) pairs so element access is
 * O(1), which the tokenizer's 150k-entry vocabularies need. Keys and tensor names go into
 * hash maps, which both find duplicates at open time and serve the find functions. The
 * accessors over this form are in gguf_get.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eng_gguf.h"
#include "gguf_internal.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_BYTES 24         /* magic, version, tensor count, key count */
#define GGUF_MIN_KV_BYTES 13         /* key length, type, one-byte value */
#define GGUF_MIN_TENSOR_BYTES 24     /* name length, ndim, type, offset */
#define GGUF_MIN_NESTED_ARR_BYTES 12 /* element type, count */
#define QUOTE_BYTES 336              /* a quoted name: 80 bytes shown, each at most 4 */

typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    char *err;
    size_t errlen;
} cursor;

static const char *const vtype_names[ENG_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

const char *eng_gguf_vtype_name(eng_gguf_vtype t)
{
    return (unsigned)t < ENG_GGUF_VTYPE_COUNT ? vtype_names[t] : "?";
}

size_t eng_gguf_vtype_size(eng_gguf_vtype t)
{
    switch (t) {
    case ENG_GGUF_U8:
    case ENG_GGUF_I8:
    case ENG_GGUF_BOOL:
        return 1;
    case ENG_GGUF_U16:
    case ENG_GGUF_I16:
        return 2;
    case ENG_GGUF_U32:
    case ENG_GGUF_I32:
    case ENG_GGUF_F32:
        return 4;
    case ENG_GGUF_U64:
    case ENG_GGUF_I64:
    case ENG_GGUF_F64:
        return 8;
    default:
        return 0;
    }
}

static void gguf_quote(char *out, size_t cap, const char *p, uint64_t len)
{
    /* Names come from the file: show them printable and short enough for one line. */
    const uint64_t max_shown = 80;
    size_t o = 0;

    if (!cap)
        return;
    for (uint64_t i = 0; i < len && i < max_shown && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch != 0x7f && ch != '\'' && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
    }
    if (len > max_shown && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o < cap ? o : cap - 1] = '\0';
}

static uint64_t left(const cursor *c)
{
    return c->size - c->pos;
}

static rb_err truncated(cursor *c, const char *what, uint64_t need)
{
    return rb_errf(c->err, c->errlen, RB_EFORMAT,
                   "truncated file: %s needs %llu bytes at offset %llu, file has %llu", what,
                   (unsigned long long)need, (unsigned long long)c->pos,
                   (unsigned long long)c->size);
}

static rb_err rd_bytes(cursor *c, uint64_t n, const uint8_t **p, const char *what)
{
    if (left(c) < n)
        return truncated(c, what, n);
    *p = c->base + c->pos;
    c->pos += n;
    return RB_OK;
}

static rb_err rd_u32(cursor *c, uint32_t *v, const char *what)
{
    const uint8_t *p = NULL;
    rb_err rc = rd_bytes(c, 4, &p, what);
    if (!rc)
        *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return rc;
}

static rb_err rd_u64(cursor *c, uint64_t *v, const char *what)
{
    const uint8_t *p = NULL;
    rb_err rc = rd_bytes(c, 8, &p, what);
    if (!rc) {
        uint64_t x = 0;
        for (int i = 7; i >= 0; i--)
            x = x << 8 | p[i];
        *v = x;
    }
    return rc;
}

static rb_err rd_str(cursor *c, eng_gguf_str *s, const char *what)
{
    uint64_t len;
    const uint8_t *p;
    rb_err rc = rd_u64(c, &len, what);

    if (rc)
        return rc;
    if (len > left(c))
        return rb_errf(c->err, c->errlen, RB_EFORMAT,
                       "%s: string length %llu at offset %llu runs past end of file (%llu bytes)",
                       what, (unsigned long long)len, (unsigned long long)(c->pos - 8),
                       (unsigned long long)c->size);
    rc = rd_bytes(c, len, &p, what);
    s->p = (const char *)p;
    s->len = len;
    return rc;
}

/* Checks that n elements of at least min_bytes each can fit in what is left. */
static rb_err check_count(cursor *c, uint64_t n, uint64_t min_bytes, const char *what)
{
    if (n > left(c) / min_bytes)
        return rb_errf(c->err, c->errlen, RB_EFORMAT,
                       "%s: count %llu is more than the %llu bytes left in the file can hold", what,
                       (unsigned long long)n, (unsigned long long)left(c));
    return RB_OK;
}

static rb_err parse_value(cursor *c, uint32_t type, int depth, gguf_kv *kv, const char *what);

static rb_err parse_array(cursor *c, int depth, gguf_kv *kv, const char *what)
{
    uint32_t et;
    uint64_t n;
    size_t es;
    rb_err rc;

    if (depth >= ENG_GGUF_MAX_NESTING)
        return rb_errf(c->err, c->errlen, RB_EFORMAT, "%s: arrays nested deeper than %d", what,
                       ENG_GGUF_MAX_NESTING);
    if ((rc = rd_u32(c, &et, what)) || (rc = rd_u64(c, &n, what)))
        return rc;
    if (et >= ENG_GGUF_VTYPE_COUNT)
        return rb_errf(c->err, c->errlen, RB_EFORMAT, "%s: unknown array element type %u", what,
                       et);
    if (kv) {
        kv->etype = (eng_gguf_vtype)et;
        kv->n = n;
        kv->elems = c->base + c->pos;
    }
    es = eng_gguf_vtype_size((eng_gguf_vtype)et);
    if (es) {
        const uint8_t *p;
        if ((rc = check_count(c, n, es, what)))
            return rc;
        return rd_bytes(c, n * es, &p, what);
    }
    if (et == ENG_GGUF_STRING) {
        if ((rc = check_count(c, n, 8, what)))
            return rc;
        if (kv) {
            kv->strs = malloc(n ? n * sizeof(*kv->strs) : 1);
            if (!kv->strs)
                return rb_errf(c->err, c->errlen, RB_ENOMEM, "%s: out of memory", what);
        }
        for (uint64_t j = 0; j < n; j++) {
            eng_gguf_str s;
            if ((rc = rd_str(c, &s, what)))
                return rc;
            if (kv)
                kv->strs[j] = s;
        }
        return RB_OK;
    }
    /* Arrays of arrays: validated element by element, exposed only as type and length. */
    if ((rc = check_count(c, n, GGUF_MIN_NESTED_ARR_BYTES, what)))
        return rc;
    for (uint64_t j = 0; j < n; j++)
        if ((rc = parse_value(c, ENG_GGUF_ARRAY, depth + 1, NULL, what)))
            return rc;
    return RB_OK;
}

static rb_err parse_value(cursor *c, uint32_t type, int depth, gguf_kv *kv, const char *what)
{
    size_t sz = eng_gguf_vtype_size((eng_gguf_vtype)type);
    const uint8_t *p;
    eng_gguf_str s;

    if (type >= ENG_GGUF_VTYPE_COUNT)
        return rb_errf(c->err, c->errlen, RB_EFORMAT, "%s: unknown value type %u", what, type);
    if (sz)
        return rd_bytes(c, sz, &p, what);
    if (type == ENG_GGUF_STRING)
        return rd_str(c, &s, what);
    return parse_array(c, depth, kv, what);
}

static rb_err parse_kvs(eng_gguf *g, cursor *c)
{
    char what[400], q[QUOTE_BYTES];
    rb_err rc;

    for (int64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        uint32_t type;
        int64_t prev;

        snprintf(what, sizeof what, "key #%lld", (long long)i);
        if ((rc = rd_str(c, &kv->key, what)))
            return rc;
        gguf_quote(q, sizeof q, kv->key.p, kv->key.len);
        snprintf(what, sizeof what, "key '%s'", q);
        if ((rc = rd_u32(c, &type, what)))
            return rc;
        kv->type = (eng_gguf_vtype)type;
        kv->val = c->base + c->pos;
        if ((rc = parse_value(c, type, 0, kv, what)))
            return rc;
        kv->val_len = (uint64_t)(c->base + c->pos - kv->val);
        prev = eng_strmap_put(&g->keys, kv->key.p, kv->key.len, i);
        if (prev == -2)
            return rb_errf(c->err, c->errlen, RB_ENOMEM, "out of memory");
        if (prev >= 0)
            return rb_errf(c->err, c->errlen, RB_EFORMAT,
                           "duplicate key '%s' (entries %lld and %lld)", q, (long long)prev,
                           (long long)i);
    }
    return RB_OK;
}

static rb_err read_alignment(eng_gguf *g, cursor *c)
{
    int64_t i = eng_gguf_find_key(g, "general.alignment");
    uint32_t a;

    g->alignment = ENG_GGUF_DEFAULT_ALIGNMENT;
    if (i < 0)
        return RB_OK;
    if (g->kv[i].type != ENG_GGUF_U32)
        return rb_errf(c->err, c->errlen, RB_EFORMAT,
                       "key 'general.alignment' has type %s, expected u32",
                       eng_gguf_vtype_name(g->kv[i].type));
    memcpy(&a, g->kv[i].val, 4);
    if (a == 0 || (a & (a - 1)))
        return rb_errf(c->err, c->errlen, RB_EFORMAT,
                       "key 'general.alignment' must be a power of two, got %u", a);
    g->alignment = a;
    return RB_OK;
}

/* Reads the shape and type of one tensor and computes its size. */
static rb_err parse_tensor_shape(cursor *c, eng_gguf_tensor *t, const char *q, const char *what)
{
    uint32_t ndim, type;
    uint64_t nelem = 1, rows = 1, blocks, size;
    rb_err rc;

    if ((rc = rd_u32(c, &ndim, what)))
        return rc;
    if (ndim > ENG_GGUF_MAX_DIMS)
        return rb_errf(c->err, c->errlen, RB_EFORMAT, "tensor '%s' has %u dimensions, at most %d",
                       q, ndim, ENG_GGUF_MAX_DIMS);
    t->ndim = ndim;
    for (int d = 0; d < ENG_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        uint64_t v;
        if ((rc = rd_u64(c, &v, what)))
            return rc;
        if (v == 0 || v > INT64_MAX)
            return rb_errf(c->err, c->errlen, RB_EFORMAT,
                           "tensor '%s' dimension %u is %llu (must be 1 to 2^63-1)", q, d,
                           (unsigned long long)v);
        if (__builtin_mul_overflow(nelem, v, &nelem) || nelem > INT64_MAX)
            return rb_errf(c->err, c->errlen, RB_EFORMAT,
                           "tensor '%s' element count overflows at dimension %u", q, d);
        t->ne[d] = (int64_t)v;
        if (d > 0)
            rows *= v;
    }
    if ((rc = rd_u32(c, &type, what)))
        return rc;
    if (type >= ENG_TYPE_COUNT || eng_type_block_elems((eng_type)type) == 0)
        return rb_errf(c->err, c->errlen, RB_EUNSUPPORTED, "tensor '%s' has unknown type %u", q,
                       type);
    t->type = (eng_type)type;
    if (!eng_type_supported(t->type))
        return rb_errf(c->err, c->errlen, RB_EUNSUPPORTED,
                       "tensor '%s' has type %s (%u), which this engine does not read", q,
                       eng_type_name(t->type), type);
    if ((uint64_t)t->ne[0] % (uint64_t)eng_type_block_elems(t->type))
        return rb_errf(c->err, c->errlen, RB_EFORMAT,
                       "tensor '%s' rows of %lld elements are not a multiple of the %s block "
                       "(%d)",
                       q, (long long)t->ne[0], eng_type_name(t->type),
                       eng_type_block_elems(t->type));
    blocks = (uint64_t)t->ne[0] / (uint64_t)eng_type_block_elems(t->type);
    if (__builtin_mul_overflow(blocks, (uint64_t)eng_type_block_bytes(t->type), &size) ||
        __builtin_mul_overflow(size, rows, &size))
        return rb_errf(c->err, c->errlen, RB_EFORMAT, "tensor '%s' byte size overflows", q);
    t->size = size;
    return RB_OK;
}

static rb_err parse_tensor_infos(eng_gguf *g, cursor *c)
{
    char what[400], q[QUOTE_BYTES];
    rb_err rc;

    for (int64_t i = 0; i < g->n_tensors; i++) {
        eng_gguf_tensor *t = &g->tensors[i];
        eng_gguf_str name;
        int64_t prev;

        snprintf(what, sizeof what, "tensor #%lld", (long long)i);
        if ((rc = rd_str(c, &name, what)))
            return rc;
        gguf_quote(q, sizeof q, name.p, name.len);
        if (name.len > ENG_GGUF_MAX_NAME)
            return rb_errf(c->err, c->errlen, RB_EFORMAT,
                           "tensor #%lld name '%s' is %llu bytes long, at most %d", (long long)i, q,
                           (unsigned long long)name.len, ENG_GGUF_MAX_NAME);
        if (memchr(name.p, '\0', name.len))
            return rb_errf(c->err, c->errlen, RB_EFORMAT, "tensor #%lld name '%s' contains a NUL",
                           (long long)i, q);
        memcpy(t->name, name.p, name.len);
        t->name[name.len] = '\0';
        snprintf(what, sizeof what, "tensor '%s'", q);
        if ((rc = parse_tensor_shape(c, t, q, what)) || (rc = rd_u64(c, &t->offset, what)))
            return rc;
        prev = eng_strmap_put(&g->names, t->name, name.len, i);
        if (prev == -2)
            return rb_errf(c->err, c->errlen, RB_ENOMEM, "out of memory");
        if (prev >= 0)
            return rb_errf(c->err, c->errlen, RB_EFORMAT,
                           "duplicate tensor '%s' (entries %lld and %lld)", q, (long long)prev,
                           (long long)i);
    }
    return RB_OK;
}

static rb_err place_tensors(eng_gguf *g, cursor *c)
{
    uint64_t a = g->alignment;

    if (c->pos > UINT64_MAX - (a - 1))
        return rb_errf(c->err, c->errlen, RB_EFORMAT, "data section offset overflows");
    g->data_start = (c->pos + a - 1) & ~(a - 1);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        eng_gguf_tensor *t = &g->tensors[i];
        uint64_t abs, end;

        if (t->offset % a)
            return rb_errf(c->err, c->errlen, RB_EFORMAT,
                           "tensor '%s' offset %llu is not a multiple of the alignment %llu",
                           t->name, (unsigned long long)t->offset, (unsigned long long)a);
        if (__builtin_add_overflow(g->data_start, t->offset, &abs) ||
            __builtin_add_overflow(abs, t->size, &end) || end > g->size)
            return rb_errf(c->err, c->errlen, RB_EFORMAT,
                           "tensor '%s' extends past end of file (offset %llu, size %llu, file "
                           "%llu)",
                           t->name, (unsigned long long)(abs >= g->data_start ? abs : UINT64_MAX),
                           (unsigned long long)t->size, (unsigned long long)g->size);
        t->data = g->base + abs;
    }
    return RB_OK;
}

static rb_err parse_header(eng_gguf *g, cursor *c)
{
    const uint8_t *magic = NULL;
    uint64_t n_tensors, n_kv;
    rb_err rc;

    if (c->size < GGUF_HEADER_BYTES)
        return rb_errf(c->err, c->errlen, RB_EFORMAT,
                       "file of %llu bytes is too short for a GGUF header (%d bytes)",
                       (unsigned long long)c->size, GGUF_HEADER_BYTES);
    if ((rc = rd_bytes(c, 4, &magic, "magic")))
        return rc;
    if (memcmp(magic, GGUF_MAGIC, 4) != 0)
        return rb_errf(c->err, c->errlen, RB_EFORMAT,
                       "bad magic %02x %02x %02x %02x, not a GGUF file", magic[0], magic[1],
                       magic[2], magic[3]);
    if ((rc = rd_u32(c, &g->version, "version")))
        return rc;
    if (g->version != 2 && g->version != 3)
        return rb_errf(c->err, c->errlen, RB_EUNSUPPORTED,
                       "unsupported GGUF version %u (versions 2 and 3 are read)%s", g->version,
                       g->version > 0xffff ? "; a big-endian file?" : "");
    if ((rc = rd_u64(c, &n_tensors, "tensor count")) || (rc = rd_u64(c, &n_kv, "key count")))
        return rc;
    /* Each tensor info sits before any key is parsed, so bound both counts by what is left. */
    if ((rc = check_count(c, n_kv, GGUF_MIN_KV_BYTES, "key count")) ||
        (rc = check_count(c, n_tensors, GGUF_MIN_TENSOR_BYTES, "tensor count")))
        return rc;
    g->n_kv = (int64_t)n_kv;
    g->n_tensors = (int64_t)n_tensors;
    g->kv = calloc(n_kv ? n_kv : 1, sizeof(*g->kv));
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(*g->tensors));
    if (!g->kv || !g->tensors)
        return rb_errf(c->err, c->errlen, RB_ENOMEM, "out of memory");
    if (eng_strmap_init(&g->keys, n_kv) || eng_strmap_init(&g->names, n_tensors))
        return rb_errf(c->err, c->errlen, RB_ENOMEM, "out of memory");
    return RB_OK;
}

rb_err eng_gguf_open_mem(const void *data, size_t size, eng_gguf **out, char *err, size_t errlen)
{
    cursor c = {data, size, 0, err, errlen};
    eng_gguf *g = calloc(1, sizeof(*g));
    rb_err rc = RB_OK;

    *out = NULL;
    if (!g) {
        rc = rb_errf(err, errlen, RB_ENOMEM, "out of memory");
        goto out;
    }
    g->base = data;
    g->size = size;
    if ((rc = parse_header(g, &c)) || (rc = parse_kvs(g, &c)) || (rc = read_alignment(g, &c)) ||
        (rc = parse_tensor_infos(g, &c)) || (rc = place_tensors(g, &c)))
        goto out;
    *out = g;
    g = NULL;
out:
    eng_gguf_close(g);
    return rc;
}

static rb_err open_error(int e, char *err, size_t errlen)
{
    char msg[128];

    snprintf(msg, sizeof msg, "%s", strerror(e));
    if (msg[0] >= 'A' && msg[0] <= 'Z')
        msg[0] = (char)(msg[0] - 'A' + 'a');
    return rb_errf(err, errlen, e == ENOENT ? RB_ENOTFOUND : RB_EIO, "%s", msg);
}

rb_err eng_gguf_open(const char *path, eng_gguf **out, char *err, size_t errlen)
{
    int fd = -1;
    struct stat st;
    void *map = MAP_FAILED;
    rb_err rc = RB_OK;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = open_error(errno, err, errlen);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = rb_errf(err, errlen, RB_EIO, "not a regular file");
        goto out;
    }
    if (st.st_size == 0) {
        rc = rb_errf(err, errlen, RB_EFORMAT, "file is empty");
        goto out;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = open_error(errno, err, errlen);
        goto out;
    }
    if ((rc = eng_gguf_open_mem(map, (size_t)st.st_size, out, err, errlen)))
        goto out;
    (*out)->map = map;
    (*out)->dev = (uint64_t)st.st_dev;
    (*out)->ino = (uint64_t)st.st_ino;
    map = MAP_FAILED;
out:
    if (map != MAP_FAILED)
        munmap(map, (size_t)st.st_size);
    if (fd >= 0)
        close(fd);
    return rc;
}

void eng_gguf_close(eng_gguf *g)
{
    if (!g)
        return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].strs);
    free(g->kv);
    free(g->tensors);
    eng_strmap_release(&g->keys);
    eng_strmap_release(&g->names);
    if (g->map)
        munmap(g->map, g->size);
    free(g);
}
