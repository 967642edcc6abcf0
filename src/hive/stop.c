/*
 * stop.c - graceful worker stops: HTTP shutdown request, SIGTERM, SIGKILL.
 *
 * DESIGN
 * Each stop runs on its own joinable thread so a worker slow to exit never delays the monitor
 * or another stop, and the hive's shutdown stops all workers in parallel within one budget.
 * Stop threads are kept in a list under the stopper's lock (taken only to link, unlink and
 * snapshot, never while calling out) and joined by hive_stopper_collect() on the monitor's
 * ticks, or at the end. Signals go through the registry (hive_registry_kill), which refuses
 * once the worker was reaped, so a stop never signals a reused pid.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive_stop.h"
#include "rb_client.h"
#include "rb_log.h"
#include "rb_util.h"

typedef struct stop_job {
    hive *h;
    hive_worker w;
    pthread_t thread;
    atomic_int done;
    struct stop_job *next;
} stop_job;

struct hive_stopper {
    hive *h;
    pthread_mutex_t mu;
    stop_job *jobs;
};

rb_err hive_stopper_new(hive *h, hive_stopper **out)
{
    hive_stopper *s = calloc(1, sizeof(*s));

    if (s) {
        s->h = h;
        pthread_mutex_init(&s->mu, NULL);
    }
    *out = s;
    return s ? RB_OK : RB_ENOMEM;
}

/* Joins and frees every job of a detached list. */
static void join_list(stop_job *j)
{
    while (j) {
        stop_job *next = j->next;
        pthread_join(j->thread, NULL);
        free(j);
        j = next;
    }
}

void hive_stopper_free(hive_stopper *s)
{
    if (!s)
        return;
    join_list(s->jobs);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* POST <url>/v1/admin/shutdown; the answer does not matter, only whether the process exits. */
static void request_shutdown(const hive *h, const hive_worker *w)
{
    rb_client_opts o = rb_client_opts_default();
    char url[320], err[256];
    long status = 0;
    rb_buf reply;

    o.connect_timeout_ms = HIVE_STOP_HTTP_TIMEOUT_MS;
    o.timeout_ms = HIVE_STOP_HTTP_TIMEOUT_MS;
    o.token = h->token[0] ? h->token : NULL;
    snprintf(url, sizeof url, "%s/v1/admin/shutdown", w->url);
    rb_buf_init(&reply, 64 * 1024);
    if (rb_client_request("POST", url, NULL, &o, &status, &reply, err, sizeof err))
        rb_log(RB_LOG_INFO, "stop", "worker %s: shutdown request failed: %s", w->id, err);
    else if (status != 200)
        rb_log(RB_LOG_INFO, "stop", "worker %s: shutdown request answered %ld", w->id, status);
    rb_buf_release(&reply);
}

static void *stop_main(void *arg)
{
    stop_job *j = arg;
    hive_registry *reg = j->h->reg;
    const char *id = j->w.id;

    rb_thread_set_name("hive-stop");
    request_shutdown(j->h, &j->w);
    if (!hive_registry_wait_gone(reg, id, HIVE_STOP_HTTP_GRACE_MS)) {
        rb_log(RB_LOG_WARN, "stop",
               "worker %s did not exit after the shutdown request; "
               "sending SIGTERM",
               id);
        hive_registry_kill(reg, id, SIGTERM);
        if (!hive_registry_wait_gone(reg, id, HIVE_STOP_TERM_GRACE_MS)) {
            rb_log(RB_LOG_WARN, "stop", "worker %s ignored SIGTERM; sending SIGKILL", id);
            hive_registry_kill(reg, id, SIGKILL);
            if (!hive_registry_wait_gone(reg, id, HIVE_STOP_KILL_WAIT_MS))
                rb_log(RB_LOG_ERROR, "stop", "worker %s (pid %d) survived SIGKILL", id,
                       (int)j->w.pid);
        }
    }
    atomic_store(&j->done, 1);
    return NULL;
}

rb_err hive_stop_async(hive_stopper *s, const char *id, const char *reason)
{
    stop_job *j = calloc(1, sizeof(*j));
    rb_err rc = RB_ENOMEM;

    if (!j)
        goto out;
    j->h = s->h;
    atomic_init(&j->done, 0);
    rc = hive_registry_begin_stop(s->h->reg, id, reason, &j->w);
    if (rc)
        goto out;
    rb_log(RB_LOG_INFO, "stop", "stopping worker %s (pid %d): %s", id, (int)j->w.pid, reason);
    if (pthread_create(&j->thread, NULL, stop_main, j) != 0) {
        hive_registry_kill(s->h->reg, id, SIGKILL); /* no thread: the blunt way */
        rc = RB_ENOMEM;
        goto out;
    }
    pthread_mutex_lock(&s->mu);
    j->next = s->jobs;
    s->jobs = j;
    pthread_mutex_unlock(&s->mu);
    j = NULL;
out:
    free(j);
    return rc;
}

void hive_stopper_collect(hive_stopper *s)
{
    stop_job *finished = NULL, **pp;

    pthread_mutex_lock(&s->mu);
    pp = &s->jobs;
    while (*pp) {
        stop_job *j = *pp;
        if (atomic_load(&j->done)) {
            *pp = j->next;
            j->next = finished;
            finished = j;
        } else {
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&s->mu);
    join_list(finished);
}

size_t hive_stop_all(hive_stopper *s)
{
    hive_worker *ws = NULL;
    size_t n = 0, left;
    stop_job *all;

    if (hive_registry_list(s->h->reg, &ws, &n) == RB_OK)
        for (size_t i = 0; i < n; i++)
            hive_stop_async(s, ws[i].id, "hive shutdown"); /* RB_EBUSY: already stopping */
    free(ws);
    if (!hive_registry_wait_empty(s->h->reg, HIVE_STOP_ALL_BUDGET_MS) &&
        hive_registry_list(s->h->reg, &ws, &n) == RB_OK) {
        for (size_t i = 0; i < n; i++) {
            rb_log(RB_LOG_ERROR, "stop",
                   "worker %s still running at the end of the shutdown "
                   "budget; sending SIGKILL",
                   ws[i].id);
            hive_registry_kill(s->h->reg, ws[i].id, SIGKILL);
        }
        free(ws);
        hive_registry_wait_empty(s->h->reg, HIVE_STOP_KILL_WAIT_MS);
    }
    pthread_mutex_lock(&s->mu);
    all = s->jobs;
    s->jobs = NULL;
    pthread_mutex_unlock(&s->mu);
    join_list(all);
    left = hive_registry_count(s->h->reg);
    return left;
}
