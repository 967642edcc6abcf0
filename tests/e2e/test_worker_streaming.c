/*
 * End-to-end tests of spec/worker_streaming.feature: the real worker on the bundled model,
 * reporting to mock-hive, read by a client whose every read has a 30 s timeout. Streaming is
 * proven by timing arrivals against the generation, not by counting tokens at the end.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "rb_json.h"
#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"

#define READ_TIMEOUT_MS 30000

static char dir[4096];
static rbt_proc hive, worker;

static void start(const char *model, const char *const *extra)
{
    rbt_tmpdir(dir);
    rbt_start_mock_hive(&hive, dir);
    rbt_start_worker(&worker, dir, model ? model : rbt_model_q8(), hive.base, extra, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, 15000), "worker not ready (log %s)", worker.log);
}

static void stop(void)
{
    ck_assert_int_eq(rbt_stop(&worker, 5000), 0);
    rbt_stop(&hive, 5000);
    rbt_rmtree(dir);
}

static rb_err stream(rbt_stream *st, const char *body)
{
    return rbt_stream_run(st, worker.base, "/v1/inference", body, READ_TIMEOUT_MS, 120000);
}

/* Parses an event; caller json_decref()s. */
static json_t *ev(const rbt_stream *st, int i)
{
    json_t *j = json_loads(st->ev[i].data, 0, NULL);
    ck_assert_msg(j != NULL, "event %d is not JSON: %s", i, st->ev[i].data);
    return j;
}

static const char *type_of(json_t *j)
{
    const char *t = json_string_value(json_object_get(j, "type"));
    return t ? t : "";
}

/* Checks the token events carry i = 0, 1, 2, ... and returns how many there were. */
static int check_sequence(const rbt_stream *st)
{
    int next = 0;
    for (int k = 0; k < st->n; k++) {
        json_t *j = ev(st, k);
        if (strcmp(type_of(j), "token") == 0) {
            ck_assert_int_eq(json_integer_value(json_object_get(j, "i")), next);
            next++;
        }
        json_decref(j);
    }
    return next;
}

/* Scenario: The worker reports to its hive and becomes ready */
START_TEST(test_worker_streaming__the_worker_reports_to_its_hive_and_becomes_ready)
{
    char *r;
    char want[128];
    int64_t end;
    int ok = 0;
    start(NULL, NULL);
    r = rbt_get(hive.base, "/mock/records");
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(strstr(r, "\"heartbeats\":[{\"worker_id\":\"worker-test\""));
    ck_assert_ptr_nonnull(strstr(r, "\"health_status\":\"healthy\""));
    free(r);
    snprintf(want, sizeof want, "\"url\":\"%s\"", worker.base);
    end = rbt_ms() + 5000;
    while (!ok && rbt_ms() < end) {
        r = rbt_get(hive.base, "/mock/records");
        ok = r && strstr(r, "\"ready\":[{\"worker_id\":\"worker-test\"") && strstr(r, want) &&
             strstr(r, "\"model_ref\":");
        free(r);
        if (!ok)
            rbt_poll_interval();
    }
    ck_assert_msg(ok, "no ready callback with the worker's url");
    r = rbt_get(worker.base, "/v1/ready");
    ck_assert_str_eq(r, "{\"ready\":true,\"state\":\"idle\",\"model_loaded\":true}");
    free(r);
    stop();
}
END_TEST

/* Scenario: Response headers arrive before generation starts */
START_TEST(test_worker_streaming__response_headers_arrive_before_generation_starts)
{
    rbt_stream st = {0};
    start(NULL, NULL);
    stream(&st, "{\"prompt\":\"In the beginning\",\"max_tokens\":64}");
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    ck_assert_int_ge(st.res.headers_ms, 0);
    printf("headers after %lld ms\n", (long long)st.res.headers_ms);
    ck_assert_int_lt(st.res.headers_ms, 100);
    ck_assert_int_eq(st.res.status, 200);
    rbt_stream_release(&st);
    stop();
}
END_TEST

