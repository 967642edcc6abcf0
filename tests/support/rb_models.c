/*
 * rb_models.c - models/ fixtures and reference JSON files for tests.
 */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "eng_gguf.h"
#include "rb_models.h"
#include "rb_test.h"

/* First match of pattern under models/ that does not start with "test-". */
static const char *find(const char *pattern, char *out, size_t outlen)
{
    glob_t g;
    const char *found = NULL;
    char pat[4096];

    snprintf(pat, sizeof pat, "%s/models/%s", RB_SOURCE_DIR, pattern);
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && !found; i++) {
            const char *base = strrchr(g.gl_pathv[i], '/');
            if (base && strncmp(base + 1, "test-", 5) != 0) {
                snprintf(out, outlen, "%s", g.gl_pathv[i]);
                found = out;
            }
        }
        globfree(&g);
    }
    return found;
}

const char *rbt_model_f16(void)
{
    static char p[4096];
    return find("*-f16.gguf", p, sizeof p);
}

const char *rbt_model_q8(void)
{
    static char p[4096];
    return find("*-q8_0.gguf", p, sizeof p);
}

/* models/<name> into out when the file exists, else NULL. */
static const char *fixture(const char *name, char *out, size_t outlen)
{
    FILE *f;
    snprintf(out, outlen, "%s/models/%s", RB_SOURCE_DIR, name);
    f = fopen(out, "rb");
    if (!f)
        return NULL;
    fclose(f);
    return out;
}

const char *rbt_model_gqa(void)
{
    static char p[4096];
    return fixture("test-gqa-random-f16.gguf", p, sizeof p);
}

const char *rbt_model_gqa_rope8(void)
{
    static char p[4096];
    return fixture("test-gqa-rope8-f16.gguf", p, sizeof p);
}

const char *rbt_model_fixture(const char *file)
{
    static char p[4096];
    return fixture(file, p, sizeof p);
}

const char *rbt_shared_data(void)
{
    static char p[4096];
    const char *e = getenv(RBT_SHARED_DATA_ENV);
    snprintf(p, sizeof p, "%s", e && *e ? e : rbt_src("../shared/data"));
    return p;
}

const char *rbt_tokenizer_dir(void)
{
    static char p[4200];
    snprintf(p, sizeof p, "%s/%s", rbt_shared_data(), RBT_TOKENIZER_DATA);
    return p;
}

const char *rbt_tokenizer_data(const char *file)
{
    static char p[4300];
    snprintf(p, sizeof p, "%s/%s", rbt_tokenizer_dir(), file);
    return p;
}

int rbt_run_shared_data(Suite *s, const char *sub, int ntests)
{
    char dir[4200];
    struct stat st;
    const char *e = getenv(RBT_SHARED_DATA_ENV);

    snprintf(dir, sizeof dir, "%s/%s", rbt_shared_data(), sub);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIP: ../shared/data not found at %s%s; %d %s it\n", dir,
               e && *e ? " (from " RBT_SHARED_DATA_ENV ")" : "", ntests,
               ntests == 1 ? "test needs" : "tests need");
        fflush(stdout);
        srunner_free(srunner_create(s)); /* frees the suite */
        return 77;
    }
    return rbt_run_counted(s, ntests);
}

static int32_t *int_array(json_t *a, size_t *n)
{
    int32_t *v = calloc(json_array_size(a) + 1, sizeof(*v));
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) v[i] = (int32_t)json_integer_value(x);
    *n = json_array_size(a);
    return v;
}

int rbt_reference_load(const char *model_path, rbt_reference *r)
{
    char path[4096];
    size_t n = strlen(model_path);
    json_error_t je;
    json_t *j, *logits;

    memset(r, 0, sizeof(*r));
    if (n < 5 || n + 16 > sizeof path)
        return -1;
    snprintf(path, sizeof path, "%.*s.ref.json", (int)(n - 5), model_path);
    j = json_load_file(path, 0, &je);
    if (!j)
        return -1;
    snprintf(r->prompt, sizeof r->prompt, "%s",
             json_string_value(json_object_get(j, "prompt"))
                 ? json_string_value(json_object_get(j, "prompt"))
                 : "");
    r->tokens = int_array(json_object_get(j, "tokens"), &r->ntokens);
    r->greedy = int_array(json_object_get(j, "greedy"), &r->ngreedy);
    if (json_array_size(json_object_get(j, "greedy_gaps")) == r->ngreedy && r->ngreedy) {
        r->greedy_gaps = calloc(r->ngreedy, sizeof(float));
        for (size_t i = 0; i < r->ngreedy; i++)
            r->greedy_gaps[i] =
                (float)json_number_value(json_array_get(json_object_get(j, "greedy_gaps"), i));
    }
    logits = json_object_get(j, "logits");
    r->n_vocab = (int)json_array_size(json_array_get(logits, 0));
    r->logits = calloc(json_array_size(logits) * (size_t)r->n_vocab + 1, sizeof(float));
    for (size_t p = 0; p < json_array_size(logits); p++) {
        json_t *row = json_array_get(logits, p);
        for (int v = 0; v < r->n_vocab; v++)
            r->logits[p * (size_t)r->n_vocab + (size_t)v] =
                (float)json_number_value(json_array_get(row, (size_t)v));
    }
    json_decref(j);
    return r->ntokens && r->n_vocab ? 0 : -1;
}

