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

#include "kpr_out.h"
#include "kpr_store.h"
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

static void env_start_token(env *e, const char *token)
{
    rbt_hive_opts o = rbt_hive_opts_default();

    memset(e, 0, sizeof(*e));
    rbt_hive_init(&e->h);
    rbt_hive_fake_model(&e->h, e->model, sizeof e->model);
    o.token = token;
    rbt_hive_start(&e->h, &o);
    rbt_keeper_init(&e->k, NULL);
}

static void env_start(env *e)
{
    env_start_token(e, NULL);
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

/* Runs rbee with args (stdin empty) and returns the exit code; *out and *err the streams
 * (caller frees). */
static int run_cmd(env *e, char **out, char **err, const char *const *args)
{
    int code = run_with_stdin(e, "", args);
    *out = rbt_keeper_out(&e->k);
    *err = rbt_keeper_err(&e->k);
    return code;
}

/* stdout as exactly one JSON document: one line, one object (new reference). */
static json_t *one_document(const char *out)
{
    json_error_t je;
    json_t *doc;
    size_t len = strlen(out);

    ck_assert_msg(len > 1 && out[len - 1] == '\n' && memchr(out, '\n', len - 1) == NULL,
                  "stdout is not one line:\n%s", out);
    doc = json_loads(out, 0, &je);
    ck_assert_msg(json_is_object(doc), "stdout is not a JSON object (%s):\n%s", je.text, out);
    return doc;
}

/* Spawns a worker for e's model through the hive and waits until it is idle; its id. */
static void spawn_idle(env *e, char *id, size_t len)
{
    json_t *r = NULL;
    char body[4500];

    snprintf(body, sizeof body, "{\"model_ref\":\"%s\",\"backend\":\"cpu\",\"device\":0}",
             e->model);
    ck_assert_int_eq(rbt_hive_json(&e->h, "POST", "/v1/workers/spawn", body, &r), 200);
    snprintf(id, len, "%s", jstr(r, "worker_id"));
    json_decref(r);
    ck_assert(rbt_hive_wait_worker(&e->h, id, "idle", rbt_scaled(20000), NULL));
}

/* Scenario: Lists and status are JSON documents with --json */
START_TEST(test_keeper_cli__lists_and_status_are_json_documents_with_json)
{
    env e;
    json_t *doc, *w, *list = NULL, *hw;
    char id[128], want[8192], *out, *err;
    int code;

    env_start(&e);
    spawn_idle(&e, id, sizeof id);
    ck_assert_int_eq(rbt_hive_json(&e.h, "GET", "/v1/workers/list", NULL, &list), 200);
    hw = json_array_get(json_object_get(list, "workers"), 0);
    rbt_keeper_env(&e.k, "RBEE_HIVE_PORT=%d", e.h.port);

    const char *wl[] = {"workers", "list", "--json", NULL};
    code = run_cmd(&e, &out, &err, wl);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    doc = one_document(out);
    ck_assert_str_eq(jstr(doc, "node"), "localhost");
    ck_assert_str_eq(jstr(doc, "hive_url"), e.h.base);
    ck_assert(json_is_true(json_object_get(doc, "hive_running")));
    ck_assert_int_eq(json_array_size(json_object_get(doc, "workers")), 1);
    w = json_array_get(json_object_get(doc, "workers"), 0);
    ck_assert_int_eq(json_object_size(w), 8);
    ck_assert_str_eq(jstr(w, "id"), id);
    ck_assert_str_eq(jstr(w, "state"), "idle");
    ck_assert_str_eq(jstr(w, "model_ref"), e.model);
    ck_assert_str_eq(jstr(w, "url"), jstr(hw, "url"));
    ck_assert_int_eq(json_integer_value(json_object_get(w, "pid")),
                     json_integer_value(json_object_get(hw, "pid")));
    ck_assert_int_eq(json_integer_value(json_object_get(w, "slots_busy")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "slots_total")), 1);
    ck_assert(json_is_integer(json_object_get(w, "rss_mb")) ||
              json_is_null(json_object_get(w, "rss_mb")));
    ck_assert_str_eq(err, "");
    json_decref(doc);
    free(out);
    free(err);

    const char *ml[] = {"models", "list", "--json", NULL};
    code = run_cmd(&e, &out, &err, ml);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    doc = one_document(out);
    ck_assert_str_eq(jstr(doc, "node"), "localhost");
    ck_assert_str_eq(jstr(doc, "hive_url"), e.h.base);
    ck_assert_str_eq(jstr(doc, "bundled_model"), "kjv");
    ck_assert(json_is_array(json_object_get(doc, "models")));
    json_decref(doc);
    free(out);
    free(err);

    const char *hs[] = {"hive", "status", "--json", NULL};
    code = run_cmd(&e, &out, &err, hs);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    snprintf(want, sizeof want,
             "{\"node\":\"localhost\",\"hive_url\":\"%s\",\"alive\":true,\"version\":\"%s\","
             "\"workers\":1}\n",
             e.h.base, RB_VERSION);
    ck_assert_str_eq(out, want);
    ck_assert_str_eq(err, "");
    free(out);
    free(err);

    /* the same facts as text; a hive that is down is still a document, and still exit 1 */
    const char *hs_text[] = {"hive", "status", NULL};
    code = run_cmd(&e, &out, &err, hs_text);
    ck_assert_int_eq(code, 0);
    snprintf(want, sizeof want, "localhost %s alive, version %s, 1 workers\n", e.h.base,
             RB_VERSION);
    ck_assert_str_eq(out, want);
    free(out);
    free(err);
    json_decref(list);
    ck_assert_int_eq(rbt_hive_stop(&e.h), 0);
    rbt_hive_cleanup(&e.h);

    code = run_cmd(&e, &out, &err, hs);
    ck_assert_int_eq(code, 1);
    doc = one_document(out);
    ck_assert(json_is_false(json_object_get(doc, "alive")));
    ck_assert(json_is_string(json_object_get(doc, "error")));
    ck_assert_msg(strstr(err, "Error: The hive of localhost"), "stderr:\n%s", err);
    json_decref(doc);
    free(out);
    free(err);
    code = run_cmd(&e, &out, &err, wl);
    ck_assert_int_eq(code, 0);
    snprintf(want, sizeof want,
             "{\"node\":\"localhost\",\"hive_url\":\"%s\",\"hive_running\":false,\"workers\":[]}\n",
             e.h.base);
    ck_assert_str_eq(out, want);
    free(out);
    free(err);
    rbt_keeper_cleanup(&e.k);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}
