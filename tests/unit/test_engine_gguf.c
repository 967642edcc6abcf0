/*
 * test_engine_gguf.c - the GGUF reader and writer (spec/engine_gguf.feature).
 *
 * Good files come from the writer; bad ones are built byte by byte with the small builder
 * below, so each test states exactly which field is wrong.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_gguf.h"
#include "rb_test.h"
#include "rb_util.h"

/* ---- a byte builder for hand-made files ------------------------------------------------ */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void bb_u32(bb *b, uint32_t v)
{
    bb_put(b, &v, 4);
}

static void bb_u64(bb *b, uint64_t v)
{
    bb_put(b, &v, 8);
}

static void bb_str(bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}

static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

static void bb_kv_u32(bb *b, const char *key, uint32_t v)
{
    bb_str(b, key);
    bb_u32(b, ENG_GGUF_U32);
    bb_u32(b, v);
}

static void bb_tensor(bb *b, const char *name, uint32_t ndim, const uint64_t *ne, uint32_t type,
                      uint64_t offset)
{
    bb_str(b, name);
    bb_u32(b, ndim);
    for (uint32_t d = 0; d < ndim; d++)
        bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

/* Pads to 32 and appends n bytes of tensor data. */
static void bb_data(bb *b, size_t n)
{
    static const uint8_t z[64];
    while (b->n % 32)
        bb_put(b, z, 1);
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        bb_put(b, z, k);
        n -= k;
    }
}

/* Opens b from memory and requires failure with want and a message containing each needle. */
static void expect_refused(bb *b, rb_err want, const char *n1, const char *n2)
{
    eng_gguf *g = (eng_gguf *)1;
    char err[512] = "";
    rb_err rc = eng_gguf_open_mem(b->p, b->n, &g, err, sizeof err);

    ck_assert_msg(rc == want, "want %s, got %s (%s)", rb_strerror(want), rb_strerror(rc), err);
    ck_assert_ptr_null(g);
    ck_assert_msg(n1 == NULL || strstr(err, n1), "message '%s' lacks '%s'", err, n1);
    ck_assert_msg(n2 == NULL || strstr(err, n2), "message '%s' lacks '%s'", err, n2);
    free(b->p);
}

/* A file with one f32 tensor "w" described by the arguments, data of data_bytes. */
static bb one_tensor_file(uint32_t ndim, const uint64_t *ne, uint32_t type, uint64_t offset,
                          size_t data_bytes)
{
    bb b = {0};
    bb_header(&b, 3, 1, 0);
    bb_tensor(&b, "w", ndim, ne, type, offset);
    bb_data(&b, data_bytes);
    return b;
}

static eng_gguf *open_ok(const char *path)
{
    eng_gguf *g = NULL;
    char err[512] = "";
    rb_err rc = eng_gguf_open(path, &g, err, sizeof err);
    ck_assert_msg(rc == RB_OK, "open %s: %s", path, err);
    return g;
}

static void write_ok(eng_gguf_writer *w, const char *path)
{
    char err[512] = "";
    rb_err rc = eng_gguf_writer_write(w, path, err, sizeof err);
    ck_assert_msg(rc == RB_OK, "write %s: %s", path, err);
}

/* ---- round trips ----------------------------------------------------------------------- */

