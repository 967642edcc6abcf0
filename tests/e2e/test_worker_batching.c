/*
 * End-to-end tests of spec/worker_batching.feature: the real worker's scheduler, read by
 * clients whose every read has a timeout. Times are the client's own clock (rbt_us).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_buf.h"
#include "rb_json.h"
#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"
#include "rbt_hive.h"

#define READ_TIMEOUT_MS 20000
#define DEADLINE_MS 120000

static char dir[4096];
static char long_model[4200];
static rbt_proc worker;

static void start(const char *model, const char *const *extra)
{
    rbt_tmpdir(dir);
    rbt_start_worker(&worker, dir, model, NULL, extra, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, rbt_scaled(20000)), "worker not ready (log %s)",
                  worker.log);
}

static void stop(void)
{
    ck_assert_int_eq(rbt_stop(&worker, rbt_scaled(10000)), 0);
    rbt_rmtree(dir);
}

/* A random-weight llama with a 4096-token context (rbee-gguf random --like tiny-4k). */
static const char *make_long_model(void)
{
    char cmd[8600];
    snprintf(long_model, sizeof long_model, "%s/tiny-4k.gguf", dir);
    snprintf(cmd, sizeof cmd, "%s random %s --like tiny-4k --type f16 --seed 3 >/dev/null",
             rbt_bin("rbee-gguf"), long_model);
    ck_assert_int_eq(system(cmd), 0);
    return long_model;
}

/* A prompt of about 2,000 tokens of that model (20 per repetition of "<word> the earth "),
 * a different one per word: a prompt the cache holds would be prefilled in no time. */
static char *long_prompt(const char *word)
{
    rb_buf b;
    rb_buf_init(&b, 1 << 20);
    for (int i = 0; i < 100; i++)
        rb_buf_appendf(&b, "%s the earth ", word);
    return rb_buf_detach(&b, NULL);
}

/* Milliseconds from a stream's request to its end event, on the client's clock: the time a
 * one-token request takes is its prefill's. */
static double request_ms(const rbt_stream *st)
{
    for (int i = 0; i < st->n; i++)
        if (strstr(st->ev[i].data, "\"type\":\"end\""))
            return (double)(st->ev[i].at_ms - st->start_ms);
    ck_abort_msg("no end event");
    return 0;
}

static json_t *find_event(const rbt_stream *st, const char *type)
{
    for (int i = 0; i < st->n; i++) {
        json_t *j = json_loads(st->ev[i].data, 0, NULL);
        const char *t = json_string_value(json_object_get(j, "type"));
        if (t && strcmp(t, type) == 0)
            return j;
        json_decref(j);
    }
    return NULL;
}

static json_int_t end_int(const rbt_stream *st, const char *field)
{
    json_t *e = find_event(st, "end");
    json_int_t v;
    ck_assert_msg(e != NULL, "no end event");
    v = json_integer_value(json_object_get(e, field));
    json_decref(e);
    return v;
}

/* The concatenated text of a stream's token events (caller frees). */
static char *text_of(const rbt_stream *st)
{
    rb_buf b;
    rb_buf_init(&b, 1 << 20);
    for (int i = 0; i < st->n; i++) {
        json_t *j = json_loads(st->ev[i].data, 0, NULL);
        const char *t = json_string_value(json_object_get(j, "type"));
        if (t && strcmp(t, "token") == 0)
            rb_buf_append(&b, json_string_value(json_object_get(j, "t")),
                          json_string_length(json_object_get(j, "t")));
        json_decref(j);
    }
    return rb_buf_detach(&b, NULL);
}

/* Arrival time (client clock, us) of the first and last token events. */
static void token_span(const rbt_stream *st, int64_t *first, int64_t *last)
{
    *first = *last = -1;
    for (int i = 0; i < st->n; i++)
        if (strstr(st->ev[i].data, "\"type\":\"token\"")) {
            if (*first < 0)
                *first = st->ev[i].at_us;
            *last = st->ev[i].at_us;
        }
}

typedef struct job {
    const char *path;
    char body[8192];
    rbt_stream st;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    rbt_stream_run(&j->st, worker.base, j->path, j->body[0] ? j->body : NULL,
                   rbt_scaled(READ_TIMEOUT_MS), rbt_scaled(DEADLINE_MS));
    return NULL;
}

static void stream_sync(job *j, const char *prompt, int max_tokens)
{
    json_t *b = json_pack("{s:s, s:i, s:i, s:i}", "prompt", prompt, "max_tokens", max_tokens,
                          "temperature", 0, "seed", 1);
    char *text = json_dumps(b, JSON_COMPACT);
    j->path = "/v1/inference";
    snprintf(j->body, sizeof j->body, "%s", text);
    free(text);
    json_decref(b);
    memset(&j->st, 0, sizeof j->st);
    run_job(j);
    ck_assert_msg(j->st.rc == RB_OK, "%s", j->st.err);
}

