/*
 * Integration tests for spec/keeper_chat.feature: the real rbee chat against the real
 * rbee-hive with mock-worker as its worker, fed from a pipe or driven through a
 * pseudo-terminal. What reached the worker is read from mock-worker's /mock/records; every
 * read of the terminal has a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_procs.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"
#include "rbt_keeper.h"

typedef struct env {
    rbt_hive h;
    rbt_keeper k;
    char model[4300];
    char scenario[2048];
} env;

static void setup(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    unsetenv("RBEE_API_TOKEN");
    unsetenv("MOCK_WORKER_SCENARIO");
}

static void env_start(env *e, const char *scenario)
{
    rbt_hive_opts o = rbt_hive_opts_default();

    memset(e, 0, sizeof(*e));
    rbt_hive_init(&e->h);
    rbt_hive_fake_model(&e->h, e->model, sizeof e->model);
    if (scenario) {
        snprintf(e->scenario, sizeof e->scenario, "MOCK_WORKER_SCENARIO=%s", scenario);
        o.env[0] = e->scenario;
    }
    rbt_hive_start(&e->h, &o);
    rbt_keeper_init(&e->k, NULL);
}

static void env_stop(env *e)
{
    rbt_keeper_cleanup(&e->k);
    ck_assert_int_eq(rbt_hive_stop(&e->h), 0);
    rbt_hive_cleanup(&e->h);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* /mock/records of the hive's only worker (new reference). */
static json_t *worker_records(env *e)
{
    json_t *r = NULL, *rec;
    char *text;
    ck_assert_int_eq(rbt_hive_json(&e->h, "GET", "/v1/workers/list", NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r, "workers")), 1);
    text = rbt_get(
        json_string_value(json_object_get(json_array_get(json_object_get(r, "workers"), 0), "url")),
        "/mock/records");
    json_decref(r);
    ck_assert(text);
    rec = json_loads(text, 0, NULL);
    free(text);
    ck_assert(rec);
    return rec;
}

static const char *msg_field(json_t *messages, size_t i, const char *key)
{
    const char *s = json_string_value(json_object_get(json_array_get(messages, i), key));
    return s ? s : "";
}

/* Scenario: Lines from a pipe are turns and the second turn carries the first */
START_TEST(test_keeper_chat__lines_from_a_pipe_are_turns_and_the_second_turn_carries_the_first)
{
    env e;
    char in[4300];
    const char *args[] = {"chat",     "--hive",       e.h.base,       "--model", e.model,
                          "--system", "Answer well.", "--max-tokens", "3",       NULL};
    int saved, fd;
    json_t *rec, *reqs, *m;
    char *out, *err;

    env_start(&e, NULL);
    args[2] = e.h.base;
    args[4] = e.model;
    snprintf(in, sizeof in, "%s/in.txt", e.k.home);
    FILE *f = fopen(in, "w");
    ck_assert(f);
    fputs("first\nsecond\n", f);
    fclose(f);
    saved = dup(0);
    fd = open(in, O_RDONLY);
    dup2(fd, 0);
    close(fd);
    rbt_keeper_start(&e.k, args);
    dup2(saved, 0);
    close(saved);
    ck_assert_int_eq(rbt_keeper_wait(&e.k, 30000), 0);
    out = rbt_keeper_out(&e.k);
    err = rbt_keeper_err(&e.k);
    ck_assert_msg(strcmp(out, "In the beginning\nIn the beginning\n") == 0, "stdout: %s", out);
    ck_assert_int_eq(rbt_count(err, "[Phase 1]"), 1);
    ck_assert_int_eq(rbt_count(err, "[Phase 7] Ready"), 1);
    ck_assert_msg(!strstr(err, "> "), "no prompt without a terminal: %s", err);
    rec = worker_records(&e);
    reqs = json_object_get(rec, "openai_requests");
    ck_assert_int_eq(json_array_size(reqs), 2);
    ck_assert(json_is_true(json_object_get(json_array_get(reqs, 1), "stream")));
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(reqs, 1), "model")), e.model);
    m = json_object_get(json_array_get(reqs, 0), "messages");
    ck_assert_int_eq(json_array_size(m), 2);
    m = json_object_get(json_array_get(reqs, 1), "messages");
    ck_assert_int_eq(json_array_size(m), 4);
    ck_assert_str_eq(msg_field(m, 0, "role"), "system");
    ck_assert_str_eq(msg_field(m, 0, "content"), "Answer well.");
    ck_assert_str_eq(msg_field(m, 1, "role"), "user");
    ck_assert_str_eq(msg_field(m, 1, "content"), "first");
    ck_assert_str_eq(msg_field(m, 2, "role"), "assistant");
    ck_assert_str_eq(msg_field(m, 2, "content"), "In the beginning");
    ck_assert_str_eq(msg_field(m, 3, "role"), "user");
    ck_assert_str_eq(msg_field(m, 3, "content"), "second");
    json_decref(rec);
    free(out);
    free(err);
    env_stop(&e);
}
END_TEST

