/*
 * rbee-hive - the pool manager of one node (see hive.h and docs/hive.md).
 *
 *     rbee-hive daemon [--addr HOST:PORT] [--local-mode] [--monitor-interval S]
 *                      [--idle-timeout S] [--load-timeout S] [--heartbeat-interval S]
 *                      [--worker-binary PATH] [--worker-slots N] [--worker-threads N]
 *                      [--worker-ctx N] [--worker-kv-type f16|q8_0|f32] [--queue N]
 *                      [--models-dir DIR[:DIR...]]
 *     rbee-hive detect [--json]
 *     rbee-hive --version
 *
 * Exit status: 0 after a clean stop, 1 when the daemon cannot start, 2 for a usage error.
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

static const char usage_text[] =
    "usage: rbee-hive daemon [--addr HOST:PORT] [--local-mode] [--monitor-interval S]\n"
    "                        [--idle-timeout S] [--load-timeout S] [--heartbeat-interval S]\n"
    "                        [--worker-binary PATH] [--worker-slots N] [--worker-threads N]\n"
    "                        [--worker-ctx N] [--worker-kv-type f16|q8_0|f32] [--queue N]\n"
    "                        [--models-dir DIR[:DIR...]] [--max-connections N]\n"
    "                        [--max-connections-per-ip N] [--request-timeout S]\n"
    "       rbee-hive detect [--json]\n"
    "       rbee-hive --version\n"
    "environment: RBEE_API_TOKEN (required without --local-mode), RBEE_HOME, RBEE_LOG,\n"
    "             HF_ENDPOINT, HF_TOKEN (see docs/hive.md for the others)\n";

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "rbee-hive: %s\n", why);
    fputs(usage_text, stderr);
    return 2;
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
        {"--local-mode", RB_OPT_FLAG, &cfg.local_mode},
        {"--addr", RB_OPT_FN, &addr, 0, 0, &have_addr, parse_addr, "HOST:PORT"},
        {"--monitor-interval", RB_OPT_MS, &cfg.monitor_interval_ms, 0.001, MAX_SECONDS},
        {"--idle-timeout", RB_OPT_MS, &cfg.idle_timeout_ms, 0, MAX_SECONDS},
        {"--load-timeout", RB_OPT_MS, &cfg.load_timeout_ms, 0.001, MAX_SECONDS},
        {"--heartbeat-interval", RB_OPT_MS, &cfg.heartbeat_interval_ms, 0.001, MAX_SECONDS},
        {"--worker-binary", RB_OPT_STR, &cfg.worker_binary},
        {"--worker-slots", RB_OPT_INT, &cfg.worker_slots, 1, 64},
        {"--worker-threads", RB_OPT_INT, &cfg.worker_threads, 1, 256},
        {"--worker-ctx", RB_OPT_INT, &cfg.worker_ctx, 0, 1 << 20},
        {"--worker-kv-type", RB_OPT_STR, &cfg.worker_kv_type},
        {"--models-dir", RB_OPT_STR, &cfg.models_dirs},
        {"--queue", RB_OPT_INT, &cfg.relay_queue, 0, 4096},
        {"--max-connections", RB_OPT_INT, &cfg.max_connections, 1, 1 << 20},
        {"--max-connections-per-ip", RB_OPT_INT, &cfg.max_conns_per_ip, 1, 1 << 20},
        {"--request-timeout", RB_OPT_MS, &cfg.request_timeout_ms, 0.001, MAX_SECONDS},
    };
    int elems, bytes;

    if (rb_args_parse("rbee-hive daemon", argc - 2, argv + 2, opts, RB_ARRAY_LEN(opts), NULL, 0,
                      NULL, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        fputs(usage_text, stderr);
        status = 2;
    }
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
    const rb_opt opts[] = {{"--json", RB_OPT_FLAG, &json}};

    if (rb_args_parse("rbee-hive detect", argc - 2, argv + 2, opts, 1, NULL, 0, NULL, err,
                      sizeof err)) {
        fprintf(stderr, "%s\n", err);
        fputs(usage_text, stderr);
        return 2;
    }
    hive_detect(&b);
    return hive_detect_print(stdout, &b, json) == RB_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *cmd = argc >= 2 ? argv[1] : "";
    int status;

    if (strcmp(cmd, "--version") == 0) {
        printf("rbee-hive %s\n", RB_VERSION);
        status = 0;
    } else if (strcmp(cmd, "detect") == 0) {
        status = run_detect(argc, argv);
    } else if (strcmp(cmd, "daemon") == 0) {
        rb_client_global_init();
        status = run_daemon(argc, argv);
    } else {
        status = usage(argc >= 2 ? "unknown command" : NULL);
    }
    return status;
}