END_TEST

/* Scenario: A unique beginning of a worker id selects the worker */
START_TEST(test_keeper_cli__a_unique_beginning_of_a_worker_id_selects_the_worker)
{
    env e;
    char a[128], b[128], pre[128], want[1024], *out, *err;
    size_t d = 0;
    int code;

    env_start(&e);
    spawn_idle(&e, a, sizeof a);
    spawn_idle(&e, b, sizeof b);
    while (a[d] && a[d] == b[d])
        d++;
    ck_assert_int_gt(d, 0);
    snprintf(pre, sizeof pre, "%.*s", (int)d + 1, a); /* the shortest beginning only a has */
    rbt_keeper_env(&e.k, "RBEE_HIVE_PORT=%d", e.h.port);

    const char *health[] = {"workers", "health", "--id", pre, NULL};
    code = run_cmd(&e, &out, &err, health);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    ck_assert_msg(strncmp(out, a, strlen(a)) == 0 && rbt_count(out, "\n") == 1, "stdout:\n%s", out);
    free(out);
    free(err);

    /* both ids begin with "worker-": one line naming both, exit 1, nothing stopped */
    const char *amb[] = {"workers", "shutdown", "--id", "worker-", NULL};
    code = run_cmd(&e, &out, &err, amb);
    ck_assert_int_eq(code, 1);
    ck_assert_str_eq(out, "");
    snprintf(want, sizeof want,
             "Error: Worker id 'worker-' matches 2 workers on localhost: %s, %s\n", a, b);
    if (strcmp(err, want) != 0) /* the hive lists them in its own order */
        snprintf(want, sizeof want,
                 "Error: Worker id 'worker-' matches 2 workers on localhost: %s, %s\n", b, a);
    ck_assert_str_eq(err, want);
    free(out);
    free(err);
    ck_assert(rbt_hive_wait_worker(&e.h, a, "idle", 1000, NULL));

    const char *none[] = {"workers", "health", "--id", "nobody", NULL};
    code = run_cmd(&e, &out, &err, none);
    ck_assert_int_eq(code, 1);
    ck_assert_str_eq(err, "Error: No worker nobody on localhost (rbee workers list --node "
                          "localhost)\n");
    free(out);
    free(err);

    const char *stop[] = {"workers", "shutdown", "--id", pre, NULL};
    code = run_cmd(&e, &out, &err, stop);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    snprintf(want, sizeof want, "Worker %s stopped\n", a);
    ck_assert_str_eq(out, want);
    free(out);
    free(err);
    ck_assert(rbt_hive_wait_worker(&e.h, a, NULL, 1000, NULL));
    ck_assert(rbt_hive_wait_worker(&e.h, b, "idle", 1000, NULL));
    env_stop(&e);
}
END_TEST

