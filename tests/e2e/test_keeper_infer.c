/*
 * End-to-end tests of spec/keeper_infer.feature: the real rbee, rbee-hive and llm-worker-rbee
 * with the bundled model (mock-worker only where a worker must misbehave, mock-files as the
 * hub, mock-hive for another version). Every rbee run has a deadline and every HTTP call in the
 * helpers a timeout.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"
#include "rbt_keeper.h"

#define RUN_MS 60000
#define PROMPT "In the beginning"

/* The end of a test with a hive: it stops cleanly (exit 0), then both are cleaned up. */
static void finish(rbt_hive *h, rbt_keeper *k)
{
    ck_assert_int_eq(rbt_hive_stop(h), 0);
    rbt_keeper_cleanup(k);
    rbt_hive_cleanup(h);
}

/* 1 when "[Phase 1]" ... "[Phase 8]" all appear in s, in order. */
static int phases_in_order(const char *s)
{
    const char *p = s;
    char tag[16];
    for (int i = 1; i <= 8 && p; i++) {
        snprintf(tag, sizeof tag, "[Phase %d]", i);
        p = strstr(p, tag);
    }
    return p != NULL;
}

static int has_phase(const char *s, int n)
{
    char tag[16];
    snprintf(tag, sizeof tag, "[Phase %d]", n);
    return strstr(s, tag) != NULL;
}

/* The last non-empty line of s, in a static buffer. */
static const char *last_line(const char *s)
{
    static char line[1024];
    const char *end = s + strlen(s), *start;
    while (end > s && end[-1] == '\n')
        end--;
    start = end;
    while (start > s && start[-1] != '\n')
        start--;
    snprintf(line, sizeof line, "%.*s", (int)(end - start), start);
    return line;
}

/* The word after needle in s (up to a space, ')' or newline), in out. */
static int word_after(const char *s, const char *needle, char *out, size_t len)
{
    const char *p = strstr(s, needle);
    size_t n = 0;
    if (p) {
        p += strlen(needle);
        n = strcspn(p, " )\n");
        snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
    }
    return n > 0;
}

/* Waits until the hive lists exactly one worker; its id and pid. */
static int one_worker(rbt_hive *h, char *id, size_t idlen, pid_t *pid, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    int ok = 0;
    do {
        json_t *r = NULL, *ws;
        if (rbt_hive_json(h, "GET", "/v1/workers/list", NULL, &r) == 200) {
            ws = json_object_get(r, "workers");
            ok = json_array_size(ws) == 1;
            if (ok) {
                snprintf(id, idlen, "%s",
                         json_string_value(json_object_get(json_array_get(ws, 0), "id")));
                *pid = (pid_t)json_integer_value(json_object_get(json_array_get(ws, 0), "pid"));
            }
        }
        json_decref(r);
        if (!ok)
            rbt_poll_interval();
    } while (!ok && rbt_ms() < end);
    return ok;
}

/* Polls the running rbee's stdout until it holds n spaces (so at least n tokens: a token holds
 * a space only as its first character). 1 if it did while rbee still ran. */
static int wait_tokens(rbt_keeper *k, int n, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    int ok = 0;
    while (!ok && rbt_ms() < end && rbt_alive(k->pid)) {
        char *out = rbt_keeper_out(k);
        ok = rbt_count(out, " ") >= n;
        free(out);
        if (!ok)
            rbt_poll_interval();
    }
    return ok;
}

