/*
 * monitor.c - the monitor thread: reaping, heartbeats, loading limit, health, idle timeout.
 *
 * DESIGN
 * The monitor waits in poll() on an eventfd (woken when a worker is registered, or to stop)
 * and on the pidfd of every registered worker, with the time left to the next tick as the
 * timeout. A pidfd turns readable the moment its process exits, so a crashed worker is reaped,
 * logged and removed at once rather than at the next tick; it is the only thread that reaps
 * registered workers (through hive_registry_reap). Without pidfds (old kernels) it falls back to
 * reaping every FALLBACK_REAP_MS.
 *
 * On each tick it takes a copy of the registry and judges each worker outside the registry
 * lock: killing a stuck or silent worker (SIGKILL through the registry), health-checking it
 * over HTTP, or starting a graceful stop for an idle one (stop.c, on its own thread). Health
 * checks do not count as activity: only a worker's own report of being busy does, and a
 * request the hive relays to it (relay.c), which also keeps it from the idle timeout while the
 * relay lasts.
 *
 * A worker that is full is not dead (issue 15): a health check it answers 503, or a connection
 * it accepts and closes at once without a reply (its HTTP server's connection limit), counts
 * neither as a success nor as a failure. Only a check that cannot connect (nothing listens),
 * times out, or gets another non-200 answer counts towards HIVE_HEALTH_FAILURES. Likewise a
 * missed heartbeat kills a worker only while this hive's own server is not refusing
 * connections: a flood against the hive would otherwise turn every worker's heartbeat into a
 * death sentence; during such a flood the health checks decide.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hive_download.h"
#include "hive_monitor.h"
#include "hive_spawn.h"
#include "hive_stop.h"
#include "rb_client.h"
#include "rb_log.h"
#include "rb_util.h"

#define FALLBACK_REAP_MS 200 /* reaping period when a worker has no pidfd */
#define CRASH_TAIL_LINES 5   /* log lines quoted when a worker dies */

struct hive_monitor {
    hive *h;
    pthread_t thread;
    int wake_fd;
    atomic_int stop;
};

static void log_exit(hive *h, const hive_exit *e)
{
    char st[32], log_path[HIVE_PATH_MAX], tail[1024] = "";

    hive_describe_status(e->status, st, sizeof st);
    if (e->w.stop_reason[0]) {
        atomic_fetch_add(&h->m.stopped, 1);
        rb_log(RB_LOG_INFO, "monitor", "worker %s (pid %d) removed: %s (%s)", e->w.id,
               (int)e->w.pid, e->w.stop_reason, st);
        return;
    }
    atomic_fetch_add(&h->m.died, 1);
    if (hive_worker_log_path(h, e->w.id, log_path, sizeof log_path) == RB_OK)
        hive_log_tail(log_path, CRASH_TAIL_LINES, tail, sizeof tail);
    rb_log(RB_LOG_WARN, "monitor",
           "worker %s (pid %d, %s) died (%s); removed, not restarted; last log lines: %s", e->w.id,
           (int)e->w.pid, e->w.model_ref, st, tail[0] ? tail : "(none)");
}

static void reap(hive *h)
{
    hive_exit gone[HIVE_MAX_WORKERS];
    size_t n = hive_registry_reap(h->reg, gone, HIVE_MAX_WORKERS);

    for (size_t i = 0; i < n; i++)
        log_exit(h, &gone[i]);
}

/* Marks the worker stopping and SIGKILLs it; the pidfd reports the exit and reap() logs it. */
static void kill_worker(hive *h, const hive_worker *w, const char *reason)
{
    if (hive_registry_begin_stop(h->reg, w->id, reason, NULL) != RB_OK)
        return;
    rb_log(RB_LOG_WARN, "monitor", "worker %s (pid %d): %s; killing it", w->id, (int)w->pid,
           reason);
    hive_registry_kill(h->reg, w->id, SIGKILL);
}

enum { HEALTH_FAILED = 0, HEALTH_OK = 1, HEALTH_FULL = 2 };

/* GET <url>/v1/health: HEALTH_OK when it answered 200, HEALTH_FULL when it answered 503 or
 * closed the connection without a reply, else HEALTH_FAILED. *state gets the reported state or
 * -1. */
static int health_check(const hive *h, const hive_worker *w, int *state)
{
    rb_client_opts o = rb_client_opts_default();
    char url[320], err[256];
    long status = 0;
    json_t *reply = NULL;
    rb_err rc;
    int ok;

    o.connect_timeout_ms = HIVE_HEALTH_TIMEOUT_MS;
    o.timeout_ms = HIVE_HEALTH_TIMEOUT_MS;
    o.token = h->token[0] ? h->token : NULL;
    snprintf(url, sizeof url, "%s/v1/health", w->url);
    rc = rb_client_json("GET", url, NULL, &o, &status, &reply, err, sizeof err);
    ok = rc == RB_OK && status == 200 ? HEALTH_OK : HEALTH_FAILED;
    /* RB_EIO: connected, then closed or reset before any reply (the worker is full). */
    if (status == 503 || (status == 0 && rc == RB_EIO))
        ok = HEALTH_FULL;
    *state = hive_wstate_parse(json_string_value(json_object_get(reply, "state")));
    if (ok == HEALTH_FULL)
        rb_log(RB_LOG_INFO, "monitor",
               "worker %s is full (%s); alive, not counted as a failed health check", w->id,
               status ? "answered 503" : "closed the connection without a reply");
    else if (!ok)
        rb_log(RB_LOG_INFO, "monitor", "worker %s: health check failed: %s", w->id,
               status ? "bad status" : err);
    json_decref(reply);
    return ok;
}

