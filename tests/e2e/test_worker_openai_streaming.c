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

/* Scenario: OpenAI chunks arrive spread over the generation */
START_TEST(test_worker_openai__openai_chunks_arrive_spread_over_the_generation)
{
    rbt_tmpdir(dir);
    rbt_start_worker(&worker, dir, rbt_model_q8(), NULL, NULL, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, 15000), "worker not ready (log %s)", worker.log);
    rbt_check_openai_spread(worker.base, "/v1/completions",
                            "{\"prompt\":\"In the beginning\",\"max_tokens\":200,\"temperature\":0,"
                            "\"stream\":true}",
                            "text", worker.log);
    rbt_check_openai_spread(worker.base, "/v1/chat/completions",
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"In the beginning\"}],"
                            "\"max_tokens\":200,\"temperature\":0,\"stream\":true}",
                            "content", worker.log);
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
