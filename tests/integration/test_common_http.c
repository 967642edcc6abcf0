/*
 * Integration tests for spec/common_http.feature: a real server on loopback and real requests;
 * and the port checks of spec/keeper_commands.feature that need real sockets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kpr_proc.h"
#include "rb_client.h"
#include "rb_http.h"
#include "rb_json.h"
#include "rb_test.h"
#include "rb_sock.h"
#include "rb_time.h"
#include "rb_util.h"

static char last_param[64];

static void health(rb_http_req *req, rb_http_reply *rep, void *user)
{
    (void)req, (void)user;
    rb_http_reply_json(rep, 200, json_pack("{s:s}", "status", "alive"));
}

static void job_stream(rb_http_req *req, rb_http_reply *rep, void *user)
{
    (void)user;
    snprintf(last_param, sizeof last_param, "%s", req->nparams == 1 ? req->params[0] : "?");
    rb_http_reply_json(rep, 200, json_pack("{s:s}", "id", req->params[0]));
}

static void echo(rb_http_req *req, rb_http_reply *rep, void *user)
{
    json_error_t je;
    json_t *j = json_loadb(req->body, req->body_len, 0, &je);
    (void)user;
    if (!j) {
        rb_http_reply_error(rep, 400, "INVALID_JSON", "body is not valid JSON", NULL);
        return;
    }
    rb_http_reply_json(rep, 200, j);
}

static void no_reply(rb_http_req *req, rb_http_reply *rep, void *user)
{
    (void)req, (void)rep, (void)user;
}

static atomic_int slow_hits, slow_release;

/* Answers only once the test releases it (or after 5 s): a server slower than any client
 * timeout the test uses. */
static void slow(rb_http_req *req, rb_http_reply *rep, void *user)
{
    (void)req, (void)user;
    atomic_fetch_add(&slow_hits, 1);
    for (int64_t end = rbt_ms() + 5000; !atomic_load(&slow_release) && rbt_ms() < end;)
        rbt_poll_interval();
    rb_http_reply_json(rep, 200, json_pack("{s:s}", "status", "late"));
}

static atomic_int ticks_running, ticks_pushed;

static void *tick_main(void *arg)
{
    rb_chan *ch = arg;
    for (int i = 0; i < 5; i++) {
        rb_sleep_ms(300); /* the producer's pace under test, not a wait for a condition */
        if (rb_chan_pushf(ch, "{\"tick\":%d}", i) != RB_OK)
            break;
        atomic_fetch_add(&ticks_pushed, 1);
    }
    rb_chan_push(ch, "[DONE]", (size_t)-1, 1000);
    rb_chan_finish(ch);
    rb_chan_unref(ch);
    atomic_store(&ticks_running, 0);
    return NULL;
}

/* Streams five events 300 ms apart, then [DONE]. */
static void ticks(rb_http_req *req, rb_http_reply *rep, void *user)
{
    rb_chan *ch = rb_chan_new(16);
    pthread_t t;
    (void)req, (void)user;
    rb_chan_ref(ch);
    atomic_store(&ticks_running, 1);
    atomic_store(&ticks_pushed, 0);
    ck_assert_int_eq(pthread_create(&t, NULL, tick_main, ch), 0);
    pthread_detach(t);
    rb_http_reply_sse(rep, ch);
    rb_chan_unref(ch);
}

static const rb_http_route routes[] = {
    {"GET", "/v1/ticks", ticks, 0},
    {"GET", "/v1/health", health, RB_ROUTE_PUBLIC},
    {"GET", "/v1/jobs/{id}/stream", job_stream, 0},
    {"POST", "/v1/echo", echo, 0},
    {"GET", "/v1/secret", health, 0},
    {"GET", "/v1/broken", no_reply, 0},
    {"GET", "/v1/slow", slow, 0},
};

typedef struct server {
    rb_http_server *srv;
    char base[64];
} server;

static void server_start_cfg(server *s, rb_http_config cfg)
{
    char err[256];
    cfg.routes = routes;
    cfg.nroutes = RB_ARRAY_LEN(routes);
    ck_assert_int_eq(rb_http_server_start(&cfg, &s->srv, err, sizeof err), RB_OK);
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%u", rb_http_server_port(s->srv));
}

