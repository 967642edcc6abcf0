/*
 * Integration tests for spec/worker_openai.feature: the real llm-worker-rbee on the bundled
 * model, spoken to over loopback as an OpenAI client would (raw HTTP and SSE; tests/node
 * repeats the main paths with the official SDK).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_json.h"
#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"

static char dir[4096];
static rbt_proc worker;

static void start(const char *const *extra)
{
    rbt_tmpdir(dir);
    rbt_start_worker(&worker, dir, rbt_model_q8(), NULL, extra, NULL);
    ck_assert_msg(rbt_wait_ready(&worker, 15000), "worker not ready (log %s)", worker.log);
}

static void stop(void)
{
    ck_assert_int_eq(rbt_stop(&worker, 5000), 0);
    rbt_rmtree(dir);
}

static long post(const char *path, const char *body, rb_buf *out, rb_buf *headers)
{
    char url[256];
    const char *h[] = {"Content-Type: application/json", NULL};
    snprintf(url, sizeof url, "%s%s", worker.base, path);
    rb_buf_reset(out);
    return rbt_http("POST", url, h, body, 20000, out, headers);
}

/* The body is OpenAI's error object with this type and param (NULL: JSON null). */
static void assert_oai_error(const rb_buf *b, const char *type, const char *param)
{
    json_t *j = json_loads(b->data ? b->data : "", 0, NULL);
    json_t *e = json_object_get(j, "error");
    ck_assert_msg(json_is_object(e), "not an OpenAI error: %s", b->data ? b->data : "");
    ck_assert(json_is_string(json_object_get(e, "message")));
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")), type);
    ck_assert(json_object_get(e, "code") != NULL);
    if (param)
        ck_assert_msg(json_is_string(json_object_get(e, "param")) &&
                          strcmp(json_string_value(json_object_get(e, "param")), param) == 0,
                      "param is not %s: %s", param, b->data);
    else
        ck_assert(json_is_null(json_object_get(e, "param")));
    json_decref(j);
}

/* Scenario: The models list holds the worker's one model */
START_TEST(test_worker_openai__the_models_list_holds_the_worker_s_one_model)
{
    char *m;
    json_t *j, *d;
    start(NULL);
    m = rbt_get(worker.base, "/v1/models");
    ck_assert_ptr_nonnull(m);
    j = json_loads(m, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "list");
    d = json_array_get(json_object_get(j, "data"), 0);
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(d, "id")), rbt_model_q8());
    ck_assert_str_eq(json_string_value(json_object_get(d, "object")), "model");
    ck_assert_str_eq(json_string_value(json_object_get(d, "owned_by")), "rbee");
    ck_assert(json_is_integer(json_object_get(d, "created")));
    json_decref(j);
    free(m);
    stop();
}
END_TEST

/* Scenario: A completion answers one text_completion with usage */
START_TEST(test_worker_openai__a_completion_answers_one_text_completion_with_usage)
{
    rb_buf b;
    json_t *j, *c, *u;
    rb_buf_init(&b, 1 << 20);
    start(NULL);
    ck_assert_int_eq(post("/v1/completions",
                          "{\"model\":\"any\",\"prompt\":\"In the beginning\",\"max_tokens\":5,"
                          "\"temperature\":0}",
                          &b, NULL),
                     200);
    j = json_loads(b.data, 0, NULL);
    ck_assert_msg(j, "%s", b.data);
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "text_completion");
    ck_assert(strncmp(json_string_value(json_object_get(j, "id")), "cmpl-", 5) == 0);
    c = json_array_get(json_object_get(j, "choices"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(c, "finish_reason")), "length");
    ck_assert(json_string_length(json_object_get(c, "text")) > 0);
    ck_assert(json_is_null(json_object_get(c, "logprobs")));
    u = json_object_get(j, "usage");
    ck_assert_int_eq(json_integer_value(json_object_get(u, "completion_tokens")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(u, "prompt_tokens")), 4); /* BOS + 3 */
    ck_assert_int_eq(json_integer_value(json_object_get(u, "total_tokens")), 9);
    json_decref(j);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: A streamed chat sends the role, the content, a finish chunk and DONE */
