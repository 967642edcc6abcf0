/*
 * Load and fault suites against the real llm-worker-rbee on the bundled model (spec/load.feature,
 * docs/reliability.md): concurrent streams against a small queue, requests in waves with the
 * worker's descriptors and memory watched, a stalled reader, a half-closed request, SIGKILL
 * mid-stream, and held slow connections. Loopback only, bounded in count and time.
 *
 * The clients are raw sockets polled from the test's one thread, so every outcome is seen as it
 * is: a complete stream, a 503 envelope, a reset, an empty reply or nothing before the deadline.
 * RB_LOAD_LONG=1 runs the long versions; RB_LOAD_STREAMS, RB_LOAD_WAVES, RB_LOAD_SLOW override
 * the counts.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rb_json.h"
#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"
#include "rbt_hive.h"

#define PER_ADDRESS 200 /* connections per source address: under the worker's 256 per-IP limit */
#define MAX_CONNS 6000

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static int is_long(void)
{
    return env_int("RB_LOAD_LONG", 0);
}

/* ---- the worker ---- */

static char dir[4096];
static rbt_proc worker;

/* llm-worker-rbee on the bundled Q8_0 model with --slots 2 --queue 16, ready to serve. With
 * soft_nofile > 0 it runs under that soft open-file limit (its hard limit stays the test's). */
static void worker_up(int soft_nofile)
{
    char bin[4096], lim[64], log[4200];
    char *argv[] = {"/bin/sh",
                    "-c",
                    lim,
                    bin,
                    "--worker-id",
                    "worker-load",
                    "--model",
                    (char *)rbt_model_q8(),
                    "--port",
                    "0",
                    "--local-mode",
                    "--slots",
                    "2",
                    "--queue",
                    "16",
                    NULL};

    rbt_tmpdir(dir);
    memset(&worker, 0, sizeof worker);
    snprintf(bin, sizeof bin, "%s", rbt_bin("llm-worker-rbee"));
    snprintf(log, sizeof log, "%s/worker.log", dir);
    if (soft_nofile > 0)
        snprintf(lim, sizeof lim, "ulimit -Sn %d && exec \"$0\" \"$@\"", soft_nofile);
    else
        snprintf(lim, sizeof lim, "exec \"$0\" \"$@\"");
    snprintf(worker.log, sizeof worker.log, "%s", log);
    worker.pid = rbt_spawn(argv, NULL, worker.log);
    worker.port = rbt_wait_listening(worker.log, rbt_scaled(10000));
    ck_assert_msg(worker.port > 0, "worker did not start (log %s)", worker.log);
    snprintf(worker.base, sizeof worker.base, "http://127.0.0.1:%d", worker.port);
    ck_assert_msg(rbt_wait_ready(&worker, rbt_scaled(15000)), "worker not ready");
}

static void worker_down(void)
{
    if (worker.pid > 0)
        ck_assert_int_eq(rbt_stop(&worker, rbt_scaled(10000)), 0);
    rbt_rmtree(dir);
}

/* ---- raw clients ---- */

typedef struct rconn {
    int fd;
    char *buf;
    size_t len, cap;
    int done;         /* the server closed (or the read failed) */
    int err;          /* errno of the failed read; 0 on a clean end of stream */
    int hangup_after; /* > 0: the client closes after this many bytes (an abandoned stream) */
    int64_t sent_us;  /* when the request was sent */
    int64_t first_us; /* when its first byte of answer came; -1 before */
} rconn;

static char *http_request(const char *method, const char *path, const char *body)
{
    char *r = NULL;
    int n;
    if (body)
        n = asprintf(&r,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, strlen(body), body);
    else
        n = asprintf(&r, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", method,
                     path);
    ck_assert_int_gt(n, 0);
    return r;
}

/* A non-blocking connection from 127.0.0.<src> (0: the default address) to the worker, with
 * the receive buffer set to rcvbuf bytes when > 0; -1 when it could not connect in 5 s. */
