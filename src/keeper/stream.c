/*
 * stream.c - phase 8: the job on the worker and its token stream (EC4, EC5, EC6).
 *
 * DESIGN
 * POST /v1/jobs queues the job and answers at once; a 503 (all slots busy) is retried after
 * 1, 2 and 4 s, each retry announced, before the keeper gives up (EC6). The stream is then
 * read with an idle timeout (the worker sends keep-alives every 10 s) and every token is
 * written and flushed the moment its event is parsed. Ctrl+C is handled by a small watcher
 * thread: the signal handler only sets a flag; the watcher sees it, sends DELETE for the job
 * while the stream is still open, and gives the worker up to 5 s to end the stream with its
 * CANCELLED event before closing it (EC5). A stream that breaks without [DONE] (the worker
 * died) keeps what arrived: the text so far goes to a file under $RBEE_HOME/partial/ whose
 * path is printed with the count of tokens (EC4).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kpr_hive.h"
#include "kpr_infer.h"
#include "rb_client.h"
#include "rb_util.h"

#define JOB_POST_MS 30000
#define BUSY_RETRIES 3
#define FIRST_BUSY_PAUSE_MS 1000
#define STREAM_IDLE_MS 60000
#define CANCEL_ACK_MS 5000
#define WATCH_POLL_MS 50
#define TEXT_MAX (16u << 20)

typedef struct stream_state {
    kpr_run *r;
    long tokens;     /* token events received */
    long tokens_out; /* the end event's count; -1 before it */
    rb_buf text;     /* everything received, for the partial file */
    char stop_reason[32];
    char err_code[64], err_msg[512];
    int errored;
    int64_t t0, first_ms, end_ms; /* end_ms: when the end event came; -1 before */
} stream_state;

typedef struct watch {
    atomic_int *interrupted; /* borrowed: set by the signal handler */
    atomic_int stop;         /* tells the SSE reader to close */
    atomic_int finished;     /* the stream is over: the watcher leaves */
    int fired;               /* the watcher sent DELETE (read after join) */
    long ack_status;         /* the DELETE's status; 0 when it got no answer */
    char url[1024];
    const char *token;
} watch;

/* ---- the job ----------------------------------------------------------------------------- */

static json_t *job_body(const kpr_infer_opts *o)
{
    json_t *b =
        json_pack("{s:s, s:I}", "prompt", o->prompt, "max_tokens", (json_int_t)o->max_tokens);
    if (o->has_temperature)
        json_object_set_new(b, "temperature", json_real(o->temperature));
    if (o->has_top_p)
        json_object_set_new(b, "top_p", json_real(o->top_p));
    if (o->has_top_k)
        json_object_set_new(b, "top_k", json_integer(o->top_k));
    if (o->has_seed)
        json_object_set_new(b, "seed", json_integer((json_int_t)o->seed));
    if (o->has_min_p)
        json_object_set_new(b, "min_p", json_real(o->min_p));
    if (o->has_repetition_penalty)
        json_object_set_new(b, "repetition_penalty", json_real(o->repetition_penalty));
    if (o->stops.n > 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < o->stops.n; i++)
            json_array_append_new(a, json_string(o->stops.s[i]));
        json_object_set_new(b, "stop", a);
    }
    return b;
}

static void fail_busy(kpr_run *r, const kpr_reply *rep)
{
    kpr_fail_set(&r->f, "WORKER_BUSY",
                 "Worker %s on %s is still busy after %d retries (after 1, "
                 "2 and 4 s): %s",
                 r->worker_id, r->t.name, BUSY_RETRIES, rep->code[0] ? rep->code : "503");
    kpr_fail_hint(&r->f,
                  "try again when its current jobs are done (rbee workers list --node %s "
                  "shows its state); a worker that is busy when rbee infer starts is "
                  "not reused, a new one is started instead",
                  r->t.name);
}

/* 503 with the worker's slot counts, as a short text. */
static void busy_text(const kpr_reply *rep, char *buf, size_t len)
{
    json_t *d = json_object_get(json_object_get(rep->body, "error"), "details");
    if (json_object_get(d, "slots_total"))
        snprintf(buf, len, "%s: %lld of %lld slots busy", rep->code,
                 (long long)json_integer_value(json_object_get(d, "slots_busy")),
                 (long long)json_integer_value(json_object_get(d, "slots_total")));
    else
        snprintf(buf, len, "%s", rep->code[0] ? rep->code : "503");
}

