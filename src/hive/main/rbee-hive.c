/*
 * rbee-hive - the pool manager of one node (see hive.h and docs/hive.md).
 *
 *     rbee-hive daemon [--addr HOST:PORT] [--local-mode] [--monitor-interval S]
 *                      [--idle-timeout S] [--load-timeout S] [--heartbeat-interval S]
 *                      [--worker-binary PATH]
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
    "                        [--worker-binary PATH]\n"
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
    int64_t port;

    if (!colon || colon == s || (size_t)(colon - s) >= hostlen ||
        rb_parse_i64(colon + 1, 0, 65535, &port) != RB_OK)
        return 0;
    snprintf(host, hostlen, "%.*s", (int)(colon - s), s);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, hostlen, "127.0.0.1");
    cfg->bind_addr = host;
    cfg->port = (uint16_t)port;
    return 1;
}

/* Seconds (fractions allowed) into milliseconds. */
static int parse_seconds(const char *s, int zero_ok, int *ms)
{
    double v;
    if (!s || rb_parse_double(s, zero_ok ? 0.0 : 0.001, MAX_SECONDS, &v) != RB_OK)
        return 0;
    *ms = (int)(v * 1000.0 + 0.5);
    return 1;
}

static int run_daemon(int argc, char **argv)
{
    hive_config cfg = hive_config_default();
    char host[64], err[512];

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (strcmp(a, "--local-mode") == 0) {
            cfg.local_mode = 1;
            continue;
        }
        if (strcmp(a, "--addr") == 0)
            ok = v && parse_addr(v, host, sizeof host, &cfg);
        else if (strcmp(a, "--monitor-interval") == 0)
            ok = parse_seconds(v, 0, &cfg.monitor_interval_ms);
        else if (strcmp(a, "--idle-timeout") == 0)
            ok = parse_seconds(v, 1, &cfg.idle_timeout_ms);
        else if (strcmp(a, "--load-timeout") == 0)
            ok = parse_seconds(v, 0, &cfg.load_timeout_ms);
        else if (strcmp(a, "--heartbeat-interval") == 0)
            ok = parse_seconds(v, 0, &cfg.heartbeat_interval_ms);
        else if (strcmp(a, "--worker-binary") == 0)
            ok = v && *v && (cfg.worker_binary = v);
        else
            return usage("unknown option");
        if (!ok) {
            fprintf(stderr, "rbee-hive: bad value for %s\n", a);
            return 2;
        }
        i++;
    }
    cfg.token = getenv("RBEE_API_TOKEN");
    if (hive_daemon_run(&cfg, err, sizeof err) != RB_OK) {
        fprintf(stderr, "rbee-hive: %s\n", err);
        return 1;
    }
    return 0;
}

static int run_detect(int argc, char **argv)
{
    hive_backends b;
    int json = argc == 3 && strcmp(argv[2], "--json") == 0;

    if (argc > 3 || (argc == 3 && !json))
        return usage("detect takes only --json");
    hive_detect(&b);
    return hive_detect_print(stdout, &b, json) == RB_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("rbee-hive %s\n", RB_VERSION);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "detect") == 0)
        return run_detect(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "daemon") == 0) {
        rb_client_global_init();
        return run_daemon(argc, argv);
    }
    return usage(argc >= 2 ? "unknown command" : NULL);
}