static int dial(int src, int rcvbuf)
{
    struct sockaddr_in sa = {0}, me = {0};
    struct pollfd p;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), soerr = 0;
    socklen_t sl = sizeof soerr;

    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (src > 0) {
        me.sin_family = AF_INET;
        me.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)src);
        if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) {
            close(fd);
            return -1;
        }
    }
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)worker.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    p.fd = fd;
    p.events = POLLOUT;
    if (poll(&p, 1, rbt_scaled(5000)) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends all of data within 5 s; 0 on success. */
static int send_all(int fd, const char *data, size_t len)
{
    int64_t end = rbt_ms() + rbt_scaled(5000);
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (rbt_ms() > end)
                return -1;
            poll(&p, 1, 50);
        } else {
            return -1;
        }
    }
    return 0;
}

/* Opens a connection and sends the request; c->done is set at once when that failed. */
static void rc_open(rconn *c, int src, int rcvbuf, const char *req)
{
    memset(c, 0, sizeof(*c));
    c->first_us = -1;
    c->fd = dial(src, rcvbuf);
    if (c->fd < 0 || send_all(c->fd, req, strlen(req)) != 0) {
        c->done = 1;
        c->err = errno ? errno : ECONNREFUSED;
    }
    c->sent_us = rbt_us();
}

static void rc_close(rconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

/* Reads what is there on c; 1 when it reached its end. */
static int rc_read(rconn *c)
{
    for (;;) {
        ssize_t n;
        if (c->cap - c->len < 4096) {
            c->cap = c->cap ? c->cap * 2 : 16384;
            c->buf = realloc(c->buf, c->cap + 1);
            ck_assert_ptr_nonnull(c->buf);
        }
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            if (c->first_us < 0)
                c->first_us = rbt_us();
            c->len += (size_t)n;
            c->buf[c->len] = 0;
            if (c->hangup_after > 0 && c->len >= (size_t)c->hangup_after) {
                c->done = 1;
                return 1;
            }
            continue;
        }
        if (n == 0) {
            c->done = 1;
            return 1;
        }
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        c->done = 1;
        c->err = errno;
        return 1;
    }
}

/* Reads every unfinished connection until all have ended or deadline_ms passes; returns how
 * many are still open. */
static int pump(rconn *cs, int n, int64_t deadline_ms)
{
    struct pollfd *ps = calloc((size_t)n, sizeof(*ps));
    int *idx = calloc((size_t)n, sizeof(*idx));
    int open = 0;

    ck_assert(ps && idx);
    for (;;) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (!cs[i].done) {
                ps[m].fd = cs[i].fd;
                ps[m].events = POLLIN;
                idx[m++] = i;
            }
        }
        open = m;
        if (m == 0 || rbt_ms() >= deadline_ms)
            break;
        if (poll(ps, (nfds_t)m, 100) < 0 && errno != EINTR)
            break;
        for (int k = 0; k < m; k++)
            if (ps[k].revents)
                rc_read(&cs[idx[k]]);
    }
    free(ps);
    free(idx);
    return open;
}

typedef enum outcome {
    OUT_STREAM = 0, /* 200, an end event, then [DONE], then a clean close */
    OUT_BUSY,       /* 503 with the ALL_SLOTS_BUSY envelope */
    OUT_OK,         /* another expected answer (see classify's want) */
    OUT_RESET,      /* the connection failed or was reset */
    OUT_EMPTY,      /* closed without a byte */
    OUT_HANG,       /* still open at the deadline */
    OUT_OTHER,      /* anything else: a truncated stream, another status */
    OUT_N
} outcome;

static const char *const outcome_name[OUT_N] = {"stream", "busy", "ok",   "reset",
                                                "empty",  "hang", "other"};

/* The body of the response in c (de-chunked when chunked) into a new string; *status gets the
 * status (0 when there is no status line). */