/* Scenario: A written file reads back with every value type */
START_TEST(test_engine_gguf__a_written_file_reads_back_with_every_value_type)
{
    char dir[4096], path[4200];
    uint8_t u8 = 200, b1 = 1;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = 1ull << 40;
    int64_t i64 = -(1ll << 40), iv;
    double f64 = 0.25;
    int32_t arr[3] = {7, -8, 9}, a2[3];
    const char *strs[2] = {"alpha", ""};
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_gguf *g;
    eng_gguf_str s;
    eng_gguf_vtype et;
    uint64_t n;
    uint32_t u;
    float f;
    int bv;

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/all.gguf", dir);
    ck_assert_int_eq(eng_gguf_writer_set_scalar(w, "t.u8", ENG_GGUF_U8, &u8), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_scalar(w, "t.i8", ENG_GGUF_I8, &i8), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_scalar(w, "t.u16", ENG_GGUF_U16, &u16), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_scalar(w, "t.i16", ENG_GGUF_I16, &i16), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "t.u32", 4000000000u), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_i32(w, "t.i32", -2000000000), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_f32(w, "t.f32", 1.5f), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_scalar(w, "t.bool", ENG_GGUF_BOOL, &b1), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo"), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_scalar(w, "t.u64", ENG_GGUF_U64, &u64), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_scalar(w, "t.i64", ENG_GGUF_I64, &i64), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_scalar(w, "t.f64", ENG_GGUF_F64, &f64), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr(w, "t.arr", ENG_GGUF_I32, arr, 3), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr_str(w, "t.strs", strs, 2), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr(w, "bad", ENG_GGUF_STRING, arr, 3), RB_EINVAL);
    write_ok(w, path);
    eng_gguf_writer_free(w);

    g = open_ok(path);
    ck_assert_uint_eq(eng_gguf_version(g), 3);
    ck_assert_int_eq(eng_gguf_n_keys(g), 14);
    ck_assert_int_eq(eng_gguf_key_type(g, eng_gguf_find_key(g, "t.i16")), ENG_GGUF_I16);
    ck_assert_int_eq(eng_gguf_get_u32(g, eng_gguf_find_key(g, "t.u8"), &u), RB_OK);
    ck_assert_uint_eq(u, 200);
    ck_assert_int_eq(eng_gguf_get_i64(g, eng_gguf_find_key(g, "t.i8"), &iv), RB_OK);
    ck_assert_int_eq(iv, -100);
    ck_assert_int_eq(eng_gguf_get_u32(g, eng_gguf_find_key(g, "t.u16"), &u), RB_OK);
    ck_assert_uint_eq(u, 60000);
    ck_assert_int_eq(eng_gguf_get_i64(g, eng_gguf_find_key(g, "t.i16"), &iv), RB_OK);
    ck_assert_int_eq(iv, -30000);
    ck_assert_int_eq(eng_gguf_get_u32(g, eng_gguf_find_key(g, "t.u32"), &u), RB_OK);
    ck_assert_uint_eq(u, 4000000000u);
    ck_assert_int_eq(eng_gguf_get_i64(g, eng_gguf_find_key(g, "t.i32"), &iv), RB_OK);
    ck_assert_int_eq(iv, -2000000000);
    ck_assert_int_eq(eng_gguf_get_u32(g, eng_gguf_find_key(g, "t.i32"), &u), RB_EINVAL);
    ck_assert_int_eq(eng_gguf_get_f32(g, eng_gguf_find_key(g, "t.f32"), &f), RB_OK);
    ck_assert(f == 1.5f);
    ck_assert_int_eq(eng_gguf_get_bool(g, eng_gguf_find_key(g, "t.bool"), &bv), RB_OK);
    ck_assert_int_eq(bv, 1);
    ck_assert_int_eq(eng_gguf_get_str(g, eng_gguf_find_key(g, "t.str"), &s), RB_OK);
    ck_assert_uint_eq(s.len, 6);
    ck_assert(memcmp(s.p, "h\xc3\xa9llo", 6) == 0);
    ck_assert_int_eq(eng_gguf_get_i64(g, eng_gguf_find_key(g, "t.u64"), &iv), RB_OK);
    ck_assert_int_eq(iv, 1ll << 40);
    ck_assert_int_eq(eng_gguf_get_u32(g, eng_gguf_find_key(g, "t.u64"), &u), RB_EINVAL);
    ck_assert_int_eq(eng_gguf_get_i64(g, eng_gguf_find_key(g, "t.i64"), &iv), RB_OK);
    ck_assert_int_eq(iv, -(1ll << 40));
    ck_assert_int_eq(eng_gguf_get_u32(g, eng_gguf_find_key(g, "t.i64"), &u), RB_EINVAL);
    ck_assert_int_eq(eng_gguf_get_f32(g, eng_gguf_find_key(g, "t.f64"), &f), RB_OK);
    ck_assert(f == 0.25f);
    ck_assert_int_eq(eng_gguf_get_arr(g, eng_gguf_find_key(g, "t.arr"), &et, &n), RB_OK);
    ck_assert_int_eq(et, ENG_GGUF_I32);
    ck_assert_uint_eq(n, 3);
    memcpy(a2, eng_gguf_arr_data(g, eng_gguf_find_key(g, "t.arr")), sizeof a2);
    ck_assert(memcmp(a2, arr, sizeof arr) == 0);
    ck_assert_int_eq(eng_gguf_get_arr(g, eng_gguf_find_key(g, "t.strs"), &et, &n), RB_OK);
    ck_assert_int_eq(et, ENG_GGUF_STRING);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(eng_gguf_arr_str(g, eng_gguf_find_key(g, "t.strs"), 0, &s), RB_OK);
    ck_assert(s.len == 5 && memcmp(s.p, "alpha", 5) == 0);
    ck_assert_int_eq(eng_gguf_arr_str(g, eng_gguf_find_key(g, "t.strs"), 1, &s), RB_OK);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_int_eq(eng_gguf_arr_str(g, eng_gguf_find_key(g, "t.strs"), 2, &s), RB_EINVAL);
    ck_assert_ptr_null(eng_gguf_arr_data(g, eng_gguf_find_key(g, "t.strs")));
    ck_assert_int_eq(eng_gguf_find_key(g, "absent"), -1);
    ck_assert_int_eq(eng_gguf_find_u32(g, "absent", 77, &u), RB_OK);
    ck_assert_uint_eq(u, 77);
    ck_assert_int_eq(eng_gguf_find_u32(g, "t.str", 77, &u), RB_EINVAL);
    {
        char small[4], big[32];
        ck_assert_int_eq(eng_gguf_find_str(g, "t.str", big, sizeof big), RB_OK);
        ck_assert_str_eq(big, "h\xc3\xa9llo");
        ck_assert_int_eq(eng_gguf_find_str(g, "t.str", small, sizeof small), RB_ETOOBIG);
        ck_assert_int_eq(eng_gguf_find_str(g, "nope", big, sizeof big), RB_ENOTFOUND);
    }
    eng_gguf_close(g);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Tensors round-trip with their type, shape and data */
START_TEST(test_engine_gguf__tensors_round_trip_with_their_type_shape_and_data)
{
    char dir[4096], path[4200];
    float a[12];
    uint8_t q[2 * 34], h[14];
    int64_t ne_a[2] = {4, 3}, ne_b[2] = {64, 2}, ne_c[1] = {7};
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_gguf *g;

    for (int i = 0; i < 12; i++)
        a[i] = (float)i * 0.5f;
    for (size_t i = 0; i < sizeof q; i++)
        q[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof h; i++)
        h[i] = (uint8_t)(i + 100);
    /* q8_0: 64 elements per row = 2 blocks of 34 bytes; wrong sizes are refused. */
    ck_assert_int_eq(eng_gguf_writer_add_tensor(w, "b", ENG_TYPE_Q8_0, 2, ne_b, q, 68), RB_EINVAL);
    ck_assert_int_eq(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 2, ne_a, a, sizeof a), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 2, ne_a, a, sizeof a),
                     RB_EINVAL);
    ck_assert_int_eq(eng_gguf_writer_add_tensor(w, "b", ENG_TYPE_Q8_0, 2, ne_b, NULL, 0),
                     RB_EINVAL);
    {
        uint8_t q2[4 * 34];
        memcpy(q2, q, sizeof q);
        memcpy(q2 + sizeof q, q, sizeof q);
        ck_assert_int_eq(eng_gguf_writer_add_tensor(w, "b", ENG_TYPE_Q8_0, 2, ne_b, q2, 136),
                         RB_OK);
    }
    ck_assert_int_eq(eng_gguf_writer_add_tensor(w, "c", ENG_TYPE_F16, 1, ne_c, h, sizeof h), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_n_tensors(w), 3);
    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    write_ok(w, path);
    eng_gguf_writer_free(w);

    g = open_ok(path);
    ck_assert_int_eq(eng_gguf_n_tensors(g), 3);
    ck_assert_uint_eq(eng_gguf_alignment(g), 32);
    ck_assert_uint_eq(eng_gguf_data_offset(g) % 32, 0);
    {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, eng_gguf_find_tensor(g, "a"));
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->type, ENG_TYPE_F32);
        ck_assert_uint_eq(t->ndim, 2);
        ck_assert(t->ne[0] == 4 && t->ne[1] == 3 && t->ne[2] == 1 && t->ne[3] == 1);
        ck_assert_uint_eq(t->size, sizeof a);
        ck_assert(memcmp(t->data, a, sizeof a) == 0);
        t = eng_gguf_tensor_at(g, eng_gguf_find_tensor(g, "b"));
        ck_assert_int_eq(t->type, ENG_TYPE_Q8_0);
        ck_assert(t->ne[0] == 64 && t->ne[1] == 2);
        ck_assert_uint_eq(t->size, 136);
        ck_assert(memcmp(t->data, q, sizeof q) == 0);
        t = eng_gguf_tensor_at(g, eng_gguf_find_tensor(g, "c"));
        ck_assert_int_eq(t->type, ENG_TYPE_F16);
        ck_assert(t->ndim == 1 && t->ne[0] == 7 && t->size == 14);
        ck_assert(memcmp(t->data, h, sizeof h) == 0);
    }
    for (int64_t i = 0; i < eng_gguf_n_tensors(g); i++)
        ck_assert_uint_eq(eng_gguf_tensor_at(g, i)->offset % 32, 0);
    ck_assert_ptr_null(eng_gguf_tensor_at(g, 3));
    ck_assert_int_eq(eng_gguf_find_tensor(g, "zzz"), -1);
    eng_gguf_close(g);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Setting a key twice keeps the last value */