/* POST /v1/jobs with the EC6 retries; the job id and stream path on success. */
static rb_err post_job(kpr_run *r, char *job_id, size_t idlen, char *sse, size_t sselen)
{
    json_t *body = job_body(r->o);
    kpr_reply rep = {0};
    long pause = FIRST_BUSY_PAUSE_MS;
    char what[128];
    rb_err rc = RB_EBUSY;

    for (int retry = 0; rc == RB_EBUSY; retry++) {
        kpr_reply_release(&rep);
        rc = kpr_call(r->worker_url, r->t.token, "POST", "/v1/jobs", body, JOB_POST_MS, &rep);
        if (rc == RB_ECONNECT && r->warm) {
            rc = RB_ENOTFOUND;
        } else if (rc == RB_OK && rep.status == 202) {
            snprintf(job_id, idlen, "%s", kpr_jstr(rep.body, "job_id"));
            snprintf(sse, sselen, "%s", kpr_jstr(rep.body, "sse_url"));
        } else if (rc == RB_OK && rep.status == 503 && !strcmp(rep.code, "SHUTTING_DOWN") &&
                   r->warm) {
            rc = RB_ENOTFOUND;
        } else if (rc == RB_OK && rep.status == 503 && retry < BUSY_RETRIES) {
            busy_text(&rep, what, sizeof what);
            kpr_out_note(&r->c->out, "Worker %s is busy (%s); retrying in %ld s (retry %d of %d)",
                         r->worker_id, what, pause / 1000, retry + 1, BUSY_RETRIES);
            rc = kpr_wait_ms(r->c, pause) == RB_OK ? RB_EBUSY : RB_ECANCELED;
            pause *= 2;
        } else if (rc == RB_OK && rep.status == 503) {
            rc = RB_EBUSY;
            fail_busy(r, &rep);
            break;
        } else {
            kpr_reply_fail(&r->f, &r->t, &rep, "queue the job on its worker");
            rc = rc ? rc : RB_EHTTP;
        }
    }
    kpr_reply_release(&rep);
    json_decref(body);
    return rc;
}

/* ---- the stream -------------------------------------------------------------------------- */

static int on_event(void *user, const char *event, const char *data, size_t len)
{
    stream_state *s = user;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *type = kpr_jstr(ev, "type");
    (void)event;

    if (strcmp(type, "started") == 0 && json_is_string(json_object_get(ev, "warning"))) {
        /* e.g. --max-tokens beyond what the context leaves: said before any token */
        kpr_out_note(&s->r->c->out, "Warning: %s", kpr_jstr(ev, "warning"));
    } else if (strcmp(type, "token") == 0) {
        const char *t = kpr_jstr(ev, "t");
        if (s->first_ms < 0)
            s->first_ms = rb_now_ms() - s->t0;
        rb_buf_appends(&s->text, t);
        kpr_out_token(&s->r->c->out, s->tokens++, t);
    } else if (strcmp(type, "end") == 0) {
        s->end_ms = rb_now_ms() - s->t0;
        s->tokens_out = (long)json_integer_value(json_object_get(ev, "tokens_out"));
        snprintf(s->stop_reason, sizeof s->stop_reason, "%s", kpr_jstr(ev, "stop_reason"));
    } else if (strcmp(type, "error") == 0) {
        s->errored = 1;
        snprintf(s->err_code, sizeof s->err_code, "%s", kpr_jstr(ev, "code"));
        snprintf(s->err_msg, sizeof s->err_msg, "%s", kpr_jstr(ev, "message"));
    }
    json_decref(ev);
    return s->r->c->out.closed; /* stop reading when nobody reads our output */
}

static void *watch_main(void *arg)
{
    watch *w = arg;
    rb_client_opts o = rb_client_opts_default();
    rb_buf reply;
    char err[256];
    int64_t until;

    rb_thread_set_name("kpr-cancel");
    while (!atomic_load(&w->finished) && !atomic_load(w->interrupted))
        rb_sleep_ms(WATCH_POLL_MS);
    if (!atomic_load(&w->finished)) {
        w->fired = 1;
        until = rb_now_ms() + CANCEL_ACK_MS;
        o.token = w->token;
        o.timeout_ms = o.connect_timeout_ms = CANCEL_ACK_MS;
        rb_buf_init(&reply, 64 * 1024);
        rb_client_request("DELETE", w->url, NULL, &o, &w->ack_status, &reply, err, sizeof err);
        rb_buf_release(&reply);
        while (!atomic_load(&w->finished) && rb_now_ms() < until)
            rb_sleep_ms(WATCH_POLL_MS);
        atomic_store(&w->stop, 1);
    }
    return NULL;
}