static char *response_body(const rconn *c, int *status)
{
    const char *hdr_end, *p;
    char *out;
    size_t olen = 0;
    int chunked = 0;

    *status = 0;
    if (!c->buf || sscanf(c->buf, "HTTP/1.%*c %d", status) != 1)
        return NULL;
    hdr_end = strstr(c->buf, "\r\n\r\n");
    if (!hdr_end)
        return NULL;
    for (p = c->buf; p < hdr_end; p = strstr(p, "\r\n") + 2)
        if (strncasecmp(p, "Transfer-Encoding:", 18) == 0 && strstr(p, "chunked") &&
            strstr(p, "chunked") < hdr_end)
            chunked = 1;
    p = hdr_end + 4;
    out = malloc(c->len + 1);
    ck_assert_ptr_nonnull(out);
    if (!chunked) {
        olen = c->len - (size_t)(p - c->buf);
        memcpy(out, p, olen);
    } else {
        const char *end = c->buf + c->len;
        while (p < end) {
            char *q;
            unsigned long sz = strtoul(p, &q, 16);
            const char *data = strstr(q, "\r\n");
            if (!data || q == p)
                break;
            data += 2;
            if (sz == 0 || data + sz > end) {
                if (data + sz > end) { /* a truncated chunk: keep what came */
                    memcpy(out + olen, data, (size_t)(end - data));
                    olen += (size_t)(end - data);
                }
                break;
            }
            memcpy(out + olen, data, sz);
            olen += sz;
            p = data + sz + 2;
        }
    }
    out[olen] = 0;
    return out;
}

/* What c's exchange came to. want_status > 0: that status is OUT_OK. */
static outcome classify(const rconn *c, int want_status)
{
    int status;
    char *body;
    outcome o = OUT_OTHER;

    if (!c->done)
        return OUT_HANG;
    if (c->err)
        return OUT_RESET;
    if (c->len == 0)
        return OUT_EMPTY;
    body = response_body(c, &status);
    if (!body)
        return OUT_OTHER;
    if (want_status > 0 && status == want_status) {
        o = OUT_OK;
    } else if (status == 200) {
        size_t bl = strlen(body);
        static const char done[] = "data: [DONE]\n\n";
        if (strstr(body, "\"type\":\"end\"") && bl >= sizeof done - 1 &&
            strcmp(body + bl - (sizeof done - 1), done) == 0)
            o = OUT_STREAM;
    } else if (status == 503) {
        char code[64], msg[256];
        if (rb_error_envelope_parse(body, code, sizeof code, msg, sizeof msg) &&
            strcmp(code, "ALL_SLOTS_BUSY") == 0)
            o = OUT_BUSY;
    }
    free(body);
    return o;
}

static const char stream_body[] = "{\"prompt\":\"In the beginning\",\"max_tokens\":4}";

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- /proc figures ---- */

static long proc_rss_kib(pid_t pid)
{
    char path[64];
    long size = 0, rss = 0;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &rss), 2);
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Waits until the worker says it is idle (no job queued or running). */
static int wait_idle(int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    do {
        char *h = rbt_get(worker.base, "/v1/health");
        int idle = h && strstr(h, "\"state\":\"idle\"");
        free(h);
        if (idle)
            return 1;
        rbt_poll_interval();
    } while (rbt_ms() < end);
    return 0;
}

/* ---- scenarios ---- */

/* Scenario: Concurrent streams against a small queue complete or get 503 */
START_TEST(test_load__concurrent_streams_against_a_small_queue_complete_or_get_503)
{
    int n = env_int("RB_LOAD_STREAMS", is_long() ? 1000 : 200);
    int count[OUT_N] = {0};
    char *req = http_request("POST", "/v1/inference", stream_body);
    rconn *cs;
    int64_t t0;

    if (n > MAX_CONNS)
        n = MAX_CONNS;
    worker_up(0);
    cs = calloc((size_t)n, sizeof(*cs));
    ck_assert_ptr_nonnull(cs);
    t0 = rbt_ms();
    for (int i = 0; i < n; i++)
        rc_open(&cs[i], n > PER_ADDRESS ? 1 + i / PER_ADDRESS : 0, 0, req);
    pump(cs, n, t0 + rbt_scaled(45000));
    for (int i = 0; i < n; i++) {
        count[classify(&cs[i], 0)]++;
        rc_close(&cs[i]);
    }
    printf("load: %d concurrent streams against --slots 2 --queue 16 in %lld ms:", n,
           (long long)(rbt_ms() - t0));
    for (int k = 0; k < OUT_N; k++)
        printf(" %s %d", outcome_name[k], count[k]);
    printf("\n");
    fflush(stdout);
    ck_assert_msg(rbt_alive(worker.pid), "the worker died");
    ck_assert_int_eq(count[OUT_STREAM] + count[OUT_BUSY], n);
    ck_assert_int_ge(count[OUT_STREAM], 2);
    free(cs);
    free(req);
    worker_down();
}
END_TEST