START_TEST(test_engine_gguf__setting_a_key_twice_keeps_the_last_value)
{
    char dir[4096], path[4200];
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_gguf *g;
    uint32_t v;

    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "x", 1), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "x", 2), RB_OK);
    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/k.gguf", dir);
    write_ok(w, path);
    eng_gguf_writer_free(w);
    g = open_ok(path);
    ck_assert_int_eq(eng_gguf_n_keys(g), 1);
    ck_assert_int_eq(eng_gguf_find_u32(g, "x", 0, &v), RB_OK);
    ck_assert_uint_eq(v, 2);
    eng_gguf_close(g);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: The writer leaves no temporary file behind */
START_TEST(test_engine_gguf__the_writer_leaves_no_temporary_file_behind)
{
    char dir[4096], path[4200];
    eng_gguf_writer *w = eng_gguf_writer_new();
    struct dirent *de;
    DIR *d;
    int files = 0;

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/only.gguf", dir);
    eng_gguf_writer_set_str(w, "general.name", "x");
    write_ok(w, path);
    /* Writing over an existing file replaces it the same way. */
    write_ok(w, path);
    eng_gguf_writer_free(w);
    d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        ck_assert_str_eq(de->d_name, "only.gguf");
        files++;
    }
    closedir(d);
    ck_assert_int_eq(files, 1);
    rbt_rmtree(dir);
}
END_TEST

