/*
 * daemon.c - rbee-hive's daemon: configuration, start-up, the signal loop and the orderly
 * shutdown.
 *
 * DESIGN
 * SIGTERM, SIGINT and SIGPIPE are blocked before any thread starts, so every thread inherits
 * the mask and the main thread alone receives the stop signals, in sigwait(). Start-up builds
 * the components bottom-up (catalog, registry, stopper, downloads, monitor, spawner, HTTP) and
 * the shutdown takes them down in the order that keeps every invariant:
 *   1. the HTTP server (in-flight handlers finish; no new spawns or downloads): OpenAI
 *      requests waiting for a worker give up first and relays close their transfers, and
 *      the relay threads are joined once the server has stopped;
 *   2. downloads are cancelled and joined (partial files removed, no catalog rows);
 *   3. every worker is stopped in parallel (HTTP, SIGTERM, SIGKILL; 30 s budget) while the
 *      monitor keeps reaping them;
 *   4. the spawner thread ends (only now: the workers' parent-death signal is tied to it);
 *   5. the monitor ends; then everything is freed. The catalog file stays.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hive.h"
#include "hive_ctx.h"
#include "hive_download.h"
#include "hive_monitor.h"
#include "hive_relay.h"
#include "hive_spawn.h"
#include "hive_stop.h"
#include "rb_log.h"
#include "rb_util.h"

#define DEFAULT_PORT 8080
#define DEFAULT_WORKER_PORT 8081
#define DEFAULT_INTERVAL_MS 30000
#define DEFAULT_IDLE_MS 300000
#define DEFAULT_LOAD_MS 300000
#define DEFAULT_RELAY_QUEUE 16

hive_config hive_config_default(void)
{
    hive_config c = {0};
    const char *base = getenv("RBEE_WORKER_PORT_BASE");
    int64_t v;

    c.port = DEFAULT_PORT;
    c.monitor_interval_ms = DEFAULT_INTERVAL_MS;
    c.idle_timeout_ms = DEFAULT_IDLE_MS;
    c.load_timeout_ms = DEFAULT_LOAD_MS;
    c.heartbeat_interval_ms = DEFAULT_INTERVAL_MS;
    c.worker_port_base = DEFAULT_WORKER_PORT;
    c.worker_ctx = -1;
    c.relay_queue = DEFAULT_RELAY_QUEUE;
    if (base && rb_parse_i64(base, 1, 65535, &v) == RB_OK)
        c.worker_port_base = (uint16_t)v;
    return c;
}

/* 1 when addr is a loopback address (the only kind local mode may serve). */
static int is_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "localhost") == 0 ||
           strcmp(addr, "::1") == 0;
}

/* Copies and checks the configuration into h. */
static rb_err init_config(hive *h, const hive_config *cfg, char *err, size_t errlen)
{
    rb_err rc = RB_OK;

    h->cfg = *cfg;
    if (cfg->worker_kv_type) {
        snprintf(h->kv_type, sizeof h->kv_type, "%s", cfg->worker_kv_type);
        h->cfg.worker_kv_type = h->kv_type;
    }
    snprintf(h->bind_addr, sizeof h->bind_addr, "%s",
             cfg->bind_addr    ? cfg->bind_addr
             : cfg->local_mode ? "127.0.0.1"
                               : "0.0.0.0");
    h->cfg.bind_addr = h->bind_addr;
    if (cfg->local_mode && !is_loopback(h->bind_addr))
        rc = rb_errf(err, errlen, RB_EINVAL,
                     "--local-mode serves without authentication, so only on loopback; "
                     "'%s' is not a loopback address (for other interfaces run in network "
                     "mode with RBEE_API_TOKEN set)",
                     h->bind_addr);
    else if (!cfg->local_mode && (!cfg->token || !*cfg->token))
        rc = rb_errf(err, errlen, RB_EAUTH,
                     "network mode needs a bearer token: set RBEE_API_TOKEN, or run with "
                     "--local-mode to serve 127.0.0.1 without authentication");
    else if (!cfg->local_mode && strlen(cfg->token) >= sizeof h->token)
        rc = rb_errf(err, errlen, RB_EINVAL, "RBEE_API_TOKEN is too long");
    else if (cfg->monitor_interval_ms <= 0 || cfg->load_timeout_ms <= 0 ||
             cfg->heartbeat_interval_ms <= 0 || cfg->idle_timeout_ms < 0)
        rc = rb_errf(err, errlen, RB_EINVAL, "intervals and timeouts must be positive");
    if (rc)
        goto out;
    snprintf(h->token, sizeof h->token, "%s", cfg->local_mode ? "" : cfg->token);
    h->cfg.token = h->token[0] ? h->token : NULL;
    /* Workers take whole seconds; judge staleness by what they were given. */
    h->cfg.heartbeat_interval_ms = (cfg->heartbeat_interval_ms + 999) / 1000 * 1000;
out:
    return rc;
}

