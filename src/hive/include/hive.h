/*
 * hive.h - rbee-hive, the pool manager of one node: model catalog and downloads, worker spawn
 * and registry, health monitor, idle timeout and cascading shutdown (docs/architecture.md
 * §3-§5.2, §7).
 *
 *     hive_config cfg = hive_config_default();
 *     cfg.local_mode = 1;
 *     cfg.bind_addr = "127.0.0.1";
 *     char err[256];
 *     if (hive_daemon_run(&cfg, err, sizeof err)) { fprintf(stderr, "rbee-hive: %s\n", err); }
 *
 *     hive_backends b;
 *     hive_detect(&b);                       // cpu always; cuda through nvidia-smi; metal on macOS
 *     hive_detect_print(stdout, &b, 1);      // {"backends":["cpu"],"devices":{"cpu":1}}
 *
 * Everything else (catalog, downloads, registry, spawner, monitor, HTTP handlers) is private to
 * src/hive/ and documented in its own hive_*.h header there.
 */
#ifndef HIVE_H
#define HIVE_H

#include <stdint.h>
#include <stdio.h>

#include "rb_err.h"

/* The name under which the bundled model can be requested as a model reference. Its file is
 * the first models/HIVE_BUNDLED_GLOB in name order (see docs/hive.md for the folders searched). */
#define HIVE_BUNDLED_NAME "kjv"
#define HIVE_BUNDLED_GLOB "kjv*-q8_0.gguf" /* the Q8_0 file is the default */

/* The binary the hive spawns, looked up next to rbee-hive unless --worker-binary is given. */
#define HIVE_WORKER_BINARY "llm-worker-rbee"

typedef struct hive_config {
    const char *bind_addr;     /* NULL: "127.0.0.1" in local mode, else "0.0.0.0" */
    uint16_t port;             /* default 8080 */
    int local_mode;            /* bind loopback, no authentication, workers get --local-mode */
    const char *token;         /* bearer token; required (non-empty) unless local_mode */
    int monitor_interval_ms;   /* health, heartbeat, loading and idle checks; default 30000 */
    int idle_timeout_ms;       /* idle workers are shut down after this; 0: never; default 300000 */
    int load_timeout_ms;       /* a worker still loading after this is killed; default 300000 */
    int heartbeat_interval_ms; /* passed to workers; stale after two intervals; default 30000 */
    const char *worker_binary; /* NULL: HIVE_WORKER_BINARY next to the running executable */
    const char *home;          /* NULL: rb_home_dir() ($RBEE_HOME or ~/.rbee) */
    uint16_t worker_port_base; /* first port tried for workers; default 8081 */
    int worker_slots;          /* > 0: --slots for every worker (else the worker's default, 1) */
    int worker_threads;        /* > 0: --threads (else the worker's default: physical cores) */
    int worker_ctx;            /* >= 0: --ctx (0: the training context); -1 (default): the
                                * worker's default, 4096 capped at the training context */
    const char *worker_kv_type; /* "f16", "q8_0", "f32": --kv-type; NULL: the worker's f16 */
    const char *models_dirs;    /* more folders file: references may name, ':'-separated; NULL */
    int relay_queue;      /* OpenAI requests that may wait for a slot of a full model; default 16 */
    int max_connections;  /* HTTP connections; 0: the server's default (4096) */
    int max_conns_per_ip; /* HTTP connections from one address; 0: default (256) */
    int request_timeout_ms; /* whole HTTP request; 0: default (10000) */
} hive_config;

/* Defaults of docs/architecture.md §3 and §5.2; RBEE_WORKER_PORT_BASE overrides
 * worker_port_base. */
hive_config hive_config_default(void);

/* Runs the daemon until SIGTERM or SIGINT, then stops every worker (30 s budget), keeps the
 * catalog and returns RB_OK. Must be called from the main thread before any other thread
 * exists: it blocks SIGTERM, SIGINT and SIGPIPE for the whole process. Refuses to start in
 * network mode without a token (RB_EAUTH, message naming --local-mode) and when the port cannot
 * be bound (RB_EIO). err receives a one-line message on failure. */
rb_err hive_daemon_run(const hive_config *cfg, char *err, size_t errlen);

#define HIVE_MAX_BACKENDS 4

typedef struct hive_backends {
    int n;
    char name[HIVE_MAX_BACKENDS][16]; /* the backends workers can be spawned on: "cpu" */
    int devices[HIVE_MAX_BACKENDS];   /* devices of each backend (cpu: 1) */
    int cpu_cores;                    /* physical cores */
    /* Accelerators found that this build's worker cannot use (it computes on the CPU only):
     * reported by `rbee-hive detect`, never offered for spawning. */
    int unserved_n;
    char unserved_name[HIVE_MAX_BACKENDS][16];
    int unserved_devices[HIVE_MAX_BACKENDS];
} hive_backends;

/* Finds the backends of this machine. Runs nvidia-smi when it is on PATH (a child process:
 * call it before threads that reap children start). */
void hive_detect(hive_backends *out);

/* Index of backend name in b, or -1. */
int hive_backends_find(const hive_backends *b, const char *name);

/* Prints the backends as a table (with the core count) or as
 * {"backends":[...],"devices":{...}}. */
rb_err hive_detect_print(FILE *out, const hive_backends *b, int as_json);

#endif
