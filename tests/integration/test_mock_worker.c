/*
 * Integration tests of mock-worker itself, so the hive and keeper suites can trust it: the
 * worker API of docs/architecture.md §4.2 (ready, inference stream, jobs, cancel, busy), its
 * scripted faults (crash mid-stream, hang) and its reports to a hive (mock-hive records them).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "rb_client.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"

typedef struct mw {
    char dir[4096], model[4200], log[4200], base[64], port[16], env[1024];
    pid_t pid;
} mw;

/* Starts mock-worker in local mode with the scenario (inline JSON, may be NULL). */
static void mw_start(mw *m, const char *scenario, const char *hive_url)
{
    char bin[4096], *argv[16];
    char *env[] = {m->env, NULL};
    int n = 0;

    rbt_tmpdir(m->dir);
    snprintf(m->model, sizeof m->model, "%s/m.gguf", m->dir);
    snprintf(m->log, sizeof m->log, "%s/worker.log", m->dir);
    rbt_write_fake_gguf(m->model, 64);
    snprintf(m->port, sizeof m->port, "%d", rbt_free_port());
    snprintf(m->base, sizeof m->base, "http://127.0.0.1:%s", m->port);
    snprintf(m->env, sizeof m->env, "MOCK_WORKER_SCENARIO=%s", scenario ? scenario : "{}");
    snprintf(bin, sizeof bin, "%s", rbt_bin("mock-worker"));
    argv[n++] = bin;
    argv[n++] = "--model";
    argv[n++] = m->model;
    argv[n++] = "--port";
    argv[n++] = m->port;
    argv[n++] = "--local-mode";
    argv[n++] = "--heartbeat-interval";
    argv[n++] = "1";
    if (hive_url) {
        argv[n++] = "--hive-url";
        argv[n++] = (char *)hive_url;
    }
    argv[n] = NULL;
    m->pid = rbt_spawn(argv, env, m->log);
}

/* Polls GET /v1/ready until it says ready. */
static void mw_wait_ready(mw *m)
{
    char url[128];
    int64_t end = rbt_ms() + rbt_scaled(5000);
    int ready = 0;
    rb_buf b;

    snprintf(url, sizeof url, "%s/v1/ready", m->base);
    rb_buf_init(&b, 1 << 16);
    while (!ready && rbt_ms() < end) {
        rb_buf_reset(&b);
        ready = rbt_http("GET", url, NULL, NULL, 1000, &b, NULL) == 200 &&
                strstr(b.data, "\"ready\":true");
        if (!ready)
            rbt_poll_interval();
    }
    rb_buf_release(&b);
    ck_assert_msg(ready, "mock-worker did not become ready");
}

static void mw_stop(mw *m)
{
    if (m->pid > 0 && rbt_alive(m->pid)) {
        kill(m->pid, SIGTERM);
        ck_assert(rbt_wait_exit(m->pid, rbt_scaled(5000), NULL));
    } else if (m->pid > 0) {
        rbt_wait_exit(m->pid, rbt_scaled(5000), NULL);
    }
    rbt_rmtree(m->dir);
}

static int collect(void *user, const char *event, const char *data, size_t len)
{
    json_t *ev = json_loadb(data, len, 0, NULL);
    (void)event;
    json_array_append_new(user, ev ? ev : json_string(data));
    return 0;
}

/* POST path with body as an SSE stream; returns the rb_client_sse result, events appended. */
static rb_err stream(mw *m, const char *method, const char *path, const char *body, json_t *events)
{
    rb_sse_opts o = rb_sse_opts_default();
    rb_sse_result res;
    char url[256], err[256];
    rb_err rc;

    o.idle_timeout_ms = rbt_scaled(3000);
    o.deadline_ms = rbt_scaled(10000);
    snprintf(url, sizeof url, "%s%s", m->base, path);
    rb_sse_result_init(&res);
    rc = rb_client_sse(method, url, body, &o, collect, events, &res, err, sizeof err);
    rb_sse_result_release(&res);
    return rc;
}

static const char *type_of(json_t *events, size_t i)
{
    const char *t = json_string_value(json_object_get(json_array_get(events, i), "type"));
    return t ? t : "";
}