/* A file of 14 keys of every type, one a nested array, built by hand. */
static bb all_types_file(void)
{
    bb b = {0};
    uint8_t one = 1;
    double d = -2.5;

    bb_header(&b, 3, 0, 14);
    for (uint32_t t = 0; t < 13; t++) {
        char key[16];
        snprintf(key, sizeof key, "k%u", t);
        bb_str(&b, key);
        bb_u32(&b, t);
        if (t == ENG_GGUF_STRING) {
            bb_str(&b, "text");
        } else if (t == ENG_GGUF_ARRAY) {
            bb_u32(&b, ENG_GGUF_U16);
            bb_u64(&b, 2);
            bb_u32(&b, 0x00050004);
        } else if (t == ENG_GGUF_F64) {
            bb_put(&b, &d, 8);
        } else {
            uint64_t v = 0x0102030405060708ull;
            bb_put(&b, t == ENG_GGUF_BOOL ? (const void *)&one : (const void *)&v,
                   eng_gguf_vtype_size((eng_gguf_vtype)t));
        }
    }
    /* nested: [[u8 x 2], [str x 1]] */
    bb_str(&b, "nested");
    bb_u32(&b, ENG_GGUF_ARRAY);
    bb_u32(&b, ENG_GGUF_ARRAY);
    bb_u64(&b, 2);
    bb_u32(&b, ENG_GGUF_U8);
    bb_u64(&b, 2);
    bb_put(&b, "\x01\x02", 2);
    bb_u32(&b, ENG_GGUF_STRING);
    bb_u64(&b, 1);
    bb_str(&b, "in");
    return b;
}

