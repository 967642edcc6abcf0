/*
 * test_tools_chat_render.c - rbee-gguf chat-render (spec/tools_gguf.feature): the real binary
 * on the bundled model, with a template file, with the model's own template, and with the
 * bad inputs it must refuse on one line. Standard input comes from a file through /bin/sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eng_gguf.h"
#include "rb_models.h"
#include "rb_test.h"
#include "rb_util.h"

#define DEADLINE_MS 30000

typedef struct run {
    int status; /* exit code, -1 on timeout or signal */
    char *out, *err;
} run;

/* Runs `rbee-gguf chat-render <args> < stdin_path` with a deadline. */
static run chat_render(const char *dir, const char *args, const char *stdin_path)
{
    char cmd[8192], out[4200], err[4200];
    run r = {-1, NULL, NULL};
    int st;

    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    unlink(out);
    unlink(err);
    snprintf(cmd, sizeof cmd, "exec '%s' chat-render %s < '%s'", rbt_bin("rbee-gguf"), args,
             stdin_path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid = rbt_spawn_split(argv, NULL, out, err);
    if (!rbt_wait_exit(pid, DEADLINE_MS, &st))
        rbt_kill(pid);
    else if (WIFEXITED(st))
        r.status = WEXITSTATUS(st);
    r.out = rbt_slurp(out);
    r.err = rbt_slurp(err);
    if (!r.out)
        r.out = strdup("");
    if (!r.err)
        r.err = strdup("");
    return r;
}

static void run_release(run *r)
{
    free(r->out);
    free(r->err);
}

static void write_text(const char *path, const char *text)
{
    ck_assert_int_eq(rb_write_file_atomic(path, text, strlen(text)), RB_OK);
}

static const char *MESSAGES = "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                              "{\"role\":\"user\",\"content\":\"Hi \\u00e9\"}]";

/* Scenario: rbee-gguf chat-render prints the prompt a template makes */
START_TEST(test_tools_gguf__rbee_gguf_chat_render_prints_the_prompt_a_template_makes)
{
    char dir[4096], msgs[4200], tmpl[4200], args[9000], vocab[4200], e[256];
    rbt_tmpdir(dir);
    snprintf(msgs, sizeof msgs, "%s/messages.json", dir);
    snprintf(tmpl, sizeof tmpl, "%s/t.jinja", dir);
    write_text(msgs, MESSAGES);
    write_text(tmpl,
               "{{ bos_token }}{% for m in messages %}\n"
               "  {{- '[' + m.role | upper + '] ' + m.content }}\n"
               "{% endfor %}\n"
               "{{ eos_token }}|{{ strftime_now('%d %b %Y') }}|{{ add_generation_prompt }}\n");

    /* A template file: BOS "<s>" removed from the front, EOS "</s>" kept, the date given,
     * no newline added after the last character. */
    snprintf(args, sizeof args, "'%s' --template '%s' --today 2026-12-01", rbt_model_f16(), tmpl);
    run r = chat_render(dir, args, msgs);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    ck_assert_str_eq(r.out, "[SYSTEM] Be brief.\n[USER] Hi \xc3\xa9\n</s>|01 Dec 2026|True");
    ck_assert_str_eq(r.err, "");
    run_release(&r);

    /* The bundled model has no tokenizer.chat_template: ChatML. */
    snprintf(args, sizeof args, "'%s'", rbt_model_f16());
    r = chat_render(dir, args, msgs);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    ck_assert_str_eq(r.out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi "
                            "\xc3\xa9<|im_end|>\n<|im_start|>assistant\n");
    run_release(&r);

    /* A model that carries a template renders with it: the bundled model's vocabulary with
     * a tokenizer.chat_template key. */
    eng_gguf *g = NULL;
    eng_gguf_writer *w = eng_gguf_writer_new();
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", dir);
    ck_assert_int_eq(eng_gguf_open(rbt_model_f16(), &g, e, sizeof e), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_copy_kv_prefix(w, g, "general.architecture"), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_copy_kv_prefix(w, g, "tokenizer."), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_str(w, "tokenizer.chat_template",
                                             "{% for m in messages %}<{{ m.role }}>{{ m.content "
                                             "}}{% endfor %}{% if add_generation_prompt %}<bot>"
                                             "{% endif %}"),
                     RB_OK);
    ck_assert_msg(eng_gguf_writer_write(w, vocab, e, sizeof e) == RB_OK, "%s", e);
    eng_gguf_writer_free(w);
    eng_gguf_close(g);
    snprintf(args, sizeof args, "'%s'", vocab);
    r = chat_render(dir, args, msgs);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    ck_assert_str_eq(r.out, "<system>Be brief.<user>Hi \xc3\xa9<bot>");
    run_release(&r);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: rbee-gguf chat-render reports bad input on one line */
START_TEST(test_tools_gguf__rbee_gguf_chat_render_reports_bad_input_on_one_line)
{
    char dir[4096], msgs[4200], obj[4200], tmpl[4200], args[9000];
    rbt_tmpdir(dir);
    snprintf(msgs, sizeof msgs, "%s/messages.json", dir);
    snprintf(obj, sizeof obj, "%s/object.json", dir);
    snprintf(tmpl, sizeof tmpl, "%s/bad.jinja", dir);
    write_text(msgs, MESSAGES);
    write_text(obj, "{\"role\":\"user\",\"content\":\"x\"}");
    write_text(tmpl, "ok\n{% for m in messages %}{{ m.content }\n{% endfor %}");

    struct {
        const char *args_fmt, *arg, *input, *want;
        int status;
    } cases[] = {
        {"'%s' --template '%s'", tmpl, msgs, "rbee-gguf chat-render: template '", 1},
        {"'%s'", NULL, obj,
         "rbee-gguf chat-render: messages on standard input must be a JSON "
         "array\n",
         1},
        {"/nonexistent.gguf", NULL, msgs,
         "rbee-gguf chat-render: cannot open model '/nonexistent.gguf'", 1},
        {"'%s' --today 2026-13-01", NULL, msgs, "--today takes YYYY-MM-DD", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(args, sizeof args, cases[i].args_fmt, rbt_model_f16(), cases[i].arg);
        run r = chat_render(dir, args, cases[i].input);
        ck_assert_msg(r.status == cases[i].status, "%s: exit %d: %s", args, r.status, r.err);
        ck_assert_msg(strstr(r.err, cases[i].want), "%s: stderr [%s]", args, r.err);
        ck_assert_msg(strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "%s: not one line [%s]",
                      args, r.err);
        ck_assert_str_eq(r.out, "");
        run_release(&r);
    }
    /* the syntax error names the line and column */
    snprintf(args, sizeof args, "'%s' --template '%s'", rbt_model_f16(), tmpl);
    run r = chat_render(dir, args, msgs);
    ck_assert_msg(strstr(r.err, "bad.jinja': line 2, column 37: unexpected '}'"), "[%s]", r.err);
    run_release(&r);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tools_chat_render");
    TCase *tc = rbt_tcase(s, "chat-render", 120);
    tcase_add_test(tc, test_tools_gguf__rbee_gguf_chat_render_prints_the_prompt_a_template_makes);
    tcase_add_test(tc, test_tools_gguf__rbee_gguf_chat_render_reports_bad_input_on_one_line);
    return rbt_run_counted(s, 2);
}
