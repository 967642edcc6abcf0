/*
 * Load suite (spec/load.feature, docs/reliability.md): held slow connections against a
 * mock-worker while normal clients stream. Loopback only, bounded in count and time.
 *
 * The mock-worker runs under a soft open-file limit of 1024 (the usual default of a service),
 * with its hard limit as the test's: the server must raise its own limit and keep serving.
 * RB_LOAD_LONG=1 runs the long version (more held connections, more clients, more rounds);
 * RB_LOAD_SLOW, RB_LOAD_CLIENTS and RB_LOAD_ROUNDS override the counts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_client.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"

#define PER_ADDRESS 200 /* held connections per source address: under the 256 per-IP limit */
#define MAX_SLOW 6000

typedef struct worker {
    char dir[4096], model[4200], log[4200], base[64], port[16];
    pid_t pid;
} worker;

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static void worker_start(worker *w)
{
    char bin[4096];
    char *env[] = {"MOCK_WORKER_SCENARIO={\"token_interval_ms\":5,\"load_ms\":0}", NULL};
    char *argv[] = {"/bin/sh",
                    "-c",
                    "ulimit -Sn 1024 && exec \"$0\" \"$@\"",
                    bin,
                    "--model",
                    w->model,
                    "--port",
                    w->port,
                    "--local-mode",
                    "--heartbeat-interval",
                    "30",
                    "--slots",
                    "64",
                    NULL};
    char url[128];

    rbt_tmpdir(w->dir);
    snprintf(w->model, sizeof w->model, "%s/m.gguf", w->dir);
    snprintf(w->log, sizeof w->log, "%s/worker.log", w->dir);
    rbt_write_fake_gguf(w->model, 64);
    snprintf(w->port, sizeof w->port, "%d", rbt_free_port());
    snprintf(w->base, sizeof w->base, "http://127.0.0.1:%s", w->port);
    snprintf(bin, sizeof bin, "%s", rbt_bin("mock-worker"));
    w->pid = rbt_spawn(argv, env, w->log);
    snprintf(url, sizeof url, "%s/v1/health", w->base);
    ck_assert_msg(rbt_wait_http(url, 200, rbt_scaled(10000)), "mock-worker did not start");
}

/* A connection from 127.0.0.<src> with the start of a request sent; -1 when refused. */
static int hold_from(int port, int src)
{
    struct sockaddr_in sa = {0}, me = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    const char part[] = "POST /v1/inference HTTP/1.1\r\nHost: x\r\n";

    if (fd < 0)
        return -1;
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)src);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, part, sizeof part - 1, MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct client {
    const worker *w;
    const char *url, *body; /* default: the worker's /v1/inference */
    int rounds, ok, failed;
    int64_t first_byte_us[64];
    char err[256];
} client;

static int on_event(void *user, const char *event, const char *data, size_t len)
{
    (void)user, (void)event, (void)data, (void)len;
    return 0;
}