START_TEST(test_mock_worker_inference_stream)
{
    mw m;
    json_t *ev = json_array(), *end;

    mw_start(&m, "{\"tokens\":[\"a\",\"b\",\"c\"],\"token_interval_ms\":5}", NULL);
    mw_wait_ready(&m);
    ck_assert_int_eq(stream(&m, "POST", "/v1/inference", "{\"prompt\":\"x\",\"max_tokens\":2}", ev),
                     RB_OK);
    ck_assert_int_eq(json_array_size(ev), 4);
    ck_assert_str_eq(type_of(ev, 0), "started");
    ck_assert_str_eq(type_of(ev, 1), "token");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ev, 2), "t")), "b");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(ev, 2), "i")), 1);
    end = json_array_get(ev, 3);
    ck_assert_str_eq(type_of(ev, 3), "end");
    ck_assert_str_eq(json_string_value(json_object_get(end, "stop_reason")), "MAX_TOKENS");
    ck_assert_int_eq(json_integer_value(json_object_get(end, "tokens_out")), 2);
    json_decref(ev);
    mw_stop(&m);
}
END_TEST

typedef struct canceller {
    mw *m;
    char job[64];
    int tokens;
} canceller;

/* Cancels the job when its first token arrives. */
static int cancel_on_token(void *user, const char *event, const char *data, size_t len)
{
    canceller *c = user;
    char url[256];
    (void)event, (void)len;
    if (strstr(data, "\"token\"") && c->tokens++ == 0) {
        snprintf(url, sizeof url, "%s/v1/jobs/%s", c->m->base, c->job);
        ck_assert_int_eq(rbt_http("DELETE", url, NULL, NULL, 2000, NULL, NULL), 200);
    }
    if (strstr(data, "\"end\""))
        ck_assert_msg(strstr(data, "CANCELLED"), "end without CANCELLED: %s", data);
    return 0;
}

START_TEST(test_mock_worker_jobs_and_cancel)
{
    mw m;
    canceller c = {&m, "", 0};
    rb_sse_opts o = rb_sse_opts_default();
    rb_sse_result res;
    rb_buf b;
    json_t *r;
    char url[256], err[256];

    mw_start(&m, "{\"hang_after_tokens\":1}", NULL);
    mw_wait_ready(&m);
    rb_buf_init(&b, 1 << 16);
    snprintf(url, sizeof url, "%s/v1/jobs", m.base);
    ck_assert_int_eq(rbt_http("POST", url,
                              (const char *const[]){"Content-Type: application/json", NULL},
                              "{\"prompt\":\"x\"}", 2000, &b, NULL),
                     202);
    r = json_loads(b.data, 0, NULL);
    snprintf(c.job, sizeof c.job, "%s", json_string_value(json_object_get(r, "job_id")));
    snprintf(url, sizeof url, "%s%s", m.base, json_string_value(json_object_get(r, "sse_url")));
    json_decref(r);
    o.idle_timeout_ms = rbt_scaled(3000);
    rb_sse_result_init(&res);
    ck_assert_int_eq(
        rb_client_sse("GET", url, NULL, &o, cancel_on_token, &c, &res, err, sizeof err), RB_OK);
    ck_assert_int_eq(c.tokens, 1);
    rb_sse_result_release(&res);
    snprintf(url, sizeof url, "%s/v1/jobs/nope/stream", m.base);
    ck_assert_int_eq(rbt_http("GET", url, NULL, NULL, 2000, NULL, NULL), 404);
    rb_buf_release(&b);
    mw_stop(&m);
}
END_TEST

