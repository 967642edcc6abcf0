/*
 * ready.c - phase 7: waiting for a spawned worker to load its model (EC7).
 *
 * DESIGN
 * The contract asks for a /v1/ready poll every 2 s; between two polls the keeper listens to
 * the worker's loading progress (SSE) for the rest of the 2 s, so the bar moves as layers
 * load and a "ready" event ends the wait at once instead of at the next poll. The overall
 * limit is --ready-timeout. A worker that stops answering is looked up in its hive's list: if
 * the hive no longer has it, it died while loading and waiting longer is pointless. A worker
 * that never becomes ready is shut down through its hive and dropped from the cache, so the
 * next run does not pick it up.
 */
#include <stdio.h>
#include <string.h>

#include "kpr_hive.h"
#include "kpr_infer.h"
#include "rb_client.h"
#include "rb_util.h"

#define POLL_PERIOD_MS 2000
#define READY_CALL_MS 5000

typedef struct loading {
    kpr_run *r;
    long loaded, total; /* last progress; -1 before any */
    int ready, failed;
    char message[512];
} loading;

static int on_loading(void *user, const char *event, const char *data, size_t len)
{
    loading *l = user;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *stage = kpr_jstr(ev, "stage");
    kpr_progress p = {7, KPR_PROGRESS_LAYERS, 0, 0, 0};
    (void)event;

    if (strcmp(stage, "loading") == 0) {
        l->loaded = (long)json_integer_value(json_object_get(ev, "layers_loaded"));
        l->total = (long)json_integer_value(json_object_get(ev, "layers_total"));
        p.done = l->loaded;
        p.total = l->total;
        kpr_out_progress(&l->r->c->out, &p);
    } else if (strcmp(stage, "ready") == 0) {
        l->ready = 1;
    } else if (strcmp(stage, "error") == 0) {
        l->failed = 1;
        snprintf(l->message, sizeof l->message, "%s: %s", kpr_jstr(ev, "code"),
                 kpr_jstr(ev, "message"));
    }
    json_decref(ev);
    return l->ready || l->failed;
}

/* Listens to the loading progress until ms pass or it ends. */
static void listen_progress(loading *l, long ms)
{
    kpr_run *r = l->r;
    rb_sse_opts so = rb_sse_opts_default();
    rb_sse_result res;
    char url[1024], err[256];

    if (ms < 1)
        ms = 1; /* 0 would mean no limit */
    so.connect_timeout_ms = ms;
    so.idle_timeout_ms = ms;
    so.deadline_ms = ms;
    so.token = r->t.token[0] ? r->t.token : NULL;
    so.cancel = r->c->interrupted;
    snprintf(url, sizeof url, "%s/v1/loading/progress", r->worker_url);
    rb_sse_result_init(&res);
    rb_client_sse("GET", url, NULL, &so, on_loading, l, &res, err, sizeof err);
    rb_sse_result_release(&res);
}

/* 1 when the hive still lists the worker (or cannot be asked). */
static int hive_has_worker(kpr_run *r)
{
    kpr_reply list;
    int has = 1;

    if (kpr_call(r->t.hive_url, r->t.token, "GET", "/v1/workers/list", NULL, READY_CALL_MS,
                 &list) == RB_OK &&
        list.status == 200)
        has = kpr_workers_entry(list.body, r->worker_id) != NULL;
    kpr_reply_release(&list);
    return has;
}

/* GET /v1/ready: 1 ready, 0 not yet, -1 the worker is gone. */
static int poll_ready(kpr_run *r)
{
    kpr_reply rep;
    int ready = 0;
    rb_err rc = kpr_call(r->worker_url, r->t.token, "GET", "/v1/ready", NULL, READY_CALL_MS, &rep);

    if (rc == RB_OK && rep.status == 200)
        ready = json_is_true(json_object_get(rep.body, "ready"));
    else if (!hive_has_worker(r))
        ready = -1;
    kpr_reply_release(&rep);
    return ready;
}