/* One wave: 4 streams, 2 streams abandoned after their first bytes, 10 health checks and 4 bad
 * requests. Adds the outcomes to count; returns the requests sent. */
#define WAVE 20
static int wave(int count[OUT_N], int *bad)
{
    static char *stream_req, *health_req, *bad_req;
    rconn cs[WAVE];
    int want[WAVE];

    if (!stream_req) {
        stream_req = http_request("POST", "/v1/inference",
                                  "{\"prompt\":\"In the beginning\",\"max_tokens\":1}");
        health_req = http_request("GET", "/v1/health", NULL);
        bad_req = http_request("POST", "/v1/inference", "{\"prompt\":");
    }
    for (int i = 0; i < WAVE; i++) {
        if (i < 6) {
            rc_open(&cs[i], 0, 0, stream_req);
            cs[i].hangup_after = i >= 4 ? 1 : 0;
            want[i] = i >= 4 ? -1 : 0;
        } else if (i < 16) {
            rc_open(&cs[i], 0, 0, health_req);
            want[i] = 200;
        } else {
            rc_open(&cs[i], 0, 0, bad_req);
            want[i] = 400;
        }
    }
    pump(cs, WAVE, rbt_ms() + rbt_scaled(20000));
    for (int i = 0; i < WAVE; i++) {
        outcome o;
        if (want[i] < 0) /* abandoned: any first byte will do */
            o = cs[i].done && !cs[i].err && cs[i].len > 0 ? OUT_OK : classify(&cs[i], 0);
        else
            o = classify(&cs[i], want[i]);
        count[o]++;
        if (o != OUT_OK && o != OUT_STREAM && o != OUT_BUSY)
            (*bad)++;
        rc_close(&cs[i]);
    }
    return WAVE;
}

/* Scenario: Requests in waves leave descriptors and memory flat */
START_TEST(test_load__requests_in_waves_leave_descriptors_and_memory_flat)
{
    int nwaves = env_int("RB_LOAD_WAVES", is_long() ? 500 : 100);
    long rss_bound_kib = 8 * 1024; /* growth allowed from the first wave to the last */
    int fd_slack = 2;
    int count[OUT_N] = {0}, bad = 0, sent = 0, fds1, fds2;
    long rss1, rss2;
    int64_t t0;

    worker_up(0);
    t0 = rbt_ms();
    sent += wave(count, &bad);
    ck_assert_msg(wait_idle(rbt_scaled(10000)), "the worker did not become idle");
    fds1 = rbt_count_fds(worker.pid);
    rss1 = proc_rss_kib(worker.pid);
    for (int w = 1; w < nwaves; w++)
        sent += wave(count, &bad);
    ck_assert_msg(wait_idle(rbt_scaled(10000)), "the worker did not become idle");
    fds2 = rbt_count_fds(worker.pid);
    rss2 = proc_rss_kib(worker.pid);
    printf("load: %d requests in %d waves of %d in %lld ms:", sent, nwaves, WAVE,
           (long long)(rbt_ms() - t0));
    for (int k = 0; k < OUT_N; k++)
        printf(" %s %d", outcome_name[k], count[k]);
    printf("; fds %d -> %d; RSS %ld -> %ld KiB (%+ld KiB, bound %ld)\n", fds1, fds2, rss1, rss2,
           rss2 - rss1, rss_bound_kib);
    fflush(stdout);
    ck_assert_int_eq(bad, 0);
    ck_assert_msg(fds2 <= fds1 + fd_slack, "descriptors grew: %d -> %d", fds1, fds2);
    ck_assert_msg(rss2 - rss1 < rss_bound_kib, "RSS grew by %ld KiB", rss2 - rss1);
    worker_down();
}
END_TEST