static const char *const prompts[4] = {"In the beginning", "And God said",
                                       "The LORD is my shepherd", "Blessed are the"};

START_TEST(test_worker_batching__concurrent_streams_get_the_tokens_each_gets_alone)
{
    const char *extra[] = {"--slots", "4", NULL};
    job alone[4], together[4];
    pthread_t tid[4];
    int64_t first[4], last[4], latest_first = 0, earliest_last = INT64_MAX;

    start(rbt_model_q8(), extra);
    for (int i = 0; i < 4; i++)
        stream_sync(&alone[i], prompts[i], 48);
    for (int i = 0; i < 4; i++) {
        together[i].path = "/v1/inference";
        strcpy(together[i].body, alone[i].body);
        memset(&together[i].st, 0, sizeof together[i].st);
        ck_assert_int_eq(pthread_create(&tid[i], NULL, run_job, &together[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < 4; i++) {
        char *a = text_of(&alone[i].st), *t = text_of(&together[i].st);
        ck_assert_msg(together[i].st.rc == RB_OK, "%s", together[i].st.err);
        ck_assert_msg(strcmp(a, t) == 0, "prompt %d: alone '%s', together '%s'", i, a, t);
        ck_assert_int_eq(end_int(&together[i].st, "tokens_out"), 48);
        token_span(&together[i].st, &first[i], &last[i]);
        if (first[i] > latest_first)
            latest_first = first[i];
        if (last[i] < earliest_last)
            earliest_last = last[i];
        free(a);
        free(t);
        rbt_stream_release(&alone[i].st);
        rbt_stream_release(&together[i].st);
    }
    /* every stream had its first token before any had its last: they ran side by side */
    ck_assert_msg(latest_first < earliest_last,
                  "the streams did not overlap (latest first token %lld, earliest last %lld)",
                  (long long)latest_first, (long long)earliest_last);
    stop();
}
END_TEST

START_TEST(test_worker_batching__a_second_turn_that_repeats_the_first_reuses_its_cache)
{
    const char *extra[] = {"--slots", "2", NULL};
    job a, b, c;
    char second[512];
    json_int_t p1;

    start(rbt_model_q8(), extra);
    stream_sync(&a, "In the beginning God created the heaven and the earth", 8);
    ck_assert_int_eq(end_int(&a.st, "prompt_tokens_cached"), 0);
    p1 = end_int(&a.st, "prompt_tokens");
    {
        char *t = text_of(&a.st);
        snprintf(second, sizeof second,
                 "In the beginning God created the heaven and the earth%s And the earth", t);
        free(t);
    }
    stream_sync(&b, second, 8);
    printf("second turn: %lld prompt tokens, %lld cached (first turn %lld)\n",
           (long long)end_int(&b.st, "prompt_tokens"),
           (long long)end_int(&b.st, "prompt_tokens_cached"), (long long)p1);
    ck_assert_int_ge(end_int(&b.st, "prompt_tokens_cached"), p1 - 1);
    ck_assert_int_lt(end_int(&b.st, "prompt_tokens_cached"), end_int(&b.st, "prompt_tokens"));
    stream_sync(&c, "Blessed are the meek", 4);
    /* BOS alone is shared: nothing worth keeping is reported as 0 or 1 token */
    ck_assert_int_le(end_int(&c.st, "prompt_tokens_cached"), 1);
    rbt_stream_release(&a.st);
    rbt_stream_release(&b.st);
    rbt_stream_release(&c.st);
    stop();
}
END_TEST

/* Posts a /v1/jobs job and returns its id (static). */
static const char *post_job(const char *body)
{
    static char id[128];
    char url[256];
    rb_buf out;
    json_t *j;
    long st;

    rb_buf_init(&out, 1 << 20);
    snprintf(url, sizeof url, "%s/v1/jobs", worker.base);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    st = rbt_http("POST", url, hdr, body, 10000, &out, NULL);
    ck_assert_msg(st == 202, "POST /v1/jobs: %ld %s", st, out.data ? out.data : "");
    j = json_loads(out.data, 0, NULL);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "job_id")));
    json_decref(j);
    rb_buf_release(&out);
    return id;
}

