/*
 * hive_ctx.h - the daemon's context: configuration, paths and the components, shared by the
 * HTTP handlers, the spawner, the monitor and the stoppers.
 *
 * Lifetime: built by hive_daemon_run() before any thread starts and freed after every thread
 * has been joined; the fields below the components are set once and then only read, except the
 * atomic counters of hive_metrics.
 */
#ifndef HIVE_CTX_H
#define HIVE_CTX_H

#include <stdatomic.h>
#include <stdint.h>

#include "hive.h"
#include "hive_catalog.h"
#include "hive_modelref.h"
#include "hive_registry.h"
#include "rb_http.h"

typedef struct hive_downloads hive_downloads;
typedef struct hive_spawner hive_spawner;
typedef struct hive_monitor hive_monitor;
typedef struct hive_stopper hive_stopper;
typedef struct hive_relays hive_relays;

/* Counters exported by GET /metrics. */
typedef struct hive_metrics {
    atomic_long spawned;        /* workers started */
    atomic_long spawn_failures; /* spawn requests that started no worker */
    atomic_long died;           /* workers that exited without being asked */
    atomic_long stopped;        /* workers the hive stopped (any reason) */
    atomic_long downloads_done;
    atomic_long downloads_failed;
    atomic_llong download_bytes; /* bytes received by downloads */
} hive_metrics;

typedef struct hive {
    hive_config cfg; /* string fields point into the buffers below */
    char bind_addr[64];
    char token[512];                /* "" in local mode */
    char home[HIVE_PATH_MAX];       /* $RBEE_HOME */
    char models_dir[HIVE_PATH_MAX]; /* $RBEE_HOME/models */
    char logs_dir[HIVE_PATH_MAX];   /* $RBEE_HOME/logs */
    char exe_dir[HIVE_PATH_MAX];    /* folder of the running rbee-hive */
    char worker_binary[HIVE_PATH_MAX];
    char models_dirs[4 * HIVE_PATH_MAX]; /* --models-dir, ':'-separated ("" when none) */
    char hive_url[128];                  /* base URL workers call back */
    char kv_type[16];                    /* cfg.worker_kv_type, copied */
    int64_t started_unix;
    hive_backends backends; /* detected once at start */
    hive_registry *reg;
    hive_catalog *cat;
    hive_downloads *dl;
    hive_spawner *sp;
    hive_monitor *mon;
    hive_stopper *stopper;
    hive_relays *relays; /* the OpenAI routes (relay.c) */
    rb_http_server *srv;
    hive_metrics m;
} hive;

/* The HTTP routes of §4.1 (api.c). */
extern const rb_http_route hive_routes[];
extern const size_t hive_nroutes;

/* hive_daemon_run without its signal wait, for running a hive inside another program (a
 * fuzzer, a test): every component started, the server listening on cfg->port (0: any free
 * port). hive_daemon_close stops the workers and every thread, then frees h (NULL-safe). The
 * caller blocks SIGPIPE (or ignores it) itself. */
rb_err hive_daemon_open(const hive_config *cfg, hive **out, char *err, size_t errlen);
void hive_daemon_close(hive *h);

#endif
