/*
 * worker.c - the worker's lifecycle: arguments, start-up order, signals and shutdown.
 *
 * Start-up: bind HTTP first (so the hive can see the worker while it loads), start the
 * heartbeat, then load the model in the background. Shutdown (SIGTERM, SIGINT or
 * POST /v1/admin/shutdown): stop admitting jobs, end queued jobs' streams, cancel running
 * ones (they end with stop_reason CANCELLED), join the generation threads and the heartbeat,
 * then stop HTTP, which ends any stream still open. Exit 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rb_args.h"
#include "rb_client.h"
#include "rb_log.h"
#include "rb_mem.h"
#include "rb_util.h"
#include "worker.h"

#define PROG "llm-worker-rbee"

wrk_config wrk_config_default(void)
{
    wrk_config c = {0};
    c.worker_id = "worker-local";
    c.model_ref = NULL;
    c.backend = "cpu";
    c.slots = 1;
    c.ctx = -1;
    c.kv_type = "f16";
    c.queue = 16;
    c.heartbeat_interval_s = 30;
    c.stream_open_timeout_ms = 30000;
    c.handle_signals = 1;
    return c;
}

rb_err wrk_config_parse(wrk_config *c, int argc, char **argv, int *shown, char *err, size_t errlen)
{
    int port = c->port;
    const rb_opt opts[] = {
        {"--model", RB_OPT_STR, &c->model_path, .what = "PATH",
         .help = "the GGUF model file (required)"},
        {"--port", RB_OPT_INT, &port, 0, 65535, .help = "HTTP port (0: any free port)"},
        {"--worker-id", RB_OPT_STR, &c->worker_id, .what = "ID",
         .help = "id reported to the hive (default worker-local)"},
        {"--model-ref", RB_OPT_STR, &c->model_ref, .what = "REF",
         .help = "the model reference the hive resolved (default PATH)"},
        {"--backend", RB_OPT_STR, &c->backend, .what = "NAME",
         .help = "only cpu is served by this build"},
        {"--device", RB_OPT_INT, &c->device, 0, 1024, .help = "default 0"},
        {"--hive-url", RB_OPT_STR, &c->hive_url, .what = "URL",
         .help = "hive base URL for heartbeats and the ready callback"},
        {"--advertise-host", RB_OPT_STR, &c->advertise_host, .what = "HOST",
         .help = "host in the URL sent to the hive (default 127.0.0.1)"},
        {"--local-mode", RB_OPT_FLAG, &c->local_mode,
         .help = "bind 127.0.0.1 without authentication"},
        {"--threads", RB_OPT_INT, &c->threads, 0, 256,
         .help = "compute threads (default: physical cores)"},
        {"--no-mmap", RB_OPT_FLAG, &c->no_mmap,
         .help = "read the weights into memory (huge pages): faster generation"},
        {"--slots", RB_OPT_INT, &c->slots, 1, 64,
         .help = "concurrent generations, run as one batch (default 1)"},
        {"--batch", RB_OPT_INT, &c->batch, 1, 4096,
         .help = "tokens per forward pass: every decoding slot's token plus a prompt chunk "
                 "(default 64)"},
        {"--queue", RB_OPT_INT, &c->queue, 0, 4096,
         .help = "jobs that may wait for a slot (default 16)"},
        {"--ctx", RB_OPT_INT, &c->ctx, 0, 1 << 20,
         .help = "context tokens per slot (default 4096, at most the model's; 0: the model's)"},
        {"--kv-type", RB_OPT_STR, &c->kv_type, .what = "f16|q8_0|f32",
         .help = "KV cache type (default f16)"},
        {"--heartbeat-interval", RB_OPT_INT, &c->heartbeat_interval_s, 1, 3600, .what = "SECONDS",
         .help = "seconds between heartbeats (default 30)"},
        {"--stream-open-timeout", RB_OPT_INT, &c->stream_open_timeout_ms, 1, 3600000, .what = "MS",
         .help = "cancel a job whose stream is not opened in time (default 30000)"},
        {"--max-connections", RB_OPT_INT, &c->max_connections, 1, 1 << 20,
         .help = "open HTTP connections (default 4096)"},
        {"--max-connections-per-ip", RB_OPT_INT, &c->max_conns_per_ip, 1, 1 << 20,
         .help = "open HTTP connections from one address (default 256)"},
        {"--request-timeout", RB_OPT_MS, &c->request_timeout_ms, 0.001, 3600, .what = "S",
         .help = "seconds to receive a whole request (default 10)"},
    };
    const rb_cmd cmd = {PROG,
                        NULL,
                        "Serve one GGUF model over HTTP with real-time token streaming.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        "environment: RBEE_API_TOKEN (required without --local-mode), RBEE_LOG,\n"
                        "  RBEE_TEST_LOAD_DELAY_MS (tests only: pause after each loaded layer)\n",
                        1};
    rb_err rc = rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, shown, err, errlen);

    if (rc || *shown)
        return rc;
    c->port = (uint16_t)port;
    if (!c->model_path)
        return rb_errf(err, errlen, RB_EINVAL, PROG ": --model is required");
    if (strcmp(c->backend, "cpu") != 0)
        return rb_errf(err, errlen, RB_EINVAL,
                       PROG ": backend '%s' is not available in this build (available: cpu)",
                       c->backend);
    {
        int elems, bytes;
        if (rb_kv_type_parse(c->kv_type, &elems, &bytes))
            return rb_errf(err, errlen, RB_EINVAL,
                           PROG ": --kv-type must be f16, q8_0 or f32, not '%s'", c->kv_type);
    }
    if (!c->model_ref)
        c->model_ref = c->model_path;
    {
        const char *d = getenv("RBEE_TEST_LOAD_DELAY_MS");
        int64_t v;
        if (d && rb_parse_i64(d, 0, 60000, &v) == RB_OK)
            c->load_delay_ms = (int)v;
    }
    if (!c->local_mode) {
        const char *t = getenv("RBEE_API_TOKEN");
        if (!t || !*t)
            return rb_errf(err, errlen, RB_EINVAL,
                           PROG ": network mode needs RBEE_API_TOKEN; set it or use --local-mode "
                                "to bind 127.0.0.1 without authentication");
        c->token = t;
    }
    return RB_OK;
}

void wrk_request_stop(wrk *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int wrk_stop_requested(wrk *w)
{
    int s;
    pthread_mutex_lock(&w->mu);
    s = w->stop;
    pthread_mutex_unlock(&w->mu);
    return s;
}

void wrk_poke(wrk *w)
{
    pthread_mutex_lock(&w->mu);
    w->poked = 1; /* kept until the heartbeat thread takes it: a poke during a send is not lost */
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

