/*
 * hive_spawn.h - starting workers: port choice, fork/exec of the worker binary, log file, and
 * the start-up watch that reports a worker that dies at once.
 *
 *     hive_spawner *sp;
 *     hive_spawner_start(h, &sp);                     // one long-lived spawner thread
 *     hive_spawn_req req = {...};
 *     hive_worker w;
 *     rb_err rc = hive_spawner_run(sp, &req, &w, err, sizeof err);   // any thread; blocks
 *     hive_spawner_stop(sp);
 *
 * Spawns run one at a time on the spawner thread: two spawns never pick the same port, and the
 * thread that forked a worker lives as long as the hive, which the kernel's parent-death signal
 * (PR_SET_PDEATHSIG) relies on: if the hive dies without stopping its workers, they get SIGTERM.
 */
#ifndef HIVE_SPAWN_H
#define HIVE_SPAWN_H

#include <stddef.h>

#include "hive_ctx.h"

/* A worker that exits within this time after exec is reported with its log tail. */
#define HIVE_START_WATCH_MS 100

typedef struct hive_spawn_req {
    char model_ref[HIVE_REF_MAX];
    char model_path[HIVE_PATH_MAX];
    char backend[16];
    int device;
    char advertise_host[128]; /* host part of the worker URL */
} hive_spawn_req;

/* Starts the spawner thread. */
rb_err hive_spawner_start(hive *h, hive_spawner **out);
/* Refuses further spawns (RB_ECANCELED), waits for the running one, joins, frees. NULL-safe.
 * Call after the workers were stopped (see the parent-death note above). */
void hive_spawner_stop(hive_spawner *sp);

/* Spawns a worker and registers it as loading; *out receives a copy. On failure err holds a
 * user-facing message: RB_EIO when the worker could not be started or died at once (the
 * message ends with its log tail), RB_EBUSY when no port is free, RB_ETOOBIG when the registry
 * is full, RB_ECANCELED while the hive stops. */
rb_err hive_spawner_run(hive_spawner *sp, const hive_spawn_req *req, hive_worker *out, char *err,
                        size_t errlen);

/* The last max_lines lines of the file at path (at most outlen-1 bytes, newlines kept as
 * " | "); "" when unreadable. */
void hive_log_tail(const char *path, int max_lines, char *out, size_t outlen);

/* "exit status N", "signal N": a wait status in words. */
void hive_describe_status(int status, char *out, size_t outlen);

/* Path of a worker's log file: <logs_dir>/<id>.log. */
rb_err hive_worker_log_path(const hive *h, const char *id, char *out, size_t outlen);

#endif
