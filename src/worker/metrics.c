/*
 * metrics.c - counters (atomics) and two summaries kept as rings of the latest samples, whose
 * quantiles are computed when /metrics is scraped; the resident set is read from
 * /proc/self/statm at each scrape.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "rb_mem.h"

#define RING 1024

static const char *const outcome_names[WRK_OUT__COUNT] = {"completed", "cancelled", "error",
                                                          "rejected", "invalid"};

typedef struct summary {
    double v[RING];
    long n; /* samples ever */
    double sum;
} summary;

struct wrk_metrics {
    atomic_long requests[WRK_OUT__COUNT];
    atomic_long tokens;
    pthread_mutex_t mu; /* guards the summaries */
    summary ttft, rate;
};

wrk_metrics *wrk_metrics_new(void)
{
    wrk_metrics *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void wrk_metrics_free(wrk_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void wrk_metrics_request(wrk_metrics *m, wrk_outcome o)
{
    atomic_fetch_add(&m->requests[o], 1);
}

void wrk_metrics_tokens(wrk_metrics *m, long n)
{
    atomic_fetch_add(&m->tokens, n);
}

long wrk_metrics_count(wrk_metrics *m, wrk_outcome o)
{
    return atomic_load(&m->requests[o]);
}

long wrk_metrics_tokens_total(wrk_metrics *m)
{
    return atomic_load(&m->tokens);
}

static void summary_add(summary *s, double v)
{
    s->v[s->n % RING] = v;
    s->n++;
    s->sum += v;
}

void wrk_metrics_generation(wrk_metrics *m, double ttft_ms, double tokens_per_sec)
{
    pthread_mutex_lock(&m->mu);
    summary_add(&m->ttft, ttft_ms / 1000.0);
    if (tokens_per_sec > 0)
        summary_add(&m->rate, tokens_per_sec);
    pthread_mutex_unlock(&m->mu);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void render_summary(rb_buf *out, const char *name, const char *help, summary *s,
                           double *scratch)
{
    long n = s->n < RING ? s->n : RING;
    static const double qs[] = {0.5, 0.9, 0.99};

    rb_buf_appendf(out, "# HELP %s %s\n# TYPE %s summary\n", name, help, name);
    memcpy(scratch, s->v, (size_t)n * sizeof(double));
    qsort(scratch, (size_t)n, sizeof(double), cmp_double);
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        if (n)
            rb_buf_appendf(out, "%s{quantile=\"%g\"} %.6f\n", name, qs[i],
                           scratch[(long)(qs[i] * (double)(n - 1) + 0.5)]);
        else
            rb_buf_appendf(out, "%s{quantile=\"%g\"} NaN\n", name, qs[i]);
    }
    rb_buf_appendf(out, "%s_sum %.6f\n%s_count %ld\n", name, s->sum, name, s->n);
}

void wrk_metrics_render(wrk_metrics *m, rb_buf *out, int queue_depth, int slots_busy,
                        int slots_total, const char *state)
{
    double *scratch = malloc(RING * sizeof(double));

    rb_buf_appends(out, "# HELP rbee_worker_requests_total Inference requests by outcome.\n"
                        "# TYPE rbee_worker_requests_total counter\n");
    for (int i = 0; i < WRK_OUT__COUNT; i++)
        rb_buf_appendf(out, "rbee_worker_requests_total{outcome=\"%s\"} %ld\n", outcome_names[i],
                       atomic_load(&m->requests[i]));
    rb_buf_appendf(out,
                   "# HELP rbee_worker_tokens_generated_total Tokens sampled.\n"
                   "# TYPE rbee_worker_tokens_generated_total counter\n"
                   "rbee_worker_tokens_generated_total %ld\n"
                   "# HELP rbee_worker_queue_depth Jobs waiting for a slot.\n"
                   "# TYPE rbee_worker_queue_depth gauge\n"
                   "rbee_worker_queue_depth %d\n"
                   "# HELP rbee_worker_slots_busy Generation slots in use.\n"
                   "# TYPE rbee_worker_slots_busy gauge\n"
                   "rbee_worker_slots_busy %d\n"
                   "# HELP rbee_worker_slots_total Generation slots.\n"
                   "# TYPE rbee_worker_slots_total gauge\n"
                   "rbee_worker_slots_total %d\n"
                   "# HELP rbee_worker_ready 1 once the model is loaded.\n"
                   "# TYPE rbee_worker_ready gauge\n"
                   "rbee_worker_ready{state=\"%s\"} %d\n",
                   atomic_load(&m->tokens), queue_depth, slots_busy, slots_total, state,
                   strcmp(state, "loading") != 0);
    {
        uint64_t rss = 0;
        if (rb_proc_rss_bytes(0, &rss) == RB_OK)
            rb_buf_appendf(out,
                           "# HELP rbee_worker_resident_memory_bytes Resident set of the worker "
                           "process (weights, KV cache, buffers).\n"
                           "# TYPE rbee_worker_resident_memory_bytes gauge\n"
                           "rbee_worker_resident_memory_bytes %llu\n",
                           (unsigned long long)rss);
    }
    if (scratch) {
        pthread_mutex_lock(&m->mu);
        render_summary(out, "rbee_worker_time_to_first_token_seconds",
                       "Time from request to first token.", &m->ttft, scratch);
        render_summary(out, "rbee_worker_decode_tokens_per_second",
                       "Decode rate of finished generations.", &m->rate, scratch);
        pthread_mutex_unlock(&m->mu);
        free(scratch);
    }
}