/* Scenario: Cold start runs all 8 phases and streams tokens */
START_TEST(test_keeper_infer__cold_start_runs_all_8_phases_and_streams_tokens)
{
    const char *args[] = {"infer", "--prompt",      PROMPT, "--max-tokens",
                          "200",   "--temperature", "0",    NULL};
    char home_kv[4200], *err, *out;
    long last = -1, final;
    int growths = 0, code;
    rbt_keeper k;

    rbt_keeper_init(&k, NULL);
    rbt_keeper_start(&k, args);
    /* Tokens reach stdout while the worker generates: the file grows in many steps. */
    for (int64_t end = rbt_ms() + RUN_MS; rbt_alive(k.pid) && rbt_ms() < end;) {
        long size = rbt_keeper_out_size(&k);
        if (size > 0 && size != last)
            growths++;
        last = size;
        rbt_poll_interval();
    }
    code = rbt_keeper_wait(&k, RUN_MS);
    final = rbt_keeper_out_size(&k);
    err = rbt_keeper_err(&k);
    out = rbt_keeper_out(&k);
    printf("cold start: %lld ms, stdout grew in %d steps to %ld bytes\n",
           (long long)rbt_keeper_ms(&k), growths, final);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    ck_assert_msg(phases_in_order(err), "phases missing or out of order:\n%s", err);
    ck_assert_ptr_nonnull(strstr(err, "ephemeral local hive"));
    ck_assert_msg(strncmp(last_line(err), "[Summary] ", 10) == 0, "last line: %s", last_line(err));
    ck_assert_ptr_nonnull(strstr(last_line(err), "200 tokens in "));
    ck_assert_ptr_nonnull(strstr(last_line(err), "tokens/s"));
    ck_assert_int_gt(final, 200);
    ck_assert_msg(growths >= 3, "stdout grew in %d steps only: tokens were not streamed", growths);
    ck_assert_ptr_null(strstr(out, "[Phase"));
    /* Ephemeral mode: nothing rbee started is left. */
    snprintf(home_kv, sizeof home_kv, "RBEE_HOME=%s", k.home);
    ck_assert_int_eq(rbt_procs_with_env(home_kv), 0);
    ck_assert(!rbt_port_open(k.hive_port));
    ck_assert(!rbt_port_open(k.worker_port_base));
    free(err);
    free(out);
    rbt_keeper_cleanup(&k);
}
END_TEST

/* Scenario: Warm start reuses the idle worker */
START_TEST(test_keeper_infer__warm_start_reuses_the_idle_worker)
{
    const char *args[] = {"infer", "--prompt", PROMPT, "--max-tokens", "8", NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    rbt_keeper k;
    char *err, *metrics;

    rbt_hive_start_real(&h, &o);
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, args), 0);
    ck_assert(rbt_keeper_err_has(&k, "[Phase 5] Spawn"));
    ck_assert(rbt_keeper_err_has(&k, "persistent"));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, args), 0);
    err = rbt_keeper_err(&k);
    ck_assert_msg(strstr(err, "warm start") != NULL, "%s", err);
    for (int p = 2; p <= 7; p++)
        ck_assert_msg(!has_phase(err, p), "phase %d ran on a warm start:\n%s", p, err);
    ck_assert(has_phase(err, 8));
    ck_assert(rbt_keeper_out_size(&k) > 0);
    metrics = rbt_get(h.base, "/metrics");
    ck_assert_double_eq(rbt_metric(metrics, "rbee_hive_workers_spawned_total"), 1);
    free(metrics);
    free(err);
    {
        /* --max-tokens beyond what the bundled model's 512 context leaves: said first */
        const char *more[] = {"infer", "--prompt",      PROMPT, "--max-tokens",
                              "600",   "--temperature", "0",    NULL};
        ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, more), 0);
        err = rbt_keeper_err(&k);
        ck_assert_msg(strstr(err, "Warning: max_tokens 600 is more than the") &&
                          strstr(err, "stop: CONTEXT_FULL") &&
                          strstr(err, "Warning:") < strstr(err, "[Summary]"),
                      "%s", err);
        free(err);
    }
    finish(&h, &k);
}
END_TEST

