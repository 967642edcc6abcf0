/*
 * test_engine_tools_data.c - the rbee-gguf scenario of spec/engine_forward.feature that needs
 * a vocabulary from outside the repository: llama.cpp's phi-3 vocabulary in
 * ../shared/data/tokenizer/ (or $RBEE_SHARED_DATA). Without that folder main() runs nothing,
 * prints one SKIP line and exits 77, which ctest reports as skipped.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "eng.h"
#include "eng_gguf.h"
#include "rb_models.h"
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

/* Scenario: rbee-gguf random takes only the tokenizer of a vocabulary file */
START_TEST(test_engine_forward__rbee_gguf_random_takes_only_the_tokenizer_of_a_vocabulary_file)
{
    char vocab[4200], dir[4096], out[4200], log[4200], err[256];
    eng_gguf *g = NULL;
    eng_model *m = NULL;
    eng_model_info info;

    snprintf(vocab, sizeof vocab, "%s", rbt_tokenizer_data("ggml-vocab-phi-3.gguf"));
    rbt_tmpdir(dir);
    snprintf(out, sizeof out, "%s/rnd.gguf", dir);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    char *ra[] = {(char *)rbt_bin("rbee-gguf"),
                  "random",
                  out,
                  "--like",
                  "tiny",
                  "--type",
                  "q8_0",
                  "--vocab",
                  (char *)vocab,
                  NULL};
    ck_assert_int_eq(run_tool(ra, log, 60000), 0);
    ck_assert_int_eq(eng_gguf_open(out, &g, err, sizeof err), RB_OK);
    for (int64_t i = 0; i < eng_gguf_n_keys(g); i++) {
        eng_gguf_str k = eng_gguf_key_name(g, i);
        ck_assert_msg(!(k.len >= 5 && memcmp(k.p, "phi3.", 5) == 0), "key %.*s was copied",
                      (int)k.len, k.p);
    }
    eng_gguf_close(g);
    ck_assert_int_eq(eng_model_open(out, NULL, &m, err, sizeof err), RB_OK);
    eng_model_get_info(m, &info);
    ck_assert_int_eq(info.n_vocab, 32064);
    eng_model_free(m);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_tools_data");
    TCase *tc = rbt_tcase(s, "tools", 120);
    tcase_add_test(
        tc, test_engine_forward__rbee_gguf_random_takes_only_the_tokenizer_of_a_vocabulary_file);
    return rbt_run_shared_data(s, RBT_TOKENIZER_DATA, 1);
}