static void server_start(server *s, const char *token, size_t max_body)
{
    rb_http_config cfg = rb_http_config_default();
    cfg.token = token;
    if (max_body)
        cfg.max_body = max_body;
    server_start_cfg(s, cfg);
}

static long get(server *s, const char *method, const char *path, const char *const *headers,
                const char *body, rb_buf *out, rb_buf *hdrs)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    if (out)
        rb_buf_reset(out);
    if (hdrs)
        rb_buf_reset(hdrs);
    return rbt_http(method, url, headers, body, 5000, out, hdrs);
}

static void assert_code(const rb_buf *b, const char *code)
{
    char c[64], m[256];
    ck_assert_msg(rb_error_envelope_parse(b->data, c, sizeof c, m, sizeof m), "not an envelope: %s",
                  b->data ? b->data : "(empty)");
    ck_assert_str_eq(c, code);
    ck_assert_int_gt(strlen(m), 0);
}

/* Scenario: Unknown routes get 404 in the error envelope */
START_TEST(test_common_http__unknown_routes_get_404_in_the_error_envelope)
{
    server s;
    rb_buf b;
    rb_buf_init(&b, 1 << 16);
    server_start(&s, NULL, 0);
    ck_assert_int_eq(get(&s, "GET", "/v1/nope", NULL, NULL, &b, NULL), 404);
    assert_code(&b, "NOT_FOUND");
    ck_assert_int_eq(get(&s, "GET", "/v1/health/", NULL, NULL, &b, NULL), 404);
    ck_assert_int_eq(get(&s, "GET", "/v1/jobs//stream", NULL, NULL, &b, NULL), 404);
    rb_http_server_stop(s.srv);
    rb_buf_release(&b);
}
END_TEST

/* Scenario: A known path with another method gets 405 */
START_TEST(test_common_http__a_known_path_with_another_method_gets_405)
{
    server s;
    rb_buf b;
    rb_buf_init(&b, 1 << 16);
    server_start(&s, NULL, 0);
    ck_assert_int_eq(get(&s, "DELETE", "/v1/health", NULL, NULL, &b, NULL), 405);
    assert_code(&b, "METHOD_NOT_ALLOWED");
    rb_http_server_stop(s.srv);
    rb_buf_release(&b);
}
END_TEST

/* Scenario: Path parameters are passed to the handler */
START_TEST(test_common_http__path_parameters_are_passed_to_the_handler)
{
    server s;
    rb_buf b;
    rb_buf_init(&b, 1 << 16);
    server_start(&s, NULL, 0);
    ck_assert_int_eq(get(&s, "GET", "/v1/jobs/job-42/stream", NULL, NULL, &b, NULL), 200);
    ck_assert_str_eq(last_param, "job-42");
    ck_assert_str_eq(b.data, "{\"id\":\"job-42\"}");
    /* A handler that forgets to reply gives a 500 envelope, not a hang. */
    ck_assert_int_eq(get(&s, "GET", "/v1/broken", NULL, NULL, &b, NULL), 500);
    assert_code(&b, "INTERNAL");
    rb_http_server_stop(s.srv);
    rb_buf_release(&b);
}
END_TEST

/* Scenario: A body over the limit gets 413 */
START_TEST(test_common_http__a_body_over_the_limit_gets_413)
{
    server s;
    rb_buf b;
    char big[4200];
    const char *json_ct[] = {"Content-Type: application/json", NULL};
    const char *chunked[] = {"Content-Type: application/json", "Transfer-Encoding: chunked", NULL};
    rb_buf_init(&b, 1 << 16);
    server_start(&s, NULL, 1024);
    memset(big, ' ', sizeof big);
    big[0] = '{';
    memcpy(big + 4096 - 2, "}", 2);
    ck_assert_int_eq(get(&s, "POST", "/v1/echo", json_ct, big, &b, NULL), 413);
    assert_code(&b, "PAYLOAD_TOO_LARGE");
    /* Without a Content-Length (chunked) the limit is enforced while reading. */
    ck_assert_int_eq(get(&s, "POST", "/v1/echo", chunked, big, &b, NULL), 413);
    assert_code(&b, "PAYLOAD_TOO_LARGE");
    /* And the server still serves. */
    ck_assert_int_eq(get(&s, "POST", "/v1/echo", json_ct, "{\"a\":1}", &b, NULL), 200);
    ck_assert_str_eq(b.data, "{\"a\":1}");
    ck_assert_int_eq(get(&s, "POST", "/v1/echo", json_ct, "{\"a\":", &b, NULL), 400);
    assert_code(&b, "INVALID_JSON");
    rb_http_server_stop(s.srv);
    rb_buf_release(&b);
}
END_TEST

