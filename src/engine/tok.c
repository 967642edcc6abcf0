/*
 * tok.c - tokenizer loading and the encode driver (see eng_tok.h).
 *
 * DESIGN. Loading copies every piece into one arena and indexes it with a hash map, works
 * out the decoded bytes of every token once (so detokenizing is a lookup), and settles the
 * special ids and flags the way llama.cpp does, since GGUF files are written for it: ids
 * from tokenizer.ggml.*_token_id, end-of-turn tokens recognised by their text, and the
 * Phi-3 rule that special tokens eat the whitespace after them. Encoding first cuts special
 * tokens out of the text (longest piece first, each one splitting every remaining plain
 * fragment), then hands each plain fragment to the model's encoder. Nothing here changes
 * after load, which is what makes eng_tokenize thread-safe.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_log.h"
#include "tok_internal.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"

/* Texts that end a turn, in the order used to pick the EOT id when the file names none. */
static const char *const eot_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81of\xe2\x96\x81"
    "sentence\xef\xbd\x9c>",
    "<end_of_utterance>",
};
/* Texts that end generation besides EOS/EOT/EOM. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",   "<|endoftext|>",
    "<|eom_id|>", "<EOT>",      "_<EOT>",  "<|end_of_text|>", "<end_of_utterance>",
};

rb_err tok_vec_push(tok_vec *v, eng_token id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        eng_token *p = realloc(v->v, cap * sizeof(*p));
        if (!p)
            return RB_ENOMEM;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return RB_OK;
}

static int merge_less(const tok_merge *a, const tok_merge *b)
{
    return a->pri < b->pri || (a->pri == b->pri && a->left < b->left);
}

rb_err tok_heap_push(tok_heap *h, tok_merge m)
{
    size_t i;

    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok_merge *p = realloc(h->a, cap * sizeof(*p));
        if (!p)
            return RB_ENOMEM;
        h->a = p;
        h->cap = cap;
    }
    i = h->n++;
    while (i > 0 && merge_less(&m, &h->a[(i - 1) / 2])) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = m;
    return RB_OK;
}

int tok_heap_pop(tok_heap *h, tok_merge *m)
{
    tok_merge last;
    size_t i = 0;

    if (h->n == 0)
        return 0;
    *m = h->a[0];
    last = h->a[--h->n];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && merge_less(&h->a[c + 1], &h->a[c]))
            c++;
        if (!merge_less(&h->a[c], &last))
            break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n)
        h->a[i] = last;
    return 1;
}

/* Reads a numeric array of n_vocab or more elements as floats; NULL data when absent. */
static rb_err read_num_array(const eng_gguf *g, const char *key, int64_t n_vocab, int want_int,
                             const uint8_t **data, eng_gguf_vtype *etype, char *err, size_t errlen)
{
    int64_t i = eng_gguf_find_key(g, key);
    uint64_t n;

    *data = NULL;
    if (i < 0)
        return RB_OK;
    if (eng_gguf_get_arr(g, i, etype, &n) ||
        !(*etype == ENG_GGUF_I32 || (!want_int && *etype == ENG_GGUF_F32)))
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' must be an array of %s", key,
                       want_int ? "i32" : "f32 or i32");
    if (n < (uint64_t)n_vocab)
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' has %llu entries for %lld tokens", key,
                       (unsigned long long)n, (long long)n_vocab);
    *data = eng_gguf_arr_data(g, i);
    return RB_OK;
}

