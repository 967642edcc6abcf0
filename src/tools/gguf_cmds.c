/*
 * gguf_cmds.c - rbee-gguf generate, quantize and random.
 *
 *     rbee-gguf generate FILE --prompt TEXT -n N [--temp T] [--top-k K] [--top-p P]
 *                        [--seed S] [--threads N]       continuation only, streamed to stdout
 *     rbee-gguf quantize IN OUT TYPE [--threads N]      TYPE: f32 f16 bf16 q8_0 q4_0 q4_k
 *                                                       q4_k_m q6_k
 *     rbee-gguf random OUT --like tinyllama-1.1b --type q4_0 [--vocab VOCAB.gguf] [--seed S]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng.h"
#include "eng_tools.h"
#include "gguf_cmds.h"
#include "rb_util.h"

#define PROG "rbee-gguf"

static int bad(const char *cmd, const char *what)
{
    fprintf(stderr, "%s %s: %s\n", PROG, cmd, what);
    return 2;
}

int gguf_cmd_generate(int argc, char **argv)
{
    const char *path = NULL, *prompt = NULL;
    int64_t n = 64, threads = 0, top_k = 0;
    double temp = 0.8, top_p = 1.0;
    uint64_t seed = 0;
    eng_model_params mp = eng_model_params_default();
    eng_session_params sp = eng_session_params_default();
    eng_sampler_params smp = eng_sampler_params_default();
    eng_model *m = NULL;
    eng_session *s = NULL;
    int32_t *ids = NULL;
    size_t nids;
    char err[512];
    int code = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (path)
                return bad("generate", "only one model file");
            path = a;
            continue;
        }
        if (!v)
            return bad("generate", "an option is missing its value");
        i++;
        if (strcmp(a, "--prompt") == 0)
            prompt = v;
        else if (strcmp(a, "-n") == 0 && !rb_parse_i64(v, 1, 1 << 20, &n))
            ;
        else if (strcmp(a, "--temp") == 0 && !rb_parse_double(v, 0, 100, &temp))
            ;
        else if (strcmp(a, "--top-k") == 0 && !rb_parse_i64(v, 0, 1 << 24, &top_k))
            ;
        else if (strcmp(a, "--top-p") == 0 && !rb_parse_double(v, 0, 1, &top_p))
            ;
        else if (strcmp(a, "--seed") == 0 && !rb_parse_u64(v, &seed))
            ;
        else if (strcmp(a, "--threads") == 0 && !rb_parse_i64(v, 0, 256, &threads))
            ;
        else {
            fprintf(stderr, "%s generate: bad option %s %s\n", PROG, a, v);
            return 2;
        }
    }
    if (!path || !prompt)
        return bad("generate", "usage: generate FILE --prompt TEXT -n N [--temp T] [--top-k K] "
                               "[--top-p P] [--seed S] [--threads N]");
    if (eng_model_open(path, &mp, &m, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    sp.n_threads = (int)threads;
    if (eng_session_open(m, &sp, &s, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        goto out;
    }
    smp.temperature = (float)temp;
    smp.top_k = (int)top_k;
    smp.top_p = (float)top_p;
    smp.seed = seed;
    if (eng_model_tokenize(m, prompt, strlen(prompt), 1, &ids, &nids) ||
        eng_session_reset(s, &smp, NULL, 0) ||
        eng_session_prefill(s, ids, nids, err, sizeof err)) {
        fprintf(stderr, "%s: cannot run the prompt: %s\n", PROG, err);
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        eng_step st;
        if (eng_session_step(s, &st))
            break;
        fwrite(st.text, 1, st.text_len, stdout);
        fflush(stdout);
        if (st.done)
            break;
        if (i + 1 == n) {
            eng_session_flush(s, &st);
            fwrite(st.text, 1, st.text_len, stdout);
        }
    }
    if (isatty(STDOUT_FILENO))
        putchar('\n'); /* for the prompt's sake; a pipe gets the continuation only */
    code = fflush(stdout) == 0 ? 0 : 1;
out:
    free(ids);
    eng_session_free(s);
    eng_model_free(m);
    return code;
}

int gguf_cmd_quantize(int argc, char **argv)
{
    const char *pos[3];
    int npos = 0;
    int64_t threads = 0;
    char err[512];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc &&
            !rb_parse_i64(argv[i + 1], 1, 256, &threads)) {
            i++;
            continue;
        }
        if (npos == 3)
            return bad("quantize", "usage: quantize IN OUT TYPE [--threads N]");
        pos[npos++] = argv[i];
    }
    if (npos != 3)
        return bad("quantize", "usage: quantize IN OUT TYPE [--threads N]");
    if (!eng_ftype_known(pos[2])) {
        fprintf(stderr, "%s quantize: unknown type '%s' (known: f32 f16 bf16 q8_0 q4_0 q4_k "
                        "q4_k_m q6_k)\n", PROG, pos[2]);
        return 1;
    }
    if (eng_quantize_file(pos[0], pos[1], pos[2], threads ? (int)threads : rb_physical_cores(),
                          err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    return 0;
}

int gguf_cmd_random(int argc, char **argv)
{
    const char *out = NULL, *like = NULL, *type = "f16", *vocab = NULL;
    uint64_t seed = 1;
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (out)
                return bad("random", "only one output file");
            out = a;
            continue;
        }
        if (!v)
            return bad("random", "an option is missing its value");
        i++;
        if (strcmp(a, "--like") == 0)
            like = v;
        else if (strcmp(a, "--type") == 0)
            type = v;
        else if (strcmp(a, "--vocab") == 0)
            vocab = v;
        else if (strcmp(a, "--seed") == 0 && !rb_parse_u64(v, &seed))
            ;
        else {
            fprintf(stderr, "%s random: bad option %s %s\n", PROG, a, v);
            return 2;
        }
    }
    if (!out || !like)
        return bad("random", "usage: random OUT --like tinyllama-1.1b|tiny --type TYPE "
                             "[--vocab VOCAB.gguf] [--seed S]");
    if (eng_random_model(out, like, type, vocab, seed, rb_physical_cores(), err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    return 0;
}