/* Scenario: A catalog hit skips the download */
START_TEST(test_keeper_infer__a_catalog_hit_skips_the_download)
{
    const char *args[] = {"infer",    "--model", "hf:test/kjv/model.gguf",
                          "--prompt", PROMPT,    "--max-tokens",
                          "8",        NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    char env_hf[128];
    rbt_files f;
    rbt_hive h;
    rbt_keeper k;
    json_t *reqs;
    size_t before;
    int in_catalog = 0;
    int64_t end;

    rbt_files_init(&f);
    rbt_keeper_serve_model(f.root);
    rbt_files_start(&f, NULL);
    snprintf(env_hf, sizeof env_hf, "HF_ENDPOINT=%s", f.base);
    o.env[0] = env_hf;
    rbt_hive_start_real(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/models/download",
                                   "{\"model_ref\":\"hf:test/kjv/model.gguf\"}", NULL),
                     200);
    for (end = rbt_ms() + 30000; !in_catalog && rbt_ms() < end;) {
        json_t *m = NULL;
        rbt_hive_json(&h, "GET", "/v1/models", NULL, &m);
        in_catalog = json_array_size(json_object_get(m, "models")) == 1;
        json_decref(m);
        if (!in_catalog)
            rbt_poll_interval();
    }
    ck_assert_msg(in_catalog, "the download did not reach the catalog (%s)", h.log);
    reqs = rbt_files_requests(&f);
    before = json_array_size(reqs);
    json_decref(reqs);

    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, args), 0);
    ck_assert(rbt_keeper_err_has(&k, "[Phase 3] Model: hf:test/kjv/model.gguf is already "
                                     "available"));
    ck_assert(rbt_keeper_err_has(&k, "no download needed"));
    ck_assert(!rbt_keeper_err_has(&k, "downloading"));
    reqs = rbt_files_requests(&f);
    ck_assert_int_eq(json_array_size(reqs), before);
    json_decref(reqs);
    ck_assert(rbt_keeper_out_size(&k) > 0);
    finish(&h, &k);
    rbt_files_stop(&f);
}
END_TEST

/* Scenario: A download shows progress */
START_TEST(test_keeper_infer__a_download_shows_progress)
{
    const char *args[] = {"infer",    "--model", "hf:test/kjv/model.gguf",
                          "--prompt", PROMPT,    "--max-tokens",
                          "8",        NULL};
    rbt_files f;
    rbt_keeper k;
    char *err;
    const char *p, *tokens_start;
    int code;

    rbt_files_init(&f);
    rbt_keeper_serve_model(f.root);
    rbt_files_start(&f, "{\"rate_bytes_per_s\":3000000}");
    rbt_keeper_init(&k, NULL);
    rbt_keeper_env(&k, "HF_ENDPOINT=%s", f.base);
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "[Phase 3] Model: downloading hf:test/kjv/model.gguf"));
    printf("progress lines: %d\n", rbt_count(err, "[Phase 3] downloading: "));
    ck_assert_msg(rbt_count(err, "[Phase 3] downloading: ") >= 3, "too few progress lines:\n%s",
                  err);
    ck_assert_ptr_nonnull(strstr(err, "% ("));
    ck_assert_ptr_nonnull(strstr(err, "MB/s"));
    p = strstr(err, "[Phase 3] Model: downloaded hf:test/kjv/model.gguf");
    ck_assert_ptr_nonnull(p);
    /* The tokens come after the download. */
    tokens_start = strstr(err, "[Phase 8]");
    ck_assert_ptr_nonnull(tokens_start);
    ck_assert(tokens_start > p);
    ck_assert(rbt_keeper_out_size(&k) > 0);
    free(err);
    rbt_keeper_cleanup(&k);
    rbt_files_stop(&f);
}
END_TEST

/* Scenario: EC1 the hive is unreachable */
START_TEST(test_keeper_infer__ec1_the_hive_is_unreachable)
{
    char url[64];
    const char *args[] = {"infer", "--hive", url, "--prompt", PROMPT, NULL};
    rbt_keeper k;
    char *err;
    int code;

    snprintf(url, sizeof url, "http://127.0.0.1:%d", rbt_free_port());
    rbt_keeper_init(&k, NULL);
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Cannot connect to "));
    ck_assert_ptr_nonnull(strstr(err, url));
    ck_assert_ptr_nonnull(strstr(err, "after 3 attempts"));
    ck_assert_int_eq(rbt_count(err, "retrying in"), 2);
    ck_assert_ptr_nonnull(strstr(err, "retrying in 1 s"));
    ck_assert_ptr_nonnull(strstr(err, "retrying in 2 s"));
    ck_assert_ptr_nonnull(strstr(err, "Suggestion: "));
    ck_assert_int_ge(rbt_keeper_ms(&k), 3000); /* the pauses of 1 and 2 s */
    ck_assert(!has_phase(err, 3));
    free(err);
    rbt_keeper_cleanup(&k);
}
END_TEST

