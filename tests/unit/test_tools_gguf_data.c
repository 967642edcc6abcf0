/*
 * test_tools_gguf_data.c - the rbee-gguf tokenize scenarios of spec/tools_gguf.feature, run
 * on llama.cpp's reference vocabularies in ../shared/data/tokenizer/ (or $RBEE_SHARED_DATA).
 *
 * Both tests need that folder: without it main() runs nothing, prints one SKIP line and
 * exits 77, which ctest reports as skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_models.h"
#include "rb_test.h"
#include "rb_util.h"

#define SEPARATOR "\n__ggml_vocab_test__\n"
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

/* Runs "rbee-gguf tokenize MODEL FLAGS < in" through the shell. */
static int run_tokenize(const char *model, const char *flags, const char *in, const char *log)
{
    char cmd[16384];
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    snprintf(cmd, sizeof cmd, "exec '%s' tokenize '%s' %s < '%s'", rbt_bin("rbee-gguf"), model,
             flags, in);
    return run(argv, log);
}

/* Scenario: rbee-gguf tokenize prints the reference ids */
START_TEST(test_tools_gguf__rbee_gguf_tokenize_prints_the_reference_ids)
{
    static const char *const vocabs[] = {"phi-3", "gpt-2", "qwen2"};
    char dir[4096], in[4200], log[4200];
    int pass = 0, total = 0;

    rbt_tmpdir(dir);
    snprintf(in, sizeof in, "%s/in.txt", dir);
    snprintf(log, sizeof log, "%s/out.txt", dir);
    for (size_t v = 0; v < 3; v++) {
        char model[4200], file[4300], *inp, *out, *p, *sep, *line;
        size_t len;

        snprintf(model, sizeof model, "%s/ggml-vocab-%s.gguf", rbt_tokenizer_dir(), vocabs[v]);
        snprintf(file, sizeof file, "%s.inp", model);
        ck_assert_int_eq(rb_read_file(file, 1 << 24, &inp, &len), RB_OK);
        snprintf(file, sizeof file, "%s.out", model);
        ck_assert_int_eq(rb_read_file(file, 1 << 24, &out, &len), RB_OK);
        line = out;
        for (p = inp; (sep = strstr(p, SEPARATOR)); p = sep + strlen(SEPARATOR)) {
            char *eol = strchr(line, '\n'), *got;
            ck_assert_ptr_nonnull(eol);
            *eol = '\0';
            ck_assert_int_eq(rb_write_file_atomic(in, p, (size_t)(sep - p)), RB_OK);
            ck_assert_int_eq(run_tokenize(model, "", in, log), 0);
            got = rbt_slurp(log);
            ck_assert_ptr_nonnull(got);
            /* The reference puts a space before every id; the tool separates them. */
            got[strcspn(got, "\n")] = '\0';
            total++;
            if (strcmp(got, line[0] == ' ' ? line + 1 : line) == 0)
                pass++;
            else
                printf("%s case %d: got '%s' want '%s'\n", vocabs[v], total, got, line);
            free(got);
            line = eol + 1;
        }
        free(inp);
        free(out);
    }
    printf("rbee-gguf tokenize: %d/%d reference texts exact\n", pass, total);
    ck_assert_int_eq(total, 138);
    ck_assert_int_eq(pass, total);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: rbee-gguf tokenize honours --bos and --special */
START_TEST(test_tools_gguf__rbee_gguf_tokenize_honours_bos_and_special)
{
    char dir[4096], in[4200], log[4200], model[4200], *got;

    rbt_tmpdir(dir);
    snprintf(in, sizeof in, "%s/in.txt", dir);
    snprintf(log, sizeof log, "%s/out.txt", dir);
    snprintf(model, sizeof model, "%s", rbt_tokenizer_data("ggml-vocab-qwen2.gguf"));
    ck_assert_int_eq(rb_write_file_atomic(in, "<|im_start|>user", 16), RB_OK);
    ck_assert_int_eq(run_tokenize(model, "--special --bos", in, log), 0);
    got = rbt_slurp(log);
    ck_assert_str_eq(got, "151643 151644 872\n");
    free(got);
    ck_assert_int_eq(run_tokenize(model, "", in, log), 0);
    got = rbt_slurp(log);
    ck_assert_msg(strncmp(got, "151643", 6) != 0 && !strstr(got, "151644"), "%s", got);
    free(got);
    ck_assert_int_eq(run_tokenize(model, "--frob", in, log), 2);

    /* Phi-3's chat tokens, which eat the newline after them, and GPT-2's <|endoftext|>. */
    snprintf(model, sizeof model, "%s", rbt_tokenizer_data("ggml-vocab-phi-3.gguf"));
    ck_assert_int_eq(rb_write_file_atomic(in, "<|user|>\nHi<|end|>\n<|assistant|>", 32), RB_OK);
    ck_assert_int_eq(run_tokenize(model, "--special --bos", in, log), 0);
    got = rbt_slurp(log);
    ck_assert_str_eq(got, "1 32010 6324 32007 32001\n");
    free(got);
    snprintf(model, sizeof model, "%s", rbt_tokenizer_data("ggml-vocab-gpt-2.gguf"));
    ck_assert_int_eq(rb_write_file_atomic(in, "Hi<|endoftext|>Hello", 20), RB_OK);
    ck_assert_int_eq(run_tokenize(model, "--special", in, log), 0);
    got = rbt_slurp(log);
    ck_assert_str_eq(got, "17250 50256 15496\n");
    free(got);
    ck_assert_int_eq(run_tokenize(model, "", in, log), 0);
    got = rbt_slurp(log);
    ck_assert_msg(!strstr(got, "50256"), "%s", got);
    free(got);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tools_gguf_data");
    TCase *tc = rbt_tcase(s, "tokenize", 110);
    tcase_add_test(tc, test_tools_gguf__rbee_gguf_tokenize_prints_the_reference_ids);
    tcase_add_test(tc, test_tools_gguf__rbee_gguf_tokenize_honours_bos_and_special);
    return rbt_run_shared_data(s, RBT_TOKENIZER_DATA, 2);
}