START_TEST(test_worker_openai__a_streamed_chat_sends_the_role_the_content_a_finish_chunk_and_done)
{
    rbt_stream st = {0};
    int content = 0;
    start(NULL);
    rbt_stream_run(&st, worker.base, "/v1/chat/completions",
                   "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"In the "
                   "beginning\"}],\"max_tokens\":6,\"temperature\":0,\"stream\":true,"
                   "\"stream_options\":{\"include_usage\":true}}",
                   10000, 30000);
    ck_assert_msg(st.rc == RB_OK, "stream failed: %s", st.err); /* RB_OK: [DONE] came last */
    ck_assert_int_ge(st.n, 4);
    for (int i = 0; i < st.n; i++) {
        json_t *j = json_loads(st.ev[i].data, 0, NULL);
        json_t *ch = json_object_get(j, "choices"), *c0 = json_array_get(ch, 0);
        json_t *delta = json_object_get(c0, "delta");
        ck_assert_msg(j, "not JSON: %s", st.ev[i].data);
        ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "chat.completion.chunk");
        ck_assert(strncmp(json_string_value(json_object_get(j, "id")), "chatcmpl-", 9) == 0);
        if (i == 0) {
            ck_assert_str_eq(json_string_value(json_object_get(delta, "role")), "assistant");
            ck_assert_str_eq(json_string_value(json_object_get(delta, "content")), "");
        } else if (i == st.n - 1) { /* usage */
            ck_assert_int_eq(json_array_size(ch), 0);
            ck_assert_int_eq(json_integer_value(
                                 json_object_get(json_object_get(j, "usage"), "completion_tokens")),
                             6);
        } else if (i == st.n - 2) { /* finish */
            ck_assert_int_eq(json_object_size(delta), 0);
            ck_assert_str_eq(json_string_value(json_object_get(c0, "finish_reason")), "length");
        } else {
            ck_assert(json_is_string(json_object_get(delta, "content")));
            ck_assert(json_is_null(json_object_get(c0, "finish_reason")));
            content++;
        }
        json_decref(j);
    }
    ck_assert_int_ge(content, 1);
    rbt_stream_release(&st);
    stop();
}
END_TEST

static long prompt_tokens(const char *body)
{
    rb_buf b;
    long n;
    json_t *j;
    rb_buf_init(&b, 1 << 20);
    ck_assert_int_eq(post("/v1/chat/completions", body, &b, NULL), 200);
    j = json_loads(b.data, 0, NULL);
    ck_assert_msg(j, "%s", b.data);
    n = (long)json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens"));
    json_decref(j);
    rb_buf_release(&b);
    return n;
}

/* Scenario: Text parts are joined as llama.cpp joins them */
START_TEST(test_worker_openai__text_parts_are_joined_as_llama_cpp_joins_them)
{
    long parts, joined, glued;
    start(NULL);
    parts = prompt_tokens("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                          "\"text\":\"In the\"},{\"type\":\"text\",\"text\":\"beginning\"}]}],"
                          "\"max_tokens\":1}");
    joined = prompt_tokens("{\"messages\":[{\"role\":\"user\",\"content\":\"In the\\nbeginning\"}],"
                           "\"max_tokens\":1}");
    glued = prompt_tokens("{\"messages\":[{\"role\":\"user\",\"content\":\"In thebeginning\"}],"
                          "\"max_tokens\":1}");
    ck_assert_int_eq(parts, joined);
    ck_assert_int_ne(parts, glued);
    stop();
}
END_TEST

