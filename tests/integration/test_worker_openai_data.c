/*
 * test_worker_openai_data.c - the chat scenario of spec/worker_openai.feature that needs a
 * vocabulary with a chat template from outside the repository: llama.cpp's phi-3 vocabulary
 * in ../shared/data/tokenizer/ (or $RBEE_SHARED_DATA), under a random tiny model made by
 * rbee-gguf random. Without that folder main() runs nothing, prints one SKIP line and exits 77.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "eng.h"
#include "rb_json.h"
#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"

static size_t count_tokens(const eng_model *m, const char *text, unsigned flags)
{
    int32_t *ids = NULL;
    size_t n = 0;
    ck_assert_int_eq(eng_model_tokenize_ex(m, text, strlen(text), flags, &ids, &n), RB_OK);
    free(ids);
    return n;
}

/* Scenario: A model's chat template renders the prompt with its special tokens */
START_TEST(test_worker_openai__a_model_s_chat_template_renders_the_prompt_with_its_special_tokens)
{
    /* phi-3's template: "{{ bos_token }}" then "<|user|>\n" content "<|end|>\n<|assistant|>\n". */
    const char *expect = "<|user|>\nHello<|end|>\n<|assistant|>\n";
    char dir[4096], model[4200], log[4200], url[256], err[256];
    const char *h[] = {"Content-Type: application/json", NULL};
    rbt_proc worker;
    eng_model *m = NULL;
    char *tpl;
    size_t want, plain, doubled;
    rb_buf b;
    json_t *j;
    int st;

    rbt_tmpdir(dir);
    snprintf(model, sizeof model, "%s/phi3-rnd.gguf", dir);
    snprintf(log, sizeof log, "%s/random.log", dir);
    char *ra[] = {(char *)rbt_bin("rbee-gguf"),
                  "random",
                  model,
                  "--like",
                  "tiny",
                  "--type",
                  "q8_0",
                  "--vocab",
                  (char *)rbt_tokenizer_data("ggml-vocab-phi-3.gguf"),
                  NULL};
    pid_t pid = rbt_spawn(ra, NULL, log);
    ck_assert(rbt_wait_exit(pid, 60000, &st));
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    ck_assert_int_eq(eng_model_open(model, NULL, &m, err, sizeof err), RB_OK);
    tpl = eng_model_chat_template(m);
    ck_assert_ptr_nonnull(tpl);
    ck_assert_ptr_nonnull(strstr(tpl, "<|assistant|>"));
    free(tpl);
    want = count_tokens(m, expect, ENG_MODEL_TOK_ADD_BOS | ENG_MODEL_TOK_SPECIAL);
    plain = count_tokens(m, expect, ENG_MODEL_TOK_ADD_BOS);
    {
        char with_bos[128];
        snprintf(with_bos, sizeof with_bos, "<s>%s", expect);
        doubled = count_tokens(m, with_bos, ENG_MODEL_TOK_ADD_BOS | ENG_MODEL_TOK_SPECIAL);
    }
    eng_model_free(m);
    /* BOS, <|user|>, the text, <|end|>, <|assistant|>: markers as single tokens. */
    ck_assert_int_lt(want, plain);
    ck_assert_int_eq(doubled, want + 1);

    rbt_start_worker(&worker, dir, model, NULL, NULL, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, 15000), "worker not ready (log %s)", worker.log);
    rb_buf_init(&b, 1 << 20);
    snprintf(url, sizeof url, "%s/v1/chat/completions", worker.base);
    ck_assert_int_eq(rbt_http("POST", url, h,
                              "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
                              "\"max_tokens\":2,\"temperature\":0}",
                              20000, &b, NULL),
                     200);
    j = json_loads(b.data, 0, NULL);
    ck_assert_msg(j, "%s", b.data);
    printf("phi-3 template: prompt_tokens %lld (plain text would be %zu)\n",
           (long long)json_integer_value(
               json_object_get(json_object_get(j, "usage"), "prompt_tokens")),
           plain);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")),
        (long long)want);
    json_decref(j);
    rb_buf_release(&b);
    ck_assert_int_eq(rbt_stop(&worker, 5000), 0);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_openai_data");
    TCase *tc = rbt_tcase(s, "chat", 120);
    tcase_add_test(
        tc, test_worker_openai__a_model_s_chat_template_renders_the_prompt_with_its_special_tokens);
    return rbt_run_shared_data(s, RBT_TOKENIZER_DATA, 1);
}