static rb_err load_pieces(eng_tokenizer *t, const eng_gguf *g, char *err, size_t errlen)
{
    int64_t ki = eng_gguf_find_key(g, KEY_TOKENS);
    const uint8_t *scores, *types;
    eng_gguf_vtype etype, stype = ENG_GGUF_F32, ttype;
    uint64_t n, total = 0;
    rb_err rc;

    if (ki < 0)
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' is missing", KEY_TOKENS);
    if (eng_gguf_get_arr(g, ki, &etype, &n) || etype != ENG_GGUF_STRING)
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' must be an array of strings", KEY_TOKENS);
    if (n == 0 || n > INT32_MAX)
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' has %llu tokens", KEY_TOKENS,
                       (unsigned long long)n);
    t->n_vocab = (int32_t)n;
    if ((rc = read_num_array(g, KEY_SCORES, t->n_vocab, 0, &scores, &stype, err, errlen)) ||
        (rc = read_num_array(g, KEY_TYPES, t->n_vocab, 1, &types, &ttype, err, errlen)))
        return rc;
    for (uint64_t j = 0; j < n; j++) {
        eng_gguf_str s;
        eng_gguf_arr_str(g, ki, j, &s);
        total += s.len + 1;
    }
    if (total > UINT32_MAX)
        return rb_errf(err, errlen, RB_ETOOBIG, "key '%s' holds %llu bytes", KEY_TOKENS,
                       (unsigned long long)total);
    t->tok = calloc(n, sizeof(*t->tok));
    t->text = malloc(total);
    t->dec = malloc(total);
    if (!t->tok || !t->text || !t->dec || eng_strmap_init(&t->pieces, n))
        return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
    total = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_entry *e = &t->tok[id];
        eng_gguf_str s;
        int64_t prev;

        eng_gguf_arr_str(g, ki, (uint64_t)id, &s);
        memcpy(t->text + total, s.p, s.len);
        t->text[total + s.len] = '\0';
        e->off = (uint32_t)total;
        e->len = (uint32_t)s.len;
        total += s.len + 1;
        e->type = ENG_TOK_TYPE_NORMAL;
        if (types) {
            int32_t ty;
            memcpy(&ty, types + 4 * (size_t)id, 4);
            e->type = ty >= ENG_TOK_TYPE_NORMAL && ty <= ENG_TOK_TYPE_BYTE ? (uint8_t)ty
                                                                           : ENG_TOK_TYPE_UNDEFINED;
        }
        if (scores && stype == ENG_GGUF_F32) {
            memcpy(&e->score, scores + 4 * (size_t)id, 4);
        } else if (scores) {
            int32_t si;
            memcpy(&si, scores + 4 * (size_t)id, 4);
            e->score = (float)si;
        }
        /* Empty pieces never match text; they stay out of the map (llama.cpp renames them). */
        if (e->len == 0)
            continue;
        prev = eng_strmap_put(&t->pieces, t->text + e->off, e->len, id);
        if (prev == -2)
            return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
        if (prev >= 0)
            return rb_errf(err, errlen, RB_EFORMAT,
                           "key '%s': piece of token %d repeats token %lld", KEY_TOKENS, id,
                           (long long)prev);
    }
    return RB_OK;
}

/* An id from key, kept at *id (the default) when absent or out of range. */
static void read_special_id(eng_tokenizer *t, const eng_gguf *g, const char *key, eng_token *id)
{
    uint32_t v;
    int64_t i = eng_gguf_find_key(g, key);

    if (*id >= t->n_vocab)
        *id = ENG_TOKEN_NONE;
    if (i >= 0 && eng_gguf_get_u32(g, i, &v) == RB_OK && v < (uint32_t)t->n_vocab)
        *id = (eng_token)v;
}

static void read_flag(const eng_gguf *g, const char *key, int *flag)
{
    int64_t i = eng_gguf_find_key(g, key);
    int v;

    if (i >= 0 && eng_gguf_get_bool(g, i, &v) == RB_OK)
        *flag = v;
}

static eng_token find_text(const eng_tokenizer *t, const char *s)
{
    return (eng_token)eng_strmap_get(&t->pieces, s, strlen(s));
}

