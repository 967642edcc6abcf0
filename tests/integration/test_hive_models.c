/*
 * Integration tests for spec/hive_models.feature: the real rbee-hive with mock-files as
 * HF_ENDPOINT (Range support, scripted drops, errors and checksums), progress read as SSE with
 * an idle timeout and a deadline.
 */
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hive.h"
#include "rb_client.h"
#include "rb_models.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"

#define MODEL_SIZE (3 * 1024 * 1024)
#define MODEL_PATH "/org/repo/resolve/main/model.gguf"
#define SLOW "{\"rate_bytes_per_s\":6291456}" /* 3 MB in about half a second */

typedef struct env {
    rbt_files files;
    rbt_hive hive;
    char endpoint[128];
} env;

/* A file server with org/repo/model.gguf (3 MB, the same bytes every time) under scenario. */
static void env_start_files(env *e, const char *scenario)
{
    char path[4400];

    rbt_files_init(&e->files);
    snprintf(path, sizeof path, "%s/org/repo", e->files.root);
    ck_assert_int_eq(rb_mkdir_p(path), RB_OK);
    snprintf(path, sizeof path, "%s/org/repo/model.gguf", e->files.root);
    rbt_write_fake_gguf(path, MODEL_SIZE);
    rbt_files_start(&e->files, scenario);
    snprintf(e->endpoint, sizeof e->endpoint, "HF_ENDPOINT=%s", e->files.base);
}

/* A file server with org/repo/model.gguf (3 MB) and a hive pointed at it. */
static void env_start(env *e, const char *scenario, const char *extra_env)
{
    rbt_hive_opts o = rbt_hive_opts_default();

    env_start_files(e, scenario);
    o.env[0] = e->endpoint;
    o.env[1] = "RBEE_DOWNLOAD_BACKOFF_MS=10";
    o.env[2] = extra_env;
    rbt_hive_start(&e->hive, &o);
}

static void env_stop(env *e)
{
    ck_assert_int_eq(rbt_hive_stop(&e->hive), 0);
    rbt_hive_cleanup(&e->hive);
    rbt_files_stop(&e->files);
}

/* POST /v1/models/download; returns the status and the reply. */
static long download(env *e, const char *ref, json_t **reply)
{
    char body[4400];
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\"}", ref);
    return rbt_hive_json(&e->hive, "POST", "/v1/models/download", body, reply);
}

/* POST a download that must start; copies its id. */
static void start_download(env *e, const char *ref, char *id, size_t idlen)
{
    json_t *r = NULL;
    ck_assert_int_eq(download(e, ref, &r), 200);
    ck_assert(json_is_null(json_object_get(r, "local_path")));
    snprintf(id, idlen, "%s", json_string_value(json_object_get(r, "download_id")));
    ck_assert_str_ne(id, "cached");
    json_decref(r);
}

static int collect(void *user, const char *event, const char *data, size_t len)
{
    json_t *ev = json_loadb(data, len, 0, NULL);
    (void)event;
    json_array_append_new(user, ev ? ev : json_string(data));
    return 0;
}

/* Reads the progress stream to [DONE]; returns every event (new reference). */
static json_t *progress(env *e, const char *id)
{
    rb_sse_opts o = rb_sse_opts_default();
    rb_sse_result res;
    json_t *events = json_array();
    char url[256], err[256];
    rb_err rc;

    o.idle_timeout_ms = rbt_scaled(15000);
    o.deadline_ms = rbt_scaled(60000);
    snprintf(url, sizeof url, "%s/v1/models/download/%s/progress", e->hive.base, id);
    rb_sse_result_init(&res);
    rc = rb_client_sse("GET", url, NULL, &o, collect, events, &res, err, sizeof err);
    ck_assert_msg(rc == RB_OK, "progress stream: %s", err);
    rb_sse_result_release(&res);
    return events;
}

static const char *stage(json_t *ev)
{
    const char *s = json_string_value(json_object_get(ev, "stage"));
    return s ? s : "";
}

/* The last event of a finished stream (borrowed). */
static json_t *last(json_t *events)
{
    ck_assert_int_gt(json_array_size(events), 0);
    return json_array_get(events, json_array_size(events) - 1);
}

