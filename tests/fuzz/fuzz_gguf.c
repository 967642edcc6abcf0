/*
 * fuzz_gguf - libFuzzer target: eng_gguf_open_mem on arbitrary bytes, then every getter on
 * every key, array element and tensor of a file it accepts. Findings: crashes, sanitizer
 * reports, leaks. See docs/testing.md ("Fuzzing").
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "eng_gguf.h"

static void visit_key(const eng_gguf *g, int64_t i)
{
    eng_gguf_str s;
    eng_gguf_vtype et;
    uint64_t n = 0;
    int64_t i64;
    uint32_t u32;
    float f;
    int b;
    const void *raw;
    uint64_t rawlen;
    char buf[64];

    s = eng_gguf_key_name(g, i);
    (void)s;
    (void)eng_gguf_vtype_name(eng_gguf_key_type(g, i));
    (void)eng_gguf_get_u32(g, i, &u32);
    (void)eng_gguf_get_i64(g, i, &i64);
    (void)eng_gguf_get_f32(g, i, &f);
    (void)eng_gguf_get_bool(g, i, &b);
    (void)eng_gguf_get_str(g, i, &s);
    (void)eng_gguf_key_raw(g, i, &raw, &rawlen);
    if (eng_gguf_get_arr(g, i, &et, &n) == RB_OK) {
        (void)eng_gguf_arr_data(g, i);
        for (uint64_t j = 0; j < n && j < 4096; j++)
            (void)eng_gguf_arr_str(g, i, j, &s);
    }
    if (eng_gguf_key_name(g, i).len < 60) {
        memcpy(buf, eng_gguf_key_name(g, i).p, eng_gguf_key_name(g, i).len);
        buf[eng_gguf_key_name(g, i).len] = '\0';
        (void)eng_gguf_find_key(g, buf);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_gguf *g = NULL;
    char err[256], str[128];

    if (eng_gguf_open_mem(data, size, &g, err, sizeof err) != RB_OK)
        return 0;
    (void)eng_gguf_version(g);
    (void)eng_gguf_alignment(g);
    (void)eng_gguf_data_offset(g);
    for (int64_t i = 0; i < eng_gguf_n_keys(g); i++)
        visit_key(g, i);
    (void)eng_gguf_find_str(g, "general.architecture", str, sizeof str);
    for (int64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        volatile uint8_t sink = 0;
        if (t && t->size)
            sink ^= ((const uint8_t *)t->data)[t->size - 1]; /* data is inside the buffer */
        (void)sink;
        if (t)
            (void)eng_gguf_find_tensor(g, t->name);
    }
    eng_gguf_close(g);
    return 0;
}
