/*
 * client.c - HTTP client over libcurl: JSON requests with timeouts and retries, and the SSE
 * reader.
 *
 * DESIGN
 * Plain requests use the easy interface: connect and total timeouts, retried with doubling
 * backoff on connect failures and timeouts only (an HTTP error status is the caller's to
 * judge). The SSE reader uses the multi interface so that it controls waiting itself: it polls
 * with a short timeout, feeds every received byte to the frame parser (which hands each event
 * over at its blank line) and tracks two clocks: time since the last byte (idle timeout; the
 * server's keep-alive comments count as bytes) and time since the start (deadline). A stream
 * that ends without "[DONE]" is RB_EPROTO, distinct from RB_ETIMEDOUT.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rb_client.h"
#include "rb_json.h"
#include "rb_sse.h"
#include "rb_util.h"

void rb_client_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

rb_client_opts rb_client_opts_default(void)
{
    rb_client_opts o = {0};
    o.connect_timeout_ms = 5000;
    o.timeout_ms = 30000;
    o.attempts = 1;
    o.backoff_ms = 200;
    o.max_reply = 8 * 1024 * 1024;
    return o;
}

rb_sse_opts rb_sse_opts_default(void)
{
    rb_sse_opts o = {0};
    o.connect_timeout_ms = 5000;
    o.idle_timeout_ms = 30000;
    return o;
}

static size_t write_buf(char *p, size_t size, size_t n, void *user)
{
    rb_buf *b = user;
    return rb_buf_append(b, p, size * n) ? 0 : size * n;
}

static struct curl_slist *base_headers(const char *token, const char *corr, int json_body, int sse)
{
    struct curl_slist *h = NULL;
    char line[600];

    if (json_body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (sse)
        h = curl_slist_append(h, "Accept: text/event-stream");
    if (token && *token && strlen(token) < 512) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, line);
    }
    if (corr && *corr && strlen(corr) < 100) {
        snprintf(line, sizeof line, "X-Correlation-ID: %s", corr);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    return h;
}

static rb_err map_curl(CURLcode c, const char *url, char *err, size_t errlen, const char *detail)
{
    switch (c) {
    case CURLE_OK:
        return RB_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return rb_errf(err, errlen, RB_ECONNECT, "cannot connect to %s: %s", url,
                       detail && *detail ? detail : curl_easy_strerror(c));
    case CURLE_OPERATION_TIMEDOUT:
        return rb_errf(err, errlen, RB_ETIMEDOUT, "request to %s timed out", url);
    case CURLE_WRITE_ERROR:
        return rb_errf(err, errlen, RB_ETOOBIG, "reply from %s is too large", url);
    default:
        return rb_errf(err, errlen, RB_EIO, "request to %s failed: %s", url,
                       detail && *detail ? detail : curl_easy_strerror(c));
    }
}

rb_err rb_client_request(const char *method, const char *url, const char *body,
                         const rb_client_opts *o, long *status, rb_buf *reply, char *err,
                         size_t errlen)
{
    rb_client_opts def = rb_client_opts_default();
    long backoff;
    rb_err rc = RB_EIO;

    if (!o)
        o = &def;
    backoff = o->backoff_ms;
    *status = 0;
    for (int attempt = 1; attempt <= (o->attempts > 0 ? o->attempts : 1); attempt++) {
        CURL *c = curl_easy_init();
        char cerr[CURL_ERROR_SIZE] = "";
        struct curl_slist *h;
        CURLcode cc;

        if (!c)
            return RB_ENOMEM;
        h = base_headers(o->token, o->correlation_id, body != NULL, 0);
        rb_buf_reset(reply);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_buf);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
        if (body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        } else if (strcmp(method, "GET") == 0) {
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        } else if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
        cc = curl_easy_perform(c);
        if (cc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        rc = map_curl(cc, url, err, errlen, cerr);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (rc != RB_ECONNECT && rc != RB_ETIMEDOUT)
            break;
        if (attempt < o->attempts) {
            rb_sleep_ms(backoff);
            backoff *= 2;
        }
    }
    return rc;
}

rb_err rb_client_json(const char *method, const char *url, const json_t *req,
                      const rb_client_opts *o, long *status, json_t **reply, char *err,
                      size_t errlen)
{
    rb_client_opts def = rb_client_opts_default();
    char *body = req ? rb_json_dump(req) : NULL;
    rb_buf b;
    rb_err rc;

    if (!o)
        o = &def;
    *reply = NULL;
    rb_buf_init(&b, o->max_reply);
    rc = rb_client_request(method, url, body, o, status, &b, err, errlen);
    if (!rc && b.len) {
        *reply = json_loadb(b.data, b.len, 0, NULL);
        if (!*reply && *status >= 200 && *status < 300)
            rc = rb_errf(err, errlen, RB_EPROTO, "reply from %s is not JSON", url);
    }
    free(body);
    rb_buf_release(&b);
    return rc;
}

/* ---- SSE reader ------------------------------------------------------------------------- */