START_TEST(
    test_worker_batching__a_cancel_during_a_2_000_token_prefill_ends_the_stream_within_a_chunk_or_two)
{
    const char *extra[] = {"--slots", "2", "--batch", "64", "--ctx", "4096", NULL};
    char *prompt;
    job full, cancelled;
    pthread_t tid;
    char url[256];
    int64_t sent_us = 0, end_us = -1, deadline;
    double prefill_ms, latency_ms;
    json_t *e;

    rbt_tmpdir(dir);
    make_long_model();
    rbt_start_worker(&worker, dir, long_model, NULL, extra, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, rbt_scaled(20000)), "worker not ready (log %s)",
                  worker.log);
    prompt = long_prompt("and");
    stream_sync(&full, prompt, 1);
    ck_assert_int_ge(end_int(&full.st, "prompt_tokens"), 1900);
    prefill_ms = request_ms(&full.st);
    free(prompt);
    prompt = long_prompt("for");

    snprintf(cancelled.body, sizeof cancelled.body,
             "{\"prompt\":\"%s\",\"max_tokens\":8,\"temperature\":0}", prompt);
    {
        const char *id = post_job(cancelled.body);
        static char path[256];
        snprintf(path, sizeof path, "/v1/jobs/%s/stream", id);
        snprintf(url, sizeof url, "%s/v1/jobs/%s", worker.base, id);
        cancelled.path = path;
        cancelled.body[0] = 0;
    }
    memset(&cancelled.st, 0, sizeof cancelled.st); /* an empty body: run_job GETs */
    ck_assert_int_eq(pthread_create(&tid, NULL, run_job, &cancelled), 0);
    deadline = rbt_ms() + rbt_scaled(10000);
    while (atomic_load(&cancelled.st.received) < 1 && rbt_ms() < deadline)
        rbt_poll_interval(); /* the started event: the prefill has begun */
    ck_assert_int_ge(atomic_load(&cancelled.st.received), 1);
    sent_us = rbt_us();
    ck_assert_int_eq(rbt_http("DELETE", url, NULL, NULL, 10000, NULL, NULL), 200);
    pthread_join(tid, NULL);
    ck_assert_msg(cancelled.st.rc == RB_OK, "%s", cancelled.st.err);
    for (int i = 0; i < cancelled.st.n; i++)
        if (strstr(cancelled.st.ev[i].data, "\"type\":\"end\""))
            end_us = cancelled.st.ev[i].at_us;
    e = find_event(&cancelled.st, "end");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(json_string_value(json_object_get(e, "stop_reason")), "CANCELLED");
    ck_assert_int_eq(json_integer_value(json_object_get(e, "tokens_out")), 0);
    json_decref(e);
    latency_ms = (double)(end_us - sent_us) / 1000.0;
    printf("2,000-token prefill %.1f ms (%d chunks of 64, %.1f ms each); the end came %.1f ms "
           "after the DELETE\n",
           prefill_ms, 2003 / 64 + 1, prefill_ms / (2003 / 64 + 1), latency_ms);
    ck_assert_msg(latency_ms < prefill_ms / 4,
                  "the cancel took %.1f ms of a %.1f ms prefill: it did not reach the engine",
                  latency_ms, prefill_ms);
    free(prompt);
    rbt_stream_release(&full.st);
    rbt_stream_release(&cancelled.st);
    stop();
}
END_TEST

START_TEST(test_worker_batching__a_long_prefill_delays_the_running_streams_by_about_one_chunk)
{
    const char *extra[] = {"--slots", "2", "--batch", "32", "--ctx", "4096", NULL};
    char *prompt;
    job running, longp;
    pthread_t t1, t2;
    int64_t deadline, pre0, pre1, gap = 0, prev = -1;
    double prefill_ms;
    int during = 0;
    char cancel_url[256];

    rbt_tmpdir(dir);
    make_long_model();
    rbt_start_worker(&worker, dir, long_model, NULL, extra, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, rbt_scaled(20000)), "worker not ready (log %s)",
                  worker.log);
    prompt = long_prompt("for");
    {
        /* the running stream is a /v1/jobs job, cancelled once the long prompt is done */
        static char path[256];
        const char *id = post_job("{\"prompt\":\"and\",\"max_tokens\":2000,\"temperature\":0}");
        snprintf(path, sizeof path, "/v1/jobs/%s/stream", id);
        snprintf(cancel_url, sizeof cancel_url, "%s/v1/jobs/%s", worker.base, id);
        running.path = path;
        running.body[0] = 0;
    }
    longp.path = "/v1/inference";
    snprintf(longp.body, sizeof longp.body, "{\"prompt\":\"%s\",\"max_tokens\":1}", prompt);
    memset(&running.st, 0, sizeof running.st);
    memset(&longp.st, 0, sizeof longp.st);
    ck_assert_int_eq(pthread_create(&t1, NULL, run_job, &running), 0);
    deadline = rbt_ms() + rbt_scaled(10000);
    while (atomic_load(&running.st.received) < 20 && rbt_ms() < deadline)
        rbt_poll_interval();
    ck_assert_int_ge(atomic_load(&running.st.received), 20);
    pre0 = rbt_us();
    ck_assert_int_eq(pthread_create(&t2, NULL, run_job, &longp), 0);
    pthread_join(t2, NULL);
    pre1 = rbt_us();
    rbt_http("DELETE", cancel_url, NULL, NULL, 10000, NULL, NULL);
    pthread_join(t1, NULL);
    ck_assert_msg(longp.st.rc == RB_OK, "%s", longp.st.err);
    ck_assert_msg(running.st.rc == RB_OK, "%s", running.st.err);
    prefill_ms = request_ms(&longp.st);
    for (int i = 0; i < running.st.n; i++) {
        const int64_t at = running.st.ev[i].at_us;
        if (!strstr(running.st.ev[i].data, "\"type\":\"token\""))
            continue;
        if (prev >= 0 && at > pre0 && prev < pre1) {
            during++;
            if (at - prev > gap)
                gap = at - prev;
        }
        prev = at;
    }
    printf("while a %.1f ms prefill ran (chunks of 32), the running stream got %d tokens, "
           "largest gap %.1f ms\n",
           prefill_ms, during, (double)gap / 1000.0);
    ck_assert_int_ge(during, 10);
    ck_assert_msg((double)gap / 1000.0 < prefill_ms / 5,
                  "a gap of %.1f ms during a %.1f ms prefill: the prompt was not chunked",
                  (double)gap / 1000.0, prefill_ms);
    free(prompt);
    rbt_stream_release(&running.st);
    rbt_stream_release(&longp.st);
    stop();
}
END_TEST

