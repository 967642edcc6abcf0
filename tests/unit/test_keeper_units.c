/*
 * Unit tests of the keeper's parts that need no hive: option parsing, token lookup and its
 * precedence, version compatibility, the node registry and worker cache, and the output in
 * text and JSON. No sockets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kpr_args.h"
#include "kpr_ctx.h"
#include "kpr_hive.h"
#include "kpr_out.h"
#include "kpr_store.h"
#include "rb_http.h"
#include "rb_test.h"
#include "rb_util.h"

static char home[4096];

static void setup(void)
{
    rbt_tmpdir(home);
    setenv("RBEE_HOME", home, 1);
    unsetenv("RBEE_API_TOKEN");
    unsetenv("RBEE_HIVE_PORT");
}

static void teardown(void)
{
    rbt_rmtree(home);
}

static void write_config(const char *text, mode_t mode)
{
    char path[4200];
    FILE *f;
    snprintf(path, sizeof path, "%s/config.json", home);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

START_TEST(test_args_parse_types_and_positionals)
{
    const char *prompt = NULL, *pos[2];
    long long n = 128;
    double t = 0.7;
    unsigned long long seed = 0;
    int json = 0, seen_t = 0;
    size_t npos = 0;
    char err[256];
    const rb_opt opts[] = {
        {"--prompt", RB_OPT_STR, &prompt, 0, 0, NULL},
        {"--max-tokens", RB_OPT_LLONG, &n, 1, 2048, NULL},
        {"--temperature", RB_OPT_NUM, &t, 0, 2, &seen_t},
        {"--seed", RB_OPT_U64, &seed, 0, 0, NULL},
        {"--json", RB_OPT_FLAG, &json, 0, 0, NULL},
    };
    char *argv[] = {
        "REF",           "--prompt", "--not-an-option", "--max-tokens",        "64", "--json",
        "--temperature", "0",        "--seed",          "18446744073709551615"};

    ck_assert_int_eq(rb_args_parse("rbee x", 10, argv, opts, 5, pos, 2, &npos, err, sizeof err), 0);
    ck_assert_str_eq(prompt, "--not-an-option"); /* a value may look like an option */
    ck_assert_int_eq(n, 64);
    ck_assert_double_eq(t, 0);
    ck_assert_int_eq(seen_t, 1);
    ck_assert(seed == 18446744073709551615ULL);
    ck_assert_int_eq(json, 1);
    ck_assert_int_eq(npos, 1);
    ck_assert_str_eq(pos[0], "REF");
}
END_TEST

/* A bare path is a file: model with an absolute path; references stay as they are. */
START_TEST(test_args_bare_path_is_a_file_model)
{
    char out[8192], want[8192], cwd[4096], err[256];

    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(kpr_ref_with_file("infer", "./x.gguf", NULL, out, sizeof out, err, sizeof err),
                     RB_OK);
    snprintf(want, sizeof want, "file:%s/x.gguf", cwd);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(kpr_ref_with_file("infer", "m/x.GGUF", NULL, out, sizeof out, err, sizeof err),
                     RB_OK);
    snprintf(want, sizeof want, "file:%s/m/x.GGUF", cwd);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(
        kpr_ref_with_file("infer", "/abs/x.gguf", NULL, out, sizeof out, err, sizeof err), RB_OK);
    ck_assert_str_eq(out, "file:/abs/x.gguf");
    ck_assert_int_eq(kpr_ref_with_file("infer", "kjv", NULL, out, sizeof out, err, sizeof err),
                     RB_OK);
    ck_assert_str_eq(out, "kjv");
    ck_assert_int_eq(
        kpr_ref_with_file("infer", "hf:a/b/c.gguf", NULL, out, sizeof out, err, sizeof err), RB_OK);
    ck_assert_str_eq(out, "hf:a/b/c.gguf");
}
END_TEST