/* Downloads ref to the end, which must be "complete"; its local path into path. */
static void download_complete(env *e, const char *ref, char *path, size_t len)
{
    char id[64];
    json_t *events;

    start_download(e, ref, id, sizeof id);
    events = progress(e, id);
    ck_assert_str_eq(stage(last(events)), "complete");
    snprintf(path, len, "%s", json_string_value(json_object_get(last(events), "local_path")));
    json_decref(events);
}

static size_t count_models(env *e)
{
    json_t *r = NULL;
    size_t n;
    ck_assert_int_eq(rbt_hive_json(&e->hive, "GET", "/v1/models", NULL, &r), 200);
    n = json_array_size(json_object_get(r, "models"));
    json_decref(r);
    return n;
}

static int nfiles;
static int count_file(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)p, (void)sb, (void)ftw;
    nfiles += flag == FTW_F;
    return 0;
}

/* Regular files under $RBEE_HOME/models. */
static int files_under_models(env *e)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/models", e->hive.home);
    nfiles = 0;
    nftw(dir, count_file, 16, FTW_PHYS);
    return nfiles;
}

/* GET requests the file server saw for path. */
static int gets_of(env *e, const char *path, json_t **which)
{
    json_t *reqs = rbt_files_requests(&e->files), *r;
    size_t i;
    int n = 0;

    for (i = 0; i < json_array_size(reqs); i++) {
        r = json_array_get(reqs, i);
        if (strcmp(json_string_value(json_object_get(r, "path")), path) == 0 &&
            strcmp(json_string_value(json_object_get(r, "method")), "GET") == 0)
            n++;
    }
    if (which)
        *which = reqs;
    else
        json_decref(reqs);
    return n;
}

/* 1 when the two files hold the same bytes. */
static int same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int ca, cb, same = fa && fb;

    while (same && (ca = fgetc(fa)) != EOF) {
        cb = fgetc(fb);
        same = ca == cb;
    }
    if (same && fb && fgetc(fb) != EOF)
        same = 0;
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* Scenario: A download publishes progress in order and completes */
START_TEST(test_hive_models__a_download_publishes_progress_in_order_and_completes)
{
    env e;
    char id[64];
    json_t *events, *ev, *r = NULL;
    long long prev = -1;
    size_t i, n;

    env_start(&e, SLOW, NULL);
    start_download(&e, "hf:org/repo/model.gguf", id, sizeof id);
    events = progress(&e, id);
    n = json_array_size(events);
    ck_assert_int_ge(n, 3);
    for (i = 0; i + 1 < n; i++) {
        ev = json_array_get(events, i);
        ck_assert_str_eq(stage(ev), "downloading");
        ck_assert_int_ge(json_integer_value(json_object_get(ev, "bytes_downloaded")), prev);
        prev = json_integer_value(json_object_get(ev, "bytes_downloaded"));
    }
    ck_assert_int_eq(prev, MODEL_SIZE);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(events, n - 2), "bytes_total")),
        MODEL_SIZE);
    ck_assert_str_eq(stage(last(events)), "complete");
    const char *path = json_string_value(json_object_get(last(events), "local_path"));
    ck_assert(path && access(path, R_OK) == 0);
    ck_assert_int_eq(rbt_hive_json(&e.hive, "GET", "/v1/models", NULL, &r), 200);
    ev = json_array_get(json_object_get(r, "models"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "reference")), "hf:org/repo/model.gguf");
    ck_assert_int_eq(json_integer_value(json_object_get(ev, "size_bytes")), MODEL_SIZE);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "local_path")), path);
    json_decref(r);
    json_decref(events);
    env_stop(&e);
}
END_TEST

/* Scenario: A dropped connection is resumed with a Range request */
START_TEST(test_hive_models__a_dropped_connection_is_resumed_with_a_range_request)
{
    env e;
    char id[64], src[4400];
    json_t *events, *reqs = NULL;
    char *a, *b;
    size_t alen, blen;

    env_start(&e,
              "{\"faults\":[{\"path\":\"" MODEL_PATH "\",\"drop_after_bytes\":1048576,"
              "\"times\":1}]}",
              NULL);
    start_download(&e, "hf:org/repo/model.gguf", id, sizeof id);
    events = progress(&e, id);
    ck_assert_str_eq(stage(last(events)), "complete");
    ck_assert_int_eq(gets_of(&e, MODEL_PATH, &reqs), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(reqs, 0), "range")), "");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(reqs, 1), "range")),
                     "bytes=1048576-");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(reqs, 1), "status")), 206);
    snprintf(src, sizeof src, "%s/org/repo/model.gguf", e.files.root);
    ck_assert_int_eq(rb_read_file(src, MODEL_SIZE, &a, &alen), RB_OK);
    ck_assert_int_eq(rb_read_file(json_string_value(json_object_get(last(events), "local_path")),
                                  MODEL_SIZE, &b, &blen),
                     RB_OK);
    ck_assert_int_eq(alen, blen);
    ck_assert(memcmp(a, b, alen) == 0);
    free(a);
    free(b);
    json_decref(reqs);
    json_decref(events);
    env_stop(&e);
}
END_TEST

