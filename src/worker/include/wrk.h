/*
 * wrk.h - llm-worker-rbee: serves one GGUF model over HTTP with real-time token streaming.
 *
 *     wrk_config c = wrk_config_default();
 *     if (wrk_config_parse(&c, argc, argv, &shown, err, sizeof err)) { fprintf(stderr, ...); return
 * 1; } if (shown) return 0;   // -h/--help or --version was printed return wrk_run(&c);    // until
 * SIGTERM/SIGINT or POST /v1/admin/shutdown
 *
 * See docs/architecture.md §4.2, §4.3 and §5.3 for the wire contract.
 */
#ifndef WRK_H
#define WRK_H

#include <stddef.h>
#include <stdint.h>

#include "rb_err.h"

typedef struct wrk_config {
    const char *worker_id;
    const char *model_path;
    const char *model_ref;
    const char *backend; /* "cpu" */
    int device;
    uint16_t port;              /* 0: any free port (printed at start) */
    const char *hive_url;       /* NULL: no heartbeats or ready callback */
    const char *advertise_host; /* host in the url sent to the hive; default 127.0.0.1 */
    int local_mode;             /* bind 127.0.0.1, no auth */
    int no_mmap;                /* weights read into huge-page memory (copy_weights) */
    const char *token;          /* bearer token for network mode (RBEE_API_TOKEN) */
    int threads;                /* 0: physical cores, shared by the slots */
    int slots;                  /* sequences of the generation batch, default 1 */
    int batch;                  /* tokens per forward pass, 0: the engine default (64) */
    int ctx;                  /* -1 (default): 4096 capped at the training context; 0: the training
                               * context; more than the training context is capped (with a warning) */
    const char *kv_type;      /* KV cache type: "f16" (default), "q8_0" or "f32" */
    int queue;                /* jobs waiting beyond the slots, default 16 */
    int max_connections;      /* HTTP connections; 0: the server's default (4096) */
    int max_conns_per_ip;     /* HTTP connections from one address; 0: default (256) */
    int request_timeout_ms;   /* whole HTTP request; 0: default (10000) */
    int heartbeat_interval_s; /* default 30 */
    int stream_open_timeout_ms; /* POST /v1/jobs stream must open within this; default 30000 */
    int handle_signals;         /* wrk_run waits for SIGTERM/SIGINT itself (default 1) */
    int load_delay_ms; /* test knob: pause after each loaded layer (RBEE_TEST_LOAD_DELAY_MS) */
} wrk_config;

wrk_config wrk_config_default(void);

/* Parses llm-worker-rbee's command line into c (strings borrowed from argv, the token from
 * the environment). Returns RB_EINVAL with a one-line message (naming the option) in err;
 * main() prints it and exits 1, like every other failure to start. -h/--help and --version
 * print the usage or the version on stdout and set *shown (c is then not filled). */
rb_err wrk_config_parse(wrk_config *c, int argc, char **argv, int *shown, char *err, size_t errlen);

/* Runs the worker until it is told to stop. Returns the process exit code: 0 after a clean
 * shutdown, 1 when it could not start or the model failed to load. */
int wrk_run(const wrk_config *c);

#endif
