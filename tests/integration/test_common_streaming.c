/*
 * Integration tests for spec/common_sse.feature: the SSE server and client in one process over
 * loopback. Arrival times are compared with push times to prove events are streamed as they
 * are produced, not buffered.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rb_client.h"
#include "rb_http.h"
#include "rb_test.h"
#include "rb_util.h"

#define NEVENTS 20

/* The test's server: one route whose handler hands out the current channel. */
typedef struct fixture {
    rb_http_server *srv;
    rb_chan *ch; /* the channel the next GET /stream is served from */
    char url[128];
    char base[96];
    atomic_int gone_seen; /* GET /wait saw its client hang up */
} fixture;

static void stream_handler(rb_http_req *req, rb_http_reply *rep, void *user)
{
    fixture *f = user;
    (void)req;
    rb_http_reply_sse(rep, f->ch);
}

/* The channel's bytes as the body, with a status and content type of the test's choosing. */
static void raw_handler(rb_http_req *req, rb_http_reply *rep, void *user)
{
    fixture *f = user;
    (void)req;
    rb_http_reply_stream(rep, 201, "text/x-test; charset=utf-8", f->ch);
}

/* Holds the request until its client hangs up (at most 5 s), as a handler that waits for a
 * worker does. */
static void wait_handler(rb_http_req *req, rb_http_reply *rep, void *user)
{
    fixture *f = user;
    int64_t end = rbt_ms() + 5000;
    while (!rb_http_req_client_gone(req) && rbt_ms() < end)
        rbt_poll_interval();
    atomic_store(&f->gone_seen, rb_http_req_client_gone(req));
    rb_http_reply_text(rep, 200, "text/plain", "late");
}

static const rb_http_route routes[] = {
    {"GET", "/stream", stream_handler, 0},
    {"GET", "/raw", raw_handler, 0},
    {"GET", "/wait", wait_handler, 0},
};

static void fixture_start(fixture *f, int keepalive_ms)
{
    rb_http_config cfg = rb_http_config_default();
    char err[256];
    memset(f, 0, sizeof(*f));
    f->ch = rb_chan_new(64);
    cfg.routes = routes;
    cfg.nroutes = RB_ARRAY_LEN(routes);
    cfg.user = f;
    if (keepalive_ms)
        cfg.sse_keepalive_ms = keepalive_ms;
    ck_assert_int_eq(rb_http_server_start(&cfg, &f->srv, err, sizeof err), RB_OK);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/stream", rb_http_server_port(f->srv));
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", rb_http_server_port(f->srv));
}

static void fixture_stop(fixture *f)
{
    rb_http_server_stop(f->srv);
    rb_chan_unref(f->ch);
}