/* The number of cached workers of hive_url for e's model. */
static size_t cached(env *e, const char *hive_url, kpr_cached_worker *w)
{
    kpr_store *st;
    kpr_cached_worker ws[4];
    char err[256];
    size_t n = 0;

    ck_assert_int_eq(kpr_store_open(e->k.home, &st, err, sizeof err), RB_OK);
    ck_assert_int_eq(kpr_worker_find(st, hive_url, e->model, "cpu", 0, ws, 4, &n), RB_OK);
    if (n && w)
        *w = ws[0];
    kpr_store_close(st);
    return n;
}

/* Moves the cached row w to hive_url. */
static void move_cached(env *e, kpr_cached_worker *w, const char *hive_url)
{
    kpr_store *st;
    char err[256];

    ck_assert_int_eq(kpr_store_open(e->k.home, &st, err, sizeof err), RB_OK);
    snprintf(w->hive_url, sizeof w->hive_url, "%s", hive_url);
    ck_assert_int_eq(kpr_worker_put(st, w), RB_OK);
    kpr_store_close(st);
}

/* Scenario: A cached worker stays cached until its own hive says it is gone */
START_TEST(test_keeper_cli__a_cached_worker_stays_cached_until_its_own_hive_says_it_is_gone)
{
    env e;
    rbt_files files;
    kpr_cached_worker w;
    char want[4600], other[64], nobody[64], shouted[96], sid[64], *out, *err;
    int code;

    env_start_token(&e, "right-token");
    rbt_keeper_env(&e.k, "RBEE_API_TOKEN=right-token");
    const char *cold[] = {"infer", "--hive",       e.h.base, "--model", e.model,
                          "x",     "--max-tokens", "2",      NULL};
    code = run_cmd(&e, &out, &err, cold);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    free(out);
    free(err);
    ck_assert_int_eq(cached(&e, e.h.base, &w), 1);

    /* a wrong token: the hive refuses, so it has not said the worker is gone */
    rbt_keeper_env(&e.k, "RBEE_API_TOKEN=wrong-token");
    snprintf(shouted, sizeof shouted, "http://LOCALHOST:%d/", e.h.port);
    const char *wrong[] = {"infer", "--hive",       shouted, "--model", e.model,
                           "x",     "--max-tokens", "2",     NULL};
    code = run_cmd(&e, &out, &err, wrong);
    ck_assert_int_eq(code, 1);
    snprintf(want, sizeof want,
             "[Phase 1] Worker cache: cached worker %s not reused (kept in the cache): the hive "
             "at %s refused the keeper's token (401 INVALID_API_KEY)\n",
             kpr_short_id(w.id, sid, sizeof sid), e.h.base);
    ck_assert_msg(strstr(err, want), "stderr does not have\n%s:\n%s", want, err);
    free(out);
    free(err);
    ck_assert_int_eq(cached(&e, e.h.base, NULL), 1);

    /* another program answers on the cached hive's URL */
    rbt_files_init(&files);
    rbt_files_start(&files, NULL);
    snprintf(other, sizeof other, "%s", files.base);
    move_cached(&e, &w, other);
    const char *prog[] = {"infer", "--hive",       other, "--model", e.model,
                          "x",     "--max-tokens", "2",   NULL};
    code = run_cmd(&e, &out, &err, prog);
    ck_assert_int_eq(code, 1);
    snprintf(want, sizeof want,
             "[Phase 1] Worker cache: cached worker %s not reused (kept in the cache): the "
             "program at %s does not answer as a hive (404)\n",
             kpr_short_id(w.id, sid, sizeof sid), other);
    ck_assert_msg(strstr(err, want), "stderr does not have\n%s:\n%s", want, err);
    free(out);
    free(err);
    rbt_files_stop(&files);
    ck_assert_int_eq(cached(&e, other, NULL), 1);

    /* nobody answers there */
    snprintf(nobody, sizeof nobody, "http://127.0.0.1:%d", rbt_free_port());
    move_cached(&e, &w, nobody);
    const char *gone[] = {"infer", "--hive",       nobody, "--model", e.model,
                          "x",     "--max-tokens", "2",    NULL};
    code = run_cmd(&e, &out, &err, gone);
    ck_assert_int_eq(code, 1);
    snprintf(want, sizeof want,
             "[Phase 1] Worker cache: cached worker %s not reused (kept in the cache): cannot "
             "reach the hive at %s: ",
             kpr_short_id(w.id, sid, sizeof sid), nobody);
    ck_assert_msg(strstr(err, want), "stderr does not have\n%s:\n%s", want, err);
    free(out);
    free(err);
    ck_assert_int_eq(cached(&e, nobody, NULL), 1);

    /* back at its hive, with the right token and another spelling of its URL: warm */
    move_cached(&e, &w, e.h.base);
    rbt_keeper_env(&e.k, "RBEE_API_TOKEN=right-token");
    code = run_cmd(&e, &out, &err, wrong);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    snprintf(want, sizeof want,
             "[Phase 1] Worker cache: worker %s on %s is idle: warm start (phases 2 to 7 "
             "skipped)\n",
             kpr_short_id(w.id, sid, sizeof sid), shouted);
    ck_assert_msg(strstr(err, want), "stderr does not have\n%s:\n%s", want, err);
    free(out);
    free(err);

    /* the hive stops it: now the hive says it is gone, and the entry goes */
    char body[256];
    json_t *r = NULL;
    snprintf(body, sizeof body, "{\"worker_id\":\"%s\"}", w.id);
    ck_assert_int_eq(rbt_hive_json(&e.h, "POST", "/v1/workers/shutdown", body, &r), 200);
    json_decref(r);
    ck_assert(rbt_hive_wait_worker(&e.h, w.id, NULL, rbt_scaled(20000), NULL));
    code = run_cmd(&e, &out, &err, cold);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    snprintf(want, sizeof want, "[Phase 1] Worker cache: the cached worker %s is gone from %s",
             kpr_short_id(w.id, sid, sizeof sid), e.h.base);
    ck_assert_msg(strstr(err, want), "stderr does not have\n%s:\n%s", want, err);
    free(out);
    free(err);
    ck_assert_int_eq(cached(&e, e.h.base, &w), 1); /* the new worker */
    env_stop(&e);
}
END_TEST

