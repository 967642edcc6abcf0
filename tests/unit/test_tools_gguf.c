/*
 * test_tools_gguf.c - the rbee-gguf tool, run as a child process (spec/tools_gguf.feature).
 *
 * The tokenize scenarios use llama.cpp's reference vocabularies in ../shared/data/tokenizer/:
 * they are in test_tools_gguf_data.c, which ctest reports as skipped without that folder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eng_gguf.h"
#include "rb_test.h"

#define TOOL_TIMEOUT_MS 30000

/* Runs argv with stdout and stderr into log; returns the exit status. */
static int run(char *const argv[], const char *log)
{
    int st = 0;
    unlink(log);
    ck_assert_msg(rbt_wait_exit(rbt_spawn(argv, NULL, log), TOOL_TIMEOUT_MS, &st),
                  "%s did not exit", argv[0]);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Scenario: rbee-gguf info lists metadata and tensors */
START_TEST(test_tools_gguf__rbee_gguf_info_lists_metadata_and_tensors)
{
    char dir[4096], path[4200], log[4200], bin[4096], err[256] = "";
    float a[12] = {0};
    int64_t ne[2] = {4, 3};
    eng_gguf_writer *w = eng_gguf_writer_new();

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    snprintf(log, sizeof log, "%s/out.txt", dir);
    snprintf(bin, sizeof bin, "%s", rbt_bin("rbee-gguf"));
    eng_gguf_writer_set_str(w, "general.name", "tiny");
    eng_gguf_writer_add_tensor(w, "a", ENG_TYPE_F32, 2, ne, a, sizeof a);
    ck_assert_msg(eng_gguf_writer_write(w, path, err, sizeof err) == RB_OK, "%s", err);
    eng_gguf_writer_free(w);
    {
        char *argv[] = {bin, "info", path, NULL};
        ck_assert_int_eq(run(argv, log), 0);
    }
    ck_assert(rbt_file_contains(log, "version: 3"));
    ck_assert(rbt_file_contains(log, "general.name (str) = \"tiny\""));
    ck_assert(rbt_file_contains(log, "f32"));
    ck_assert(rbt_file_contains(log, "4 x 3"));
    ck_assert(rbt_file_contains(log, "total: 1 tensors, 12 elements, 48 bytes"));
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: rbee-gguf reports a file it cannot open */
START_TEST(test_tools_gguf__rbee_gguf_reports_a_file_it_cannot_open)
{
    char dir[4096], log[4200], bin[4096];

    rbt_tmpdir(dir);
    snprintf(log, sizeof log, "%s/out.txt", dir);
    snprintf(bin, sizeof bin, "%s", rbt_bin("rbee-gguf"));
    {
        char *argv[] = {bin, "info", "/nonexistent/x.gguf", NULL};
        ck_assert_int_eq(run(argv, log), 1);
    }
    ck_assert(rbt_file_contains(log, "rbee-gguf: cannot open model '/nonexistent/x.gguf': "
                                     "no such file or directory\n"));
    {
        char *argv[] = {bin, "frobnicate", NULL};
        ck_assert_int_eq(run(argv, log), 2);
    }
    {
        char *argv[] = {bin, "tokenize", NULL};
        ck_assert_int_eq(run(argv, log), 2);
    }
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tools_gguf");
    TCase *tc = rbt_tcase(s, "info", 60);
    tcase_add_test(tc, test_tools_gguf__rbee_gguf_info_lists_metadata_and_tensors);
    tcase_add_test(tc, test_tools_gguf__rbee_gguf_reports_a_file_it_cannot_open);
    return rbt_run(s);
}
