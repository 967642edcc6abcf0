/*
 * Integration tests for spec/hive_openai.feature: the real rbee-hive with mock-worker as its
 * worker binary, OpenAI requests sent to the hive. Streams are recorded with arrival times;
 * mock-worker's /mock/records says what reached the worker. Every wait has a deadline.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_procs.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"
#include "rbt_keeper.h"

#define SLOW_TOKENS "{\"token_interval_ms\":100}"

typedef struct env {
    rbt_hive h;
    char model[4300]; /* "file:<home>/models/model.gguf" */
    char scenario[256];
} env;

static void setup(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    unsetenv("RBEE_API_TOKEN");
    unsetenv("MOCK_WORKER_SCENARIO");
}

/* A hive with a fake model in its home; scenario (may be NULL) for mock-worker; args extra
 * daemon arguments (NULL-terminated, may be NULL). */
static void env_start(env *e, const char *scenario, const char *const *args, const char *token)
{
    rbt_hive_opts o = rbt_hive_opts_default();
    int i = 0;

    memset(e, 0, sizeof(*e));
    rbt_hive_init(&e->h);
    rbt_hive_fake_model(&e->h, e->model, sizeof e->model);
    if (scenario) {
        snprintf(e->scenario, sizeof e->scenario, "MOCK_WORKER_SCENARIO=%s", scenario);
        o.env[0] = e->scenario;
    }
    for (; args && args[i] && i < 7; i++)
        o.args[i] = args[i];
    o.args[i] = NULL;
    o.token = token;
    rbt_hive_start(&e->h, &o);
}

static void env_stop(env *e)
{
    ck_assert_int_eq(rbt_hive_stop(&e->h), 0);
    rbt_hive_cleanup(&e->h);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* A chat request body for model. */
static void chat_body(char *out, size_t outlen, const char *model, int stream, int max_tokens)
{
    snprintf(out, outlen,
             "{\"model\":\"%s\",\"stream\":%s,\"max_tokens\":%d,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"In the beginning\"}]}",
             model, stream ? "true" : "false", max_tokens);
}

/* The workers the hive lists (new reference). */
static json_t *workers(env *e)
{
    json_t *r = NULL;
    ck_assert_int_eq(rbt_hive_json(&e->h, "GET", "/v1/workers/list", NULL, &r), 200);
    json_t *w = json_incref(json_object_get(r, "workers"));
    json_decref(r);
    return w;
}

/* The only worker's URL into out (the test fails when there is not exactly one). */
static void only_worker(env *e, char *id, char *url, size_t len)
{
    json_t *ws = workers(e);
    ck_assert_int_eq(json_array_size(ws), 1);
    snprintf(url, len, "%s", json_string_value(json_object_get(json_array_get(ws, 0), "url")));
    if (id)
        snprintf(id, len, "%s", json_string_value(json_object_get(json_array_get(ws, 0), "id")));
    json_decref(ws);
}

/* A counter of mock-worker's /mock/records at url; -1 when unreadable. */
static long long record(const char *url, const char *key)
{
    char *text = rbt_get(url, "/mock/records");
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    long long v =
        json_is_integer(json_object_get(j, key)) ? json_integer_value(json_object_get(j, key)) : -1;
    json_decref(j);
    free(text);
    return v;
}

/* error.code of an OpenAI error body, "" when absent. */
static const char *oai_code(json_t *body)
{
    const char *c = json_string_value(json_object_get(json_object_get(body, "error"), "code"));
    return c ? c : "";
}

/* The assistant text of a chat.completion. */
static const char *chat_text(json_t *body)
{
    json_t *c = json_array_get(json_object_get(body, "choices"), 0);
    const char *t = json_string_value(json_object_get(json_object_get(c, "message"), "content"));
    return t ? t : "";
}

/* Scenario: A cold request spawns a worker, waits for it and relays its answer */
START_TEST(test_hive_openai__a_cold_request_spawns_a_worker_waits_for_it_and_relays_its_answer)
{
    env e;
    char body[4600];
    json_t *r = NULL, *ws;

    env_start(&e, "{\"load_ms\":400}", NULL, NULL);
    ws = workers(&e);
    ck_assert_int_eq(json_array_size(ws), 0);
    json_decref(ws);
    chat_body(body, sizeof body, e.model, 0, 4);
    ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/chat/completions", body, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "object")), "chat.completion");
    ck_assert_str_eq(chat_text(r), "In the beginning God");
    json_decref(r);
    ws = workers(&e);
    ck_assert_int_eq(json_array_size(ws), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ws, 0), "model_ref")),
                     e.model);
    json_decref(ws);
    env_stop(&e);
}
END_TEST