static void expect_400(const char *path, const char *body, const char *param)
{
    rb_buf b;
    rb_buf_init(&b, 1 << 20);
    ck_assert_msg(post(path, body, &b, NULL) == 400, "%s %s: not 400: %s", path, body,
                  b.data ? b.data : "");
    assert_oai_error(&b, "invalid_request_error", param);
    rb_buf_release(&b);
}

#define CHAT_MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* Scenario: Every unsupported field is a 400 naming it */
START_TEST(test_worker_openai__every_unsupported_field_is_a_400_naming_it)
{
    static const char *const fields[] = {
        "tools",      "tool_choice",         "functions",    "function_call",
        "logit_bias", "parallel_tool_calls", "audio",        "modalities",
        "prediction", "reasoning_effort",    "service_tier", "store",
        "metadata",   "web_search_options",  "suffix_x",     NULL};
    char body[512];
    start(NULL);
    for (int i = 0; fields[i]; i++) {
        snprintf(body, sizeof body, "{%s,\"%s\":{}}", CHAT_MSG, fields[i]);
        expect_400("/v1/chat/completions", body, fields[i]);
        snprintf(body, sizeof body, "{\"prompt\":\"x\",\"%s\":[1]}", fields[i]);
        expect_400("/v1/completions", body, fields[i]);
    }
    expect_400("/v1/completions", "{\"prompt\":\"x\",\"suffix\":\"y\"}", "suffix");
    expect_400("/v1/completions", "{\"prompt\":\"x\",\"echo\":true}", "echo");
    expect_400("/v1/completions", "{\"prompt\":\"x\",\"best_of\":2}", "best_of");
    expect_400("/v1/chat/completions",
               "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"tool_calls\":[]}]}",
               "messages[0].tool_calls");
    expect_400("/v1/chat/completions",
               "{" CHAT_MSG ",\"stream\":true,\"stream_options\":{\"include_obfuscation\":true}}",
               "stream_options.include_obfuscation");
    /* Chat's field names are not completions' and the other way round. */
    expect_400("/v1/completions", "{\"prompt\":\"x\",\"max_completion_tokens\":3}",
               "max_completion_tokens");
    expect_400("/v1/chat/completions", "{" CHAT_MSG ",\"prompt\":\"x\"}", "prompt");
    stop();
}
END_TEST

/* Scenario: Bad types and values are a 400 naming the field */
START_TEST(test_worker_openai__bad_types_and_values_are_a_400_naming_the_field)
{
    static const struct {
        const char *extra, *param;
    } rows[] = {
        {"\"temperature\":\"hot\"", "temperature"},
        {"\"temperature\":2.5", "temperature"},
        {"\"top_p\":-0.1", "top_p"},
        {"\"max_tokens\":1.5", "max_tokens"},
        {"\"max_tokens\":0", "max_tokens"},
        {"\"stop\":5", "stop"},
        {"\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop"},
        {"\"stop\":\"\"", "stop"},
        {"\"seed\":\"1\"", "seed"},
        {"\"stream\":\"yes\"", "stream"},
        {"\"frequency_penalty\":3", "frequency_penalty"},
        {"\"presence_penalty\":-2.5", "presence_penalty"},
        {"\"top_k\":-1", "top_k"},
        {"\"min_p\":2", "min_p"},
        {"\"repeat_penalty\":0", "repeat_penalty"},
        {"\"repeat_penalty\":1e-300", "repeat_penalty"},
        {"\"temperature\":1e-300", "temperature"},
        {"\"presence_penalty\":-1e-310", "presence_penalty"},
        {"\"logprobs\":1", "logprobs"},
        {"\"logprobs\":true,\"top_logprobs\":21", "top_logprobs"},
        {"\"top_logprobs\":2", "top_logprobs"},
        {"\"stream_options\":{\"include_usage\":true}", "stream_options"},
        {"\"model\":7", "model"},
        {"\"user\":[]", "user"},
    };
    char body[512];
    start(NULL);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        snprintf(body, sizeof body, "{%s,%s}", CHAT_MSG, rows[i].extra);
        expect_400("/v1/chat/completions", body, rows[i].param);
    }
    expect_400("/v1/chat/completions", "{\"model\":\"m\"}", "messages");
    expect_400("/v1/chat/completions", "{\"messages\":\"hi\"}", "messages");
    expect_400("/v1/chat/completions", "{\"messages\":[]}", "messages");
    expect_400("/v1/chat/completions", "{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
               "messages[0].role");
    expect_400("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":5}]}",
               "messages[0].content");
    expect_400("/v1/chat/completions",
               "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
               "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x\"}}]}]}",
               "messages[0].content[1].type");
    expect_400("/v1/completions", "{\"max_tokens\":2}", "prompt");
    expect_400("/v1/completions", "{\"prompt\":[1,2,3]}", "prompt");
    expect_400("/v1/completions", "{\"prompt\":[\"a\",\"b\"]}", "prompt");
    expect_400("/v1/completions", "{\"prompt\":\"x\",\"logprobs\":21}", "logprobs");
    expect_400("/v1/completions", "{\"prompt\":\"x\",\"logprobs\":true}", "logprobs");
    stop();
}
END_TEST