/* What the terminal has shown so far. */
typedef struct term {
    int fd;
    char buf[65536];
    size_t len;
} term;

/* Reads the terminal until needle appears at or after offset from, at most timeout_ms.
 * Returns the needle's offset, or -1. */
static long expect(term *t, const char *needle, size_t from, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    for (;;) {
        t->buf[t->len] = '\0';
        char *hit = from <= t->len ? strstr(t->buf + from, needle) : NULL;
        if (hit)
            return hit - t->buf;
        int64_t left = end - rbt_ms();
        if (left <= 0 || t->len + 1 >= sizeof t->buf)
            return -1;
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t n = read(t->fd, t->buf + t->len, sizeof t->buf - 1 - t->len);
        if (n <= 0)
            return -1; /* the program ended */
        t->len += (size_t)n;
    }
}

static void type(term *t, const char *s)
{
    ck_assert_int_eq(write(t->fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Scenario: On a terminal the reply streams and Ctrl+C stops only the reply */
START_TEST(test_keeper_chat__on_a_terminal_the_reply_streams_and_ctrl_c_stops_only_the_reply)
{
    env e;
    term t = {0};
    char tokens[1024] = "", scenario[1400], bin[4096];
    pid_t pid;
    long at, stop_at, prompt_at;
    int st = 0;
    json_t *rec;

    for (int i = 0; i < 40; i++)
        snprintf(tokens + strlen(tokens), sizeof tokens - strlen(tokens), "%s\" w%d\"",
                 i ? "," : "", i);
    snprintf(scenario, sizeof scenario, "{\"token_interval_ms\":100,\"tokens\":[%s]}", tokens);
    env_start(&e, scenario);
    snprintf(bin, sizeof bin, "%s", rbt_bin("rbee"));
    pid = forkpty(&t.fd, NULL, NULL, NULL);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char *argv[] = {bin, "chat", "--hive", e.h.base, "--model", e.model, NULL};
        for (int i = 0; e.k.envp[i]; i++)
            putenv(e.k.envp[i]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(bin, argv);
        _exit(127);
    }
    ck_assert_msg((prompt_at = expect(&t, "> ", 0, rbt_scaled(20000))) >= 0, "no prompt: %s",
                  t.buf);
    type(&t, "tell me\n");
    /* the reply streams: its first token shows while the last is still far away */
    ck_assert_msg((at = expect(&t, " w0", (size_t)prompt_at, rbt_scaled(10000))) >= 0,
                  "no reply: %s", t.buf);
    ck_assert_ptr_null(strstr(t.buf + at, " w39"));
    ck_assert(expect(&t, " w3", (size_t)at, rbt_scaled(5000)) >= 0);
    type(&t, "\x03");
    ck_assert_msg((stop_at = expect(&t, "[reply stopped]", (size_t)at, rbt_scaled(5000))) >= 0,
                  "Ctrl+C did not stop the reply: %s", t.buf);
    ck_assert_msg(expect(&t, "> ", (size_t)stop_at, rbt_scaled(5000)) >= 0,
                  "no prompt after Ctrl+C: %s", t.buf);
    ck_assert_ptr_null(strstr(t.buf, " w39")); /* the reply never finished */
    /* the hive closed the worker's stream: the worker stopped generating */
    int64_t end = rbt_ms() + rbt_scaled(3000);
    for (;;) {
        rec = worker_records(&e);
        long long d = json_integer_value(json_object_get(rec, "disconnects"));
        json_decref(rec);
        if (d >= 1)
            break;
        ck_assert_msg(rbt_ms() < end, "the worker's stream was never closed");
        rbt_poll_interval();
    }
    type(&t, "/bye\n");
    ck_assert_msg(rbt_wait_exit(pid, rbt_scaled(10000), &st), "rbee chat did not exit: %s", t.buf);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s", st, t.buf);
    close(t.fd);
    env_stop(&e);
}
END_TEST

/* Scenario: A bad option is a one-line error */
START_TEST(test_keeper_chat__a_bad_option_is_a_one_line_error)
{
    rbt_keeper k;
    const char *args[] = {"chat", "--temperature", "9", NULL};
    char *err;

    rbt_keeper_init(&k, NULL);
    ck_assert_int_eq(rbt_keeper_run(&k, 10000, args), 1);
    err = rbt_keeper_err(&k);
    ck_assert_int_eq(rbt_count(err, "\n"), 1);
    ck_assert(strstr(err, "rbee chat: --temperature"));
    free(err);
    rbt_keeper_cleanup(&k);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keeper_chat");
    TCase *tc = rbt_tcase(s, "keeper_chat", 60);

    rbt_keeper_mark();
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(
        tc, test_keeper_chat__lines_from_a_pipe_are_turns_and_the_second_turn_carries_the_first);
    tcase_add_test(
        tc, test_keeper_chat__on_a_terminal_the_reply_streams_and_ctrl_c_stops_only_the_reply);
    tcase_add_test(tc, test_keeper_chat__a_bad_option_is_a_one_line_error);
    return rbt_run(s);
}