/* Scenario: Copying metadata keeps every key */
START_TEST(test_engine_gguf__copying_metadata_keeps_every_key)
{
    char dir[4096], path[4200], err[512] = "";
    bb b = all_types_file();
    eng_gguf *src = NULL, *dst;
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_gguf_vtype et;
    uint64_t n;

    ck_assert_msg(eng_gguf_open_mem(b.p, b.n, &src, err, sizeof err) == RB_OK, "%s", err);
    ck_assert_int_eq(eng_gguf_n_keys(src), 14);
    ck_assert_int_eq(eng_gguf_get_arr(src, eng_gguf_find_key(src, "nested"), &et, &n), RB_OK);
    ck_assert(et == ENG_GGUF_ARRAY && n == 2);
    ck_assert_ptr_null(eng_gguf_arr_data(src, eng_gguf_find_key(src, "nested")));
    ck_assert_int_eq(eng_gguf_writer_copy_kv(w, src), RB_OK);
    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/copy.gguf", dir);
    write_ok(w, path);
    eng_gguf_writer_free(w);
    dst = open_ok(path);
    ck_assert_int_eq(eng_gguf_n_keys(dst), 14);
    for (int64_t i = 0; i < 14; i++) {
        eng_gguf_str k = eng_gguf_key_name(src, i);
        char key[32];
        const void *r1, *r2;
        uint64_t l1, l2;
        int64_t j;
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.p);
        j = eng_gguf_find_key(dst, key);
        ck_assert_msg(j >= 0, "key %s lost", key);
        ck_assert_int_eq(eng_gguf_key_type(dst, j), eng_gguf_key_type(src, i));
        eng_gguf_key_raw(src, i, &r1, &l1);
        eng_gguf_key_raw(dst, j, &r2, &l2);
        ck_assert_uint_eq(l1, l2);
        ck_assert_msg(memcmp(r1, r2, l1) == 0, "key %s changed", key);
    }
    eng_gguf_close(dst);
    eng_gguf_close(src);
    free(b.p);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Version 2 files are read */
START_TEST(test_engine_gguf__version_2_files_are_read)
{
    bb b = {0};
    eng_gguf *g = NULL;
    char err[256] = "";
    uint64_t ne[1] = {8};

    bb_header(&b, 2, 1, 1);
    bb_kv_u32(&b, "general.alignment", 32);
    bb_tensor(&b, "w", 1, ne, ENG_TYPE_F32, 0);
    bb_data(&b, 32);
    ck_assert_msg(eng_gguf_open_mem(b.p, b.n, &g, err, sizeof err) == RB_OK, "%s", err);
    ck_assert_uint_eq(eng_gguf_version(g), 2);
    ck_assert_uint_eq(eng_gguf_tensor_at(g, 0)->size, 32);
    eng_gguf_close(g);
    free(b.p);
}
END_TEST

/* ---- refusals -------------------------------------------------------------------------- */