START_TEST(test_mock_worker_busy_and_crash)
{
    mw m;
    json_t *ev = json_array();
    rb_buf b;
    char url[256];
    int status = 0;

    mw_start(&m, "{\"busy\":true}", NULL);
    mw_wait_ready(&m);
    rb_buf_init(&b, 1 << 16);
    snprintf(url, sizeof url, "%s/v1/inference", m.base);
    ck_assert_int_eq(rbt_http("POST", url,
                              (const char *const[]){"Content-Type: application/json", NULL},
                              "{\"prompt\":\"x\"}", 2000, &b, NULL),
                     503);
    ck_assert(strstr(b.data, "ALL_SLOTS_BUSY") && strstr(b.data, "slots_total"));
    rb_buf_release(&b);
    mw_stop(&m);

    mw_start(&m, "{\"crash_after_tokens\":2,\"token_interval_ms\":1}", NULL);
    mw_wait_ready(&m);
    ck_assert_int_eq(stream(&m, "POST", "/v1/inference", "{\"prompt\":\"x\"}", ev), RB_EPROTO);
    ck_assert_int_eq(json_array_size(ev), 3); /* started and two tokens */
    ck_assert(rbt_wait_exit(m.pid, rbt_scaled(5000), &status));
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    m.pid = 0;
    json_decref(ev);
    mw_stop(&m);
}
END_TEST

/* mock-hive's records once it holds a heartbeat and a ready callback (new reference). */
static json_t *wait_records(const char *hive_url)
{
    char url[128];
    json_t *rec = NULL;
    int64_t end = rbt_ms() + rbt_scaled(5000);
    rb_buf b;

    snprintf(url, sizeof url, "%s/mock/records", hive_url);
    rb_buf_init(&b, 1 << 20);
    while (!rec && rbt_ms() < end) {
        rb_buf_reset(&b);
        if (rbt_http("GET", url, NULL, NULL, 1000, &b, NULL) == 200)
            rec = json_loads(b.data, 0, NULL);
        if (rec && (json_array_size(json_object_get(rec, "heartbeats")) == 0 ||
                    json_array_size(json_object_get(rec, "ready")) == 0)) {
            json_decref(rec);
            rec = NULL;
        }
        if (!rec)
            rbt_poll_interval();
    }
    rb_buf_release(&b);
    return rec;
}

START_TEST(test_mock_worker_reports_to_its_hive)
{
    char hive_port[16], hive_url[64], hive_bin[4096], worker_bin[4096], log[4200], url[128];
    char *argv[] = {hive_bin, "--port", hive_port, NULL};
    json_t *rec;
    mw m;
    int status = 0;
    pid_t hive;

    snprintf(hive_bin, sizeof hive_bin, "%s", rbt_bin("mock-hive"));
    snprintf(hive_port, sizeof hive_port, "%d", rbt_free_port());
    snprintf(hive_url, sizeof hive_url, "http://127.0.0.1:%s", hive_port);
    snprintf(log, sizeof log, "/dev/null");
    hive = rbt_spawn(argv, NULL, log);
    snprintf(url, sizeof url, "%s/v1/health", hive_url);
    ck_assert(rbt_wait_http(url, 200, rbt_scaled(5000)));
    mw_start(&m, NULL, hive_url);
    mw_wait_ready(&m);
    rec = wait_records(hive_url);
    ck_assert_msg(rec != NULL, "no heartbeat and ready callback reached mock-hive");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(rec, "heartbeats"), 0), "worker_id")),
                     "worker-mock");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(json_object_get(rec, "ready"), 0), "url")),
        m.base);
    json_decref(rec);

    /* A second worker on the same port fails the way the hive expects. */
    snprintf(worker_bin, sizeof worker_bin, "%s", rbt_bin("mock-worker"));
    snprintf(log, sizeof log, "%s/clash.log", m.dir);
    char *cargv[] = {worker_bin, "--model", m.model, "--port", m.port, "--local-mode", NULL};
    ck_assert(rbt_wait_exit(rbt_spawn(cargv, NULL, log), rbt_scaled(5000), &status));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert(rbt_file_contains(log, "cannot listen on 127.0.0.1:"));
    ck_assert(rbt_file_contains(log, "Address already in use"));
    kill(hive, SIGTERM);
    ck_assert(rbt_wait_exit(hive, rbt_scaled(5000), NULL));
    mw_stop(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mock_worker");
    TCase *tc = rbt_tcase(s, "mock_worker", rbt_scaled(30000) / 1000.0);
    tcase_add_test(tc, test_mock_worker_inference_stream);
    tcase_add_test(tc, test_mock_worker_jobs_and_cancel);
    tcase_add_test(tc, test_mock_worker_busy_and_crash);
    tcase_add_test(tc, test_mock_worker_reports_to_its_hive);
    return rbt_run(s);
}