/* Scenario: A download that fails every time leaves no file and no row */
START_TEST(test_hive_models__a_download_that_fails_every_time_leaves_no_file_and_no_row)
{
    env e;
    char id[64];
    json_t *events;

    env_start(&e, "{\"faults\":[{\"path\":\"*\",\"status\":500,\"times\":-1}]}", NULL);
    start_download(&e, "hf:org/repo/model.gguf", id, sizeof id);
    events = progress(&e, id);
    ck_assert_str_eq(stage(last(events)), "error");
    ck_assert_str_eq(json_string_value(json_object_get(last(events), "code")), "DOWNLOAD_FAILED");
    ck_assert_int_eq(gets_of(&e, MODEL_PATH, NULL), 6);
    ck_assert_int_eq(files_under_models(&e), 0);
    ck_assert_int_eq(count_models(&e), 0);
    json_decref(events);
    env_stop(&e);
}
END_TEST

/* Scenario: A file that is not GGUF is refused */
START_TEST(test_hive_models__a_file_that_is_not_gguf_is_refused)
{
    env e;
    char id[64], path[4400];
    json_t *events;
    FILE *f;

    env_start(&e, NULL, NULL);
    snprintf(path, sizeof path, "%s/org/repo/bad.gguf", e.files.root);
    f = fopen(path, "w");
    fputs("<html><body>not found</body></html>\n", f);
    fclose(f);
    start_download(&e, "hf:org/repo/bad.gguf", id, sizeof id);
    events = progress(&e, id);
    ck_assert_str_eq(stage(last(events)), "error");
    ck_assert_str_eq(json_string_value(json_object_get(last(events), "code")), "NOT_GGUF");
    ck_assert_int_eq(files_under_models(&e), 0);
    ck_assert_int_eq(count_models(&e), 0);
    json_decref(events);
    env_stop(&e);
}
END_TEST

/* Scenario: A file whose checksum does not match is refused */
START_TEST(test_hive_models__a_file_whose_checksum_does_not_match_is_refused)
{
    env e;
    char id[64];
    json_t *events;

    env_start(&e, "{\"faults\":[{\"path\":\"*\",\"wrong_etag\":true}]}", NULL);
    start_download(&e, "hf:org/repo/model.gguf", id, sizeof id);
    events = progress(&e, id);
    ck_assert_str_eq(stage(last(events)), "error");
    ck_assert_str_eq(json_string_value(json_object_get(last(events), "code")), "CHECKSUM_MISMATCH");
    ck_assert_int_eq(files_under_models(&e), 0);
    ck_assert_int_eq(count_models(&e), 0);
    json_decref(events);
    env_stop(&e);
}
END_TEST

/* Scenario: A catalog hit answers cached */
START_TEST(test_hive_models__a_catalog_hit_answers_cached)
{
    env e;
    char id[64], path[4400];
    json_t *events, *r = NULL;

    env_start(&e, NULL, NULL);
    start_download(&e, "hf:org/repo/model.gguf", id, sizeof id);
    events = progress(&e, id);
    ck_assert_str_eq(stage(last(events)), "complete");
    snprintf(path, sizeof path, "%s",
             json_string_value(json_object_get(last(events), "local_path")));
    ck_assert_int_eq(download(&e, "hf:org/repo/model.gguf", &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "download_id")), "cached");
    ck_assert_str_eq(json_string_value(json_object_get(r, "local_path")), path);
    ck_assert_int_eq(gets_of(&e, MODEL_PATH, NULL), 1);
    json_decref(r);
    json_decref(events);
    env_stop(&e);
}
END_TEST