/* EC4: keeps what arrived in a file and reports the broken stream. */
static void fail_broken(kpr_run *r, stream_state *s, const char *job_id, const char *err)
{
    char dir[KPR_PATH_MAX], path[KPR_PATH_MAX + 64], why[1024];
    int saved =
        rb_path_join(dir, sizeof dir, r->c->home, "partial") == RB_OK && rb_mkdir_p(dir) == RB_OK;

    snprintf(path, sizeof path, "%s/%s.txt", dir, job_id);
    /* The id comes from the worker: keep it a plain file name. */
    for (char *p = path + strlen(dir) + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            *p = '_';
    saved =
        saved && rb_write_file_atomic(path, s->text.data ? s->text.data : "", s->text.len) == RB_OK;
    kpr_fail_set(&r->f, "STREAM_BROKEN", "SSE stream closed unexpectedly (%s)", err);
    kpr_fail_line(&r->f, "Tokens generated: %ld / %lld", s->tokens, r->o->max_tokens);
    kpr_fail_line(&r->f, saved ? "Partial output saved to %s" : "Partial output not saved (%s)",
                  path);
    kpr_fail_hint(&r->f,
                  "the worker %s stopped mid-stream; its hive removes a dead worker and "
                  "never restarts it. Run the command again for a fresh worker, and read "
                  "its log on %s: $RBEE_HOME/logs/%s.log",
                  r->worker_id, r->t.name, r->worker_id);
    r->f.details =
        json_pack("{s:I, s:I, s:s?}", "tokens_generated", (json_int_t)s->tokens, "max_tokens",
                  (json_int_t)r->o->max_tokens, "partial_output", saved ? path : NULL);
    kpr_run_forget_worker(r, why, sizeof why); /* kept unless its hive says it is gone */
}

static void report_end(kpr_run *r, stream_state *s)
{
    kpr_summary sum = {s->tokens_out >= 0 ? s->tokens_out : s->tokens,
                       s->end_ms >= 0 ? s->end_ms : rb_now_ms() - s->t0, s->first_ms,
                       s->stop_reason[0] ? s->stop_reason : NULL};
    kpr_store *st;
    kpr_fail ignored;

    kpr_fail_init(&ignored);
    if (kpr_ctx_store(r->c, &st, &ignored) == RB_OK)
        kpr_worker_touch(st, r->worker_id);
    kpr_out_summary(&r->c->out, &sum);
}

/* Reads the job's stream; the outcome is judged by the caller. */
static rb_err read_stream(kpr_run *r, stream_state *s, watch *w, const char *sse, char *err,
                          size_t errlen)
{
    rb_sse_opts so = rb_sse_opts_default();
    rb_sse_result res;
    char url[1024];
    pthread_t th;
    int watching;
    rb_err rc;

    so.idle_timeout_ms = STREAM_IDLE_MS;
    so.token = w->token;
    so.cancel = &w->stop;
    snprintf(url, sizeof url, "%s%s", r->worker_url, sse);
    watching = pthread_create(&th, NULL, watch_main, w) == 0;
    rb_sse_result_init(&res);
    rc = rb_client_sse("GET", url, NULL, &so, on_event, s, &res, err, errlen);
    if (rc == RB_EHTTP)
        kpr_http_error(&res, "worker", err, errlen);
    atomic_store(&w->finished, 1);
    if (watching)
        pthread_join(th, NULL);
    rb_sse_result_release(&res);
    return rc;
}

rb_err kpr_phase_infer(kpr_run *r)
{
    char sid[64];
    stream_state s = {r, 0, -1, {0}, "", "", "", 0, 0, -1, -1};
    watch w = {0};
    char job_id[128] = "", sse[256] = "", err[512] = "";
    rb_err rc = post_job(r, job_id, sizeof job_id, sse, sizeof sse);

    rb_buf_init(&s.text, TEXT_MAX);
    if (rc)
        goto out;
    kpr_out_phase(&r->c->out, 8, "Inference: job %s on worker %s (%s)", job_id,
                  kpr_short_id(r->worker_id, sid, sizeof sid), r->worker_url);
    w.interrupted = r->c->interrupted;
    w.token = r->t.token[0] ? r->t.token : NULL;
    snprintf(w.url, sizeof w.url, "%s/v1/jobs/%s", r->worker_url, job_id);
    s.t0 = rb_now_ms();
    rc = read_stream(r, &s, &w, sse, err, sizeof err);
    kpr_out_tokens_end(&r->c->out);
    if (w.fired) {
        snprintf(r->cancel_detail, sizeof r->cancel_detail, "Job %s %s (%ld tokens received)",
                 job_id,
                 w.ack_status == 200 ? "canceled on the worker"
                                     : "canceled; the worker did not confirm within 5 s",
                 s.tokens);
        rc = RB_ECANCELED;
    } else if (r->c->out.closed) {
        rc = RB_EIO;
        kpr_fail_set(&r->f, "OUTPUT_CLOSED",
                     "Standard output was closed after %ld tokens; job %s "
                     "was abandoned (the worker stops it)",
                     s.tokens, job_id);
    } else if (rc == RB_OK && s.errored) {
        rc = RB_EIO;
        kpr_fail_set(&r->f, "WORKER_ERROR", "The worker reported an error: %s: %s", s.err_code,
                     s.err_msg);
        kpr_fail_hint(&r->f,
                      strcmp(s.err_code, "PROMPT_TOO_LONG") == 0
                          ? "shorten the prompt, or use a model with a longer context"
                          : "read the worker's log on the node: $RBEE_HOME/logs/<worker>.log");
    } else if (rc == RB_OK) {
        report_end(r, &s);
    } else if (rc == RB_EPROTO || rc == RB_EIO || rc == RB_ETIMEDOUT || rc == RB_ECONNECT) {
        fail_broken(r, &s, job_id, err);
    } else {
        kpr_fail_set(&r->f, "STREAM_FAILED", "Cannot read the job's stream: %s", err);
    }
out:
    rb_buf_release(&s.text);
    return rc;
}
