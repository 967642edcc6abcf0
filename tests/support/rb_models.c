/*
 * rb_models.c - models/ fixtures and reference JSON files for tests.
 */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rb_models.h"

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

const char *rbt_model_gqa(void)
{
    static char p[4096];
    FILE *f;
    snprintf(p, sizeof p, "%s/models/test-gqa-random-f16.gguf", RB_SOURCE_DIR);
    f = fopen(p, "rb");
    if (!f)
        return NULL;
    fclose(f);
    return p;
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
             json_string_value(json_object_get(j, "prompt")) ? json_string_value(
                 json_object_get(j, "prompt")) : "");
    r->tokens = int_array(json_object_get(j, "tokens"), &r->ntokens);
    r->greedy = int_array(json_object_get(j, "greedy"), &r->ngreedy);
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
    free(r->logits);
    memset(r, 0, sizeof(*r));
}
