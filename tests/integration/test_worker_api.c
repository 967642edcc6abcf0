/*
 * Integration tests for spec/worker_api.feature: the real llm-worker-rbee on the bundled model
 * against mock-hive, over loopback.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "rb_json.h"
#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"

static char dir[4096];
static rbt_proc hive, worker;

static void start(const char *const *extra, char *const *env)
{
    rbt_tmpdir(dir);
    rbt_start_mock_hive(&hive, dir);
    rbt_start_worker(&worker, dir, rbt_model_q8(), hive.base, extra, env);
}

static void stop(void)
{
    ck_assert_int_eq(rbt_stop(&worker, 5000), 0);
    rbt_stop(&hive, 5000);
    rbt_rmtree(dir);
}

static long post(const char *path, const char *body, rb_buf *out)
{
    char url[256];
    const char *h[] = {"Content-Type: application/json", NULL};
    snprintf(url, sizeof url, "%s%s", worker.base, path);
    rb_buf_reset(out);
    return rbt_http("POST", url, h, body, 10000, out, NULL);
}

static void assert_envelope(const rb_buf *b, const char *code)
{
    char c[64], m[256];
    ck_assert_msg(rb_error_envelope_parse(b->data, c, sizeof c, m, sizeof m), "not an envelope: %s",
                  b->data ? b->data : "");
    ck_assert_str_eq(c, code);
}

/* A short valid request streams to completion (the worker still serves). */
static void assert_serves(void)
{
    rbt_stream st = {0};
    rbt_stream_run(&st, worker.base, "/v1/inference",
                   "{\"prompt\":\"In the beginning\",\"max_tokens\":4,\"temperature\":0}", 10000,
                   30000);
    ck_assert_msg(st.rc == RB_OK, "stream failed: %s", st.err);
    ck_assert_int_ge(rbt_stream_find(&st, "\"type\":\"end\""), 0);
    rbt_stream_release(&st);
}

/* Scenario: Health answers while loading and when ready */
START_TEST(test_worker_api__health_answers_while_loading_and_when_ready)
{
    char *env[] = {"RBEE_TEST_LOAD_DELAY_MS=400", NULL};
    char *h;
    start(NULL, env);
    h = rbt_get(worker.base, "/health");
    ck_assert_ptr_nonnull(strstr(h, "\"status\":\"healthy\""));
    ck_assert_ptr_nonnull(strstr(h, "\"state\":\"loading\""));
    free(h);
    h = rbt_get(worker.base, "/v1/ready");
    ck_assert_ptr_nonnull(strstr(h, "\"ready\":false"));
    ck_assert_ptr_nonnull(strstr(h, "\"progress_url\":\"/v1/loading/progress\""));
    free(h);
    ck_assert(rbt_wait_ready(&worker, 15000));
    h = rbt_get(worker.base, "/v1/health");
    ck_assert_ptr_nonnull(strstr(h, "\"state\":\"idle\""));
    free(h);
    h = rbt_get(worker.base, "/v1/ready");
    ck_assert_ptr_nonnull(strstr(h, "\"model_loaded\":true"));
    free(h);
    stop();
}
END_TEST