static void mark_control(eng_tokenizer *t, eng_token id)
{
    /* llama.cpp treats end-of-turn tokens as control whatever the file says. */
    if (t->tok[id].type != ENG_TOK_TYPE_CONTROL)
        t->tok[id].type = ENG_TOK_TYPE_CONTROL;
}

static void settle_specials(eng_tokenizer *t, const eng_gguf *g)
{
    eng_token ids[3];
    char name[256] = "";

    read_special_id(t, g, "tokenizer.ggml.bos_token_id", &t->bos);
    read_special_id(t, g, "tokenizer.ggml.eos_token_id", &t->eos);
    read_special_id(t, g, "tokenizer.ggml.eot_token_id", &t->eot);
    read_special_id(t, g, "tokenizer.ggml.eom_token_id", &t->eom);
    read_special_id(t, g, "tokenizer.ggml.unknown_token_id", &t->unk);
    read_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    for (size_t k = 0; k < sizeof eot_texts / sizeof *eot_texts && t->eot < 0; k++)
        t->eot = find_text(t, eot_texts[k]);
    if (t->eom < 0)
        t->eom = find_text(t, "<|eom_id|>");
    for (size_t k = 0; k < sizeof eog_texts / sizeof *eog_texts; k++) {
        eng_token id = find_text(t, eog_texts[k]);
        if (id >= 0) {
            t->tok[id].flags |= TOK_FLAG_EOG;
            mark_control(t, id);
        }
    }
    ids[0] = t->eos, ids[1] = t->eot, ids[2] = t->eom;
    for (int k = 0; k < 3; k++)
        if (ids[k] >= 0)
            t->tok[ids[k]].flags |= TOK_FLAG_EOG;
    if (t->eot >= 0)
        mark_control(t, t->eot);
    if (t->eom >= 0)
        mark_control(t, t->eom);

    /* Phi-3's added tokens strip the whitespace that follows them (llama.cpp keys this on
     * the model name, as the file has no per-token attribute for it). */
    eng_gguf_find_str(g, "general.name", name, sizeof name);
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strstr(name, "phi-3") || strstr(name, "phi3")) {
        const char *keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        eng_token eos_text = find_text(t, "</s>");
        for (int32_t id = 0; id < t->n_vocab; id++) {
            uint8_t ty = t->tok[id].type;
            if (ty == ENG_TOK_TYPE_CONTROL || ty == ENG_TOK_TYPE_USER_DEFINED ||
                ty == ENG_TOK_TYPE_UNKNOWN)
                t->tok[id].flags |= TOK_FLAG_RSTRIP;
        }
        if (eos_text >= 0)
            t->tok[eos_text].flags |= TOK_FLAG_RSTRIP;
        for (size_t k = 0; k < 3; k++) {
            eng_token id = find_text(t, keep[k]);
            if (id >= 0)
                t->tok[id].flags &= (uint8_t)~TOK_FLAG_RSTRIP;
        }
    }
}