/* The base URL workers call back: loopback unless the hive is bound to one address. */
static void set_hive_url(hive *h, unsigned port)
{
    snprintf(h->hive_url, sizeof h->hive_url, "http://%s:%u",
             strcmp(h->bind_addr, "0.0.0.0") == 0 ? "127.0.0.1" : h->bind_addr, port);
}

/* The folder of the running executable into h->exe_dir. */
static void find_exe_dir(hive *h)
{
    char exe[HIVE_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash;

    exe[n > 0 ? n : 0] = '\0';
    slash = strrchr(exe, '/');
    snprintf(h->exe_dir, sizeof h->exe_dir, "%.*s", slash ? (int)(slash - exe) : 1,
             slash ? exe : ".");
}

/* $RBEE_HOME and its folders, the executable's folder and the worker binary. */
static rb_err init_paths(hive *h, const hive_config *cfg, char *err, size_t errlen)
{
    rb_err rc = RB_OK;

    if (cfg->home ? snprintf(h->home, sizeof h->home, "%s", cfg->home) >= (int)sizeof h->home
                  : rb_home_dir(h->home, sizeof h->home) != RB_OK) {
        rc = rb_errf(err, errlen, RB_ETOOBIG, "RBEE_HOME is too long");
        goto out;
    }
    if (rb_path_join(h->models_dir, sizeof h->models_dir, h->home, "models") ||
        rb_path_join(h->logs_dir, sizeof h->logs_dir, h->home, "logs") ||
        rb_mkdir_p(h->models_dir) || rb_mkdir_p(h->logs_dir)) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot create the folders of '%s'", h->home);
        goto out;
    }
    find_exe_dir(h);
    if (cfg->models_dirs && snprintf(h->models_dirs, sizeof h->models_dirs, "%s",
                                     cfg->models_dirs) >= (int)sizeof h->models_dirs) {
        rc = rb_errf(err, errlen, RB_ETOOBIG, "--models-dir is too long");
        goto out;
    }
    if (cfg->worker_binary)
        snprintf(h->worker_binary, sizeof h->worker_binary, "%s", cfg->worker_binary);
    else if (rb_path_join(h->worker_binary, sizeof h->worker_binary, h->exe_dir,
                          HIVE_WORKER_BINARY))
        rc = rb_errf(err, errlen, RB_ETOOBIG, "path of the worker binary is too long");
    if (!rc && access(h->worker_binary, X_OK) != 0)
        rb_log(RB_LOG_WARN, "hive", "worker binary '%s' is not executable: spawns will fail",
               h->worker_binary);
out:
    return rc;
}