/* Asks the hive to stop the worker and drops it from the cache. */
static void discard_worker(kpr_run *r)
{
    json_t *req = json_pack("{s:s}", "worker_id", r->worker_id);
    kpr_store *st;
    kpr_reply rep;
    kpr_fail ignored;

    kpr_fail_init(&ignored);
    /* the hive stops it (200) or does not know it (404): only then is it gone */
    if (kpr_call(r->t.hive_url, r->t.token, "POST", "/v1/workers/shutdown", req, READY_CALL_MS,
                 &rep) == RB_OK &&
        (rep.status == 200 || strcmp(rep.code, "WORKER_NOT_FOUND") == 0) &&
        kpr_ctx_store(r->c, &st, &ignored) == RB_OK)
        kpr_worker_remove(st, r->worker_id);
    kpr_reply_release(&rep);
    json_decref(req);
}

static void fail_timeout(kpr_run *r, const loading *l)
{
    kpr_fail_set(&r->f, "LOAD_TIMEOUT",
                 "Model loading timeout: worker %s on %s was not ready "
                 "after %.0f s",
                 r->worker_id, r->t.name, r->o->ready_timeout_s);
    if (l->total > 0)
        kpr_fail_line(&r->f, "Last known progress: %ld/%ld layers loaded.", l->loaded, l->total);
    else
        kpr_fail_line(&r->f, "Last known progress: none reported.");
    kpr_fail_line(&r->f, "The worker was stopped and removed from the cache.");
    kpr_fail_hint(&r->f,
                  "give it more time with --ready-timeout (large models on slow disks "
                  "need minutes), or read its log on %s: $RBEE_HOME/logs/%s.log",
                  r->t.name, r->worker_id);
    r->f.details =
        json_pack("{s:i, s:i}", "layers_loaded", (int)l->loaded, "layers_total", (int)l->total);
}

rb_err kpr_phase_ready(kpr_run *r)
{
    loading l = {r, -1, -1, 0, 0, ""};
    int64_t t0 = rb_now_ms(), end = t0 + (int64_t)(r->o->ready_timeout_s * 1000);
    int ready = 0;
    rb_err rc = RB_OK;

    while (!rc && !ready) {
        int64_t tick = rb_now_ms();
        int64_t next = tick + POLL_PERIOD_MS < end ? tick + POLL_PERIOD_MS : end;
        if (kpr_ctx_interrupted(r->c))
            rc = RB_ECANCELED;
        else if ((ready = poll_ready(r)) < 0)
            rc = RB_EIO;
        else if (!ready && tick >= end)
            rc = RB_ETIMEDOUT;
        else if (!ready)
            listen_progress(&l, (long)(next - tick));
        if (!rc && !ready && !l.ready && !l.failed)
            rc = kpr_wait_ms(r->c, (long)(next - rb_now_ms()));
        if (!rc && l.failed)
            rc = RB_EIO;
        l.ready = 0;
    }
    kpr_out_progress_end(&r->c->out);
    if (rc == RB_ETIMEDOUT) {
        fail_timeout(r, &l);
        discard_worker(r);
    } else if (rc == RB_EIO) {
        kpr_fail_set(&r->f, "WORKER_FAILED", "Worker %s on %s failed while loading%s%s",
                     r->worker_id, r->t.name, l.failed ? ": " : " (it exited)", l.message);
        kpr_fail_hint(&r->f, "read its log on %s: $RBEE_HOME/logs/%s.log", r->t.name, r->worker_id);
        discard_worker(r);
    } else if (!rc) {
        char sid[64];
        kpr_out_phase(&r->c->out, 7, "Ready: worker %s loaded %s in %.1f s",
                      kpr_short_id(r->worker_id, sid, sizeof sid), r->o->model,
                      (rb_now_ms() - t0) / 1000.0);
    }
    return rc;
}
