/*
 * api_workers.c - the worker endpoints of §4.1: spawn, ready callback, heartbeat, list,
 * shutdown.
 *
 * DESIGN
 * Handlers validate the body, then call into the registry, the spawner or the stopper with
 * plain values. A spawn runs its preflight here, in the order a user would want to learn about
 * problems: the request itself (400), the model (400/404), the backend (503), the memory (507);
 * then it hands the start to the spawner thread and waits for it (at most the start watch plus
 * the fork). The worker URL uses the host the client used to reach the hive, so a keeper on
 * another machine can reach the worker the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hive_api.h"
#include "hive_gguf.h"
#include "hive_spawn.h"
#include "hive_stop.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"

#define MAX_DEVICE 1024
#define MAX_SLOTS 4096
#define MIB (1024ull * 1024)

void hive_request_host(rb_http_req *req, char *out, size_t outlen)
{
    static const char allowed[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:";
    const char *host = rb_http_req_header(req, "Host");
    size_t n = 0;

    out[0] = '\0';
    if (host && host[0] == '[') {
        const char *end = strchr(host, ']');
        n = end ? (size_t)(end - host) + 1 : 0;
    } else if (host) {
        n = strcspn(host, ":");
    }
    if (n > 0 && n < outlen && strspn(host, allowed) >= n) {
        memcpy(out, host, n);
        out[n] = '\0';
    }
}

/* Backend and device present? Else fills e (503 BACKEND_UNAVAILABLE). */
static int backend_ok(const hive *h, const char *backend, int device, hive_api_error *e)
{
    int i = hive_backends_find(&h->backends, backend);
    json_t *avail;
    int ok = i >= 0 && device < h->backends.devices[i];

    if (ok)
        goto out;
    avail = json_array();
    for (int k = 0; k < h->backends.n; k++)
        json_array_append_new(avail, json_string(h->backends.name[k]));
    e->status = 503;
    e->code = "BACKEND_UNAVAILABLE";
    e->details =
        json_pack("{s:s, s:i, s:o}", "requested", backend, "device", device, "available", avail);
    if (i < 0)
        snprintf(e->message, sizeof e->message, "backend '%s' is not available on this node",
                 backend);
    else
        snprintf(e->message, sizeof e->message, "backend '%s' has no device %d", backend, device);
out:
    return ok;
}

static json_int_t mib_up(uint64_t bytes)
{
    return (json_int_t)((bytes + MIB - 1) / MIB);
}

/* Enough RAM for the worker? Else fills e (507 INSUFFICIENT_MEMORY). The estimate is the
 * engine's formula (rb_mem.h) over the model's header and the operator's worker options;
 * a file whose header cannot be read is judged by its size (hive_ram_required_mb). */
int hive_memory_ok(const hive *h, const char *path, hive_api_error *e)
{
    struct stat st;
    uint64_t total = 0, avail = 0, need = 0;
    rb_mem_shape sh;
    rb_mem_estimate est = {0};
    rb_mem_run run = rb_mem_run_default();
    int ok = 1, have_est = 0, threads;
    char err[256];

    /* Without a size or a meminfo there is nothing to judge by: let the worker try. */
    if (stat(path, &st) != 0 || hive_ram_mb(&total, &avail) != RB_OK)
        goto out;
    if (hive_gguf_shape(path, &sh, err, sizeof err) == RB_OK) {
        run.slots = h->cfg.worker_slots > 0 ? h->cfg.worker_slots : 1;
        threads = h->cfg.worker_threads > 0 ? h->cfg.worker_threads : rb_physical_cores();
        run.threads = threads / run.slots > 0 ? threads / run.slots : 1;
        run.n_ctx = rb_mem_ctx(h->cfg.worker_ctx, sh.n_ctx_train);
        rb_kv_type_parse(h->cfg.worker_kv_type ? h->cfg.worker_kv_type : "f16", &run.kv_block_elems,
                         &run.kv_block_bytes);
        rb_mem_estimate_compute(&sh, &run, &est);
        need = (uint64_t)mib_up(est.total);
        have_est = 1;
    } else {
        rb_log(RB_LOG_DEBUG, "spawn", "memory estimate from the file size: %s", err);
        need = hive_ram_required_mb((int64_t)st.st_size);
    }
    if (need <= avail)
        goto out;
    ok = 0;
    e->status = 507;
    e->code = "INSUFFICIENT_MEMORY";
    e->details =
        json_pack("{s:I, s:I}", "required_mb", (json_int_t)need, "available_mb", (json_int_t)avail);
    if (have_est) {
        json_object_set_new(e->details, "weights_mb", json_integer(mib_up(est.weights)));
        json_object_set_new(e->details, "kv_cache_mb", json_integer(mib_up(est.kv)));
        json_object_set_new(e->details, "scratch_mb",
                            json_integer(mib_up(est.scratch + est.process)));
        json_object_set_new(e->details, "context", json_integer(run.n_ctx));
        json_object_set_new(e->details, "slots", json_integer(run.slots));
        json_object_set_new(e->details, "kv_type",
                            json_string(h->cfg.worker_kv_type ? h->cfg.worker_kv_type : "f16"));
        snprintf(e->message, sizeof e->message,
                 "not enough RAM: the worker needs about %llu MB (weights %lld MB, KV cache %lld "
                 "MB for %d x %d tokens in %s, buffers %lld MB) and %llu MB are available; try a "
                 "smaller quantization, a shorter --worker-ctx or --worker-kv-type q8_0",
                 (unsigned long long)need, (long long)mib_up(est.weights),
                 (long long)mib_up(est.kv), run.slots, run.n_ctx,
                 h->cfg.worker_kv_type ? h->cfg.worker_kv_type : "f16",
                 (long long)mib_up(est.scratch + est.process), (unsigned long long)avail);
    } else {
        snprintf(e->message, sizeof e->message,
                 "not enough RAM: the model needs about %llu MB and %llu MB are available; try a "
                 "smaller quantization",
                 (unsigned long long)need, (unsigned long long)avail);
    }
out:
    return ok;
}

