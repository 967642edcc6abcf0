/*
 * test_chat_templates_data.c - the scenarios of spec/chat_templates.feature that need the
 * golden renderings in ../shared/data/chat-templates/ (or $RBEE_SHARED_DATA): ten models'
 * templates, each with four conversations as llama.cpp's server rendered them.
 *
 * Every test here needs that folder, so main() checks it once: without it the executable
 * prints one SKIP line and exits 77 (ctest: skipped). The language scenarios that need no
 * data are in test_chat_templates.c.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "rb_models.h"
#include "rb_test.h"

#define GOLDEN_DIR "chat-templates"

typedef struct golden_file {
    char path[4400];
    json_t *root;
} golden_file;

/* Every *.json of the folder, sorted by name. */
static int load_all(golden_file *out, int max)
{
    char dir[4300];
    struct dirent **names;
    int n, k = 0;

    snprintf(dir, sizeof dir, "%s/%s", rbt_shared_data(), GOLDEN_DIR);
    n = scandir(dir, &names, NULL, alphasort);
    ck_assert_msg(n >= 0, "cannot list %s", dir);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        if (len > 5 && !strcmp(names[i]->d_name + len - 5, ".json") && k < max) {
            json_error_t je;
            if (snprintf(out[k].path, sizeof out[k].path, "%s/%s", dir, names[i]->d_name) >=
                (int)sizeof out[k].path)
                ck_abort_msg("path too long: %s/%s", dir, names[i]->d_name);
            out[k].root = json_load_file(out[k].path, 0, &je);
            ck_assert_msg(out[k].root, "%s: %s", out[k].path, je.text);
            k++;
        }
        free(names[i]);
    }
    free(names);
    return k;
}

static chat_render_opts opts_of(json_t *root)
{
    chat_render_opts o = chat_render_opts_default();
    o.bos_token = json_string_value(json_object_get(root, "bos_token"));
    o.eos_token = json_string_value(json_object_get(root, "eos_token"));
    o.today = json_string_value(json_object_get(root, "today"));
    o.add_generation_prompt = json_is_true(json_object_get(root, "add_generation_prompt"));
    if (!o.bos_token)
        o.bos_token = "";
    if (!o.eos_token)
        o.eos_token = "";
    return o;
}

/* Where a and b first differ, for the failure message. */
static size_t first_diff(const char *a, const char *b)
{
    size_t i = 0;
    while (a[i] && a[i] == b[i])
        i++;
    return i;
}

START_TEST(test_chat_templates__every_golden_template_renders_its_conversations_byte_for_byte)
{
    golden_file g[64];
    int n = load_all(g, 64), checked = 0, failed = 0;

    ck_assert_int_ge(n, 10);
    for (int i = 0; i < n; i++) {
        const char *src = json_string_value(json_object_get(g[i].root, "template"));
        chat_render_opts o = opts_of(g[i].root);
        size_t k;
        json_t *cs;
        ck_assert_msg(src, "%s: no template", g[i].path);
        json_array_foreach(json_object_get(g[i].root, "cases"), k, cs)
        {
            const char *want = json_string_value(json_object_get(cs, "prompt"));
            char *got = NULL, err[512] = "";
            if (!want)
                continue;
            rb_err rc = chat_apply(src, json_object_get(cs, "messages"), &o, &got, err, sizeof err);
            checked++;
            if (rc) {
                printf("%s case %zu: %s\n", g[i].path, k, err);
                failed++;
            } else if (strcmp(got, want)) {
                size_t d = first_diff(got, want);
                printf("%s case %zu: differs at byte %zu\n  got:  %.80s\n  want: %.80s\n",
                       g[i].path, k, d, got + d, want + d);
                failed++;
            }
            free(got);
        }
        json_decref(g[i].root);
    }
    ck_assert_int_ge(checked, 40);
    ck_assert_msg(failed == 0, "%d of %d golden renderings differ (see above)", failed, checked);
}
END_TEST

START_TEST(test_chat_templates__cases_the_reference_could_not_render_fail_here_too)
{
    golden_file g[64];
    int n = load_all(g, 64), failed = 0;

    for (int i = 0; i < n; i++) {
        const char *src = json_string_value(json_object_get(g[i].root, "template"));
        chat_render_opts o = opts_of(g[i].root);
        size_t k;
        json_t *cs;
        json_array_foreach(json_object_get(g[i].root, "cases"), k, cs)
        {
            char *got = NULL, err[512] = "";
            if (!json_object_get(cs, "error"))
                continue;
            if (chat_apply(src, json_object_get(cs, "messages"), &o, &got, err, sizeof err) ==
                RB_OK) {
                printf("%s case %zu: rendered, but the reference failed\n", g[i].path, k);
                failed++;
            } else {
                ck_assert_msg(err[0], "%s case %zu: an error without a message", g[i].path, k);
            }
            free(got);
        }
        json_decref(g[i].root);
    }
    ck_assert_int_eq(failed, 0);
}
END_TEST

START_TEST(test_chat_templates__every_golden_template_parses_and_renders_twice_the_same)
{
    golden_file g[64];
    int n = load_all(g, 64);

    for (int i = 0; i < n; i++) {
        const char *src = json_string_value(json_object_get(g[i].root, "template"));
        chat_template *t = NULL;
        char err[512] = "", *a = NULL, *b = NULL;
        chat_render_opts o = opts_of(g[i].root);
        json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", "Hi");
        ck_assert_msg(chat_template_parse(src, strlen(src), &t, err, sizeof err) == RB_OK, "%s: %s",
                      g[i].path, err);
        ck_assert_msg(chat_template_render(t, msgs, &o, &a, err, sizeof err) == RB_OK, "%s: %s",
                      g[i].path, err);
        ck_assert_int_eq(chat_template_render(t, msgs, &o, &b, err, sizeof err), RB_OK);
        ck_assert_str_eq(a, b);
        free(a);
        free(b);
        json_decref(msgs);
        chat_template_free(t);
        json_decref(g[i].root);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chat_templates_data");
    TCase *tc = rbt_tcase(s, "goldens", 60);
    tcase_add_test(
        tc, test_chat_templates__every_golden_template_renders_its_conversations_byte_for_byte);
    tcase_add_test(tc, test_chat_templates__cases_the_reference_could_not_render_fail_here_too);
    tcase_add_test(tc,
                   test_chat_templates__every_golden_template_parses_and_renders_twice_the_same);
    return rbt_run_shared_data(s, GOLDEN_DIR, 3);
}
