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

/* Scenario: Held slow connections do not starve streaming clients */
START_TEST(test_load__held_slow_connections_do_not_starve_streaming_clients)
{
    int is_long = env_int("RB_LOAD_LONG", 0);
    int nslow = env_int("RB_LOAD_SLOW", is_long ? 3000 : 2000);
    int nclients = env_int("RB_LOAD_CLIENTS", 50);
    int rounds = env_int("RB_LOAD_ROUNDS", is_long ? 10 : 3);
    static int held[MAX_SLOW];
    client *cs;
    pthread_t *ts;
    struct rlimit rl;
    worker w;
    int nheld = 0, refused = 0, total_ok = 0, total_failed = 0, n = 0;
    int64_t *all, t0;
    double p50, p99, max;
    char first_err[256] = "";

    if (nslow > MAX_SLOW)
        nslow = MAX_SLOW;
    if (rounds > 64)
        rounds = 64;
    /* The test itself holds every slow connection. */
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)nslow + 256)
        nslow = (int)rl.rlim_cur - 256;

    rb_client_global_init();
    worker_start(&w);
    t0 = rbt_ms();
    for (int i = 0; i < nslow; i++) {
        int fd = hold_from(atoi(w.port), 2 + i / PER_ADDRESS);
        if (fd < 0)
            refused++;
        else
            held[nheld++] = fd;
    }
    printf("load: %d slow connections held (%d failed to connect) in %lld ms\n", nheld, refused,
           (long long)(rbt_ms() - t0));
    {
        char health[128]; /* every held connection accepted before the clients start */
        snprintf(health, sizeof health, "%s/v1/health", w.base);
        ck_assert(rbt_wait_http(health, 200, rbt_scaled(10000)));
    }

    cs = calloc((size_t)nclients, sizeof(*cs));
    ts = calloc((size_t)nclients, sizeof(*ts));
    all = calloc((size_t)nclients * (size_t)rounds, sizeof(*all));
    t0 = rbt_ms();
    for (int i = 0; i < nclients; i++) {
        cs[i].w = &w;
        cs[i].rounds = rounds;
        ck_assert_int_eq(pthread_create(&ts[i], NULL, client_main, &cs[i]), 0);
    }
    for (int i = 0; i < nclients; i++) {
        pthread_join(ts[i], NULL);
        total_ok += cs[i].ok;
        total_failed += cs[i].failed;
        if (cs[i].failed && !first_err[0])
            snprintf(first_err, sizeof first_err, "%s", cs[i].err);
        for (int k = 0; k < cs[i].ok; k++)
            all[n++] = cs[i].first_byte_us[k];
    }
    qsort(all, (size_t)n, sizeof(*all), cmp_i64);
    p50 = n ? (double)all[n / 2] / 1000.0 : -1;
    p99 = n ? (double)all[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0 : -1;
    max = n ? (double)all[n - 1] / 1000.0 : -1;
    printf("load: %d clients x %d streams in %lld ms: %d completed, %d failed%s%s; first byte "
           "p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           nclients, rounds, (long long)(rbt_ms() - t0), total_ok, total_failed,
           first_err[0] ? ": " : "", first_err, p50, p99, max);
    fflush(stdout);
    ck_assert_msg(rbt_alive(w.pid), "the mock-worker died");
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    rbt_kill(w.pid);
    rbt_rmtree(w.dir);
    ck_assert_int_eq(total_failed, 0);
    ck_assert_int_eq(total_ok, nclients * rounds);
    ck_assert_msg(p99 < rbt_scaled(200), "first-byte p99 %.1f ms", p99);
    free(cs);
    free(ts);
    free(all);
}
END_TEST