/* Scenario: A body that is not JSON by content type gets 415 */
START_TEST(test_common_http__a_body_that_is_not_json_by_content_type_gets_415)
{
    server s;
    rb_buf b;
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    const char *charset[] = {"Content-Type: application/json; charset=utf-8", NULL};
    rb_buf_init(&b, 1 << 16);
    server_start(&s, NULL, 0);
    ck_assert_int_eq(get(&s, "POST", "/v1/echo", form, "a=b", &b, NULL), 415);
    assert_code(&b, "UNSUPPORTED_MEDIA_TYPE");
    ck_assert_int_eq(get(&s, "POST", "/v1/echo", charset, "[1]", &b, NULL), 200);
    rb_http_server_stop(s.srv);
    rb_buf_release(&b);
}
END_TEST

/* Scenario: The correlation id is echoed or generated */
START_TEST(test_common_http__the_correlation_id_is_echoed_or_generated)
{
    server s;
    rb_buf b, h;
    const char *with[] = {"X-Correlation-ID: abc-123", NULL};
    const char *bad[] = {"X-Correlation-ID: has space<>", NULL};
    const char *p;
    rb_buf_init(&b, 1 << 16);
    rb_buf_init(&h, 1 << 16);
    server_start(&s, NULL, 0);
    ck_assert_int_eq(get(&s, "GET", "/v1/health", with, NULL, &b, &h), 200);
    ck_assert_ptr_nonnull(strstr(h.data, "X-Correlation-ID: abc-123\r\n"));
    ck_assert_int_eq(get(&s, "GET", "/v1/nope", NULL, NULL, &b, &h), 404);
    p = strstr(h.data, "X-Correlation-ID: ");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(strcspn(p + 18, "\r\n"), 36);
    ck_assert_int_eq(get(&s, "GET", "/v1/health", bad, NULL, &b, &h), 200);
    ck_assert_ptr_null(strstr(h.data, "has space"));
    rb_http_server_stop(s.srv);
    rb_buf_release(&b);
    rb_buf_release(&h);
}
END_TEST

/* Scenario Outline: Bearer authentication in network mode */
START_TEST(test_common_http__bearer_authentication_in_network_mode)
{
    static const struct {
        const char *header;
        long status;
        const char *code;
    } rows[] = {
        {NULL, 401, "MISSING_API_KEY"},
        {"Authorization: Bearer wrong", 401, "INVALID_API_KEY"},
        {"Authorization: Basic czNjcmV0", 401, "INVALID_API_KEY"},
        {"Authorization: Bearer s3cret", 200, NULL},
    };
    server s;
    rb_buf b;
    rb_buf_init(&b, 1 << 16);
    server_start(&s, "s3cret", 0);
    for (size_t i = 0; i < RB_ARRAY_LEN(rows); i++) {
        const char *h[] = {rows[i].header, NULL};
        long st = get(&s, "GET", "/v1/secret", h, NULL, &b, NULL);
        ck_assert_msg(st == rows[i].status, "row %zu: status %ld", i, st);
        if (rows[i].code)
            assert_code(&b, rows[i].code);
    }
    rb_http_server_stop(s.srv);
    rb_buf_release(&b);
}
END_TEST

/* Scenario: Public routes need no token */
START_TEST(test_common_http__public_routes_need_no_token)
{
    server s;
    rb_buf b;
    rb_buf_init(&b, 1 << 16);
    server_start(&s, "s3cret", 0);
    ck_assert_int_eq(get(&s, "GET", "/v1/health", NULL, NULL, &b, NULL), 200);
    /* Unknown routes answer 404 whatever the token: routing comes before auth. */
    ck_assert_int_eq(get(&s, "GET", "/v1/nope", NULL, NULL, &b, NULL), 404);
    rb_http_server_stop(s.srv);
    rb_buf_release(&b);
}
END_TEST

