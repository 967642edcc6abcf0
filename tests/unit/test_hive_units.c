/*
 * Unit tests for the socket-free parts of rbee-hive: model reference parsing, the Q4_K_M file
 * choice, the bundled model search, the catalog (SQLite in a temp folder), the worker registry
 * (with real short-lived child processes) and the RAM estimate. The behaviour they pin down
 * backs spec/hive_models.feature and spec/hive_lifecycle.feature.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hive.h"
#include "hive_api.h"
#include "eng.h"
#include "hive_catalog.h"
#include "hive_gguf.h"
#include "hive_modelref.h"
#include "hive_registry.h"
#include "hive_spawn.h"
#include "rb_models.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"

START_TEST(test_hive_units_modelref_parse)
{
    static const char *const bad[] = {"",
                                      "ftp:x",
                                      "hf:",
                                      "hf:org",
                                      "hf:org/",
                                      "hf:/repo",
                                      "hf:org/repo/",
                                      "hf:org/repo/x.bin",
                                      "hf:org/../x.gguf",
                                      "hf:org/repo/../y.gguf",
                                      "hf:org/repo/a//b.gguf",
                                      "hf:o rg/repo",
                                      "file:relative.gguf",
                                      "file:",
                                      "KJV",
                                      "kjv2"};
    hive_modelref r;
    char err[256], text[HIVE_REF_MAX];

    ck_assert_int_eq(hive_modelref_parse("hf:org/repo/model.gguf", &r, err, sizeof err), RB_OK);
    ck_assert_int_eq(r.kind, HIVE_REF_HF);
    ck_assert_str_eq(r.org, "org");
    ck_assert_str_eq(r.repo, "repo");
    ck_assert_str_eq(r.file, "model.gguf");
    ck_assert_int_eq(hive_modelref_parse("hf:TheBloke/Llama-2-7B-GGUF", &r, err, sizeof err),
                     RB_OK);
    ck_assert_str_eq(r.file, "");
    ck_assert_int_eq(hive_modelref_parse("hf:o/r/sub/dir/m.Q4_K_M.GGUF", &r, err, sizeof err),
                     RB_OK);
    ck_assert_str_eq(r.file, "sub/dir/m.Q4_K_M.GGUF");
    ck_assert_int_eq(hive_modelref_format(&r, text, sizeof text), RB_OK);
    ck_assert_str_eq(text, "hf:o/r/sub/dir/m.Q4_K_M.GGUF");
    ck_assert_int_eq(hive_modelref_parse("file:///abs/m.gguf", &r, err, sizeof err), RB_OK);
    ck_assert_int_eq(r.kind, HIVE_REF_FILE);
    ck_assert_str_eq(r.path, "/abs/m.gguf");
    ck_assert_int_eq(hive_modelref_parse(HIVE_BUNDLED_NAME, &r, err, sizeof err), RB_OK);
    ck_assert_int_eq(r.kind, HIVE_REF_BUNDLED);
    for (size_t i = 0; i < RB_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        ck_assert_msg(hive_modelref_parse(bad[i], &r, err, sizeof err) == RB_EINVAL,
                      "'%s' was accepted", bad[i]);
        ck_assert_msg(strstr(err, "hf:<org>/<repo>"), "no help for '%s': %s", bad[i], err);
    }
}
END_TEST

START_TEST(test_hive_units_pick_gguf)
{
    const char *multi[] = {"README.md", "model-Q8_0.gguf", "model-Q4_K_M.gguf", "model-F16.gguf"};
    const char *two_q4[] = {"big-model.Q4_K_M.gguf", "m.q4_k_m.gguf", "config.json"};
    const char *one[] = {"README.md", "only.gguf"};
    const char *none[] = {"README.md", "weights.bin"};
    const char *ambiguous[] = {"a-Q8_0.gguf", "a-F16.gguf"};
    const char *split[] = {"m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf",
                           "m-Q8_0.gguf"};
    size_t pick = 99;

    ck_assert_int_eq(hive_pick_gguf(multi, 4, &pick), RB_OK);
    ck_assert_int_eq(pick, 2);
    ck_assert_int_eq(hive_pick_gguf(two_q4, 3, &pick), RB_OK);
    ck_assert_int_eq(pick, 1); /* any case, the shorter name */
    ck_assert_int_eq(hive_pick_gguf(one, 2, &pick), RB_OK);
    ck_assert_int_eq(pick, 1);
    ck_assert_int_eq(hive_pick_gguf(none, 2, &pick), RB_ENOTFOUND);
    ck_assert_int_eq(hive_pick_gguf(ambiguous, 2, &pick), RB_EINVAL);
    ck_assert_int_eq(hive_pick_gguf(split, 3, &pick), RB_OK);
    ck_assert_int_eq(pick, 2); /* split parts are never picked */
}
END_TEST

