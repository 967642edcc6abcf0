/*
 * The hive lifecycle once more with the real worker and the bundled model
 * (spec/hive_lifecycle.feature): spawn, ready, one inference streamed from the worker, stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_procs.h"
#include "rb_test.h"
#include "rbt_hive.h"

/* Scenario: The same lifecycle with the real worker and the bundled model */
START_TEST(test_hive_lifecycle__the_same_lifecycle_with_the_real_worker_and_the_bundled_model)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL, *w = NULL;
    const char *id, *url;
    char idbuf[128], base[128];
    rbt_stream st = {0};
    pid_t pid;
    char worker_bin[4096];

    /* rbt_bin() returns a shared buffer: keep our own copy. */
    snprintf(worker_bin, sizeof worker_bin, "%s", rbt_bin("llm-worker-rbee"));
    o.worker_binary = worker_bin;
    rbt_hive_start(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn",
                                   "{\"model_ref\":\"kjv\",\"backend\":\"cpu\",\"device\":0}", &r),
                     200);
    id = json_string_value(json_object_get(r, "worker_id"));
    url = json_string_value(json_object_get(r, "url"));
    ck_assert_ptr_nonnull(id);
    ck_assert_ptr_nonnull(url);
    ck_assert_int_eq(strncmp(id, "worker-", 7), 0);
    snprintf(idbuf, sizeof idbuf, "%s", id);
    snprintf(base, sizeof base, "%s", url);
    json_decref(r);

    ck_assert_msg(rbt_hive_wait_worker(&h, idbuf, "idle", 15000, &w), "worker never idle (%s)",
                  h.log);
    pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    ck_assert_int_gt(pid, 0);
    json_decref(w);

    rbt_stream_run(&st, base, "/v1/inference",
                   "{\"prompt\":\"In the beginning\",\"max_tokens\":16,\"temperature\":0}", 30000,
                   60000);
    ck_assert_msg(st.rc == RB_OK, "%s", st.err);
    ck_assert_int_ge(rbt_stream_find(&st, "\"stop_reason\":\"MAX_TOKENS\""), 0);
    rbt_stream_release(&st);

    ck_assert_int_eq(rbt_hive_stop(&h), 0);
    int64_t end = rbt_ms() + 5000;
    while (!rbt_pid_gone(pid) && rbt_ms() < end)
        rbt_poll_interval();
    ck_assert_msg(rbt_pid_gone(pid), "worker %d outlived its hive", (int)pid);
    rbt_hive_cleanup(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hive_real_worker");
    TCase *tc = rbt_tcase(s, "real", 90);
    tcase_add_test(
        tc, test_hive_lifecycle__the_same_lifecycle_with_the_real_worker_and_the_bundled_model);
    return rbt_run(s);
}