/* Scenario: The JSON client retries a refused connection with backoff */
START_TEST(test_common_http__the_json_client_retries_a_refused_connection_with_backoff)
{
    rb_client_opts o = rb_client_opts_default();
    char url[64], err[256];
    long status;
    json_t *reply;
    int64_t t0;
    rb_err rc;

    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/health", rbt_free_port());
    o.attempts = 3;
    o.backoff_ms = 50;
    t0 = rbt_ms();
    rc = rb_client_json("GET", url, NULL, &o, &status, &reply, err, sizeof err);
    ck_assert_int_eq(rc, RB_ECONNECT);
    ck_assert_int_ge(rbt_ms() - t0, 150); /* 50 + 100 ms of backoff */
    ck_assert_ptr_nonnull(strstr(err, "cannot connect"));
    ck_assert_ptr_null(reply);
}
END_TEST

/* Scenario: The JSON client gives up on a slow server at its total timeout and retries */
START_TEST(
    test_common_http__the_json_client_gives_up_on_a_slow_server_at_its_total_timeout_and_retries)
{
    server s;
    rb_client_opts o = rb_client_opts_default();
    char url[128], err[256];
    long status = 0;
    json_t *reply = NULL;
    int64_t t0, took;
    rb_err rc;

    server_start(&s, NULL, 0);
    snprintf(url, sizeof url, "%s/v1/slow", s.base);
    o.timeout_ms = 300;
    o.attempts = 2;
    o.backoff_ms = 50;
    atomic_store(&slow_hits, 0);
    atomic_store(&slow_release, 0);
    t0 = rbt_ms();
    rc = rb_client_json("GET", url, NULL, &o, &status, &reply, err, sizeof err);
    took = rbt_ms() - t0;
    printf("slow server: gave up after %lld ms: %s\n", (long long)took, err);
    ck_assert_int_eq(rc, RB_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(err, "timed out"));
    ck_assert_ptr_null(reply);
    ck_assert_int_ge(took, 600);  /* two tries of 300 ms and the 50 ms pause */
    ck_assert_int_lt(took, 1400); /* not waiting for the server */
    for (int64_t end = rbt_ms() + 2000; atomic_load(&slow_hits) < 2 && rbt_ms() < end;)
        rbt_poll_interval();
    ck_assert_int_eq(atomic_load(&slow_hits), 2);
    atomic_store(&slow_release, 1); /* let the handlers finish so the server can stop */
    rb_http_server_stop(s.srv);
}
END_TEST

/* The JSON client against a live server: body, status and the envelope. */
START_TEST(test_common_http_json_client_round_trip)
{
    server s;
    rb_client_opts o = rb_client_opts_default();
    char url[128], err[256];
    long status;
    json_t *req = json_pack("{s:i}", "n", 7), *reply;

    server_start(&s, "tok", 0);
    o.token = "tok";
    snprintf(url, sizeof url, "%s/v1/echo", s.base);
    ck_assert_int_eq(rb_client_json("POST", url, req, &o, &status, &reply, err, sizeof err), RB_OK);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(reply, "n")), 7);
    json_decref(reply);
    o.token = NULL;
    ck_assert_int_eq(rb_client_json("POST", url, req, &o, &status, &reply, err, sizeof err), RB_OK);
    ck_assert_int_eq(status, 401);
    json_decref(reply);
    json_decref(req);
    rb_http_server_stop(s.srv);
}
END_TEST