/* Scenario: The first token arrives within 2 seconds */
START_TEST(test_worker_streaming__the_first_token_arrives_within_2_seconds)
{
    rbt_stream st = {0};
    json_t *j;
    int first;
    start(NULL, NULL);
    stream(&st, "{\"prompt\":\"In the beginning\",\"max_tokens\":64,\"temperature\":0}");
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    j = ev(&st, 0);
    ck_assert_str_eq(type_of(j), "started");
    json_decref(j);
    first = rbt_stream_find(&st, "\"type\":\"token\"");
    ck_assert_int_ge(first, 1);
    printf("first token after %lld ms\n", (long long)(st.ev[first].at_ms - st.start_ms));
    ck_assert_int_lt(st.ev[first].at_ms - st.start_ms, 2000);
    rbt_stream_release(&st);
    stop();
}
END_TEST

/* The k-th token event's sampled_us; fails the test when it has none. */
static int64_t sampled_us(const rbt_stream *st, int k)
{
    json_t *j = ev(st, k);
    json_t *v = json_object_get(j, "sampled_us");
    int64_t us;

    ck_assert_msg(json_is_integer(v), "token event without sampled_us: %s", st->ev[k].data);
    us = (int64_t)json_integer_value(v);
    json_decref(j);
    return us;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Scenario: Tokens arrive spread over the generation */
START_TEST(test_worker_streaming__tokens_arrive_spread_over_the_generation)
{
    rbt_stream st = {0};
    int ntok, n = 0, early = 0, before_last = 0;
    int64_t *gen, *lat, span, last_sampled;
    start(NULL, NULL);
    stream(&st, "{\"prompt\":\"In the beginning\",\"max_tokens\":200,\"temperature\":0}");
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    ntok = check_sequence(&st);
    ck_assert_int_ge(ntok, 150);
    gen = calloc((size_t)ntok, sizeof *gen);
    lat = calloc((size_t)ntok, sizeof *lat);
    for (int k = 0; k < st.n; k++) {
        if (!strstr(st.ev[k].data, "\"type\":\"token\""))
            continue;
        gen[n] = sampled_us(&st, k);
        lat[n] = st.ev[k].at_us - gen[n];
        /* One clock: nothing is received before it was sampled, and samples go forward. */
        ck_assert_msg(lat[n] >= 0, "token %d received %lld us before it was sampled", n,
                      (long long)-lat[n]);
        ck_assert_msg(n == 0 || gen[n] >= gen[n - 1], "token %d sampled before token %d", n, n - 1);
        n++;
    }
    last_sampled = gen[n - 1];
    span = last_sampled - gen[0];
    ck_assert_int_gt(span, 0);
    /* A stream sent at the end would deliver every token after the last was sampled. */
    early = n * 9 / 10;
    for (int k = 0; k < early; k++)
        before_last += gen[k] + lat[k] < last_sampled;
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    printf("%d tokens sampled over %.1f ms; latency sampled->received: median %.2f ms, p90 "
           "%.2f ms, max %.2f ms; %d of the first %d received before the last was sampled\n",
           n, span / 1000.0, lat[n / 2] / 1000.0, lat[n * 9 / 10] / 1000.0, lat[n - 1] / 1000.0,
           before_last, early);
    ck_assert_msg(before_last * 10 >= early * 9,
                  "tokens were held back: only %d of %d arrived before the last was sampled",
                  before_last, early);
    ck_assert_msg(lat[n * 9 / 10] * 4 <= span,
                  "tokens reach the client late: p90 latency %lld us over a %lld us generation",
                  (long long)lat[n * 9 / 10], (long long)span);
    free(gen);
    free(lat);
    rbt_stream_release(&st);
    stop();
}
END_TEST

typedef struct bg_stream {
    rbt_stream st;
    const char *body;
} bg_stream;

static void *bg_run(void *arg)
{
    bg_stream *b = arg;
    stream(&b->st, b->body);
    return NULL;
}

/* Scenario: A queued request gets its headers before its generation starts */
START_TEST(test_worker_streaming__a_queued_request_gets_its_headers_before_its_generation_starts)
{
    const char *one_slot[] = {"--slots", "1", "--queue", "4", NULL};
    bg_stream a = {.body = "{\"prompt\":\"In the beginning\",\"max_tokens\":400,"
                           "\"temperature\":0}"};
    rbt_stream b = {0};
    pthread_t t;
    int64_t until, a_last_sampled = 0, b_headers_us, b_started_us, b_first_sampled;
    int b_started, b_first, a_tokens = 0;

    start(NULL, one_slot);
    ck_assert_int_eq(pthread_create(&t, NULL, bg_run, &a), 0);
    /* The slot is taken once the first reply streams its first token. */
    until = rbt_ms() + 10000;
    while (atomic_load(&a.st.received) < 2 && rbt_ms() < until)
        rbt_poll_interval();
    ck_assert_msg(atomic_load(&a.st.received) >= 2, "the first reply did not start");
    stream(&b, "{\"prompt\":\"And God said\",\"max_tokens\":4,\"temperature\":0}");
    pthread_join(t, NULL);
    ck_assert_msg(a.st.rc == RB_OK, "%s", a.st.err);
    ck_assert_msg(b.rc == RB_OK, "%s", b.err);
    for (int k = 0; k < a.st.n; k++)
        if (strstr(a.st.ev[k].data, "\"type\":\"token\"")) {
            a_last_sampled = sampled_us(&a.st, k);
            a_tokens++;
        }
    ck_assert_int_gt(a_tokens, 0);
    ck_assert_int_ge(b.res.headers_ms, 0);
    b_headers_us = (b.start_ms + b.res.headers_ms) * 1000;
    b_started = rbt_stream_find(&b, "\"type\":\"started\"");
    b_first = rbt_stream_find(&b, "\"type\":\"token\"");
    ck_assert_int_ge(b_started, 0);
    ck_assert_int_gt(b_first, b_started);
    b_started_us = b.ev[b_started].at_us;
    b_first_sampled = sampled_us(&b, b_first);
    printf("second request: headers %.1f ms before the first reply's last token was sampled; "
           "started %.1f ms and first token sampled %.1f ms after it\n",
           (a_last_sampled - b_headers_us) / 1000.0, (b_started_us - a_last_sampled) / 1000.0,
           (b_first_sampled - a_last_sampled) / 1000.0);
    /* Headers while the slot was still generating for the first client (1 ms: the headers'
     * time is known to the millisecond). */
    ck_assert_msg(b_headers_us + 1000 < a_last_sampled,
                  "the queued request's headers came after the slot was free");
    /* Its own generation only once the slot was free. */
    ck_assert_int_gt(b_started_us, a_last_sampled);
    ck_assert_int_gt(b_first_sampled, a_last_sampled);
    ck_assert_int_gt(b_first_sampled, b_headers_us);
    rbt_stream_release(&a.st);
    rbt_stream_release(&b);
    stop();
}
END_TEST

/* Scenario: The stream ends with end and DONE */
START_TEST(test_worker_streaming__the_stream_ends_with_end_and_done)
{
    rbt_stream st = {0};
    json_t *end;
    start(NULL, NULL);
    stream(&st, "{\"prompt\":\"In the beginning\",\"max_tokens\":16,\"temperature\":0}");
    ck_assert_msg(st.rc == RB_OK, "%s", st.err); /* RB_OK means [DONE] arrived */
    end = ev(&st, st.n - 1);
    ck_assert_str_eq(type_of(end), "end");
    ck_assert_int_eq(json_integer_value(json_object_get(end, "tokens_out")), 16);
    ck_assert_str_eq(json_string_value(json_object_get(end, "stop_reason")), "MAX_TOKENS");
    ck_assert_int_eq(json_integer_value(json_object_get(end, "prompt_tokens")), 4);
    ck_assert(json_is_number(json_object_get(end, "decode_time_ms")));
    ck_assert(json_is_number(json_object_get(end, "ttft_ms")));
    ck_assert(json_is_number(json_object_get(end, "tokens_per_sec")));
    json_decref(end);
    rbt_stream_release(&st);
    stop();
}
END_TEST

/* Tokens the cancelled job generated, from the worker's log line. */
static int cancelled_tokens(const char *log)
{
    char *s = rbt_slurp(log);
    const char *p = s ? strstr(s, " cancelled after ") : NULL;
    int n = p ? atoi(p + strlen(" cancelled after ")) : -1;
    free(s);
    return n;
}

/* Scenario: Closing the socket mid-stream cancels generation */
START_TEST(test_worker_streaming__closing_the_socket_mid_stream_cancels_generation)
{
    rbt_stream st = {0};
    char *m = NULL;
    int64_t end;
    int n;
    start(NULL, NULL);
    st.stop_after = 6; /* "started" and 5 tokens, then hang up */
    stream(&st, "{\"prompt\":\"In the beginning\",\"max_tokens\":2000,\"temperature\":0}");
    ck_assert_int_eq(st.rc, RB_ECANCELED);
    end = rbt_ms() + 5000;
    while (rbt_ms() < end) {
        free(m);
        m = rbt_get(worker.base, "/metrics");
        if (rbt_metric(m, "rbee_worker_requests_total{outcome=\"cancelled\"}") == 1)
            break;
        rbt_poll_interval();
    }
    ck_assert_double_eq(rbt_metric(m, "rbee_worker_requests_total{outcome=\"cancelled\"}"), 1);
    free(m);
    n = cancelled_tokens(worker.log);
    printf("generation stopped %d tokens into a 2000-token request after the client read 5\n", n);
    ck_assert_int_ge(n, 5);
    ck_assert_int_lt(n, 100);
    rbt_stream_release(&st);
    st.stop_after = 0;
    stream(&st, "{\"prompt\":\"In the beginning\",\"max_tokens\":8}");
    ck_assert_msg(st.rc == RB_OK, "next request failed: %s", st.err);
    rbt_stream_release(&st);
    stop();
}
END_TEST

typedef struct par {
    rbt_stream st;
    const char *body;
} par;

static void *run_one(void *arg)
{
    par *p = arg;
    stream(&p->st, p->body);
    return NULL;
}

/* Scenario: Four concurrent requests with two slots all complete */
START_TEST(test_worker_streaming__four_concurrent_requests_with_two_slots_all_complete)
{
    const char *extra[] = {"--slots", "2", NULL};
    par p[4];
    pthread_t t[4];
    start(NULL, extra);
    for (int i = 0; i < 4; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].body = "{\"prompt\":\"In the beginning\",\"max_tokens\":32,\"temperature\":0}";
        pthread_create(&t[i], NULL, run_one, &p[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(p[i].st.rc == RB_OK, "stream %d: %s", i, p[i].st.err);
        ck_assert_int_eq(check_sequence(&p[i].st), 32);
        ck_assert_ptr_nonnull(strstr(p[i].st.ev[p[i].st.n - 1].data, "\"type\":\"end\""));
        rbt_stream_release(&p[i].st);
    }
    stop();
}
END_TEST

/* Scenario: A full queue answers 503 ALL_SLOTS_BUSY */
START_TEST(test_worker_streaming__a_full_queue_answers_503_all_slots_busy)
{
    const char *extra[] = {"--slots", "1", "--queue", "1", NULL};
    par p[2];
    pthread_t t[2];
    rbt_stream third = {0};
    char *m = NULL, url[256];
    int64_t end;
    start(NULL, extra);
    /* Two long jobs fill the slot and the one queue place. */
    memset(p, 0, sizeof p);
    p[0].body = "{\"prompt\":\"In the "
                "beginning\",\"max_tokens\":2000,\"temperature\":0,\"job_id\":\"long-a\"}";
    p[1].body = "{\"prompt\":\"In the "
                "beginning\",\"max_tokens\":2000,\"temperature\":0,\"job_id\":\"long-b\"}";
    pthread_create(&t[0], NULL, run_one, &p[0]);
    end = rbt_ms() + 10000;
    do {
        free(m);
        m = rbt_get(worker.base, "/metrics");
        if (rbt_metric(m, "rbee_worker_slots_busy") == 1)
            break;
        rbt_poll_interval();
    } while (rbt_ms() < end);
    pthread_create(&t[1], NULL, run_one, &p[1]);
    do {
        free(m);
        m = rbt_get(worker.base, "/metrics");
        if (rbt_metric(m, "rbee_worker_queue_depth") == 1)
            break;
        rbt_poll_interval();
    } while (rbt_ms() < end);
    ck_assert_double_eq(rbt_metric(m, "rbee_worker_queue_depth"), 1);
    free(m);
    /* The third is refused at once. */
    stream(&third, "{\"prompt\":\"In the beginning\",\"max_tokens\":4}");
    ck_assert_int_eq(third.rc, RB_EHTTP);
    ck_assert_int_eq(third.res.status, 503);
    ck_assert_ptr_nonnull(strstr(third.res.body.data, "\"ALL_SLOTS_BUSY\""));
    ck_assert_ptr_nonnull(strstr(third.res.body.data, "\"slots_total\":1"));
    ck_assert_ptr_nonnull(strstr(third.res.body.data, "\"slots_busy\":1"));
    rbt_stream_release(&third);
    /* Cancel the two long jobs: both streams end with CANCELLED. */
    for (int i = 0; i < 2; i++) {
        snprintf(url, sizeof url, "%s/v1/jobs/long-%c", worker.base, 'a' + i);
        ck_assert_int_eq(rbt_http("DELETE", url, NULL, NULL, 5000, NULL, NULL), 200);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(p[i].st.rc == RB_OK, "stream %d: %s", i, p[i].st.err);
        ck_assert_ptr_nonnull(strstr(p[i].st.ev[p[i].st.n - 1].data, "\"CANCELLED\""));
        rbt_stream_release(&p[i].st);
    }
    stop();
}
END_TEST

/* Scenario: A job whose stream is never opened is cancelled */
START_TEST(test_worker_streaming__a_job_whose_stream_is_never_opened_is_cancelled)
{
    const char *extra[] = {"--stream-open-timeout", "1000", "--slots", "1", "--queue", "0", NULL};
    const char *h[] = {"Content-Type: application/json", NULL};
    rb_buf b;
    char url[256];
    rbt_stream st = {0};
    int64_t t0, end;
    rb_buf_init(&b, 1 << 16);
    start(NULL, extra);
    snprintf(url, sizeof url, "%s/v1/jobs", worker.base);
    ck_assert_int_eq(
        rbt_http("POST", url, h, "{\"prompt\":\"x\",\"job_id\":\"orphan\"}", 5000, &b, NULL), 202);
    t0 = rbt_ms();
    /* The slot is held by the orphan until the open timeout; then it serves again. */
    end = t0 + 3000;
    for (;;) {
        rbt_stream_release(&st);
        stream(&st, "{\"prompt\":\"In the beginning\",\"max_tokens\":4}");
        if (st.rc == RB_OK || rbt_ms() > end)
            break;
        ck_assert_int_eq(st.res.status, 503);
        rbt_poll_interval();
    }
    ck_assert_msg(st.rc == RB_OK, "slot not freed: %s", st.err);
    ck_assert_int_lt(rbt_ms() - t0, 3000);
    ck_assert(rbt_file_contains(worker.log, "job orphan cancelled: its stream was not opened"));
    snprintf(url, sizeof url, "%s/v1/jobs/orphan/stream", worker.base);
    ck_assert_int_eq(rbt_http("GET", url, NULL, NULL, 5000, &b, NULL), 404);
    {
        /* the orphan counts as cancelled, the request that followed as completed */
        char *m = rbt_get(worker.base, "/metrics");
        ck_assert_ptr_nonnull(m);
        ck_assert_double_eq(rbt_metric(m, "rbee_worker_requests_total{outcome=\"cancelled\"}"), 1);
        ck_assert_double_eq(rbt_metric(m, "rbee_worker_requests_total{outcome=\"completed\"}"), 1);
        free(m);
    }
    rbt_stream_release(&st);
    rb_buf_release(&b);
    stop();
}
END_TEST

typedef struct deleter {
    char url[256];
    rbt_stream *st;
    long status;
} deleter;

/* Waits for the stream to carry 3 tokens, then sends DELETE. */
static void *delete_later(void *arg)
{
    deleter *d = arg;
    rb_buf b;
    int64_t end = rbt_ms() + 10000;
    rb_buf_init(&b, 1 << 16);
    while (atomic_load(&d->st->received) < 4 && rbt_ms() < end)
        rbt_poll_interval();
    d->status = rbt_http("DELETE", d->url, NULL, NULL, 5000, &b, NULL);
    rb_buf_release(&b);
    return NULL;
}

/* Scenario: DELETE cancels a running job */
START_TEST(test_worker_streaming__delete_cancels_a_running_job)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    rb_buf b;
    char url[256];
    rbt_stream st = {0};
    deleter d = {{0}, &st, 0};
    pthread_t t;
    json_t *end;
    int ntok;
    rb_buf_init(&b, 1 << 16);
    start(NULL, NULL);
    snprintf(url, sizeof url, "%s/v1/jobs", worker.base);
    ck_assert_int_eq(rbt_http("POST", url, h,
                              "{\"prompt\":\"In the beginning\",\"job_id\":\"long\","
                              "\"max_tokens\":2000,\"temperature\":0}",
                              5000, &b, NULL),
                     202);
    snprintf(d.url, sizeof d.url, "%s/v1/jobs/long", worker.base);
    pthread_create(&t, NULL, delete_later, &d);
    rbt_stream_run(&st, worker.base, "/v1/jobs/long/stream", NULL, READ_TIMEOUT_MS, 60000);
    pthread_join(t, NULL);
    ck_assert_int_eq(d.status, 200);
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    end = ev(&st, st.n - 1);
    ck_assert_str_eq(type_of(end), "end");
    ck_assert_str_eq(json_string_value(json_object_get(end, "stop_reason")), "CANCELLED");
    ntok = check_sequence(&st);
    ck_assert_int_lt(ntok, 2000);
    json_decref(end);
    rbt_stream_release(&st);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: Stop strings end the stream without being emitted */
START_TEST(test_worker_streaming__stop_strings_end_the_stream_without_being_emitted)
{
    rbt_stream st = {0};
    json_t *end;
    int ntok = 0;
    start(NULL, NULL);
    stream(&st, "{\"prompt\":\"And God said\",\"max_tokens\":100,\"temperature\":0,"
                "\"stop\":[\"LORD\"]}");
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    for (int k = 0; k < st.n; k++) {
        json_t *j = ev(&st, k);
        if (strcmp(type_of(j), "token") == 0) {
            ck_assert_ptr_null(strstr(json_string_value(json_object_get(j, "t")), "LORD"));
            ntok++;
        }
        json_decref(j);
    }
    ck_assert_int_gt(ntok, 3);
    end = ev(&st, st.n - 1);
    ck_assert_str_eq(json_string_value(json_object_get(end, "stop_reason")), "STOP_SEQUENCE");
    json_decref(end);
    rbt_stream_release(&st);
    stop();
}
END_TEST

/* Scenario: A multi-byte character split over tokens is sent whole */
START_TEST(test_worker_streaming__a_multi_byte_character_split_over_tokens_is_sent_whole)
{
    char model[4200];
    rbt_stream st = {0};
    int e_acute = 0;
    rbt_tmpdir(dir);
    snprintf(model, sizeof model, "%s/cycle.gguf", dir);
    ck_assert_int_eq(rbt_make_cycle_model(model), 0);
    rbt_start_mock_hive(&hive, dir);
    rbt_start_worker(&worker, dir, model, hive.base, NULL, NULL);
    ck_assert(rbt_wait_ready(&worker, 15000));
    stream(&st, "{\"prompt\":\"x\",\"max_tokens\":9,\"temperature\":0}");
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    ck_assert_int_eq(check_sequence(&st), 6); /* 9 tokens: 3 x (C3, A9, "_x") -> 6 texts */
    for (int k = 0; k < st.n; k++) {
        json_t *j = ev(&st, k);
        const char *t = json_string_value(json_object_get(j, "t"));
        if (t) {
            ck_assert_msg(strcmp(t, "\xC3\xA9") == 0 || strcmp(t, " x") == 0, "text '%s'", t);
            e_acute += strcmp(t, "\xC3\xA9") == 0;
        }
        json_decref(j);
    }
    ck_assert_int_eq(e_acute, 3);
    rbt_stream_release(&st);
    stop();
}
END_TEST

/* Scenario: SIGTERM ends the worker cleanly */
START_TEST(test_worker_streaming__sigterm_ends_the_worker_cleanly)
{
    par p;
    pthread_t t;
    int64_t t0, end;
    json_t *last;
    int port;
    start(NULL, NULL);
    memset(&p, 0, sizeof p);
    p.body = "{\"prompt\":\"In the beginning\",\"max_tokens\":2000,\"temperature\":0}";
    pthread_create(&t, NULL, run_one, &p);
    /* Wait until the generation runs, then SIGTERM. */
    end = rbt_ms() + 10000;
    for (;;) {
        char *m = rbt_get(worker.base, "/metrics");
        double busy = rbt_metric(m, "rbee_worker_slots_busy");
        free(m);
        if (busy == 1 || rbt_ms() > end)
            break;
        rbt_poll_interval();
    }
    t0 = rbt_ms();
    port = worker.port;
    ck_assert_int_eq(rbt_stop(&worker, 5000), 0);
    ck_assert_int_lt(rbt_ms() - t0, 5000);
    pthread_join(t, NULL);
    ck_assert_msg(p.st.rc == RB_OK, "stream did not end with [DONE]: %s", p.st.err);
    last = ev(&p.st, p.st.n - 1);
    ck_assert(strcmp(type_of(last), "end") == 0 || strcmp(type_of(last), "error") == 0);
    json_decref(last);
    ck_assert(!rbt_port_open(port));
    rbt_stream_release(&p.st);
    rbt_stop(&hive, 5000);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_streaming");
    TCase *tc = rbt_tcase(s, "streaming", 90);
    tcase_add_test(tc, test_worker_streaming__the_worker_reports_to_its_hive_and_becomes_ready);
    tcase_add_test(tc, test_worker_streaming__response_headers_arrive_before_generation_starts);
    tcase_add_test(
        tc, test_worker_streaming__a_queued_request_gets_its_headers_before_its_generation_starts);
    tcase_add_test(tc, test_worker_streaming__the_first_token_arrives_within_2_seconds);
    tcase_add_test(tc, test_worker_streaming__tokens_arrive_spread_over_the_generation);
    tcase_add_test(tc, test_worker_streaming__the_stream_ends_with_end_and_done);
    tcase_add_test(tc, test_worker_streaming__closing_the_socket_mid_stream_cancels_generation);
    tcase_add_test(tc, test_worker_streaming__four_concurrent_requests_with_two_slots_all_complete);
    tcase_add_test(tc, test_worker_streaming__a_full_queue_answers_503_all_slots_busy);
    tcase_add_test(tc, test_worker_streaming__a_job_whose_stream_is_never_opened_is_cancelled);
    tcase_add_test(tc, test_worker_streaming__delete_cancels_a_running_job);
    tcase_add_test(tc, test_worker_streaming__stop_strings_end_the_stream_without_being_emitted);
    tcase_add_test(tc,
                   test_worker_streaming__a_multi_byte_character_split_over_tokens_is_sent_whole);
    tcase_add_test(tc, test_worker_streaming__sigterm_ends_the_worker_cleanly);
    return rbt_run(s);
}
