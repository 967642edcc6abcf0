/*
 * bench_stream.c - `rbee-bench stream`: what a client of a running worker experiences.
 *
 * For each concurrency level c, c client threads each send `requests` inference requests one
 * after another (temperature 0) and time, per request: the handler latency (request start to
 * response headers), the time to the first token, and every gap between consecutive tokens.
 * --route picks the API: inference (POST /v1/inference, token events), chat
 * (POST /v1/chat/completions, stream true: chunks with delta content) or completions
 * (POST /v1/completions, stream true: chunks with text); on OpenAI's routes a "token" is a
 * chunk with non-empty content, so the same worker can be compared across its APIs. Aggregate
 * throughput is all tokens received divided by the wall time of the level.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "rb_args.h"
#include "rb_client.h"
#include "rb_json.h"
#include "rb_util.h"

#define MAX_CLIENTS 64
#define MAX_GAPS (1 << 20)

typedef struct level_stats {
    pthread_mutex_t mu;
    double *headers_ms, *ttft_ms, *gaps_ms;
    size_t nreq, ngaps;
    long tokens;
    int errors;
} level_stats;

typedef enum route {
    ROUTE_INFERENCE,
    ROUTE_CHAT,
    ROUTE_COMPLETIONS,
} route;

typedef struct client {
    route route;
    const char *url;
    const char *body;
    int requests;
    level_stats *st;
} client;

typedef struct req_state {
    route route;
    int64_t start_us, last_us;
    int64_t first_us;
    long tokens;
    double *gaps;
    size_t ngaps, capgaps;
} req_state;

static int on_event(void *user, const char *event, const char *data, size_t len)
{
    req_state *r = user;
    int64_t now = rb_now_us();
    (void)event, (void)len;
    if (r->route == ROUTE_INFERENCE) {
        if (strstr(data, "\"type\":\"token\"") == NULL)
            return 0;
    } else {
        /* A chunk with non-empty text (not the role chunk, nor the finish or usage chunks). */
        const char *key = r->route == ROUTE_CHAT ? "\"delta\":{\"content\":\"" : "\"text\":\"";
        const char *at = strstr(data, key);
        if (!at || at[strlen(key)] == '"')
            return 0;
    }
    if (!r->first_us)
        r->first_us = now;
    else if (r->ngaps < r->capgaps)
        r->gaps[r->ngaps++] = (double)(now - r->last_us) / 1000.0;
    r->last_us = now;
    r->tokens++;
    return 0;
}

static void *client_main(void *arg)
{
    client *c = arg;
    rb_sse_opts o = rb_sse_opts_default();
    double gaps[4096];

    o.idle_timeout_ms = 30000;
    o.deadline_ms = 600000;
    o.token = getenv("RBEE_API_TOKEN");
    for (int i = 0; i < c->requests; i++) {
        req_state r = {0};
        rb_sse_result res;
        char err[256];
        rb_err rc;

        r.route = c->route;
        r.gaps = gaps;
        r.capgaps = sizeof gaps / sizeof gaps[0];
        r.start_us = rb_now_us();
        rb_sse_result_init(&res);
        rc = rb_client_sse("POST", c->url, c->body, &o, on_event, &r, &res, err, sizeof err);
        pthread_mutex_lock(&c->st->mu);
        if (rc || !r.first_us) {
            c->st->errors++;
            fprintf(stderr, "rbee-bench: request failed: %s\n", rc ? err : "no tokens");
        } else {
            c->st->headers_ms[c->st->nreq] = (double)res.headers_us / 1000.0;
            c->st->ttft_ms[c->st->nreq] = (double)(r.first_us - r.start_us) / 1000.0;
            c->st->nreq++;
            for (size_t g = 0; g < r.ngaps && c->st->ngaps < MAX_GAPS; g++)
                c->st->gaps_ms[c->st->ngaps++] = r.gaps[g];
            c->st->tokens += r.tokens;
        }
        pthread_mutex_unlock(&c->st->mu);
        rb_sse_result_release(&res);
    }
    return NULL;
}