START_TEST(test_hive_units_bundled_model_search)
{
    char dir[4096], exe_dir[4200], models[4200], a[4300], b[4300], found[4400];

    unsetenv("RBEE_BUNDLED_MODEL");
    rbt_tmpdir(dir);
    snprintf(exe_dir, sizeof exe_dir, "%s/build", dir);
    snprintf(models, sizeof models, "%s/models", dir);
    ck_assert_int_eq(rb_mkdir_p(exe_dir), RB_OK);
    ck_assert_int_eq(rb_mkdir_p(models), RB_OK);
    /* Nothing beside the binary: the last resort is the source tree's own models/ folder. */
    ck_assert_int_eq(hive_bundled_path(exe_dir, found, sizeof found), RB_OK);
    ck_assert_str_eq(found, RB_SOURCE_DIR "/models/kjv-5m-q8_0.gguf");
    snprintf(a, sizeof a, "%s/kjv-5m-q8_0.gguf", models);
    snprintf(b, sizeof b, "%s/kjv-9m-q8_0.gguf", models);
    {
        char f16[4300];
        snprintf(f16, sizeof f16, "%s/kjv-1m-f16.gguf", models);
        rb_write_file_atomic(f16, "GGUF....", 8); /* not the Q8_0 default: never picked */
    }
    rb_write_file_atomic(a, "<html>..", 8); /* not GGUF: skipped */
    rb_write_file_atomic(b, "GGUF....", 8);
    ck_assert_int_eq(hive_bundled_path(exe_dir, found, sizeof found), RB_OK);
    ck_assert_str_eq(found, b);
    rb_write_file_atomic(a, "GGUF....", 8);
    ck_assert_int_eq(hive_bundled_path(exe_dir, found, sizeof found), RB_OK);
    ck_assert_str_eq(found, a); /* first in name order */
    setenv("RBEE_BUNDLED_MODEL", a, 1);
    ck_assert_int_eq(hive_bundled_path(exe_dir, found, sizeof found), RB_OK);
    ck_assert_str_eq(found, a);
    unsetenv("RBEE_BUNDLED_MODEL");
    rbt_rmtree(dir);
}
END_TEST

START_TEST(test_hive_units_catalog)
{
    char dir[4096], db[4200], err[256];
    hive_catalog *c;
    hive_model m = {0}, got, *rows = NULL;
    size_t n = 0;

    rbt_tmpdir(dir);
    snprintf(db, sizeof db, "%s/sub/models.db", dir);
    ck_assert_int_eq(hive_catalog_open(db, &c, err, sizeof err), RB_OK);
    ck_assert_int_eq(hive_catalog_find(c, "hf:o/r/m.gguf", &got), RB_ENOTFOUND);
    snprintf(m.reference, sizeof m.reference, "hf:o/r/m.gguf");
    snprintf(m.provider, sizeof m.provider, "hf");
    snprintf(m.local_path, sizeof m.local_path, "/x/m.gguf");
    m.size_bytes = 3145728;
    m.downloaded_at_unix = 1700000000;
    ck_assert_int_eq(hive_catalog_put(c, &m), RB_OK);
    snprintf(m.reference, sizeof m.reference, "hf:a/b/c.gguf");
    ck_assert_int_eq(hive_catalog_put(c, &m), RB_OK);
    ck_assert_int_eq(hive_catalog_find(c, "hf:o/r/m.gguf", &got), RB_OK);
    ck_assert_int_eq(got.size_bytes, 3145728);
    ck_assert_str_eq(got.local_path, "/x/m.gguf");
    hive_catalog_close(c);
    ck_assert_int_eq(hive_catalog_open(db, &c, err, sizeof err), RB_OK); /* kept on disk */
    ck_assert_int_eq(hive_catalog_list(c, &rows, &n), RB_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(rows[0].reference, "hf:a/b/c.gguf");
    free(rows);
    ck_assert_int_eq(hive_catalog_remove(c, "hf:a/b/c.gguf"), RB_OK);
    ck_assert_int_eq(hive_catalog_find(c, "hf:a/b/c.gguf", &got), RB_ENOTFOUND);
    hive_catalog_close(c);
    rbt_rmtree(dir);
}
END_TEST

/* A child that waits for a signal; its pidfd in *fd. It inherits Check's SIGTERM handler
 * (which signals the whole test group), so the tests end it with SIGKILL. */
static pid_t sleeper(int *fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        pause();
        _exit(0);
    }
    *fd = pidfd_open(pid, 0);
    return pid;
}