START_TEST(test_args_errors_name_the_option)
{
    long long n = 1;
    const char *s = NULL;
    char err[256];
    const rb_opt opts[] = {{"--max-tokens", RB_OPT_LLONG, &n, 1, 2048, NULL},
                           {"--node", RB_OPT_STR, &s, 0, 0, NULL}};
    char *bad_int[] = {"--max-tokens", "zero"};
    char *too_big[] = {"--max-tokens", "2049"};
    char *missing[] = {"--max-tokens"};
    char *unknown[] = {"--max-token", "3"};
    char *empty[] = {"--node", ""};
    char *extra[] = {"stray"};

    ck_assert_int_eq(
        rb_args_parse("rbee infer", 2, bad_int, opts, 2, NULL, 0, NULL, err, sizeof err),
        RB_EINVAL);
    ck_assert_str_eq(err, "rbee infer: --max-tokens takes an integer from 1 to 2048, not 'zero'");
    ck_assert_int_eq(
        rb_args_parse("rbee infer", 2, too_big, opts, 2, NULL, 0, NULL, err, sizeof err),
        RB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "'2049'"));
    ck_assert_int_eq(
        rb_args_parse("rbee infer", 1, missing, opts, 2, NULL, 0, NULL, err, sizeof err),
        RB_EINVAL);
    ck_assert_str_eq(err, "rbee infer: --max-tokens needs a value");
    ck_assert_int_eq(
        rb_args_parse("rbee infer", 2, unknown, opts, 2, NULL, 0, NULL, err, sizeof err),
        RB_EINVAL);
    ck_assert_str_eq(err, "rbee infer: unknown option --max-token");
    ck_assert_int_eq(rb_args_parse("rbee infer", 2, empty, opts, 2, NULL, 0, NULL, err, sizeof err),
                     RB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--node needs a non-empty value"));
    ck_assert_int_eq(rb_args_parse("rbee infer", 1, extra, opts, 2, NULL, 0, NULL, err, sizeof err),
                     RB_EINVAL);
    ck_assert_str_eq(err, "rbee infer: unexpected argument 'stray'");
    ck_assert_int_eq(n, 1); /* nothing stored from a bad value */
}
END_TEST

START_TEST(test_versions_are_compatible_on_major_and_minor)
{
    ck_assert(kpr_version_compatible("0.1.0", "0.1.0"));
    ck_assert(kpr_version_compatible("0.1.0", "0.1.7"));
    ck_assert(!kpr_version_compatible("0.1.0", "0.2.0"));
    ck_assert(!kpr_version_compatible("0.1.0", "9.9.9"));
    ck_assert(!kpr_version_compatible("0.1.0", "garbage"));
    ck_assert(!kpr_version_compatible("0.1.0", NULL));
}
END_TEST

/* The token with its source for node, through a fresh context. */
static rb_err lookup(const char *node, char *tok, char *src, kpr_fail *f)
{
    kpr_ctx c;
    rb_err rc;
    kpr_ctx_init(&c, NULL, 1);
    rc = kpr_token_lookup(&c, node, tok, KPR_TOKEN_MAX, src, 4200, f);
    kpr_ctx_release(&c);
    return rc;
}

START_TEST(test_tokens_most_specific_source_wins)
{
    char tok[KPR_TOKEN_MAX], src[4200];
    kpr_fail f;

    kpr_fail_init(&f);
    ck_assert_int_eq(lookup("gpu1", tok, src, &f), RB_OK);
    ck_assert_str_eq(tok, "");
    ck_assert_ptr_nonnull(strstr(src, "no token is configured"));

    write_config("{\"token\":\"file-default\",\"nodes\":{\"gpu1\":{\"token\":\"gpu1-secret\"}}}",
                 0600);
    ck_assert_int_eq(lookup("gpu2", tok, src, &f), RB_OK);
    ck_assert_str_eq(tok, "file-default");
    ck_assert_ptr_nonnull(strstr(src, "config.json (token)"));
    setenv("RBEE_API_TOKEN", "from-env", 1);
    ck_assert_int_eq(lookup("gpu2", tok, src, &f), RB_OK);
    ck_assert_str_eq(tok, "from-env");
    ck_assert_str_eq(src, "the RBEE_API_TOKEN environment variable");
    ck_assert_int_eq(lookup("gpu1", tok, src, &f), RB_OK);
    ck_assert_str_eq(tok, "gpu1-secret");
    ck_assert_ptr_nonnull(strstr(src, "(nodes.gpu1.token)"));
}
END_TEST

