/*
 * rbee-hive - the pool manager of one node (see hive.h and docs/hive.md).
 *
 *     rbee-hive daemon [--addr HOST:PORT] [--local-mode] [--monitor-interval S]
 *                      [--idle-timeout S] [--load-timeout S] [--heartbeat-interval S]
 *                      [--worker-binary PATH] [--worker-slots N] [--worker-threads N]
 *                      [--worker-ctx N] [--worker-kv-type f16|q8_0|f32] [--queue N]
 *                      [--models-dir DIR[:DIR...]]
 *     rbee-hive detect [--json]
 *     rbee-hive --version | --help, rbee-hive COMMAND --help
 *
 * Exit status: 0 after a clean stop (and after --help or --version), 1 when the daemon cannot
 * start, 2 for a usage error (one line on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive.h"
#include "rb_args.h"
#include "rb_client.h"
#include "rb_mem.h"
#include "rb_util.h"

#define MAX_SECONDS 86400.0 * 365

#define EXIT_USAGE 2

static const rb_subcmd commands[] = {
    {"daemon", "serve this node: models, workers, the OpenAI routes (until SIGTERM)"},
    {"detect", "print the backends of this machine and exit"},
};

static const rb_group group = {
    "rbee-hive", commands, RB_ARRAY_LEN(commands),
    "exit status: 0 after a clean stop, 1 when the daemon cannot start, 2 for a usage error.\n", 1};

static const char daemon_notes[] =
    "environment: RBEE_API_TOKEN (required without --local-mode), RBEE_HOME (~/.rbee),\n"
    "  RBEE_LOG, RBEE_WORKER_PORT_BASE (8081), RBEE_BUNDLED_MODEL, HF_ENDPOINT, HF_TOKEN\n";

static int usage(const char *why)
{
    fprintf(stderr, "rbee-hive: %s\n", why);
    return EXIT_USAGE;
}

/* "HOST:PORT" into a hive_addr; "localhost" means 127.0.0.1. 0 when valid. */
typedef struct hive_addr {
    char host[64];
    int64_t port;
} hive_addr;

static int parse_addr(const char *s, void *out)
{
    hive_addr *a = out;
    const char *colon = strrchr(s, ':');
    int ok = colon && colon != s && (size_t)(colon - s) < sizeof a->host &&
             rb_parse_i64(colon + 1, 0, 65535, &a->port) == RB_OK;

    if (ok) {
        snprintf(a->host, sizeof a->host, "%.*s", (int)(colon - s), s);
        if (strcmp(a->host, "localhost") == 0)
            snprintf(a->host, sizeof a->host, "127.0.0.1");
    }
    return ok ? 0 : -1;
}