/* Scenario: A stalled reader does not stop another client's stream */
START_TEST(test_load__a_stalled_reader_does_not_stop_another_client_s_stream)
{
    /* The stalled stream produces far more than its own receive buffer holds: every token
     * event carries 20 alternatives (about 770 bytes a token). */
    char *stall_req = http_request(
        "POST", "/v1/completions",
        "{\"prompt\":\"In the beginning\",\"max_tokens\":300,\"stream\":true,\"logprobs\":20,"
        "\"temperature\":0}");
    char *req =
        http_request("POST", "/v1/inference", "{\"prompt\":\"And God said\",\"max_tokens\":32}");
    rconn stalled, other;
    int64_t t0, t_other;
    size_t total;
    int status;
    char *body;

    worker_up(0);
    rc_open(&stalled, 0, 1024, stall_req);
    ck_assert_msg(!stalled.done, "could not open the stalled stream");
    /* Let the stalled stream fill what it can before the other one starts. */
    {
        int64_t end = rbt_ms() + rbt_scaled(10000);
        struct pollfd p = {.fd = stalled.fd, .events = POLLIN};
        while (rbt_ms() < end && poll(&p, 1, 100) == 0)
            ;
        ck_assert_msg(p.revents & POLLIN, "the stalled stream got no byte");
    }
    t0 = rbt_ms();
    rc_open(&other, 0, 0, req);
    pump(&other, 1, t0 + rbt_scaled(30000));
    t_other = rbt_ms() - t0;
    ck_assert_int_eq(classify(&other, 0), OUT_STREAM);
    /* The stalled reader now reads: it gets its whole stream too. */
    pump(&stalled, 1, rbt_ms() + rbt_scaled(60000));
    total = stalled.len;
    body = response_body(&stalled, &status);
    printf("load: with a reader stalled (SO_RCVBUF 1024), another stream of 32 tokens completed "
           "in %lld ms; the stalled one, read afterwards, got %zu bytes, status %d, %s\n",
           (long long)t_other, total, status,
           body && strstr(body, "data: [DONE]") ? "[DONE]" : "no [DONE]");
    fflush(stdout);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(body);
    ck_assert_ptr_nonnull(strstr(body, "data: [DONE]"));
    ck_assert_int_gt(total, 64 * 1024);
    free(body);
    rc_close(&stalled);
    rc_close(&other);
    free(stall_req);
    free(req);
    worker_down();
}
END_TEST

/* Scenario: A half-closed request still gets its whole stream */
START_TEST(test_load__a_half_closed_request_still_gets_its_whole_stream)
{
    int n = is_long() ? 100 : 20, ok = 0;
    char *req = http_request("POST", "/v1/inference", stream_body);
    worker_up(0);
    for (int i = 0; i < n; i++) {
        rconn c;
        rc_open(&c, 0, 0, req);
        ck_assert_int_eq(shutdown(c.fd, SHUT_WR), 0);
        pump(&c, 1, rbt_ms() + rbt_scaled(20000));
        ok += classify(&c, 0) == OUT_STREAM;
        rc_close(&c);
    }
    printf("load: %d/%d half-closed requests got their whole stream\n", ok, n);
    fflush(stdout);
    ck_assert_int_eq(ok, n);
    free(req);
    worker_down();
}
END_TEST