/* Scenario: A truncated file is refused */
START_TEST(test_engine_gguf__a_truncated_file_is_refused)
{
    char dir[4096], path[4200], *file;
    const char *names[2] = {"one", "two"};
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t ne[2] = {8, 1};
    size_t size;
    eng_gguf_writer *w = eng_gguf_writer_new();
    eng_gguf *g = NULL;
    char err[512];

    eng_gguf_writer_set_str(w, "general.name", "truncation");
    eng_gguf_writer_set_u32(w, "n", 5);
    eng_gguf_writer_set_arr_str(w, "names", names, 2);
    eng_gguf_writer_set_arr(w, "ints", ENG_GGUF_I32, x, 8);
    /* Tensor sizes are multiples of 32 so no prefix ends in mere padding. */
    eng_gguf_writer_add_tensor(w, "t0", ENG_TYPE_F32, 2, ne, x, sizeof x);
    eng_gguf_writer_add_tensor(w, "t1", ENG_TYPE_F32, 1, ne, x, sizeof x);
    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/full.gguf", dir);
    write_ok(w, path);
    eng_gguf_writer_free(w);
    ck_assert_int_eq(rb_read_file(path, 1 << 20, &file, &size), RB_OK);
    g = open_ok(path);
    eng_gguf_close(g);
    for (size_t len = 0; len < size; len++) {
        /* An exact-size copy, so a read past the prefix is a real overflow under ASan. */
        char *p = malloc(len ? len : 1);
        rb_err rc;
        memcpy(p, file, len);
        err[0] = '\0';
        g = (eng_gguf *)1;
        rc = eng_gguf_open_mem(p, len, &g, err, sizeof err);
        ck_assert_msg(rc == RB_EFORMAT, "prefix %zu of %zu: %s (%s)", len, size, rb_strerror(rc),
                      err);
        ck_assert_ptr_null(g);
        ck_assert_msg(strlen(err) > 10, "prefix %zu: empty message", len);
        free(p);
    }
    free(file);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: A bad magic is refused */
START_TEST(test_engine_gguf__a_bad_magic_is_refused)
{
    bb b = {0};
    bb_put(&b, "GGUX", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_refused(&b, RB_EFORMAT, "bad magic", NULL);
}
END_TEST

/* Scenario: An unsupported version is refused */
START_TEST(test_engine_gguf__an_unsupported_version_is_refused)
{
    bb b = {0}, c = {0};
    bb_header(&b, 4, 0, 0);
    expect_refused(&b, RB_EUNSUPPORTED, "unsupported GGUF version 4", NULL);
    bb_header(&c, 1, 0, 0);
    expect_refused(&c, RB_EUNSUPPORTED, "unsupported GGUF version 1", NULL);
}
END_TEST

/* Scenario: A huge key count is refused */
START_TEST(test_engine_gguf__a_huge_key_count_is_refused)
{
    bb b = {0};
    bb_header(&b, 3, 0, 1ull << 60);
    bb_kv_u32(&b, "a", 1);
    expect_refused(&b, RB_EFORMAT, "key count", "1152921504606846976");
}
END_TEST

/* Scenario: A huge tensor count is refused */
START_TEST(test_engine_gguf__a_huge_tensor_count_is_refused)
{
    bb b = {0};
    bb_header(&b, 3, 1ull << 40, 0);
    expect_refused(&b, RB_EFORMAT, "tensor count", NULL);
}
END_TEST

/* Scenario: A string length past the end is refused */
START_TEST(test_engine_gguf__a_string_length_past_the_end_is_refused)
{
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.name");
    bb_u32(&b, ENG_GGUF_STRING);
    bb_u64(&b, 1000000);
    bb_put(&b, "short", 5);
    expect_refused(&b, RB_EFORMAT, "general.name", "runs past end of file");
}
END_TEST

/* Scenario: A huge array length is refused */
START_TEST(test_engine_gguf__a_huge_array_length_is_refused)
{
    bb b = {0}, c = {0};

    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_u32(&b, ENG_GGUF_ARRAY);
    bb_u32(&b, ENG_GGUF_U32);
    bb_u64(&b, 1ull << 62);
    bb_u32(&b, 0);
    expect_refused(&b, RB_EFORMAT, "key 'a'", "count 4611686018427387904");

    bb_header(&c, 3, 0, 1);
    bb_str(&c, "n");
    bb_u32(&c, ENG_GGUF_ARRAY);
    bb_u32(&c, ENG_GGUF_ARRAY);
    bb_u64(&c, 1);
    bb_u32(&c, ENG_GGUF_STRING);
    bb_u64(&c, 1ull << 50);
    bb_str(&c, "x");
    expect_refused(&c, RB_EFORMAT, "key 'n'", "count 1125899906842624");
}
END_TEST

/* Scenario: Arrays nested too deep are refused */
START_TEST(test_engine_gguf__arrays_nested_too_deep_are_refused)
{
    bb b = {0};

    bb_header(&b, 3, 0, 1);
    bb_str(&b, "deep");
    bb_u32(&b, ENG_GGUF_ARRAY);
    for (int i = 0; i < 9; i++) {
        bb_u32(&b, ENG_GGUF_ARRAY);
        bb_u64(&b, 1);
    }
    bb_u32(&b, ENG_GGUF_U8);
    bb_u64(&b, 0);
    expect_refused(&b, RB_EFORMAT, "key 'deep'", "nested deeper than 8");
}
END_TEST

/* Scenario: A tensor past the end of the file is refused */
START_TEST(test_engine_gguf__a_tensor_past_the_end_of_the_file_is_refused)
{
    uint64_t ne[1] = {16};
    bb b = {0};

    bb_header(&b, 3, 1, 0);
    bb_tensor(&b, "blk.3.attn_q.weight", 1, ne, ENG_TYPE_F32, 4096);
    bb_data(&b, 64);
    expect_refused(&b, RB_EFORMAT, "tensor 'blk.3.attn_q.weight' extends past end of file",
                   "size 64, file 160)");
}
END_TEST

/* Scenario: An unknown tensor type is refused */
START_TEST(test_engine_gguf__an_unknown_tensor_type_is_refused)
{
    uint64_t ne[1] = {32};
    bb b = one_tensor_file(1, ne, 99, 0, 128);
    expect_refused(&b, RB_EUNSUPPORTED, "tensor 'w' has unknown type 99", NULL);
    b = one_tensor_file(1, ne, 4, 0, 128); /* 4 and 5 are gaps in ggml's numbering */
    expect_refused(&b, RB_EUNSUPPORTED, "unknown type 4", NULL);
}
END_TEST

/* Scenario: An unsupported tensor type is refused */
START_TEST(test_engine_gguf__an_unsupported_tensor_type_is_refused)
{
    uint64_t ne[1] = {256};
    bb b = one_tensor_file(1, ne, ENG_TYPE_IQ2_XXS, 0, 96);
    expect_refused(&b, RB_EUNSUPPORTED, "tensor 'w' has type iq2_xxs (16)", NULL);
    b = one_tensor_file(1, ne, 21, 0, 128);
    expect_refused(&b, RB_EUNSUPPORTED, "tensor 'w' has type iq3_s (21)", NULL);
    b = one_tensor_file(1, ne, 39, 0, 128);
    expect_refused(&b, RB_EUNSUPPORTED, "tensor 'w' has type mxfp4 (39)", NULL);
}
END_TEST

/* Scenario: A tensor with more than 4 dimensions is refused */
START_TEST(test_engine_gguf__a_tensor_with_more_than_4_dimensions_is_refused)
{
    uint64_t ne[5] = {1, 1, 1, 1, 1};
    bb b = one_tensor_file(5, ne, ENG_TYPE_F32, 0, 32);
    expect_refused(&b, RB_EFORMAT, "tensor 'w' has 5 dimensions, at most 4", NULL);
}
END_TEST

/* Scenario: A zero dimension is refused */
START_TEST(test_engine_gguf__a_zero_dimension_is_refused)
{
    uint64_t ne[2] = {4, 0};
    bb b = one_tensor_file(2, ne, ENG_TYPE_F32, 0, 32);
    expect_refused(&b, RB_EFORMAT, "tensor 'w'", "dimension 1 is 0");
}
END_TEST

/* Scenario: An overflowing dimension product is refused */
START_TEST(test_engine_gguf__an_overflowing_dimension_product_is_refused)
{
    uint64_t ne[2] = {1ull << 40, 1ull << 40}, ne3[3] = {1ull << 30, 1ull << 20, 1ull << 12};
    bb b = one_tensor_file(2, ne, ENG_TYPE_F32, 0, 32);
    expect_refused(&b, RB_EFORMAT, "tensor 'w'", "overflows");
    /* 2^62 elements fit in int64, but 2^62 f32 values do not fit in 2^64 bytes. */
    b = one_tensor_file(3, ne3, ENG_TYPE_F32, 0, 32);
    expect_refused(&b, RB_EFORMAT, "tensor 'w' byte size overflows", NULL);
}
END_TEST

/* Scenario: A misaligned tensor offset is refused */
START_TEST(test_engine_gguf__a_misaligned_tensor_offset_is_refused)
{
    uint64_t ne[1] = {8};
    bb b = one_tensor_file(1, ne, ENG_TYPE_F32, 8, 96);
    expect_refused(&b, RB_EFORMAT, "tensor 'w' offset 8", "not a multiple of the alignment 32");
}
END_TEST

/* Scenario: A bad alignment is refused */
START_TEST(test_engine_gguf__a_bad_alignment_is_refused)
{
    bb b = {0}, c = {0};
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 48);
    expect_refused(&b, RB_EFORMAT, "general.alignment", "power of two, got 48");
    bb_header(&c, 3, 0, 1);
    bb_str(&c, "general.alignment");
    bb_u32(&c, ENG_GGUF_U8);
    bb_put(&c, "\x20", 1);
    expect_refused(&c, RB_EFORMAT, "general.alignment", "expected u32");
}
END_TEST

/* Scenario: Duplicate keys are refused */
START_TEST(test_engine_gguf__duplicate_keys_are_refused)
{
    bb b = {0};
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "k", 1);
    bb_kv_u32(&b, "k", 2);
    expect_refused(&b, RB_EFORMAT, "duplicate key 'k'", NULL);
}
END_TEST

