/*
 * spec/hive_openai.feature with the real worker: rbee-hive spawns llm-worker-rbee for the
 * bundled model on the first OpenAI request and relays the worker's answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_procs.h"
#include "rb_test.h"
#include "rbt_hive.h"

#define COMPLETION                                                                                 \
    "{\"model\":\"kjv\",\"prompt\":\"In the beginning\",\"max_tokens\":12,\"temperature\":0}"
#define CHAT                                                                                       \
    "{\"model\":\"kjv\",\"messages\":[{\"role\":\"user\",\"content\":\"In the beginning\"}],"      \
    "\"max_tokens\":8,\"temperature\":0}"

static const char *text_of(json_t *r)
{
    const char *t = json_string_value(
        json_object_get(json_array_get(json_object_get(r, "choices"), 0), "text"));
    return t ? t : "";
}

static const char *chat_text(json_t *r)
{
    json_t *c = json_array_get(json_object_get(r, "choices"), 0);
    const char *t = json_string_value(json_object_get(json_object_get(c, "message"), "content"));
    return t ? t : "";
}

/* The id and URL of the hive's only worker. */
static void only_worker(rbt_hive *h, char *id, char *url, size_t len)
{
    json_t *r = NULL, *w;
    ck_assert_int_eq(rbt_hive_json(h, "GET", "/v1/workers/list", NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r, "workers")), 1);
    w = json_array_get(json_object_get(r, "workers"), 0);
    snprintf(id, len, "%s", json_string_value(json_object_get(w, "id")));
    snprintf(url, len, "%s", json_string_value(json_object_get(w, "url")));
    json_decref(r);
}

/* Scenario: The real worker answers through the hive, cold then warm */
START_TEST(test_hive_openai__the_real_worker_answers_through_the_hive_cold_then_warm)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL, *direct = NULL;
    char id1[256], id2[256], url[256], text[1024], wurl[300], wlog[4600];
    long s_hive, s_direct;

    rbt_hive_start_real(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/completions", COMPLETION, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "object")), "text_completion");
    snprintf(text, sizeof text, "%s", text_of(r));
    ck_assert_int_gt(strlen(text), 0);
    json_decref(r);
    only_worker(&h, id1, url, sizeof id1);

    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/completions", COMPLETION, &r), 200);
    ck_assert_str_eq(text_of(r), text); /* greedy: the same text from the same worker */
    json_decref(r);
    only_worker(&h, id2, url, sizeof id2);
    ck_assert_str_eq(id1, id2);

    /* not one burst: the chunks arrive spread over the generation the worker logs */
    snprintf(wlog, sizeof wlog, "%s/logs/%s.log", h.home, id1);
    rbt_check_openai_spread(h.base, "/v1/completions",
                            "{\"model\":\"kjv\",\"prompt\":\"In the beginning\","
                            "\"max_tokens\":200,\"temperature\":0,\"stream\":true}",
                            "text", wlog);

    /* chat through the hive is the worker's own answer: greedy, so the same text */
    s_hive = rbt_hive_json(&h, "POST", "/v1/chat/completions", CHAT, &r);
    snprintf(wurl, sizeof wurl, "%s/v1/chat/completions", url);
    {
        rb_buf b;
        const char *hdr[] = {"Content-Type: application/json", NULL};
        rb_buf_init(&b, 1 << 20);
        s_direct = rbt_http("POST", wurl, hdr, CHAT, 60000, &b, NULL);
        direct = json_loadb(b.data, b.len, 0, NULL);
        rb_buf_release(&b);
    }
    ck_assert_int_eq(s_hive, 200);
    ck_assert_int_eq(s_direct, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "object")), "chat.completion");
    ck_assert_str_eq(chat_text(r), chat_text(direct));
    ck_assert_int_gt(strlen(chat_text(r)), 0);
    json_decref(r);
    json_decref(direct);
    ck_assert_int_eq(rbt_hive_stop(&h), 0);
    rbt_hive_cleanup(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hive_openai_real");
    TCase *tc = rbt_tcase(s, "real", 120);
    tcase_add_test(tc, test_hive_openai__the_real_worker_answers_through_the_hive_cold_then_warm);
    return rbt_run(s);
}
