/*
 * Integration tests for spec/keeper_cli.feature: the real rbee infer against the real
 * rbee-hive with mock-worker as its worker. What reached the worker is read from
 * mock-worker's /mock/records ("job_requests": the bodies of POST /v1/jobs).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "rb_procs.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"
#include "rbt_keeper.h"

#define RUN_MS 30000

typedef struct env {
    rbt_hive h;
    rbt_keeper k;
    char model[4300];
} env;

static void setup(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    unsetenv("RBEE_API_TOKEN");
    unsetenv("MOCK_WORKER_SCENARIO");
}

static void env_start(env *e)
{
    rbt_hive_opts o = rbt_hive_opts_default();
    char path[4200];

    memset(e, 0, sizeof(*e));
    rbt_hive_init(&e->h);
    snprintf(path, sizeof path, "%s/models", e->h.home);
    ck_assert_int_eq(rb_mkdir_p(path), RB_OK);
    snprintf(path, sizeof path, "%s/models/model.gguf", e->h.home);
    rbt_write_fake_gguf(path, 4096);
    snprintf(e->model, sizeof e->model, "file:%s", path);
    rbt_hive_start(&e->h, &o);
    rbt_keeper_init(&e->k, NULL);
}

static void env_stop(env *e)
{
    rbt_keeper_cleanup(&e->k);
    ck_assert_int_eq(rbt_hive_stop(&e->h), 0);
    rbt_hive_cleanup(&e->h);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* The job bodies the hive's only worker received (new reference). */
static json_t *job_requests(env *e)
{
    json_t *r = NULL, *rec, *jobs;
    char *text;

    ck_assert_int_eq(rbt_hive_json(&e->h, "GET", "/v1/workers/list", NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r, "workers")), 1);
    text = rbt_get(
        json_string_value(json_object_get(json_array_get(json_object_get(r, "workers"), 0), "url")),
        "/mock/records");
    json_decref(r);
    ck_assert(text);
    rec = json_loads(text, 0, NULL);
    free(text);
    ck_assert(rec);
    jobs = json_incref(json_object_get(rec, "job_requests"));
    json_decref(rec);
    return jobs;
}

/* Runs rbee with args and stdin from a file holding text; the exit code. */
static int run_with_stdin(env *e, const char *text, const char *const *args)
{
    char in[4300];
    int saved, fd;
    FILE *f;

    snprintf(in, sizeof in, "%s/stdin.txt", e->k.home);
    ck_assert_ptr_nonnull(f = fopen(in, "w"));
    fputs(text, f);
    fclose(f);
    saved = dup(0);
    fd = open(in, O_RDONLY);
    dup2(fd, 0);
    close(fd);
    rbt_keeper_start(&e->k, args);
    dup2(saved, 0);
    close(saved);
    return rbt_keeper_wait(&e->k, RUN_MS);
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Scenario: Sampling options and stop strings reach the worker */
START_TEST(test_keeper_cli__sampling_options_and_stop_strings_reach_the_worker)
{
    env e;
    json_t *jobs, *j, *stop;
    char *err;
    int code;

    env_start(&e);
    const char *args[] = {"infer",
                          "--hive",
                          e.h.base,
                          "--model",
                          e.model,
                          "In the beginning",
                          "--stop",
                          "\n\n",
                          "--stop",
                          "END",
                          "--top-k",
                          "5",
                          "--top-p",
                          "0.9",
                          "--min-p",
                          "0.05",
                          "--repetition-penalty",
                          "1.25",
                          "--max-tokens",
                          "3",
                          NULL};
    code = run_with_stdin(&e, "", args);
    err = rbt_keeper_err(&e.k);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    free(err);
    jobs = job_requests(&e);
    ck_assert_int_eq(json_array_size(jobs), 1);
    j = json_array_get(jobs, 0);
    ck_assert_str_eq(jstr(j, "prompt"), "In the beginning");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "max_tokens")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "top_k")), 5);
    ck_assert_double_eq_tol(json_real_value(json_object_get(j, "top_p")), 0.9, 1e-12);
    ck_assert_double_eq_tol(json_real_value(json_object_get(j, "min_p")), 0.05, 1e-12);
    ck_assert_double_eq_tol(json_real_value(json_object_get(j, "repetition_penalty")), 1.25, 1e-12);
    stop = json_object_get(j, "stop");
    ck_assert_int_eq(json_array_size(stop), 2);
    ck_assert_str_eq(json_string_value(json_array_get(stop, 0)), "\n\n");
    ck_assert_str_eq(json_string_value(json_array_get(stop, 1)), "END");
    ck_assert_ptr_null(json_object_get(j, "temperature")); /* not given: the worker's */
    json_decref(jobs);
    env_stop(&e);
}
END_TEST

/* Scenario: The prompt is read from stdin */
START_TEST(test_keeper_cli__the_prompt_is_read_from_stdin)
{
    env e;
    json_t *jobs;
    int code;

    env_start(&e);
    const char *piped[] = {"infer", "--hive",       e.h.base, "--model",
                           e.model, "--max-tokens", "2",      NULL};
    const char *dash[] = {"infer",    "--hive", e.h.base,       "--model", e.model,
                          "--prompt", "-",      "--max-tokens", "2",       NULL};
    code = run_with_stdin(&e, "And God said\n", piped);
    ck_assert_int_eq(code, 0);
    code = run_with_stdin(&e, "Let there be light\r\n", dash);
    ck_assert_int_eq(code, 0);
    jobs = job_requests(&e);
    ck_assert_int_eq(json_array_size(jobs), 2);
    ck_assert_str_eq(jstr(json_array_get(jobs, 0), "prompt"), "And God said");
    ck_assert_str_eq(jstr(json_array_get(jobs, 1), "prompt"), "Let there be light");
    json_decref(jobs);
    env_stop(&e);
}
END_TEST

/* Scenario: A bare path is a file model */
START_TEST(test_keeper_cli__a_bare_path_is_a_file_model)
{
    env e;
    char *err, want[4400];
    int code;

    env_start(&e);
    const char *args[] = {"infer", "--hive",       e.h.base, "--model", e.model + 5,
                          "x",     "--max-tokens", "2",      NULL};
    code = run_with_stdin(&e, "", args);
    err = rbt_keeper_err(&e.k);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    snprintf(want, sizeof want, "no cached worker for %s on", e.model);
    ck_assert_msg(strstr(err, want), "stderr does not say '%s':\n%s", want, err);
    free(err);
    env_stop(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keeper_cli");
    TCase *tc = rbt_tcase(s, "infer", 120);

    rbt_keeper_mark();
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_keeper_cli__sampling_options_and_stop_strings_reach_the_worker);
    tcase_add_test(tc, test_keeper_cli__the_prompt_is_read_from_stdin);
    tcase_add_test(tc, test_keeper_cli__a_bare_path_is_a_file_model);
    return rbt_run(s);
}