/* Scenario: Requests with ambiguous framing get 400 */
START_TEST(test_common_http__requests_with_ambiguous_framing_get_400)
{
    server s;
    static char out[8192];
    char req[512];
    const char *bad[] = {
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nContent-Length: 12\r\n\r\n{}",
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2, 2\r\n\r\n{}",
        "GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /v1/nope HTTP/1.1\r\nConnection: close\r\n\r\n",
    };
    server_start(&s, "secret", 4096);
    for (size_t i = 0; i < RB_ARRAY_LEN(bad); i++) {
        ck_assert_int_gt(rbt_raw_http(rb_http_server_port(s.srv), bad[i], out, sizeof out, 5000),
                         0);
        ck_assert_msg(strncmp(out, "HTTP/1.1 400", 12) == 0, "request %zu: %.120s", i, out);
        /* libmicrohttpd refuses "2, 2" itself, without the envelope */
        ck_assert_msg(i == 2 || strstr(out, "\"BAD_REQUEST\""), "request %zu: %.400s", i, out);
    }
    /* The same requests framed properly are served. */
    snprintf(req, sizeof req, "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ck_assert_int_gt(rbt_raw_http(rb_http_server_port(s.srv), req, out, sizeof out, 5000), 0);
    ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%.120s", out);
    ck_assert_int_gt(rbt_raw_http(rb_http_server_port(s.srv), "GET /v1/health HTTP/1.0\r\n\r\n",
                                  out, sizeof out, 5000),
                     0);
    ck_assert_msg(strncmp(out, "HTTP/1.0 200", 12) == 0 || strncmp(out, "HTTP/1.1 200", 12) == 0,
                  "%.120s", out);
    rb_http_server_stop(s.srv);
}
END_TEST

/* A connection from 127.0.0.<src> to the server, with the start of a request sent. */
static int hold_from(server *s, int src)
{
    struct sockaddr_in sa = {0}, me = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    const char part[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\n";

    ck_assert_int_ge(fd, 0);
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)src);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(rb_http_server_port(s->srv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(send(fd, part, sizeof part - 1, MSG_NOSIGNAL), (ssize_t)(sizeof part - 1));
    return fd;
}

/* Reads until the peer closes or timeout_ms pass; returns the ms it took (-1: still open) and
 * the bytes read into out. */
static int64_t wait_closed(int fd, char *out, size_t cap, int timeout_ms)
{
    int64_t start = rbt_ms(), end = start + timeout_ms;
    size_t used = 0;

    out[0] = '\0';
    while (rbt_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - rbt_ms())) <= 0)
            continue;
        ssize_t r = recv(fd, out + used, cap - 1 - used, 0);
        if (r <= 0)
            return rbt_ms() - start;
        used += (size_t)r;
        out[used] = '\0';
        if (used + 1 == cap)
            used = 0;
    }
    return -1;
}

static void wait_connections(server *s, int n)
{
    rb_http_stats st;
    int64_t end = rbt_ms() + 5000;
    do {
        rb_http_server_stats(s->srv, &st);
        if (st.connections == n)
            return;
        rbt_poll_interval();
    } while (rbt_ms() < end);
    ck_abort_msg("%d connections open, %d expected", st.connections, n);
}

/* GET /v1/health from 127.0.0.<src>; the status line's code or -1. */
static int health_from(server *s, int src)
{
    int fd = hold_from(s, src);
    char out[2048];
    const char rest[] = "Connection: close\r\n\r\n";
    int code = -1;

    ck_assert_int_eq(send(fd, rest, sizeof rest - 1, MSG_NOSIGNAL), (ssize_t)(sizeof rest - 1));
    wait_closed(fd, out, sizeof out, 5000);
    if (strncmp(out, "HTTP/1.1 ", 9) == 0)
        code = atoi(out + 9);
    close(fd);
    return code;
}

/* Scenario: Connections beyond the total or per-address limit are refused at once */
START_TEST(test_common_http__connections_beyond_the_total_or_per_address_limit_are_refused_at_once)
{
    rb_http_config cfg = rb_http_config_default();
    server s;
    int held[6], fd;
    char out[512];
    int64_t t;
    rb_http_stats st;

    cfg.max_connections = 6;
    cfg.max_connections_per_ip = 3;
    server_start_cfg(&s, cfg);
    for (int i = 0; i < 3; i++)
        held[i] = hold_from(&s, 1);
    wait_connections(&s, 3);
    fd = hold_from(&s, 1);
    t = wait_closed(fd, out, sizeof out, 1000);
    ck_assert_msg(t >= 0, "a 4th connection from one address was kept");
    ck_assert_str_eq(out, "");
    close(fd);
    ck_assert_int_eq(health_from(&s, 2), 200);
    for (int i = 3; i < 6; i++)
        held[i] = hold_from(&s, 2);
    wait_connections(&s, 6);
    fd = hold_from(&s, 3);
    t = wait_closed(fd, out, sizeof out, 1000);
    ck_assert_msg(t >= 0, "a 7th connection was kept");
    ck_assert_str_eq(out, "");
    close(fd);
    rb_http_server_stats(s.srv, &st);
    ck_assert_int_ge(st.refused, 2);
    ck_assert_int_eq(st.max_connections, 6);
    for (int i = 0; i < 6; i++)
        close(held[i]);
    wait_connections(&s, 0);
    ck_assert_int_eq(health_from(&s, 1), 200);
    rb_http_server_stop(s.srv);
}
END_TEST

