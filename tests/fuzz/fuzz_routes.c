/*
 * fuzz_routes - libFuzzer target: request validation on every JSON route of the worker and the
 * hive. One real worker (the bundled model, a 64-token context) and one real hive (a scratch
 * RBEE_HOME, a hub that refuses connections, a 1 MiB memory budget and /bin/false as its worker
 * binary, so nothing is downloaded or spawned) run in this process; each input's first byte
 * picks a route and the rest is the request body, handed to the route's handler by
 * rb_http_call exactly as the server would after its own checks. A stream answer is closed at
 * once, as when a client leaves.
 *
 * Besides the sanitizers, each answer must hold: a status from 200 to 599; every error (400
 * and up) a JSON object with an "error" member; no 500 from the worker, whose routes have no
 * internal failure a request can cause. FUZZ_ROUTES_LOG=1 prints each input's answer (to see
 * what a new seed reaches: build-fuzz/fuzz_routes -runs=0 tests/fuzz/corpus/fuzz_routes).
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "hive_ctx.h"
#include "rb_http.h"
#include "rb_log.h"
#include "worker.h"

typedef struct route {
    int worker; /* 1: the worker's table, 0: the hive's */
    const char *path;
} route;

/* Every POST route that reads a JSON body, but the worker's shutdown routes (they end it). */
static const route ROUTES[] = {
    {1, "/v1/inference"},        {1, "/v1/jobs"},
    {1, "/v1/chat/completions"}, {1, "/v1/completions"},
    {0, "/v1/workers/spawn"},    {0, "/v1/workers/ready"},
    {0, "/v1/heartbeat"},        {0, "/v1/workers/shutdown"},
    {0, "/v1/models/download"},  {0, "/v1/chat/completions"},
    {0, "/v1/completions"},
};
#define NROUTES (sizeof ROUTES / sizeof ROUTES[0])

static wrk *the_worker;
static hive *the_hive;

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_routes: %s: %s\n", what, err);
    abort();
}

static void start_worker(void)
{
    wrk_config c = wrk_config_default();
    char err[512];
    struct timespec t0, t;

    c.worker_id = "fuzz-worker";
    c.model_path = RB_SOURCE_DIR "/models/kjv-5m-q8_0.gguf";
    c.model_ref = "file:" RB_SOURCE_DIR "/models/kjv-5m-q8_0.gguf";
    c.port = 0;
    c.local_mode = 1;
    c.threads = 1;
    c.slots = 2;
    c.queue = 4;
    c.ctx = 64;
    c.handle_signals = 0;
    c.stream_open_timeout_ms = 200; /* a /v1/jobs job whose stream is never opened ends soon */
    if (wrk_start(&c, &the_worker, err, sizeof err))
        die("cannot start the worker", err);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&the_worker->phase) != WRK_READY) {
        struct timespec ms = {0, 1000000};
        if (atomic_load(&the_worker->phase) == WRK_FAILED)
            die("the worker", "failed to load the bundled model");
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 60)
            die("the worker", "not ready within 60 s");
        nanosleep(&ms, NULL);
    }
}

static void start_hive(void)
{
    hive_config c = hive_config_default();
    static char home[] = "/tmp/fuzz-routes-XXXXXX";
    char err[512];

    if (!mkdtemp(home))
        die("mkdtemp", "cannot make a scratch RBEE_HOME");
    setenv("HF_ENDPOINT", "http://127.0.0.1:1", 1);
    setenv("RBEE_DOWNLOAD_BACKOFF_MS", "1", 1);
    setenv("RBEE_HIVE_RAM_LIMIT_MB", "1", 1);
    setenv("RBEE_BUNDLED_MODEL", RB_SOURCE_DIR "/models/kjv-5m-q8_0.gguf", 1);
    c.port = 0;
    c.local_mode = 1;
    c.home = home;
    c.worker_binary = "/bin/false";
    if (hive_daemon_open(&c, &the_hive, err, sizeof err))
        die("cannot start the hive", err);
}

static void stop_all(void)
{
    if (the_worker) {
        wrk_request_stop(the_worker);
        wrk_finish(the_worker);
    }
    hive_daemon_close(the_hive);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    rb_log_set_level(RB_LOG_ERROR);
    start_worker();
    start_hive();
    atexit(stop_all);
    return 0;
}

static void check(const route *r, const rb_http_result *res, const uint8_t *body, size_t len)
{
    json_t *j;

    if (res->status < 200 || res->status > 599) {
        fprintf(stderr, "%s answered status %d\n", r->path, res->status);
        abort();
    }
    if (r->worker && res->status == 500) {
        fprintf(stderr, "worker %s answered 500 to %zu bytes: %.*s\n", r->path, len, (int)len,
                (const char *)body);
        abort();
    }
    if (res->status < 400 || res->streamed)
        return;
    j = res->body ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    if (!json_is_object(j) || !json_object_get(j, "error")) {
        fprintf(stderr, "%s answered %d without an error object: %.*s\n", r->path, res->status,
                (int)res->body_len, res->body ? res->body : "");
        abort();
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const route *r;
    rb_http_result res;

    if (size < 1)
        return 0;
    r = &ROUTES[data[0] % NROUTES];
    if (r->worker) {
        if (rb_http_call(wrk_routes, wrk_nroutes, the_worker, "POST", r->path,
                         (const char *)data + 1, size - 1, &res))
            return 0;
    } else if (rb_http_call(hive_routes, hive_nroutes, the_hive, "POST", r->path,
                            (const char *)data + 1, size - 1, &res)) {
        return 0;
    }
    if (getenv("FUZZ_ROUTES_LOG")) /* what each input got: for checking new seeds */
        fprintf(stderr, "%s %s -> %d%s %.200s\n", r->worker ? "worker" : "hive", r->path,
                res.status, res.streamed ? " (stream)" : "", res.body ? res.body : "");
    check(r, &res, data + 1, size - 1);
    free(res.body);
    return 0;
}
