/*
 * job.h - inference jobs and the bounded queue that feeds the scheduler (gen.c)
 * (internal to the worker).
 *
 * A job is created by an HTTP handler, owns its token channel and is reference-counted: the
 * registry holds one reference from submit until the scheduler is done with it (or
 * until a cancel or shutdown takes the still-queued job out and hands that reference to the
 * caller), and every other holder takes its own. The queue is a bounded FIFO with one mutex and a
 * condition variable; it admits a job while the jobs waiting or running are fewer than
 * slots + queue capacity, so `--queue 0` accepts work only when a slot is free.
 */
#ifndef WRK_JOB_H
#define WRK_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "rb_err.h"
#include "rb_sse.h"

#define WRK_MAX_STOP 4
#define WRK_JOB_ID_MAX 64

/* Which API a job answers: the project's events or OpenAI's objects (oai.c). */
typedef enum wrk_api {
    WRK_API_NATIVE = 0, /* /v1/inference, /v1/jobs: token/end events */
    WRK_API_CHAT,       /* /v1/chat/completions */
    WRK_API_COMPLETION, /* /v1/completions */
} wrk_api;

/* What the request asked for, after validation. Strings and ids are owned. */
typedef struct wrk_request {
    char *prompt;
    int32_t *ids; /* the prompt already tokenized by the handler (OpenAI routes), or NULL */
    size_t nids;
    int max_tokens;
    float temperature, top_p, min_p, repetition_penalty;
    float frequency_penalty, presence_penalty;
    int top_k;
    int logprobs, top_logprobs; /* 0/1 and 0..20 */
    uint64_t seed;
    char *stop[WRK_MAX_STOP];
    int nstop;
    wrk_api api;
    int stream;        /* OpenAI: chunks over SSE; 0: one JSON body the handler collects */
    int include_usage; /* OpenAI: stream_options.include_usage */
    int64_t created;   /* OpenAI: unix seconds of the request */
} wrk_request;

struct wrk_oai_acc; /* a non-streamed or pending OpenAI answer (oai.c) */

typedef enum wrk_job_state {
    WRK_JOB_QUEUED = 0,
    WRK_JOB_RUNNING,
    WRK_JOB_DONE,
} wrk_job_state;

typedef struct wrk_job {
    char id[WRK_JOB_ID_MAX + 1];
    wrk_request req;
    rb_chan *chan;       /* the job's events; owned reference */
    size_t chan_cap;     /* events the channel holds */
    int wait_for_stream; /* created by POST /v1/jobs: generate once the stream is open */
    int64_t created_ms;  /* monotonic, for time to first token */
    atomic_int cancel;   /* DELETE, shutdown or an open-timeout set it */
    atomic_int refs;

    pthread_mutex_t mu; /* guards stream_opened, which opened_cv waits for */
    pthread_cond_t opened_cv;
    int stream_opened;
    struct wrk_oai_acc *oai; /* OpenAI jobs: text and logprobs not sent yet; gen thread only */
    /* Guarded by the queue's mutex (struct wrk_jobs in job.c), not by mu. */
    wrk_job_state state;
    struct wrk_job *next; /* FIFO link, owned by the queue */
} wrk_job;

/* New job with a channel of chan_cap events; takes ownership of req's strings. */
wrk_job *wrk_job_new(const char *id, wrk_request *req, size_t chan_cap);
void wrk_job_ref(wrk_job *j);
void wrk_job_unref(wrk_job *j); /* NULL-safe */
void wrk_request_release(wrk_request *r);
void wrk_oai_acc_free(struct wrk_oai_acc *a); /* NULL-safe (oai.c) */

/* Marks the stream as opened by a client; returns 0 if it already was (one reader only). */
int wrk_job_open_stream(wrk_job *j);
/* Waits until the stream is opened, the job is cancelled or timeout_ms pass; 1 if opened. */
int wrk_job_wait_stream(wrk_job *j, int timeout_ms);
/* 1 once the stream was opened (no wait). */
int wrk_job_stream_is_open(wrk_job *j);
/* Sets the cancel flag and wakes a waiter. */
void wrk_job_cancel(wrk_job *j);
int wrk_job_cancelled(wrk_job *j);

typedef struct wrk_jobs wrk_jobs;

wrk_jobs *wrk_jobs_new(int slots, int queue_cap);
void wrk_jobs_free(wrk_jobs *q);

/* Admits j (the registry takes a reference). RB_EBUSY when full, RB_EEXIST for a duplicate
 * id, RB_ECLOSED after shutdown. */
rb_err wrk_jobs_submit(wrk_jobs *q, wrk_job *j);
/* Blocks for the next job (returned with a reference the caller drops), marking it running;
 * NULL after shutdown. */
wrk_job *wrk_jobs_pop(wrk_jobs *q);
/* wrk_jobs_pop that waits at most timeout_ms (0: not at all, -1: forever); NULL on timeout,
 * after shutdown, or when wrk_jobs_kick was called meanwhile. */
wrk_job *wrk_jobs_pop_wait(wrk_jobs *q, int timeout_ms);
/* Waits at most timeout_ms for a kick, a submit or the shutdown, without taking a job. */
void wrk_jobs_idle(wrk_jobs *q, int timeout_ms);
/* Wakes a wrk_jobs_pop_wait without a job (a stream was opened: the scheduler looks). */
void wrk_jobs_kick(wrk_jobs *q);
/* 1 after wrk_jobs_shutdown. */
int wrk_jobs_closed(wrk_jobs *q);
/* The scheduler is done with j: it leaves the registry. */
void wrk_jobs_done(wrk_jobs *q, wrk_job *j);
/* Looks a job up by id (new reference) or NULL. */
wrk_job *wrk_jobs_find(wrk_jobs *q, const char *id);
/* Cancels the job: if it is still queued it leaves the queue and is returned (with a reference)
 * so the caller can end its stream; if running, its flag is set and NULL returned with
 * *found = 1. *found = 0 when there is no such job. */
wrk_job *wrk_jobs_cancel(wrk_jobs *q, const char *id, int *found);
/* Stops admitting; wakes every pop; returns the queued jobs (linked by next, each with a
 * reference and its cancel flag set) so the caller can end their streams, and cancels the
 * running ones. */
wrk_job *wrk_jobs_shutdown(wrk_jobs *q);

typedef struct wrk_jobs_stats {
    int queued, running, slots, queue_cap;
} wrk_jobs_stats;
void wrk_jobs_stats_get(wrk_jobs *q, wrk_jobs_stats *out);

#endif