/* A hub (mock-files with org/repo/model.gguf, 3 MiB, under scenario) and a hive that downloads
 * from it with 200 ms between attempts; endpoint holds the hive's HF_ENDPOINT entry. */
static void hub_env_start(env *e, rbt_files *files, char *endpoint, size_t len,
                          const char *scenario)
{
    rbt_hive_opts o = rbt_hive_opts_default();
    char path[4400];

    rbt_files_init(files);
    snprintf(path, sizeof path, "%s/org/repo", files->root);
    ck_assert_int_eq(rb_mkdir_p(path), RB_OK);
    snprintf(path, sizeof path, "%s/org/repo/model.gguf", files->root);
    rbt_write_fake_gguf(path, 3 << 20);
    rbt_files_start(files, scenario);
    memset(e, 0, sizeof(*e));
    rbt_hive_init(&e->h);
    snprintf(endpoint, len, "HF_ENDPOINT=%s", files->base);
    o.env[0] = endpoint;
    o.env[1] = "RBEE_DOWNLOAD_BACKOFF_MS=200";
    rbt_hive_start(&e->h, &o);
    rbt_keeper_init(&e->k, NULL);
}

/* Scenario: Download retries are shown as they happen and a failure that is not retried says so */
START_TEST(
    test_keeper_cli__download_retries_are_shown_as_they_happen_and_a_failure_that_is_not_retried_says_so)
{
    rbt_files files;
    env e;
    char endpoint[160], *out, *err;
    const char *a1, *a2, *done;
    int code;

    hub_env_start(&e, &files, endpoint, sizeof endpoint,
                  "{\"faults\":[{\"path\":\"/org/repo/resolve/main/model.gguf\",\"status\":503,"
                  "\"times\":2}]}");
    const char *dl[] = {"models", "download", "--hive", e.h.base, "hf:org/repo/model.gguf", NULL};
    code = run_cmd(&e, &out, &err, dl);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    a1 = strstr(err, "Download attempt 1/6 failed: ");
    a2 = strstr(err, "Download attempt 2/6 failed: ");
    done = strstr(err, "Model: downloaded hf:org/repo/model.gguf");
    ck_assert_msg(a1 && a2 && done && a1 < a2 && a2 < done, "%s", err);
    ck_assert_msg(strstr(a1, "503") != NULL && strstr(a1, "retrying in 200 ms") != NULL, "%s", err);
    ck_assert_msg(strstr(a2, "retrying in 400 ms") != NULL, "%s", err);
    ck_assert_int_eq(rbt_count(err, "Download attempt"), 2);
    free(out);
    free(err);
    env_stop(&e);
    rbt_files_stop(&files);

    hub_env_start(&e, &files, endpoint, sizeof endpoint,
                  "{\"faults\":[{\"path\":\"/org/repo/resolve/main/model.gguf\",\"status\":404,"
                  "\"times\":-1}]}");
    const char *dl2[] = {"models", "download", "--hive", e.h.base, "hf:org/repo/model.gguf", NULL};
    code = run_cmd(&e, &out, &err, dl2);
    ck_assert_int_eq(code, 1);
    ck_assert_msg(strstr(err, "retrying") == NULL, "%s", err);
    ck_assert_msg(strstr(err, "This failure is not retried") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "The hive tried") == NULL, "%s", err);
    free(out);
    free(err);
    env_stop(&e);
    rbt_files_stop(&files);
}
END_TEST

