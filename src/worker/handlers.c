/*
 * handlers.c - the worker's HTTP routes: validation at the edge, then jobs on the queue.
 *
 * Past this file requests are plain C structs (wrk_request); the generation threads never see
 * JSON. An inference request is answered at once: the SSE stream of its job for
 * POST /v1/inference, or 202 with the stream's URL for POST /v1/jobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"
#include "worker.h"

#define JOB_CHAN_EVENTS 512
#define MAX_PROMPT 32768

/* ---- validation --------------------------------------------------------------------------- */

/* Parses and validates an inference body. On failure replies 400 and returns 0. */
static int parse_request(rb_http_req *req, rb_http_reply *rep, wrk_request *out, char *job_id)
{
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, 0, &je);
    rb_jcheck c;
    const char *prompt = NULL, *id = NULL, *stops[WRK_MAX_STOP];
    long long max_tokens = 128, top_k = 0;
    double temperature = 0.7, top_p = 1.0, min_p = 0.0, rep_pen = 1.0;
    uint64_t seed = 0;
    size_t nstop = 0;
    int has_seed = 0, ok = 0;

    memset(out, 0, sizeof(*out));
    if (!body) {
        rb_http_reply_error(rep, 400, "INVALID_JSON", "request body is not valid JSON", NULL);
        return 0;
    }
    rb_jcheck_init(&c);
    if (!json_is_object(body)) {
        rb_jcheck_add(&c, "body", "type", "the request body must be a JSON object");
        goto reply;
    }
    if (rb_json_str(&c, body, "job_id", RB_OPTIONAL, 1, WRK_JOB_ID_MAX, &id) > 0 &&
        !rb_id_valid(id, WRK_JOB_ID_MAX))
        rb_jcheck_add(&c, "job_id", "format",
                      "'job_id' may contain only letters, digits and - _ . :");
    rb_json_str(&c, body, "prompt", RB_REQUIRED, 1, MAX_PROMPT, &prompt);
    rb_json_int(&c, body, "max_tokens", RB_OPTIONAL, 1, 2048, &max_tokens);
    rb_json_num(&c, body, "temperature", RB_OPTIONAL, 0, 2, &temperature);
    rb_json_num(&c, body, "top_p", RB_OPTIONAL, 0, 1, &top_p);
    rb_json_int(&c, body, "top_k", RB_OPTIONAL, 0, 1000000, &top_k);
    rb_json_num(&c, body, "min_p", RB_OPTIONAL, 0, 1, &min_p);
    if (rb_json_num(&c, body, "repetition_penalty", RB_OPTIONAL, 0, 2, &rep_pen) > 0 &&
        rep_pen <= 0)
        rb_jcheck_add(&c, "repetition_penalty", "range",
                      "'repetition_penalty' must be greater than 0 and at most 2");
    rb_json_strarr(&c, body, "stop", RB_OPTIONAL, WRK_MAX_STOP, 1, 100, stops, &nstop);
    has_seed = rb_json_u64(&c, body, "seed", RB_OPTIONAL, &seed) > 0;
reply:
    if (!rb_jcheck_ok(&c)) {
        rb_http_reply_json(rep, 400, rb_jcheck_envelope(&c));
        goto out;
    }
    if (!has_seed)
        rb_random_bytes(&seed, sizeof seed);
    out->prompt = strdup(prompt);
    out->max_tokens = (int)max_tokens;
    out->temperature = (float)temperature;
    out->top_p = (float)top_p;
    out->top_k = (int)top_k;
    out->min_p = (float)min_p;
    out->repetition_penalty = (float)rep_pen;
    out->seed = seed;
    for (size_t i = 0; i < nstop; i++)
        out->stop[out->nstop++] = strdup(stops[i]);
    if (id)
        snprintf(job_id, WRK_JOB_ID_MAX + 1, "%s", id);
    else {
        char u[37];
        rb_uuid(u);
        snprintf(job_id, WRK_JOB_ID_MAX + 1, "job-%s", u);
    }
    ok = 1;
out:
    rb_jcheck_release(&c);
    json_decref(body);
    return ok;
}