typedef struct racer {
    env *e;
    char id[64];
    long status;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    json_t *reply = NULL;
    const char *id;
    r->status = download(r->e, "hf:org/repo/model.gguf", &reply);
    id = json_string_value(json_object_get(reply, "download_id"));
    snprintf(r->id, sizeof r->id, "%s", id ? id : "");
    json_decref(reply);
    return NULL;
}

/* Scenario: Concurrent requests share one download */
START_TEST(test_hive_models__concurrent_requests_share_one_download)
{
    env e;
    racer r[2];
    pthread_t t[2];
    json_t *events;

    env_start(&e, "{\"rate_bytes_per_s\":2097152}", NULL);
    for (int i = 0; i < 2; i++) {
        r[i].e = &e;
        ck_assert_int_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(r[0].status, 200);
    ck_assert_int_eq(r[1].status, 200);
    ck_assert_str_eq(r[0].id, r[1].id);
    ck_assert_str_ne(r[0].id, "cached");
    events = progress(&e, r[0].id);
    ck_assert_str_eq(stage(last(events)), "complete");
    ck_assert_int_eq(gets_of(&e, MODEL_PATH, NULL), 1);
    json_decref(events);
    env_stop(&e);
}
END_TEST

/* Scenario: A repo without a file name picks the Q4_K_M file */
START_TEST(test_hive_models__a_repo_without_a_file_name_picks_the_q4_k_m_file)
{
    static const char *const names[] = {"model-Q8_0.gguf", "model-Q4_K_M.gguf", "model-F16.gguf"};
    env e;
    char id[64], path[4400];
    json_t *events, *r = NULL;
    const char *local;

    env_start(&e, NULL, NULL);
    snprintf(path, sizeof path, "%s/org/multi", e.files.root);
    ck_assert_int_eq(rb_mkdir_p(path), RB_OK);
    for (size_t i = 0; i < RB_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof path, "%s/org/multi/%s", e.files.root, names[i]);
        rbt_write_fake_gguf(path, 4096 * (i + 1));
    }
    start_download(&e, "hf:org/multi", id, sizeof id);
    events = progress(&e, id);
    ck_assert_str_eq(stage(last(events)), "complete");
    local = json_string_value(json_object_get(last(events), "local_path"));
    ck_assert_msg(strstr(local, "/org/multi/model-Q4_K_M.gguf"), "downloaded %s", local);
    ck_assert_int_eq(gets_of(&e, "/org/multi/resolve/main/model-Q4_K_M.gguf", NULL), 1);
    ck_assert_int_eq(gets_of(&e, "/org/multi/resolve/main/model-Q8_0.gguf", NULL), 0);
    ck_assert_int_eq(download(&e, "hf:org/multi", &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "download_id")), "cached");
    json_decref(r);
    json_decref(events);
    env_stop(&e);
}
END_TEST

/* Scenario: Local files and the bundled model resolve without a download */
START_TEST(test_hive_models__local_files_and_the_bundled_model_resolve_without_a_download)
{
    env e;
    char dir[4096], path[4200], bundled[4300], ref[4300];
    json_t *r = NULL;

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    rbt_write_fake_gguf(path, 4096);
    snprintf(bundled, sizeof bundled, "RBEE_BUNDLED_MODEL=%s", path);
    env_start(&e, NULL, bundled);
    snprintf(ref, sizeof ref, "file:%s", path);
    ck_assert_int_eq(download(&e, ref, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "download_id")), "cached");
    ck_assert_str_eq(json_string_value(json_object_get(r, "local_path")), path);
    json_decref(r);
    ck_assert_int_eq(download(&e, HIVE_BUNDLED_NAME, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "download_id")), "cached");
    ck_assert_str_eq(json_string_value(json_object_get(r, "local_path")), path);
    json_decref(r);
    snprintf(ref, sizeof ref, "file:%s/absent.gguf", dir);
    ck_assert_int_eq(download(&e, ref, &r), 404);
    ck_assert_str_eq(rbt_error_code(r), "MODEL_NOT_FOUND");
    json_decref(r);
    r = rbt_files_requests(&e.files);
    ck_assert_int_eq(json_array_size(r), 0);
    json_decref(r);
    env_stop(&e);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Bad model references are refused */