/* Starts every component; h->srv last. */
static rb_err start(hive *h, char *err, size_t errlen)
{
    char db[HIVE_PATH_MAX];
    rb_http_config hc = rb_http_config_default();
    rb_err rc;

    hive_detect(&h->backends);
    h->started_unix = rb_unix_s();
    if ((rc = rb_path_join(db, sizeof db, h->home, "models.db")) ||
        (rc = hive_catalog_open(db, &h->cat, err, errlen)))
        goto out;
    if (!(h->reg = hive_registry_new()) || hive_stopper_new(h, &h->stopper) ||
        hive_downloads_new(h, &h->dl) || hive_relays_new(h->cfg.relay_queue, &h->relays) ||
        hive_monitor_start(h, &h->mon) || hive_spawner_start(h, &h->sp)) {
        rc = rb_errf(err, errlen, RB_ENOMEM, "cannot start the hive's threads");
        goto out;
    }
    hc.bind_addr = h->bind_addr;
    hc.port = h->cfg.port;
    hc.token = h->cfg.token;
    hc.routes = hive_routes;
    hc.nroutes = hive_nroutes;
    hc.user = h;
    hc.component = "hive-http";
    if (h->cfg.max_connections)
        hc.max_connections = h->cfg.max_connections;
    if (h->cfg.max_conns_per_ip)
        hc.max_connections_per_ip = h->cfg.max_conns_per_ip;
    if (h->cfg.request_timeout_ms)
        hc.request_timeout_ms = h->cfg.request_timeout_ms;
    /* With a fixed port the URL is known before the first request can arrive; with port 0
     * clients learn the port only from the line announce() prints afterwards. */
    if (h->cfg.port)
        set_hive_url(h, h->cfg.port);
    if ((rc = rb_http_server_start(&hc, &h->srv, err, errlen)))
        goto out;
    if (!h->cfg.port)
        set_hive_url(h, rb_http_server_port(h->srv));
out:
    return rc;
}

/* Takes everything down in the order of the DESIGN note; NULL-safe at every step. */
static void stop(hive *h)
{
    size_t left = 0;

    hive_relays_stop(h->relays);
    rb_http_server_stop(h->srv);
    hive_relays_free(h->relays);
    if (h->dl)
        hive_downloads_stop(h->dl);
    if (h->stopper && h->reg)
        left = hive_stop_all(h->stopper);
    if (left)
        rb_log(RB_LOG_ERROR, "hive", "%zu workers could not be stopped", left);
    hive_spawner_stop(h->sp);
    hive_monitor_stop(h->mon);
    hive_stopper_free(h->stopper);
    hive_downloads_free(h->dl);
    hive_registry_free(h->reg);
    hive_catalog_close(h->cat);
}

static void announce(const hive *h)
{
    char fp[7];

    if (h->cfg.local_mode) {
        rb_log(RB_LOG_INFO, "hive",
               "rbee-hive %s listening on %s:%u (local mode, no "
               "authentication); RBEE_HOME %s",
               RB_VERSION, h->bind_addr, rb_http_server_port(h->srv), h->home);
    } else {
        rb_token_fingerprint(h->token, fp);
        rb_log(RB_LOG_INFO, "hive",
               "rbee-hive %s listening on %s:%u (network mode, token "
               "fingerprint %s); RBEE_HOME %s",
               RB_VERSION, h->bind_addr, rb_http_server_port(h->srv), fp, h->home);
    }
    printf("listening on port %u\n", rb_http_server_port(h->srv));
    fflush(stdout);
}

rb_err hive_daemon_open(const hive_config *cfg, hive **out, char *err, size_t errlen)
{
    hive *h = calloc(1, sizeof(*h));
    rb_err rc;

    *out = NULL;
    if (!h)
        return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
    if ((rc = init_config(h, cfg, err, errlen)) || (rc = init_paths(h, cfg, err, errlen)) ||
        (rc = start(h, err, errlen))) {
        stop(h);
        free(h);
        return rc;
    }
    *out = h;
    return RB_OK;
}

void hive_daemon_close(hive *h)
{
    if (!h)
        return;
    stop(h);
    rb_log(RB_LOG_INFO, "hive", "stopped");
    free(h);
}

rb_err hive_daemon_run(const hive_config *cfg, char *err, size_t errlen)
{
    hive *h = NULL;
    sigset_t set;
    int sig = 0;
    rb_err rc;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sigdelset(&set, SIGPIPE);
    /* A file size limit (ulimit -f, a service's LimitFSIZE) must fail a download's write
     * with EFBIG, as a full disk fails it with ENOSPC, not kill the daemon. */
    signal(SIGXFSZ, SIG_IGN);
    if ((rc = hive_daemon_open(cfg, &h, err, errlen)))
        return rc;
    announce(h);
    while (sig != SIGTERM && sig != SIGINT)
        if (sigwait(&set, &sig) != 0)
            sig = 0;
    rb_log(RB_LOG_INFO, "hive", "%s received: stopping %zu workers", strsignal(sig),
           hive_registry_count(h->reg));
    hive_daemon_close(h);
    return RB_OK;
}