/* Scenario: EC2 the download fails */
START_TEST(test_keeper_infer__ec2_the_download_fails)
{
    const char *args[] = {"infer",    "--model", "hf:test/broken/model.gguf",
                          "--prompt", PROMPT,    NULL};
    rbt_files f;
    rbt_keeper k;
    char *err;
    int code;

    rbt_files_init(&f);
    rbt_files_start(&f, "{\"faults\":[{\"path\":\"*\",\"status\":500,\"times\":-1}]}");
    rbt_keeper_init(&k, NULL);
    rbt_keeper_env(&k, "HF_ENDPOINT=%s", f.base);
    rbt_keeper_env(&k, "RBEE_DOWNLOAD_BACKOFF_MS=10");
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "DOWNLOAD_FAILED"));
    ck_assert_ptr_nonnull(strstr(err, "500")); /* the last error the hive saw */
    ck_assert_ptr_nonnull(strstr(err, "Suggestion: "));
    ck_assert(!has_phase(err, 5));
    free(err);
    rbt_keeper_cleanup(&k);
    rbt_files_stop(&f);
}
END_TEST

/* Scenario: EC3 not enough RAM */
START_TEST(test_keeper_infer__ec3_not_enough_ram)
{
    const char *args[] = {"infer", "--prompt", PROMPT, NULL};
    rbt_keeper k;
    char *err;
    int code;

    rbt_keeper_init(&k, NULL);
    rbt_keeper_env(&k, "RBEE_HIVE_RAM_LIMIT_MB=1");
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Not enough RAM"));
    ck_assert_ptr_nonnull(strstr(err, "Required: "));
    ck_assert_ptr_nonnull(strstr(err, "Available: 1 MB"));
    ck_assert_ptr_nonnull(strstr(err, "smaller quantization"));
    /* the bundled model: 6 layers of 4 KV heads of 32 at its 512-token context, F16 */
    ck_assert_msg(strstr(err, "Estimate: weights 7 MB + KV cache 2 MB (1 x 512 tokens, f16) + "
                              "buffers ") != NULL,
                  "%s", err);
    ck_assert_int_eq(rbt_keeper_out_size(&k), 0);
    free(err);
    rbt_keeper_cleanup(&k);
}
END_TEST

/* Scenario: EC4 the worker dies mid-stream */
START_TEST(test_keeper_infer__ec4_the_worker_dies_mid_stream)
{
    const char *args[] = {"infer", "--prompt",      PROMPT, "--max-tokens",
                          "2000",  "--temperature", "0",    NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    rbt_keeper k;
    char id[128], path[4400], *err, *out, *saved;
    pid_t wpid;
    long n = -1;
    int code;

    rbt_hive_start_real(&h, &o);
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    rbt_keeper_start(&k, args);
    ck_assert_msg(one_worker(&h, id, sizeof id, &wpid, 30000), "no worker (%s)", h.log);
    ck_assert_msg(wait_tokens(&k, 5, 30000), "no 5 tokens while rbee ran");
    kill(wpid, SIGKILL);
    code = rbt_keeper_wait(&k, RUN_MS);
    err = rbt_keeper_err(&k);
    out = rbt_keeper_out(&k);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "SSE stream closed unexpectedly"));
    ck_assert_ptr_nonnull(strstr(err, "Tokens generated: "));
    n = atol(strstr(err, "Tokens generated: ") + 18);
    ck_assert_ptr_nonnull(strstr(err, " / 2000"));
    ck_assert_int_ge(n, 5);
    ck_assert_int_lt(n, 2000);
    ck_assert(word_after(err, "Partial output saved to ", path, sizeof path));
    ck_assert_int_eq(strncmp(path, k.home, strlen(k.home)), 0);
    saved = rbt_slurp(path);
    ck_assert_ptr_nonnull(saved);
    ck_assert_int_gt(strlen(saved), 0);
    /* The file holds exactly what was printed (stdout ends with the newline rbee adds). */
    ck_assert_int_eq(strncmp(out, saved, strlen(saved)), 0);
    ck_assert_msg(rbt_hive_wait_worker(&h, id, NULL, 10000, NULL), "the hive kept %s", id);
    free(saved);
    free(out);
    free(err);
    finish(&h, &k);
}
END_TEST