START_TEST(test_tokens_bad_config_is_an_error)
{
    char tok[KPR_TOKEN_MAX], src[4200];
    kpr_fail f;

    kpr_fail_init(&f);
    write_config("{\"token\": ", 0600);
    ck_assert_int_eq(lookup("gpu1", tok, src, &f), RB_EFORMAT);
    ck_assert_str_eq(f.code, "BAD_CONFIG");
    ck_assert_ptr_nonnull(strstr(f.message, "config.json"));
    kpr_fail_release(&f);
    write_config("[1,2]", 0600);
    kpr_fail_init(&f);
    ck_assert_int_eq(lookup("gpu1", tok, src, &f), RB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(f.message, "not a JSON object"));
    kpr_fail_release(&f);
}
END_TEST

START_TEST(test_targets_localhost_port_and_unknown_nodes)
{
    kpr_ctx c;
    kpr_target t;
    kpr_fail f;

    kpr_ctx_init(&c, NULL, 1);
    kpr_fail_init(&f);
    ck_assert_int_eq(kpr_target_resolve(&c, NULL, NULL, &t, &f), RB_OK);
    ck_assert_str_eq(t.name, "localhost");
    ck_assert_str_eq(t.hive_url, "http://127.0.0.1:8080");
    ck_assert(t.is_local);
    setenv("RBEE_HIVE_PORT", "9123", 1);
    ck_assert_int_eq(kpr_target_resolve(&c, "localhost", NULL, &t, &f), RB_OK);
    ck_assert_str_eq(t.hive_url, "http://127.0.0.1:9123");
    ck_assert_int_eq(kpr_target_resolve(&c, NULL, "http://h:1/", &t, &f), RB_OK);
    ck_assert_str_eq(t.hive_url, "http://h:1");
    ck_assert(!t.is_local);
    ck_assert_int_eq(kpr_target_resolve(&c, "nowhere", NULL, &t, &f), RB_ENOTFOUND);
    ck_assert_str_eq(f.code, "UNKNOWN_NODE");
    kpr_fail_release(&f);
    kpr_fail_init(&f);
    setenv("RBEE_HIVE_PORT", "http", 1);
    ck_assert_int_eq(kpr_target_resolve(&c, NULL, NULL, &t, &f), RB_EINVAL);
    ck_assert_ptr_nonnull(strstr(f.message, "RBEE_HIVE_PORT"));
    kpr_fail_release(&f);
    kpr_ctx_release(&c);
}
END_TEST

START_TEST(test_store_nodes)
{
    kpr_store *st;
    kpr_node n = {0}, got, *all;
    size_t count;
    char err[256];

    ck_assert_int_eq(kpr_store_open(home, &st, err, sizeof err), RB_OK);
    snprintf(n.name, sizeof n.name, "gpu1");
    snprintf(n.ssh_host, sizeof n.ssh_host, "10.0.0.5");
    snprintf(n.hive_bin, sizeof n.hive_bin, "rbee-hive");
    n.ssh_port = 22;
    n.hive_port = 9090;
    ck_assert_int_eq(kpr_node_add(st, &n), RB_OK);
    ck_assert_int_eq(kpr_node_add(st, &n), RB_EEXIST);
    snprintf(n.name, sizeof n.name, "a-first");
    ck_assert_int_eq(kpr_node_add(st, &n), RB_OK);
    ck_assert_int_eq(kpr_node_get(st, "gpu1", &got), RB_OK);
    ck_assert_int_eq(got.hive_port, 9090);
    ck_assert_int_eq(kpr_node_list(st, &all, &count), RB_OK);
    ck_assert_int_eq(count, 2);
    ck_assert_str_eq(all[0].name, "a-first");
    free(all);
    ck_assert_int_eq(kpr_node_remove(st, "gpu1"), RB_OK);
    ck_assert_int_eq(kpr_node_remove(st, "gpu1"), RB_ENOTFOUND);
    ck_assert_int_eq(kpr_node_get(st, "gpu1", &got), RB_ENOTFOUND);
    kpr_store_close(st);
}
END_TEST