/* Scenario: n above 1 and a JSON response format are refused */
START_TEST(test_worker_openai__n_above_1_and_a_json_response_format_are_refused)
{
    rb_buf b;
    rb_buf_init(&b, 1 << 20);
    start(NULL);
    expect_400("/v1/chat/completions", "{" CHAT_MSG ",\"n\":2}", "n");
    expect_400("/v1/completions", "{\"prompt\":\"x\",\"n\":2}", "n");
    expect_400("/v1/chat/completions",
               "{" CHAT_MSG ",\"response_format\":{\"type\":\"json_object\"}}", "response_format");
    expect_400("/v1/chat/completions",
               "{" CHAT_MSG ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}}",
               "response_format");
    /* What is accepted: n 1, the text format, null for an optional field. */
    ck_assert_int_eq(
        post("/v1/completions",
             "{\"prompt\":\"x\",\"n\":1,\"max_tokens\":1,\"user\":\"u\",\"seed\":null}", &b, NULL),
        200);
    ck_assert_int_eq(post("/v1/chat/completions",
                          "{" CHAT_MSG ",\"n\":1,\"max_tokens\":1,"
                          "\"response_format\":{\"type\":\"text\"}}",
                          &b, NULL),
                     200);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: A prompt longer than the context is a 400 before any stream */
