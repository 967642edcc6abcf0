/*
 * hive_registry.h - the workers this hive has spawned: state, pid, slots, heartbeats, activity.
 *
 *     hive_registry *reg = hive_registry_new();
 *     hive_registry_add(reg, &w, pidfd);               // the spawner, right after fork
 *     hive_registry_started(reg, w.id);                // ... once it survived its first 100 ms
 *     hive_registry_heartbeat(reg, "worker-...", &hb); // POST /v1/heartbeat
 *     hive_exit gone[HIVE_MAX_WORKERS];
 *     size_t n = hive_registry_reap(reg, gone, HIVE_MAX_WORKERS);  // the monitor
 *     hive_registry_free(reg);
 *
 * Ownership of child processes: a registered worker's pid is reaped only inside the registry
 * (hive_registry_reap for started workers, hive_registry_discard for a start that failed),
 * which calls waitpid() under the registry lock and removes the entry in the same step;
 * hive_registry_kill() signals under that lock only while the entry exists. So a pid is never
 * signalled after it was reaped (and possibly reused). Every function is
 * thread-safe; none calls out while holding the lock. Functions return copies, never pointers
 * into the registry.
 */
#ifndef HIVE_REGISTRY_H
#define HIVE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hive_modelref.h"
#include "rb_err.h"

#define HIVE_MAX_WORKERS 64
#define HIVE_WORKER_ID_MAX 48 /* "worker-" + UUID + NUL */

typedef enum hive_wstate {
    HIVE_W_LOADING = 0,
    HIVE_W_IDLE,
    HIVE_W_BUSY,
    HIVE_W_STOPPING, /* the hive is shutting it down */
} hive_wstate;

/* "loading", "idle", "busy", "stopping". */
const char *hive_wstate_name(hive_wstate s);
/* Parses "loading", "idle" or "busy"; -1 otherwise. */
int hive_wstate_parse(const char *s);

typedef struct hive_worker {
    char id[HIVE_WORKER_ID_MAX];
    char url[256];
    char model_ref[HIVE_REF_MAX];
    char backend[16];
    int device;
    pid_t pid;
    int port;
    hive_wstate state;
    int slots_total, slots_busy;
    int64_t started_ms;          /* monotonic clock (rb_now_ms) */
    int64_t last_heartbeat_ms;   /* monotonic; started_ms until the first heartbeat */
    int64_t last_activity_ms;    /* monotonic; started_ms until ready */
    int64_t last_heartbeat_unix; /* wall clock for the API; 0 before the first */
    int64_t last_activity_unix;
    int health_failures;  /* consecutive failed health checks */
    int relays;           /* OpenAI requests the hive is relaying to it now (relay.c) */
    char stop_reason[48]; /* why the hive stops it; "" while it runs */
} hive_worker;

/* What a heartbeat reports; -1 marks a field that was absent. */
typedef struct hive_heartbeat {
    int state; /* hive_wstate (loading, idle or busy) or -1 */
    int slots_total;
    int slots_busy;
} hive_heartbeat;

/* A reaped worker and its wait status. */
typedef struct hive_exit {
    hive_worker w;
    int status;
} hive_exit;

typedef struct hive_registry hive_registry;

hive_registry *hive_registry_new(void);
/* Frees the registry; the caller has stopped every worker first. Closes remaining pidfds. */
void hive_registry_free(hive_registry *r);

/* Registers a worker just forked, marked starting; takes ownership of pidfd (-1 when the
 * kernel has none). A starting worker is listed, heartbeats and can be signalled, but
 * hive_registry_reap leaves it to its spawner, which ends the start with exactly one of
 * hive_registry_started or hive_registry_discard. RB_ETOOBIG past HIVE_MAX_WORKERS (pidfd is
 * then not taken), RB_EEXIST for a duplicate id. */