void rbt_reference_release(rbt_reference *r)
{
    free(r->tokens);
    free(r->greedy);
    free(r->greedy_gaps);
    free(r->logits);
    memset(r, 0, sizeof(*r));
}

#define CYC_VOCAB 261 /* <unk> <s> </s>, 256 bytes, "\xE2\x96\x81x", "x" */
#define CYC_DIM 264
#define CYC_FF 8
#define TOK_C3 (3 + 0xC3)
#define TOK_A9 (3 + 0xA9)
#define TOK_SPX 259

static int cycle_next(int t)
{
    return t == TOK_SPX ? TOK_C3 : t == TOK_C3 ? TOK_A9 : TOK_SPX;
}

static int add(eng_gguf_writer *w, const char *name, int64_t ne0, int64_t ne1, const float *v)
{
    int64_t ne[2] = {ne0, ne1};
    return eng_gguf_writer_add_tensor(w, name, ENG_TYPE_F32, ne1 > 1 ? 2 : 1, ne, v,
                                      (uint64_t)(ne0 * ne1) * sizeof(float));
}

int rbt_make_cycle_model(const char *path)
{
    eng_gguf_writer *w = eng_gguf_writer_new();
    char *tok[CYC_VOCAB];
    float scores[CYC_VOCAB];
    int32_t types[CYC_VOCAB];
    float *emb = calloc((size_t)CYC_VOCAB * CYC_DIM, sizeof(float));
    float *out = calloc((size_t)CYC_VOCAB * CYC_DIM, sizeof(float));
    float *zeros = calloc((size_t)CYC_DIM * CYC_DIM, sizeof(float));
    float ones[CYC_DIM];
    char err[256];
    int rc = 0;

    for (int i = 0; i < CYC_DIM; i++)
        ones[i] = 1.0f;
    for (int i = 0; i < CYC_VOCAB; i++) {
        char buf[16];
        if (i < 3)
            snprintf(buf, sizeof buf, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        else
            snprintf(buf, sizeof buf, "%s", i == TOK_SPX ? "\xE2\x96\x81x" : "x");
        tok[i] = strdup(buf);
        scores[i] = i >= 259 ? 0.0f : -1000.0f;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
        emb[(size_t)i * CYC_DIM + (size_t)i] = 1.0f;             /* one-hot embedding */
        out[(size_t)cycle_next(i) * CYC_DIM + (size_t)i] = 1.0f; /* row next(t) fires on t */
    }
    rc |= eng_gguf_writer_set_str(w, "general.architecture", "llama");
    rc |= eng_gguf_writer_set_str(w, "general.name", "cycle test model");
    rc |= eng_gguf_writer_set_u32(w, "llama.context_length", 256);
    rc |= eng_gguf_writer_set_u32(w, "llama.embedding_length", CYC_DIM);
    rc |= eng_gguf_writer_set_u32(w, "llama.block_count", 1);
    rc |= eng_gguf_writer_set_u32(w, "llama.feed_forward_length", CYC_FF);
    rc |= eng_gguf_writer_set_u32(w, "llama.attention.head_count", 1);
    rc |= eng_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 1);
    rc |= eng_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    rc |= eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok,
                                      CYC_VOCAB);
    rc |= eng_gguf_writer_set_arr(w, "tokenizer.ggml.scores", ENG_GGUF_F32, scores, CYC_VOCAB);
    rc |= eng_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", ENG_GGUF_I32, types, CYC_VOCAB);
    rc |= eng_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc |= eng_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    rc |= eng_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    rc |= add(w, "token_embd.weight", CYC_DIM, CYC_VOCAB, emb);
    rc |= add(w, "blk.0.attn_norm.weight", CYC_DIM, 1, ones);
    rc |= add(w, "blk.0.attn_q.weight", CYC_DIM, CYC_DIM, zeros);
    rc |= add(w, "blk.0.attn_k.weight", CYC_DIM, CYC_DIM, zeros);
    rc |= add(w, "blk.0.attn_v.weight", CYC_DIM, CYC_DIM, zeros);
    rc |= add(w, "blk.0.attn_output.weight", CYC_DIM, CYC_DIM, zeros);
    rc |= add(w, "blk.0.ffn_norm.weight", CYC_DIM, 1, ones);
    rc |= add(w, "blk.0.ffn_gate.weight", CYC_DIM, CYC_FF, zeros);
    rc |= add(w, "blk.0.ffn_up.weight", CYC_DIM, CYC_FF, zeros);
    rc |= add(w, "blk.0.ffn_down.weight", CYC_FF, CYC_DIM, zeros);
    rc |= add(w, "output_norm.weight", CYC_DIM, 1, ones);
    rc |= add(w, "output.weight", CYC_DIM, CYC_VOCAB, out);
    if (!rc)
        rc = eng_gguf_writer_write(w, path, err, sizeof err);
    for (int i = 0; i < CYC_VOCAB; i++)
        free(tok[i]);
    free(emb);
    free(out);
    free(zeros);
    eng_gguf_writer_free(w);
    return rc ? -1 : 0;
}

eng_model *rbt_open_model(const char *path)
{
    eng_model *m = NULL;
    char err[512];
    ck_assert_msg(path != NULL, "model fixture missing under models/");
    ck_assert_msg(eng_model_open(path, NULL, &m, err, sizeof err) == RB_OK, "%s", err);
    return m;
}

int rbt_argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}
