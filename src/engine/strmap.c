/*
 * strmap.c - open-addressing string map with linear probing (see strmap.h).
 *
 * The table is kept at most half full so probes stay short; the stored 32-bit hash lets most
 * mismatches be rejected without touching the key bytes, which matters when the keys live in
 * a cold mmapped file.
 */
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

#define STRMAP_MIN_CAP 16

uint32_t eng_strmap_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

static size_t cap_for(size_t n)
{
    size_t cap = STRMAP_MIN_CAP;
    while (cap / 2 < n && cap < ((size_t)1 << (sizeof(size_t) * 8 - 2)))
        cap *= 2;
    return cap;
}

rb_err eng_strmap_init(eng_strmap *m, size_t n)
{
    size_t cap = cap_for(n);

    m->n = 0;
    m->cap = 0;
    if (cap > SIZE_MAX / sizeof(*m->slots) || cap / 2 < n) {
        m->slots = NULL;
        return RB_ETOOBIG;
    }
    m->slots = calloc(cap, sizeof(*m->slots));
    if (!m->slots)
        return RB_ENOMEM;
    m->cap = cap;
    return RB_OK;
}

void eng_strmap_release(eng_strmap *m)
{
    if (!m)
        return;
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

static eng_strmap_slot *find_slot(eng_strmap_slot *slots, size_t cap, const char *key, uint32_t len,
                                  uint32_t hash)
{
    size_t mask = cap - 1;
    size_t i = hash & mask;

    for (;;) {
        eng_strmap_slot *s = &slots[i];
        if (!s->key)
            return s;
        if (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0)
            return s;
        i = (i + 1) & mask;
    }
}

static int grow(eng_strmap *m)
{
    size_t cap = m->cap * 2;
    eng_strmap_slot *slots;

    if (cap > SIZE_MAX / sizeof(*slots))
        return -1;
    slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        eng_strmap_slot *s = &m->slots[i];
        if (s->key)
            *find_slot(slots, cap, s->key, s->len, s->hash) = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int64_t eng_strmap_put(eng_strmap *m, const char *key, size_t len, int64_t val)
{
    uint32_t hash;
    eng_strmap_slot *s;

    if (len > UINT32_MAX || !m->slots)
        return -2;
    hash = eng_strmap_hash(key, len);
    s = find_slot(m->slots, m->cap, key, (uint32_t)len, hash);
    if (s->key)
        return s->val;
    if ((m->n + 1) * 2 > m->cap) {
        if (grow(m))
            return -2;
        s = find_slot(m->slots, m->cap, key, (uint32_t)len, hash);
    }
    /* An empty key still needs a non-NULL pointer to mark the slot used. */
    s->key = key ? key : "";
    s->len = (uint32_t)len;
    s->hash = hash;
    s->val = val;
    m->n++;
    return -1;
}

int64_t eng_strmap_get(const eng_strmap *m, const char *key, size_t len)
{
    const eng_strmap_slot *s;

    if (len > UINT32_MAX || !m->slots)
        return -1;
    s = find_slot(m->slots, m->cap, key, (uint32_t)len, eng_strmap_hash(key, len));
    return s->key ? s->val : -1;
}