/* Scenario: EC5 Ctrl+C cancels the job */
START_TEST(test_keeper_infer__ec5_ctrl_c_cancels_the_job)
{
    const char *args[] = {"infer", "--prompt",      PROMPT, "--max-tokens",
                          "2000",  "--temperature", "0",    NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    rbt_keeper k;
    char id[128], job[128], wlog[4400], line[256], *err;
    pid_t wpid;
    int64_t t0, took;
    int code, ok = 0;

    rbt_hive_start_real(&h, &o);
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    rbt_keeper_start(&k, args);
    ck_assert_msg(one_worker(&h, id, sizeof id, &wpid, 30000), "no worker (%s)", h.log);
    ck_assert_msg(wait_tokens(&k, 5, 30000), "no 5 tokens while rbee ran");
    t0 = rbt_ms();
    kill(k.pid, SIGINT);
    code = rbt_keeper_wait(&k, 10000);
    took = rbt_ms() - t0;
    err = rbt_keeper_err(&k);
    printf("Ctrl+C to exit: %lld ms\n", (long long)took);
    ck_assert_msg(code == 130, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Canceled."));
    ck_assert_ptr_nonnull(strstr(err, "canceled on the worker"));
    ck_assert_int_lt(took, 5000);
    ck_assert_ptr_null(strstr(err, "[Summary]"));
    /* The worker got the DELETE for this job. */
    ck_assert(word_after(err, "Inference: job ", job, sizeof job));
    snprintf(wlog, sizeof wlog, "%s/logs/%s.log", h.home, id);
    snprintf(line, sizeof line, "job %s cancel requested", job);
    for (int64_t end = rbt_ms() + 5000; !ok && rbt_ms() < end;) {
        ok = rbt_file_contains(wlog, line);
        if (!ok)
            rbt_poll_interval();
    }
    ck_assert_msg(ok, "no '%s' in %s", line, wlog);
    free(err);
    finish(&h, &k);
}
END_TEST

/* Scenario: EC6 the worker stays busy */
START_TEST(test_keeper_infer__ec6_the_worker_stays_busy)
{
    const char *warm[] = {"infer", "--prompt", PROMPT, "--max-tokens", "4", NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    const char *hdr[] = {"Content-Type: application/json", NULL};
    char id[128], url[256], busy[300], *err;
    json_t *w = NULL;
    rbt_hive h;
    rbt_keeper k;
    pid_t wpid;
    int code;

    /* The race EC6 is about: the hive lists the worker idle, but by the time the keeper's job
     * arrives another client has taken the slot. mock-worker stands in for the worker: its
     * health and heartbeats keep saying idle while POST /mock/busy makes it refuse jobs. */
    rbt_hive_opts_bundled(&o);
    rbt_hive_start(&h, &o);
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, warm), 0);
    ck_assert(one_worker(&h, id, sizeof id, &wpid, 10000));
    ck_assert(rbt_hive_wait_worker(&h, id, "idle", 10000, &w));
    snprintf(url, sizeof url, "%s", json_string_value(json_object_get(w, "url")));
    json_decref(w);
    snprintf(busy, sizeof busy, "%s/mock/busy", url);
    ck_assert_int_eq(rbt_http("POST", busy, hdr, "{\"busy\":true}", 5000, NULL, NULL), 200);

    code = rbt_keeper_run(&k, RUN_MS, warm);
    err = rbt_keeper_err(&k);
    printf("busy run: %lld ms\n", (long long)rbt_keeper_ms(&k));
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "warm start"));
    ck_assert_ptr_nonnull(strstr(err, "is busy (ALL_SLOTS_BUSY: 1 of 1 slots busy); retrying in "
                                      "1 s (retry 1 of 3)"));
    ck_assert_ptr_nonnull(strstr(err, "retrying in 2 s (retry 2 of 3)"));
    ck_assert_ptr_nonnull(strstr(err, "retrying in 4 s (retry 3 of 3)"));
    ck_assert_ptr_nonnull(strstr(err, "still busy after 3 retries"));
    ck_assert_ptr_nonnull(strstr(err, "Suggestion: try again"));
    ck_assert_int_ge(rbt_keeper_ms(&k), 7000);
    free(err);
    finish(&h, &k);
}
END_TEST

