/*
 * bench_engine.c - `rbee-bench engine`: prompt processing (pp) and text generation (tg)
 * speed of the engine, measured like llama-bench.
 *
 * pp: a fresh context takes p prompt tokens in one prefill; tokens/s = p / time.
 * tg: a fresh context takes one token, then n single-token forward passes follow, each on
 *     the token before (decoding without sampling, so an end-of-text token cannot cut the run
 *     short); tokens/s = n / time.
 * bN: with -b LIST, for each N of the list, N sessions of one batch (eng_batch_open) take one
 *     token each, then n batched passes follow, each running one token of every session in one
 *     forward pass (the worker's decoding step with N streams); tokens/s = N * n / time, and
 *     the ratio to N = 1 of the same run is printed. The sizes run interleaved in each round.
 * Each test runs r times after one warm-up; median, min and max are printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "bench.h"
#include "eng.h"
#include "rb_args.h"
#include "rb_util.h"

typedef struct engine_args {
    const char *model;
    const char *kv_type; /* f16 (default), q8_0 or f32 */
    const char *batches; /* -b: comma-separated batch sizes, or NULL */
    int p, n, threads, reps, json, no_mmap;
    int nb, b[16];
} engine_args;

/* 0 when the run may start, 1 after -h/--help, -1 after a usage error (printed). */
static int parse(engine_args *a, int argc, char **argv)
{
    char err[256];
    const rb_opt opts[] = {
        {"-m", RB_OPT_STR, &a->model, .what = "MODEL.gguf", .help = "the model (required)"},
        {"-p", RB_OPT_INT, &a->p, 1, 65536, .help = "prompt tokens per prefill (default 128)"},
        {"-n", RB_OPT_INT, &a->n, 1, 65536, .help = "tokens decoded per run (default 64)"},
        {"-t", RB_OPT_INT, &a->threads, 1, 256, .help = "threads (default: physical cores)"},
        {"-r", RB_OPT_INT, &a->reps, 1, 1000, .help = "repetitions, the median is shown (5)"},
        {"--kv-type", RB_OPT_STR, &a->kv_type, .what = "f16|q8_0|f32",
         .help = "KV cache type (default f16)"},
        {"-b", RB_OPT_STR, &a->batches, .what = "N,N,...",
         .help = "also decode N sequences in batched passes, for each N (e.g. 1,2,4,8)"},
        {"--no-mmap", RB_OPT_FLAG, &a->no_mmap, .help = "read the weights into memory"},
        {"--json", RB_OPT_FLAG, &a->json, .help = "one JSON object"},
    };
    const rb_cmd cmd = {"rbee-bench engine",
                        NULL,
                        "Prefill and decode speed of the engine alone.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        NULL,
                        0};
    int shown = 0;

    a->p = 128;
    a->n = 64;
    a->reps = 5;
    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (shown)
        return 1;
    if (a->kv_type && !(strcasecmp(a->kv_type, "f16") == 0 || strcasecmp(a->kv_type, "q8_0") == 0 ||
                        strcasecmp(a->kv_type, "f32") == 0)) {
        fprintf(stderr, "rbee-bench engine: --kv-type must be f16, q8_0 or f32, not '%s'\n",
                a->kv_type);
        return -1;
    }
    for (const char *c = a->batches; c && *c;) {
        char *end;
        long v = strtol(c, &end, 10);
        if (end == c || v < 1 || v > ENG_BATCH_MAX_SEQ || a->nb == RB_ARRAY_LEN(a->b) ||
            (*end && *end != ',')) {
            fprintf(stderr,
                    "rbee-bench engine: -b takes up to 16 sizes of 1 to %d, comma-separated, not "
                    "'%s'\n",
                    ENG_BATCH_MAX_SEQ, a->batches);
            return -1;
        }
        a->b[a->nb++] = (int)v;
        c = *end ? end + 1 : end;
    }
    if (!a->model) {
        fprintf(stderr, "rbee-bench engine: -m MODEL is required\n");
        return -1;
    }
    return 0;
}

/* One pp run: seconds. */
static double run_pp(eng_session *s, const int32_t *toks, int p)
{
    char err[256];
    int64_t t0;
    eng_session_reset(s, NULL, NULL, 0);
    t0 = rb_now_us();
    if (eng_session_prefill(s, toks, (size_t)p, err, sizeof err)) {
        fprintf(stderr, "rbee-bench engine: %s\n", err);
        return -1;
    }
    return (double)(rb_now_us() - t0) / 1e6;
}

