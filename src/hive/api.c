/*
 * api.c - the hive's route table, health, capabilities and metrics, and helpers shared by the
 * other handlers.
 *
 * DESIGN
 * The routes of docs/architecture.md §4.1 in one table (with the OpenAI routes of relay.c); only
 * /v1/health and /metrics are public, the HTTP layer enforces the bearer token on the rest in
 * network mode. Handlers here only read: the detected backends (fixed at start), /proc/meminfo and
 * the counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive_api.h"
#include "hive_download.h"
#include "hive_relay.h"
#include "rb_buf.h"
#include "rb_util.h"

#define MIB (1024 * 1024)
#define METRICS_MAX (64 * 1024)

json_t *hive_api_body(rb_http_req *req, rb_http_reply *rep)
{
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);

    /* The same codes as the worker's: not JSON at all, or JSON of the wrong shape. */
    if (!body)
        rb_http_reply_error(rep, 400, "INVALID_JSON", "request body is not valid JSON", NULL);
    else if (!json_is_object(body))
        rb_http_reply_error(rep, 400, "INVALID_REQUEST", "the request body must be a JSON object",
                            NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        body = NULL;
    }
    return body;
}

rb_err hive_ram_mb(uint64_t *total, uint64_t *available)
{
    const char *lim = getenv("RBEE_HIVE_RAM_LIMIT_MB");
    uint64_t cap;
    rb_err rc = rb_meminfo_mb(total, available);

    if (!rc && lim && *lim && rb_parse_u64(lim, &cap) == RB_OK && cap < *available)
        *available = cap;
    return rc;
}

uint64_t hive_ram_required_mb(int64_t size_bytes)
{
    uint64_t scaled = (uint64_t)(size_bytes > 0 ? size_bytes : 0) / 100 * HIVE_RAM_FACTOR_PCT;
    return (scaled + MIB - 1) / MIB + HIVE_RAM_OVERHEAD_MB;
}

static void h_health(rb_http_req *req, rb_http_reply *rep, void *user)
{
    (void)req, (void)user;
    rb_http_reply_json(rep, 200,
                       json_pack("{s:s, s:s, s:s}", "status", "alive", "version", RB_VERSION,
                                 "api_version", "v1"));
}

static void h_capabilities(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    json_t *backends = json_array(), *devices = json_object();
    uint64_t total = 0, avail = 0;

    (void)req;
    for (int i = 0; i < h->backends.n; i++) {
        json_array_append_new(backends, json_string(h->backends.name[i]));
        json_object_set_new(devices, h->backends.name[i], json_integer(h->backends.devices[i]));
    }
    hive_ram_mb(&total, &avail);
    rb_http_reply_json(rep, 200,
                       json_pack("{s:o, s:o, s:I, s:I, s:i}", "backends", backends, "devices",
                                 devices, "ram_total_mb", (json_int_t)total, "ram_available_mb",
                                 (json_int_t)avail, "cpu_cores", h->backends.cpu_cores));
}

static void metric(rb_buf *b, const char *name, const char *type, const char *help, long long v)
{
    rb_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name, v);
}

static void worker_gauges(hive *h, rb_buf *b)
{
    long long by_state[HIVE_W_STOPPING + 1] = {0};
    hive_worker *ws = NULL;
    size_t n = 0;

    if (hive_registry_list(h->reg, &ws, &n) == RB_OK)
        for (size_t i = 0; i < n; i++)
            by_state[ws[i].state]++;
    free(ws);
    rb_buf_appends(b, "# HELP rbee_hive_workers Workers by state.\n"
                      "# TYPE rbee_hive_workers gauge\n");
    for (int s = HIVE_W_LOADING; s <= HIVE_W_STOPPING; s++)
        rb_buf_appendf(b, "rbee_hive_workers{state=\"%s\"} %lld\n",
                       hive_wstate_name((hive_wstate)s), by_state[s]);
}

static void h_metrics(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    hive_model *models = NULL;
    size_t nmodels = 0;
    uint64_t total = 0, avail = 0;
    rb_buf b;

    (void)req;
    rb_buf_init(&b, METRICS_MAX);
    worker_gauges(h, &b);
    metric(&b, "rbee_hive_workers_spawned_total", "counter", "Workers started.",
           atomic_load(&h->m.spawned));
    metric(&b, "rbee_hive_worker_spawn_failures_total", "counter",
           "Spawn requests that started no worker.", atomic_load(&h->m.spawn_failures));
    metric(&b, "rbee_hive_workers_died_total", "counter", "Workers that exited unasked.",
           atomic_load(&h->m.died));
    metric(&b, "rbee_hive_workers_stopped_total", "counter", "Workers the hive stopped.",
           atomic_load(&h->m.stopped));
    metric(&b, "rbee_hive_openai_requests_active", "gauge",
           "OpenAI requests waiting for a worker or being relayed.",
           (long long)hive_relays_active(h->relays));
    metric(&b, "rbee_hive_downloads_running", "gauge", "Downloads in progress.",
           (long long)hive_downloads_running(h->dl));
    metric(&b, "rbee_hive_downloads_completed_total", "counter", "Downloads completed.",
           atomic_load(&h->m.downloads_done));
    metric(&b, "rbee_hive_downloads_failed_total", "counter", "Downloads that failed.",
           atomic_load(&h->m.downloads_failed));
    metric(&b, "rbee_hive_download_bytes_total", "counter", "Bytes of completed downloads.",
           atomic_load(&h->m.download_bytes));
    if (hive_catalog_list(h->cat, &models, &nmodels) == RB_OK)
        metric(&b, "rbee_hive_models", "gauge", "Models in the catalog.", (long long)nmodels);
    free(models);
    hive_ram_mb(&total, &avail);
    metric(&b, "rbee_hive_ram_available_mb", "gauge", "RAM available for workers (MiB).",
           (long long)avail);
    metric(&b, "rbee_hive_uptime_seconds", "gauge", "Seconds since the hive started.",
           (long long)(rb_unix_s() - h->started_unix));
    rb_http_reply_text(rep, 200, "text/plain; version=0.0.4", b.data ? b.data : "");
    rb_buf_release(&b);
}

const rb_http_route hive_routes[] = {
    {"GET", "/v1/health", h_health, RB_ROUTE_PUBLIC},
    {"GET", "/metrics", h_metrics, RB_ROUTE_PUBLIC},
    {"GET", "/v1/capabilities", h_capabilities, 0},
    {"POST", "/v1/workers/spawn", hive_h_spawn, 0},
    {"POST", "/v1/workers/ready", hive_h_ready, 0},
    {"POST", "/v1/heartbeat", hive_h_heartbeat, 0},
    {"GET", "/v1/workers/list", hive_h_workers_list, 0},
    {"POST", "/v1/workers/shutdown", hive_h_workers_shutdown, 0},
    {"GET", "/v1/models", hive_h_models, 0},
    {"POST", "/v1/models/download", hive_h_download, 0},
    {"POST", "/v1/models/delete", hive_h_models_delete, 0},
    {"GET", "/v1/models/download/{id}/progress", hive_h_download_progress, 0},
    {"POST", "/v1/chat/completions", hive_h_openai, RB_ROUTE_OPENAI},
    {"POST", "/v1/completions", hive_h_openai, RB_ROUTE_OPENAI},
};

const size_t hive_nroutes = sizeof hive_routes / sizeof hive_routes[0];