/* Scenario: EC7 the worker never becomes ready */
START_TEST(test_keeper_infer__ec7_the_worker_never_becomes_ready)
{
    const char *args[] = {"infer", "--prompt", PROMPT, "--ready-timeout", "3", NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    rbt_keeper k;
    char *err;
    int code;

    o.env[0] = "MOCK_WORKER_SCENARIO={\"never_ready\":true,\"load_ms\":300,\"layers\":4}";
    rbt_hive_opts_bundled(&o);
    rbt_hive_start(&h, &o); /* mock-worker */
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    printf("EC7 run: %lld ms\n", (long long)rbt_keeper_ms(&k));
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Model loading timeout"));
    ck_assert_ptr_nonnull(strstr(err, "not ready after 3 s"));
    ck_assert_ptr_nonnull(strstr(err, "Last known progress: 4/4 layers loaded"));
    ck_assert_ptr_nonnull(strstr(err, "Suggestion: give it more time with --ready-timeout"));
    ck_assert_int_ge(rbt_keeper_ms(&k), 3000);
    ck_assert_int_lt(rbt_keeper_ms(&k), 9000);
    ck_assert(!has_phase(err, 8));
    free(err);
    finish(&h, &k);
}
END_TEST

/* Scenario: EC8 the hive reports another version */
START_TEST(test_keeper_infer__ec8_the_hive_reports_another_version)
{
    char dir[4096], log[4200], port[16], base[64], url[128], bin[4096];
    const char *args[] = {"infer", "--hive", base, "--prompt", PROMPT, NULL};
    char *argv[] = {bin, "--port", port, "--claim-version", "9.9.9", NULL};
    rbt_keeper k;
    char *err;
    pid_t mock;
    int code;

    rbt_tmpdir(dir);
    snprintf(log, sizeof log, "%s/mock-hive.log", dir);
    snprintf(bin, sizeof bin, "%s", rbt_bin("mock-hive"));
    snprintf(port, sizeof port, "%d", rbt_free_port());
    snprintf(base, sizeof base, "http://127.0.0.1:%s", port);
    snprintf(url, sizeof url, "%s/v1/health", base);
    mock = rbt_spawn(argv, NULL, log);
    ck_assert(rbt_wait_http(url, 200, 10000));
    rbt_keeper_init(&k, dir);
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Version mismatch: rbee is version " RB_VERSION));
    ck_assert_ptr_nonnull(strstr(err, "is version 9.9.9"));
    ck_assert_ptr_nonnull(strstr(err, "Suggestion: upgrade"));
    ck_assert_ptr_nonnull(strstr(err, "git pull"));
    free(err);
    kill(mock, SIGTERM);
    rbt_wait_exit(mock, 5000, NULL);
    rbt_keeper_cleanup(&k);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: EC9 a wrong API key */
START_TEST(test_keeper_infer__ec9_a_wrong_api_key)
{
    const char *args[] = {"infer", "--prompt", PROMPT, NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    rbt_keeper k;
    char *err;
    int code;

    o.token = "right";
    rbt_hive_start(&h, &o);
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    rbt_keeper_env(&k, "RBEE_API_TOKEN=wrong");
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Authentication failed"));
    ck_assert_ptr_nonnull(strstr(err, "INVALID_API_KEY"));
    ck_assert_ptr_nonnull(strstr(err, "the RBEE_API_TOKEN environment variable"));
    ck_assert_ptr_nonnull(strstr(err, "config.json"));
    ck_assert_ptr_null(strstr(err, "wrong")); /* the token itself is never printed */
    ck_assert(!has_phase(err, 3));
    free(err);
    finish(&h, &k);
}
END_TEST

/* Scenario: EC10 an idle worker is shut down and the next run is a cold start */
START_TEST(test_keeper_infer__ec10_an_idle_worker_is_shut_down_and_the_next_run_is_a_cold_start)
{
    const char *args[] = {"infer", "--prompt", PROMPT, "--max-tokens", "8", NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    rbt_hive h;
    rbt_keeper k;
    char id[128], gone[256], *err;
    pid_t wpid;

    o.idle_timeout = "2";
    rbt_hive_start_real(&h, &o);
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, args), 0);
    ck_assert(!rbt_keeper_err_has(&k, "is gone"));
    ck_assert(one_worker(&h, id, sizeof id, &wpid, 10000));
    ck_assert_msg(rbt_hive_wait_worker(&h, id, NULL, 15000, NULL), "idle worker not stopped");
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, args), 0);
    err = rbt_keeper_err(&k);
    /* phase lines show worker-<first 8 of the uuid> */
    snprintf(gone, sizeof gone, "the cached worker %.15s is gone from localhost", id);
    ck_assert_msg(strstr(err, gone) != NULL, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "cold start"));
    ck_assert_msg(phases_in_order(err), "not a cold start:\n%s", err);
    ck_assert(rbt_keeper_out_size(&k) > 0);
    free(err);
    finish(&h, &k);
}
END_TEST

