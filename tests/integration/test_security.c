/*
 * Integration tests for spec/security.feature: authentication, local mode and hostile input,
 * against the real worker.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_models.h"
#include "rb_json.h"
#include "rb_procs.h"
#include "rb_test.h"
#include "rb_util.h"

/* Starts a worker in network mode (no --local-mode) with the given token in its environment. */
static void start_network_worker(rbt_proc *p, const char *dir, char *token_env)
{
    char *argv[] = {
        (char *)rbt_bin("llm-worker-rbee"), "--model", (char *)rbt_model_q8(), "--port", "0", NULL};
    char *env[] = {token_env, NULL};
    memset(p, 0, sizeof(*p));
    snprintf(p->log, sizeof p->log, "%s/net-worker.log", dir);
    p->pid = rbt_spawn(argv, env, p->log);
    p->port = rbt_wait_listening(p->log, 10000);
    ck_assert_msg(p->port > 0, "worker did not start (log %s)", p->log);
    snprintf(p->base, sizeof p->base, "http://127.0.0.1:%d", p->port);
}

/* Scenario: A worker in network mode refuses to start without a token */
START_TEST(test_security__a_worker_in_network_mode_refuses_to_start_without_a_token)
{
    char dir[4096], log[4200];
    char *argv[] = {
        (char *)rbt_bin("llm-worker-rbee"), "--model", (char *)rbt_model_q8(), "--port", "0", NULL};
    char *env[] = {"RBEE_API_TOKEN=", NULL};
    int st;
    rbt_tmpdir(dir);
    snprintf(log, sizeof log, "%s/w.log", dir);
    pid_t pid = rbt_spawn(argv, env, log);
    ck_assert(rbt_wait_exit(pid, 5000, &st));
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    ck_assert(rbt_file_contains(log, "--local-mode"));
    ck_assert(rbt_file_contains(log, "RBEE_API_TOKEN"));
    rbt_rmtree(dir);
}
END_TEST

/* Local address of the listening socket on port, from /proc/net/tcp (hex "0100007F"...). */
static int bound_to_loopback(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    int loop = -1;
    while (f && fgets(line, sizeof line, f)) {
        unsigned addr, p, state;
        if (sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X", &addr, &p, &state) == 3 && (int)p == port &&
            state == 0x0A) /* LISTEN */
            loop = addr == 0x0100007F;
    }
    if (f)
        fclose(f);
    return loop;
}

