/*
 * tok_bpe.c - byte-level BPE (tokenizer.ggml.model = "gpt2") with the model's pre-tokenizer.
 *
 * DESIGN. A fragment is split into words by the pre-tokenizer's regexes (PCRE2 in UTF and
 * Unicode-property mode, one stage after another, each stage splitting the words of the
 * previous one; text between matches stays a word of its own, as in llama.cpp). Each word's
 * bytes are mapped to GPT-2's printable stand-in characters (bytes_to_unicode), then merged
 * pair by pair, lowest merge rank first and leftmost on ties, using a heap; stale heap
 * entries are recognised by byte length. The merge table maps the text "left right" (as
 * stored in tokenizer.ggml.merges) to its rank. Regexes are compiled once; match data is
 * made per call so encoding stays thread-safe.
 * Pre-tokenizers are one table (pre_defs): every tokenizer.ggml.pre value accepted maps to a
 * row of regex stages and llama.cpp's per-name settings (ignore_merges: a word that is a
 * piece is emitted whole; add_bos default). A name not in the table is refused at load:
 * silently using another row's regexes would mis-tokenize every prompt of that model.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_utf8.h"
#include "tok_internal.h"

#define BPE_MAX_STAGES 5
#define BPE_BYTE_CPS 324 /* code points used by the byte map: 0..255 and 256..323 */
#define KEY_MERGES "tokenizer.ggml.merges"

/* Pre-tokenizer regexes: llama.cpp's (llama-vocab.cpp), which come from the models'
 * tokenizer.json files. Where llama.cpp rewrote a regex for its own regex engine, the
 * tokenizer.json original is used when PCRE2 runs it as is (tekken, gpt-4o: \p{Lu} and
 * friends); the case-insensitive contractions are spelled out ('[sS]) as llama.cpp does, so
 * that Unicode case folding cannot match "'ſ". */
#define RE_CONTRACT "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_GPT2_WORDS                                                                              \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_GPT2 RE_GPT2_WORDS "|\\s+"
#define RE_TAIL " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3 RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|" RE_TAIL
#define RE_QWEN2 RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|" RE_TAIL
#define RE_QWEN35                                                                                  \
    RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}|"                                   \
                " ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* A word: an optional non-letter, then upper-case letters and a lower-case tail, or an
 * upper-case run (Lm, Lo and marks count as both cases). */
#define RE_UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_LEAD "[^\\r\\n\\p{L}\\p{N}]?"
#define RE_CASED_TAIL " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                                  \
    RE_LEAD RE_UPPER "*" RE_LOWER "+|" RE_LEAD RE_UPPER "+" RE_LOWER "*|\\p{N}|" RE_CASED_TAIL
#define RE_GPT4O                                                                                   \
    RE_LEAD RE_UPPER "*" RE_LOWER "+" RE_CONTRACT "?|" RE_LEAD RE_UPPER "+" RE_LOWER               \
                     "*" RE_CONTRACT "?|\\p{N}{1,3}|" RE_CASED_TAIL
#define RE_DEEPSEEK3_WORDS                                                                         \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"           \
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

#define PRE_MAX_ALIASES 8

typedef struct pre_def {
    const char *name;                     /* name reported by eng_tokenizer_pre */
    const char *aliases[PRE_MAX_ALIASES]; /* values of tokenizer.ggml.pre that select it */
    const char *re[BPE_MAX_STAGES];       /* applied one after another */
    int ignore_merges;                    /* a word that is itself a piece is not merged */
    int add_bos;                          /* default of tokenizer.ggml.add_bos_token */
} pre_def;