START_TEST(test_store_worker_cache)
{
    kpr_store *st;
    kpr_cached_worker w = {0}, found[4];
    size_t n;
    char err[256];

    ck_assert_int_eq(kpr_store_open(home, &st, err, sizeof err), RB_OK);
    snprintf(w.hive_url, sizeof w.hive_url, "http://127.0.0.1:8080");
    snprintf(w.model_ref, sizeof w.model_ref, "kjv");
    snprintf(w.backend, sizeof w.backend, "cpu");
    snprintf(w.id, sizeof w.id, "worker-old");
    w.last_used_unix = 100;
    ck_assert_int_eq(kpr_worker_put(st, &w), RB_OK);
    snprintf(w.id, sizeof w.id, "worker-new");
    w.last_used_unix = 200;
    ck_assert_int_eq(kpr_worker_put(st, &w), RB_OK);
    snprintf(w.id, sizeof w.id, "worker-other-hive");
    snprintf(w.hive_url, sizeof w.hive_url, "http://10.0.0.5:8080");
    ck_assert_int_eq(kpr_worker_put(st, &w), RB_OK);

    ck_assert_int_eq(kpr_worker_find(st, "http://127.0.0.1:8080", "kjv", "cpu", 0, found, 4, &n),
                     RB_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(found[0].id, "worker-new"); /* most recently used first */
    ck_assert_int_eq(kpr_worker_find(st, "http://127.0.0.1:8080", "kjv", "cuda", 0, found, 4, &n),
                     RB_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(kpr_worker_touch(st, "worker-old"), RB_OK);
    kpr_worker_find(st, "http://127.0.0.1:8080", "kjv", "cpu", 0, found, 4, &n);
    ck_assert_str_eq(found[0].id, "worker-old");
    ck_assert_int_eq(kpr_worker_remove_hive(st, "http://127.0.0.1:8080"), RB_OK);
    kpr_worker_find(st, "http://127.0.0.1:8080", "kjv", "cpu", 0, found, 4, &n);
    ck_assert_int_eq(n, 0);
    kpr_worker_find(st, "http://10.0.0.5:8080", "kjv", "cpu", 0, found, 4, &n);
    ck_assert_int_eq(n, 1);
    kpr_store_close(st);
}
END_TEST

/* Runs fn with stdout and stderr sent to files; returns their texts (caller frees). */
static void capture(void (*fn)(kpr_out *), int json, char **out, char **err)
{
    char po[4200], pe[4200];
    kpr_out o;
    int save_out = dup(1), save_err = dup(2);

    snprintf(po, sizeof po, "%s/out", home);
    snprintf(pe, sizeof pe, "%s/err", home);
    fflush(stdout);
    fflush(stderr);
    ck_assert_ptr_nonnull(freopen(po, "w", stdout));
    ck_assert_ptr_nonnull(freopen(pe, "w", stderr));
    kpr_out_init(&o, json);
    fn(&o);
    fflush(stdout);
    fflush(stderr);
    dup2(save_out, 1);
    dup2(save_err, 2);
    close(save_out);
    close(save_err);
    *out = rbt_slurp(po);
    *err = rbt_slurp(pe);
}

static void some_events(kpr_out *o)
{
    kpr_summary sum = {3, 1500, 20, "MAX_TOKENS"};
    kpr_fail f;

    kpr_out_phase(o, 2, "Hive preflight: %s", "ok");
    for (int pct = 0; pct <= 100; pct += 4) {
        kpr_progress p = {3, KPR_PROGRESS_BYTES, pct * 1000000LL / 100, 1000000, 2.0};
        kpr_out_progress(o, &p);
    }
    kpr_out_progress_end(o);
    kpr_out_token(o, 0, "In");
    kpr_out_token(o, 1, " the");
    kpr_out_tokens_end(o);
    kpr_out_summary(o, &sum);
    kpr_fail_init(&f);
    kpr_fail_set(&f, "WORKER_BUSY", "Worker %s is busy", "w1");
    kpr_fail_line(&f, "Tokens generated: %d / %d", 2, 10);
    kpr_fail_hint(&f, "try again");
    kpr_out_fail(o, &f);
}

START_TEST(test_output_text_keeps_tokens_alone_on_stdout)
{
    char *out, *err;

    capture(some_events, 0, &out, &err);
    ck_assert_str_eq(out, "In the\n");
    ck_assert_ptr_nonnull(strstr(err, "[Phase 2] Hive preflight: ok\n"));
    /* Not a terminal: one plain progress line per 10 % step, 0 % to 100 %. */
    ck_assert_ptr_nonnull(
        strstr(err, "[Phase 3] downloading: 0% (0.0 / 1.0 MB, 2.0 MB/s, ETA 0:01)\n"));
    ck_assert_ptr_nonnull(strstr(err, "[Phase 3] downloading: 100% (1.0 / 1.0 MB, 2.0 MB/s)\n"));
    ck_assert_ptr_null(strstr(err, "\r"));
    ck_assert_ptr_nonnull(
        strstr(err, "[Summary] 3 tokens in 1.50 s (2.0 tokens/s), first token after 20 ms, stop: "
                    "MAX_TOKENS\n"));
    ck_assert_ptr_nonnull(strstr(err, "Error: Worker w1 is busy\nTokens generated: 2 / 10\n"
                                      "Suggestion: try again\n"));
    {
        int lines = 0;
        for (const char *p = strstr(err, "downloading: "); p; p = strstr(p + 1, "downloading: "))
            lines++;
        ck_assert_int_eq(lines, 11);
    }
    free(out);
    free(err);
}
END_TEST

static void coloured_events(kpr_out *o)
{
    kpr_fail f;
    kpr_progress p = {3, KPR_PROGRESS_BYTES, 100 * 1000000LL, 7400 * 1000000LL, 2.0};

    o->tty = 1;
    o->color = 1;
    kpr_out_note(o, "Warning: %s", "max_tokens 9000 is more than the context holds");
    kpr_out_note(o, "Model: %s", "plain");
    kpr_out_progress(o, &p);
    kpr_out_progress_end(o);
    kpr_fail_init(&f);
    kpr_fail_set(&f, "X", "it broke");
    kpr_fail_hint(&f, "fix it");
    kpr_out_fail(o, &f);
}

START_TEST(test_output_colours_errors_and_warnings_on_a_terminal_and_shows_an_eta)
{
    char *out, *err;

    ck_assert_int_eq(kpr_out_color_wanted(1, NULL, "xterm-256color"), 1);
    ck_assert_int_eq(kpr_out_color_wanted(1, "", "xterm"), 1);
    ck_assert_int_eq(kpr_out_color_wanted(1, "1", "xterm"), 0);
    ck_assert_int_eq(kpr_out_color_wanted(1, NULL, "dumb"), 0);
    ck_assert_int_eq(kpr_out_color_wanted(0, NULL, "xterm"), 0);
    capture(coloured_events, 0, &out, &err);
    ck_assert_msg(strstr(err, "\033[1;33mWarning:\033[0m max_tokens 9000 is more than the context "
                              "holds\n") != NULL,
                  "%s", err);
    ck_assert_msg(strstr(err, "Model: plain\n") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "\033[1;31mError:\033[0m it broke\n") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "\033[1;36mSuggestion:\033[0m fix it\n") != NULL, "%s", err);
    /* 7,300 MB left at 2 MB/s: 3,650 s */
    ck_assert_msg(strstr(err, "100.0 / 7400.0 MB, 2.0 MB/s, ETA 1:00:50") != NULL, "%s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_output_phase_lines_show_short_worker_ids)
{
    char b[64];

    ck_assert_str_eq(kpr_short_id("worker-f734964d-8f15-4591-a9cf-94bfffb6760e", b, sizeof b),
                     "worker-f734964d");
    ck_assert_str_eq(kpr_short_id("worker-1", b, sizeof b), "worker-1");
    ck_assert_str_eq(kpr_short_id("my-worker", b, sizeof b), "my-worker");
}
END_TEST

START_TEST(test_output_json_is_one_object_per_line)
{
    char *out, *err, *save = NULL;
    int n = 0;
    const char *last = "";

    capture(some_events, 1, &out, &err);
    ck_assert_str_eq(err, "");
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *ev = json_loads(line, 0, NULL);
        ck_assert_msg(json_is_object(ev), "not JSON: %s", line);
        last = json_string_value(json_object_get(ev, "event"));
        ck_assert_ptr_nonnull(last);
        if (strcmp(last, "error") == 0) {
            ck_assert_str_eq(json_string_value(json_object_get(ev, "code")), "WORKER_BUSY");
            ck_assert_str_eq(json_string_value(json_object_get(ev, "suggestion")), "try again");
        }
        json_decref(ev);
        n++;
    }
    ck_assert_int_eq(n, 1 + 26 + 2 + 1 + 1); /* phase, progress, tokens, summary, error */
    free(out);
    free(err);
}
END_TEST

START_TEST(test_hive_urls_are_normalised)
{
    static const char *const cases[][2] = {
        {"http://localhost:8080", "http://127.0.0.1:8080"},
        {"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
        {"http://LOCALHOST:8080", "http://127.0.0.1:8080"},
        {"HTTP://Gpu1.Example:9000//", "http://gpu1.example:9000"},
        {"http://10.0.0.5", "http://10.0.0.5:80"},
        {"https://hive.example/", "https://hive.example:443"},
        {"http://[::1]:8080/", "http://[::1]:8080"},
        {"http://proxy:81/rbee/", "http://proxy:81/rbee"},
    };
    static const char *const bad[] = {"localhost:8080", "ftp://x:1",      "http://",
                                      "http://x:0",     "http://x:99999", "http://x:8080abc",
                                      "http://:8080"};
    char out[KPR_URL_MAX];
    kpr_store *st;
    kpr_cached_worker w = {0}, got[2];
    char err[256];
    size_t n = 0;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(kpr_hive_url_norm(cases[i][0], out, sizeof out), RB_OK);
        ck_assert_str_eq(out, cases[i][1]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(kpr_hive_url_norm(bad[i], out, sizeof out) == RB_EINVAL, "%s", bad[i]);
        ck_assert_str_eq(out, "");
    }
    /* the cache stores and compares the normal form: three spellings, one hive */
    ck_assert_int_eq(kpr_store_open(home, &st, err, sizeof err), RB_OK);
    snprintf(w.id, sizeof w.id, "worker-1");
    snprintf(w.hive_url, sizeof w.hive_url, "http://LOCALHOST:8080/");
    snprintf(w.model_ref, sizeof w.model_ref, "kjv");
    snprintf(w.backend, sizeof w.backend, "cpu");
    ck_assert_int_eq(kpr_worker_put(st, &w), RB_OK);
    ck_assert_int_eq(kpr_worker_find(st, "http://localhost:8080", "kjv", "cpu", 0, got, 2, &n),
                     RB_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(got[0].hive_url, "http://127.0.0.1:8080");
    ck_assert_int_eq(kpr_worker_find(st, "http://127.0.0.1:8080/", "kjv", "cpu", 0, got, 2, &n),
                     RB_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(kpr_worker_remove_hive(st, "http://LocalHost:8080"), RB_OK);
    ck_assert_int_eq(kpr_worker_find(st, "http://127.0.0.1:8080", "kjv", "cpu", 0, got, 2, &n),
                     RB_OK);
    ck_assert_int_eq(n, 0);
    kpr_store_close(st);
}
END_TEST

START_TEST(test_worker_ids_by_unique_prefix)
{
    json_t *ws = json_pack("[{s:s}, {s:s}, {s:s}]", "id", "worker-ab12", "id", "worker-ab34", "id",
                           "worker-c");
    char id[64], ids[256];

    ck_assert_int_eq(kpr_workers_match(ws, "worker-ab1", id, sizeof id, ids, sizeof ids), 1);
    ck_assert_str_eq(id, "worker-ab12");
    ck_assert_int_eq(kpr_workers_match(ws, "worker-ab", id, sizeof id, ids, sizeof ids), 2);
    ck_assert_str_eq(ids, "worker-ab12, worker-ab34");
    ck_assert_int_eq(kpr_workers_match(ws, "worker-c", id, sizeof id, ids, sizeof ids), 1);
    ck_assert_str_eq(id, "worker-c");
    ck_assert_int_eq(kpr_workers_match(ws, "worker-x", id, sizeof id, ids, sizeof ids), 0);
    ck_assert_int_eq(kpr_workers_match(ws, "", id, sizeof id, ids, sizeof ids), 0);
    json_decref(ws);
}
END_TEST

START_TEST(test_worker_fate_only_gone_when_the_hive_says_so)
{
    kpr_reply r;
    json_t *e;
    char why[512];
    const char *base = "http://127.0.0.1:8080";

    memset(&r, 0, sizeof r);
    snprintf(r.err, sizeof r.err, "Connection refused");
    ck_assert_int_eq(kpr_worker_fate(RB_ECONNECT, &r, base, "w1", &e, why, sizeof why),
                     KPR_FATE_UNKNOWN);
    ck_assert_str_eq(why, "cannot reach the hive at http://127.0.0.1:8080: Connection refused");

    memset(&r, 0, sizeof r);
    r.status = 401;
    snprintf(r.code, sizeof r.code, "INVALID_API_KEY");
    ck_assert_int_eq(kpr_worker_fate(RB_OK, &r, base, "w1", &e, why, sizeof why), KPR_FATE_UNKNOWN);
    ck_assert_str_eq(why, "the hive at http://127.0.0.1:8080 refused the keeper's token (401 "
                          "INVALID_API_KEY)");
    r.status = 403;
    r.code[0] = '\0';
    ck_assert_int_eq(kpr_worker_fate(RB_OK, &r, base, "w1", &e, why, sizeof why), KPR_FATE_UNKNOWN);
    ck_assert_str_eq(why, "the hive at http://127.0.0.1:8080 refused the keeper's token (403 "
                          "Forbidden)");

    memset(&r, 0, sizeof r);
    r.status = 404;
    ck_assert_int_eq(kpr_worker_fate(RB_OK, &r, base, "w1", &e, why, sizeof why), KPR_FATE_UNKNOWN);
    ck_assert_str_eq(why, "the program at http://127.0.0.1:8080 does not answer as a hive (404)");
    r.status = 200;
    r.body = json_pack("{s:s}", "status", "ok");
    ck_assert_int_eq(kpr_worker_fate(RB_OK, &r, base, "w1", &e, why, sizeof why), KPR_FATE_UNKNOWN);
    ck_assert_str_eq(why, "the program at http://127.0.0.1:8080 does not answer as a hive (200 "
                          "without a worker list)");
    json_decref(r.body);

    r.body = json_pack("{s:[{s:s, s:s}]}", "workers", "id", "w1", "state", "idle");
    ck_assert_int_eq(kpr_worker_fate(RB_OK, &r, base, "w1", &e, why, sizeof why), KPR_FATE_LISTED);
    ck_assert_str_eq(kpr_jstr(e, "state"), "idle");
    ck_assert_int_eq(kpr_worker_fate(RB_OK, &r, base, "w2", &e, why, sizeof why), KPR_FATE_GONE);
    ck_assert_ptr_null(e);
    json_decref(r.body);
}
END_TEST

static void bad_utf8_events(kpr_out *o)
{
    kpr_fail f;

    kpr_out_phase(o, 3, "Model: %s", "caf\xc3"); /* a cut in the middle of a character */
    kpr_fail_init(&f);
    kpr_fail_set(&f, "HIVE_START_FAILED", "it exited: %s", "bad \xff byte");
    kpr_fail_line(&f, "log: \xfe");
    kpr_out_fail(o, &f);
}

START_TEST(test_output_json_keeps_messages_with_invalid_utf8)
{
    char *out, *err, *save = NULL, *line;
    json_t *phase, *fail;

    capture(bad_utf8_events, 1, &out, &err);
    line = strtok_r(out, "\n", &save);
    phase = line ? json_loads(line, 0, NULL) : NULL;
    line = strtok_r(NULL, "\n", &save);
    fail = line ? json_loads(line, 0, NULL) : NULL;
    ck_assert_msg(phase && fail, "events missing: %s", out);
    ck_assert_str_eq(json_string_value(json_object_get(phase, "message")),
                     "Model: caf\xef\xbf\xbd");
    ck_assert_str_eq(json_string_value(json_object_get(fail, "message")),
                     "it exited: bad \xef\xbf\xbd byte");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(fail, "lines"), 0)),
                     "log: \xef\xbf\xbd");
    json_decref(phase);
    json_decref(fail);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_http_errors_name_the_status_and_the_envelope)
{
    rb_sse_result res;
    char msg[512];

    rb_sse_result_init(&res);
    res.status = 404;
    kpr_http_error(&res, "worker", msg, sizeof msg);
    ck_assert_str_eq(msg, "the worker answered 404 Not Found");
    rb_buf_appends(&res.body,
                   "{\"error\":{\"code\":\"MODEL_IN_USE\",\"message\":\"a worker serves it\"}}");
    res.status = 409;
    kpr_http_error(&res, "hive", msg, sizeof msg);
    ck_assert_str_eq(msg, "the hive answered 409 MODEL_IN_USE: a worker serves it");
    rb_sse_result_release(&res);
    ck_assert_str_eq(rb_http_reason(599), "HTTP error");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keeper_units");
    TCase *tc = rbt_tcase(s, "units", 30);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_args_parse_types_and_positionals);
    tcase_add_test(tc, test_args_errors_name_the_option);
    tcase_add_test(tc, test_args_bare_path_is_a_file_model);
    tcase_add_test(tc, test_versions_are_compatible_on_major_and_minor);
    tcase_add_test(tc, test_tokens_most_specific_source_wins);
    tcase_add_test(tc, test_tokens_bad_config_is_an_error);
    tcase_add_test(tc, test_targets_localhost_port_and_unknown_nodes);
    tcase_add_test(tc, test_store_nodes);
    tcase_add_test(tc, test_store_worker_cache);
    tcase_add_test(tc, test_output_text_keeps_tokens_alone_on_stdout);
    tcase_add_test(tc, test_output_json_is_one_object_per_line);
    tcase_add_test(tc, test_output_phase_lines_show_short_worker_ids);
    tcase_add_test(tc, test_output_colours_errors_and_warnings_on_a_terminal_and_shows_an_eta);
    tcase_add_test(tc, test_hive_urls_are_normalised);
    tcase_add_test(tc, test_worker_ids_by_unique_prefix);
    tcase_add_test(tc, test_worker_fate_only_gone_when_the_hive_says_so);
    tcase_add_test(tc, test_output_json_keeps_messages_with_invalid_utf8);
    tcase_add_test(tc, test_http_errors_name_the_status_and_the_envelope);
    return rbt_run(s);
}
