/*
 * End-to-end test of spec/worker_openai.feature's streaming scenario: OpenAI chunks carry no
 * timestamps of rbee's (the objects are exactly OpenAI's), so real-time streaming is proven
 * by arrival spread: a response buffered to the end would deliver every chunk at once, while
 * a streamed one spreads the chunks over the generation the worker logs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_json.h"
#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"

static char dir[4096];
static rbt_proc worker;

/* The run time the worker logs for job id ("job <id> completed after N tokens (P prompt, X
 * ms"), polled with a deadline; -1 if it never appears. */
static double logged_ms(const char *id, int *tokens)
{
    char needle[160];
    int64_t end = rbt_ms() + 5000;
    snprintf(needle, sizeof needle, "job %s completed after ", id);
    while (rbt_ms() < end) {
        char *log = rbt_slurp(worker.log);
        char *at = log ? strstr(log, needle) : NULL;
        double ms;
        int prompt;
        if (at && sscanf(at + strlen(needle), "%d tokens (%d prompt, %lf ms", tokens, &prompt,
                         &ms) == 3) {
            free(log);
            return ms;
        }
        free(log);
        rbt_poll_interval();
    }
    return -1;
}

static void check_spread(const char *path, const char *body, const char *field)
{
    rbt_stream st = {0};
    int64_t first = -1, last = -1;
    int nchunks = 0, tokens = 0;
    char id[128] = "";
    double ms;

    rbt_stream_run(&st, worker.base, path, body, 30000, 120000);
    ck_assert_msg(st.rc == RB_OK, "%s: %s", path, st.err);
    for (int i = 0; i < st.n; i++) {
        json_t *j = json_loads(st.ev[i].data, 0, NULL);
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        json_t *t = strcmp(field, "content") == 0
                        ? json_object_get(json_object_get(c0, "delta"), "content")
                        : json_object_get(c0, "text");
        if (j && !id[0] && json_is_string(json_object_get(j, "id")))
            snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
        if (json_is_string(t) && json_string_length(t) > 0) {
            if (first < 0)
                first = st.ev[i].at_us;
            last = st.ev[i].at_us;
            nchunks++;
        }
        json_decref(j);
    }
    ms = logged_ms(id, &tokens);
    ck_assert_msg(ms > 0, "no log line for job %s (log %s)", id, worker.log);
    printf("%s: %d content chunks of %d tokens arrived over %.1f ms of a %.1f ms generation\n",
           path, nchunks, tokens, (last - first) / 1000.0, ms);
    ck_assert_int_ge(tokens, 150);
    ck_assert_int_ge(nchunks, tokens / 2);
    ck_assert_msg((double)(last - first) / 1000.0 >= ms / 2,
                  "%s: chunks arrived within %.1f ms of a %.1f ms generation: buffered", path,
                  (last - first) / 1000.0, ms);
    rbt_stream_release(&st);
}

/* Scenario: OpenAI chunks arrive spread over the generation */
START_TEST(test_worker_openai__openai_chunks_arrive_spread_over_the_generation)
{
    rbt_tmpdir(dir);
    rbt_start_worker(&worker, dir, rbt_model_q8(), NULL, NULL, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, 15000), "worker not ready (log %s)", worker.log);
    check_spread("/v1/completions",
                 "{\"prompt\":\"In the beginning\",\"max_tokens\":200,\"temperature\":0,"
                 "\"stream\":true}",
                 "text");
    check_spread("/v1/chat/completions",
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"In the beginning\"}],"
                 "\"max_tokens\":200,\"temperature\":0,\"stream\":true}",
                 "content");
    ck_assert_int_eq(rbt_stop(&worker, 5000), 0);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_openai_streaming");
    TCase *tc = rbt_tcase(s, "streaming", 90);
    tcase_add_test(tc, test_worker_openai__openai_chunks_arrive_spread_over_the_generation);
    return rbt_run(s);
}