static int cmp_special(const void *a, const void *b, void *arg)
{
    const eng_tokenizer *t = arg;
    eng_token x = *(const eng_token *)a, y = *(const eng_token *)b;

    if (t->tok[x].len != t->tok[y].len)
        return t->tok[x].len > t->tok[y].len ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Special-token candidates, longest first, and the SentencePiece byte tokens. */
static rb_err index_tokens(eng_tokenizer *t)
{
    static const char hex[] = "0123456789ABCDEF";

    t->special = malloc(sizeof(*t->special) * (size_t)t->n_vocab);
    if (!t->special)
        return RB_ENOMEM;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->tok[id].type;
        if ((ty == ENG_TOK_TYPE_CONTROL || ty == ENG_TOK_TYPE_USER_DEFINED ||
             ty == ENG_TOK_TYPE_UNKNOWN) &&
            t->tok[id].len > 0)
            t->special[t->n_special++] = id;
    }
    qsort_r(t->special, t->n_special, sizeof(*t->special), cmp_special, t);
    for (int b = 0; b < 256; b++) {
        char piece[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        char raw[1] = {(char)b};
        eng_token id = find_text(t, piece);
        t->byte_id[b] = id >= 0 ? id : (eng_token)eng_strmap_get(&t->pieces, raw, 1);
    }
    return RB_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The bytes each token stands for, following llama.cpp's token_to_piece. */
static void decode_pieces(eng_tokenizer *t)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_entry *e = &t->tok[id];
        const char *p = t->text + e->off;
        char *out = t->dec + e->off;
        size_t n = 0;

        e->dec_off = e->off;
        if (e->type == ENG_TOK_TYPE_BYTE && e->len == 6 && memcmp(p, "<0x", 3) == 0 &&
            hexval(p[3]) >= 0 && hexval(p[4]) >= 0) {
            out[n++] = (char)(hexval(p[3]) * 16 + hexval(p[4]));
        } else if (e->type == ENG_TOK_TYPE_NORMAL && t->model == ENG_TOK_MODEL_BPE) {
            n = tok_bpe_decode_piece(t->bpe, p, e->len, out);
        } else if (e->type == ENG_TOK_TYPE_NORMAL) {
            for (size_t i = 0; i < e->len; i++) {
                if (i + 2 < e->len && memcmp(p + i, "\xe2\x96\x81", 3) == 0) {
                    out[n++] = ' ';
                    i += 2;
                } else {
                    out[n++] = p[i];
                }
            }
        } else if (e->type == ENG_TOK_TYPE_CONTROL || e->type == ENG_TOK_TYPE_UNKNOWN ||
                   e->type == ENG_TOK_TYPE_USER_DEFINED || e->type == ENG_TOK_TYPE_BYTE) {
            memcpy(out, p, e->len);
            n = e->len;
        }
        out[n] = '\0';
        e->dec_len = (uint32_t)n;
        if (n > t->max_dec)
            t->max_dec = n;
    }
}

rb_err eng_tokenizer_load(const eng_gguf *g, eng_tokenizer **out, char *err, size_t errlen)
{
    eng_tokenizer *t = calloc(1, sizeof(*t));
    char model[32], pre[64] = "";
    rb_err rc = RB_OK;

    *out = NULL;
    if (!t) {
        rc = rb_errf(err, errlen, RB_ENOMEM, "out of memory");
        goto out;
    }
    rc = eng_gguf_find_str(g, KEY_MODEL, model, sizeof model);
    if (rc == RB_ENOTFOUND) {
        rc = rb_errf(err, errlen, RB_ENOTFOUND, "no tokenizer: key '%s' is missing", KEY_MODEL);
        goto out;
    }
    if (rc) {
        rc = rb_errf(err, errlen, RB_EFORMAT, "key '%s' must be a short string", KEY_MODEL);
        goto out;
    }
    if (strcmp(model, "llama") == 0) {
        t->model = ENG_TOK_MODEL_SPM;
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = 1;
        t->add_space_prefix = 1;
    } else if (strcmp(model, "gpt2") == 0) {
        t->model = ENG_TOK_MODEL_BPE;
        t->bos = t->eos = t->unk = ENG_TOKEN_NONE;
    } else {
        rc = rb_errf(err, errlen, RB_EUNSUPPORTED,
                     "key '%s' is '%s'; only 'llama' and 'gpt2' "
                     "tokenizers are supported",
                     KEY_MODEL, model);
        goto out;
    }
    t->eot = t->eom = ENG_TOKEN_NONE;
    if ((rc = load_pieces(t, g, err, errlen)))
        goto out;
    if (t->model == ENG_TOK_MODEL_BPE) {
        rc = eng_gguf_find_str(g, "tokenizer.ggml.pre", pre, sizeof pre);
        if (rc == RB_ENOTFOUND) {
            snprintf(pre, sizeof pre, "default");
        } else if (rc) {
            rc = rb_errf(err, errlen, RB_EFORMAT,
                         "key 'tokenizer.ggml.pre' must be a string of at most %zu bytes",
                         sizeof pre - 1);
            goto out;
        }
        if ((rc = tok_bpe_load(t, g, pre, err, errlen)))
            goto out;
        /* As llama.cpp: files converted before pre-tokenizers were named get the default
         * regexes, which split text differently from most models' own. */
        if (eng_gguf_find_key(g, "tokenizer.ggml.pre") < 0)
            rb_log(RB_LOG_WARN, "engine",
                   "tokenizer.ggml.pre is missing; using the 'default' pre-tokenizer, which "
                   "may tokenize differently from the model's own (reconvert the file)");
        snprintf(t->pre, sizeof t->pre, "%s", tok_bpe_pre_name(t->bpe));
        /* llama.cpp: llama3 and tekken imply a BOS unless the file says otherwise. */
        t->add_bos = tok_bpe_pre_add_bos(t->bpe);
    }
    read_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    settle_specials(t, g);
    if ((rc = index_tokens(t))) {
        rb_errf(err, errlen, rc, "out of memory");
        goto out;
    }
    decode_pieces(t);
    *out = t;
    t = NULL;
out:
    eng_tokenizer_free(t);
    return rc;
}

