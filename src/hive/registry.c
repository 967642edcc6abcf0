/*
 * registry.c - the in-memory worker registry.
 *
 * DESIGN
 * A fixed array of HIVE_MAX_WORKERS entries under one mutex, with a condition variable
 * (monotonic clock) broadcast whenever an entry is removed, so stoppers can wait for "gone"
 * without polling. The registry owns each worker's pidfd and is the only place that reaps a
 * registered pid: waitpid and the removal happen together under the lock, and kill() is sent
 * under the same lock only while the entry exists, so a reaped (and perhaps reused) pid is
 * never signalled. The waitpid calls never block (WNOHANG, or a process already known to have
 * exited), and neither does kill(), so holding the lock across them keeps "never call out under
 * a lock" in spirit: nothing here waits on another party.
 *
 * A worker is added the moment it is forked, marked starting: its spawner watches it for the
 * first moments (through the pidfd, without reaping) and then either hands it over
 * (hive_registry_started) or discards it. Registering at fork time means the worker's first
 * heartbeat, sent at once, already finds its entry.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hive_registry.h"
#include "rb_util.h"

typedef struct entry {
    hive_worker w;
    int pidfd;
    int starting; /* its spawner still watches it: not reaped here */
} entry;

struct hive_registry {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* an entry was removed, or seq moved */
    entry e[HIVE_MAX_WORKERS];
    size_t n;
    unsigned long seq; /* bumped on every change a relay waits for */
};

static const char *const state_names[] = {"loading", "idle", "busy", "stopping"};

const char *hive_wstate_name(hive_wstate s)
{
    return (unsigned)s < RB_ARRAY_LEN(state_names) ? state_names[s] : "unknown";
}

int hive_wstate_parse(const char *s)
{
    int found = -1;
    for (int i = HIVE_W_LOADING; s && i <= HIVE_W_BUSY && found < 0; i++)
        if (strcmp(s, state_names[i]) == 0)
            found = i;
    return found;
}

hive_registry *hive_registry_new(void)
{
    hive_registry *r = calloc(1, sizeof(*r));

    if (r) {
        pthread_mutex_init(&r->mu, NULL);
        rb_cond_init_monotonic(&r->changed);
    }
    return r;
}

void hive_registry_free(hive_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].pidfd >= 0)
            close(r->e[i].pidfd);
    pthread_cond_destroy(&r->changed);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Index of id or -1; the caller holds the lock. */
static int find(const hive_registry *r, const char *id)
{
    int found = -1;
    for (size_t i = 0; i < r->n && found < 0; i++)
        if (strcmp(r->e[i].w.id, id) == 0)
            found = (int)i;
    return found;
}