static void *client_main(void *arg)
{
    client *c = arg;
    char url[128];

    if (c->url)
        snprintf(url, sizeof url, "%s", c->url);
    else
        snprintf(url, sizeof url, "%s/v1/inference", c->w->base);
    for (int i = 0; i < c->rounds; i++) {
        rb_sse_opts o = rb_sse_opts_default();
        rb_sse_result res;
        rb_err rc;

        o.connect_timeout_ms = 5000;
        o.idle_timeout_ms = 5000;
        o.deadline_ms = 20000;
        rb_sse_result_init(&res);
        rc = rb_client_sse("POST", url, c->body ? c->body : "{\"prompt\":\"x\",\"max_tokens\":8}",
                           &o, on_event, NULL, &res, c->err, sizeof c->err);
        if (rc == RB_OK && res.headers_us >= 0) {
            c->first_byte_us[c->ok++] = res.headers_us;
        } else {
            c->failed++;
        }
        rb_sse_result_release(&res);
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* What one wave of clients saw. */
typedef struct wave {
    int ok, failed;
    int64_t ms;
    double p50, p99, max; /* first byte, ms */
    char first_err[256];
} wave;

/* nclients threads each stream rounds requests at once: POST url with body (NULL, NULL: w's
 * /v1/inference); their outcomes and first-byte percentiles into out. */
static void run_wave(const worker *w, const char *url, const char *body, int nclients, int rounds,
                     wave *out)
{
    client *cs = calloc((size_t)nclients, sizeof(*cs));
    pthread_t *ts = calloc((size_t)nclients, sizeof(*ts));
    int64_t *all = calloc((size_t)nclients * (size_t)rounds, sizeof(*all)), t0 = rbt_ms();
    int n = 0;

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < nclients; i++) {
        cs[i].w = w;
        cs[i].url = url;
        cs[i].body = body;
        cs[i].rounds = rounds;
        ck_assert_int_eq(pthread_create(&ts[i], NULL, client_main, &cs[i]), 0);
    }
    for (int i = 0; i < nclients; i++) {
        pthread_join(ts[i], NULL);
        out->ok += cs[i].ok;
        out->failed += cs[i].failed;
        if (cs[i].failed && !out->first_err[0])
            snprintf(out->first_err, sizeof out->first_err, "%s", cs[i].err);
        for (int k = 0; k < cs[i].ok; k++)
            all[n++] = cs[i].first_byte_us[k];
    }
    out->ms = rbt_ms() - t0;
    qsort(all, (size_t)n, sizeof(*all), cmp_i64);
    out->p50 = n ? (double)all[n / 2] / 1000.0 : -1;
    out->p99 = n ? (double)all[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0 : -1;
    out->max = n ? (double)all[n - 1] / 1000.0 : -1;
    free(cs);
    free(ts);
    free(all);
}

static void print_wave(const char *what, int nclients, int rounds, const wave *v)
{
    printf("load: %d clients x %d %s in %lld ms: %d completed, %d failed%s%s; first byte p50 "
           "%.1f ms, p99 %.1f ms, max %.1f ms\n",
           nclients, rounds, what, (long long)v->ms, v->ok, v->failed, v->first_err[0] ? ": " : "",
           v->first_err, v->p50, v->p99, v->max);
    fflush(stdout);
}

/* Raises this process's soft open-file limit to its hard one; n capped to what then fits
 * beside the clients. */
static int fit_nofile(int n)
{
    struct rlimit rl;

    if (n > MAX_SLOW)
        n = MAX_SLOW;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur < (rlim_t)n + 256 ? (int)rl.rlim_cur - 256 : n;
}

/* Holds n partial requests to port from 127.0.0.2 and up (PER_ADDRESS each), then waits for
 * one health answer at health_url: the accept queue is first in, first out, so once it is
 * answered the server has taken every held connection and no client's SYN waits behind a full
 * backlog for a retransmit. Returns how many are held. */
static int hold_many(int port, int n, int *held, const char *what, const char *health_url)
{
    int nheld = 0, refused = 0;
    int64_t t0 = rbt_ms();

    for (int i = 0; i < n; i++) {
        int fd = hold_from(port, 2 + i / PER_ADDRESS);
        if (fd < 0)
            refused++;
        else
            held[nheld++] = fd;
    }
    printf("load: %d slow connections held%s (%d failed to connect) in %lld ms\n", nheld, what,
           refused, (long long)(rbt_ms() - t0));
    ck_assert(rbt_wait_http(health_url, 200, rbt_scaled(10000)));
    return nheld;
}

/* Scenario: Held slow connections do not starve streaming clients */
START_TEST(test_load__held_slow_connections_do_not_starve_streaming_clients)
{
    int is_long = env_int("RB_LOAD_LONG", 0);
    int nslow = fit_nofile(env_int("RB_LOAD_SLOW", is_long ? 3000 : 2000));
    int nclients = env_int("RB_LOAD_CLIENTS", 50);
    int rounds = env_int("RB_LOAD_ROUNDS", is_long ? 10 : 3);
    static int held[MAX_SLOW];
    char health[128];
    worker w;
    wave v;
    int nheld;

    if (rounds > 64)
        rounds = 64;
    rb_client_global_init();
    worker_start(&w);
    snprintf(health, sizeof health, "%s/v1/health", w.base);
    nheld = hold_many(atoi(w.port), nslow, held, "", health);
    run_wave(&w, NULL, NULL, nclients, rounds, &v);
    print_wave("streams", nclients, rounds, &v);
    ck_assert_msg(rbt_alive(w.pid), "the mock-worker died");
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    rbt_kill(w.pid);
    rbt_rmtree(w.dir);
    ck_assert_int_eq(v.failed, 0);
    ck_assert_int_eq(v.ok, nclients * rounds);
    ck_assert_msg(v.p99 < rbt_scaled(200), "first-byte p99 %.1f ms", v.p99);
}
END_TEST

/* The hive's entry for worker id (new reference), or NULL. */
static json_t *listed(rbt_hive *h, const char *id)
{
    json_t *r = NULL, *ws, *found = NULL;

    if (rbt_hive_json(h, "GET", "/v1/workers/list", NULL, &r) == 200) {
        ws = json_object_get(r, "workers");
        for (size_t i = 0; i < json_array_size(ws) && !found; i++)
            if (strcmp(json_string_value(json_object_get(json_array_get(ws, i), "id")), id) == 0)
                found = json_incref(json_array_get(ws, i));
    }
    json_decref(r);
    return found;
}

/* Scenario: Held slow connections do not take the hive down, and its monitor keeps its worker */
START_TEST(
    test_load__held_slow_connections_do_not_take_the_hive_down_and_its_monitor_keeps_its_worker)
{
    int is_long = env_int("RB_LOAD_LONG", 0);
    int nslow = fit_nofile(env_int("RB_LOAD_SLOW", is_long ? 3000 : 2000));
    int nclients = env_int("RB_LOAD_CLIENTS", is_long ? 50 : 20);
    int rounds = env_int("RB_LOAD_ROUNDS", is_long ? 10 : 3);
    static int held[MAX_SLOW];
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    json_t *r = NULL, *w = NULL;
    char model[4300], body[4600], url[128], chat[4600], id[128];
    int nheld, beats = 0;
    int64_t t0, deadline, hb0, hb = 0;
    pid_t wpid;
    wave v;

    if (rounds > 64)
        rounds = 64;
    rb_client_global_init();

    /* A hive whose monitor would kill a silent worker within 2 heartbeat intervals of 1 s. */
    rbt_hive_init(&h);
    rbt_hive_fake_model(&h, model, sizeof model);
    o.heartbeat_interval = "1";
    o.monitor_interval = "1";
    o.env[0] = "MOCK_WORKER_SCENARIO={\"token_interval_ms\":5,\"load_ms\":0}";
    o.args[0] = "--worker-slots"; /* every client streams at once: the flood is what is measured */
    o.args[1] = "64";
    rbt_hive_start(&h, &o);
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\",\"backend\":\"cpu\",\"device\":0}", model);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn", body, &r), 200);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r, "worker_id")));
    json_decref(r);
    ck_assert(rbt_hive_wait_worker(&h, id, "idle", rbt_scaled(10000), &w));
    wpid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    hb0 = json_integer_value(json_object_get(w, "last_heartbeat_unix"));
    json_decref(w);
    ck_assert_int_gt(wpid, 0);

    t0 = rbt_ms();
    snprintf(url, sizeof url, "%s/v1/health", h.base);
    nheld = hold_many(h.port, nslow, held, " on the hive", url);

    /* Clients stream chat completions through the hive to its worker meanwhile. */
    snprintf(url, sizeof url, "%s/v1/chat/completions", h.base);
    snprintf(chat, sizeof chat,
             "{\"model\":\"%s\",\"stream\":true,\"max_tokens\":8,\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hi\"}]}",
             model);
    run_wave(NULL, url, chat, nclients, rounds, &v);
    print_wave("chat streams through the hive", nclients, rounds, &v);

    /* The flood lasts until five more heartbeats (at least four intervals, so several monitor
     * ticks) came through it, and no longer than the hive's 10 s request deadline, after which
     * the held connections are closed. Each poll also checks that the worker is still there. */
    deadline = t0 + 9500;
    while (rbt_ms() < deadline) {
        w = listed(&h, id);
        ck_assert_msg(w && json_integer_value(json_object_get(w, "pid")) == wpid,
                      "the worker is no longer listed after %lld ms of flood",
                      (long long)(rbt_ms() - t0));
        hb = json_integer_value(json_object_get(w, "last_heartbeat_unix"));
        json_decref(w);
        if (hb >= hb0 + 5)
            break;
        rbt_poll_interval();
    }
    beats = (int)(hb - hb0);
    ck_assert_msg(beats >= 5, "only %d heartbeats came through the flood", beats);
    ck_assert_msg(rbt_alive(wpid), "the worker was killed");
    ck_assert_msg(!rbt_file_contains(h.log, "killing it"), "the monitor killed a worker");
    printf("load: after %lld ms of flood (%d s of heartbeats through it) the worker %s (pid %d) "
           "is alive and listed\n",
           (long long)(rbt_ms() - t0), beats, id, (int)wpid);
    fflush(stdout);
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    ck_assert_int_eq(v.failed, 0);
    ck_assert_int_eq(v.ok, nclients * rounds);
    ck_assert_msg(v.p99 < rbt_scaled(200), "first-byte p99 %.1f ms", v.p99);
    ck_assert_int_eq(rbt_hive_stop(&h), 0);
    rbt_hive_cleanup(&h);
}
END_TEST

typedef struct slow_stream {
    const char *url, *body;
    atomic_int events, done;
    rb_err rc;
    int64_t ended_ms;
    char err[256];
} slow_stream;

static int count_event(void *user, const char *event, const char *data, size_t len)
{
    slow_stream *st = user;
    (void)event, (void)data, (void)len;
    atomic_fetch_add(&st->events, 1);
    return 0;
}

static void *slow_stream_main(void *arg)
{
    slow_stream *st = arg;
    rb_sse_opts o = rb_sse_opts_default();
    rb_sse_result res;

    o.connect_timeout_ms = 5000;
    o.idle_timeout_ms = 10000;
    o.deadline_ms = 60000;
    rb_sse_result_init(&res);
    st->rc = rb_client_sse("POST", st->url, st->body, &o, count_event, st, &res, st->err,
                           sizeof st->err);
    rb_sse_result_release(&res);
    st->ended_ms = rbt_ms();
    atomic_store(&st->done, 1);
    return NULL;
}

/* Scenario: SIGTERM with workers stops every worker and the hive exits 0 */
START_TEST(test_load__sigterm_with_workers_stops_every_worker_and_the_hive_exits_0)
{
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    json_t *r = NULL, *w = NULL;
    char model[4300], body[4600], url[128], chat[4600], id[2][128], probe[128];
    pid_t wpid[2];
    int wport[2], status = 0;
    slow_stream st = {0};
    pthread_t t;
    int64_t t0, deadline;

    rb_client_global_init();
    rbt_hive_init(&h);
    rbt_hive_fake_model(&h, model, sizeof model);
    o.env[0] = "MOCK_WORKER_SCENARIO={\"token_interval_ms\":50,\"load_ms\":0}";
    rbt_hive_start(&h, &o);
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\",\"backend\":\"cpu\",\"device\":0}", model);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn", body, &r), 200);
        snprintf(id[i], sizeof id[i], "%s", json_string_value(json_object_get(r, "worker_id")));
        wport[i] = atoi(strrchr(json_string_value(json_object_get(r, "url")), ':') + 1);
        json_decref(r);
        if (!rbt_hive_wait_worker(&h, id[i], "idle", rbt_scaled(10000), &w)) {
            char *hl = rbt_slurp(h.log), *ls = NULL;
            json_t *l = NULL;
            rbt_hive_json(&h, "GET", "/v1/workers/list", NULL, &l);
            ls = l ? json_dumps(l, 0) : NULL;
            ck_abort_msg("worker %d (%s) never became idle; list %s; hive log:\n%s", i, id[i],
                         ls ? ls : "(none)", hl ? hl : "(none)");
        }
        wpid[i] = (pid_t)json_integer_value(json_object_get(w, "pid"));
        json_decref(w);
    }
    /* A client mid-stream through the hive: 200 tokens 50 ms apart. */
    snprintf(url, sizeof url, "%s/v1/chat/completions", h.base);
    snprintf(chat, sizeof chat,
             "{\"model\":\"%s\",\"stream\":true,\"max_tokens\":200,\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hi\"}]}",
             model);
    st.url = url;
    st.body = chat;
    ck_assert_int_eq(pthread_create(&t, NULL, slow_stream_main, &st), 0);
    deadline = rbt_ms() + rbt_scaled(10000);
    while (atomic_load(&st.events) < 3 && !atomic_load(&st.done) && rbt_ms() < deadline)
        rbt_poll_interval();
    ck_assert_msg(atomic_load(&st.events) >= 3, "the stream did not start: %s", st.err);

    ck_assert_msg(!atomic_load(&st.done), "the stream ended before the SIGTERM: %s", st.err);
    t0 = rbt_ms();
    kill(h.pid, SIGTERM);
    ck_assert_msg(rbt_wait_exit(h.pid, rbt_scaled(35000), &status), "the hive did not exit");
    h.pid = 0;
    printf("load: SIGTERM with 2 workers and a stream: the hive exited %d after %lld ms\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1, (long long)(rbt_ms() - t0));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < 2; i++) {
        deadline = rbt_ms() + rbt_scaled(5000);
        while (!rbt_pid_gone(wpid[i]) && rbt_ms() < deadline)
            rbt_poll_interval();
        ck_assert_msg(rbt_pid_gone(wpid[i]), "worker %d (pid %d) still runs", i, (int)wpid[i]);
        snprintf(probe, sizeof probe, "http://127.0.0.1:%d/v1/health", wport[i]);
        ck_assert_msg(!rbt_wait_http(probe, 200, 100), "something still answers on %s", probe);
    }
    deadline = rbt_ms() + rbt_scaled(5000);
    while (!atomic_load(&st.done) && rbt_ms() < deadline)
        rbt_poll_interval();
    ck_assert_msg(atomic_load(&st.done), "the client's stream did not end");
    pthread_join(t, NULL);
    printf("load: the client's stream ended %lld ms after the SIGTERM, after %d events (%s)\n",
           (long long)(st.ended_ms - t0), atomic_load(&st.events),
           st.rc == RB_OK ? "complete" : st.err);
    snprintf(probe, sizeof probe, "%s/v1/health", h.base);
    ck_assert_msg(!rbt_wait_http(probe, 200, 100), "something still answers on %s", probe);
    rbt_hive_cleanup(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("load");
    TCase *tc = rbt_tcase(s, "slowloris", env_int("RB_LOAD_LONG", 0) ? 600 : 90);
    /* First, before the floods leave thousands of loopback ports in TIME_WAIT. */
    tcase_add_test(tc, test_load__sigterm_with_workers_stops_every_worker_and_the_hive_exits_0);
    tcase_add_test(tc, test_load__held_slow_connections_do_not_starve_streaming_clients);
    tcase_add_test(
        tc,
        test_load__held_slow_connections_do_not_take_the_hive_down_and_its_monitor_keeps_its_worker);
    return rbt_run(s);
}