void rb_sse_result_init(rb_sse_result *r)
{
    memset(r, 0, sizeof(*r));
    r->headers_ms = -1;
    r->headers_us = -1;
    rb_buf_init(&r->body, 64 * 1024);
}

void rb_sse_result_release(rb_sse_result *r)
{
    rb_buf_release(&r->body);
}

typedef struct sse_read {
    CURL *curl;
    rb_sse_parser parser;
    rb_sse_cb cb;
    void *user;
    rb_sse_result *res;
    int64_t start_ms, last_byte_ms;
    int64_t start_us;
    int checked_status; /* status looked at once headers are complete */
    int is_stream;
    int done;    /* [DONE] seen */
    int stopped; /* the callback asked to stop */
    rb_err parse_err;
} sse_read;

static int on_event(void *user, const char *event, const char *data, size_t len)
{
    sse_read *s = user;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = 1;
        return 1;
    }
    s->res->events++;
    s->res->comments = s->parser.comments;
    if (s->cb(s->user, event, data, len)) {
        s->stopped = 1;
        return 1;
    }
    return 0;
}

/* Looks at the status and content type once the headers are complete. */
static void sse_check_status(sse_read *s)
{
    char *ct = NULL;
    if (s->checked_status)
        return;
    s->checked_status = 1;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->res->status);
    curl_easy_getinfo(s->curl, CURLINFO_CONTENT_TYPE, &ct);
    s->is_stream = s->res->status >= 200 && s->res->status < 300 && ct &&
                   strncmp(ct, "text/event-stream", 17) == 0;
}

static size_t sse_write(char *p, size_t size, size_t n, void *user)
{
    sse_read *s = user;
    size_t len = size * n;

    s->last_byte_ms = rb_now_ms();
    sse_check_status(s);
    if (!s->is_stream)
        return rb_buf_append(&s->res->body, p, len) ? 0 : len;
    if (s->done || s->stopped)
        return 0; /* abort the transfer: we have what we wanted */
    s->parse_err = rb_sse_parser_feed(&s->parser, p, len);
    s->res->comments = s->parser.comments;
    if (s->parse_err == RB_ECANCELED)
        return 0;
    return s->parse_err ? 0 : len;
}

static size_t sse_header(char *p, size_t size, size_t n, void *user)
{
    sse_read *s = user;
    s->last_byte_ms = rb_now_ms();
    if (size * n == 2 && p[0] == '\r' && p[1] == '\n') {
        long code = 0;
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && s->res->headers_ms < 0) { /* not an interim 1xx block */
            s->res->headers_ms = s->last_byte_ms - s->start_ms;
            s->res->headers_us = rb_now_us() - s->start_us;
            sse_check_status(s);
        }
    }
    return size * n;
}

