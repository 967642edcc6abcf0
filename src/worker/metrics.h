/*
 * metrics.h - the worker's counters and summaries, rendered as Prometheus text
 * (internal to the worker). All updates are thread-safe.
 */
#ifndef WRK_METRICS_H
#define WRK_METRICS_H

#include <stdint.h>

#include "rb_buf.h"

typedef enum wrk_outcome {
    WRK_OUT_COMPLETED = 0,
    WRK_OUT_CANCELLED,
    WRK_OUT_ERROR,
    WRK_OUT_REJECTED, /* 503 busy, loading or shutting down */
    WRK_OUT_INVALID,  /* 4xx validation */
    WRK_OUT__COUNT
} wrk_outcome;

typedef struct wrk_metrics wrk_metrics;

wrk_metrics *wrk_metrics_new(void);
void wrk_metrics_free(wrk_metrics *m);
void wrk_metrics_request(wrk_metrics *m, wrk_outcome o);
void wrk_metrics_tokens(wrk_metrics *m, long n);
/* One finished generation: time to first token and decode rate. */
void wrk_metrics_generation(wrk_metrics *m, double ttft_ms, double tokens_per_sec);
long wrk_metrics_count(wrk_metrics *m, wrk_outcome o);
long wrk_metrics_tokens_total(wrk_metrics *m);
/* Appends the Prometheus exposition (gauges passed in by the caller). */
void wrk_metrics_render(wrk_metrics *m, rb_buf *out, int queue_depth, int slots_busy,
                        int slots_total, const char *state);

#endif