/* Sleeps until an absolute monotonic time: the producer's pacing, the subject of the test. */
static void pace_until(int64_t when_ms)
{
    struct timespec ts = {when_ms / 1000, (when_ms % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
}

typedef struct producer {
    rb_chan *ch;
    int64_t pushed_ms[NEVENTS];
    int interval_ms;
    int n;
    int start_delay_ms;
    int send_done;
    int pushes_after_close; /* successful pushes once the client was gone */
    volatile int client_gone;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    int64_t t0 = rbt_ms() + p->start_delay_ms;
    for (int i = 0; i < p->n; i++) {
        pace_until(t0 + (int64_t)i * p->interval_ms);
        char ev[64];
        snprintf(ev, sizeof ev, "{\"i\":%d}", i);
        p->pushed_ms[i] = rbt_ms();
        if (rb_chan_push(p->ch, ev, (size_t)-1, 1000) != RB_OK)
            return NULL;
    }
    if (p->send_done)
        rb_chan_push(p->ch, "[DONE]", (size_t)-1, 1000);
    rb_chan_finish(p->ch);
    return NULL;
}

typedef struct arrivals {
    int64_t at_ms[NEVENTS];
    int n;
    int stop_after;
    long comments_before_first;
    rb_sse_result *res;
} arrivals;

static int on_event(void *user, const char *event, const char *data, size_t len)
{
    arrivals *a = user;
    int i = -1;
    (void)event, (void)len;
    if (a->n == 0)
        a->comments_before_first = a->res->comments;
    if (sscanf(data, "{\"i\":%d}", &i) == 1 && i >= 0 && i < NEVENTS)
        a->at_ms[i] = rbt_ms();
    a->n++;
    return a->stop_after && a->n >= a->stop_after;
}

/* Scenario: Events arrive at the client as they are pushed */
START_TEST(test_common_sse__events_arrive_at_the_client_as_they_are_pushed)
{
    fixture f;
    producer p = {0};
    arrivals a = {0};
    rb_sse_result res;
    rb_sse_opts o = rb_sse_opts_default();
    pthread_t t;
    char err[256];
    int64_t worst = 0;

    fixture_start(&f, 0);
    p.ch = f.ch;
    p.n = NEVENTS;
    p.interval_ms = 50;
    p.start_delay_ms = 100; /* let the client connect first */
    p.send_done = 1;
    rb_sse_result_init(&res);
    a.res = &res;
    o.idle_timeout_ms = 5000;
    o.deadline_ms = 20000;
    pthread_create(&t, NULL, produce, &p);
    rb_err rc = rb_client_sse("GET", f.url, NULL, &o, on_event, &a, &res, err, sizeof err);
    pthread_join(t, NULL);
    ck_assert_msg(rc == RB_OK, "stream failed: %s", err);
    ck_assert_int_eq(a.n, NEVENTS);
    for (int i = 0; i < NEVENTS; i++) {
        int64_t lag = a.at_ms[i] - p.pushed_ms[i];
        if (lag > worst)
            worst = lag;
        ck_assert_msg(lag >= 0 && lag <= 20, "event %d arrived %lld ms after its push", i,
                      (long long)lag);
    }
    /* Arrivals are spread like the pushes: first to last spans ~19 intervals. */
    ck_assert_int_ge(a.at_ms[NEVENTS - 1] - a.at_ms[0], 19 * 50 - 20);
    printf("streaming: 20 events, worst push-to-arrival lag %lld ms, span %lld ms\n",
           (long long)worst, (long long)(a.at_ms[NEVENTS - 1] - a.at_ms[0]));
    rb_sse_result_release(&res);
    fixture_stop(&f);
}
END_TEST

/* Scenario: The producer learns of a client disconnect within one push */
START_TEST(test_common_sse__the_producer_learns_of_a_client_disconnect_within_one_push)
{
    fixture f;
    arrivals a = {0};
    rb_sse_result res;
    rb_sse_opts o = rb_sse_opts_default();
    char err[256];
    int ok_after = 0;
    rb_err rc;

    fixture_start(&f, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(rb_chan_pushf(f.ch, "{\"i\":%d}", i), RB_OK);
    rb_sse_result_init(&res);
    a.res = &res;
    a.stop_after = 3;
    o.idle_timeout_ms = 5000;
    rc = rb_client_sse("GET", f.url, NULL, &o, on_event, &a, &res, err, sizeof err);
    ck_assert_int_eq(rc, RB_ECANCELED); /* the reader stopped after 3 events and hung up */
    ck_assert_int_eq(a.n, 3);
    /* The client is gone. Push at the producer's own pace: at most one push may succeed. */
    int64_t end = rbt_ms() + 5000;
    for (;;) {
        rc = rb_chan_pushf(f.ch, "{\"i\":%d}", 3 + ok_after);
        if (rc != RB_OK)
            break;
        ok_after++;
        ck_assert_msg(rbt_ms() < end, "producer never learned of the disconnect");
        pace_until(rbt_ms() + 20);
    }
    ck_assert_int_eq(rc, RB_ECLOSED);
    ck_assert_int_le(ok_after, 1);
    /* The server forgets the stream. */
    end = rbt_ms() + 5000;
    while (rb_http_server_active_streams(f.srv) > 0 && rbt_ms() < end)
        rbt_poll_interval();
    ck_assert_int_eq(rb_http_server_active_streams(f.srv), 0);
    rb_sse_result_release(&res);
    fixture_stop(&f);
}
END_TEST

/* Scenario: A silent server trips the client's idle timeout */
START_TEST(test_common_sse__a_silent_server_trips_the_client_s_idle_timeout)
{
    fixture f;
    arrivals a = {0};
    rb_sse_result res;
    rb_sse_opts o = rb_sse_opts_default();
    char err[256];
    int64_t t0;
    rb_err rc;

    fixture_start(&f, 0);
    rb_sse_result_init(&res);
    a.res = &res;
    o.idle_timeout_ms = 300;
    t0 = rbt_ms();
    rc = rb_client_sse("GET", f.url, NULL, &o, on_event, &a, &res, err, sizeof err);
    ck_assert_int_eq(rc, RB_ETIMEDOUT);
    ck_assert_int_lt(rbt_ms() - t0, 1000);
    ck_assert_int_ge(rbt_ms() - t0, 290);
    ck_assert_ptr_nonnull(strstr(err, "idle timeout"));
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_ge(res.headers_ms, 0); /* headers came at once, before any event */
    ck_assert_int_lt(res.headers_ms, 100);
    rb_sse_result_release(&res);
    fixture_stop(&f);
}
END_TEST

/* Scenario: A stream that never ends stops at the client's deadline */
START_TEST(test_common_sse__a_stream_that_never_ends_stops_at_the_client_s_deadline)
{
    fixture f;
    arrivals a = {0};
    producer p = {0};
    pthread_t th;
    rb_sse_result res;
    rb_sse_opts o = rb_sse_opts_default();
    char err[256];
    int64_t t0, took;
    rb_err rc;

    fixture_start(&f, 0);
    rb_sse_result_init(&res);
    a.res = &res;
    p.ch = f.ch;
    p.n = NEVENTS;
    p.interval_ms = 100;
    ck_assert_int_eq(pthread_create(&th, NULL, produce, &p), 0);
    o.idle_timeout_ms = 5000;
    o.deadline_ms = 500;
    t0 = rbt_ms();
    rc = rb_client_sse("GET", f.url, NULL, &o, on_event, &a, &res, err, sizeof err);
    took = rbt_ms() - t0;
    printf("deadline: %lld ms, %d events\n", (long long)took, a.n);
    ck_assert_int_eq(rc, RB_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(err, "deadline"));
    ck_assert_int_ge(took, 490);
    ck_assert_int_lt(took, 1000);
    ck_assert_int_ge(a.n, 3); /* events kept arriving until the deadline */
    ck_assert_int_lt(a.n, NEVENTS);
    rb_http_server_stop(f.srv); /* ends the stream: the producer's next push fails */
    pthread_join(th, NULL);
    rb_chan_unref(f.ch);
    rb_sse_result_release(&res);
}
END_TEST

/* Scenario: A stream closed without [DONE] is a protocol error, not a timeout */
START_TEST(test_common_sse__a_stream_closed_without_done_is_a_protocol_error_not_a_timeout)
{
    fixture f;
    arrivals a = {0};
    rb_sse_result res;
    rb_sse_opts o = rb_sse_opts_default();
    char err[256];
    rb_err rc;

    fixture_start(&f, 0);
    rb_chan_pushf(f.ch, "{\"i\":0}");
    rb_chan_finish(f.ch);
    rb_sse_result_init(&res);
    a.res = &res;
    o.idle_timeout_ms = 5000;
    rc = rb_client_sse("GET", f.url, NULL, &o, on_event, &a, &res, err, sizeof err);
    ck_assert_int_eq(rc, RB_EPROTO);
    ck_assert_int_eq(a.n, 1);
    ck_assert_msg(strstr(err, "closed without [DONE]"), "message: %s", err);
    rb_sse_result_release(&res);
    fixture_stop(&f);
}
END_TEST

/* Scenario: A silent stream gets keep-alive comments */
START_TEST(test_common_sse__a_silent_stream_gets_keep_alive_comments)
{
    fixture f;
    producer p = {0};
    arrivals a = {0};
    rb_sse_result res;
    rb_sse_opts o = rb_sse_opts_default();
    pthread_t t;
    char err[256];

    fixture_start(&f, 200);
    p.ch = f.ch;
    p.n = 1;
    p.start_delay_ms = 700;
    p.send_done = 1;
    rb_sse_result_init(&res);
    a.res = &res;
    o.idle_timeout_ms = 500; /* longer than the keep-alive: keep-alives must reset it */
    pthread_create(&t, NULL, produce, &p);
    rb_err rc = rb_client_sse("GET", f.url, NULL, &o, on_event, &a, &res, err, sizeof err);
    pthread_join(t, NULL);
    ck_assert_msg(rc == RB_OK, "stream failed: %s", err);
    ck_assert_int_eq(a.n, 1);
    ck_assert_int_ge(a.comments_before_first, 2);
    rb_sse_result_release(&res);
    fixture_stop(&f);
}
END_TEST

/* Server stop ends open streams instead of waiting for them. */
static void *stop_when_streaming(void *arg)
{
    fixture *f = arg;
    int64_t end = rbt_ms() + 5000;
    while (rb_http_server_active_streams(f->srv) == 0 && rbt_ms() < end)
        rbt_poll_interval();
    rb_http_server_stop(f->srv);
    f->srv = NULL;
    return NULL;
}

START_TEST(test_common_streaming_stop_ends_open_streams)
{
    fixture f;
    arrivals a = {0};
    rb_sse_result res;
    rb_sse_opts o = rb_sse_opts_default();
    char err[256];
    pthread_t t;
    int64_t t0 = rbt_ms();
    rb_err rc;

    fixture_start(&f, 0);
    rb_sse_result_init(&res);
    a.res = &res;
    o.idle_timeout_ms = 10000;
    pthread_create(&t, NULL, stop_when_streaming, &f);
    rc = rb_client_sse("GET", f.url, NULL, &o, on_event, &a, &res, err, sizeof err);
    pthread_join(t, NULL);
    ck_assert_int_eq(rc, RB_EPROTO);
    ck_assert_int_lt(rbt_ms() - t0, 5000);
    rb_sse_result_release(&res);
    rb_chan_unref(f.ch);
}
END_TEST

/* A raw body read with libcurl directly: every write callback's bytes and arrival time. */
typedef struct raw_read {
    char body[4096];
    size_t len;
    int64_t first_ms, last_ms;
    int chunks;
    size_t stop_after; /* > 0: hang up once this many bytes arrived */
} raw_read;

static size_t raw_write(char *p, size_t sz, size_t n, void *user)
{
    raw_read *r = user;
    size_t k = sz * n;
    if (r->len + k < sizeof r->body) {
        memcpy(r->body + r->len, p, k);
        r->len += k;
        r->body[r->len] = '\0';
    }
    r->last_ms = rbt_ms();
    if (r->chunks++ == 0)
        r->first_ms = r->last_ms;
    return r->stop_after && r->len >= r->stop_after ? 0 : k;
}

/* GET url into r; returns the status (0 when none); ct gets the content type. */
static long raw_get(const char *url, raw_read *r, char *ct, size_t ctlen, long timeout_ms)
{
    CURL *c = curl_easy_init();
    long status = 0;
    char *type = NULL;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, raw_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
    snprintf(ct, ctlen, "%s", type ? type : "");
    curl_easy_cleanup(c);
    return status;
}

/* Scenario: A raw stream relays bytes as they are pushed */
START_TEST(test_common_sse__a_raw_stream_relays_bytes_as_they_are_pushed)
{
    fixture f;
    producer p = {0};
    raw_read r = {0};
    char url[160], ct[128], want[1024] = "";
    pthread_t t;
    long status;

    fixture_start(&f, 0);
    p.ch = f.ch;
    p.n = 10;
    p.interval_ms = 50;
    p.start_delay_ms = 100;
    pthread_create(&t, NULL, produce, &p);
    snprintf(url, sizeof url, "%s/raw", f.base);
    status = raw_get(url, &r, ct, sizeof ct, 10000);
    pthread_join(t, NULL);
    ck_assert_int_eq(status, 201);
    ck_assert_str_eq(ct, "text/x-test; charset=utf-8");
    for (int i = 0; i < 10; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "{\"i\":%d}", i);
    ck_assert_str_eq(r.body, want); /* no framing, no keep-alive, nothing lost */
    ck_assert_int_ge(r.chunks, 5);  /* arrived in pieces ... */
    ck_assert_int_ge(r.last_ms - r.first_ms, 9 * 50 - 60); /* ... spread as they were pushed */
    fixture_stop(&f);
}
END_TEST

/* Scenario: A raw stream's producer learns of a client disconnect */
START_TEST(test_common_sse__a_raw_stream_s_producer_learns_of_a_client_disconnect)
{
    fixture f;
    raw_read r = {0};
    char url[160], ct[128];
    rb_err rc = RB_OK;

    fixture_start(&f, 0);
    ck_assert_int_eq(rb_chan_push(f.ch, "abc", 3, 1000), RB_OK);
    r.stop_after = 3;
    snprintf(url, sizeof url, "%s/raw", f.base);
    raw_get(url, &r, ct, sizeof ct, 10000);
    ck_assert_str_eq(r.body, "abc");
    int64_t end = rbt_ms() + 5000;
    while ((rc = rb_chan_push(f.ch, "x", 1, 1000)) == RB_OK && rbt_ms() < end)
        pace_until(rbt_ms() + 20);
    ck_assert_int_eq(rc, RB_ECLOSED);
    fixture_stop(&f);
}
END_TEST

/* Scenario: A waiting handler learns that its client hung up */
START_TEST(test_common_sse__a_waiting_handler_learns_that_its_client_hung_up)
{
    fixture f;
    raw_read r = {0};
    char url[160], ct[128];
    int64_t t0;

    fixture_start(&f, 0);
    snprintf(url, sizeof url, "%s/wait", f.base);
    t0 = rbt_ms();
    ck_assert_int_eq(raw_get(url, &r, ct, sizeof ct, 300), 0); /* the client gives up */
    int64_t end = rbt_ms() + 3000;
    while (!atomic_load(&f.gone_seen) && rbt_ms() < end)
        rbt_poll_interval();
    ck_assert_msg(atomic_load(&f.gone_seen), "the handler never saw the hang-up");
    ck_assert_int_lt(rbt_ms() - t0, 3000);
    fixture_stop(&f);
}
END_TEST

/* A raw loopback connection that has sent GET /stream; -1 on failure. */
static int sock_get(const fixture *f)
{
    struct sockaddr_in sa = {0};
    const char req[] = "GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_family = AF_INET;
    sa.sin_port = htons(rb_http_server_port(f->srv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, sizeof req - 1, 0) != (ssize_t)(sizeof req - 1)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Reads from fd into out (NUL-terminated) until the peer closes, until needle is seen (when
 * not NULL), or until deadline_ms passes. Returns the bytes read; every read has a timeout. */
static size_t sock_read(int fd, char *out, size_t cap, const char *needle, int64_t deadline_ms)
{
    size_t n = 0;
    out[0] = '\0';
    while (n + 1 < cap && rbt_ms() < deadline_ms && !(needle && strstr(out, needle))) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline_ms - rbt_ms())) <= 0)
            break;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
    }
    return n;
}

/* Scenario: A client that half-closes its side still gets the whole stream */
START_TEST(test_common_sse__a_client_that_half_closes_its_side_still_gets_the_whole_stream)
{
    fixture f;
    producer p = {0};
    pthread_t t;
    static char buf[64 * 1024];
    int fd;

    fixture_start(&f, 0);
    p.ch = f.ch;
    p.n = NEVENTS;
    p.interval_ms = 10;
    p.start_delay_ms = 100;
    p.send_done = 1;
    fd = sock_get(&f);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    pthread_create(&t, NULL, produce, &p);
    sock_read(fd, buf, sizeof buf, NULL, rbt_ms() + 10000);
    pthread_join(t, NULL);
    close(fd);
    ck_assert_msg(strstr(buf, "HTTP/1.1 200"), "no response: %.200s", buf);
    ck_assert_msg(strstr(buf, "data: {\"i\":0}"), "first event missing: %.300s", buf);
    ck_assert_msg(strstr(buf, "data: {\"i\":19}"), "stream cut short: %.600s", buf);
    ck_assert_msg(strstr(buf, "data: [DONE]"), "no [DONE]");
    fixture_stop(&f);
}
END_TEST

/* Scenario: A client that closes while the stream is silent is noticed before the next event */
START_TEST(
    test_common_sse__a_client_that_closes_while_the_stream_is_silent_is_noticed_before_the_next_event)
{
    fixture f;
    static char buf[4096];
    int64_t closed_at, end;
    int fd;

    fixture_start(&f, 0);
    fd = sock_get(&f);
    ck_assert_int_ge(fd, 0);
    sock_read(fd, buf, sizeof buf, "\r\n\r\n", rbt_ms() + 5000);
    ck_assert_msg(strstr(buf, "HTTP/1.1 200"), "no headers: %.200s", buf);
    ck_assert_int_eq(rb_http_server_active_streams(f.srv), 1);
    close(fd);
    closed_at = rbt_ms();
    end = closed_at + 3000; /* the producer's silence */
    while (rb_http_server_active_streams(f.srv) > 0 && rbt_ms() < end)
        rbt_poll_interval();
    ck_assert_int_eq(rb_http_server_active_streams(f.srv), 0);
    ck_assert_int_lt(rbt_ms() - closed_at, 1000);
    ck_assert_int_eq(rb_chan_pushf(f.ch, "{\"i\":0}"), RB_ECLOSED);
    fixture_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common_streaming");
    TCase *tc = rbt_tcase(s, "streaming", 30);
    tcase_add_test(tc, test_common_sse__events_arrive_at_the_client_as_they_are_pushed);
    tcase_add_test(tc, test_common_sse__the_producer_learns_of_a_client_disconnect_within_one_push);
    tcase_add_test(tc, test_common_sse__a_silent_server_trips_the_client_s_idle_timeout);
    tcase_add_test(tc, test_common_sse__a_stream_that_never_ends_stops_at_the_client_s_deadline);
    tcase_add_test(tc,
                   test_common_sse__a_stream_closed_without_done_is_a_protocol_error_not_a_timeout);
    tcase_add_test(tc, test_common_sse__a_silent_stream_gets_keep_alive_comments);
    tcase_add_test(tc, test_common_streaming_stop_ends_open_streams);
    tcase_add_test(tc, test_common_sse__a_raw_stream_relays_bytes_as_they_are_pushed);
    tcase_add_test(tc, test_common_sse__a_raw_stream_s_producer_learns_of_a_client_disconnect);
    tcase_add_test(tc, test_common_sse__a_waiting_handler_learns_that_its_client_hung_up);
    tcase_add_test(tc,
                   test_common_sse__a_client_that_half_closes_its_side_still_gets_the_whole_stream);
    tcase_add_test(
        tc,
        test_common_sse__a_client_that_closes_while_the_stream_is_silent_is_noticed_before_the_next_event);
    return rbt_run(s);
}