/* Scenario: A request not complete within the request deadline is answered 408 and closed */
START_TEST(
    test_common_http__a_request_not_complete_within_the_request_deadline_is_answered_408_and_closed)
{
    rb_http_config cfg = rb_http_config_default();
    const char header[] = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    server s;
    char out[1024] = "";
    size_t used = 0;
    int64_t start, closed_after = -1;
    int fd;

    cfg.request_timeout_ms = 600;
    server_start_cfg(&s, cfg);
    start = rbt_ms();
    fd = hold_from(&s, 1);
    /* One byte every 50 ms: an idle timeout would never fire; the deadline must. */
    for (size_t i = 0; rbt_ms() - start < 3000; i = (i + 1) % (sizeof header - 1)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            ssize_t r = recv(fd, out + used, sizeof out - 1 - used, 0);
            if (r <= 0) {
                closed_after = rbt_ms() - start;
                break;
            }
            used += (size_t)r;
            out[used] = '\0';
            continue;
        }
        if (send(fd, header + i, 1, MSG_NOSIGNAL) < 0) {
            closed_after = rbt_ms() - start;
            break;
        }
    }
    close(fd);
    ck_assert_msg(closed_after >= 500 && closed_after <= 2000, "closed after %lld ms",
                  (long long)closed_after);
    ck_assert_msg(strncmp(out, "HTTP/1.1 408", 12) == 0, "got: %.200s", out);
    ck_assert_ptr_nonnull(strstr(out, "\"REQUEST_TIMEOUT\""));
    rb_http_server_stop(s.srv);
}
END_TEST

typedef struct tick_count {
    int events;
} tick_count;

static int count_tick(void *user, const char *event, const char *data, size_t len)
{
    (void)event, (void)len;
    if (strstr(data, "tick"))
        ((tick_count *)user)->events++;
    return 0;
}

/* Scenario: A stream that lasts longer than the request deadline is not cut */
START_TEST(test_common_http__a_stream_that_lasts_longer_than_the_request_deadline_is_not_cut)
{
    rb_http_config cfg = rb_http_config_default();
    rb_sse_opts o = rb_sse_opts_default();
    rb_sse_result res;
    tick_count tc = {0};
    server s;
    char url[128], err[256];

    cfg.request_timeout_ms = 600;
    server_start_cfg(&s, cfg);
    snprintf(url, sizeof url, "%s/v1/ticks", s.base);
    o.idle_timeout_ms = 5000;
    o.deadline_ms = 10000;
    rb_sse_result_init(&res);
    ck_assert_int_eq(rb_client_sse("GET", url, NULL, &o, count_tick, &tc, &res, err, sizeof err),
                     RB_OK);
    ck_assert_int_eq(tc.events, 5);
    rb_sse_result_release(&res);
    rb_http_server_stop(s.srv);
}
END_TEST

/* Scenario: A port left in TIME_WAIT by a stopped hive counts as free */
START_TEST(test_keeper_commands__a_port_left_in_time_wait_by_a_stopped_hive_counts_as_free)
{
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0), cfd, afd, port;
    char c;

    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    ck_assert(!kpr_port_free(port)); /* a listener: taken */
    cfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
    afd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(afd, 0);
    close(afd); /* the server closes first: its side of the connection enters TIME_WAIT */
    ck_assert_int_eq(recv(cfd, &c, 1, 0), 0);
    close(cfd);
    close(lfd);
    ck_assert_int_eq(rb_port_probe("127.0.0.1", port, 0), -1); /* what the old check saw */
    ck_assert(kpr_port_free(port));
}
END_TEST

