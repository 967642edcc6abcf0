/*
 * hive_monitor.h - the monitor thread: reaps workers the moment they exit, and every
 * monitor interval checks heartbeats, loading time, health and idleness
 * (docs/architecture.md §5.2).
 *
 *     hive_monitor *mon;
 *     hive_monitor_start(h, &mon);   // after h->reg, h->stopper and h->dl exist
 *     hive_monitor_wake(mon);        // a worker was registered: watch its pidfd too
 *     hive_monitor_stop(mon);        // after every worker is gone
 *
 * Rules applied on each tick to every worker that is not already stopping:
 *   - still loading after load_timeout            -> SIGKILL, removed ("load timeout")
 *   - no heartbeat for two heartbeat intervals    -> SIGKILL, removed ("heartbeat lost")
 *   - HIVE_HEALTH_FAILURES failed health checks   -> SIGKILL, removed ("health checks failed")
 *   - idle (no busy slot) for idle_timeout        -> stopped gracefully ("idle timeout")
 * A worker that exits on its own is logged with its log tail and removed, never restarted.
 */
#ifndef HIVE_MONITOR_H
#define HIVE_MONITOR_H

#include "hive_ctx.h"

#define HIVE_HEALTH_FAILURES 3      /* consecutive failed checks before removal */
#define HIVE_HEALTH_TIMEOUT_MS 1000 /* one health check */

rb_err hive_monitor_start(hive *h, hive_monitor **out);
/* Wakes the monitor to re-read the registry. NULL-safe; any thread. */
void hive_monitor_wake(hive_monitor *m);
/* Stops and joins the monitor thread, frees. NULL-safe. */
void hive_monitor_stop(hive_monitor *m);

#endif
