/*
 * hive_stop.h - stopping workers gracefully: POST /v1/admin/shutdown, then SIGTERM, then
 * SIGKILL, each step given a grace period, one thread per worker so stops run in parallel.
 *
 *     hive_stopper *s;
 *     hive_stopper_new(h, &s);
 *     hive_stop_async(s, "worker-...", "idle timeout");   // returns at once
 *     hive_stopper_collect(s);                            // joins the stops that finished
 *     hive_stop_all(s);                                   // hive shutdown: every worker
 *     hive_stopper_free(s);
 *
 * The stop threads never reap: they wait for the registry to report the worker gone (the
 * monitor reaps it as soon as its process exits), so the monitor must run while stops do.
 */
#ifndef HIVE_STOP_H
#define HIVE_STOP_H

#include "hive_ctx.h"

#define HIVE_STOP_HTTP_TIMEOUT_MS 2000 /* the shutdown request itself */
#define HIVE_STOP_HTTP_GRACE_MS 8000   /* time to exit after the request, before SIGTERM */
#define HIVE_STOP_TERM_GRACE_MS 8000   /* time to exit after SIGTERM, before SIGKILL */
#define HIVE_STOP_KILL_WAIT_MS 5000    /* time for the kernel to end it after SIGKILL */
#define HIVE_STOP_ALL_BUDGET_MS 30000  /* hive shutdown, all workers together */

rb_err hive_stopper_new(hive *h, hive_stopper **out);
/* Joins every stop thread, then frees. NULL-safe. */
void hive_stopper_free(hive_stopper *s);

/* Marks the worker stopping and starts its stop thread. RB_ENOTFOUND, RB_EBUSY when it is
 * already stopping, RB_ENOMEM when no thread could be started. */
rb_err hive_stop_async(hive_stopper *s, const char *id, const char *reason);
/* Joins the stop threads that have finished. */
void hive_stopper_collect(hive_stopper *s);
/* Stops every registered worker in parallel and waits until all are gone (at most
 * HIVE_STOP_ALL_BUDGET_MS). Returns the number still registered afterwards (0 normally). */
size_t hive_stop_all(hive_stopper *s);

#endif