START_TEST(test_hive_models__bad_model_references_are_refused)
{
    static const char *const bad[] = {"ftp:x",
                                      "hf:",
                                      "hf:org",
                                      "file:relative.gguf",
                                      "hf:org/repo/../x.gguf",
                                      "hf:org/repo/notes.txt"};
    env e;
    json_t *r = NULL;

    env_start(&e, NULL, NULL);
    for (size_t i = 0; i < RB_ARRAY_LEN(bad); i++) {
        ck_assert_int_eq(download(&e, bad[i], &r), 400);
        ck_assert_msg(strcmp(rbt_error_code(r), "INVALID_MODEL_REF") == 0, "%s: %s", bad[i],
                      rbt_error_code(r));
        json_decref(r);
    }
    ck_assert_int_eq(rbt_hive_json(&e.hive, "POST", "/v1/models/download", "{}", &r), 400);
    ck_assert_str_eq(rbt_error_code(r), "INVALID_REQUEST");
    json_decref(r);
    env_stop(&e);
}
END_TEST

/* Scenario: A late subscriber still sees the end */
START_TEST(test_hive_models__a_late_subscriber_still_sees_the_end)
{
    env e;
    char id[64], path[256];
    json_t *events, *again;
    int64_t done_at, end;
    long st = 0;

    env_start(&e, NULL, "RBEE_DOWNLOAD_KEEP_MS=1000");
    start_download(&e, "hf:org/repo/model.gguf", id, sizeof id);
    events = progress(&e, id);
    done_at = rbt_ms();
    ck_assert_str_eq(stage(last(events)), "complete");
    again = progress(&e, id);
    ck_assert_int_eq(json_array_size(again), 1);
    ck_assert_str_eq(stage(last(again)), "complete");
    snprintf(path, sizeof path, "/v1/models/download/%s/progress", id);
    end = rbt_ms() + rbt_scaled(5000);
    while (rbt_ms() < end && (st = rbt_hive_json(&e.hive, "GET", path, NULL, NULL)) != 404)
        rbt_poll_interval();
    ck_assert_int_eq(st, 404);
    ck_assert_int_ge(rbt_ms() - done_at, 900);
    json_decref(again);
    json_decref(events);
    env_stop(&e);
}
END_TEST

/* Waits until the download has received some bytes (the first progress events). */
static int first_bytes(void *user, const char *event, const char *data, size_t len)
{
    json_t *ev = json_loadb(data, len, 0, NULL);
    int got = json_integer_value(json_object_get(ev, "bytes_downloaded")) > 0;
    (void)event, (void)user;
    json_decref(ev);
    return got; /* non-zero stops the stream */
}

/* Scenario: Stopping the hive during a download keeps the partial file and the next hive
 * resumes it */
START_TEST(
    test_hive_models__stopping_the_hive_during_a_download_keeps_the_partial_file_and_the_next_hive_resumes_it)
{
    env e;
    rb_sse_opts o = rb_sse_opts_default();
    rbt_hive_opts ho = rbt_hive_opts_default();
    rb_sse_result res;
    char id[64], url[256], err[256], db[4400], part[4400], range[64], done[4400];
    sqlite3 *dbh;
    sqlite3_stmt *st;
    struct stat sb;
    json_t *reqs = NULL, *last_get = NULL;

    env_start(&e, "{\"rate_bytes_per_s\":262144}", NULL);
    start_download(&e, "hf:org/repo/model.gguf", id, sizeof id);
    o.idle_timeout_ms = rbt_scaled(10000);
    snprintf(url, sizeof url, "%s/v1/models/download/%s/progress", e.hive.base, id);
    rb_sse_result_init(&res);
    ck_assert_int_eq(rb_client_sse("GET", url, NULL, &o, first_bytes, NULL, &res, err, sizeof err),
                     RB_ECANCELED);
    rb_sse_result_release(&res);
    ck_assert_int_eq(rbt_hive_stop(&e.hive), 0);
    snprintf(part, sizeof part, "%s/models/org/repo/model.gguf.part", e.hive.home);
    ck_assert_int_eq(files_under_models(&e), 1);
    ck_assert_int_eq(stat(part, &sb), 0);
    ck_assert_int_gt(sb.st_size, 0);
    ck_assert_int_lt(sb.st_size, MODEL_SIZE);
    snprintf(db, sizeof db, "%s/models.db", e.hive.home);
    ck_assert_int_eq(sqlite3_open(db, &dbh), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(dbh, "SELECT COUNT(*) FROM models", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(dbh);

    /* The next hive, same home, a fast server: it asks only for the rest. */
    rbt_files_stop(&e.files);
    env_start_files(&e, NULL);
    ho.env[0] = e.endpoint;
    ho.env[1] = "RBEE_DOWNLOAD_BACKOFF_MS=10";
    rbt_hive_start(&e.hive, &ho);
    download_complete(&e, "hf:org/repo/model.gguf", done, sizeof done);
    ck_assert_int_eq(gets_of(&e, MODEL_PATH, &reqs), 1);
    for (size_t i = 0; i < json_array_size(reqs); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(reqs, i), "path")),
                   MODEL_PATH) == 0)
            last_get = json_array_get(reqs, i);
    snprintf(range, sizeof range, "bytes=%lld-", (long long)sb.st_size);
    ck_assert_ptr_nonnull(last_get);
    ck_assert_str_eq(json_string_value(json_object_get(last_get, "range")), range);
    json_decref(reqs);
    snprintf(part, sizeof part, "%s/models/org/repo/model.gguf", e.hive.home);
    ck_assert_str_eq(done, part);
    ck_assert_int_eq(stat(part, &sb), 0);
    ck_assert_int_eq(sb.st_size, MODEL_SIZE);
    {
        /* byte for byte the served file: the two halves were joined at the right offset */
        char src[4400];
        snprintf(src, sizeof src, "%s/org/repo/model.gguf", e.files.root);
        ck_assert_int_eq(same_bytes(src, part), 1);
    }
    env_stop(&e);
}
END_TEST