rb_err hive_registry_add(hive_registry *r, const hive_worker *w, int pidfd);
/* The start went well: from now on hive_registry_reap owns the worker. */
rb_err hive_registry_started(hive_registry *r, const char *id);
/* The starting worker's process has exited (its spawner saw it): reaps it into *status and
 * removes it. */
rb_err hive_registry_discard(hive_registry *r, const char *id, int *status);
/* Copies the worker with this id into out. RB_ENOTFOUND. */
rb_err hive_registry_get(hive_registry *r, const char *id, hive_worker *out);
/* Copies every worker into a new array (caller frees with free()); *n may be 0. */
rb_err hive_registry_list(hive_registry *r, hive_worker **out, size_t *n);
size_t hive_registry_count(hive_registry *r);
/* 1 when a registered worker uses port. */
int hive_registry_port_taken(hive_registry *r, int port);

/* Records a heartbeat: refreshes last_heartbeat, applies state and slots (unless stopping).
 * Being busy, or turning from busy to idle, counts as activity. RB_ENOTFOUND. */
rb_err hive_registry_heartbeat(hive_registry *r, const char *id, const hive_heartbeat *hb);
/* The ready callback: state idle, activity now; url replaces the worker's when non-empty. */
rb_err hive_registry_ready(hive_registry *r, const char *id, const char *url);
/* Records a health check (ok or not; state as reported or -1). A successful check resets the
 * failure count and, when it reports busy, counts as activity; the check itself never does.
 * Returns the consecutive failures, or -1 when the worker is gone. */
int hive_registry_health(hive_registry *r, const char *id, int ok, int state);

/* For the OpenAI routes (relay.c). Finds a worker serving model (references compare in
 * canonical form) that is ready (idle or busy, not stopping) and has a free slot (fewer relays
 * than max(slots_total, 1)); counts a relay on it, records activity and copies it into out.
 * Returns RB_OK, RB_EBUSY when such workers are ready but full, RB_ENOTFOUND when none is
 * ready. *loading is set to 1 when a worker for model is still loading. *seq receives the
 * change counter for hive_registry_wait_change. */
rb_err hive_registry_lease(hive_registry *r, const char *model, hive_worker *out, int *loading,
                           unsigned long *seq);
/* Ends a relay counted by hive_registry_lease; records activity (the idle clock starts now). */
void hive_registry_unlease(hive_registry *r, const char *id);
/* Waits at most timeout_ms until the registry changed since seq (a worker became ready, a
 * relay ended, a worker is stopping or was removed). */
void hive_registry_wait_change(hive_registry *r, unsigned long seq, int timeout_ms);
/* Marks the worker stopping with reason and copies it into out (may be NULL). RB_ENOTFOUND, or
 * RB_EBUSY when it is already stopping. */
rb_err hive_registry_begin_stop(hive_registry *r, const char *id, const char *reason,
                                hive_worker *out);
/* Sends sig to the worker's process while it is registered (not yet reaped). RB_ENOTFOUND. */
rb_err hive_registry_kill(hive_registry *r, const char *id, int sig);

/* Reaps (waitpid WNOHANG) every worker whose process ended, removes it and copies it into
 * out[] (at most max; later ones stay for the next call). Wakes hive_registry_wait_gone. */
size_t hive_registry_reap(hive_registry *r, hive_exit *out, size_t max);
/* Copies the pidfds of the registered, started workers into fds (at most max); *no_pidfd is
 * set to 1 when one has none (the caller then polls). The fds stay owned by the registry and
 * are closed only by hive_registry_reap, which the caller of this function must be. */
size_t hive_registry_pidfds(hive_registry *r, int *fds, size_t max, int *no_pidfd);
/* Waits until the worker is no longer registered, at most timeout_ms. 1 when gone. */
int hive_registry_wait_gone(hive_registry *r, const char *id, int timeout_ms);
/* Waits until no worker is registered, at most timeout_ms. 1 when empty. */
int hive_registry_wait_empty(hive_registry *r, int timeout_ms);

#endif