/* Every value of tokenizer.ggml.pre accepted, with the settings llama.cpp gives it. */
static const pre_def pre_defs[] = {
    /* llama.cpp's "default": four stages, for files converted without a named pre-tokenizer */
    {"default",
     {"default"},
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2_WORDS, "\\p{N}+", "[0-9][0-9][0-9]"},
     0,
     0},
    {"llama3",
     {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral"},
     {RE_LLAMA3},
     1,
     1},
    {"dbrx", {"dbrx", "smaug-bpe"}, {RE_LLAMA3}, 0, 0},
    {"gpt-2", {"gpt-2", "phi-2", "mpt", "olmo"}, {RE_GPT2}, 0, 0},
    {"qwen2", {"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {RE_QWEN2}, 0, 0},
    {"qwen35", {"qwen35"}, {RE_QWEN35}, 0, 0},
    {"smollm",
     {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
     {"\\p{N}", RE_GPT2_WORDS},
     0,
     0},
    {"tekken", {"tekken"}, {RE_TEKKEN}, 1, 1},
    {"gpt-4o", {"gpt-4o", "llama4"}, {RE_GPT4O}, 0, 0},
    {"falcon", {"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2_WORDS, "[0-9][0-9][0-9]"}, 0, 0},
    {"deepseek-coder",
     {"deepseek-coder"},
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
      "[\\x{4e00}-\\x{9fa5}\\x{0800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+", "\\p{N}"},
     0,
     0},
    {"deepseek-v3",
     {"deepseek-v3"},
     {"\\p{N}{1,3}", "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+",
      RE_DEEPSEEK3_WORDS},
     0,
     0},
};
#define N_PRE (sizeof pre_defs / sizeof *pre_defs)

struct tok_bpe {
    const pre_def *pre;
    pcre2_code *re[BPE_MAX_STAGES];
    int n_re;
    char *merges; /* arena of merge texts */
    eng_strmap ranks;
    uint16_t byte_cp[256];         /* byte -> stand-in code point */
    int16_t cp_byte[BPE_BYTE_CPS]; /* stand-in code point -> byte, -1 */
};

typedef struct word {
    size_t off, len;
} word;

typedef struct word_list {
    word *w;
    size_t n, cap;
} word_list;

static void build_byte_map(uint16_t byte_cp[256], int16_t cp_byte[BPE_BYTE_CPS])
{
    int extra = 0;

    for (int cp = 0; cp < BPE_BYTE_CPS; cp++)
        cp_byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        byte_cp[b] = (uint16_t)(printable ? b : 256 + extra++);
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}

const char *tok_bpe_pre_name(const tok_bpe *b)
{
    return b->pre->name;
}

void tok_bpe_free(tok_bpe *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->n_re; i++)
        pcre2_code_free(b->re[i]);
    free(b->merges);
    eng_strmap_release(&b->ranks);
    free(b);
}

static const pre_def *find_pre(const char *name)
{
    for (size_t i = 0; i < N_PRE; i++)
        for (int k = 0; k < PRE_MAX_ALIASES && pre_defs[i].aliases[k]; k++)
            if (strcmp(name, pre_defs[i].aliases[k]) == 0)
                return &pre_defs[i];
    return NULL;
}

int tok_bpe_pre_add_bos(const tok_bpe *b)
{
    return b->pre->add_bos;
}

static rb_err compile_pre(tok_bpe *b, char *err, size_t errlen)
{
    for (int i = 0; i < BPE_MAX_STAGES && b->pre->re[i]; i++) {
        int code;
        PCRE2_SIZE at;
        b->re[i] = pcre2_compile((PCRE2_SPTR)b->pre->re[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
        if (!b->re[i]) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(code, msg, sizeof msg);
            return rb_errf(err, errlen, RB_EINVAL, "pre-tokenizer '%s' regex %d: %s at %zu",
                           b->pre->name, i, (const char *)msg, (size_t)at);
        }
        b->n_re = i + 1;
        /* JIT is an optimisation only; the interpreter gives the same matches. */
        pcre2_jit_compile(b->re[i], PCRE2_JIT_COMPLETE);
    }
    return RB_OK;
}

static rb_err load_merges(tok_bpe *b, const eng_gguf *g, char *err, size_t errlen)
{
    int64_t ki = eng_gguf_find_key(g, KEY_MERGES);
    eng_gguf_vtype et;
    uint64_t n, total = 0;

    if (ki < 0)
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' is missing", KEY_MERGES);
    if (eng_gguf_get_arr(g, ki, &et, &n) || et != ENG_GGUF_STRING)
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' must be an array of strings", KEY_MERGES);
    if (n > INT32_MAX)
        return rb_errf(err, errlen, RB_EFORMAT, "key '%s' has %llu merges", KEY_MERGES,
                       (unsigned long long)n);
    for (uint64_t j = 0; j < n; j++) {
        eng_gguf_str s;
        eng_gguf_arr_str(g, ki, j, &s);
        total += s.len + 1;
    }
    b->merges = malloc(total ? total : 1);
    if (!b->merges || eng_strmap_init(&b->ranks, n))
        return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
    total = 0;
    for (uint64_t j = 0; j < n; j++) {
        eng_gguf_str s;
        eng_gguf_arr_str(g, ki, j, &s);
        memcpy(b->merges + total, s.p, s.len);
        b->merges[total + s.len] = '\0';
        /* A repeated merge keeps its first (best) rank, as in llama.cpp. */
        if (eng_strmap_put(&b->ranks, b->merges + total, s.len, (int64_t)j) == -2)
            return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
        total += s.len + 1;
    }
    return RB_OK;
}

rb_err tok_bpe_load(eng_tokenizer *t, const eng_gguf *g, const char *pre, char *err, size_t errlen)
{
    tok_bpe *b = calloc(1, sizeof(*b));
    rb_err rc = RB_OK;

    if (!b)
        return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
    t->bpe = b;
    b->pre = find_pre(pre);
    if (!b->pre) {
        char known[160];
        size_t o = 0;
        for (size_t i = 0; i < N_PRE; i++)
            o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "",
                                  pre_defs[i].name);
        return rb_errf(err, errlen, RB_EUNSUPPORTED,
                       "unknown pre-tokenizer '%s' (tokenizer.ggml.pre); supported: %s "
                       "(aliases: docs/models.md)",
                       pre, known);
    }
    build_byte_map(b->byte_cp, b->cp_byte);
    if ((rc = load_merges(b, g, err, errlen)) || (rc = compile_pre(b, err, errlen)))
        return rc;
    return RB_OK;
}

static rb_err word_push(word_list *l, size_t off, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        word *p = realloc(l->w, cap * sizeof(*p));
        if (!p)
            return RB_ENOMEM;
        l->w = p;
        l->cap = cap;
    }
    l->w[l->n++] = (word){off, len};
    return RB_OK;
}

/* Splits each word of in by re into out: matches and the text between them. */
static rb_err split_stage(const pcre2_code *re, pcre2_match_data *md, const char *text,
                          const word_list *in, word_list *out)
{
    rb_err rc = RB_OK;

    out->n = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const char *s = text + in->w[i].off;
        size_t n = in->w[i].len, pos = 0, gap = 0;

        while (pos < n && !rc) {
            int m = pcre2_match(re, (PCRE2_SPTR)s, n, pos, 0, md, NULL);
            PCRE2_SIZE *ov;
            /* No match, or a matcher error (a JIT stack limit on pathological input):
             * the rest stays one word, still encoded, only split less finely. */
            if (m < 0)
                break;
            ov = pcre2_get_ovector_pointer(md);
            if (ov[1] == ov[0]) {
                /* An empty match splits nothing: step over one character. */
                size_t cl = (size_t)rb_utf8_lead_len((unsigned char)s[ov[0]]);
                pos = ov[0] + (cl < n - ov[0] ? cl : n - ov[0]);
                continue;
            }
            if (ov[0] > gap)
                rc = word_push(out, in->w[i].off + gap, ov[0] - gap);
            if (!rc)
                rc = word_push(out, in->w[i].off + ov[0], ov[1] - ov[0]);
            pos = gap = ov[1];
        }
        if (!rc && gap < n)
            rc = word_push(out, in->w[i].off + gap, n - gap);
    }
    return rc;
}

/* Scratch space reused across the words of one call. */
typedef struct bpe_scratch {
    char *enc; /* the word in stand-in characters */
    tok_sym *sym;
    char *key;  /* "left right" for rank lookups */
    size_t cap; /* bytes of the longest word these buffers fit */
    tok_heap heap;
} bpe_scratch;

static rb_err scratch_fit(bpe_scratch *s, size_t word_len)
{
    size_t cap = s->cap ? s->cap : 64;
    char *enc, *key;
    tok_sym *sym;

    if (word_len <= s->cap)
        return RB_OK;
    while (cap < word_len)
        cap *= 2;
    enc = realloc(s->enc, 2 * cap);
    if (enc)
        s->enc = enc;
    key = realloc(s->key, 2 * cap + 1);
    if (key)
        s->key = key;
    sym = realloc(s->sym, cap * sizeof(*sym));
    if (sym)
        s->sym = sym;
    if (!enc || !key || !sym)
        return RB_ENOMEM;
    s->cap = cap;
    return RB_OK;
}

static rb_err try_pair(const tok_bpe *b, bpe_scratch *s, int32_t left, int32_t right)
{
    const tok_sym *l, *r;
    int64_t rank;
    tok_merge m;

    if (left < 0 || right < 0)
        return RB_OK;
    l = &s->sym[left];
    r = &s->sym[right];
    memcpy(s->key, s->enc + l->off, l->n);
    s->key[l->n] = ' ';
    memcpy(s->key + l->n + 1, s->enc + r->off, r->n);
    rank = eng_strmap_get(&b->ranks, s->key, (size_t)l->n + 1 + r->n);
    if (rank < 0)
        return RB_OK;
    m.pri = (double)rank;
    m.left = left;
    m.right = right;
    m.size = l->n + r->n;
    return tok_heap_push(&s->heap, m);
}

static rb_err emit_symbol(const eng_tokenizer *t, const char *p, uint32_t n, tok_vec *out)
{
    int64_t id = eng_strmap_get(&t->pieces, p, n);
    rb_err rc = RB_OK;

    if (id >= 0)
        return tok_vec_push(out, (eng_token)id);
    /* Not a piece: fall back to one token per stand-in character, skipping any the
     * vocabulary lacks. */
    for (uint32_t k = 0; k < n && !rc;) {
        uint32_t cl = (uint32_t)rb_utf8_lead_len((unsigned char)p[k]);
        if (cl > n - k)
            cl = n - k;
        id = eng_strmap_get(&t->pieces, p + k, cl);
        if (id >= 0)
            rc = tok_vec_push(out, (eng_token)id);
        k += cl;
    }
    return rc;
}

static rb_err encode_word(const eng_tokenizer *t, const char *w, size_t len, bpe_scratch *s,
                          tok_vec *out)
{
    const tok_bpe *b = t->bpe;
    size_t n = 0;
    int32_t nsym = (int32_t)len;
    tok_merge m;
    rb_err rc;

    if ((rc = scratch_fit(s, len)))
        return rc;
    for (size_t i = 0; i < len; i++) {
        unsigned cp = b->byte_cp[(unsigned char)w[i]];
        s->sym[i] = (tok_sym){(int32_t)i - 1, i + 1 == len ? -1 : (int32_t)i + 1, (uint32_t)n,
                              cp < 0x80 ? 1u : 2u};
        if (cp < 0x80) {
            s->enc[n++] = (char)cp;
        } else {
            s->enc[n++] = (char)(0xc0 | (cp >> 6));
            s->enc[n++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    if (b->pre->ignore_merges && eng_strmap_get(&t->pieces, s->enc, n) >= 0)
        return emit_symbol(t, s->enc, (uint32_t)n, out);
    s->heap.n = 0;
    for (int32_t i = 1; i < nsym && !rc; i++)
        rc = try_pair(b, s, i - 1, i);
    while (!rc && tok_heap_pop(&s->heap, &m)) {
        tok_sym *l = &s->sym[m.left], *r = &s->sym[m.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != m.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s->sym[r->next].prev = m.left;
        rc = try_pair(b, s, l->prev, m.left);
        if (!rc)
            rc = try_pair(b, s, m.left, l->next);
    }
    for (int32_t i = nsym ? 0 : -1; i >= 0 && !rc; i = s->sym[i].next)
        rc = emit_symbol(t, s->enc + s->sym[i].off, s->sym[i].n, out);
    return rc;
}

/* Splits text into the pre-tokenizer's words: *out holds them (caller frees out->w). */
static rb_err pre_split(const tok_bpe *b, const char *text, size_t len, word_list *out)
{
    pcre2_match_data *md = NULL;
    word_list a = {0}, c = {0};
    rb_err rc = RB_OK;

    *out = (word_list){0};
    if (len == 0)
        return RB_OK;
    if (len > INT32_MAX)
        return RB_ETOOBIG;
    md = pcre2_match_data_create(1, NULL);
    if (!md || word_push(&a, 0, len)) {
        rc = RB_ENOMEM;
        goto out;
    }
    for (int i = 0; i < b->n_re; i++) {
        word_list tmp;
        if ((rc = split_stage(b->re[i], md, text, &a, &c)))
            goto out;
        tmp = a;
        a = c;
        c = tmp;
    }
    *out = a;
    a.w = NULL;
out:
    pcre2_match_data_free(md);
    free(a.w);
    free(c.w);
    return rc;
}

rb_err tok_bpe_split(const eng_tokenizer *t, const char *text, size_t len, size_t **words,
                     size_t *n)
{
    word_list l;
    rb_err rc = pre_split(t->bpe, text, len, &l);

    *words = NULL;
    *n = 0;
    if (rc)
        return rc;
    if (l.n) {
        *words = malloc(2 * l.n * sizeof(**words));
        if (!*words) {
            free(l.w);
            return RB_ENOMEM;
        }
        for (size_t i = 0; i < l.n; i++) {
            (*words)[2 * i] = l.w[i].off;
            (*words)[2 * i + 1] = l.w[i].len;
        }
    }
    *n = l.n;
    free(l.w);
    return RB_OK;
}

rb_err tok_bpe_encode(const eng_tokenizer *t, const char *text, size_t len, tok_vec *out)
{
    word_list a;
    bpe_scratch s = {0};
    rb_err rc = pre_split(t->bpe, text, len, &a);

    for (size_t i = 0; i < a.n && !rc; i++)
        rc = encode_word(t, text + a.w[i].off, a.w[i].len, &s, out);
    free(a.w);
    free(s.enc);
    free(s.sym);
    free(s.key);
    free(s.heap.a);
    return rc;
}

size_t tok_bpe_decode_piece(const tok_bpe *b, const char *piece, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)piece[i];
        size_t cl = (size_t)rb_utf8_lead_len(c);
        unsigned cp = c;
        if (cl > len - i)
            cl = len - i;
        if (cl == 2)
            cp = (unsigned)(c & 0x1f) << 6 | ((unsigned char)piece[i + 1] & 0x3f);
        if ((cl == 1 && c < 0x80) || cl == 2) {
            if (cp < BPE_BYTE_CPS && b->cp_byte[cp] >= 0) {
                out[n++] = (char)b->cp_byte[cp];
                i += cl;
                continue;
            }
        }
        memcpy(out + n, piece + i, cl);
        n += cl;
        i += cl;
    }
    return n;
}