/* Scenario: A warm request reuses the worker */
START_TEST(test_hive_openai__a_warm_request_reuses_the_worker)
{
    env e;
    char body[4600], id1[256], id2[256], url[256];
    json_t *r = NULL;

    env_start(&e, NULL, NULL, NULL);
    chat_body(body, sizeof body, e.model, 0, 2);
    ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/chat/completions", body, &r), 200);
    json_decref(r);
    only_worker(&e, id1, url, sizeof id1);
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"In\",\"max_tokens\":3}", e.model);
    ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/completions", body, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "object")), "text_completion");
    ck_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(r, "choices"), 0), "text")),
                     "In the beginning");
    json_decref(r);
    only_worker(&e, id2, url, sizeof id2);
    ck_assert_str_eq(id1, id2);
    ck_assert_int_eq(record(url, "chat_requests"), 1);
    ck_assert_int_eq(record(url, "completion_requests"), 1);
    env_stop(&e);
}
END_TEST

typedef struct streamer {
    const char *base;
    char body[4600];
    rbt_stream st;
} streamer;

static void *stream_main(void *arg)
{
    streamer *s = arg;
    rbt_stream_run(&s->st, s->base, "/v1/chat/completions", s->body, rbt_scaled(10000),
                   rbt_scaled(30000));
    return NULL;
}

/* Scenario: Two concurrent requests share a worker with two slots */
START_TEST(test_hive_openai__two_concurrent_requests_share_a_worker_with_two_slots)
{
    env e;
    static streamer a, b;
    const char *args[] = {"--worker-slots", "2", NULL};
    pthread_t ta, tb;
    char url[256];

    env_start(&e, SLOW_TOKENS, args, NULL);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.base = b.base = e.h.base;
    chat_body(a.body, sizeof a.body, e.model, 1, 6);
    chat_body(b.body, sizeof b.body, e.model, 1, 6);
    pthread_create(&ta, NULL, stream_main, &a);
    pthread_create(&tb, NULL, stream_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_msg(a.st.rc == RB_OK, "stream a: %s", a.st.err);
    ck_assert_msg(b.st.rc == RB_OK, "stream b: %s", b.st.err);
    ck_assert_int_eq(a.st.n, 8); /* role chunk, 6 tokens, the finish chunk */
    ck_assert_int_eq(b.st.n, 8);
    /* they ran side by side: each one's first chunk came before the other's last */
    ck_assert_int_lt(a.st.ev[0].at_ms, b.st.ev[b.st.n - 1].at_ms);
    ck_assert_int_lt(b.st.ev[0].at_ms, a.st.ev[a.st.n - 1].at_ms);
    only_worker(&e, NULL, url, sizeof url);
    ck_assert_int_eq(record(url, "chat_requests"), 2);
    rbt_stream_release(&a.st);
    rbt_stream_release(&b.st);
    env_stop(&e);
}
END_TEST

/* Scenario: An unknown model gets 404 in OpenAI's error shape */
START_TEST(test_hive_openai__an_unknown_model_gets_404_in_openai_s_error_shape)
{
    env e;
    const char *models[] = {"gpt-4", "file:/nonexistent/model.gguf", "hf:org/none/x.gguf"};
    char body[4600];
    json_t *r = NULL, *err;

    env_start(&e, NULL, NULL, NULL);
    for (size_t i = 0; i < RB_ARRAY_LEN(models); i++) {
        chat_body(body, sizeof body, models[i], 0, 2);
        ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/chat/completions", body, &r), 404);
        err = json_object_get(r, "error");
        ck_assert_str_eq(oai_code(r), "model_not_found");
        ck_assert_str_eq(json_string_value(json_object_get(err, "type")), "invalid_request_error");
        ck_assert_str_eq(json_string_value(json_object_get(err, "param")), "model");
        ck_assert(strstr(json_string_value(json_object_get(err, "message")), models[i]));
        json_decref(r);
    }
    ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/completions", "{\"prompt\":\"x\"}", &r), 400);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "error"), "param")),
                     "model");
    json_decref(r);
    json_t *ws = workers(&e);
    ck_assert_int_eq(json_array_size(ws), 0);
    json_decref(ws);
    env_stop(&e);
}
END_TEST