void eng_tokenizer_free(eng_tokenizer *t)
{
    if (!t)
        return;
    tok_bpe_free(t->bpe);
    eng_strmap_release(&t->pieces);
    free(t->special);
    free(t->tok);
    free(t->text);
    free(t->dec);
    free(t);
}

eng_tok_model eng_tokenizer_model(const eng_tokenizer *t)
{
    return t->model;
}

const char *eng_tokenizer_pre(const eng_tokenizer *t)
{
    return t->pre;
}

int32_t eng_tokenizer_n_vocab(const eng_tokenizer *t)
{
    return t->n_vocab;
}

eng_token eng_tokenizer_bos(const eng_tokenizer *t)
{
    return t->bos;
}

eng_token eng_tokenizer_eos(const eng_tokenizer *t)
{
    return t->eos;
}

eng_token eng_tokenizer_eot(const eng_tokenizer *t)
{
    return t->eot;
}

int eng_tokenizer_add_bos(const eng_tokenizer *t)
{
    return t->add_bos && t->bos >= 0;
}

int eng_tokenizer_is_eog(const eng_tokenizer *t, eng_token id)
{
    return id >= 0 && id < t->n_vocab && (t->tok[id].flags & TOK_FLAG_EOG);
}

eng_tok_type eng_tokenizer_type(const eng_tokenizer *t, eng_token id)
{
    return id >= 0 && id < t->n_vocab ? (eng_tok_type)t->tok[id].type : ENG_TOK_TYPE_UNDEFINED;
}

const char *eng_tokenizer_piece(const eng_tokenizer *t, eng_token id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->tok[id].len;
    return t->text + t->tok[id].off;
}

const char *eng_tokenizer_token_bytes(const eng_tokenizer *t, eng_token id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->tok[id].dec_len;
    return t->dec + t->tok[id].dec_off;
}

eng_token eng_tokenizer_find(const eng_tokenizer *t, const char *piece, size_t len)
{
    return (eng_token)eng_strmap_get(&t->pieces, piece, len);
}

/* A piece of the input: plain text [off, off + len) or a special token. */
typedef struct frag {
    eng_token id; /* ENG_TOKEN_NONE for plain text */
    size_t off, len;
} frag;

typedef struct frag_list {
    frag *f;
    size_t n, cap;
} frag_list;

static rb_err frag_push(frag_list *l, eng_token id, size_t off, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        frag *p = realloc(l->f, cap * sizeof(*p));
        if (!p)
            return RB_ENOMEM;
        l->f = p;
        l->cap = cap;
    }
    l->f[l->n++] = (frag){id, off, len};
    return RB_OK;
}