/* Scenario: Requests during loading get 503 LOADING */
START_TEST(test_worker_api__requests_during_loading_get_503_loading)
{
    char *env[] = {"RBEE_TEST_LOAD_DELAY_MS=400", NULL};
    rb_buf b;
    rb_buf_init(&b, 1 << 20);
    start(NULL, env);
    ck_assert_int_eq(post("/v1/inference", "{\"prompt\":\"x\"}", &b), 503);
    assert_envelope(&b, "LOADING");
    ck_assert(rbt_wait_ready(&worker, 15000));
    assert_serves();
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: Loading progress is streamed */
START_TEST(test_worker_api__loading_progress_is_streamed)
{
    char *env[] = {"RBEE_TEST_LOAD_DELAY_MS=150", NULL};
    rbt_stream st = {0};
    int last = -1, rising = 1, nloading = 0;
    start(NULL, env);
    rbt_stream_run(&st, worker.base, "/v1/loading/progress", NULL, 10000, 30000);
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    for (int i = 0; i < st.n; i++) {
        int loaded, total;
        if (sscanf(st.ev[i].data,
                   "{\"stage\":\"loading\",\"layers_loaded\":%d,\"layers_total\":%d}", &loaded,
                   &total) == 2) {
            ck_assert_int_eq(total, 6);
            rising &= loaded >= last;
            last = loaded;
            nloading++;
        }
    }
    ck_assert_int_ge(nloading, 2);
    ck_assert(rising);
    ck_assert_str_eq(st.ev[st.n - 1].data, "{\"stage\":\"ready\"}");
    rbt_stream_release(&st);
    /* A late subscriber gets the end at once. */
    rbt_stream_run(&st, worker.base, "/v1/loading/progress", NULL, 5000, 10000);
    ck_assert_int_eq(st.rc, RB_OK);
    ck_assert_int_eq(st.n, 1);
    rbt_stream_release(&st);
    stop();
}
END_TEST

/* Scenario Outline: Bad inference requests get 400 with the field named */
START_TEST(test_worker_api__bad_inference_requests_get_400_with_the_field_named)
{
    static const struct {
        const char *body;
        long status;
        const char *code, *field;
    } rows[] = {
        {"{\"prompt\":", 400, "INVALID_JSON", NULL},
        {"[]", 400, "INVALID_REQUEST", NULL},
        {"{}", 400, "INVALID_REQUEST", "prompt"},
        {"{\"prompt\":\"\"}", 400, "INVALID_REQUEST", "prompt"},
        {"{\"prompt\":7}", 400, "INVALID_REQUEST", "prompt"},
        {"{\"prompt\":\"x\",\"max_tokens\":0}", 400, "INVALID_REQUEST", "max_tokens"},
        {"{\"prompt\":\"x\",\"max_tokens\":2049}", 400, "INVALID_REQUEST", "max_tokens"},
        {"{\"prompt\":\"x\",\"max_tokens\":\"5\"}", 400, "INVALID_REQUEST", "max_tokens"},
        {"{\"prompt\":\"x\",\"temperature\":2.5}", 400, "INVALID_REQUEST", "temperature"},
        {"{\"prompt\":\"x\",\"top_p\":1.5}", 400, "INVALID_REQUEST", "top_p"},
        {"{\"prompt\":\"x\",\"top_k\":-1}", 400, "INVALID_REQUEST", "top_k"},
        {"{\"prompt\":\"x\",\"min_p\":-0.1}", 400, "INVALID_REQUEST", "min_p"},
        {"{\"prompt\":\"x\",\"repetition_penalty\":3}", 400, "INVALID_REQUEST",
         "repetition_penalty"},
        /* values that a 32-bit float would turn into 0 */
        {"{\"prompt\":\"x\",\"repetition_penalty\":1e-300}", 400, "INVALID_REQUEST",
         "repetition_penalty"},
        {"{\"prompt\":\"x\",\"temperature\":1e-300}", 400, "INVALID_REQUEST", "temperature"},
        {"{\"prompt\":\"x\",\"top_p\":1e-45}", 400, "INVALID_REQUEST", "top_p"},
        {"{\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "INVALID_REQUEST",
         "stop"},
        {"{\"prompt\":\"x\",\"stop\":[\"\"]}", 400, "INVALID_REQUEST", "stop"},
        {"{\"prompt\":\"x\",\"seed\":-1}", 400, "INVALID_REQUEST", "seed"},
        {"{\"prompt\":\"x\",\"job_id\":\"\"}", 400, "INVALID_REQUEST", "job_id"},
        {"{\"prompt\":\"x\",\"job_id\":\"a/b\"}", 400, "INVALID_REQUEST", "job_id"},
    };
    rb_buf b;
    char *big;
    rb_buf_init(&b, 1 << 20);
    start(NULL, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        long st = post("/v1/inference", rows[i].body, &b);
        ck_assert_msg(st == rows[i].status, "row %zu (%s): status %ld", i, rows[i].body, st);
        assert_envelope(&b, rows[i].code);
        if (rows[i].field) {
            char want[64];
            snprintf(want, sizeof want, "\"field\":\"%s\"", rows[i].field);
            ck_assert_msg(strstr(b.data, want), "row %zu: %s does not name %s", i, b.data,
                          rows[i].field);
        }
        assert_serves(); /* each bad request leaves the worker serving */
    }
    /* A 40000-byte prompt: over the 32768-byte limit, and never echoed. */
    big = malloc(40100);
    memcpy(big, "{\"prompt\":\"", 11);
    memset(big + 11, 'q', 40000);
    strcpy(big + 40011, "\"}");
    ck_assert_int_eq(post("/v1/inference", big, &b), 400);
    assert_envelope(&b, "INVALID_REQUEST");
    ck_assert_ptr_nonnull(strstr(b.data, "\"field\":\"prompt\""));
    ck_assert_ptr_null(strstr(b.data, "qqqq"));
    free(big);
    /* A 2 MiB body. */
    big = malloc(2u << 20 | 64);
    memset(big, ' ', 2u << 20);
    big[0] = '{';
    strcpy(big + (2u << 20) - 2, "}");
    ck_assert_int_eq(post("/v1/inference", big, &b), 413);
    assert_envelope(&b, "PAYLOAD_TOO_LARGE");
    free(big);
    assert_serves();
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: POST /v1/jobs answers 202 with the stream url */
START_TEST(test_worker_api__post_v1_jobs_answers_202_with_the_stream_url)
{
    rb_buf b;
    rbt_stream st = {0};
    rb_buf_init(&b, 1 << 20);
    start(NULL, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    /* greedy: a sampled continuation may end early with an end-of-text token */
    ck_assert_int_eq(post("/v1/jobs",
                          "{\"prompt\":\"In the beginning\",\"job_id\":\"j-1\","
                          "\"max_tokens\":8,\"temperature\":0}",
                          &b),
                     202);
    ck_assert_str_eq(b.data, "{\"job_id\":\"j-1\",\"sse_url\":\"/v1/jobs/j-1/stream\"}");
    rbt_stream_run(&st, worker.base, "/v1/jobs/j-1/stream", NULL, 10000, 30000);
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    ck_assert_ptr_nonnull(strstr(st.ev[0].data, "\"type\":\"started\""));
    ck_assert_ptr_nonnull(strstr(st.ev[0].data, "\"job_id\":\"j-1\""));
    ck_assert_ptr_nonnull(strstr(st.ev[st.n - 1].data, "\"tokens_out\":8"));
    rbt_stream_release(&st);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: Unknown job ids get 404 JOB_NOT_FOUND */
START_TEST(test_worker_api__unknown_job_ids_get_404_job_not_found)
{
    rb_buf b;
    char url[256];
    rb_buf_init(&b, 1 << 20);
    start(NULL, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    snprintf(url, sizeof url, "%s/v1/jobs/nope/stream", worker.base);
    ck_assert_int_eq(rbt_http("GET", url, NULL, NULL, 5000, &b, NULL), 404);
    assert_envelope(&b, "JOB_NOT_FOUND");
    rb_buf_reset(&b);
    snprintf(url, sizeof url, "%s/v1/jobs/nope", worker.base);
    ck_assert_int_eq(rbt_http("DELETE", url, NULL, NULL, 5000, &b, NULL), 404);
    assert_envelope(&b, "JOB_NOT_FOUND");
    rb_buf_reset(&b);
    snprintf(url, sizeof url, "%s/v1/inference/nope", worker.base);
    ck_assert_int_eq(rbt_http("DELETE", url, NULL, NULL, 5000, &b, NULL), 404);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: A duplicate job id is refused */
START_TEST(test_worker_api__a_duplicate_job_id_is_refused)
{
    rb_buf b;
    rbt_stream st = {0};
    const char *body = "{\"prompt\":\"In the beginning\",\"job_id\":\"j-dup\",\"max_tokens\":4}";
    rb_buf_init(&b, 1 << 20);
    start(NULL, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    /* The first job waits for its stream to be opened, so it is certainly still registered. */
    ck_assert_int_eq(post("/v1/jobs", body, &b), 202);
    ck_assert_int_eq(post("/v1/jobs", body, &b), 409);
    assert_envelope(&b, "JOB_EXISTS");
    rbt_stream_run(&st, worker.base, "/v1/jobs/j-dup/stream", NULL, 10000, 30000);
    ck_assert_int_eq(st.rc, RB_OK);
    rbt_stream_release(&st);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Token texts of a stream concatenated. */
static void stream_text(const rbt_stream *st, char *out, size_t outlen)
{
    out[0] = '\0';
    for (int i = 0; i < st->n; i++) {
        json_t *j = json_loads(st->ev[i].data, 0, NULL);
        const char *t = json_string_value(json_object_get(j, "t"));
        if (t && strcmp(json_string_value(json_object_get(j, "type")), "token") == 0)
            strncat(out, t, outlen - strlen(out) - 1);
        json_decref(j);
    }
}

/* Scenario: The same seed gives the same tokens */
START_TEST(test_worker_api__the_same_seed_gives_the_same_tokens)
{
    const char *a = "{\"prompt\":\"In the beginning\",\"temperature\":0.8,\"seed\":42,"
                    "\"max_tokens\":24}";
    const char *c = "{\"prompt\":\"In the beginning\",\"temperature\":0.8,\"seed\":43,"
                    "\"max_tokens\":24}";
    char t1[4096], t2[4096], t3[4096];
    rbt_stream st = {0};
    start(NULL, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    rbt_stream_run(&st, worker.base, "/v1/inference", a, 10000, 30000);
    stream_text(&st, t1, sizeof t1);
    rbt_stream_release(&st);
    rbt_stream_run(&st, worker.base, "/v1/inference", a, 10000, 30000);
    stream_text(&st, t2, sizeof t2);
    rbt_stream_release(&st);
    rbt_stream_run(&st, worker.base, "/v1/inference", c, 10000, 30000);
    stream_text(&st, t3, sizeof t3);
    rbt_stream_release(&st);
    ck_assert_int_gt(strlen(t1), 10);
    ck_assert_str_eq(t1, t2);
    ck_assert_str_ne(t1, t3);
    stop();
}
END_TEST

/* Scenario: Metrics are exposed in Prometheus text */
START_TEST(test_worker_api__metrics_are_exposed_in_prometheus_text)
{
    char *m;
    start(NULL, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    assert_serves();
    assert_serves();
    m = rbt_get(worker.base, "/metrics");
    ck_assert_double_eq(rbt_metric(m, "rbee_worker_requests_total{outcome=\"completed\"}"), 2);
    ck_assert_double_eq(rbt_metric(m, "rbee_worker_tokens_generated_total"), 8);
    ck_assert_double_eq(rbt_metric(m, "rbee_worker_queue_depth"), 0);
    ck_assert_double_eq(rbt_metric(m, "rbee_worker_slots_busy"), 0);
    ck_assert_double_eq(rbt_metric(m, "rbee_worker_time_to_first_token_seconds_count"), 2);
    ck_assert_double_eq(rbt_metric(m, "rbee_worker_decode_tokens_per_second_count"), 2);
    ck_assert_ptr_nonnull(strstr(m, "rbee_worker_time_to_first_token_seconds{quantile=\"0.5\"}"));
    {
        /* the weights are mapped and prefaulted, so they are resident; the F16 cache of 512
         * tokens and the buffers add a few MB */
        const double rss = rbt_metric(m, "rbee_worker_resident_memory_bytes");
        char path[64];
        unsigned long long size = 0, pages = 0;
        FILE *f;
        snprintf(path, sizeof path, "/proc/%d/statm", (int)worker.pid);
        f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%llu %llu", &size, &pages), 2);
        fclose(f);
        printf("worker RSS %.1f MiB in /metrics, %.1f MiB in statm\n", rss / 1048576.0,
               (double)pages * 4096 / 1048576.0);
        ck_assert_double_ge(rss, 6837056.0);
        ck_assert_double_lt(rss, 256.0 * 1048576);
        ck_assert_double_lt(rss, 2.0 * (double)pages * 4096);
        ck_assert_double_gt(rss, 0.5 * (double)pages * 4096);
    }
    /* the default context (4096) is capped at the bundled model's 512 without a warning */
    ck_assert(!rbt_file_contains(worker.log, "is more than the model's training context"));
    ck_assert(rbt_file_contains(worker.log, "512 context"));
    free(m);
    stop();
}
END_TEST

/* Scenario: The KV cache type and the context are worker options */
START_TEST(test_worker_api__the_kv_cache_type_and_the_context_are_worker_options)
{
    const char *extra[] = {"--kv-type", "q8_0", "--ctx", "100000", NULL};
    char log[4300];
    int status = 0;

    start(extra, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    ck_assert_msg(rbt_file_contains(worker.log, "--ctx 100000 is more than the model's training "
                                                "context of 512 tokens; using 512"),
                  "no warning in %s", worker.log);
    ck_assert(rbt_file_contains(worker.log, "(q8_0), scratch"));
    ck_assert(rbt_file_contains(worker.log, "512 context"));
    assert_serves();
    stop();
    {
        char model[4200];
        char *argv[] = {NULL,  "--local-mode", "--port", "0", "--model",
                        model, "--kv-type",    "q4_0",   NULL};
        argv[0] = (char *)rbt_bin("llm-worker-rbee");
        snprintf(model, sizeof model, "%s", rbt_model_q8());
        rbt_tmpdir(dir);
        snprintf(log, sizeof log, "%s/bad.log", dir);
        ck_assert(rbt_wait_exit(rbt_spawn(argv, NULL, log), 10000, &status));
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 1);
        ck_assert(rbt_file_contains(log, "--kv-type must be f16, q8_0 or f32, not 'q4_0'"));
        rbt_rmtree(dir);
    }
}
END_TEST

/* Scenario: Shutdown by HTTP ends the worker */
START_TEST(test_worker_api__shutdown_by_http_ends_the_worker)
{
    /* the documented path, then its short alias on a second worker */
    static const char *const paths[] = {"/v1/admin/shutdown", "/v1/shutdown"};
    rb_buf b;
    int st;
    rb_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < 2; i++) {
        start(NULL, NULL);
        ck_assert(rbt_wait_ready(&worker, 15000));
        ck_assert_int_eq(post(paths[i], NULL, &b), 200);
        ck_assert_str_eq(b.data, "{\"status\":\"shutting_down\"}");
        ck_assert(rbt_wait_exit(worker.pid, 5000, &st));
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d", paths[i], st);
        ck_assert(!rbt_port_open(worker.port));
        worker.pid = 0;
        rbt_stop(&hive, 5000);
        rbt_rmtree(dir);
    }
    rb_buf_release(&b);
}
END_TEST

/* The state in mock-hive's latest heartbeat from the worker, or "" (into out). */
static void last_heartbeat_state(char *out, size_t len)
{
    char *r = rbt_get(hive.base, "/mock/records");
    json_t *j = r ? json_loads(r, 0, NULL) : NULL;
    json_t *hb = json_object_get(j, "heartbeats");
    const char *st =
        json_string_value(json_object_get(json_array_get(hb, json_array_size(hb) - 1), "state"));
    snprintf(out, len, "%s", st ? st : "");
    json_decref(j);
    free(r);
}

/* The "state" of the worker's /health. */
static void health_state(char *out, size_t len)
{
    char *r = rbt_get(worker.base, "/health");
    json_t *j = r ? json_loads(r, 0, NULL) : NULL;
    const char *st = json_string_value(json_object_get(j, "state"));
    snprintf(out, len, "%s", st ? st : "");
    json_decref(j);
    free(r);
}

/* Polls until /health and the latest heartbeat both say want, for up to 2 s. */
static int both_say(const char *want)
{
    char a[32] = "", b[32] = "";
    for (int64_t end = rbt_ms() + 2000; rbt_ms() < end; rbt_poll_interval()) {
        health_state(a, sizeof a);
        last_heartbeat_state(b, sizeof b);
        if (strcmp(a, want) == 0 && strcmp(b, want) == 0)
            return 1;
    }
    fprintf(stderr, "health says '%s', the latest heartbeat '%s', not '%s'\n", a, b, want);
    return 0;
}

/* Scenario: A job waiting for its stream holds the slot and the worker says busy */
START_TEST(test_worker_api__a_job_waiting_for_its_stream_holds_the_slot_and_the_worker_says_busy)
{
    const char *extra[] = {
        "--slots", "1", "--queue", "0", "--stream-open-timeout", "20000", "--heartbeat-interval",
        "3600",    NULL};
    const char *h[] = {"Content-Type: application/json", NULL};
    char jobs[300];
    rb_buf b;

    rb_buf_init(&b, 1 << 16);
    start(extra, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    ck_assert(both_say("idle"));
    snprintf(jobs, sizeof jobs, "%s/v1/jobs", worker.base);
    ck_assert_int_eq(
        rbt_http("POST", jobs, h, "{\"prompt\":\"x\",\"job_id\":\"held\"}", 5000, &b, NULL), 202);
    ck_assert(both_say("busy"));
    ck_assert_int_eq(post("/v1/jobs", "{\"prompt\":\"y\"}", &b), 503);
    assert_envelope(&b, "ALL_SLOTS_BUSY");
    /* cancelled through the other route of the same job table */
    snprintf(jobs, sizeof jobs, "%s/v1/inference/held", worker.base);
    ck_assert_int_eq(rbt_http("DELETE", jobs, NULL, NULL, 5000, NULL, NULL), 200);
    ck_assert(both_say("idle"));
    ck_assert_int_eq(rbt_http("DELETE", jobs, NULL, NULL, 5000, NULL, NULL), 404);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: Every state change reaches the hive at once */
START_TEST(test_worker_api__every_state_change_reaches_the_hive_at_once)
{
    const char *extra[] = {"--heartbeat-interval", "3600", NULL};
    char state[32] = "";
    start(extra, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    for (int i = 0; i < 20; i++) {
        rbt_stream st = {0};
        rbt_stream_run(&st, worker.base, "/v1/inference",
                       "{\"prompt\":\"In the beginning\",\"max_tokens\":1}", 10000, 30000);
        ck_assert_msg(st.rc == RB_OK, "request %d: %s", i, st.err);
        rbt_stream_release(&st);
        for (int64_t end = rbt_ms() + 2000; rbt_ms() < end;) {
            last_heartbeat_state(state, sizeof state);
            if (strcmp(state, "idle") == 0)
                break;
            rbt_poll_interval();
        }
        ck_assert_msg(strcmp(state, "idle") == 0,
                      "request %d: the hive's latest heartbeat says '%s' 2 s after the job", i,
                      state);
    }
    stop();
}
END_TEST

/* Scenario: Heartbeats survive a hive that is down */
START_TEST(test_worker_api__heartbeats_survive_a_hive_that_is_down)
{
    const char *extra[] = {"--heartbeat-interval", "1", NULL};
    rb_buf b;
    const char *h[] = {"Content-Type: application/json", NULL};
    char url[256];
    rbt_stream st = {0};
    rb_buf_init(&b, 1 << 20);
    start(extra, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    /* The hive answers 500 to heartbeats: serving is not affected. */
    snprintf(url, sizeof url, "%s/mock/script", hive.base);
    ck_assert_int_eq(rbt_http("POST", url, h, "{\"heartbeat_status\":500}", 5000, &b, NULL), 200);
    int64_t t0 = rbt_ms();
    rbt_stream_run(&st, worker.base, "/v1/inference",
                   "{\"prompt\":\"In the beginning\",\"max_tokens\":16}", 10000, 30000);
    ck_assert_int_eq(st.rc, RB_OK);
    ck_assert_int_lt(rbt_ms() - t0, 2000);
    rbt_stream_release(&st);
    /* The hive goes away: still serving. */
    int port = hive.port;
    rbt_stop(&hive, 5000);
    assert_serves();
    /* It comes back on the same port: heartbeats resume within two intervals. */
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    char *argv[] = {(char *)rbt_bin("mock-hive"), "--port", portarg, NULL};
    hive.pid = rbt_spawn(argv, NULL, hive.log);
    int64_t end = rbt_ms() + 5000;
    int seen = 0;
    while (!seen && rbt_ms() < end) {
        char *r = rbt_get(hive.base, "/mock/records");
        seen = r && strstr(r, "\"worker_id\":\"worker-test\"") != NULL;
        free(r);
        if (!seen)
            rbt_poll_interval();
    }
    ck_assert_msg(seen, "no heartbeat reached the restarted hive");
    rb_buf_release(&b);
    stop();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_api");
    TCase *tc = rbt_tcase(s, "api", 60);
    tcase_add_test(tc, test_worker_api__health_answers_while_loading_and_when_ready);
    tcase_add_test(tc, test_worker_api__requests_during_loading_get_503_loading);
    tcase_add_test(tc, test_worker_api__loading_progress_is_streamed);
    tcase_add_test(tc, test_worker_api__bad_inference_requests_get_400_with_the_field_named);
    tcase_add_test(tc, test_worker_api__post_v1_jobs_answers_202_with_the_stream_url);
    tcase_add_test(tc, test_worker_api__unknown_job_ids_get_404_job_not_found);
    tcase_add_test(tc, test_worker_api__a_duplicate_job_id_is_refused);
    tcase_add_test(tc, test_worker_api__the_same_seed_gives_the_same_tokens);
    tcase_add_test(tc, test_worker_api__metrics_are_exposed_in_prometheus_text);
    tcase_add_test(tc, test_worker_api__the_kv_cache_type_and_the_context_are_worker_options);
    tcase_add_test(tc, test_worker_api__shutdown_by_http_ends_the_worker);
    tcase_add_test(tc, test_worker_api__heartbeats_survive_a_hive_that_is_down);
    tcase_add_test(tc, test_worker_api__every_state_change_reaches_the_hive_at_once);
    tcase_add_test(
        tc, test_worker_api__a_job_waiting_for_its_stream_holds_the_slot_and_the_worker_says_busy);
    return rbt_run(s);
}