static hive_worker worker(const char *id, pid_t pid, int port)
{
    hive_worker w = {0};
    snprintf(w.id, sizeof w.id, "%s", id);
    w.pid = pid;
    w.port = port;
    w.state = HIVE_W_LOADING;
    w.started_ms = w.last_heartbeat_ms = w.last_activity_ms = rb_now_ms();
    return w;
}

START_TEST(test_hive_units_registry_states)
{
    hive_registry *r = hive_registry_new();
    hive_worker w = worker("worker-a", 999999, 9001), got;
    hive_heartbeat hb = {HIVE_W_BUSY, 2, 1}, late = {HIVE_W_LOADING, 2, 0};
    int64_t before;

    ck_assert_int_eq(hive_registry_add(r, &w, -1), RB_OK);
    ck_assert_int_eq(hive_registry_add(r, &w, -1), RB_EEXIST);
    ck_assert(hive_registry_port_taken(r, 9001));
    ck_assert_int_eq(hive_registry_ready(r, "worker-a", "http://h:9001"), RB_OK);
    ck_assert_int_eq(hive_registry_get(r, "worker-a", &got), RB_OK);
    ck_assert_int_eq(got.state, HIVE_W_IDLE);
    ck_assert_str_eq(got.url, "http://h:9001");
    /* the worker's first heartbeat, sent before its ready callback, arriving after it */
    ck_assert_int_eq(hive_registry_heartbeat(r, "worker-a", &late), RB_OK);
    ck_assert_int_eq(hive_registry_get(r, "worker-a", &got), RB_OK);
    ck_assert_int_eq(got.state, HIVE_W_IDLE);
    before = got.last_activity_ms;
    ck_assert_int_eq(hive_registry_health(r, "worker-a", 1, HIVE_W_IDLE), 0);
    ck_assert_int_eq(hive_registry_get(r, "worker-a", &got), RB_OK);
    ck_assert_int_eq(got.last_activity_ms, before); /* a health check is not activity */
    ck_assert_int_eq(hive_registry_health(r, "worker-a", 0, -1), 1);
    ck_assert_int_eq(hive_registry_health(r, "worker-a", 0, -1), 2);
    ck_assert_int_eq(hive_registry_health(r, "worker-a", 1, -1), 0);
    ck_assert_int_eq(hive_registry_heartbeat(r, "worker-a", &hb), RB_OK);
    ck_assert_int_eq(hive_registry_get(r, "worker-a", &got), RB_OK);
    ck_assert_int_eq(got.state, HIVE_W_BUSY);
    ck_assert_int_eq(got.slots_total, 2);
    ck_assert_int_eq(got.slots_busy, 1);
    ck_assert_int_eq(hive_registry_heartbeat(r, "worker-b", &hb), RB_ENOTFOUND);
    ck_assert_int_eq(hive_registry_begin_stop(r, "worker-a", "test", NULL), RB_OK);
    ck_assert_int_eq(hive_registry_begin_stop(r, "worker-a", "again", NULL), RB_EBUSY);
    hb.state = HIVE_W_IDLE;
    ck_assert_int_eq(hive_registry_heartbeat(r, "worker-a", &hb), RB_OK);
    ck_assert_int_eq(hive_registry_get(r, "worker-a", &got), RB_OK);
    ck_assert_int_eq(got.state, HIVE_W_STOPPING); /* a heartbeat does not undo a stop */
    ck_assert_str_eq(got.stop_reason, "test");
    hive_registry_free(r);
}
END_TEST