/* Scenario: A worker killed mid-stream ends the client's stream at once */
START_TEST(test_load__a_worker_killed_mid_stream_ends_the_client_s_stream_at_once)
{
    char *req = http_request("POST", "/v1/inference",
                             "{\"prompt\":\"In the beginning\",\"max_tokens\":400}");
    rconn c;
    int64_t end, t_kill, t_end;

    worker_up(0);
    rc_open(&c, 0, 0, req);
    end = rbt_ms() + rbt_scaled(20000);
    while (!c.done && rbt_ms() < end && !(c.buf && strstr(c.buf, "\"type\":\"token\""))) {
        struct pollfd p = {.fd = c.fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            rc_read(&c);
    }
    ck_assert_msg(c.buf && strstr(c.buf, "\"type\":\"token\""), "no token before the kill");
    ck_assert(!c.done);
    t_kill = rbt_ms();
    kill(worker.pid, SIGKILL);
    pump(&c, 1, t_kill + rbt_scaled(5000));
    t_end = rbt_ms() - t_kill;
    printf("load: SIGKILL mid-stream: the client's stream ended %lld ms later (%s), %s\n",
           (long long)t_end, c.done ? (c.err ? strerror(c.err) : "EOF") : "still open",
           strstr(c.buf, "[DONE]") ? "with [DONE]" : "without [DONE]");
    fflush(stdout);
    ck_assert_msg(c.done, "the stream did not end within 5 s of the kill");
    ck_assert_ptr_null(strstr(c.buf, "[DONE]"));
    rc_close(&c);
    rbt_kill(worker.pid);
    worker.pid = 0;
    free(req);
    worker_down();
}
END_TEST

/* Scenario: Held slow connections do not starve the real worker's clients */
START_TEST(test_load__held_slow_connections_do_not_starve_the_real_worker_s_clients)
{
    int nslow = env_int("RB_LOAD_SLOW", is_long() ? 3000 : 2000);
    int nclients = 10, rounds = is_long() ? 10 : 3; /* at most 100 streams in all */
    const char part[] = "POST /v1/inference HTTP/1.1\r\nHost: x\r\n";
    static int held[MAX_CONNS];
    char *req = http_request("POST", "/v1/inference", stream_body);
    int nheld = 0, refused = 0, count[OUT_N] = {0};
    int64_t t0, t_round_max = 0, first[100];
    int nfirst = 0;
    struct rlimit rl;
    double p99;

    if (nslow > MAX_CONNS)
        nslow = MAX_CONNS;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)nslow + 256)
        nslow = (int)rl.rlim_cur - 256;
    worker_up(1024);
    t0 = rbt_ms();
    for (int i = 0; i < nslow; i++) {
        int fd = dial(2 + i / PER_ADDRESS, 0);
        if (fd >= 0 && send_all(fd, part, sizeof part - 1) == 0) {
            held[nheld++] = fd;
        } else {
            refused++;
            if (fd >= 0)
                close(fd);
        }
    }
    printf("load: %d slow connections held on the real worker (%d failed) in %lld ms\n", nheld,
           refused, (long long)(rbt_ms() - t0));
    for (int r = 0; r < rounds; r++) {
        rconn cs[10];
        int64_t t = rbt_ms();
        for (int i = 0; i < nclients; i++)
            rc_open(&cs[i], 0, 0, req);
        pump(cs, nclients, t + rbt_scaled(30000));
        if (rbt_ms() - t > t_round_max)
            t_round_max = rbt_ms() - t;
        for (int i = 0; i < nclients; i++) {
            count[classify(&cs[i], 0)]++;
            if (cs[i].first_us >= 0)
                first[nfirst++] = cs[i].first_us - cs[i].sent_us;
            rc_close(&cs[i]);
        }
    }
    qsort(first, (size_t)nfirst, sizeof(*first), cmp_i64);
    p99 = nfirst ? (double)first[(nfirst * 99) / 100] / 1000.0 : -1;
    printf("load: %d rounds of %d streams meanwhile, slowest round %lld ms:", rounds, nclients,
           (long long)t_round_max);
    for (int k = 0; k < OUT_N; k++)
        printf(" %s %d", outcome_name[k], count[k]);
    printf("; first byte p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           nfirst ? (double)first[nfirst / 2] / 1000.0 : -1, p99,
           nfirst ? (double)first[nfirst - 1] / 1000.0 : -1);
    fflush(stdout);
    ck_assert_msg(rbt_alive(worker.pid), "the worker died");
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    ck_assert_int_eq(count[OUT_STREAM], nclients * rounds);
    ck_assert_msg(p99 < rbt_scaled(200), "first-byte p99 %.1f ms", p99);
    free(req);
    worker_down();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("load_worker");
    double t = is_long() ? 600 : 60;
    TCase *tc = rbt_tcase(s, "streams", t);
    tcase_add_test(tc, test_load__concurrent_streams_against_a_small_queue_complete_or_get_503);
    tc = rbt_tcase(s, "waves", t);
    tcase_add_test(tc, test_load__requests_in_waves_leave_descriptors_and_memory_flat);
    tc = rbt_tcase(s, "faults", t);
    tcase_add_test(tc, test_load__a_stalled_reader_does_not_stop_another_client_s_stream);
    tcase_add_test(tc, test_load__a_half_closed_request_still_gets_its_whole_stream);
    tcase_add_test(tc, test_load__a_worker_killed_mid_stream_ends_the_client_s_stream_at_once);
    tc = rbt_tcase(s, "slowloris", t);
    tcase_add_test(tc, test_load__held_slow_connections_do_not_starve_the_real_worker_s_clients);
    return rbt_run(s);
}