/* Splits every plain fragment of *in at each occurrence of special token id. */
static rb_err split_on(const eng_tokenizer *t, const char *text, eng_token id, frag_list *in,
                       frag_list *out)
{
    const tok_entry *e = &t->tok[id];
    const char *piece = t->text + e->off;
    rb_err rc = RB_OK;

    out->n = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        frag f = in->f[i];
        const char *hit;

        if (f.id != ENG_TOKEN_NONE || f.len < e->len) {
            rc = frag_push(out, f.id, f.off, f.len);
            continue;
        }
        while (!rc && f.len && (hit = memmem(text + f.off, f.len, piece, e->len))) {
            size_t at = (size_t)(hit - text), left = at - f.off;
            size_t right_off = at + e->len, right = f.off + f.len - right_off;
            if (e->flags & TOK_FLAG_LSTRIP)
                while (left && isspace((unsigned char)text[f.off + left - 1]))
                    left--;
            if (e->flags & TOK_FLAG_RSTRIP)
                while (right && isspace((unsigned char)text[right_off])) {
                    right_off++;
                    right--;
                }
            if (left)
                rc = frag_push(out, ENG_TOKEN_NONE, f.off, left);
            if (!rc)
                rc = frag_push(out, id, at, e->len);
            f.off = right_off;
            f.len = right;
        }
        if (!rc && f.len)
            rc = frag_push(out, ENG_TOKEN_NONE, f.off, f.len);
    }
    return rc;
}

static rb_err cut_specials(const eng_tokenizer *t, const char *text, size_t len, int parse_all,
                           frag_list *frags)
{
    frag_list other = {0};
    rb_err rc = RB_OK;

    frags->n = 0;
    if (len && (rc = frag_push(frags, ENG_TOKEN_NONE, 0, len)))
        goto out;
    for (size_t k = 0; k < t->n_special && len; k++) {
        eng_token id = t->special[k];
        frag_list tmp;
        if (!parse_all && t->tok[id].type != ENG_TOK_TYPE_USER_DEFINED)
            continue;
        if ((rc = split_on(t, text, id, frags, &other)))
            goto out;
        tmp = *frags;
        *frags = other;
        other = tmp;
    }
out:
    free(other.f);
    return rc;
}

rb_err eng_tokenize(const eng_tokenizer *t, const char *text, size_t len, unsigned flags,
                    eng_token *ids, size_t cap, size_t *n_out)
{
    frag_list frags = {0};
    tok_vec out = {0};
    int prev_special = 1; /* the start counts as "after a special token" for SentencePiece */
    rb_err rc;

    *n_out = 0;
    if ((flags & ENG_TOK_ADD_BOS) && t->bos >= 0 && (rc = tok_vec_push(&out, t->bos)))
        goto out;
    if ((rc = cut_specials(t, text, len, (flags & ENG_TOK_PARSE_SPECIAL) != 0, &frags)))
        goto out;
    for (size_t i = 0; i < frags.n && !rc; i++) {
        frag f = frags.f[i];
        if (f.id != ENG_TOKEN_NONE) {
            rc = tok_vec_push(&out, f.id);
            prev_special = 1;
        } else if (t->model == ENG_TOK_MODEL_SPM) {
            rc = tok_spm_encode(t, text + f.off, f.len, t->add_space_prefix && prev_special, &out);
            prev_special = 0;
        } else {
            rc = tok_bpe_encode(t, text + f.off, f.len, &out);
        }
    }
    if (rc)
        goto out;
    *n_out = out.n;
    if (out.n > cap) {
        rc = RB_ETOOBIG;
        if (cap)
            memcpy(ids, out.v, cap * sizeof(*ids));
        goto out;
    }
    if (out.n)
        memcpy(ids, out.v, out.n * sizeof(*ids));
out:
    free(frags.f);
    free(out.v);
    return rc;
}