/* Scenario: EC11 the backend is not on the node */
START_TEST(test_keeper_infer__ec11_the_backend_is_not_on_the_node)
{
    const char *args[] = {"infer", "--prompt", PROMPT, "--backend", "cuda", NULL};
    rbt_keeper k;
    char *err;
    int code;

    rbt_keeper_init(&k, NULL);
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Backend unavailable"));
    ck_assert_ptr_nonnull(strstr(err, "requested cuda"));
    ck_assert_ptr_nonnull(strstr(err, "available: cpu"));
    ck_assert(!has_phase(err, 5));
    free(err);
    rbt_keeper_cleanup(&k);
}
END_TEST

/* Scenario: JSON output prints one object per event */
START_TEST(test_keeper_infer__json_output_prints_one_object_per_event)
{
    const char *args[] = {"infer", "--prompt", PROMPT, "--max-tokens", "8", "--json", NULL};
    rbt_keeper k;
    char *out, *err, *save = NULL;
    int phases = 0, tokens = 0, lines = 0, summary_last = 0;

    rbt_keeper_init(&k, NULL);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, args), 0);
    out = rbt_keeper_out(&k);
    err = rbt_keeper_err(&k);
    ck_assert_msg(err[0] == '\0', "stderr is not empty: %s", err);
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *ev = json_loads(line, 0, NULL);
        const char *type;
        ck_assert_msg(json_is_object(ev), "not a JSON object: %s", line);
        type = json_string_value(json_object_get(ev, "event"));
        ck_assert_ptr_nonnull(type);
        phases += strcmp(type, "phase") == 0;
        if (strcmp(type, "token") == 0) {
            ck_assert_int_eq(json_integer_value(json_object_get(ev, "i")), tokens);
            ck_assert(json_is_string(json_object_get(ev, "t")));
            tokens++;
        }
        summary_last =
            strcmp(type, "summary") == 0 && json_integer_value(json_object_get(ev, "tokens")) == 8;
        lines++;
        json_decref(ev);
    }
    ck_assert_int_ge(phases, 8);
    ck_assert_int_ge(tokens, 1);
    ck_assert_int_le(tokens, 8);
    ck_assert(summary_last);
    free(out);
    free(err);
    rbt_keeper_cleanup(&k);
}
END_TEST