/* Scenario: A streamed answer arrives incrementally */
START_TEST(test_hive_openai__a_streamed_answer_arrives_incrementally)
{
    env e;
    static streamer s;
    json_t *c;

    env_start(&e, SLOW_TOKENS, NULL, NULL);
    memset(&s, 0, sizeof s);
    s.base = e.h.base;
    chat_body(s.body, sizeof s.body, e.model, 1, 6);
    stream_main(&s);
    ck_assert_msg(s.st.rc == RB_OK, "stream: %s", s.st.err); /* it ended with [DONE] */
    ck_assert_int_eq(s.st.n, 8);
    for (int i = 0; i < s.st.n; i++) {
        c = json_loads(s.st.ev[i].data, 0, NULL);
        ck_assert_msg(c, "chunk %d is not JSON: %s", i, s.st.ev[i].data);
        ck_assert_str_eq(json_string_value(json_object_get(c, "object")), "chat.completion.chunk");
        json_decref(c);
    }
    ck_assert(strstr(s.st.ev[1].data, "\"content\":\"In\""));
    /* six tokens 100 ms apart: the first and the last token chunk are >= 400 ms apart */
    ck_assert_int_ge(s.st.ev[6].at_ms - s.st.ev[1].at_ms, 400);
    /* and one by one: most gaps between token chunks are a good part of the interval (a busy
     * machine may still deliver two at once now and then) */
    int apart = 0;
    for (int i = 2; i <= 6; i++)
        apart += s.st.ev[i].at_ms - s.st.ev[i - 1].at_ms >= 40;
    ck_assert_int_ge(apart, 3);
    rbt_stream_release(&s.st);
    env_stop(&e);
}
END_TEST

/* Scenario: A client that disconnects mid-stream cancels the worker's job */
START_TEST(test_hive_openai__a_client_that_disconnects_mid_stream_cancels_the_worker_s_job)
{
    env e;
    static streamer s;
    char url[256];
    int64_t end;

    env_start(&e,
              "{\"token_interval_ms\":100,\"tokens\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\","
              "\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\",\"r\"]}",
              NULL, NULL);
    memset(&s, 0, sizeof s);
    s.base = e.h.base;
    s.st.stop_after = 3; /* the role chunk and two tokens */
    chat_body(s.body, sizeof s.body, e.model, 1, 18);
    stream_main(&s);
    ck_assert_int_eq(s.st.n, 3);
    only_worker(&e, NULL, url, sizeof url);
    end = rbt_ms() + rbt_scaled(3000);
    while (record(url, "disconnects") < 1 && rbt_ms() < end)
        rbt_poll_interval();
    ck_assert_int_eq(record(url, "disconnects"), 1);
    /* noticed well before the other 16 tokens (1.6 s) would have been generated */
    ck_assert_int_lt(rbt_ms() - s.st.ev[0].at_ms, 1500);
    rbt_stream_release(&s.st);
    env_stop(&e);
}
END_TEST

/* GET /metrics: rbee_hive_openai_requests_active. */
static int requests_active(env *e)
{
    char *m = rbt_get(e->h.base, "/metrics");
    int n = m ? (int)rbt_metric(m, "rbee_hive_openai_requests_active") : -1;
    free(m);
    return n;
}

/* Scenario: A client that gives up while the worker loads ends its wait */
START_TEST(test_hive_openai__a_client_that_gives_up_while_the_worker_loads_ends_its_wait)
{
    env e;
    const char *args[] = {"--load-timeout", "3", NULL};
    const char *headers[] = {"Content-Type: application/json", NULL};
    char body[4600], url[256];
    json_t *r = NULL;
    int64_t end, t0;

    env_start(&e, "{\"never_ready\":true}", args, NULL);
    chat_body(body, sizeof body, e.model, 0, 2);
    snprintf(url, sizeof url, "%s/v1/chat/completions", e.h.base);
    ck_assert_int_eq(rbt_http("POST", url, headers, body, 300, NULL, NULL), -1); /* gave up */
    end = rbt_ms() + rbt_scaled(2000);
    while (requests_active(&e) != 0 && rbt_ms() < end)
        rbt_poll_interval();
    ck_assert_int_eq(requests_active(&e), 0);
    ck_assert(rbt_file_contains(e.h.log, "client left while waiting"));
    /* one that stays waits for the load timeout: the monitor kills the worker, and the hive,
     * having started one already for this request, gives up */
    t0 = rbt_ms();
    long st = rbt_hive_json(&e.h, "POST", "/v1/chat/completions", body, &r);
    ck_assert_int_eq(st, 503);
    ck_assert(strcmp(oai_code(r), "timeout") == 0 || strcmp(oai_code(r), "worker_failed") == 0);
    ck_assert_int_lt(rbt_ms() - t0, rbt_scaled(6000));
    json_decref(r);
    env_stop(&e);
}
END_TEST

