/*
 * Tests of the model tool's run-and-write commands (spec/engine_forward.feature): the real
 * rbee-gguf binary on the bundled model. The scenario that needs a vocabulary from
 * ../shared/data is in test_engine_tools_data.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eng.h"
#include "eng_gguf.h"
#include "eng_tools.h"
#include "rb_models.h"
#include "rb_procs.h"
#include "rb_util.h"
#include "rb_test.h"

/* Runs rbee-gguf with args, output to log; returns the exit status (-1 on timeout). */
static int run_tool(char *const args[], const char *log, int timeout_ms)
{
    int st;
    pid_t pid = rbt_spawn(args, NULL, log);
    if (!rbt_wait_exit(pid, timeout_ms, &st)) {
        rbt_kill(pid);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Scenario: rbee-gguf generate streams the continuation */
START_TEST(test_engine_forward__rbee_gguf_generate_streams_the_continuation)
{
    char dir[4096], log[4200];
    char *out;
    const char *model = rbt_model_f16();
    rbt_reference ref;

    ck_assert_ptr_nonnull(model);
    ck_assert_int_eq(rbt_reference_load(model, &ref), 0);
    rbt_tmpdir(dir);
    snprintf(log, sizeof log, "%s/out.txt", dir);
    char *args[] = {(char *)rbt_bin("rbee-gguf"),
                    "generate",
                    (char *)model,
                    "--prompt",
                    "In the beginning",
                    "-n",
                    "16",
                    "--temp",
                    "0",
                    NULL};
    ck_assert_int_eq(run_tool(args, log, 30000), 0);
    out = rbt_slurp(log);
    ck_assert_ptr_nonnull(out);
    /* The continuation only: not the prompt, and the reference's greedy text starts it. */
    ck_assert_ptr_null(strstr(out, "In the beginning"));
    ck_assert_msg(strncmp(out, " of the earth", 13) == 0, "output: %s", out);
    free(out);
    /* Bad input: one line, exit 1. */
    char *bad[] = {
        (char *)rbt_bin("rbee-gguf"), "generate", "/nonexistent.gguf", "--prompt", "x", NULL};
    ck_assert_int_eq(run_tool(bad, log, 30000), 1);
    ck_assert(rbt_file_contains(log, "cannot open model '/nonexistent.gguf'"));
    rbt_reference_release(&ref);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: rbee-gguf quantize and random make loadable files */
START_TEST(test_engine_forward__rbee_gguf_quantize_and_random_make_loadable_files)
{
    char dir[4096], q8[4200], rnd[4200], log[4200];
    eng_model *m;
    eng_model_info info;
    char err[256];

    rbt_tmpdir(dir);
    snprintf(q8, sizeof q8, "%s/q8.gguf", dir);
    snprintf(rnd, sizeof rnd, "%s/rnd.gguf", dir);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    char *qa[] = {
        (char *)rbt_bin("rbee-gguf"), "quantize", (char *)rbt_model_f16(), q8, "q8_0", NULL};
    ck_assert_int_eq(run_tool(qa, log, 60000), 0);
    char *ra[] = {
        (char *)rbt_bin("rbee-gguf"), "random", rnd, "--like", "tiny", "--type", "q4_0", NULL};
    ck_assert_int_eq(run_tool(ra, log, 60000), 0);
    char *ia[] = {(char *)rbt_bin("rbee-gguf"), "info", q8, NULL};
    ck_assert_int_eq(run_tool(ia, log, 30000), 0);
    ck_assert(rbt_file_contains(log, "blk.0.attn_q.weight"));
    ck_assert(rbt_file_contains(log, "q8_0"));

    ck_assert_int_eq(eng_model_open(q8, NULL, &m, err, sizeof err), RB_OK);
    eng_model_get_info(m, &info);
    ck_assert_int_eq(info.main_type, ENG_TYPE_Q8_0);
    eng_model_free(m);
    ck_assert_int_eq(eng_model_open(rnd, NULL, &m, err, sizeof err), RB_OK);
    eng_model_get_info(m, &info);
    ck_assert_int_eq(info.main_type, ENG_TYPE_Q4_0);
    ck_assert_int_eq(info.n_layer, 2);
    eng_model_free(m);
    /* An unknown type is refused with the list of known ones. */
    char *bad[] = {
        (char *)rbt_bin("rbee-gguf"), "quantize", (char *)rbt_model_f16(), q8, "q3_x", NULL};
    ck_assert_int_eq(run_tool(bad, log, 30000), 1);
    ck_assert(rbt_file_contains(log, "unknown type 'q3_x'"));
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: The Q4_K_M mix follows llama.cpp's rules */
START_TEST(test_engine_forward__the_q4_k_m_mix_follows_llama_cpp_s_rules)
{
    char dir[4096], out[4200], err[256];
    eng_gguf *g = NULL;
    int checked = 0;

    rbt_tmpdir(dir);
    snprintf(out, sizeof out, "%s/q4km.gguf", dir);
    ck_assert_msg(eng_quantize_file(rbt_model_f16(), out, "q4_k_m", 2, err, sizeof err) == RB_OK,
                  "%s", err);
    ck_assert_int_eq(eng_gguf_open(out, &g, err, sizeof err), RB_OK);
    ck_assert_int_lt(eng_gguf_find_tensor(g, "output.weight"), 0); /* the head is tied */
    for (int64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        int l = -1;
        eng_type want = ENG_TYPE_Q4_K;
        sscanf(t->name, "blk.%d.", &l);
        if (t->ndim == 1)
            want = ENG_TYPE_F32;
        else if (strcmp(t->name, "token_embd.weight") == 0)
            want = ENG_TYPE_Q6_K;
        else if ((strstr(t->name, "attn_v.weight") || strstr(t->name, "ffn_down.weight")) &&
                 (l == 2 || l == 5))
            want = ENG_TYPE_Q6_K;
        if (t->ndim == 2 && t->ne[0] % 256 != 0) /* the documented fallback for short rows */
            want = t->ne[0] % 32 == 0 ? ENG_TYPE_Q8_0 : ENG_TYPE_F16;
        ck_assert_msg(t->type == want, "%s is %s, expected %s", t->name, eng_type_name(t->type),
                      eng_type_name(want));
        checked++;
    }
    ck_assert_int_gt(checked, 6 * 9);
    eng_gguf_close(g);
    rbt_rmtree(dir);
}
END_TEST

/* The value of "key": in the last line of the file at log, or -1. */
static double json_field(const char *log, const char *key)
{
    char *out = rbt_slurp(log), *line, *at, pat[64];
    double v = -1;
    if (!out)
        return -1;
    line = strrchr(out, '{');
    snprintf(pat, sizeof pat, "\"%s\":", key);
    if (line && (at = strstr(line, pat)))
        v = strtod(at + strlen(pat), NULL);
    free(out);
    return v;
}

/* Scenario: rbee-bench engine and memory report medians */
START_TEST(test_engine_forward__rbee_bench_engine_and_memory_report_medians)
{
    char dir[4096], log[4200];
    const char *model = rbt_model_q8();
    const char *bench = rbt_bin("rbee-bench");

    ck_assert_ptr_nonnull(model);
    rbt_tmpdir(dir);
    snprintf(log, sizeof log, "%s/out.txt", dir);
    for (int copy = 0; copy < 2; copy++) {
        char *args[] = {
            (char *)bench, "engine", "-m", (char *)model, "-p", "16",     "-n",
            "8",           "-t",     "1",  "-r",          "3",  "--json", copy ? "--no-mmap" : NULL,
            NULL};
        ck_assert_int_eq(run_tool(args, log, 60000), 0);
        ck_assert_double_gt(json_field(log, "pp_tokens_per_s"), 0);
        ck_assert_double_gt(json_field(log, "tg_tokens_per_s"), 0);
        ck_assert_double_gt(json_field(log, "peak_rss_mib"), 0);
    }
    char *mem[] = {(char *)bench, "memory", "-m", (char *)model, "-t", "2", "-r", "20", NULL};
    ck_assert_int_eq(run_tool(mem, log, 60000), 0);
    ck_assert(rbt_file_contains(log, "threads 1:"));
    ck_assert(rbt_file_contains(log, "threads 2:"));
    ck_assert(rbt_file_contains(log, "GB/s"));
    /* Every round is a possible figure: no machine here reads memory at 1,000 GB/s (the main
     * thread's clock once let single rounds report 8,524 GB/s). */
    {
        char *text = NULL;
        size_t len = 0;
        ck_assert_int_eq(rb_read_file(log, 1 << 20, &text, &len), RB_OK);
        for (const char *p = text; (p = strstr(p, "GB/s  (median of")); p++) {
            const char *m = strstr(p, "max ");
            ck_assert_ptr_nonnull(m);
            ck_assert_msg(strtod(m + 4, NULL) < 1000.0, "impossible figure: %.40s", m);
        }
        free(text);
    }
    char *missing[] = {(char *)bench, "engine", "-m", "/nonexistent.gguf", NULL};
    ck_assert_int_eq(run_tool(missing, log, 30000), 1);
    ck_assert(rbt_file_contains(log, "/nonexistent.gguf"));
    char *nomem[] = {(char *)bench, "memory", "-m", "/nonexistent.gguf", NULL};
    ck_assert_int_eq(run_tool(nomem, log, 30000), 1);
    ck_assert(rbt_file_contains(log, "cannot read '/nonexistent.gguf'"));
    char *unknown[] = {(char *)bench, "memory", "--frobnicate", NULL};
    ck_assert_int_eq(run_tool(unknown, log, 30000), 1);
    ck_assert(rbt_file_contains(log, "rbee-bench memory: unknown option --frobnicate"));
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: rbee-bench stream measures every route and fails when requests fail */
START_TEST(test_tools_gguf__rbee_bench_stream_measures_every_route_and_fails_when_requests_fail)
{
    char dir[4096], log[4200], url[64], bench[4096], *out;
    const char *routes[] = {"inference", "chat", "completions"};
    rbt_proc w;

    rbt_tmpdir(dir);
    snprintf(log, sizeof log, "%s/bench.txt", dir);
    rbt_start_worker(&w, dir, rbt_model_q8(), NULL, NULL, NULL);
    ck_assert_msg(rbt_wait_ready(&w, 15000), "worker not ready (log %s)", w.log);
    /* rbt_bin's answer lives in a buffer the next call reuses */
    snprintf(bench, sizeof bench, "%s", rbt_bin("rbee-bench"));
    for (int i = 0; i < 3; i++) {
        char *args[] = {bench,     "stream",          "--url",      w.base, "--clients",    "1",
                        "--route", (char *)routes[i], "--requests", "2",    "--max-tokens", "8",
                        NULL};
        unlink(log);
        int rc = run_tool(args, log, 60000);
        out = rbt_slurp(log);
        ck_assert_msg(rc == 0, "route %s: exit %d: %s", routes[i], rc, out ? out : "");
        ck_assert_msg(out && strstr(out, "\n1 "), "no row for 1 client: %s", out);
        ck_assert_msg(strstr(out, " 0\n"), "errors on route %s: %s", routes[i], out);
        free(out);
    }
    ck_assert_int_eq(rbt_stop(&w, 5000), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", rbt_free_port());
    char *bad[] = {bench,        "stream", "--url",        url, "--clients", "1",
                   "--requests", "2",      "--max-tokens", "8", NULL};
    unlink(log);
    ck_assert_int_eq(run_tool(bad, log, 60000), 1);
    ck_assert(rbt_file_contains(log, "2 of 2 requests failed"));
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_tools");
    TCase *tc = rbt_tcase(s, "tools", 120);
    tcase_add_test(tc, test_engine_forward__rbee_gguf_generate_streams_the_continuation);
    tcase_add_test(tc, test_engine_forward__rbee_gguf_quantize_and_random_make_loadable_files);
    tcase_add_test(tc, test_engine_forward__rbee_bench_engine_and_memory_report_medians);
    tcase_add_test(tc, test_engine_forward__the_q4_k_m_mix_follows_llama_cpp_s_rules);
    tcase_add_test(
        tc, test_tools_gguf__rbee_bench_stream_measures_every_route_and_fails_when_requests_fail);
    return rbt_run(s);
}