const char *wrk_state_name(wrk *w)
{
    int phase = atomic_load(&w->phase);
    if (phase == WRK_LOADING)
        return "loading";
    if (phase == WRK_FAILED)
        return "failed";
    if (phase == WRK_STOPPING)
        return "stopping";
    return wrk_gen_busy(w) > 0 ? "busy" : "idle";
}

static void *signal_main(void *arg)
{
    wrk *w = arg;
    unsigned char sig;

    rb_thread_set_name("signals");
    for (;;) {
        ssize_t r = read(w->signal_fd, &sig, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || sig == 0 || wrk_stop_requested(w))
            break; /* woken by wrk_run at exit */
        rb_log(RB_LOG_INFO, "worker", "received %s, shutting down",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
        wrk_request_stop(w);
    }
    return NULL;
}

static void end_queued(wrk *w, wrk_job *queued)
{
    while (queued) {
        wrk_job *next = queued->next;
        queued->next = NULL;
        wrk_job_end_unstarted(queued);
        wrk_metrics_request(w->metrics, WRK_OUT_CANCELLED);
        wrk_job_unref(queued);
        queued = next;
    }
}

/* Takes down what wrk_start started (NULL-safe at each step) and frees w. */
static void wrk_teardown(wrk *w)
{
    if (atomic_load(&w->phase) != WRK_FAILED)
        atomic_store(&w->phase, WRK_STOPPING);
    wrk_request_stop(w);
    if (w->jobs)
        end_queued(w, wrk_jobs_shutdown(w->jobs));
    wrk_gen_stop(w);
    wrk_heartbeat_stop(w);
    /* Every job's stream is finished; let their last events reach the clients. */
    if (w->http && rb_http_server_drain(w->http, 2000) > 0)
        rb_log(RB_LOG_WARN, "worker", "closing streams whose clients did not read their end");
    rb_http_server_stop(w->http);
    if (w->http)
        rb_log(RB_LOG_INFO, "worker", "%s stopped", w->cfg.worker_id);
    if (w->sig_started) {
        rb_signal_pipe_wake();
        pthread_join(w->sig_thread, NULL);
    }
    rb_bcast_free(w->progress);
    wrk_metrics_free(w->metrics);
    wrk_jobs_free(w->jobs);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_rwlock_destroy(&w->model_lock);
    free(w);
}

rb_err wrk_start(const wrk_config *c, wrk **out, char *err, size_t errlen)
{
    wrk *w = calloc(1, sizeof(*w));
    rb_http_config hc = rb_http_config_default();
    char fp[7];

    *out = NULL;
    if (!w)
        return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
    w->cfg = *c;
    pthread_mutex_init(&w->mu, NULL);
    rb_cond_init_monotonic(&w->cv);
    pthread_rwlock_init(&w->model_lock, NULL);
    atomic_init(&w->phase, WRK_LOADING);
    w->jobs = wrk_jobs_new(c->slots > 0 ? c->slots : 1, c->queue);
    w->metrics = wrk_metrics_new();
    w->progress = rb_bcast_new();
    if (!w->jobs || !w->metrics || !w->progress) {
        rb_errf(err, errlen, RB_ENOMEM, "out of memory");
        goto fail;
    }
    rb_client_global_init();

    /* SIGTERM/SIGINT become bytes on a pipe that one thread reads: OpenBLAS starts threads
     * before main(), so blocking the signals in our threads alone would not be enough. */
    if (c->handle_signals && rb_signal_pipe(&w->signal_fd) == RB_OK &&
        pthread_create(&w->sig_thread, NULL, signal_main, w) == 0)
        w->sig_started = 1;

    hc.bind_addr = c->local_mode ? "127.0.0.1" : "0.0.0.0";
    hc.port = c->port;
    hc.token = c->local_mode ? NULL : c->token;
    hc.routes = wrk_routes;
    hc.nroutes = wrk_nroutes;
    hc.user = w;
    hc.component = "worker-http";
    if (c->max_connections)
        hc.max_connections = c->max_connections;
    if (c->max_conns_per_ip)
        hc.max_connections_per_ip = c->max_conns_per_ip;
    if (c->request_timeout_ms)
        hc.request_timeout_ms = c->request_timeout_ms;
    if (rb_http_server_start(&hc, &w->http, err, errlen)) {
        rb_log(RB_LOG_ERROR, "worker", "%s", err);
        fprintf(stderr, "llm-worker-rbee: %s\n", err);
        goto fail;
    }
    snprintf(w->url, sizeof w->url, "http://%s:%u",
             c->advertise_host ? c->advertise_host : "127.0.0.1", rb_http_server_port(w->http));
    if (hc.token)
        rb_token_fingerprint(hc.token, fp);
    rb_log(RB_LOG_INFO, "worker", "%s listening on %s:%u (%s), model %s", c->worker_id,
           hc.bind_addr, rb_http_server_port(w->http),
           hc.token ? "network mode, token fingerprint" : "local mode", c->model_path);
    if (hc.token)
        rb_log(RB_LOG_INFO, "worker", "token fingerprint %s", fp);
    /* Machine-readable line for whoever started us with --port 0. */
    printf("listening on port %u\n", rb_http_server_port(w->http));
    fflush(stdout);

    if (wrk_heartbeat_start(w)) {
        rb_errf(err, errlen, RB_EIO, "cannot start the heartbeat thread");
        goto fail_started;
    }
    if (wrk_gen_start(w, err, errlen))
        goto fail_started;
    *out = w;
    return RB_OK;
fail_started:
    rb_log(RB_LOG_ERROR, "worker", "cannot start: %s", err);
fail:
    atomic_store(&w->phase, WRK_FAILED);
    wrk_teardown(w);
    return RB_EIO;
}

int wrk_finish(wrk *w)
{
    int code;

    pthread_mutex_lock(&w->mu);
    while (!w->stop)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    code = atomic_load(&w->phase) == WRK_FAILED ? 1 : 0;
    wrk_teardown(w);
    return code;
}

int wrk_run(const wrk_config *c)
{
    wrk *w;
    char err[512];

    if (wrk_start(c, &w, err, sizeof err))
        return 1;
    return wrk_finish(w);
}