/* Waits until the worker of e reports slots busy through the hive's relay count: the stream
 * in s has received its first chunk. */
static void wait_first_chunk(streamer *s)
{
    int64_t end = rbt_ms() + rbt_scaled(10000);
    while (atomic_load(&s->st.received) < 1 && rbt_ms() < end)
        rbt_poll_interval();
    ck_assert_int_ge(atomic_load(&s->st.received), 1);
}

/* Scenario: A full worker with no queue gives 503 in OpenAI's error shape */
START_TEST(test_hive_openai__a_full_worker_with_no_queue_gives_503_in_openai_s_error_shape)
{
    env e;
    static streamer s;
    const char *args[] = {"--queue", "0", "--worker-slots", "1", NULL};
    char body[4600], url[256];
    rb_buf out, hdr;
    pthread_t t;
    json_t *r;
    const char *headers[] = {"Content-Type: application/json", NULL};

    env_start(&e, SLOW_TOKENS, args, NULL);
    memset(&s, 0, sizeof s);
    s.base = e.h.base;
    chat_body(s.body, sizeof s.body, e.model, 1, 10);
    pthread_create(&t, NULL, stream_main, &s);
    wait_first_chunk(&s);
    char *metrics = rbt_get(e.h.base, "/metrics");
    ck_assert(metrics);
    ck_assert_int_eq((int)rbt_metric(metrics, "rbee_hive_openai_requests_active"), 1);
    free(metrics);
    chat_body(body, sizeof body, e.model, 0, 2);
    snprintf(url, sizeof url, "%s/v1/chat/completions", e.h.base);
    rb_buf_init(&out, 1 << 20);
    rb_buf_init(&hdr, 1 << 20);
    ck_assert_int_eq(rbt_http("POST", url, headers, body, rbt_scaled(5000), &out, &hdr), 503);
    r = json_loadb(out.data, out.len, 0, NULL);
    ck_assert_str_eq(oai_code(r), "all_slots_busy");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "error"), "type")),
                     "server_error");
    ck_assert(strcasestr(hdr.data, "Retry-After: 1"));
    json_decref(r);
    pthread_join(t, NULL);
    ck_assert_msg(s.st.rc == RB_OK, "the first stream: %s", s.st.err);
    rb_buf_release(&out);
    rb_buf_release(&hdr);
    rbt_stream_release(&s.st);
    env_stop(&e);
}
END_TEST

/* Scenario: A request beyond the slots waits in the queue */
START_TEST(test_hive_openai__a_request_beyond_the_slots_waits_in_the_queue)
{
    env e;
    static streamer s;
    const char *args[] = {"--worker-slots", "1", NULL};
    char body[4600], url[256];
    pthread_t t;
    json_t *r = NULL;
    int64_t t0;

    env_start(&e, SLOW_TOKENS, args, NULL);
    memset(&s, 0, sizeof s);
    s.base = e.h.base;
    chat_body(s.body, sizeof s.body, e.model, 1, 6);
    pthread_create(&t, NULL, stream_main, &s);
    wait_first_chunk(&s);
    t0 = rbt_ms();
    chat_body(body, sizeof body, e.model, 0, 1);
    ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/chat/completions", body, &r), 200);
    int64_t answered = rbt_ms();
    ck_assert_str_eq(chat_text(r), "In");
    json_decref(r);
    pthread_join(t, NULL);
    ck_assert_msg(s.st.rc == RB_OK, "the first stream: %s", s.st.err);
    /* the second one was answered only after the first stream had ended */
    ck_assert_int_ge(answered - t0, 300);
    ck_assert_int_le(s.st.ev[s.st.n - 1].at_ms, answered);
    only_worker(&e, NULL, url, sizeof url);
    ck_assert_int_eq(record(url, "chat_requests"), 2);
    rbt_stream_release(&s.st);
    env_stop(&e);
}
END_TEST

