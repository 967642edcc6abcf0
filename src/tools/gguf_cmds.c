/*
 * gguf_cmds.c - rbee-gguf generate, quantize and random.
 *
 *     rbee-gguf generate FILE --prompt TEXT -n N [--temp T] [--top-k K] [--top-p P]
 *                        [--seed S] [--threads N]       continuation only, streamed to stdout
 *     rbee-gguf quantize IN OUT TYPE [--threads N]      TYPE: f32 f16 bf16 q8_0 q4_0 q2_k
 *                                                       q3_k_s q3_k_m q4_k q4_k_m q6_k
 *                                                       iq4_nl iq4_xs
 *     rbee-gguf random OUT --like tinyllama-1.1b --type q4_0 [--vocab VOCAB.gguf] [--seed S]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng.h"
#include "eng_tools.h"
#include "gguf_cmds.h"
#include "rb_args.h"
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
    long long n = 64, threads = 0, top_k = 0;
    double temp = 0.8, top_p = 1.0;
    unsigned long long seed = 0;
    eng_model_params mp = eng_model_params_default();
    eng_session_params sp = eng_session_params_default();
    eng_sampler_params smp = eng_sampler_params_default();
    eng_model *m = NULL;
    eng_session *s = NULL;
    int32_t *ids = NULL;
    size_t nids;
    char err[512];
    int code = 1;

    const char *pos[1];
    size_t npos = 0;
    const rb_opt opts[] = {
        {"--prompt", RB_OPT_STR, &prompt},
        {"-n", RB_OPT_LLONG, &n, 1, 1 << 20},
        {"--temp", RB_OPT_NUM, &temp, 0, 100},
        {"--top-k", RB_OPT_LLONG, &top_k, 0, 1 << 24},
        {"--top-p", RB_OPT_NUM, &top_p, 0, 1},
        {"--seed", RB_OPT_U64, &seed},
        {"--threads", RB_OPT_LLONG, &threads, 0, 256},
    };

    if (rb_args_parse(PROG " generate", argc - 1, argv + 1, opts, RB_ARRAY_LEN(opts), pos, 1, &npos,
                      err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    path = npos ? pos[0] : NULL;
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
        eng_session_reset(s, &smp, NULL, 0) || eng_session_prefill(s, ids, nids, err, sizeof err)) {
        fprintf(stderr, "%s: cannot run the prompt: %s\n", PROG, err);
        goto out;
    }
    for (long long i = 0; i < n; i++) {
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
    size_t npos = 0;
    long long threads = 0;
    char err[512];
    const rb_opt opts[] = {{"--threads", RB_OPT_LLONG, &threads, 1, 256}};

    if (rb_args_parse(PROG " quantize", argc - 1, argv + 1, opts, 1, pos, 3, &npos, err,
                      sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return bad("quantize", "usage: quantize IN OUT TYPE [--threads N]");
    }
    if (npos != 3)
        return bad("quantize", "usage: quantize IN OUT TYPE [--threads N]");
    if (!eng_ftype_known(pos[2])) {
        fprintf(stderr,
                "%s quantize: unknown type '%s' (known: f32 f16 bf16 q8_0 q4_0 q2_k q3_k_s "
                "q3_k_m q4_k q4_k_m q6_k iq4_nl iq4_xs)\n",
                PROG, pos[2]);
        return 1;
    }
    if (eng_quantize_file(pos[0], pos[1], pos[2], threads ? (int)threads : rb_physical_cores(), err,
                          sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    return 0;
}

int gguf_cmd_random(int argc, char **argv)
{
    const char *out = NULL, *like = NULL, *type = "f16", *vocab = NULL;
    unsigned long long seed = 1;
    char err[512];

    const char *pos[1];
    size_t npos = 0;
    const rb_opt opts[] = {
        {"--like", RB_OPT_STR, &like},
        {"--type", RB_OPT_STR, &type},
        {"--vocab", RB_OPT_STR, &vocab},
        {"--seed", RB_OPT_U64, &seed},
    };

    if (rb_args_parse(PROG " random", argc - 1, argv + 1, opts, RB_ARRAY_LEN(opts), pos, 1, &npos,
                      err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    out = npos ? pos[0] : NULL;
    if (!out || !like)
        return bad("random", "usage: random OUT --like tinyllama-1.1b|tiny --type TYPE "
                             "[--vocab VOCAB.gguf] [--seed S]");
    if (eng_random_model(out, like, type, vocab, seed, rb_physical_cores(), err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    return 0;
}