START_TEST(test_worker_openai__a_prompt_longer_than_the_context_is_a_400_before_any_stream)
{
    const char *extra[] = {"--ctx", "64", NULL};
    rb_buf b, prompt;
    char *body;
    rb_buf_init(&b, 1 << 20);
    rb_buf_init(&prompt, 1 << 20);
    start(extra);
    for (int i = 0; i < 100; i++)
        rb_buf_append(&prompt, "and the earth ", 14);
    body = malloc(prompt.len + 64);
    sprintf(body, "{\"prompt\":\"%.*s\",\"stream\":true}", (int)prompt.len, prompt.data);
    ck_assert_int_eq(post("/v1/completions", body, &b, NULL), 400);
    assert_oai_error(&b, "invalid_request_error", "prompt");
    ck_assert_ptr_nonnull(strstr(b.data, "\"context_length_exceeded\""));
    /* "In the beginning" is 4 tokens with BOS: 61 can be generated in 64, not 62 */
    rb_buf_reset(&b);
    ck_assert_int_eq(
        post("/v1/completions", "{\"prompt\":\"In the beginning\",\"max_tokens\":62}", &b, NULL),
        400);
    assert_oai_error(&b, "invalid_request_error", "max_tokens");
    ck_assert_msg(strstr(b.data, "\"context_length_exceeded\"") && strstr(b.data, "at most 61"),
                  "%s", b.data);
    rb_buf_reset(&b);
    ck_assert_int_eq(post("/v1/completions",
                          "{\"prompt\":\"In the beginning\",\"max_tokens\":61,"
                          "\"temperature\":0}",
                          &b, NULL),
                     200);
    rb_buf_reset(&b);
    ck_assert_int_eq(
        post("/v1/completions", "{\"prompt\":\"In the beginning\",\"temperature\":0}", &b, NULL),
        200);
    ck_assert_msg(strstr(b.data, "\"finish_reason\":\"length\""), "%s", b.data);
    free(body);
    rb_buf_release(&prompt);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: Errors use OpenAI's shape */
START_TEST(test_worker_openai__errors_use_openai_s_shape)
{
    rb_buf b;
    rb_buf_init(&b, 1 << 20);
    start(NULL);
    ck_assert_int_eq(post("/v1/chat/completions", "{not json", &b, NULL), 400);
    assert_oai_error(&b, "invalid_request_error", NULL);
    ck_assert_int_eq(post("/v1/completions", "[1]", &b, NULL), 400);
    assert_oai_error(&b, "invalid_request_error", NULL);
    rb_buf_release(&b);
    stop();
}
END_TEST

/* Scenario: A full queue answers 503 in OpenAI's shape */
START_TEST(test_worker_openai__a_full_queue_answers_503_in_openai_s_shape)
{
    const char *extra[] = {"--slots", "1", "--queue", "0", NULL};
    rb_buf b, h;
    char *m = NULL, url[256];
    int64_t end;
    rb_buf_init(&b, 1 << 20);
    rb_buf_init(&h, 1 << 16);
    start(extra);
    /* A /v1/jobs job holds the slot until its stream opens. */
    ck_assert_int_eq(post("/v1/jobs", "{\"prompt\":\"x\",\"job_id\":\"holder\"}", &b, NULL), 202);
    end = rbt_ms() + 10000;
    do {
        free(m);
        m = rbt_get(worker.base, "/metrics");
        if (rbt_metric(m, "rbee_worker_slots_busy") == 1)
            break;
        rbt_poll_interval();
    } while (rbt_ms() < end);
    free(m);
    ck_assert_int_eq(post("/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":1}", &b, &h), 503);
    assert_oai_error(&b, "server_error", NULL);
    ck_assert_ptr_nonnull(strstr(b.data, "\"code\":\"all_slots_busy\""));
    ck_assert_ptr_nonnull(strcasestr(h.data, "Retry-After: 1"));
    snprintf(url, sizeof url, "%s/v1/jobs/holder", worker.base);
    ck_assert_int_eq(rbt_http("DELETE", url, NULL, NULL, 10000, &b, NULL), 200);
    rb_buf_release(&h);
    rb_buf_release(&b);
    stop();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_openai");
    TCase *tc = rbt_tcase(s, "openai", 60);
    tcase_add_test(tc, test_worker_openai__the_models_list_holds_the_worker_s_one_model);
    tcase_add_test(tc, test_worker_openai__a_completion_answers_one_text_completion_with_usage);
    tcase_add_test(
        tc, test_worker_openai__a_streamed_chat_sends_the_role_the_content_a_finish_chunk_and_done);
    tcase_add_test(tc, test_worker_openai__text_parts_are_joined_as_llama_cpp_joins_them);
    tcase_add_test(tc, test_worker_openai__every_unsupported_field_is_a_400_naming_it);
    tcase_add_test(tc, test_worker_openai__bad_types_and_values_are_a_400_naming_the_field);
    tcase_add_test(tc, test_worker_openai__n_above_1_and_a_json_response_format_are_refused);
    tcase_add_test(tc,
                   test_worker_openai__a_prompt_longer_than_the_context_is_a_400_before_any_stream);
    tcase_add_test(tc, test_worker_openai__errors_use_openai_s_shape);
    tcase_add_test(tc, test_worker_openai__a_full_queue_answers_503_in_openai_s_shape);
    return rbt_run(s);
}