/* Scenario: Local mode binds loopback only */
START_TEST(test_security__local_mode_binds_loopback_only)
{
    char dir[4096];
    rbt_proc w, n;
    rbt_tmpdir(dir);
    rbt_start_worker(&w, dir, rbt_model_q8(), NULL, NULL, NULL);
    ck_assert_int_eq(bound_to_loopback(w.port), 1);
    ck_assert_int_eq(rbt_stop(&w, 5000), 0);
    start_network_worker(&n, dir, "RBEE_API_TOKEN=s3cret");
    ck_assert_int_eq(bound_to_loopback(n.port), 0); /* all interfaces */
    ck_assert_int_eq(rbt_stop(&n, 5000), 0);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Protected worker routes demand the token in network mode */
START_TEST(test_security__protected_worker_routes_demand_the_token_in_network_mode)
{
    char dir[4096], url[256];
    rbt_proc w;
    rb_buf b;
    const char *none[] = {"Content-Type: application/json", NULL};
    const char *wrong[] = {"Content-Type: application/json", "Authorization: Bearer wrong", NULL};
    const char *right[] = {"Content-Type: application/json", "Authorization: Bearer s3cret", NULL};
    rb_buf_init(&b, 1 << 20);
    rbt_tmpdir(dir);
    start_network_worker(&w, dir, "RBEE_API_TOKEN=s3cret");
    snprintf(url, sizeof url, "%s/v1/inference", w.base);
    ck_assert_int_eq(rbt_http("POST", url, none, "{\"prompt\":\"x\"}", 5000, &b, NULL), 401);
    ck_assert_ptr_nonnull(strstr(b.data, "MISSING_API_KEY"));
    rb_buf_reset(&b);
    ck_assert_int_eq(rbt_http("POST", url, wrong, "{\"prompt\":\"x\"}", 5000, &b, NULL), 401);
    ck_assert_ptr_nonnull(strstr(b.data, "INVALID_API_KEY"));
    snprintf(url, sizeof url, "%s/health", w.base);
    ck_assert_int_eq(rbt_http("GET", url, NULL, NULL, 5000, NULL, NULL), 200);
    snprintf(url, sizeof url, "%s/metrics", w.base);
    ck_assert_int_eq(rbt_http("GET", url, NULL, NULL, 5000, NULL, NULL), 200);
    snprintf(url, sizeof url, "%s/v1/ready", w.base);
    ck_assert_int_eq(rbt_http("GET", url, NULL, NULL, 5000, NULL, NULL), 401);
    ck_assert_int_eq(rbt_http("GET", url, right, NULL, 5000, NULL, NULL), 200);
    /* after the refusals the worker still serves a request with the token, to the end, once
     * it has loaded the model (before that the answer is 503 LOADING) */
    int64_t end = rbt_ms() + 10000;
    for (;;) {
        rb_buf_reset(&b);
        ck_assert_int_eq(rbt_http("GET", url, right, NULL, 5000, &b, NULL), 200);
        if (strstr(b.data, "\"ready\":true"))
            break;
        ck_assert_msg(rbt_ms() < end, "the worker never became ready: %s", b.data);
        rbt_poll_interval();
    }
    snprintf(url, sizeof url, "%s/v1/inference", w.base);
    rb_buf_reset(&b);
    ck_assert_int_eq(rbt_http("POST", url, right,
                              "{\"prompt\":\"In the beginning\",\"max_tokens\":4}", 10000, &b,
                              NULL),
                     200);
    ck_assert_ptr_nonnull(strstr(b.data, "\"type\":\"end\""));
    ck_assert_ptr_nonnull(strstr(b.data, "[DONE]"));
    ck_assert_int_eq(rbt_stop(&w, 5000), 0);
    rb_buf_release(&b);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: The token never appears in logs */
START_TEST(test_security__the_token_never_appears_in_logs)
{
    char dir[4096], url[256], fp[7];
    rbt_proc w;
    const char *wrong[] = {"Authorization: Bearer nope", NULL};
    rbt_tmpdir(dir);
    start_network_worker(&w, dir, "RBEE_API_TOKEN=s3cret-value");
    snprintf(url, sizeof url, "%s/v1/ready", w.base);
    ck_assert_int_eq(rbt_http("GET", url, wrong, NULL, 5000, NULL, NULL), 401);
    ck_assert_int_eq(rbt_stop(&w, 5000), 0);
    rb_token_fingerprint("s3cret-value", fp);
    ck_assert(rbt_file_contains(w.log, fp));
    ck_assert(!rbt_file_contains(w.log, "s3cret-value"));
    rbt_rmtree(dir);
}
END_TEST

static int connect_to(int port)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Scenario: Garbage on the socket does not hurt the daemon */
START_TEST(test_security__garbage_on_the_socket_does_not_hurt_the_daemon)
{
    char dir[4096], url[256], buf[4096];
    rbt_proc w;
    unsigned char *junk = malloc(100 * 1024);
    int fd;
    ssize_t r;
    rbt_tmpdir(dir);
    rbt_start_worker(&w, dir, rbt_model_q8(), NULL, NULL, NULL);
    rb_random_bytes(junk, 100 * 1024);
    /* 64 KiB of random bytes. */
    fd = connect_to(w.port);
    r = send(fd, junk, 64 * 1024, MSG_NOSIGNAL);
    (void)r;
    r = recv(fd, buf, sizeof buf, 0); /* an error reply or a close, within the timeout */
    close(fd);
    /* A 100 KiB request line. */
    fd = connect_to(w.port);
    memcpy(junk, "GET /", 5);
    memset(junk + 5, 'a', 100 * 1024 - 5);
    r = send(fd, junk, 100 * 1024, MSG_NOSIGNAL);
    r = recv(fd, buf, sizeof buf, 0);
    close(fd);
    /* A request whose sender half-closes before the body. */
    fd = connect_to(w.port);
    const char *req = "POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: 100\r\n\r\n{\"prompt\":";
    r = send(fd, req, strlen(req), MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    r = recv(fd, buf, sizeof buf, 0);
    close(fd);
    snprintf(url, sizeof url, "%s/health", w.base);
    ck_assert_int_eq(rbt_http("GET", url, NULL, NULL, 5000, NULL, NULL), 200);
    ck_assert_int_eq(rbt_stop(&w, 5000), 0);
    free(junk);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Prompts are never echoed in errors */
START_TEST(test_security__prompts_are_never_echoed_in_errors)
{
    char dir[4096], url[256];
    rbt_proc w;
    rb_buf b;
    const char *h[] = {"Content-Type: application/json", NULL};
    rb_buf_init(&b, 1 << 20);
    rbt_tmpdir(dir);
    rbt_start_worker(&w, dir, rbt_model_q8(), NULL, NULL, NULL);
    ck_assert(rbt_wait_ready(&w, 15000));
    snprintf(url, sizeof url, "%s/v1/inference", w.base);
    ck_assert_int_eq(rbt_http("POST", url, h,
                              "{\"prompt\":\"PRIVATE-PROMPT-TEXT\",\"max_tokens\":\"lots\"}", 5000,
                              &b, NULL),
                     400);
    ck_assert_ptr_null(strstr(b.data, "PRIVATE-PROMPT-TEXT"));
    ck_assert_ptr_null(strstr(b.data, "lots"));
    ck_assert_int_eq(rbt_stop(&w, 5000), 0);
    ck_assert(!rbt_file_contains(w.log, "PRIVATE-PROMPT-TEXT"));
    rb_buf_release(&b);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Errors the HTTP layer answers on the OpenAI routes are in OpenAI's shape */
START_TEST(
    test_worker_openai__errors_the_http_layer_answers_on_the_openai_routes_are_in_openai_s_shape)
{
    char dir[4096], url[256];
    rbt_proc w;
    rb_buf b;
    const char *none[] = {"Content-Type: application/json", NULL};
    const char *wrong[] = {"Content-Type: application/json", "Authorization: Bearer wrong", NULL};
    const char *text[] = {"Content-Type: text/plain", "Authorization: Bearer s3cret", NULL};
    const struct {
        const char *const *headers;
        long status;
        const char *code;
    } rows[] = {{none, 401, "missing_api_key"},
                {wrong, 401, "invalid_api_key"},
                {text, 415, "unsupported_media_type"}};
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";

    rb_buf_init(&b, 1 << 20);
    rbt_tmpdir(dir);
    start_network_worker(&w, dir, "RBEE_API_TOKEN=s3cret");
    snprintf(url, sizeof url, "%s/v1/chat/completions", w.base);
    for (size_t i = 0; i < RB_ARRAY_LEN(rows); i++) {
        json_t *j, *e;
        rb_buf_reset(&b);
        ck_assert_int_eq(rbt_http("POST", url, rows[i].headers, body, 5000, &b, NULL),
                         rows[i].status);
        j = json_loads(b.data, 0, NULL);
        e = json_object_get(j, "error");
        ck_assert_msg(json_is_object(e), "not OpenAI's shape: %s", b.data);
        ck_assert_str_eq(json_string_value(json_object_get(e, "code")), rows[i].code);
        ck_assert_str_eq(json_string_value(json_object_get(e, "type")), "invalid_request_error");
        ck_assert(json_is_null(json_object_get(e, "param")));
        ck_assert(json_is_string(json_object_get(e, "message")));
        json_decref(j);
    }
    snprintf(url, sizeof url, "%s/v1/inference", w.base);
    rb_buf_reset(&b);
    ck_assert_int_eq(rbt_http("POST", url, none, "{\"prompt\":\"x\"}", 5000, &b, NULL), 401);
    ck_assert_ptr_nonnull(strstr(b.data, "\"MISSING_API_KEY\""));
    ck_assert_int_eq(rbt_stop(&w, 5000), 0);
    rb_buf_release(&b);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("security");
    TCase *tc = rbt_tcase(s, "security", 60);
    tcase_add_test(tc, test_security__a_worker_in_network_mode_refuses_to_start_without_a_token);
    tcase_add_test(tc, test_security__local_mode_binds_loopback_only);
    tcase_add_test(tc, test_security__protected_worker_routes_demand_the_token_in_network_mode);
    tcase_add_test(tc, test_security__the_token_never_appears_in_logs);
    tcase_add_test(tc, test_security__garbage_on_the_socket_does_not_hurt_the_daemon);
    tcase_add_test(tc, test_security__prompts_are_never_echoed_in_errors);
    tcase_add_test(
        tc,
        test_worker_openai__errors_the_http_layer_answers_on_the_openai_routes_are_in_openai_s_shape);
    return rbt_run(s);
}