/* Scenario: Duplicate tensors are refused */
START_TEST(test_engine_gguf__duplicate_tensors_are_refused)
{
    uint64_t ne[1] = {8};
    bb b = {0};
    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "w", 1, ne, ENG_TYPE_F32, 0);
    bb_tensor(&b, "w", 1, ne, ENG_TYPE_F32, 32);
    bb_data(&b, 64);
    expect_refused(&b, RB_EFORMAT, "duplicate tensor 'w'", NULL);
}
END_TEST

/* Scenario: A too long tensor name is refused */
START_TEST(test_engine_gguf__a_too_long_tensor_name_is_refused)
{
    char name[201];
    uint64_t ne[1] = {8};
    bb b = {0};

    memset(name, 'n', 200);
    name[200] = '\0';
    bb_header(&b, 3, 1, 0);
    bb_tensor(&b, name, 1, ne, ENG_TYPE_F32, 0);
    bb_data(&b, 32);
    expect_refused(&b, RB_EFORMAT, "200 bytes long", "at most 127");
}
END_TEST

/* Scenario: A missing file is reported */
START_TEST(test_engine_gguf__a_missing_file_is_reported)
{
    eng_gguf *g = NULL;
    char err[256] = "";
    ck_assert_int_eq(eng_gguf_open("/nonexistent/x.gguf", &g, err, sizeof err), RB_ENOTFOUND);
    ck_assert_ptr_null(g);
    ck_assert_str_eq(err, "no such file or directory");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_gguf");
    TCase *tc = rbt_tcase(s, "round_trip", 30);
    tcase_add_test(tc, test_engine_gguf__a_written_file_reads_back_with_every_value_type);
    tcase_add_test(tc, test_engine_gguf__tensors_round_trip_with_their_type_shape_and_data);
    tcase_add_test(tc, test_engine_gguf__setting_a_key_twice_keeps_the_last_value);
    tcase_add_test(tc, test_engine_gguf__the_writer_leaves_no_temporary_file_behind);
    tcase_add_test(tc, test_engine_gguf__copying_metadata_keeps_every_key);
    tcase_add_test(tc, test_engine_gguf__version_2_files_are_read);

    tc = rbt_tcase(s, "refusals", 60);
    tcase_add_test(tc, test_engine_gguf__a_truncated_file_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_bad_magic_is_refused);
    tcase_add_test(tc, test_engine_gguf__an_unsupported_version_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_huge_key_count_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_huge_tensor_count_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_string_length_past_the_end_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_huge_array_length_is_refused);
    tcase_add_test(tc, test_engine_gguf__arrays_nested_too_deep_are_refused);
    tcase_add_test(tc, test_engine_gguf__a_tensor_past_the_end_of_the_file_is_refused);
    tcase_add_test(tc, test_engine_gguf__an_unknown_tensor_type_is_refused);
    tcase_add_test(tc, test_engine_gguf__an_unsupported_tensor_type_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_tensor_with_more_than_4_dimensions_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_zero_dimension_is_refused);
    tcase_add_test(tc, test_engine_gguf__an_overflowing_dimension_product_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_misaligned_tensor_offset_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_bad_alignment_is_refused);
    tcase_add_test(tc, test_engine_gguf__duplicate_keys_are_refused);
    tcase_add_test(tc, test_engine_gguf__duplicate_tensors_are_refused);
    tcase_add_test(tc, test_engine_gguf__a_too_long_tensor_name_is_refused);
    tcase_add_test(tc, test_engine_gguf__a_missing_file_is_reported);
    return rbt_run(s);
}