/* Replies 503 when the worker cannot take work now; returns 1 if it did. */
static int refuse_unready(wrk *w, rb_http_reply *rep)
{
    int phase = atomic_load(&w->phase);
    if (phase == WRK_READY && !wrk_stop_requested(w))
        return 0;
    if (phase == WRK_LOADING && !wrk_stop_requested(w)) {
        json_t *d = json_pack("{s:i, s:i}", "layers_loaded", atomic_load(&w->layers_loaded),
                              "layers_total", atomic_load(&w->layers_total));
        rb_http_reply_error(rep, 503, "LOADING", "the model is still loading", d);
    } else {
        rb_http_reply_error(rep, 503, "SHUTTING_DOWN", "the worker is shutting down", NULL);
    }
    rb_http_reply_header(rep, "Retry-After", "1");
    wrk_metrics_request(w->metrics, WRK_OUT_REJECTED);
    return 1;
}

/* Validates, creates and queues a job; replies with an error and returns NULL on failure. */
static wrk_job *submit(wrk *w, rb_http_req *req, rb_http_reply *rep, int wait_for_stream)
{
    wrk_request r;
    char id[WRK_JOB_ID_MAX + 1];
    wrk_job *j;
    rb_err rc;

    if (refuse_unready(w, rep))
        return NULL;
    if (!parse_request(req, rep, &r, id)) {
        wrk_metrics_request(w->metrics, WRK_OUT_INVALID);
        return NULL;
    }
    j = wrk_job_new(id, &r, JOB_CHAN_EVENTS);
    if (!j) {
        wrk_request_release(&r);
        rb_http_reply_error(rep, 500, "INTERNAL", "out of memory", NULL);
        return NULL;
    }
    j->created_ms = rb_now_ms();
    j->wait_for_stream = wait_for_stream;
    rc = wrk_jobs_submit(w->jobs, j);
    if (rc == RB_EBUSY) {
        wrk_jobs_stats st;
        wrk_jobs_stats_get(w->jobs, &st);
        rb_http_reply_error(rep, 503, "ALL_SLOTS_BUSY", "every generation slot is busy",
                            json_pack("{s:i, s:i, s:i, s:i}", "slots_total", st.slots, "slots_busy",
                                      st.running, "queue_depth", st.queued, "queue_capacity",
                                      st.queue_cap));
        rb_http_reply_header(rep, "Retry-After", "1");
        wrk_metrics_request(w->metrics, WRK_OUT_REJECTED);
    } else if (rc == RB_EEXIST) {
        rb_http_reply_error(rep, 409, "JOB_EXISTS",
                            "a job with this job_id is already queued or running", NULL);
        wrk_metrics_request(w->metrics, WRK_OUT_INVALID);
    } else if (rc) {
        rb_http_reply_error(rep, 503, "SHUTTING_DOWN", "the worker is shutting down", NULL);
        wrk_metrics_request(w->metrics, WRK_OUT_REJECTED);
    }
    if (rc) {
        wrk_job_unref(j);
        return NULL;
    }
    return j;
}

static void h_inference(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    wrk_job *j = submit(w, req, rep, 0);
    if (!j)
        return;
    wrk_job_open_stream(j);
    rb_http_reply_sse(rep, j->chan);
    rb_http_reply_header(rep, "X-Job-ID", j->id);
    wrk_job_unref(j);
}

static void h_jobs(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    wrk_job *j = submit(w, req, rep, 1);
    char url[128];
    if (!j)
        return;
    snprintf(url, sizeof url, "/v1/jobs/%s/stream", j->id);
    rb_http_reply_json(rep, 202, json_pack("{s:s, s:s}", "job_id", j->id, "sse_url", url));
    wrk_job_unref(j);
}

static void h_job_stream(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    wrk_job *j = wrk_jobs_find(w->jobs, req->params[0]);
    if (!j) {
        rb_http_reply_error(rep, 404, "JOB_NOT_FOUND", "no such job", NULL);
        return;
    }
    if (!wrk_job_open_stream(j)) {
        rb_http_reply_error(rep, 409, "STREAM_TAKEN", "this job's stream is already open", NULL);
    } else {
        rb_http_reply_sse(rep, j->chan);
        wrk_jobs_kick(w->jobs); /* the scheduler may be waiting for this stream */
    }
    wrk_job_unref(j);
}