START_TEST(test_hive_units_registry_reaps_only_started_workers)
{
    hive_registry *r = hive_registry_new();
    hive_exit gone[4];
    int fd, status, no_pidfd, fds[4];
    pid_t pid = sleeper(&fd);
    hive_worker w = worker("worker-s", pid, 9002);

    ck_assert_int_eq(hive_registry_add(r, &w, fd), RB_OK);
    ck_assert_int_eq(hive_registry_pidfds(r, fds, 4, &no_pidfd), 0); /* starting: not watched */
    ck_assert_int_eq(hive_registry_kill(r, "worker-s", SIGKILL), RB_OK);
    struct pollfd p = {.fd = fd, .events = POLLIN}; /* exited, not reaped */
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    ck_assert_int_eq(hive_registry_reap(r, gone, 4), 0); /* its spawner owns it */
    ck_assert_int_eq(hive_registry_discard(r, "worker-s", &status), RB_OK);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ck_assert_int_eq(hive_registry_count(r), 0);

    pid = sleeper(&fd);
    w = worker("worker-t", pid, 9003);
    ck_assert_int_eq(hive_registry_add(r, &w, fd), RB_OK);
    ck_assert_int_eq(hive_registry_started(r, "worker-t"), RB_OK);
    ck_assert_int_eq(hive_registry_pidfds(r, fds, 4, &no_pidfd), 1);
    ck_assert_int_eq(hive_registry_reap(r, gone, 4), 0); /* still running */
    ck_assert_int_eq(hive_registry_kill(r, "worker-t", SIGKILL), RB_OK);
    int64_t end = rbt_ms() + 5000;
    size_t n = 0;
    while (n == 0 && rbt_ms() < end) {
        n = hive_registry_reap(r, gone, 4);
        if (!n)
            rbt_poll_interval();
    }
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(gone[0].w.id, "worker-t");
    ck_assert(WIFSIGNALED(gone[0].status) && WTERMSIG(gone[0].status) == SIGKILL);
    ck_assert_int_eq(hive_registry_wait_gone(r, "worker-t", 0), 1);
    ck_assert_int_eq(hive_registry_wait_empty(r, 0), 1);
    ck_assert_int_eq(hive_registry_kill(r, "worker-t", SIGKILL), RB_ENOTFOUND);
    hive_registry_free(r);
}
END_TEST

START_TEST(test_hive_units_ram_estimate)
{
    uint64_t total = 0, avail = 0;

    ck_assert_int_eq(hive_ram_required_mb(0), HIVE_RAM_OVERHEAD_MB);
    ck_assert_int_eq(hive_ram_required_mb(1000LL * 1024 * 1024), 1100 + HIVE_RAM_OVERHEAD_MB);
    setenv("RBEE_HIVE_RAM_LIMIT_MB", "1", 1);
    ck_assert_int_eq(hive_ram_mb(&total, &avail), RB_OK);
    ck_assert_int_eq(avail, 1);
    ck_assert_int_gt(total, 1);
    unsetenv("RBEE_HIVE_RAM_LIMIT_MB");
}
END_TEST

