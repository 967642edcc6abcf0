/*
 * rbee-hive - the pool manager of one node (see hive.h and docs/hive.md).
 *
 *     rbee-hive daemon [--addr HOST:PORT] [--local-mode] [--monitor-interval S]
 *                      [--idle-timeout S] [--load-timeout S] [--heartbeat-interval S]
 *                      [--worker-binary PATH] [--worker-slots N] [--worker-threads N]
 *                      [--worker-ctx N]
 *     rbee-hive detect [--json]
 *     rbee-hive --version
 *
 * Exit status: 0 after a clean stop, 1 when the daemon cannot start, 2 for a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive.h"
#include "rb_client.h"
#include "rb_util.h"

#define MAX_SECONDS 86400.0 * 365

static const char usage_text[] =
    "usage: rbee-hive daemon [--addr HOST:PORT] [--local-mode] [--monitor-interval S]\n"
    "                        [--idle-timeout S] [--load-timeout S] [--heartbeat-interval S]\n"
    "                        [--worker-binary PATH] [--worker-slots N] [--worker-threads N]\n"
    "                        [--worker-ctx N]\n"
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

/* "HOST:PORT" into cfg; "localhost" means 127.0.0.1. */
static int parse_addr(const char *s, char *host, size_t hostlen, hive_config *cfg)
{
    const char *colon = strrchr(s, ':');
    int64_t port = 0;
    int ok = colon && colon != s && (size_t)(colon - s) < hostlen &&
             rb_parse_i64(colon + 1, 0, 65535, &port) == RB_OK;

    if (ok) {
        snprintf(host, hostlen, "%.*s", (int)(colon - s), s);
        if (strcmp(host, "localhost") == 0)
            snprintf(host, hostlen, "127.0.0.1");
        cfg->bind_addr = host;
        cfg->port = (uint16_t)port;
    }
    return ok;
}

/* Seconds (fractions allowed) into milliseconds. */
static int parse_seconds(const char *s, int zero_ok, int *ms)
{
    double v = 0;
    int ok = s && rb_parse_double(s, zero_ok ? 0.0 : 0.001, MAX_SECONDS, &v) == RB_OK;

    if (ok)
        *ms = (int)(v * 1000.0 + 0.5);
    return ok;
}

/* A positive count no larger than max into *out. */
static int parse_count(const char *s, int64_t max, int *out)
{
    int64_t v = 0;
    int ok = s && rb_parse_i64(s, 1, max, &v) == RB_OK;

    if (ok)
        *out = (int)v;
    return ok;
}

/* One option with its value v; 0 when the value is bad, -1 when the option is unknown. */
static int parse_option(const char *a, const char *v, char *host, size_t hostlen, hive_config *cfg)
{
    int ok = -1;

    if (strcmp(a, "--addr") == 0)
        ok = v && parse_addr(v, host, hostlen, cfg);
    else if (strcmp(a, "--monitor-interval") == 0)
        ok = parse_seconds(v, 0, &cfg->monitor_interval_ms);
    else if (strcmp(a, "--idle-timeout") == 0)
        ok = parse_seconds(v, 1, &cfg->idle_timeout_ms);
    else if (strcmp(a, "--load-timeout") == 0)
        ok = parse_seconds(v, 0, &cfg->load_timeout_ms);
    else if (strcmp(a, "--heartbeat-interval") == 0)
        ok = parse_seconds(v, 0, &cfg->heartbeat_interval_ms);
    else if (strcmp(a, "--worker-binary") == 0 && (ok = v && *v))
        cfg->worker_binary = v;
    else if (strcmp(a, "--worker-slots") == 0)
        ok = parse_count(v, 64, &cfg->worker_slots);
    else if (strcmp(a, "--worker-threads") == 0)
        ok = parse_count(v, 256, &cfg->worker_threads);
    else if (strcmp(a, "--worker-ctx") == 0)
        ok = parse_count(v, 1 << 20, &cfg->worker_ctx);
    return ok;
}

static int run_daemon(int argc, char **argv)
{
    hive_config cfg = hive_config_default();
    char host[64], err[512];
    int status = 0;

    for (int i = 2; i < argc && !status; i++) {
        int ok = 1;
        if (strcmp(argv[i], "--local-mode") == 0)
            cfg.local_mode = 1;
        else if ((ok = parse_option(argv[i], i + 1 < argc ? argv[i + 1] : NULL, host, sizeof host,
                                    &cfg)) == 1)
            i++;
        if (ok < 0) {
            status = usage("unknown option");
        } else if (!ok) {
            fprintf(stderr, "rbee-hive: bad value for %s\n", argv[i]);
            status = 2;
        }
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
    int json = argc == 3 && strcmp(argv[2], "--json") == 0;
    int status = 0;

    if (argc > 3 || (argc == 3 && !json)) {
        status = usage("detect takes only --json");
    } else {
        hive_detect(&b);
        status = hive_detect_print(stdout, &b, json) == RB_OK ? 0 : 1;
    }
    return status;
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