/* One tg run: seconds for n single-token passes. */
static double run_tg(eng_session *s, const int32_t *toks, int n)
{
    char err[256];
    int64_t t0;
    eng_session_reset(s, NULL, NULL, 0);
    if (eng_session_prefill(s, toks, 1, err, sizeof err))
        return -1;
    t0 = rb_now_us();
    for (int i = 1; i <= n; i++)
        if (eng_session_prefill(s, toks + i, 1, err, sizeof err)) {
            fprintf(stderr, "rbee-bench engine: %s\n", err);
            return -1;
        }
    return (double)(rb_now_us() - t0) / 1e6;
}

/* One bN run: seconds for n passes of one token of each of the first nseq sessions. */
static double run_batch(eng_batch *b, int nseq, const int32_t *toks, int n)
{
    char err[256];
    eng_batch_entry e[ENG_BATCH_MAX_SEQ];
    int64_t t0 = 0;
    for (int i = 0; i < nseq; i++)
        eng_session_reset(eng_batch_session(b, i), NULL, NULL, 0);
    for (int step = 0; step <= n; step++) {
        if (step == 1)
            t0 = rb_now_us(); /* after the first pass, as for tg */
        for (int i = 0; i < nseq; i++)
            e[i] = (eng_batch_entry){eng_batch_session(b, i), toks + (step + i) % (n + 1), 1};
        if (eng_batch_decode(b, e, nseq, err, sizeof err)) {
            fprintf(stderr, "rbee-bench engine: %s\n", err);
            return -1;
        }
    }
    return (double)(rb_now_us() - t0) / 1e6;
}

/* The -b runs: r rounds, each running every size once; prints medians and ratios to N = 1. */
static int bench_batches(eng_model *m, const eng_session_params *p, const engine_args *a,
                         const int32_t *toks)
{
    char err[512];
    eng_batch *b = NULL;
    int most = 1, rc = -1;
    double *tps = calloc((size_t)a->nb * (size_t)a->reps, sizeof(double)), med[16], one = 0;
    eng_session_params sp = *p;
    for (int i = 0; i < a->nb; i++)
        most = a->b[i] > most ? a->b[i] : most;
    sp.n_ctx = a->n + 2;
    sp.n_batch = most;
    if (!tps || eng_batch_open(m, &sp, most, &b, err, sizeof err)) {
        fprintf(stderr, "rbee-bench engine: %s\n", tps ? err : "out of memory");
        goto out;
    }
    for (int i = 0; i < a->nb; i++) /* warm-up */
        if (run_batch(b, a->b[i], toks, 4) < 0)
            goto out;
    for (int r = 0; r < a->reps; r++)
        for (int i = 0; i < a->nb; i++) {
            double t = run_batch(b, a->b[i], toks, a->n);
            if (t <= 0)
                goto out;
            tps[i * a->reps + r] = (double)a->b[i] * a->n / t;
            if (!a->json)
                fprintf(stderr, "rep %d: b%d %.1f tok/s\n", r + 1, a->b[i], tps[i * a->reps + r]);
        }
    for (int i = 0; i < a->nb; i++) {
        med[i] = bench_quantile(tps + i * a->reps, (size_t)a->reps, 0.5);
        if (a->b[i] == 1)
            one = med[i];
    }
    for (int i = 0; i < a->nb; i++) {
        const double *v = tps + i * a->reps;
        printf("b%-2d x tg%-5d %9.1f tok/s  (min %.1f, max %.1f, %d runs)", a->b[i], a->n, med[i],
               v[0], v[a->reps - 1], a->reps);
        if (one > 0)
            printf("  %.2fx of b1", med[i] / one);
        printf("\n");
    }
    rc = 0;
out:
    eng_batch_free(b);
    free(tps);
    return rc;
}