/* Scenario: rbee models rm removes a downloaded model */
START_TEST(test_keeper_cli__rbee_models_rm_removes_a_downloaded_model)
{
    rbt_files files;
    env e;
    char path[4400], endpoint[160], want[4600], *out, *err;
    int code;

    hub_env_start(&e, &files, endpoint, sizeof endpoint, NULL);
    const char *dl[] = {"models", "download", "--hive", e.h.base, "hf:org/repo/model.gguf", NULL};
    const char *rm[] = {"models", "rm", "--hive", e.h.base, "hf:org/repo/model.gguf", NULL};

    code = run_cmd(&e, &out, &err, dl);
    ck_assert_msg(code == 0, "download: exit %d; stderr:\n%s", code, err);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/models/org/repo/model.gguf", e.h.home);
    ck_assert_msg(access(path, F_OK) == 0, "no %s", path);

    code = run_cmd(&e, &out, &err, rm);
    ck_assert_msg(code == 0, "rm: exit %d; stderr:\n%s", code, err);
    snprintf(want, sizeof want, "Removed hf:org/repo/model.gguf from %s (3.1 MB freed: %s)\n",
             e.h.base, path);
    ck_assert_str_eq(out, want);
    ck_assert_int_ne(access(path, F_OK), 0);
    free(out);
    free(err);

    code = run_cmd(&e, &out, &err, rm);
    ck_assert_int_eq(code, 1);
    ck_assert_msg(strstr(err, "MODEL_NOT_FOUND: 'hf:org/repo/model.gguf' is not a downloaded "
                              "model on this hive") != NULL,
                  "%s", err);
    snprintf(want, sizeof want,
             "Suggestion: rbee models list --hive %s shows the downloaded models", e.h.base);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    free(out);
    free(err);
    env_stop(&e);
    rbt_files_stop(&files);
}
END_TEST