/* Scenario: Held slow connections do not take the hive down, and its monitor keeps its worker */
START_TEST(
    test_load__held_slow_connections_do_not_take_the_hive_down_and_its_monitor_keeps_its_worker)
{
    int is_long = env_int("RB_LOAD_LONG", 0);
    int nslow = env_int("RB_LOAD_SLOW", is_long ? 3000 : 2000);
    int nclients = env_int("RB_LOAD_CLIENTS", is_long ? 50 : 20);
    int rounds = env_int("RB_LOAD_ROUNDS", is_long ? 10 : 3);
    static int held[MAX_SLOW];
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    struct rlimit rl;
    client *cs;
    pthread_t *ts;
    json_t *r = NULL, *w = NULL;
    char model[4300], body[4600], url[128], chat[4600], id[128];
    int nheld = 0, refused = 0, ok = 0, failed = 0, n = 0;
    int64_t *all, t0, until;
    pid_t wpid;
    double p50, p99, max;
    char first_err[256] = "";

    if (nslow > MAX_SLOW)
        nslow = MAX_SLOW;
    if (rounds > 64)
        rounds = 64;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)nslow + 256)
        nslow = (int)rl.rlim_cur - 256;
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
    json_decref(w);
    ck_assert_int_gt(wpid, 0);

    t0 = rbt_ms();
    for (int i = 0; i < nslow; i++) {
        int fd = hold_from(h.port, 2 + i / PER_ADDRESS);
        if (fd < 0)
            refused++;
        else
            held[nheld++] = fd;
    }
    printf("load: %d slow connections held on the hive (%d failed to connect) in %lld ms\n", nheld,
           refused, (long long)(rbt_ms() - t0));
    /* The accept queue is first in, first out: once this is answered the hive has taken every
     * held connection, and no client's SYN waits behind a full backlog for a retransmit. */
    snprintf(url, sizeof url, "%s/v1/health", h.base);
    ck_assert(rbt_wait_http(url, 200, rbt_scaled(10000)));

    /* Clients stream chat completions through the hive to its worker meanwhile. */
    snprintf(url, sizeof url, "%s/v1/chat/completions", h.base);
    snprintf(chat, sizeof chat,
             "{\"model\":\"%s\",\"stream\":true,\"max_tokens\":8,\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hi\"}]}",
             model);
    cs = calloc((size_t)nclients, sizeof(*cs));
    ts = calloc((size_t)nclients, sizeof(*ts));
    all = calloc((size_t)nclients * (size_t)rounds, sizeof(*all));
    t0 = rbt_ms();
    for (int i = 0; i < nclients; i++) {
        cs[i].url = url;
        cs[i].body = chat;
        cs[i].rounds = rounds;
        ck_assert_int_eq(pthread_create(&ts[i], NULL, client_main, &cs[i]), 0);
    }
    for (int i = 0; i < nclients; i++) {
        pthread_join(ts[i], NULL);
        ok += cs[i].ok;
        failed += cs[i].failed;
        if (cs[i].failed && !first_err[0])
            snprintf(first_err, sizeof first_err, "%s", cs[i].err);
        for (int k = 0; k < cs[i].ok; k++)
            all[n++] = cs[i].first_byte_us[k];
    }
    qsort(all, (size_t)n, sizeof(*all), cmp_i64);
    p50 = n ? (double)all[n / 2] / 1000.0 : -1;
    p99 = n ? (double)all[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0 : -1;
    max = n ? (double)all[n - 1] / 1000.0 : -1;
    printf("load: %d clients x %d chat streams through the hive in %lld ms: %d completed, %d "
           "failed%s%s; first byte p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           nclients, rounds, (long long)(rbt_ms() - t0), ok, failed, first_err[0] ? ": " : "",
           first_err, p50, p99, max);

    /* Keep the flood past two heartbeat intervals and four monitor ticks (under the hive's
     * 10 s request deadline, which would close the held connections). */
    until = t0 + 6000;
    while (rbt_ms() < until)
        rbt_poll_interval();
    ck_assert_int_eq(rbt_hive_json(&h, "GET", "/v1/workers/list", NULL, &r), 200);
    w = json_array_get(json_object_get(r, "workers"), 0);
    ck_assert_msg(w && strcmp(json_string_value(json_object_get(w, "id")), id) == 0 &&
                      json_integer_value(json_object_get(w, "pid")) == wpid,
                  "the worker is no longer listed");
    json_decref(r);
    ck_assert_msg(rbt_alive(wpid), "the worker was killed");
    ck_assert_msg(!rbt_file_contains(h.log, "killing it"), "the monitor killed a worker");
    printf("load: after %lld ms of flood the worker %s (pid %d) is alive and listed\n",
           (long long)(rbt_ms() - t0), id, (int)wpid);
    fflush(stdout);
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    ck_assert_int_eq(failed, 0);
    ck_assert_int_eq(ok, nclients * rounds);
    ck_assert_msg(p99 < rbt_scaled(200), "first-byte p99 %.1f ms", p99);
    ck_assert_int_eq(rbt_hive_stop(&h), 0);
    rbt_hive_cleanup(&h);
    free(cs);
    free(ts);
    free(all);
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