int bench_engine_main(int argc, char **argv)
{
    engine_args a = {0};
    int rc;
    eng_model_params mp = eng_model_params_default();
    eng_session_params sp = eng_session_params_default();
    eng_model *m = NULL;
    eng_session *s = NULL;
    eng_model_info info;
    char err[512];
    int32_t *toks = NULL;
    double *pp = NULL, *tg = NULL;
    int code = 1, len;
    struct rusage ru;

    if ((rc = parse(&a, argc, argv)) != 0)
        return rc < 0 ? 1 : 0;
    mp.copy_weights = a.no_mmap;
    if (eng_model_open(a.model, &mp, &m, err, sizeof err)) {
        fprintf(stderr, "rbee-bench engine: %s\n", err);
        return 1;
    }
    eng_model_get_info(m, &info);
    len = a.p > a.n + 1 ? a.p : a.n + 1;
    sp.n_ctx = len + 1;
    sp.n_threads = a.threads;
    sp.n_batch = a.p;
    if (a.kv_type)
        sp.kv_type = (eng_type)eng_type_parse(a.kv_type);
    if (sp.n_ctx > info.n_ctx_train) {
        fprintf(stderr, "rbee-bench engine: the model's context (%d) is shorter than %d tokens\n",
                info.n_ctx_train, len + 1);
        goto out;
    }
    if (eng_session_open(m, &sp, &s, err, sizeof err)) {
        fprintf(stderr, "rbee-bench engine: %s\n", err);
        goto out;
    }
    toks = malloc((size_t)len * sizeof(*toks));
    pp = calloc((size_t)a.reps, sizeof(double));
    tg = calloc((size_t)a.reps, sizeof(double));
    if (!toks || !pp || !tg)
        goto out;
    for (int i = 0; i < len; i++)
        toks[i] = (int32_t)((1103515245u * (unsigned)i + 12345u) % (unsigned)info.n_vocab);
    run_pp(s, toks, a.p); /* warm-up: page in the weights, fault in the buffers */
    run_tg(s, toks, a.n < 8 ? a.n : 8);
    for (int r = 0; r < a.reps; r++) {
        double tp = run_pp(s, toks, a.p), tt = run_tg(s, toks, a.n);
        if (tp <= 0 || tt <= 0)
            goto out;
        pp[r] = a.p / tp;
        tg[r] = a.n / tt;
        if (!a.json)
            fprintf(stderr, "rep %d: pp %.1f tok/s, tg %.1f tok/s\n", r + 1, pp[r], tg[r]);
    }
    if (a.nb && bench_batches(m, &sp, &a, toks))
        goto out;
    getrusage(RUSAGE_SELF, &ru);
    {
        double pmed = bench_quantile(pp, (size_t)a.reps, 0.5), pmin = pp[0], pmax = pp[a.reps - 1];
        double tmed = bench_quantile(tg, (size_t)a.reps, 0.5), tmin = tg[0], tmax = tg[a.reps - 1];
        printf("model %s: %s, %.2f M params, %.1f MiB, %d threads, %s KV cache\n", a.model,
               eng_type_name(info.main_type), (double)info.n_params / 1e6,
               (double)info.file_size / 1048576.0, eng_session_threads(s),
               eng_type_name(sp.kv_type));
        printf("pp%-5d %9.1f tok/s  (min %.1f, max %.1f, %d runs)\n", a.p, pmed, pmin, pmax,
               a.reps);
        printf("tg%-5d %9.1f tok/s  (min %.1f, max %.1f, %d runs)\n", a.n, tmed, tmin, tmax,
               a.reps);
        printf("peak RSS %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
        if (a.json)
            printf("{\"model\":\"%s\",\"type\":\"%s\",\"kv_type\":\"%s\",\"threads\":%d,\"n_"
                   "prompt\":%d,\"n_gen\":%d,"
                   "\"pp_tokens_per_s\":%.2f,\"pp_min\":%.2f,\"pp_max\":%.2f,"
                   "\"tg_tokens_per_s\":%.2f,\"tg_min\":%.2f,\"tg_max\":%.2f,"
                   "\"file_mib\":%.1f,\"peak_rss_mib\":%.1f}\n",
                   a.model, eng_type_name(info.main_type), eng_type_name(sp.kv_type),
                   eng_session_threads(s), a.p, a.n, pmed, pmin, pmax, tmed, tmin, tmax,
                   (double)info.file_size / 1048576.0, (double)ru.ru_maxrss / 1024.0);
    }
    code = 0;
out:
    free(toks);
    free(pp);
    free(tg);
    eng_session_free(s);
    eng_model_free(m);
    return code;
}
