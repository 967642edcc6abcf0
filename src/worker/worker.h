/*
 * worker.h - the worker's shared state (internal): what the HTTP handlers, the generation
 * threads and the heartbeat see.
 */
#ifndef WRK_WORKER_H
#define WRK_WORKER_H

#include <pthread.h>
#include <stdatomic.h>

#include "job.h"
#include "metrics.h"
#include "rb_bcast.h"
#include "rb_http.h"
#include "wrk.h"

typedef enum wrk_phase {
    WRK_LOADING = 0,
    WRK_READY,
    WRK_FAILED,
    WRK_STOPPING,
} wrk_phase;

typedef struct wrk_gen wrk_gen;

typedef struct wrk {
    wrk_config cfg;
    wrk_jobs *jobs;
    wrk_metrics *metrics;
    rb_bcast *progress; /* loading progress for /v1/loading/progress */
    atomic_int phase;
    atomic_int layers_loaded, layers_total;
    atomic_int busy; /* generation slots running a job */
    rb_http_server *http;
    wrk_gen *gen;
    char url[160]; /* how the hive reaches us */
    char model_name[128];
    int64_t started_unix; /* unix seconds the model became ready; guarded by model_lock */
    /* HTTP handlers read the model (tokenizer, chat template, BOS/EOS texts, n_ctx) between
     * wrk_gen_hold and wrk_gen_release; wrk_gen_stop takes it for writing before freeing. */
    pthread_rwlock_t model_lock;
    int model_ready;                 /* guarded by model_lock: 1 from load to wrk_gen_stop */
    int n_ctx;                       /* a session's context length; guarded by model_lock */
    char *chat_template;             /* tokenizer.chat_template or NULL; guarded by model_lock */
    char bos_text[64], eos_text[64]; /* the vocabulary's BOS and EOS text ("" when none) */

    pthread_mutex_t mu; /* guards stop and the wake-ups below */
    pthread_cond_t cv;
    int stop;       /* shutdown requested */
    int poked;      /* a state change the heartbeat thread has not sent yet */
    int ready_sent; /* the hive acknowledged the ready callback */
    pthread_t hb_thread;
    int hb_started;
    int signal_fd; /* read end of the signal pipe */
    pthread_t sig_thread;
    int sig_started;
} wrk;

/* wrk_run in two halves, for running a worker inside another program (a fuzzer, a test):
 * wrk_start starts the HTTP server, the heartbeat and the model load (or fails with err and
 * everything taken down); wrk_finish waits for the stop request (wrk_request_stop, a signal
 * when cfg.handle_signals, POST /v1/admin/shutdown), takes the worker down, frees it and
 * returns the exit code. */
rb_err wrk_start(const wrk_config *c, wrk **out, char *err, size_t errlen);
int wrk_finish(wrk *w);

/* Asks the worker to shut down (from a handler, a signal thread or a failed load). */
void wrk_request_stop(wrk *w);
int wrk_stop_requested(wrk *w);
/* Wakes the heartbeat early (state changed). */
void wrk_poke(wrk *w);

/* "loading", "idle", "busy", "stopping" or "failed", as /health reports it; heartbeats send
 * "stopping" as "busy" and "failed" as "loading" (heartbeat.c). */
const char *wrk_state_name(wrk *w);

/* Generation (gen.c, the only file that uses the engine). Loads the model on a thread of its
 * own, then starts the scheduler, the one generation thread, which serves w->jobs in cfg.slots
 * sequences of one engine batch. */
rb_err wrk_gen_start(wrk *w, char *err, size_t errlen);
/* Joins the scheduler (after wrk_jobs_shutdown) and frees the model. */
void wrk_gen_stop(wrk *w);
int wrk_gen_busy(wrk *w);
/* For an HTTP handler: keeps the model (and chat_template, bos_text, eos_text, n_ctx) alive
 * until wrk_gen_release. Returns 0 (nothing held: do not release) when the model is not
 * loaded or is being freed. */
int wrk_gen_hold(wrk *w);
void wrk_gen_release(wrk *w);
/* Tokenizes text with the model's tokenizer (BOS as the model asks; special: control-token
 * text becomes the token). Only between wrk_gen_hold and wrk_gen_release. *ids malloc'd. */
rb_err wrk_gen_tokenize(wrk *w, const char *text, int special, int32_t **ids, size_t *n);
/* The bytes a token stands for (at most cap); returns the length. */
size_t wrk_gen_token_bytes(wrk *w, int32_t id, char *out, size_t cap);

/* OpenAI's API (oai.c): the routes and what a generation thread sends for such a job. */
typedef struct wrk_lp {
    int32_t token;
    float logprob;
} wrk_lp;
/* The job starts: a streamed chat sends the assistant's role chunk. */
rb_err wrk_oai_begin(wrk *w, wrk_job *j);
/* Text of one step (may be empty) and, when token >= 0, the token it came from with its
 * logprob and top alternatives (used when the request asked for logprobs). RB_ECLOSED when the
 * client is gone. */
rb_err wrk_oai_token(wrk *w, wrk_job *j, const char *text, size_t len, int32_t token, float logprob,
                     const wrk_lp *top, int ntop);
/* The last chunk(s), or the whole answer of a non-streamed request; usage counts the prompt
 * tokens the prompt cache held as prompt_tokens_details.cached_tokens. */
void wrk_oai_end(wrk *w, wrk_job *j, const char *finish_reason, size_t prompt_tokens,
                 size_t cached_tokens, int completion_tokens);
/* An OpenAI error object (server_error) instead of the answer. */
void wrk_oai_fail(wrk_job *j, const char *message);
void wrk_h_chat(rb_http_req *req, rb_http_reply *rep, void *user);
void wrk_h_completions(rb_http_req *req, rb_http_reply *rep, void *user);
void wrk_h_models(rb_http_req *req, rb_http_reply *rep, void *user);

/* Ends a job that never ran: `end` with stop_reason CANCELLED, [DONE]. */
void wrk_job_end_unstarted(wrk_job *j);

/* HTTP routes (handlers.c). */
extern const rb_http_route wrk_routes[];
extern const size_t wrk_nroutes;

/* Heartbeat and ready callback (heartbeat.c). */
rb_err wrk_heartbeat_start(wrk *w);
void wrk_heartbeat_stop(wrk *w);

#endif