/* Scenario: GET /v1/models serves the hive's list and OpenAI's list together */
START_TEST(test_hive_openai__get_v1_models_serves_the_hive_s_list_and_openai_s_list_together)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_keeper k;
    json_t *r = NULL, *m;
    char url[128];
    const char *args[] = {"models", "list", "--hive", url, NULL};

    rbt_hive_opts_bundled(&o);
    rbt_hive_start(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "GET", "/v1/models", NULL, &r), 200);
    ck_assert(json_is_array(json_object_get(r, "models")));
    ck_assert_str_eq(json_string_value(json_object_get(r, "object")), "list");
    ck_assert_int_ge(json_array_size(json_object_get(r, "data")), 1);
    m = json_array_get(json_object_get(r, "data"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(m, "id")), "kjv");
    ck_assert_str_eq(json_string_value(json_object_get(m, "object")), "model");
    ck_assert(json_is_integer(json_object_get(m, "created")));
    ck_assert_str_eq(json_string_value(json_object_get(m, "owned_by")), "rbee");
    json_decref(r);
    snprintf(url, sizeof url, "%s", h.base);
    rbt_keeper_init(&k, NULL);
    ck_assert_int_eq(rbt_keeper_run(&k, rbt_scaled(20000), args), 0);
    rbt_keeper_cleanup(&k);
    ck_assert_int_eq(rbt_hive_stop(&h), 0);
    rbt_hive_cleanup(&h);
}
END_TEST

/* Scenario: The OpenAI routes need the bearer token in network mode */
START_TEST(test_hive_openai__the_openai_routes_need_the_bearer_token_in_network_mode)
{
    env e;
    char body[4600], url[256];
    json_t *r = NULL;
    const char *headers[] = {"Content-Type: application/json", NULL};

    env_start(&e, NULL, NULL, "oai-test-token");
    chat_body(body, sizeof body, e.model, 0, 2);
    snprintf(url, sizeof url, "%s/v1/chat/completions", e.h.base);
    ck_assert_int_eq(rbt_http("POST", url, headers, body, rbt_scaled(5000), NULL, NULL), 401);
    ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/chat/completions", body, &r), 200);
    ck_assert_str_eq(chat_text(r), "In the");
    json_decref(r);
    env_stop(&e);
}
END_TEST

/* Scenario: A relayed request counts as activity for the idle timeout */
START_TEST(test_hive_openai__a_relayed_request_counts_as_activity_for_the_idle_timeout)
{
    env e;
    const char *args[] = {"--idle-timeout", "2", NULL};
    char body[4600], id[256], url[256], now[256];
    json_t *r = NULL;
    int64_t t0;

    env_start(&e, "{\"token_interval_ms\":100}", args, NULL);
    chat_body(body, sizeof body, e.model, 0, 1);
    ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/chat/completions", body, &r), 200);
    json_decref(r);
    only_worker(&e, id, url, sizeof id);
    /* one request every ~0.5 s for 3.5 s: longer than the idle timeout, never idle that long */
    t0 = rbt_ms();
    chat_body(body, sizeof body, e.model, 0, 5);
    while (rbt_ms() - t0 < 3500) {
        ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/chat/completions", body, &r), 200);
        json_decref(r);
        only_worker(&e, now, url, sizeof now);
        ck_assert_str_eq(now, id); /* the same worker throughout */
    }
    /* then idle: it goes within the timeout plus a few monitor ticks */
    ck_assert(rbt_hive_wait_worker(&e.h, id, NULL, rbt_scaled(6000), NULL));
    env_stop(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hive_openai");
    TCase *tc = rbt_tcase(s, "hive_openai", 60);

    rbt_keeper_mark();
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(
        tc, test_hive_openai__a_cold_request_spawns_a_worker_waits_for_it_and_relays_its_answer);
    tcase_add_test(tc, test_hive_openai__a_warm_request_reuses_the_worker);
    tcase_add_test(tc, test_hive_openai__two_concurrent_requests_share_a_worker_with_two_slots);
    tcase_add_test(tc, test_hive_openai__an_unknown_model_gets_404_in_openai_s_error_shape);
    tcase_add_test(tc, test_hive_openai__a_streamed_answer_arrives_incrementally);
    tcase_add_test(tc,
                   test_hive_openai__a_client_that_disconnects_mid_stream_cancels_the_worker_s_job);
    tcase_add_test(tc,
                   test_hive_openai__a_client_that_gives_up_while_the_worker_loads_ends_its_wait);
    tcase_add_test(tc,
                   test_hive_openai__a_full_worker_with_no_queue_gives_503_in_openai_s_error_shape);
    tcase_add_test(tc, test_hive_openai__a_request_beyond_the_slots_waits_in_the_queue);
    tcase_add_test(
        tc, test_hive_openai__get_v1_models_serves_the_hive_s_list_and_openai_s_list_together);
    tcase_add_test(tc, test_hive_openai__the_openai_routes_need_the_bearer_token_in_network_mode);
    tcase_add_test(tc, test_hive_openai__a_relayed_request_counts_as_activity_for_the_idle_timeout);
    return rbt_run(s);
}
