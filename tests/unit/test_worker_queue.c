/*
 * Unit tests for spec/worker_queue.feature: the bounded job queue, cancel and shutdown.
 */
#include <pthread.h>
#include <string.h>

#include "job.h"
#include "rb_test.h"

static wrk_job *mkjob(const char *id)
{
    wrk_request r = {0};
    r.prompt = strdup("p");
    r.max_tokens = 1;
    wrk_job *j = wrk_job_new(id, &r, 8);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* Submits a fresh job and drops the caller's reference; returns the submit result. */
static rb_err submit(wrk_jobs *q, const char *id)
{
    wrk_job *j = mkjob(id);
    rb_err rc = wrk_jobs_submit(q, j);
    wrk_job_unref(j);
    return rc;
}

/* Scenario: The queue admits slots plus queue capacity jobs */
START_TEST(test_worker_queue__the_queue_admits_slots_plus_queue_capacity_jobs)
{
    wrk_jobs *q = wrk_jobs_new(1, 2);
    wrk_jobs_stats st;
    ck_assert_int_eq(submit(q, "a"), RB_OK);
    ck_assert_int_eq(submit(q, "b"), RB_OK);
    ck_assert_int_eq(submit(q, "c"), RB_OK);
    ck_assert_int_eq(submit(q, "d"), RB_EBUSY);
    wrk_jobs_stats_get(q, &st);
    ck_assert_int_eq(st.queued, 3);
    ck_assert_int_eq(st.running, 0);
    wrk_jobs_free(q);
}
END_TEST

/* Scenario: With queue capacity 0 a job is admitted only when a slot is free */
START_TEST(test_worker_queue__with_queue_capacity_0_a_job_is_admitted_only_when_a_slot_is_free)
{
    wrk_jobs *q = wrk_jobs_new(1, 0);
    wrk_job *j;
    ck_assert_int_eq(submit(q, "a"), RB_OK);
    j = wrk_jobs_pop(q);
    ck_assert_str_eq(j->id, "a");
    ck_assert_int_eq(submit(q, "b"), RB_EBUSY);
    wrk_jobs_done(q, j);
    wrk_job_unref(j);
    ck_assert_int_eq(submit(q, "b"), RB_OK);
    wrk_jobs_free(q);
}
END_TEST

/* Scenario: Jobs are served in order */
START_TEST(test_worker_queue__jobs_are_served_in_order)
{
    wrk_jobs *q = wrk_jobs_new(1, 8);
    const char *ids[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(submit(q, ids[i]), RB_OK);
    for (int i = 0; i < 3; i++) {
        wrk_job *j = wrk_jobs_pop(q);
        ck_assert_str_eq(j->id, ids[i]);
        ck_assert_int_eq(j->state, WRK_JOB_RUNNING);
        wrk_jobs_done(q, j);
        wrk_job_unref(j);
    }
    wrk_jobs_free(q);
}
END_TEST

/* Scenario: A duplicate job id is refused */
START_TEST(test_worker_queue__a_duplicate_job_id_is_refused)
{
    wrk_jobs *q = wrk_jobs_new(1, 8);
    ck_assert_int_eq(submit(q, "j-dup"), RB_OK);
    ck_assert_int_eq(submit(q, "j-dup"), RB_EEXIST);
    wrk_job *j = wrk_jobs_find(q, "j-dup");
    ck_assert_ptr_nonnull(j);
    wrk_job_unref(j);
    ck_assert_ptr_null(wrk_jobs_find(q, "nope"));
    wrk_jobs_free(q);
}
END_TEST

/* Scenario: Cancelling a queued job removes it and hands it back */
START_TEST(test_worker_queue__cancelling_a_queued_job_removes_it_and_hands_it_back)
{
    wrk_jobs *q = wrk_jobs_new(1, 8);
    int found;
    wrk_job *a, *b;
    submit(q, "a");
    submit(q, "b");
    a = wrk_jobs_cancel(q, "a", &found);
    ck_assert(found);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->id, "a");
    ck_assert(wrk_job_cancelled(a));
    wrk_job_unref(a);
    ck_assert_ptr_null(wrk_jobs_find(q, "a"));
    b = wrk_jobs_pop(q);
    ck_assert_str_eq(b->id, "b");
    wrk_jobs_done(q, b);
    wrk_job_unref(b);
    ck_assert_ptr_null(wrk_jobs_cancel(q, "zzz", &found));
    ck_assert(!found);
    wrk_jobs_free(q);
}
END_TEST

/* Scenario: Cancelling a running job sets its flag */
START_TEST(test_worker_queue__cancelling_a_running_job_sets_its_flag)
{
    wrk_jobs *q = wrk_jobs_new(1, 8);
    int found;
    wrk_job *r;
    submit(q, "r");
    r = wrk_jobs_pop(q);
    ck_assert_ptr_null(wrk_jobs_cancel(q, "r", &found));
    ck_assert(found);
    ck_assert(wrk_job_cancelled(r));
    wrk_job *again = wrk_jobs_find(q, "r");
    ck_assert_ptr_eq(again, r);
    wrk_job_unref(again);
    wrk_jobs_done(q, r);
    wrk_job_unref(r);
    ck_assert_ptr_null(wrk_jobs_find(q, "r"));
    wrk_jobs_free(q);
}
END_TEST

static void *popper(void *arg)
{
    return wrk_jobs_pop(arg);
}

/* Scenario: Shutdown wakes every waiting thread and returns the queued jobs */
START_TEST(test_worker_queue__shutdown_wakes_every_waiting_thread_and_returns_the_queued_jobs)
{
    wrk_jobs *q = wrk_jobs_new(2, 8);
    pthread_t t[2];
    void *res[2];
    wrk_job *queued, *run;

    /* Two generation threads wait on an empty queue: shutdown wakes both with no job. */
    pthread_create(&t[0], NULL, popper, q);
    pthread_create(&t[1], NULL, popper, q);
    ck_assert_ptr_null(wrk_jobs_shutdown(q));
    pthread_join(t[0], &res[0]);
    pthread_join(t[1], &res[1]);
    ck_assert_ptr_null(res[0]);
    ck_assert_ptr_null(res[1]);
    wrk_jobs_free(q);

    /* One job running, two waiting: the waiting ones come back cancelled, in order. */
    q = wrk_jobs_new(1, 8);
    submit(q, "r");
    run = wrk_jobs_pop(q);
    submit(q, "a");
    submit(q, "b");
    queued = wrk_jobs_shutdown(q);
    ck_assert_ptr_nonnull(queued);
    ck_assert_str_eq(queued->id, "a");
    ck_assert_ptr_nonnull(queued->next);
    ck_assert_str_eq(queued->next->id, "b");
    ck_assert_ptr_null(queued->next->next);
    ck_assert(wrk_job_cancelled(queued) && wrk_job_cancelled(queued->next));
    ck_assert(wrk_job_cancelled(run));
    ck_assert_int_eq(submit(q, "late"), RB_ECLOSED);
    ck_assert_ptr_null(wrk_jobs_pop(q));
    while (queued) {
        wrk_job *next = queued->next;
        wrk_job_unref(queued);
        queued = next;
    }
    wrk_jobs_done(q, run);
    wrk_job_unref(run);
    wrk_jobs_free(q);
}
END_TEST

typedef struct waiter {
    wrk_job *j;
    int opened;
} waiter;

static void *wait_open(void *arg)
{
    waiter *w = arg;
    w->opened = wrk_job_wait_stream(w->j, 5000);
    return NULL;
}

/* Scenario: A job's stream can be opened once */
START_TEST(test_worker_queue__a_job_s_stream_can_be_opened_once)
{
    wrk_job *j = mkjob("s");
    waiter w = {j, 0};
    pthread_t t;
    int64_t t0 = rbt_ms();

    j->wait_for_stream = 1;
    pthread_create(&t, NULL, wait_open, &w);
    ck_assert_int_eq(wrk_job_open_stream(j), 1);
    ck_assert_int_eq(wrk_job_open_stream(j), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(w.opened, 1);
    ck_assert_int_lt(rbt_ms() - t0, 2000);
    /* A stream that is never opened times out, and a cancel wakes the waiter early. */
    wrk_job *k = mkjob("k");
    ck_assert_int_eq(wrk_job_wait_stream(k, 50), 0);
    waiter w2 = {k, 1};
    t0 = rbt_ms();
    pthread_create(&t, NULL, wait_open, &w2);
    wrk_job_cancel(k);
    pthread_join(t, NULL);
    ck_assert_int_eq(w2.opened, 0);
    ck_assert_int_lt(rbt_ms() - t0, 2000);
    wrk_job_unref(k);
    wrk_job_unref(j);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_queue");
    TCase *tc = rbt_tcase(s, "queue", 20);
    tcase_add_test(tc, test_worker_queue__the_queue_admits_slots_plus_queue_capacity_jobs);
    tcase_add_test(
        tc, test_worker_queue__with_queue_capacity_0_a_job_is_admitted_only_when_a_slot_is_free);
    tcase_add_test(tc, test_worker_queue__jobs_are_served_in_order);
    tcase_add_test(tc, test_worker_queue__a_duplicate_job_id_is_refused);
    tcase_add_test(tc, test_worker_queue__cancelling_a_queued_job_removes_it_and_hands_it_back);
    tcase_add_test(tc, test_worker_queue__cancelling_a_running_job_sets_its_flag);
    tcase_add_test(
        tc, test_worker_queue__shutdown_wakes_every_waiting_thread_and_returns_the_queued_jobs);
    tcase_add_test(tc, test_worker_queue__a_job_s_stream_can_be_opened_once);
    return rbt_run(s);
}
