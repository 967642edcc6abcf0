/*
 * heartbeat.c - the worker's reports to its hive: a heartbeat at once and then every
 * interval, and the ready callback once the model is loaded.
 *
 * DESIGN
 * One thread, short HTTP timeouts, and a hive that is down is simply tried again on the next
 * tick: serving never waits for the hive. A state change (ready, busy, idle) pokes the thread
 * so the hive hears about it without waiting for the interval.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rb_client.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"
#include "worker.h"

static rb_client_opts hive_opts(wrk *w)
{
    rb_client_opts o = rb_client_opts_default();
    o.connect_timeout_ms = 1000;
    o.timeout_ms = 3000;
    o.token = w->cfg.token;
    return o;
}

static void send_ready(wrk *w)
{
    rb_client_opts o = hive_opts(w);
    char url[512], err[256];
    long status = 0;
    json_t *reply = NULL;
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:i}", "worker_id", w->cfg.worker_id, "url",
                             w->url, "model_ref", w->cfg.model_ref, "backend", w->cfg.backend,
                             "device", w->cfg.device);

    snprintf(url, sizeof url, "%s/v1/workers/ready", w->cfg.hive_url);
    if (rb_client_json("POST", url, body, &o, &status, &reply, err, sizeof err) == RB_OK &&
        status >= 200 && status < 300) {
        pthread_mutex_lock(&w->mu);
        w->ready_sent = 1;
        pthread_mutex_unlock(&w->mu);
        rb_log(RB_LOG_INFO, "worker", "ready callback accepted by %s", w->cfg.hive_url);
    } else {
        rb_log(RB_LOG_WARN, "worker", "ready callback to %s failed (%s); retrying", w->cfg.hive_url,
               status ? "HTTP error" : err);
    }
    json_decref(reply);
    json_decref(body);
}

static void send_heartbeat(wrk *w)
{
    rb_client_opts o = hive_opts(w);
    wrk_jobs_stats st;
    char url[512], err[256];
    long status = 0;
    json_t *reply = NULL, *body;

    const char *state = wrk_state_name(w);

    /* the hive knows loading, idle and busy (docs/architecture.md §4.1): a worker that is
     * stopping takes no work (busy), one whose model failed to load never will be ready
     * (loading) */
    if (strcmp(state, "stopping") == 0)
        state = "busy";
    else if (strcmp(state, "failed") == 0)
        state = "loading";
    wrk_jobs_stats_get(w->jobs, &st);
    body = json_pack("{s:s, s:I, s:s, s:s, s:i, s:i}", "worker_id", w->cfg.worker_id, "timestamp",
                     (json_int_t)rb_unix_s(), "health_status", "healthy", "state", state,
                     "slots_total", st.slots, "slots_busy", st.running);
    snprintf(url, sizeof url, "%s/v1/heartbeat", w->cfg.hive_url);
    if (rb_client_json("POST", url, body, &o, &status, &reply, err, sizeof err) != RB_OK)
        rb_log(RB_LOG_DEBUG, "worker", "heartbeat to %s failed: %s", w->cfg.hive_url, err);
    else if (status != 200)
        rb_log(RB_LOG_DEBUG, "worker", "heartbeat to %s answered %ld", w->cfg.hive_url, status);
    json_decref(reply);
    json_decref(body);
}

static void *hb_main(void *arg)
{
    wrk *w = arg;
    rb_thread_set_name("heartbeat");
    for (;;) {
        struct timespec until;
        int need_ready;

        pthread_mutex_lock(&w->mu);
        w->poked = 0; /* this heartbeat reports every change poked before it */
        pthread_mutex_unlock(&w->mu);
        send_heartbeat(w);
        pthread_mutex_lock(&w->mu);
        need_ready = !w->ready_sent;
        pthread_mutex_unlock(&w->mu);
        if (need_ready && atomic_load(&w->phase) == WRK_READY)
            send_ready(w);

        until = rb_deadline_ms((int64_t)w->cfg.heartbeat_interval_s * 1000);
        pthread_mutex_lock(&w->mu);
        while (!w->stop && !w->poked && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
            ;
        int stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
    }
    return NULL;
}

rb_err wrk_heartbeat_start(wrk *w)
{
    if (!w->cfg.hive_url || !*w->cfg.hive_url)
        return RB_OK;
    if (pthread_create(&w->hb_thread, NULL, hb_main, w) != 0)
        return RB_ENOMEM;
    w->hb_started = 1;
    return RB_OK;
}

void wrk_heartbeat_stop(wrk *w)
{
    if (w->hb_started)
        pthread_join(w->hb_thread, NULL);
    w->hb_started = 0;
}