START_TEST(test_worker_batching__a_sequence_that_fills_the_context_ends_with_context_full)
{
    const char *extra[] = {"--ctx", "64", NULL};
    job j;
    json_t *e;
    json_int_t p;

    start(rbt_model_q8(), extra);
    stream_sync(&j, "In the beginning", 200);
    e = find_event(&j.st, "end");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(json_string_value(json_object_get(e, "stop_reason")), "CONTEXT_FULL");
    p = json_integer_value(json_object_get(e, "prompt_tokens"));
    /* the last position's token is sampled too: 64 - prompt + 1 */
    ck_assert_int_eq(json_integer_value(json_object_get(e, "tokens_out")), 64 - p + 1);
    json_decref(e);
    /* and it was said at the start, before any token */
    e = find_event(&j.st, "started");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "max_tokens")), 64 - p + 1);
    ck_assert_msg(
        strstr(json_string_value(json_object_get(e, "warning")), "max_tokens 200 is more than the"),
        "%s", json_string_value(json_object_get(e, "warning")));
    json_decref(e);
    rbt_stream_release(&j.st);
    stop();
}
END_TEST

START_TEST(test_worker_batching__shutdown_with_a_client_that_stopped_reading_ends_in_time)
{
    const char *extra[] = {"--slots", "2", "--ctx", "4096", NULL};
    struct sockaddr_in a = {0};
    char req[512], buf[512];
    const char *body = "{\"prompt\":\"and\",\"max_tokens\":2000,\"temperature\":0}";
    int fd, small = 4096, status = 0;
    int64_t t0;
    ssize_t got;

    rbt_tmpdir(dir);
    make_long_model();
    rbt_start_worker(&worker, dir, long_model, NULL, extra, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, rbt_scaled(20000)), "worker not ready (log %s)",
                  worker.log);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    {
        struct timeval tv = {10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)worker.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    snprintf(req, sizeof req,
             "POST /v1/inference HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    got = read(fd, buf, sizeof buf); /* the stream has begun; from here nothing is read */
    ck_assert_int_gt(got, 0);
    t0 = rbt_ms();
    kill(worker.pid, SIGTERM);
    ck_assert_msg(rbt_wait_exit(worker.pid, 10000, &status),
                  "the worker did not exit within 10 s of SIGTERM (log %s)", worker.log);
    printf("the worker exited %lld ms after SIGTERM with an unread stream\n",
           (long long)(rbt_ms() - t0));
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    worker.pid = 0;
    close(fd);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_batching");
    TCase *tc = rbt_tcase(s, "batching", 180);
    tcase_add_test(tc, test_worker_batching__concurrent_streams_get_the_tokens_each_gets_alone);
    tcase_add_test(tc, test_worker_batching__a_second_turn_that_repeats_the_first_reuses_its_cache);
    tcase_add_test(
        tc,
        test_worker_batching__a_cancel_during_a_2_000_token_prefill_ends_the_stream_within_a_chunk_or_two);
    tcase_add_test(
        tc, test_worker_batching__a_long_prefill_delays_the_running_streams_by_about_one_chunk);
    tcase_add_test(tc,
                   test_worker_batching__a_sequence_that_fills_the_context_ends_with_context_full);
    tcase_add_test(tc,
                   test_worker_batching__shutdown_with_a_client_that_stopped_reading_ends_in_time);
    return rbt_run(s);
}
