/*
 * gguf_internal.h - the reader's in-memory form, shared by gguf.c (parsing) and gguf_get.c
 * (accessors). Internal to rb_engine.
 */
#ifndef ENG_GGUF_INTERNAL_H
#define ENG_GGUF_INTERNAL_H

#include <stdint.h>

#include "eng_gguf.h"
#include "strmap.h"

typedef struct gguf_kv {
    eng_gguf_str key;
    eng_gguf_vtype type;
    const uint8_t *val; /* the encoded value, after the type field */
    uint64_t val_len;
    eng_gguf_vtype etype; /* arrays only */
    uint64_t n;           /* arrays only: element count */
    const uint8_t *elems; /* arrays only: first element */
    eng_gguf_str *strs;   /* string arrays only: n entries, owned */
} gguf_kv;

struct eng_gguf {
    const uint8_t *base;
    uint64_t size;
    void *map;         /* owned mapping, NULL for eng_gguf_open_mem */
    uint64_t dev, ino; /* the file opened (eng_gguf_open); 0 for eng_gguf_open_mem */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_start; /* file offset of the tensor data section */
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    eng_gguf_tensor *tensors;
    eng_strmap keys;
    eng_strmap names;
};

#endif