static int run_daemon(int argc, char **argv)
{
    hive_config cfg = hive_config_default();
    hive_addr addr = {""};
    int have_addr = 0;
    char err[512];
    int status = 0;
    const rb_opt opts[] = {
        {"--addr", RB_OPT_FN, &addr, 0, 0, &have_addr, parse_addr, "HOST:PORT",
         "where to listen (default 0.0.0.0:8080, 127.0.0.1:8080 with --local-mode)"},
        {"--local-mode", RB_OPT_FLAG, &cfg.local_mode,
         .help = "loopback only, no authentication (workers too)"},
        {"--monitor-interval", RB_OPT_MS, &cfg.monitor_interval_ms, 0.001, MAX_SECONDS,
         .help = "how often workers are checked (default 30)"},
        {"--idle-timeout", RB_OPT_MS, &cfg.idle_timeout_ms, 0, MAX_SECONDS,
         .help = "stop a worker idle this long (default 300; 0 never)"},
        {"--load-timeout", RB_OPT_MS, &cfg.load_timeout_ms, 0.001, MAX_SECONDS,
         .help = "kill a worker still loading after this (default 300)"},
        {"--heartbeat-interval", RB_OPT_MS, &cfg.heartbeat_interval_ms, 0.001, MAX_SECONDS,
         .help = "the workers' heartbeat interval (default 30)"},
        {"--worker-binary", RB_OPT_STR, &cfg.worker_binary, .what = "PATH",
         .help = "the worker program (default llm-worker-rbee next to rbee-hive)"},
        {"--worker-slots", RB_OPT_INT, &cfg.worker_slots, 1, 64,
         .help = "concurrent generations per worker (default 1)"},
        {"--worker-threads", RB_OPT_INT, &cfg.worker_threads, 1, 256,
         .help = "compute threads per worker (default: physical cores)"},
        {"--worker-ctx", RB_OPT_INT, &cfg.worker_ctx, 0, 1 << 20,
         .help = "context tokens per slot (default 4096; 0: the model's)"},
        {"--worker-kv-type", RB_OPT_STR, &cfg.worker_kv_type, .what = "f16|q8_0|f32",
         .help = "KV cache type of the workers (default f16)"},
        {"--models-dir", RB_OPT_STR, &cfg.models_dirs, .what = "DIR[:DIR...]",
         .help = "folders whose .gguf files file: references may name"},
        {"--queue", RB_OPT_INT, &cfg.relay_queue, 0, 4096,
         .help = "OpenAI requests that may wait for a slot (default 16)"},
        {"--max-connections", RB_OPT_INT, &cfg.max_connections, 1, 1 << 20,
         .help = "open HTTP connections (default 4096)"},
        {"--max-connections-per-ip", RB_OPT_INT, &cfg.max_conns_per_ip, 1, 1 << 20,
         .help = "open HTTP connections from one address (default 256)"},
        {"--request-timeout", RB_OPT_MS, &cfg.request_timeout_ms, 0.001, MAX_SECONDS, .what = "S",
         .help = "seconds to receive a whole request (default 10)"},
    };
    const rb_cmd cmd = {"rbee-hive daemon", NULL, commands[0].summary, opts, RB_ARRAY_LEN(opts),
                        daemon_notes,       0};
    int elems, bytes, shown = 0;

    if (rb_cmd_parse(&cmd, argc - 2, argv + 2, NULL, 0, NULL, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        status = EXIT_USAGE;
    }
    if (shown)
        return 0;
    if (!status && cfg.worker_kv_type &&
        rb_kv_type_parse(cfg.worker_kv_type, &elems, &bytes) != RB_OK)
        status = usage("--worker-kv-type must be f16, q8_0 or f32");
    if (!status && have_addr) {
        cfg.bind_addr = addr.host;
        cfg.port = (uint16_t)addr.port;
    }
    if (!status) {
        cfg.token = getenv("RBEE_API_TOKEN");
        if (hive_daemon_run(&cfg, err, sizeof err) != RB_OK) {
            fprintf(stderr, "rbee-hive: %s\n", err);
            status = 1;
        }
    }
    return status;
}

static int run_detect(int argc, char **argv)
{
    hive_backends b;
    int json = 0;
    char err[256];
    int shown = 0;
    const rb_opt opts[] = {{"--json", RB_OPT_FLAG, &json, .help = "one JSON object"}};
    const rb_cmd cmd = {
        "rbee-hive detect", NULL, commands[1].summary, opts, RB_ARRAY_LEN(opts), NULL, 0};

    if (rb_cmd_parse(&cmd, argc - 2, argv + 2, NULL, 0, NULL, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return EXIT_USAGE;
    }
    if (shown)
        return 0;
    hive_detect(&b);
    return hive_detect_print(stdout, &b, json) == RB_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    int status = 0;
    int k = rb_group_pick(&group, argc - 1, argv + 1, &status);

    if (k < 0)
        return status ? EXIT_USAGE : 0;
    if (k == 0) {
        rb_client_global_init();
        return run_daemon(argc, argv);
    }
    return run_detect(argc, argv);
}