rb_err rb_client_sse(const char *method, const char *url, const char *body, const rb_sse_opts *o,
                     rb_sse_cb cb, void *user, rb_sse_result *res, char *err, size_t errlen)
{
    rb_sse_opts def = rb_sse_opts_default();
    CURLM *m = NULL;
    sse_read s = {0};
    struct curl_slist *h = NULL;
    char cerr[CURL_ERROR_SIZE] = "";
    CURLcode cc = CURLE_OK;
    rb_err rc = RB_OK;
    int running = 1;

    if (!o)
        o = &def;
    s.cb = cb;
    s.user = user;
    s.res = res;
    s.start_ms = s.last_byte_ms = rb_now_ms();
    s.start_us = rb_now_us();
    rb_sse_parser_init(&s.parser, 64 * 1024, on_event, &s);
    s.curl = curl_easy_init();
    m = curl_multi_init();
    if (!s.curl || !m) {
        rc = RB_ENOMEM;
        goto out;
    }
    h = base_headers(o->token, o->correlation_id, body != NULL, 1);
    curl_easy_setopt(s.curl, CURLOPT_URL, url);
    curl_easy_setopt(s.curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(s.curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(s.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s.curl, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(s.curl, CURLOPT_WRITEFUNCTION, sse_write);
    curl_easy_setopt(s.curl, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(s.curl, CURLOPT_HEADERFUNCTION, sse_header);
    curl_easy_setopt(s.curl, CURLOPT_HEADERDATA, &s);
    curl_easy_setopt(s.curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(s.curl, CURLOPT_TCP_NODELAY, 1L);
    if (body) {
        curl_easy_setopt(s.curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(s.curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_multi_add_handle(m, s.curl);

    while (running) {
        int64_t now, wait = 50;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            rc = rb_errf(err, errlen, RB_EIO, "stream from %s failed: %s", url,
                         curl_multi_strerror(mc));
            goto out;
        }
        if (!running)
            break;
        now = rb_now_ms();
        if (o->cancel && atomic_load(o->cancel)) {
            rc = rb_errf(err, errlen, RB_ECANCELED, "stream from %s canceled", url);
            goto out;
        }
        if (o->idle_timeout_ms > 0 && now - s.last_byte_ms >= o->idle_timeout_ms) {
            rc = rb_errf(err, errlen, RB_ETIMEDOUT, "no data from %s for %ld ms (idle timeout)",
                         url, o->idle_timeout_ms);
            goto out;
        }
        if (o->deadline_ms > 0 && now - s.start_ms >= o->deadline_ms) {
            rc = rb_errf(err, errlen, RB_ETIMEDOUT, "stream from %s passed its %ld ms deadline",
                         url, o->deadline_ms);
            goto out;
        }
        if (o->idle_timeout_ms > 0 && s.last_byte_ms + o->idle_timeout_ms - now < wait)
            wait = s.last_byte_ms + o->idle_timeout_ms - now;
        if (o->deadline_ms > 0 && s.start_ms + o->deadline_ms - now < wait)
            wait = s.start_ms + o->deadline_ms - now;
        curl_multi_poll(m, NULL, 0, (int)(wait > 0 ? wait : 0), NULL);
    }
    {
        int left;
        CURLMsg *msg = curl_multi_info_read(m, &left);
        if (msg && msg->msg == CURLMSG_DONE)
            cc = msg->data.result;
    }
    sse_check_status(&s);
    if (s.done)
        rc = RB_OK;
    else if (s.stopped || s.parse_err == RB_ECANCELED)
        rc = rb_errf(err, errlen, RB_ECANCELED, "stream from %s stopped by the reader", url);
    else if (s.parse_err)
        rc = rb_errf(err, errlen, s.parse_err, "stream from %s is malformed: %s", url,
                     rb_strerror(s.parse_err));
    else if (cc != CURLE_OK && cc != CURLE_PARTIAL_FILE && res->status == 0)
        rc = map_curl(cc, url, err, errlen, cerr);
    else if (res->status && !s.is_stream)
        rc = rb_errf(err, errlen, RB_EHTTP, "%s answered HTTP %ld", url, res->status);
    else
        rc = rb_errf(err, errlen, RB_EPROTO, "stream from %s closed without [DONE]", url);
out:
    if (s.curl && !res->status)
        curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &res->status);
    if (m && s.curl)
        curl_multi_remove_handle(m, s.curl);
    curl_easy_cleanup(s.curl);
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    rb_sse_parser_release(&s.parser);
    return rc;
}
