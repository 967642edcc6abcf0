/*
 * rb_client.h - HTTP client over libcurl: JSON requests with timeouts and retries, and an SSE
 * reader that hands over each event as soon as its blank line arrives.
 *
 *     rb_client_opts o = rb_client_opts_default();
 *     o.token = getenv("RBEE_API_TOKEN");
 *     long status; json_t *reply;
 *     rb_err rc = rb_client_json("GET", "http://h:8080/v1/health", NULL, &o, &status, &reply,
 *                                err, sizeof err);
 *
 *     rb_sse_opts so = rb_sse_opts_default();
 *     so.idle_timeout_ms = 30000;
 *     rc = rb_client_sse("GET", url, NULL, &so, on_event, user, &res, err, sizeof err);
 *     // RB_OK: "[DONE]" seen. RB_EPROTO: closed without [DONE]. RB_ETIMEDOUT: idle or deadline.
 *
 * Functions are thread-safe (each call has its own curl handle); rb_client_global_init()
 * must run once before threads start (main() calls it).
 */
#ifndef RB_CLIENT_H
#define RB_CLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include "rb_buf.h"
#include "rb_err.h"

void rb_client_global_init(void);

typedef struct rb_client_opts {
    long connect_timeout_ms; /* default 5000 */
    long timeout_ms;         /* whole request; default 30000 */
    int attempts;            /* tries on connect failure or timeout; default 1 */
    long backoff_ms;         /* first wait between tries, doubled each time; default 200 */
    const char *token;       /* bearer token or NULL */
    const char *correlation_id;
    size_t max_reply; /* default 8 MiB */
} rb_client_opts;

rb_client_opts rb_client_opts_default(void);

/* Raw request. body (may be NULL) is sent as application/json. The reply body is appended to
 * reply (caller-initialised). An HTTP error status is not an error here: check *status.
 * Returns RB_ECONNECT (cannot connect), RB_ETIMEDOUT, RB_EIO, RB_ETOOBIG. */
rb_err rb_client_request(const char *method, const char *url, const char *body,
                         const rb_client_opts *o, long *status, rb_buf *reply, char *err,
                         size_t errlen);

/* JSON request: req may be NULL (no body); *reply is a new reference when the answer parses as
 * JSON (else NULL). An unparsable 2xx body is RB_EPROTO. */
rb_err rb_client_json(const char *method, const char *url, const json_t *req,
                      const rb_client_opts *o, long *status, json_t **reply, char *err,
                      size_t errlen);

typedef struct rb_sse_opts {
    long connect_timeout_ms; /* default 5000 */
    long idle_timeout_ms;    /* longest wait for any byte (keep-alives count); default 30000 */
    long deadline_ms;        /* whole stream; 0: none */
    const char *token;
    const char *correlation_id;
    atomic_int *cancel; /* polled every 50 ms; non-zero stops the stream: RB_ECANCELED */
} rb_sse_opts;

rb_sse_opts rb_sse_opts_default(void);

/* Called for each event; data is NUL-terminated, borrowed for the call. "[DONE]" is not passed
 * on: it ends the stream with RB_OK. Return non-zero to stop (RB_ECANCELED). */
typedef int (*rb_sse_cb)(void *user, const char *event, const char *data, size_t len);

typedef struct rb_sse_result {
    long status;        /* HTTP status (0 if none arrived) */
    rb_buf body;        /* the body when the status was not 2xx or not an event stream */
    long events;        /* events delivered */
    long comments;      /* comment lines (keep-alives) seen */
    int64_t headers_ms; /* time from start to the response headers; -1 if none came */
    int64_t headers_us; /* the same in microseconds */
} rb_sse_result;

void rb_sse_result_init(rb_sse_result *r);
void rb_sse_result_release(rb_sse_result *r);

/* Opens the stream (method "GET" or "POST" with a JSON body) and delivers events. On a non-2xx
 * status returns RB_EHTTP with the body in res->body. */
rb_err rb_client_sse(const char *method, const char *url, const char *body, const rb_sse_opts *o,
                     rb_sse_cb cb, void *user, rb_sse_result *res, char *err, size_t errlen);

#endif