/* Validates the spawn body into req; 0 after replying 400. */
static int spawn_request(rb_http_req *req, rb_http_reply *rep, hive_spawn_req *sr)
{
    json_t *body = hive_api_body(req, rep);
    const char *backend = "cpu", *model_ref = NULL;
    long long device = 0;
    rb_jcheck c;
    int ok = 0;

    if (!body)
        goto out;
    rb_jcheck_init(&c);
    rb_json_str(&c, body, "model_ref", RB_REQUIRED, 1, HIVE_REF_MAX - 1, &model_ref);
    rb_json_str(&c, body, "backend", RB_OPTIONAL, 1, sizeof sr->backend - 1, &backend);
    rb_json_int(&c, body, "device", RB_OPTIONAL, 0, MAX_DEVICE, &device);
    ok = rb_jcheck_ok(&c);
    if (ok) {
        snprintf(sr->model_ref, sizeof sr->model_ref, "%s", model_ref);
        snprintf(sr->backend, sizeof sr->backend, "%s", backend);
        sr->device = (int)device;
    } else {
        rb_http_reply_json(rep, 400, rb_jcheck_envelope(&c));
    }
    rb_jcheck_release(&c);
    json_decref(body);
out:
    return ok;
}

static void spawn_failed(hive *h, rb_http_reply *rep, rb_err rc, const char *msg)
{
    atomic_fetch_add(&h->m.spawn_failures, 1);
    rb_log(RB_LOG_WARN, "spawn", "spawn failed: %s", msg);
    if (rc == RB_EIO)
        rb_http_reply_error(rep, 500, "WORKER_START_FAILED", msg, NULL);
    else if (rc == RB_ECANCELED)
        rb_http_reply_error(rep, 503, "SHUTTING_DOWN", msg, NULL);
    else
        rb_http_reply_error(rep, 503, "NO_CAPACITY", msg, NULL);
}

void hive_h_spawn(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    hive_spawn_req sr = {0};
    hive_modelref ref;
    hive_resolved what;
    hive_api_error e = {0};
    hive_worker w;
    char canonical[HIVE_REF_MAX], err[1536];
    rb_err rc;

    if (!spawn_request(req, rep, &sr))
        goto out;
    if (hive_resolve_model(h, sr.model_ref, &ref, canonical, sizeof canonical, sr.model_path,
                           sizeof sr.model_path, &what, &e) == RB_OK &&
        what == HIVE_RESOLVED_DOWNLOAD) {
        e.status = 404;
        e.code = "MODEL_NOT_FOUND";
        snprintf(e.message, sizeof e.message,
                 "model '%s' is not downloaded yet: POST /v1/models/download first", canonical);
    }
    if (e.status || !backend_ok(h, sr.backend, sr.device, &e) ||
        !hive_memory_ok(h, sr.model_path, &e)) {
        hive_api_reply(rep, &e);
        goto out;
    }
    if (h->cfg.local_mode)
        snprintf(sr.advertise_host, sizeof sr.advertise_host, "127.0.0.1");
    else
        hive_request_host(req, sr.advertise_host, sizeof sr.advertise_host);
    rc = hive_spawner_run(h->sp, &sr, &w, err, sizeof err);
    if (rc) {
        spawn_failed(h, rep, rc, err);
        goto out;
    }
    atomic_fetch_add(&h->m.spawned, 1);
    rb_http_reply_json(
        rep, 200,
        json_pack("{s:s, s:s, s:s}", "worker_id", w.id, "url", w.url, "state", "loading"));
out:
    return;
}

/* Reads {"worker_id"} (and optional extras) from the body; NULL after replying 400. */
static json_t *worker_body(rb_http_req *req, rb_http_reply *rep, rb_jcheck *c, const char **id)
{
    json_t *body = hive_api_body(req, rep);

    if (body) {
        rb_jcheck_init(c);
        rb_json_str(c, body, "worker_id", RB_REQUIRED, 1, HIVE_WORKER_ID_MAX - 1, id);
    }
    return body;
}