/* Scenario: file references are confined to the model folders */
START_TEST(test_hive_models__file_references_are_confined_to_the_model_folders)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    char dir[4096], extra[4200], outside[4200], path[4400], ref[4500], bundled[4400];
    char msg[2][512];
    json_t *r = NULL;
    const char *forbidden[3];

    rbt_tmpdir(dir);
    snprintf(extra, sizeof extra, "%s/extra", dir);
    snprintf(outside, sizeof outside, "%s/outside", dir);
    ck_assert_int_eq(rb_mkdir_p(extra), RB_OK);
    ck_assert_int_eq(rb_mkdir_p(outside), RB_OK);
    snprintf(path, sizeof path, "%s/b.gguf", extra);
    rbt_write_fake_gguf(path, 4096);
    snprintf(path, sizeof path, "%s/secret.gguf", outside);
    rbt_write_fake_gguf(path, 4096);
    snprintf(path, sizeof path, "%s/x.gguf", extra);
    ck_assert_int_eq(rb_mkdir_p(path), RB_OK);
    snprintf(bundled, sizeof bundled, "RBEE_BUNDLED_MODEL=%s", rbt_model_q8());
    o.env[0] = bundled;
    o.args[0] = "--models-dir";
    o.args[1] = extra;
    rbt_hive_start(&h, &o);
    snprintf(path, sizeof path, "%s/models/a.gguf", h.home);
    rbt_write_fake_gguf(path, 4096);
    snprintf(ref, sizeof ref, "%s/models/link.gguf", h.home);
    snprintf(path, sizeof path, "%s/secret.gguf", outside);
    ck_assert_int_eq(symlink(path, ref), 0);

    const char *inside[] = {"%s/models/a.gguf", "%s/b.gguf", "%s"};
    const char *bases[] = {h.home, extra, rbt_model_q8()};
    for (int i = 0; i < 3; i++) {
        char body[4600];
        snprintf(path, sizeof path, inside[i], bases[i]);
        snprintf(body, sizeof body, "{\"model_ref\":\"file:%s\"}", path);
        ck_assert_msg(rbt_hive_json(&h, "POST", "/v1/models/download", body, &r) == 200,
                      "%s refused", path);
        json_decref(r);
    }
    char secret[4400], missing[4400], link[4400];
    snprintf(secret, sizeof secret, "file:%s/secret.gguf", outside);
    snprintf(missing, sizeof missing, "file:%s/missing.gguf", outside);
    snprintf(link, sizeof link, "file:%s/models/link.gguf", h.home);
    forbidden[0] = secret;
    forbidden[1] = missing;
    forbidden[2] = link;
    for (int i = 0; i < 3; i++) {
        char body[4600];
        snprintf(body, sizeof body, "{\"model_ref\":\"%s\"}", forbidden[i]);
        ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/models/download", body, &r), 403);
        ck_assert_str_eq(rbt_error_code(r), "MODEL_PATH_FORBIDDEN");
        snprintf(msg[i ? 1 : 0], sizeof msg[0], "%s",
                 json_string_value(json_object_get(json_object_get(r, "error"), "message")));
        ck_assert(!strstr(msg[i ? 1 : 0], "outside"));
        json_decref(r);
        if (i)
            ck_assert_str_eq(msg[0], msg[1]); /* existing or not: the same answer */
    }
    /* Spawning is confined the same way. */
    snprintf(ref, sizeof ref, "{\"model_ref\":\"%s\",\"backend\":\"cpu\",\"device\":0}", secret);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn", ref, &r), 403);
    json_decref(r);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn",
                                   "{\"model_ref\":\"file:/etc/shadow\",\"backend\":\"cpu\","
                                   "\"device\":0}",
                                   &r),
                     400);
    ck_assert_str_eq(rbt_error_code(r), "INVALID_MODEL_REF");
    char *text = json_dumps(r, 0);
    ck_assert(!strstr(text, "root")); /* /etc/shadow's first bytes are "root:" */
    free(text);
    json_decref(r);
    snprintf(ref, sizeof ref, "{\"model_ref\":\"file:%s/models/gone.gguf\"}", h.home);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/models/download", ref, &r), 404);
    json_decref(r);
    snprintf(ref, sizeof ref, "{\"model_ref\":\"file:%s/x.gguf\"}", extra);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/models/download", ref, &r), 400);
    json_decref(r);
    ck_assert_int_eq(rbt_hive_stop(&h), 0);
    rbt_hive_cleanup(&h);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: A downloaded model is removed, but not while a worker serves it */
