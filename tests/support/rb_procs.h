/*
 * rb_procs.h - the project's daemons as child processes of a test, and SSE streams recorded
 * with arrival times.
 *
 *     rbt_proc hive, worker;
 *     rbt_start_mock_hive(&hive, dir);
 *     rbt_start_worker(&worker, dir, rbt_model_q8(), hive.base, NULL, NULL);
 *     rbt_stream st;
 *     rbt_stream_post(&st, worker.base, "/v1/inference", "{\"prompt\":\"x\"}", 30000, 60000);
 *     ... st.ev[i].data, st.ev[i].at_ms ...
 *     rbt_stream_release(&st);
 *     ck_assert_int_eq(rbt_stop(&worker, 5000), 0);
 *
 * Every wait has a deadline; a process that does not start or stop in time fails the test.
 */
#ifndef RB_PROCS_H
#define RB_PROCS_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "rb_client.h"

typedef struct rbt_proc {
    pid_t pid;
    int port;
    char log[4200];
    char base[64]; /* "http://127.0.0.1:<port>" */
} rbt_proc;

/* Starts mock-hive on a free port (logs in dir/mock-hive.log). */
void rbt_start_mock_hive(rbt_proc *p, const char *dir);
/* Starts llm-worker-rbee in local mode on a free port with the given model, reporting to
 * hive_url (may be NULL). extra: more arguments (NULL-terminated, may be NULL); env: extra
 * "K=V" entries (may be NULL). Waits until it listens. */
void rbt_start_worker(rbt_proc *p, const char *dir, const char *model, const char *hive_url,
                      const char *const *extra, char *const *env);
/* Waits until GET base/v1/ready says ready (deadline timeout_ms); 1 if it did. */
int rbt_wait_ready(const rbt_proc *p, int timeout_ms);
/* SIGTERM, then waits up to timeout_ms; returns the exit code, or -1 (then SIGKILLs). */
int rbt_stop(rbt_proc *p, int timeout_ms);

typedef struct rbt_event {
    char *data;
    int64_t at_ms; /* arrival, monotonic */
    int64_t at_us; /* the same in microseconds, read from the kernel by the test itself */
} rbt_event;

typedef struct rbt_stream {
    rbt_event *ev;
    int n, cap;
    atomic_int received; /* events so far, readable from other threads while running */
    int stop_after;      /* > 0: hang up after this many events */
    int64_t start_ms;
    rb_sse_result res;
    rb_err rc;
    char err[256];
} rbt_stream;

/* POSTs body (or GETs when body is NULL) to base+path and records every event. */
rb_err rbt_stream_run(rbt_stream *st, const char *base, const char *path, const char *body,
                      long idle_timeout_ms, long deadline_ms);
void rbt_stream_release(rbt_stream *st);
/* CLOCK_MONOTONIC in microseconds, read directly: the client's clock, independent of the
 * daemons' own helpers. Comparable with the worker's sampled_us on the same machine. */
int64_t rbt_us(void);
/* Index of the first event whose data contains needle, or -1. */
int rbt_stream_find(const rbt_stream *st, const char *needle);

/* The run time a worker logs for job id ("job <id> completed after N tokens (P prompt, X ms")
 * in the log file at log, polled for up to 5 s; -1 if it never appears. *tokens gets N. */
double rbt_logged_job_ms(const char *log, const char *id, int *tokens);
/* Streams an OpenAI request (body with "stream":true and max_tokens of at least 150) from
 * base+path and fails the test unless its content chunks (choices[0].text, or
 * choices[0].delta.content when field is "content") arrive spread over at least half of the
 * generation time the worker logs in worker_log. A response buffered to the end arrives at once;
 * OpenAI chunks carry no timestamps of rbee's, so the worker's log is the generation's clock. */
void rbt_check_openai_spread(const char *base, const char *path, const char *body,
                             const char *field, const char *worker_log);

/* GET base+path into a new string (caller frees); NULL on failure. */
char *rbt_get(const char *base, const char *path);
/* Value of a Prometheus sample line "name value" (name may include {labels}); -1 if absent. */
double rbt_metric(const char *metrics, const char *name);

#endif