static void reply_checked(rb_http_reply *rep, rb_jcheck *c, rb_err rc, const char *id)
{
    if (!rb_jcheck_ok(c))
        rb_http_reply_json(rep, 400, rb_jcheck_envelope(c));
    else if (rc == RB_ENOTFOUND)
        rb_http_reply_error(rep, 404, "WORKER_NOT_FOUND", "no such worker on this hive",
                            json_pack("{s:s}", "worker_id", id));
    else
        rb_http_reply_json(rep, 200, json_pack("{s:s}", "status", "ok"));
}

void hive_h_ready(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    const char *id = NULL, *url = NULL;
    rb_jcheck c;
    rb_err rc = RB_OK;
    json_t *body = worker_body(req, rep, &c, &id);

    if (!body)
        goto out;
    rb_json_str(&c, body, "url", RB_OPTIONAL, 1, 255, &url);
    if (rb_jcheck_ok(&c) && (rc = hive_registry_ready(h->reg, id, url)) == RB_OK)
        rb_log(RB_LOG_INFO, "api", "worker %s is ready%s%s", id, url ? " at " : "", url ? url : "");
    reply_checked(rep, &c, rc, id);
    rb_jcheck_release(&c);
    json_decref(body);
out:
    return;
}

void hive_h_heartbeat(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    const char *id = NULL, *state = NULL, *health = NULL;
    long long total = -1, busy = -1;
    hive_heartbeat hb;
    rb_jcheck c;
    rb_err rc = RB_OK;
    json_t *body = worker_body(req, rep, &c, &id);

    if (!body)
        goto out;
    rb_json_str(&c, body, "health_status", RB_OPTIONAL, 1, 64, &health);
    rb_json_int(&c, body, "slots_total", RB_OPTIONAL, 0, MAX_SLOTS, &total);
    rb_json_int(&c, body, "slots_busy", RB_OPTIONAL, 0, MAX_SLOTS, &busy);
    if (rb_json_str(&c, body, "state", RB_OPTIONAL, 1, 16, &state) == 1 &&
        hive_wstate_parse(state) < 0)
        rb_jcheck_add(&c, "state", "enum", "'state' must be loading, idle or busy");
    hb.state = state ? hive_wstate_parse(state) : -1;
    hb.slots_total = (int)total;
    hb.slots_busy = (int)busy;
    if (rb_jcheck_ok(&c))
        rc = hive_registry_heartbeat(h->reg, id, &hb);
    reply_checked(rep, &c, rc, id);
    rb_jcheck_release(&c);
    json_decref(body);
out:
    return;
}

static json_t *unix_or_null(int64_t t)
{
    return t > 0 ? json_integer(t) : json_null();
}

void hive_h_workers_list(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    hive_worker *ws = NULL;
    size_t n = 0;
    json_t *list = json_array();

    (void)req;
    if (hive_registry_list(h->reg, &ws, &n) != RB_OK) {
        json_decref(list);
        rb_http_reply_error(rep, 500, "INTERNAL", "out of memory", NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const hive_worker *w = &ws[i];
        uint64_t rss = 0;
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:i, s:o, s:o}", "id", w->id, "url",
                      w->url, "model_ref", w->model_ref, "backend", w->backend, "device", w->device,
                      "state", hive_wstate_name(w->state), "pid", (int)w->pid, "slots_total",
                      w->slots_total, "slots_busy", w->slots_busy, "last_heartbeat_unix",
                      unix_or_null(w->last_heartbeat_unix), "last_activity_unix",
                      unix_or_null(w->last_activity_unix));
        /* the worker's resident set, read from /proc at each listing; null when unknown */
        json_object_set_new(o, "rss_mb",
                            w->pid > 0 && rb_proc_rss_bytes(w->pid, &rss) == RB_OK
                                ? json_integer(mib_up(rss))
                                : json_null());
        json_array_append_new(list, o);
    }
    free(ws);
    rb_http_reply_json(rep, 200, json_pack("{s:o}", "workers", list));
out:
    return;
}

void hive_h_workers_shutdown(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    const char *id = NULL;
    rb_jcheck c;
    rb_err rc = RB_OK;
    json_t *body = worker_body(req, rep, &c, &id);

    if (!body)
        goto out;
    if (rb_jcheck_ok(&c)) {
        rc = hive_stop_async(h->stopper, id, "shutdown requested");
        if (rc == RB_EBUSY)
            rc = RB_OK; /* already stopping: same answer */
    }
    if (rb_jcheck_ok(&c) && rc == RB_OK)
        rb_http_reply_json(rep, 200,
                           json_pack("{s:s, s:s}", "status", "stopping", "worker_id", id));
    else if (rb_jcheck_ok(&c) && rc == RB_ENOMEM)
        rb_http_reply_error(rep, 500, "INTERNAL", "cannot start the stop", NULL);
    else
        reply_checked(rep, &c, rc, id);
    rb_jcheck_release(&c);
    json_decref(body);
out:
    return;
}