START_TEST(test_hive_models__a_downloaded_model_is_removed_but_not_while_a_worker_serves_it)
{
    env e;
    char path[4400], worker[128], body[4600];
    json_t *r = NULL, *d;

    env_start(&e, NULL, NULL);
    download_complete(&e, "hf:org/repo/model.gguf", path, sizeof path);
    ck_assert_int_eq(rbt_hive_json(&e.hive, "POST", "/v1/workers/spawn",
                                   "{\"model_ref\":\"hf:org/repo/model.gguf\",\"backend\":"
                                   "\"cpu\",\"device\":0}",
                                   &r),
                     200);
    snprintf(worker, sizeof worker, "%s", json_string_value(json_object_get(r, "worker_id")));
    json_decref(r);

    ck_assert_int_eq(rbt_hive_json(&e.hive, "POST", "/v1/models/delete",
                                   "{\"model_ref\":\"hf:org/repo/model.gguf\"}", &r),
                     409);
    ck_assert_str_eq(rbt_error_code(r), "MODEL_IN_USE");
    d = json_object_get(json_object_get(r, "error"), "details");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(d, "workers"), 0)), worker);
    json_decref(r);
    ck_assert_int_eq(access(path, F_OK), 0);

    snprintf(body, sizeof body, "{\"worker_id\":\"%s\"}", worker);
    ck_assert_int_eq(rbt_hive_json(&e.hive, "POST", "/v1/workers/shutdown", body, &r), 200);
    json_decref(r);
    ck_assert(rbt_hive_wait_worker(&e.hive, worker, NULL, rbt_scaled(5000), NULL));

    /* hf:org/repo names the one file of that repo that was downloaded. */
    ck_assert_int_eq(
        rbt_hive_json(&e.hive, "POST", "/v1/models/delete", "{\"model_ref\":\"hf:org/repo\"}", &r),
        200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "reference")), "hf:org/repo/model.gguf");
    ck_assert_str_eq(json_string_value(json_object_get(r, "local_path")), path);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "size_bytes")), MODEL_SIZE);
    json_decref(r);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(count_models(&e), 0);
    ck_assert_int_eq(files_under_models(&e), 0);

    ck_assert_int_eq(rbt_hive_json(&e.hive, "POST", "/v1/models/delete",
                                   "{\"model_ref\":\"hf:org/repo/model.gguf\"}", &r),
                     404);
    ck_assert_str_eq(rbt_error_code(r), "MODEL_NOT_FOUND");
    json_decref(r);
    ck_assert_int_eq(
        rbt_hive_json(&e.hive, "POST", "/v1/models/delete", "{\"model_ref\":\"kjv\"}", &r), 400);
    ck_assert_str_eq(rbt_error_code(r), "INVALID_MODEL_REF");
    json_decref(r);
    snprintf(body, sizeof body, "{\"model_ref\":\"file:%s\"}", path);
    ck_assert_int_eq(rbt_hive_json(&e.hive, "POST", "/v1/models/delete", body, &r), 400);
    ck_assert_str_eq(rbt_error_code(r), "INVALID_MODEL_REF");
    json_decref(r);
    /* Downloading it again at once downloads it again (the finished download of a minute ago
     * is not taken for it): the file is back, with its row. */
    download_complete(&e, "hf:org/repo/model.gguf", path, sizeof path);
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_int_eq(count_models(&e), 1);
    env_stop(&e);
}
END_TEST