/* 1 when this hive's server refused a connection within the last window_ms. */
static int hive_refusing(const hive *h, int64_t now, int64_t window_ms)
{
    rb_http_stats st;
    if (!h->srv)
        return 0;
    rb_http_server_stats(h->srv, &st);
    return st.last_refused_ms && now - st.last_refused_ms <= window_ms;
}

static void check_worker(hive *h, const hive_worker *w, int64_t now)
{
    const hive_config *c = &h->cfg;
    hive_worker cur;
    int state = -1, health;
    int64_t hb_window = 2 * (int64_t)c->heartbeat_interval_ms;

    if (w->state == HIVE_W_STOPPING)
        goto out;
    if (w->state == HIVE_W_LOADING && now - w->started_ms > c->load_timeout_ms) {
        kill_worker(h, w, "load timeout");
    } else if (now - w->last_heartbeat_ms > hb_window && !hive_refusing(h, now, hb_window)) {
        kill_worker(h, w, "heartbeat lost");
    } else if ((health = health_check(h, w, &state)) != HEALTH_FULL &&
               hive_registry_health(h->reg, w->id, health == HEALTH_OK, state) >=
                   HIVE_HEALTH_FAILURES) {
        kill_worker(h, w, "health checks failed");
    } else if (c->idle_timeout_ms > 0 && hive_registry_get(h->reg, w->id, &cur) == RB_OK &&
               cur.state == HIVE_W_IDLE && cur.slots_busy == 0 && cur.relays == 0 &&
               rb_now_ms() - cur.last_activity_ms >= c->idle_timeout_ms) {
        hive_stop_async(h->stopper, cur.id, "idle timeout");
    }
out:
    return;
}

static void tick(hive *h)
{
    hive_worker *ws = NULL;
    size_t n = 0;
    int64_t now = rb_now_ms();

    hive_stopper_collect(h->stopper);
    hive_downloads_sweep(h->dl);
    if (hive_registry_list(h->reg, &ws, &n) != RB_OK)
        return;
    for (size_t i = 0; i < n; i++)
        check_worker(h, &ws[i], now);
    free(ws);
}

/* Waits until a worker exits, a wake-up, or timeout_ms. */
static void wait_events(hive_monitor *m, int timeout_ms)
{
    struct pollfd p[1 + HIVE_MAX_WORKERS];
    int fds[HIVE_MAX_WORKERS], no_pidfd;
    size_t n = hive_registry_pidfds(m->h->reg, fds, HIVE_MAX_WORKERS, &no_pidfd);

    if (no_pidfd && timeout_ms > FALLBACK_REAP_MS)
        timeout_ms = FALLBACK_REAP_MS;
    p[0] = (struct pollfd){.fd = m->wake_fd, .events = POLLIN};
    for (size_t i = 0; i < n; i++)
        p[1 + i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    if (poll(p, 1 + n, timeout_ms > 0 ? timeout_ms : 0) > 0 && (p[0].revents & POLLIN)) {
        uint64_t v;
        if (read(m->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
            rb_log(RB_LOG_DEBUG, "monitor", "wake-up read failed: %s", strerror(errno));
    }
}

static void *monitor_main(void *arg)
{
    hive_monitor *m = arg;
    hive *h = m->h;
    int64_t next_tick = rb_now_ms() + h->cfg.monitor_interval_ms;

    rb_thread_set_name("hive-monitor");
    while (!atomic_load(&m->stop)) {
        wait_events(m, (int)(next_tick - rb_now_ms()));
        reap(h);
        if (atomic_load(&m->stop) || rb_now_ms() < next_tick)
            continue;
        tick(h);
        next_tick = rb_now_ms() + h->cfg.monitor_interval_ms;
    }
    reap(h);
    return NULL;
}

rb_err hive_monitor_start(hive *h, hive_monitor **out)
{
    hive_monitor *m = calloc(1, sizeof(*m));
    rb_err rc = RB_OK;

    if (!m) {
        rc = RB_ENOMEM;
        goto out;
    }
    m->h = h;
    atomic_init(&m->stop, 0);
    m->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->wake_fd < 0 || pthread_create(&m->thread, NULL, monitor_main, m) != 0) {
        if (m->wake_fd >= 0)
            close(m->wake_fd);
        free(m);
        m = NULL;
        rc = RB_ENOMEM;
    }
out:
    *out = m;
    return rc;
}

void hive_monitor_wake(hive_monitor *m)
{
    uint64_t one = 1;
    if (m && write(m->wake_fd, &one, sizeof one) < 0)
        rb_log(RB_LOG_DEBUG, "monitor", "wake-up write failed: %s", strerror(errno));
}

void hive_monitor_stop(hive_monitor *m)
{
    if (!m)
        return;
    atomic_store(&m->stop, 1);
    hive_monitor_wake(m);
    pthread_join(m->thread, NULL);
    close(m->wake_fd);
    free(m);
}