/* Scenario: Bad arguments give a one-line error */
START_TEST(test_keeper_infer__bad_arguments_give_a_one_line_error)
{
    const char *args[] = {"infer", "--prompt", PROMPT, "--max-tokens", "zero", NULL};
    const char *args2[] = {"infer", "--max-tokens", "8", NULL};
    rbt_keeper k;
    char *err;

    rbt_keeper_init(&k, NULL);
    ck_assert_int_eq(rbt_keeper_run(&k, 10000, args), 1);
    err = rbt_keeper_err(&k);
    ck_assert_int_eq(rbt_count(err, "\n"), 1);
    ck_assert_ptr_nonnull(strstr(err, "--max-tokens"));
    ck_assert_ptr_nonnull(strstr(err, "'zero'"));
    ck_assert_int_eq(rbt_keeper_out_size(&k), 0);
    free(err);
    ck_assert_int_eq(rbt_keeper_run(&k, 10000, args2), 1);
    err = rbt_keeper_err(&k);
    ck_assert_int_eq(rbt_count(err, "\n"), 1);
    ck_assert_ptr_nonnull(strstr(err, "--prompt is required"));
    free(err);
    rbt_keeper_cleanup(&k);
}
END_TEST

static void reap(void)
{
    rbt_keeper_reap_marked();
}

/* Scenario: A file model in any folder runs through an ephemeral hive */
START_TEST(test_keeper_infer__a_file_model_in_any_folder_runs_through_an_ephemeral_hive)
{
    char dir[4096], path[4200], ref[4300], *err = NULL, *data = NULL;
    size_t len = 0;
    rbt_keeper k;
    int code;

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/my model.gguf", dir);
    ck_assert_int_eq(rb_read_file(rbt_model_q8(), 64 << 20, &data, &len), RB_OK);
    ck_assert_int_eq(rb_write_file_atomic(path, data, len), RB_OK);
    free(data);
    snprintf(ref, sizeof ref, "file:%s", path);
    const char *args[] = {"infer", "--model",       ref, "--prompt", PROMPT, "--max-tokens",
                          "8",     "--temperature", "0", NULL};
    rbt_keeper_init(&k, NULL);
    code = rbt_keeper_run(&k, RUN_MS, args);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 0, "exit %d; stderr:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "ephemeral local hive"));
    ck_assert_ptr_nonnull(strstr(last_line(err), "8 tokens in "));
    free(err);
    rbt_keeper_cleanup(&k);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keeper_infer");
    TCase *tc;

    rbt_keeper_mark();
    tc = rbt_tcase(s, "flow", 120);
    tcase_add_unchecked_fixture(tc, NULL, reap);
    tcase_add_test(tc, test_keeper_infer__cold_start_runs_all_8_phases_and_streams_tokens);
    tcase_add_test(tc, test_keeper_infer__warm_start_reuses_the_idle_worker);
    tcase_add_test(tc, test_keeper_infer__a_catalog_hit_skips_the_download);
    tcase_add_test(tc, test_keeper_infer__a_download_shows_progress);
    tcase_add_test(tc, test_keeper_infer__json_output_prints_one_object_per_event);
    tcase_add_test(tc, test_keeper_infer__bad_arguments_give_a_one_line_error);
    tcase_add_test(tc,
                   test_keeper_infer__a_file_model_in_any_folder_runs_through_an_ephemeral_hive);
    tc = rbt_tcase(s, "edge_cases", 120);
    tcase_add_unchecked_fixture(tc, NULL, reap);
    tcase_add_test(tc, test_keeper_infer__ec1_the_hive_is_unreachable);
    tcase_add_test(tc, test_keeper_infer__ec2_the_download_fails);
    tcase_add_test(tc, test_keeper_infer__ec3_not_enough_ram);
    tcase_add_test(tc, test_keeper_infer__ec4_the_worker_dies_mid_stream);
    tcase_add_test(tc, test_keeper_infer__ec5_ctrl_c_cancels_the_job);
    tcase_add_test(tc, test_keeper_infer__ec6_the_worker_stays_busy);
    tcase_add_test(tc, test_keeper_infer__ec7_the_worker_never_becomes_ready);
    tcase_add_test(tc, test_keeper_infer__ec8_the_hive_reports_another_version);
    tcase_add_test(tc, test_keeper_infer__ec9_a_wrong_api_key);
    tcase_add_test(
        tc, test_keeper_infer__ec10_an_idle_worker_is_shut_down_and_the_next_run_is_a_cold_start);
    tcase_add_test(tc, test_keeper_infer__ec11_the_backend_is_not_on_the_node);
    return rbt_run(s);
}
