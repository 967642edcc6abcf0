/*
 * strmap.h - an open-addressing hash map from byte strings to 64-bit values (internal to
 * rb_engine). Used for GGUF keys and tensor names and for tokenizer pieces and merges.
 *
 *     eng_strmap m;
 *     if (eng_strmap_init(&m, n)) goto out;         // room for n keys without growing
 *     int64_t old = eng_strmap_put(&m, p, len, 7);  // -1 if new, else the existing value
 *     int64_t v = eng_strmap_get(&m, p, len);       // -1 when absent
 *     eng_strmap_release(&m);
 *
 * Keys are borrowed: the bytes must stay valid and unchanged while the map is used. Values
 * must be >= 0 (-1 is the "absent" answer). A map is not thread-safe for writers; concurrent
 * readers are fine.
 */
#ifndef ENG_STRMAP_H
#define ENG_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "rb_err.h"

typedef struct eng_strmap_slot {
    const char *key; /* NULL marks an empty slot */
    uint32_t len;
    uint32_t hash;
    int64_t val;
} eng_strmap_slot;

typedef struct eng_strmap {
    eng_strmap_slot *slots; /* owned; cap entries, cap a power of two */
    size_t cap;
    size_t n;
} eng_strmap;

/* Sizes the table for n keys (it still grows past that). RB_ENOMEM, RB_ETOOBIG. */
rb_err eng_strmap_init(eng_strmap *m, size_t n);
void eng_strmap_release(eng_strmap *m); /* NULL-safe; m can be initialised again */
/* Inserts key -> val unless the key is present. Returns -1 when inserted, the existing value
 * when the key was already there (the map is unchanged), or -2 when memory ran out. Keys
 * longer than UINT32_MAX bytes are not supported (-2). */
int64_t eng_strmap_put(eng_strmap *m, const char *key, size_t len, int64_t val);
/* The value of key, or -1. */
int64_t eng_strmap_get(const eng_strmap *m, const char *key, size_t len);
/* The hash used by the map (FNV-1a, 32 bits), exposed for tests. */
uint32_t eng_strmap_hash(const char *key, size_t len);

#endif
