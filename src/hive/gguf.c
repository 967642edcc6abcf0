/*
 * gguf.c - a GGUF header reader for the memory estimate (hive_gguf.h).
 *
 * DESIGN. One pass over the metadata through a 64 KiB buffer: values the estimate needs are
 * kept (the architecture string, integer values, the length of the token array), everything
 * else is skipped without being stored, so a 128k-token vocabulary costs a read of a few MB
 * and no allocation. The tensor infos after the metadata are not read: the file size stands
 * for the weights (the header is a fraction of a percent of it). Every length is checked
 * against the bytes left in the file before it is skipped or read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hive_gguf.h"

#define BUF_BYTES (64 * 1024)
#define MAX_KEY 128 /* longer keys are skipped: no key the estimate reads is that long */
#define MAX_NUMS 96 /* integer values kept (a llama file has about 20) */
#define MAX_KV (1u << 20)
#define MAX_TENSORS (1u << 24)

enum { T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 };

typedef struct reader {
    FILE *f;
    uint8_t buf[BUF_BYTES];
    size_t pos, len;
    uint64_t left; /* bytes of the file not yet consumed */
    int bad;
} reader;

typedef struct num {
    char key[MAX_KEY];
    uint64_t v;
} num;

typedef struct meta {
    char arch[64];
    num nums[MAX_NUMS];
    int nnums;
    uint64_t n_tokens;
} meta;

/* Copies n bytes to dst, or skips them when dst is NULL. Sets bad past the end. */
static void rd(reader *r, void *dst, uint64_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        return;
    }
    r->left -= n;
    while (n > 0) {
        size_t k;
        if (r->pos == r->len) {
            if (!dst && n > BUF_BYTES) { /* a long skip: seek instead of reading */
                if (fseeko(r->f, (off_t)n, SEEK_CUR) != 0)
                    r->bad = 1;
                return;
            }
            r->len = fread(r->buf, 1, BUF_BYTES, r->f);
            r->pos = 0;
            if (r->len == 0) {
                r->bad = 1;
                return;
            }
        }
        k = r->len - r->pos < n ? r->len - r->pos : (size_t)n;
        if (dst) {
            memcpy(dst, r->buf + r->pos, k);
            dst = (uint8_t *)dst + k;
        }
        r->pos += k;
        n -= k;
    }
}

static uint64_t rd_u64(reader *r)
{
    uint64_t v = 0;
    rd(r, &v, 8); /* GGUF is little-endian, like every machine rbee runs on */
    return v;
}

static uint32_t rd_u32(reader *r)
{
    uint32_t v = 0;
    rd(r, &v, 4);
    return v;
}

static size_t type_size(uint32_t t)
{
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof sizes / sizeof sizes[0] ? sizes[t] : 0;
}

/* A string into out (cut to outlen - 1 bytes; *cut set when it did not fit), or skipped. */
static void rd_str(reader *r, char *out, size_t outlen, int *cut)
{
    uint64_t n = rd_u64(r);
    if (out && n < outlen) {
        rd(r, out, n);
        out[n] = '\0';
        if (cut)
            *cut = 0;
        return;
    }
    rd(r, NULL, n);
    if (cut)
        *cut = 1;
}

/* One value of type t: an integer into *v (*has = 1), anything else skipped. */
static void rd_value(reader *r, uint32_t t, meta *m, const char *key, uint64_t *v, int *has)
{
    *has = 0;
    if (t == T_STR) {
        if (strcmp(key, "general.architecture") == 0)
            rd_str(r, m->arch, sizeof m->arch, NULL);
        else
            rd_str(r, NULL, 0, NULL);
    } else if (t == T_ARR) {
        uint32_t et = rd_u32(r);
        uint64_t count = rd_u64(r);
        if (strcmp(key, "tokenizer.ggml.tokens") == 0)
            m->n_tokens = count;
        if (et == T_STR) {
            for (uint64_t i = 0; i < count && !r->bad; i++)
                rd_str(r, NULL, 0, NULL);
        } else if (type_size(et) && count <= r->left / type_size(et)) {
            rd(r, NULL, count * type_size(et));
        } else {
            r->bad = 1; /* nested arrays are not in any model the estimate is for */
        }
    } else if (type_size(t)) {
        uint64_t x = 0;
        rd(r, &x, type_size(t));
        if (t == T_U8 || t == T_U16 || t == T_U32 || t == T_U64 || t == T_I8 || t == T_I16 ||
            t == T_I32 || t == T_I64) {
            *v = x;
            *has = 1;
        }
    } else {
        r->bad = 1;
    }
}