rb_err hive_registry_add(hive_registry *r, const hive_worker *w, int pidfd)
{
    rb_err rc = RB_OK;

    pthread_mutex_lock(&r->mu);
    if (find(r, w->id) >= 0)
        rc = RB_EEXIST;
    else if (r->n == HIVE_MAX_WORKERS)
        rc = RB_ETOOBIG;
    else {
        r->e[r->n].w = *w;
        r->e[r->n].pidfd = pidfd;
        r->e[r->n].starting = 1;
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Removes entry i, closing its pidfd; the caller holds the lock. */
static void remove_at(hive_registry *r, size_t i)
{
    if (r->e[i].pidfd >= 0)
        close(r->e[i].pidfd);
    r->e[i] = r->e[--r->n];
    r->seq++;
    pthread_cond_broadcast(&r->changed);
}

/* A change relays wait for; the caller holds the lock. */
static void bump(hive_registry *r)
{
    r->seq++;
    pthread_cond_broadcast(&r->changed);
}

rb_err hive_registry_started(hive_registry *r, const char *id)
{
    rb_err rc = RB_ENOTFOUND;
    int i;

    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0) {
        r->e[i].starting = 0;
        rc = RB_OK;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

rb_err hive_registry_discard(hive_registry *r, const char *id, int *status)
{
    rb_err rc = RB_ENOTFOUND;
    int i;

    *status = 0;
    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0) {
        if (waitpid(r->e[i].w.pid, status, 0) < 0)
            *status = 0;
        remove_at(r, (size_t)i);
        rc = RB_OK;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

rb_err hive_registry_get(hive_registry *r, const char *id, hive_worker *out)
{
    rb_err rc = RB_ENOTFOUND;
    int i;

    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0) {
        *out = r->e[i].w;
        rc = RB_OK;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

rb_err hive_registry_list(hive_registry *r, hive_worker **out, size_t *n)
{
    hive_worker *v;
    rb_err rc = RB_OK;

    pthread_mutex_lock(&r->mu);
    v = malloc((r->n ? r->n : 1) * sizeof(*v));
    if (!v)
        rc = RB_ENOMEM;
    else {
        for (size_t i = 0; i < r->n; i++)
            v[i] = r->e[i].w;
        *n = r->n;
        *out = v;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

size_t hive_registry_count(hive_registry *r)
{
    size_t n;
    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int hive_registry_port_taken(hive_registry *r, int port)
{
    int taken = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n && !taken; i++)
        taken = r->e[i].w.port == port;
    pthread_mutex_unlock(&r->mu);
    return taken;
}

static void touch_activity(hive_worker *w, int64_t now_ms)
{
    w->last_activity_ms = now_ms;
    w->last_activity_unix = rb_unix_s();
}

rb_err hive_registry_heartbeat(hive_registry *r, const char *id, const hive_heartbeat *hb)
{
    int64_t now = rb_now_ms();
    rb_err rc = RB_ENOTFOUND;
    int i;

    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0) {
        hive_worker *w = &r->e[i].w;
        w->last_heartbeat_ms = now;
        w->last_heartbeat_unix = rb_unix_s();
        if (hb->slots_total >= 0)
            w->slots_total = hb->slots_total;
        if (hb->slots_busy >= 0)
            w->slots_busy = hb->slots_busy;
        /* A worker does not load again once it said it is ready: a "loading" heartbeat sent
         * before the ready callback but arriving after it (another connection) is stale. */
        if (w->state != HIVE_W_STOPPING && hb->state >= 0 &&
            !(hb->state == HIVE_W_LOADING && w->state != HIVE_W_LOADING)) {
            if (w->state == HIVE_W_BUSY && hb->state == HIVE_W_IDLE)
                touch_activity(w, now); /* the idle clock starts when the work ended */
            w->state = (hive_wstate)hb->state;
        }
        if (w->state == HIVE_W_BUSY || w->slots_busy > 0)
            touch_activity(w, now);
        rc = RB_OK;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

rb_err hive_registry_ready(hive_registry *r, const char *id, const char *url)
{
    int64_t now = rb_now_ms();
    rb_err rc = RB_ENOTFOUND;
    int i;

    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0) {
        hive_worker *w = &r->e[i].w;
        if (w->state != HIVE_W_STOPPING)
            w->state = HIVE_W_IDLE;
        if (url && *url)
            snprintf(w->url, sizeof w->url, "%s", url);
        w->last_heartbeat_ms = now;
        w->last_heartbeat_unix = rb_unix_s();
        touch_activity(w, now);
        bump(r);
        rc = RB_OK;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int hive_registry_health(hive_registry *r, const char *id, int ok, int state)
{
    int failures = -1, i;

    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0) {
        hive_worker *w = &r->e[i].w;
        if (ok) {
            w->health_failures = 0;
            if (state == HIVE_W_BUSY)
                touch_activity(w, rb_now_ms());
        } else {
            w->health_failures++;
        }
        failures = w->health_failures;
    }
    pthread_mutex_unlock(&r->mu);
    return failures;
}

rb_err hive_registry_begin_stop(hive_registry *r, const char *id, const char *reason,
                                hive_worker *out)
{
    rb_err rc = RB_ENOTFOUND;
    int i;

    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0) {
        hive_worker *w = &r->e[i].w;
        if (w->state == HIVE_W_STOPPING) {
            rc = RB_EBUSY;
        } else {
            w->state = HIVE_W_STOPPING;
            snprintf(w->stop_reason, sizeof w->stop_reason, "%s", reason);
            bump(r);
            rc = RB_OK;
        }
        if (out)
            *out = *w;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* The canonical form of a model reference into out (the text itself when it does not parse). */
static void canonical(const char *ref, char *out, size_t outlen)
{
    hive_modelref m;
    char err[8];

    if (hive_modelref_parse(ref, &m, err, sizeof err) != RB_OK ||
        hive_modelref_format(&m, out, outlen) != RB_OK)
        snprintf(out, outlen, "%s", ref);
}

rb_err hive_registry_lease(hive_registry *r, const char *model, hive_worker *out, int *loading,
                           unsigned long *seq)
{
    char want[HIVE_REF_MAX], have[HIVE_REF_MAX];
    rb_err rc = RB_ENOTFOUND;
    int best = -1;

    canonical(model, want, sizeof want);
    *loading = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        hive_worker *w = &r->e[i].w;
        canonical(w->model_ref, have, sizeof have);
        if (strcmp(have, want) != 0 || w->state == HIVE_W_STOPPING)
            continue;
        if (w->state == HIVE_W_LOADING) {
            *loading = 1;
            continue;
        }
        if (w->relays >= (w->slots_total > 0 ? w->slots_total : 1)) {
            rc = best < 0 ? RB_EBUSY : rc;
            continue;
        }
        /* the least loaded of the ready ones */
        if (best < 0 || w->relays < r->e[best].w.relays)
            best = (int)i;
    }
    if (best >= 0) {
        hive_worker *w = &r->e[best].w;
        w->relays++;
        touch_activity(w, rb_now_ms());
        *out = *w;
        rc = RB_OK;
    }
    *seq = r->seq;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void hive_registry_unlease(hive_registry *r, const char *id)
{
    int i;

    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0 && r->e[i].w.relays > 0) {
        r->e[i].w.relays--;
        touch_activity(&r->e[i].w, rb_now_ms());
    }
    bump(r);
    pthread_mutex_unlock(&r->mu);
}

void hive_registry_wait_change(hive_registry *r, unsigned long seq, int timeout_ms)
{
    struct timespec dl = rb_deadline_ms(timeout_ms);

    pthread_mutex_lock(&r->mu);
    while (r->seq == seq)
        if (pthread_cond_timedwait(&r->changed, &r->mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&r->mu);
}

rb_err hive_registry_kill(hive_registry *r, const char *id, int sig)
{
    rb_err rc = RB_ENOTFOUND;
    int i;

    pthread_mutex_lock(&r->mu);
    if ((i = find(r, id)) >= 0) {
        kill(r->e[i].w.pid, sig);
        rc = RB_OK;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

size_t hive_registry_reap(hive_registry *r, hive_exit *out, size_t max)
{
    size_t got = 0, i = 0;

    pthread_mutex_lock(&r->mu);
    while (i < r->n && got < max) {
        int status = 0;
        pid_t p = r->e[i].starting ? 0 : waitpid(r->e[i].w.pid, &status, WNOHANG);
        if (p == 0 || (p < 0 && errno == EINTR)) {
            i++;
            continue;
        }
        /* Exited (p == pid), or not our child any more (ECHILD): either way it is gone. */
        out[got].w = r->e[i].w;
        out[got].status = p > 0 ? status : 0;
        got++;
        remove_at(r, i);
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

size_t hive_registry_pidfds(hive_registry *r, int *fds, size_t max, int *no_pidfd)
{
    size_t n = 0;

    *no_pidfd = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        if (r->e[i].starting)
            continue;
        if (r->e[i].pidfd < 0)
            *no_pidfd = 1;
        else if (n < max)
            fds[n++] = r->e[i].pidfd;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits until id (or, with id NULL, every worker) is gone; 1 when that happened before the
 * deadline. */
static int wait_until(hive_registry *r, const char *id, int timeout_ms)
{
    struct timespec dl = rb_deadline_ms(timeout_ms);
    int done, timed_out = 0;

    pthread_mutex_lock(&r->mu);
    for (;;) {
        done = id ? find(r, id) < 0 : r->n == 0;
        if (done || timed_out)
            break;
        timed_out = pthread_cond_timedwait(&r->changed, &r->mu, &dl) == ETIMEDOUT;
    }
    pthread_mutex_unlock(&r->mu);
    return done;
}

int hive_registry_wait_gone(hive_registry *r, const char *id, int timeout_ms)
{
    return wait_until(r, id, timeout_ms);
}

int hive_registry_wait_empty(hive_registry *r, int timeout_ms)
{
    return wait_until(r, NULL, timeout_ms);
}