static void h_job_cancel(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    int found;
    wrk_job *queued = wrk_jobs_cancel(w->jobs, req->params[0], &found);

    if (!found) {
        rb_http_reply_error(rep, 404, "JOB_NOT_FOUND", "no such job", NULL);
        return;
    }
    if (queued) {
        /* It never ran: end its stream here. */
        wrk_job_end_unstarted(queued);
        wrk_metrics_request(w->metrics, WRK_OUT_CANCELLED);
        wrk_job_unref(queued);
    }
    rb_log(RB_LOG_INFO, "worker", "job %s cancel requested", req->params[0]);
    rb_http_reply_json(rep, 200,
                       json_pack("{s:s, s:s}", "job_id", req->params[0], "status", "cancelling"));
}

static void h_health(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    (void)req;
    rb_http_reply_json(rep, 200,
                       json_pack("{s:s, s:s}", "status", "healthy", "state", wrk_state_name(w)));
}

static void h_ready(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    (void)req;
    if (atomic_load(&w->phase) == WRK_READY)
        rb_http_reply_json(rep, 200,
                           json_pack("{s:b, s:s, s:b}", "ready", 1, "state", wrk_state_name(w),
                                     "model_loaded", 1));
    else
        rb_http_reply_json(rep, 200,
                           json_pack("{s:b, s:s, s:s, s:i, s:i}", "ready", 0, "state",
                                     atomic_load(&w->phase) == WRK_FAILED ? "failed" : "loading",
                                     "progress_url", "/v1/loading/progress", "layers_loaded",
                                     atomic_load(&w->layers_loaded), "layers_total",
                                     atomic_load(&w->layers_total)));
}

static void h_progress(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    rb_chan *ch = rb_bcast_subscribe(w->progress);
    (void)req;
    if (!ch) {
        rb_http_reply_error(rep, 500, "INTERNAL", "out of memory", NULL);
        return;
    }
    rb_http_reply_sse(rep, ch);
    rb_chan_unref(ch);
}

static void stop_after_reply(void *user)
{
    wrk_request_stop(user);
}

static void h_shutdown(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    (void)req;
    rb_log(RB_LOG_INFO, "worker", "shutdown requested over HTTP");
    rb_http_reply_json(rep, 200, json_pack("{s:s}", "status", "shutting_down"));
    /* Stop once the answer is out: stopping first could close this very connection. */
    rb_http_reply_on_complete(rep, stop_after_reply, w);
}

static void h_metrics(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    wrk_jobs_stats st;
    rb_buf b;
    (void)req;
    rb_buf_init(&b, 1 << 20);
    wrk_jobs_stats_get(w->jobs, &st);
    wrk_metrics_render(w->metrics, &b, st.queued, st.running, st.slots, wrk_state_name(w));
    rb_http_reply_text(rep, 200, "text/plain; version=0.0.4", b.data ? b.data : "");
    rb_buf_release(&b);
}

const rb_http_route wrk_routes[] = {
    {"GET", "/health", h_health, RB_ROUTE_PUBLIC},
    {"GET", "/v1/health", h_health, RB_ROUTE_PUBLIC},
    {"GET", "/v1/ready", h_ready, 0},
    {"GET", "/v1/loading/progress", h_progress, 0},
    {"POST", "/v1/inference", h_inference, 0},
    {"POST", "/v1/chat/completions", wrk_h_chat, RB_ROUTE_OPENAI},
    {"POST", "/v1/completions", wrk_h_completions, RB_ROUTE_OPENAI},
    {"GET", "/v1/models", wrk_h_models, RB_ROUTE_OPENAI},
    {"DELETE", "/v1/inference/{id}", h_job_cancel, 0},
    {"POST", "/v1/jobs", h_jobs, 0},
    {"GET", "/v1/jobs/{id}/stream", h_job_stream, 0},
    {"DELETE", "/v1/jobs/{id}", h_job_cancel, 0},
    {"POST", "/v1/admin/shutdown", h_shutdown, 0},
    {"POST", "/v1/shutdown", h_shutdown, 0},
    {"GET", "/metrics", h_metrics, RB_ROUTE_PUBLIC},
};
const size_t wrk_nroutes = sizeof wrk_routes / sizeof wrk_routes[0];