int bench_stream_main(int argc, char **argv)
{
    const char *base = NULL, *prompt = "In the beginning", *clients_arg = "1,2,4";
    const char *route_arg = "inference";
    size_t sent = 0;
    int failed = 0;
    route rt;
    int requests = 8, max_tokens = 128, json_out = 0, levels[16], nlevels = 0;
    char url[512], *body;
    json_t *req;

    char err[256];
    const rb_opt opts[] = {
        {"--url", RB_OPT_STR, &base, .what = "WORKER_URL", .help = "the worker (required)"},
        {"--clients", RB_OPT_STR, &clients_arg, .what = "N,N,...",
         .help = "concurrent clients per round (default 1,2,4)"},
        {"--requests", RB_OPT_INT, &requests, 1, 10000, .help = "requests per round (default 8)"},
        {"--max-tokens", RB_OPT_INT, &max_tokens, 1, 2048, .help = "per request (default 128)"},
        {"--prompt", RB_OPT_STR, &prompt, .help = "default \"In the beginning\""},
        {"--route", RB_OPT_STR, &route_arg, .what = "inference|chat|completions",
         .help = "the endpoint measured (default inference)"},
        {"--json", RB_OPT_FLAG, &json_out, .help = "one JSON object"},
    };
    const rb_cmd cmd = {"rbee-bench stream",
                        NULL,
                        "Latency and throughput of a running worker, over HTTP.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        NULL,
                        0};
    int shown = 0;

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (shown)
        return 0;
    if (!base) {
        fprintf(stderr, "rbee-bench stream: --url is required\n");
        return 1;
    }
    for (const char *p = clients_arg; *p && nlevels < 16;) {
        char *end;
        long c = strtol(p, &end, 10);
        if (end == p || c < 1 || c > MAX_CLIENTS) {
            fprintf(stderr, "rbee-bench stream: bad --clients '%s'\n", clients_arg);
            return 1;
        }
        levels[nlevels++] = (int)c;
        p = *end == ',' ? end + 1 : end;
    }
    if (strcmp(route_arg, "inference") == 0)
        rt = ROUTE_INFERENCE;
    else if (strcmp(route_arg, "chat") == 0)
        rt = ROUTE_CHAT;
    else if (strcmp(route_arg, "completions") == 0)
        rt = ROUTE_COMPLETIONS;
    else {
        fprintf(stderr, "rbee-bench stream: --route must be inference, chat or completions\n");
        return 1;
    }
    rb_client_global_init();
    snprintf(url, sizeof url, "%s%s", base,
             rt == ROUTE_CHAT          ? "/v1/chat/completions"
             : rt == ROUTE_COMPLETIONS ? "/v1/completions"
                                       : "/v1/inference");
    if (rt == ROUTE_CHAT)
        req =
            json_pack("{s:[{s:s, s:s}], s:i, s:f, s:i, s:b}", "messages", "role", "user", "content",
                      prompt, "max_tokens", max_tokens, "temperature", 0.0, "seed", 1, "stream", 1);
    else
        req = json_pack("{s:s, s:i, s:f, s:i}", "prompt", prompt, "max_tokens", max_tokens,
                        "temperature", 0.0, "seed", 1);
    if (rt == ROUTE_COMPLETIONS)
        json_object_set_new(req, "stream", json_true());
    body = rb_json_dump(req);
    json_decref(req);

    if (!json_out)
        printf("%-8s %12s %12s %12s %12s %14s %7s\n", "clients", "handler_ms", "ttft_ms",
               "gap_p50_ms", "gap_p99_ms", "agg_tok_per_s", "errors");
    for (int l = 0; l < nlevels; l++) {
        int c = levels[l];
        sent += (size_t)c * (size_t)requests;
        size_t maxreq = (size_t)c * (size_t)requests;
        level_stats st = {0};
        client cl[MAX_CLIENTS];
        pthread_t t[MAX_CLIENTS];
        int64_t t0, t1;

        pthread_mutex_init(&st.mu, NULL);
        st.headers_ms = calloc(maxreq, sizeof(double));
        st.ttft_ms = calloc(maxreq, sizeof(double));
        st.gaps_ms = calloc(MAX_GAPS, sizeof(double));
        t0 = rb_now_us();
        for (int i = 0; i < c; i++) {
            cl[i] = (client){rt, url, body, requests, &st};
            pthread_create(&t[i], NULL, client_main, &cl[i]);
        }
        for (int i = 0; i < c; i++)
            pthread_join(t[i], NULL);
        t1 = rb_now_us();
        double agg = st.tokens * 1e6 / (double)(t1 - t0);
        double h50 = bench_quantile(st.headers_ms, st.nreq, 0.5);
        double f50 = bench_quantile(st.ttft_ms, st.nreq, 0.5);
        double g50 = bench_quantile(st.gaps_ms, st.ngaps, 0.5);
        double g99 = bench_quantile(st.gaps_ms, st.ngaps, 0.99);
        if (json_out)
            printf("{\"clients\":%d,\"requests\":%zu,\"headers_ms_p50\":%.3f,\"ttft_ms_p50\":%.3f,"
                   "\"gap_ms_p50\":%.3f,\"gap_ms_p99\":%.3f,\"aggregate_tokens_per_s\":%.1f,"
                   "\"errors\":%d}\n",
                   c, st.nreq, h50, f50, g50, g99, agg, st.errors);
        else
            printf("%-8d %12.3f %12.2f %12.3f %12.3f %14.1f %7d\n", c, h50, f50, g50, g99, agg,
                   st.errors);
        fflush(stdout);
        failed += st.errors;
        free(st.headers_ms);
        free(st.ttft_ms);
        free(st.gaps_ms);
        pthread_mutex_destroy(&st.mu);
    }
    free(body);
    if (failed)
        fprintf(stderr, "rbee-bench stream: %d of %zu requests failed\n", failed, sent);
    return failed ? 1 : 0;
}