/* Scenario: A route table answers a call made in-process without a socket */
START_TEST(test_common_http__a_route_table_answers_a_call_made_in_process_without_a_socket)
{
    const size_t n = sizeof routes / sizeof routes[0];
    rb_http_result r;
    int64_t deadline;

    ck_assert_int_eq(rb_http_call(routes, n, NULL, "POST", "/v1/echo", "{\"a\":1}", 7, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(r.streamed, 0);
    ck_assert_str_eq(r.content_type, "application/json");
    ck_assert_ptr_nonnull(r.body);
    ck_assert_msg(strstr(r.body, "\"a\": 1") || strstr(r.body, "\"a\":1"), "%s", r.body);
    free(r.body);
    ck_assert_int_eq(rb_http_call(routes, n, NULL, "POST", "/v1/echo", "{", 1, &r), 0);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "INVALID_JSON"));
    free(r.body);
    last_param[0] = '\0';
    ck_assert_int_eq(rb_http_call(routes, n, NULL, "GET", "/v1/jobs/j-42/stream", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(last_param, "j-42");
    free(r.body);
    ck_assert_int_eq(rb_http_call(routes, n, NULL, "GET", "/v1/nothing", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 404);
    ck_assert_int_eq(rb_http_call(routes, n, NULL, "DELETE", "/v1/echo", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 405);
    ck_assert_int_eq(rb_http_call(routes, n, NULL, "GET", "/v1/broken", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 500);

    /* The ticks producer holds a reference: its next push fails once the call closed the
     * channel, and it exits; the channel's last reference goes with it. */
    ck_assert_int_eq(rb_http_call(routes, n, NULL, "GET", "/v1/ticks", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(r.streamed, 1);
    ck_assert_ptr_null(r.body);
    deadline = rbt_ms() + 5000;
    while (atomic_load(&ticks_running) && rbt_ms() < deadline)
        rbt_poll_interval();
    ck_assert_msg(!atomic_load(&ticks_running), "the stream's producer did not stop");
    ck_assert_int_eq(atomic_load(&ticks_pushed), 0); /* its first push came after the close */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common_http");
    TCase *tc = rbt_tcase(s, "http", 20);
    tcase_add_test(tc, test_common_http__unknown_routes_get_404_in_the_error_envelope);
    tcase_add_test(tc, test_common_http__a_known_path_with_another_method_gets_405);
    tcase_add_test(tc, test_common_http__path_parameters_are_passed_to_the_handler);
    tcase_add_test(tc, test_common_http__a_body_over_the_limit_gets_413);
    tcase_add_test(tc, test_common_http__a_body_that_is_not_json_by_content_type_gets_415);
    tcase_add_test(tc, test_common_http__the_correlation_id_is_echoed_or_generated);
    tcase_add_test(tc, test_common_http__bearer_authentication_in_network_mode);
    tcase_add_test(tc, test_common_http__public_routes_need_no_token);
    tcase_add_test(tc, test_common_http__the_json_client_retries_a_refused_connection_with_backoff);
    tcase_add_test(
        tc,
        test_common_http__the_json_client_gives_up_on_a_slow_server_at_its_total_timeout_and_retries);
    tcase_add_test(tc, test_common_http_json_client_round_trip);
    tcase_add_test(tc, test_common_http__requests_with_ambiguous_framing_get_400);
    tcase_add_test(
        tc,
        test_common_http__connections_beyond_the_total_or_per_address_limit_are_refused_at_once);
    tcase_add_test(
        tc,
        test_common_http__a_request_not_complete_within_the_request_deadline_is_answered_408_and_closed);
    tcase_add_test(
        tc, test_common_http__a_stream_that_lasts_longer_than_the_request_deadline_is_not_cut);
    tcase_add_test(tc,
                   test_keeper_commands__a_port_left_in_time_wait_by_a_stopped_hive_counts_as_free);
    tcase_add_test(tc,
                   test_common_http__a_route_table_answers_a_call_made_in_process_without_a_socket);
    return rbt_run(s);
}