/* Scenario: An ambiguous repository lists its GGUF files */
START_TEST(test_keeper_cli__an_ambiguous_repository_lists_its_gguf_files)
{
    rbt_files files;
    env e;
    char endpoint[160], path[4400], *out, *err;
    int code;

    hub_env_start(&e, &files, endpoint, sizeof endpoint, NULL);
    snprintf(path, sizeof path, "%s/org/repo/model.gguf", files.root);
    ck_assert_int_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/org/repo/a.gguf", files.root);
    rbt_write_fake_gguf(path, 4096);
    snprintf(path, sizeof path, "%s/org/repo/b.gguf", files.root);
    rbt_write_fake_gguf(path, 4096);
    const char *dl[] = {"models", "download", "--hive", e.h.base, "hf:org/repo", NULL};
    code = run_cmd(&e, &out, &err, dl);
    ck_assert_int_eq(code, 1);
    ck_assert_msg(strstr(err, "AMBIGUOUS_MODEL_REF") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "\n  hf:org/repo/a.gguf\n  hf:org/repo/b.gguf\n") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "Suggestion: name one of them: --model hf:org/repo --file a.gguf") !=
                      NULL,
                  "%s", err);
    free(out);
    free(err);
    env_stop(&e);
    rbt_files_stop(&files);
}
END_TEST

/* Scenario: A file that is not GGUF is refused at phase 3 with what is wrong with it */
START_TEST(
    test_keeper_cli__a_file_that_is_not_gguf_is_refused_at_phase_3_with_what_is_wrong_with_it)
{
    env e;
    char path[4400], ref[4500], *out, *err;
    FILE *f;
    int code;

    env_start(&e);
    snprintf(path, sizeof path, "%s/models/bad.gguf", e.h.home);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs("# not a model, a README\n", f);
    fclose(f);
    snprintf(ref, sizeof ref, "file:%s", path);
    const char *args[] = {"infer", "--hive", e.h.base, "--model", ref, "x", NULL};
    code = run_cmd(&e, &out, &err, args);
    ck_assert_int_eq(code, 1);
    ck_assert_msg(strstr(err, "could not provide the model: 400 NOT_GGUF: the model file is not a "
                              "usable GGUF model: ") != NULL,
                  "%s", err);
    ck_assert_msg(strstr(err, "GGUF v2 or v3 header") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "[Phase 4]") == NULL && strstr(err, "[Phase 5]") == NULL, "%s", err);
    free(out);
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
    tcase_add_test(tc, test_keeper_cli__lists_and_status_are_json_documents_with_json);
    tcase_add_test(tc, test_keeper_cli__a_unique_beginning_of_a_worker_id_selects_the_worker);
    tcase_add_test(tc, test_keeper_cli__rbee_models_rm_removes_a_downloaded_model);
    tcase_add_test(tc, test_keeper_cli__an_ambiguous_repository_lists_its_gguf_files);
    tcase_add_test(
        tc,
        test_keeper_cli__a_file_that_is_not_gguf_is_refused_at_phase_3_with_what_is_wrong_with_it);
    tcase_add_test(
        tc,
        test_keeper_cli__download_retries_are_shown_as_they_happen_and_a_failure_that_is_not_retried_says_so);
    tcase_add_test(
        tc, test_keeper_cli__a_cached_worker_stays_cached_until_its_own_hive_says_it_is_gone);
    return rbt_run(s);
}
