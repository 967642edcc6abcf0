/*
 * tok_spm.c - SentencePiece encoding with piece scores (tokenizer.ggml.model = "llama").
 *
 * DESIGN. The fragment is rewritten with "▁" for every space (and one in front when asked),
 * cut into UTF-8 characters, and every adjacent pair whose joined text is a vocabulary piece
 * goes into a heap keyed by that piece's score. The best pair is merged (leftmost on ties);
 * the merged symbol's new pairs with its neighbours are pushed; heap entries made stale by an
 * earlier merge are recognised by their byte length and skipped. This is SentencePiece's
 * BPE-with-scores as llama.cpp runs it, so ids match llama.cpp's. A final symbol that is not a
 * piece (a character the vocabulary lacks) becomes one byte token per byte, or <unk> when
 * the vocabulary has no byte tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "rb_utf8.h"
#include "tok_internal.h"

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */
#define SPM_SPACE_LEN 3

/* Pushes the pair (left, right) if its joined text is a piece. */
static rb_err try_pair(const eng_tokenizer *t, const char *s, const tok_sym *sym, int32_t left,
                       int32_t right, tok_heap *h)
{
    uint32_t size;
    int64_t id;
    tok_merge m;

    if (left < 0 || right < 0)
        return RB_OK;
    size = sym[left].n + sym[right].n;
    id = eng_strmap_get(&t->pieces, s + sym[left].off, size);
    if (id < 0)
        return RB_OK;
    m.pri = -(double)t->tok[id].score;
    m.left = left;
    m.right = right;
    m.size = size;
    return tok_heap_push(h, m);
}

static rb_err emit_symbol(const eng_tokenizer *t, const char *s, const tok_sym *y, tok_vec *out)
{
    int64_t id = eng_strmap_get(&t->pieces, s + y->off, y->n);
    rb_err rc = RB_OK;

    if (id >= 0)
        return tok_vec_push(out, (eng_token)id);
    for (uint32_t k = 0; k < y->n && !rc; k++) {
        eng_token b = t->byte_id[(unsigned char)s[y->off + k]];
        if (b >= 0)
            rc = tok_vec_push(out, b);
        else if (t->unk >= 0)
            rc = tok_vec_push(out, t->unk);
    }
    return rc;
}

/* The fragment with spaces escaped, and one escaped space in front when prefix is set. */
static char *escape_spaces(const char *text, size_t len, int prefix, size_t *n_out)
{
    size_t n = prefix ? SPM_SPACE_LEN : 0, o = 0;
    char *s;

    for (size_t i = 0; i < len; i++)
        n += text[i] == ' ' ? SPM_SPACE_LEN : 1;
    s = malloc(n ? n : 1);
    if (!s)
        return NULL;
    if (prefix) {
        memcpy(s, SPM_SPACE, SPM_SPACE_LEN);
        o = SPM_SPACE_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + o, SPM_SPACE, SPM_SPACE_LEN);
            o += SPM_SPACE_LEN;
        } else {
            s[o++] = text[i];
        }
    }
    *n_out = n;
    return s;
}

rb_err tok_spm_encode(const eng_tokenizer *t, const char *text, size_t len, int prefix_space,
                      tok_vec *out)
{
    size_t n = 0, nsym = 0;
    char *s = NULL;
    tok_sym *sym = NULL;
    tok_heap h = {0};
    tok_merge m;
    rb_err rc = RB_OK;

    if (len == 0 && !prefix_space)
        goto out;
    s = escape_spaces(text, len, prefix_space, &n);
    sym = malloc((n ? n : 1) * sizeof(*sym));
    if (!s || !sym || n > INT32_MAX) {
        rc = s && sym ? RB_ETOOBIG : RB_ENOMEM;
        goto out;
    }
    for (size_t off = 0; off < n; nsym++) {
        size_t cl = (size_t)rb_utf8_lead_len((unsigned char)s[off]);
        if (cl > n - off)
            cl = n - off;
        sym[nsym] = (tok_sym){(int32_t)nsym - 1, off + cl == n ? -1 : (int32_t)nsym + 1,
                              (uint32_t)off, (uint32_t)cl};
        off += cl;
    }
    for (size_t i = 1; i < nsym && !rc; i++)
        rc = try_pair(t, s, sym, (int32_t)i - 1, (int32_t)i, &h);
    while (!rc && tok_heap_pop(&h, &m)) {
        tok_sym *l = &sym[m.left], *r = &sym[m.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != m.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = m.left;
        rc = try_pair(t, s, sym, l->prev, m.left, &h);
        if (!rc)
            rc = try_pair(t, s, sym, m.left, l->next, &h);
    }
    for (int32_t i = nsym ? 0 : -1; i >= 0 && !rc; i = sym[i].next)
        rc = emit_symbol(t, s, &sym[i], out);
out:
    free(h.a);
    free(sym);
    free(s);
    return rc;
}