/* Scenario: A full disk during a download ends it cleanly */
START_TEST(test_hive_models__a_full_disk_during_a_download_ends_it_cleanly)
{
    env e;
    char id[64];
    json_t *events, *end, *r = NULL;
    struct rlimit lim = {1 << 20, 1 << 20};
    int fds_before, fds_after;

    env_start(&e, NULL, NULL);
    /* What a full disk does to the writer, without a mount: writes past 1 MiB fail (EFBIG). */
    ck_assert_int_eq(prlimit(e.hive.pid, RLIMIT_FSIZE, &lim, NULL), 0);
    fds_before = rbt_count_fds(e.hive.pid);
    for (int round = 0; round < 2; round++) {
        start_download(&e, "hf:org/repo/model.gguf", id, sizeof id);
        events = progress(&e, id);
        end = last(events);
        ck_assert_str_eq(stage(end), "error");
        ck_assert_msg(strstr(json_string_value(json_object_get(end, "message")),
                             "cannot write the download") != NULL,
                      "%s", json_string_value(json_object_get(end, "message")));
        ck_assert_int_eq(json_integer_value(json_object_get(end, "attempts")), 1);
        json_decref(events);
        ck_assert_int_eq(files_under_models(&e), 0);
        ck_assert_int_eq(count_models(&e), 0);
    }
    ck_assert_int_eq(rbt_hive_json(&e.hive, "GET", "/v1/health", NULL, &r), 200);
    json_decref(r);
    fds_after = rbt_count_fds(e.hive.pid);
    printf("full disk: two downloads failed cleanly; hive fds %d -> %d\n", fds_before, fds_after);
    ck_assert_int_le(fds_after, fds_before + 1);
    env_stop(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hive_models");
    TCase *tc = rbt_tcase(s, "models", rbt_scaled(60000) / 1000.0);

    tcase_add_test(tc, test_hive_models__a_download_publishes_progress_in_order_and_completes);
    tcase_add_test(tc, test_hive_models__a_dropped_connection_is_resumed_with_a_range_request);
    tcase_add_test(tc,
                   test_hive_models__a_download_that_fails_every_time_leaves_no_file_and_no_row);
    tcase_add_test(tc, test_hive_models__a_file_that_is_not_gguf_is_refused);
    tcase_add_test(tc, test_hive_models__a_file_whose_checksum_does_not_match_is_refused);
    tcase_add_test(tc, test_hive_models__a_catalog_hit_answers_cached);
    tcase_add_test(tc, test_hive_models__concurrent_requests_share_one_download);
    tcase_add_test(tc, test_hive_models__a_repo_without_a_file_name_picks_the_q4_k_m_file);
    tcase_add_test(tc,
                   test_hive_models__local_files_and_the_bundled_model_resolve_without_a_download);
    tcase_add_test(tc, test_hive_models__bad_model_references_are_refused);
    tcase_add_test(
        tc,
        test_hive_models__stopping_the_hive_during_a_download_keeps_the_partial_file_and_the_next_hive_resumes_it);
    tcase_add_test(tc, test_hive_models__a_late_subscriber_still_sees_the_end);
    tcase_add_test(tc, test_hive_models__file_references_are_confined_to_the_model_folders);
    tcase_add_test(
        tc, test_hive_models__a_downloaded_model_is_removed_but_not_while_a_worker_serves_it);
    tcase_add_test(tc, test_hive_models__a_full_disk_during_a_download_ends_it_cleanly);
    return rbt_run(s);
}