/* The integer value of <arch>.<suffix>, or dflt. */
static uint64_t get(const meta *m, const char *suffix, uint64_t dflt, int *found)
{
    char key[MAX_KEY];
    snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    for (int i = 0; i < m->nnums; i++)
        if (strcmp(m->nums[i].key, key) == 0) {
            if (found)
                *found = 1;
            return m->nums[i].v;
        }
    if (found)
        *found = 0;
    return dflt;
}

/* A count that fits an int of the estimate, else 0 (then the header is refused). */
static int small(uint64_t v)
{
    return v > 0 && v <= (1u << 30) ? (int)v : 0;
}

rb_err hive_gguf_shape(const char *path, rb_mem_shape *out, char *err, size_t errlen)
{
    static const char *required[] = {"block_count", "embedding_length", "attention.head_count"};
    reader *r = calloc(1, sizeof(*r));
    meta *m = calloc(1, sizeof(*m));
    struct stat st;
    char magic[4];
    uint32_t version;
    uint64_t n_tensors, n_kv;
    rb_err rc = RB_OK;

    if (!r || !m) {
        rc = RB_ENOMEM;
        goto out;
    }
    if (stat(path, &st) != 0 || !(r->f = fopen(path, "rb"))) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot read '%s'", path);
        goto out;
    }
    r->left = (uint64_t)st.st_size;
    rd(r, magic, 4);
    version = rd_u32(r);
    n_tensors = rd_u64(r);
    n_kv = rd_u64(r);
    if (r->bad || memcmp(magic, "GGUF", 4) != 0 || version < 2 || version > 3 ||
        n_tensors > MAX_TENSORS || n_kv > MAX_KV) {
        rc = rb_errf(err, errlen, RB_EFORMAT, "'%s' has no GGUF v2 or v3 header", path);
        goto out;
    }
    for (uint64_t i = 0; i < n_kv && !r->bad; i++) {
        char key[MAX_KEY];
        int cut = 0, has = 0;
        uint64_t v = 0;
        rd_str(r, key, sizeof key, &cut);
        if (cut)
            key[0] = '\0';
        rd_value(r, rd_u32(r), m, key, &v, &has);
        if (has && key[0] && m->nnums < MAX_NUMS) {
            snprintf(m->nums[m->nnums].key, MAX_KEY, "%s", key);
            m->nums[m->nnums++].v = v;
        }
    }
    if (r->bad || !m->arch[0]) {
        rc = rb_errf(err, errlen, RB_EFORMAT,
                     "'%s': the GGUF metadata is truncated or has no "
                     "general.architecture",
                     path);
        goto out;
    }
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        int found;
        if (!small(get(m, required[i], 0, &found)) || !found) {
            rc = rb_errf(err, errlen, RB_EFORMAT, "'%s' has no usable %s.%s", path, m->arch,
                         required[i]);
            goto out;
        }
    }
    memset(out, 0, sizeof(*out));
    out->weight_bytes = (uint64_t)st.st_size;
    out->n_layer = small(get(m, "block_count", 0, NULL));
    out->n_embd = small(get(m, "embedding_length", 0, NULL));
    out->n_head = small(get(m, "attention.head_count", 0, NULL));
    out->n_head_kv = small(get(m, "attention.head_count_kv", (uint64_t)out->n_head, NULL));
    out->n_ctx_train = small(get(m, "context_length", 2048, NULL));
    out->n_ff = small(get(m, "feed_forward_length", 0, NULL));
    out->key_length = small(get(m, "attention.key_length", 0, NULL));
    out->value_length = small(get(m, "attention.value_length", 0, NULL));
    out->n_rot = small(get(m, "rope.dimension_count", (uint64_t)(out->n_embd / out->n_head), NULL));
    out->n_vocab = small(m->n_tokens ? m->n_tokens : get(m, "vocab_size", 0, NULL));
out:
    if (r && r->f)
        fclose(r->f);
    free(r);
    free(m);
    return rc;
}