/* The hive's header reader against the engine on the bundled model, and bad headers. */
START_TEST(test_hive_units_gguf_shape)
{
    rb_mem_shape sh;
    eng_model *m = NULL;
    eng_session_params sp = eng_session_params_default();
    rb_mem_run run = rb_mem_run_default();
    rb_mem_estimate he, ee;
    char err[256], dir[4096], path[4200];
    FILE *f;

    ck_assert_msg(hive_gguf_shape(rbt_model_q8(), &sh, err, sizeof err) == RB_OK, "%s", err);
    ck_assert_int_eq(sh.n_layer, 6);
    ck_assert_int_eq(sh.n_embd, 256);
    ck_assert_int_eq(sh.n_head, 8);
    ck_assert_int_eq(sh.n_head_kv, 4);
    ck_assert_int_eq(sh.n_ff, 688);
    ck_assert_int_eq(sh.n_rot, 32);
    ck_assert_int_eq(sh.n_ctx_train, 512);
    ck_assert_int_eq(sh.n_vocab, 4096);
    ck_assert_uint_eq(sh.weight_bytes, 6837056);
    /* the same estimate as the engine's for the same options */
    ck_assert_int_eq(eng_model_open(rbt_model_q8(), NULL, &m, err, sizeof err), RB_OK);
    sp.n_threads = 2;
    ck_assert_int_eq(eng_model_estimate_memory(m, &sp, 3, &ee, err, sizeof err), RB_OK);
    run.n_ctx = rb_mem_ctx(-1, sh.n_ctx_train);
    run.slots = 3;
    run.threads = 2;
    rb_mem_estimate_compute(&sh, &run, &he);
    ck_assert_uint_eq(he.total, ee.total);
    ck_assert_uint_eq(he.kv, ee.kv);
    eng_model_free(m);

    /* a truncated copy, a fake file and absurd counts are refused with a message */
    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    {
        FILE *bad = fopen(path, "wb"); /* the magic and a version, then noise */
        ck_assert_ptr_nonnull(bad);
        fwrite("GGUF\3\0\0\0", 1, 8, bad);
        for (int i = 8; i < 4096; i++)
            fputc(i * 131 % 251, bad);
        fclose(bad);
    }
    ck_assert_int_eq(hive_gguf_shape(path, &sh, err, sizeof err), RB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "bad.gguf"));
    {
        static const uint8_t head[] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                       /* 2^40 metadata entries */
                                       0, 0, 0, 0, 0, 1, 0, 0};
        f = fopen(path, "wb");
        fwrite(head, 1, sizeof head, f);
        fclose(f);
        ck_assert_int_eq(hive_gguf_shape(path, &sh, err, sizeof err), RB_EFORMAT);
    }
    {
        FILE *in = fopen(rbt_model_q8(), "rb");
        char buf[700];
        size_t n = fread(buf, 1, sizeof buf, in); /* cut inside the token list */
        fclose(in);
        f = fopen(path, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        ck_assert_int_eq(hive_gguf_shape(path, &sh, err, sizeof err), RB_EFORMAT);
        ck_assert_ptr_nonnull(strstr(err, "truncated"));
    }
    snprintf(path, sizeof path, "%s/none.gguf", dir);
    ck_assert_int_eq(hive_gguf_shape(path, &sh, err, sizeof err), RB_EIO);
    rbt_rmtree(dir);
}
END_TEST

START_TEST(test_hive_units_log_tail_keeps_the_newest_line)
{
    char dir[4096], path[4200], tail[256];
    FILE *f;

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/w.log", dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("first line\n", f);
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < 100; k++)
            fputc('x', f);
        fputc('\n', f);
    }
    fputs("llm-worker-rbee: cannot open model: not a GGUF file\n\n", f);
    fclose(f);
    hive_log_tail(path, 8, tail, sizeof tail);
    ck_assert_uint_lt(strlen(tail), sizeof tail);
    ck_assert_msg(strncmp(tail, "...", 3) == 0, "%s", tail);
    ck_assert_msg(strstr(tail, "xx | llm-worker-rbee: cannot open model: not a GGUF file") != NULL,
                  "%s", tail);
    ck_assert_ptr_null(strstr(tail, "first line"));
    /* short tails are whole, lines joined by " | " */
    f = fopen(path, "w");
    fputs("a\r\nb\n", f);
    fclose(f);
    hive_log_tail(path, 8, tail, sizeof tail);
    ck_assert_str_eq(tail, "a | b");
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hive_units");
    TCase *tc = rbt_tcase(s, "units", 20);
    tcase_add_test(tc, test_hive_units_modelref_parse);
    tcase_add_test(tc, test_hive_units_pick_gguf);
    tcase_add_test(tc, test_hive_units_bundled_model_search);
    tcase_add_test(tc, test_hive_units_catalog);
    tcase_add_test(tc, test_hive_units_registry_states);
    tcase_add_test(tc, test_hive_units_registry_reaps_only_started_workers);
    tcase_add_test(tc, test_hive_units_ram_estimate);
    tcase_add_test(tc, test_hive_units_gguf_shape);
    tcase_add_test(tc, test_hive_units_log_tail_keeps_the_newest_line);
    return rbt_run(s);
}
