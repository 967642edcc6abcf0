/*
 * rb_http.h - HTTP server over libmicrohttpd: routes, JSON replies, the error envelope,
 * limits, correlation ids, bearer auth and SSE responses.
 *
 *     static void health(rb_http_req *req, rb_http_reply *rep, void *user) {
 *         rb_http_reply_json(rep, 200, json_pack("{s:s}", "status", "alive"));
 *     }
 *     static const rb_http_route routes[] = {
 *         {"GET", "/v1/health", health, RB_ROUTE_PUBLIC},
 *         {"GET", "/v1/jobs/{id}/stream", stream, 0},
 *     };
 *     rb_http_config cfg = rb_http_config_default();
 *     cfg.port = 8080; cfg.routes = routes; cfg.nroutes = 2; cfg.user = state;
 *     rb_http_server *srv;
 *     if (rb_http_server_start(&cfg, &srv, err, sizeof err)) ...
 *     rb_http_server_stop(srv);
 *
 * Threads: one libmicrohttpd thread does all socket I/O. Each complete request's handler runs
 * on a thread of its own (it may block: the connection is suspended meanwhile) and must set a
 * reply (a later reply call replaces an earlier one); a handler that sets none answers 500.
 * An SSE stream costs no thread while it waits for events: its connection is suspended and a
 * watcher thread resumes it when the channel has an event, a keep-alive is due or the client
 * hangs up.
 * Limits (rb_http_config): connections beyond max_connections, or beyond
 * max_connections_per_ip from one client address, are closed at once without a reply; a
 * request whose headers and body have not all arrived within request_timeout_ms of the
 * connection's accept (or of the previous response's end, on a kept-alive connection) is
 * answered 408 REQUEST_TIMEOUT and closed, however steadily its bytes trickle in. A response
 * in progress (a stream) is not subject to that deadline.
 * Before a handler runs the server has already checked: the route (404, or 405 for a known
 * path with another method), auth (401 MISSING_API_KEY / INVALID_API_KEY unless the route is
 * public), body size (413 PAYLOAD_TOO_LARGE) and, for a non-empty body, the content type
 * (415 UNSUPPORTED_MEDIA_TYPE unless application/json).
 */
#ifndef RB_HTTP_H
#define RB_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "rb_err.h"
#include "rb_sse.h"

#define RB_HTTP_MAX_PARAMS 4

typedef struct rb_http_req {
    const char *method;
    const char *path;
    const char *body; /* NUL-terminated; "" when empty */
    size_t body_len;
    const char *correlation_id;
    const char *params[RB_HTTP_MAX_PARAMS]; /* values of {name} segments, in order */
    int nparams;
    void *conn; /* the libmicrohttpd connection; use rb_http_req_header() */
} rb_http_req;

typedef struct rb_http_reply rb_http_reply;

typedef void (*rb_http_handler)(rb_http_req *req, rb_http_reply *reply, void *user);

enum {
    RB_ROUTE_PUBLIC = 1, /* no bearer token needed */
    /* errors the HTTP layer answers for this route before its handler (401, 413, 415) use
     * OpenAI's shape {"error":{"message","type","param","code"}} instead of the envelope */
    RB_ROUTE_OPENAI = 2,
};

typedef struct rb_http_route {
    const char *method;  /* "GET", "POST", "DELETE" */
    const char *pattern; /* "/v1/jobs/{id}/stream": {x} matches one non-empty segment */
    rb_http_handler handler;
    unsigned flags;
} rb_http_route;

typedef struct rb_http_config {
    const char *bind_addr;       /* "127.0.0.1", "0.0.0.0" */
    uint16_t port;               /* 0: any free port (see rb_http_server_port) */
    const char *token;           /* bearer token; NULL or "": no auth */
    size_t max_body;             /* default 1 MiB */
    int sse_keepalive_ms;        /* default 10000 */
    int max_connections;         /* open connections; default 4096 (see rb_http_server_start) */
    int max_connections_per_ip;  /* open connections from one address; default 256 */
    int request_timeout_ms;      /* whole request (headers and body); default 10000 */
    const rb_http_route *routes; /* borrowed for the server's lifetime */
    size_t nroutes;
    void *user;            /* passed to every handler */
    const char *component; /* log component, default "http" */
} rb_http_config;

rb_http_config rb_http_config_default(void);

typedef struct rb_http_server rb_http_server;

/* Binds and starts serving. RB_EIO with a message in err when the port cannot be bound. Raises
 * the process's soft limit of open files towards its hard limit when max_connections needs it,
 * and lowers max_connections (logged) when even the hard limit is too low. */
rb_err rb_http_server_start(const rb_http_config *cfg, rb_http_server **out, char *err,
                            size_t errlen);
/* The bound port. */
uint16_t rb_http_server_port(const rb_http_server *srv);
/* Ends every SSE stream (their channels are closed), stops the daemon, joins its threads,
 * frees. NULL-safe. */
void rb_http_server_stop(rb_http_server *srv);
/* Waits up to timeout_ms for every SSE response to finish on its own (their producers have
 * finished their channels); returns the number still open. Call before stop so the last
 * events of finished streams reach their clients. */
int rb_http_server_drain(rb_http_server *srv, int timeout_ms);
/* SSE responses in progress. */
int rb_http_server_active_streams(rb_http_server *srv);

typedef struct rb_http_stats {
    int connections;         /* open now */
    int max_connections;     /* the limit in force (after the fd-limit clamp) */
    long refused;            /* connections closed at once by a limit, since start */
    long timed_out;          /* requests closed by the request deadline, since start */
    int64_t last_refused_ms; /* rb_now_ms() of the last refusal; 0: none yet */
} rb_http_stats;

/* A snapshot of the connection counters. */
void rb_http_server_stats(rb_http_server *srv, rb_http_stats *out);

/* Request header value (case-insensitive name) or NULL; borrowed for the handler's duration. */
const char *rb_http_req_header(rb_http_req *req, const char *name);
/* Query-string argument or NULL. */
const char *rb_http_req_query(rb_http_req *req, const char *name);

/* Replies. JSON bodies: takes ownership of body (one reference, dropped here); a NULL body
 * (a failed json_pack) answers 500 INTERNAL instead. */
void rb_http_reply_json(rb_http_reply *rep, int status, json_t *body);
/* The error envelope: code and message are copied, details (may be NULL) is taken. */
void rb_http_reply_error(rb_http_reply *rep, int status, const char *code, const char *message,
                         json_t *details);
/* Copies text (NULL: an empty body) and content_type (at most 63 bytes of it are kept); the
 * caller keeps its strings. */
void rb_http_reply_text(rb_http_reply *rep, int status, const char *content_type, const char *text);
/* Streams ch as text/event-stream; takes its own reference (the caller still drops its own).
 * When the client disconnects, or the response ends for any reason, the channel is closed
 * (rb_chan_close). */
void rb_http_reply_sse(rb_http_reply *rep, rb_chan *ch);
/* Streams ch as a raw body: each event's bytes are written as they are, with no SSE framing
 * and no keep-alive, under the given status and content type (copied, at most 63 bytes). For
 * relaying another server's response byte for byte. Takes its own reference; the channel is
 * closed when the client disconnects or the response ends, like rb_http_reply_sse. */
void rb_http_reply_stream(rb_http_reply *rep, int status, const char *content_type, rb_chan *ch);
/* 1 when the client of req has hung up (its socket reports end of input or an error); for a
 * handler that waits before it replies. Does not consume input. */
int rb_http_req_client_gone(rb_http_req *req);
/* Calls fn(user) once the reply has been sent (or the connection ended), from the server's I/O
 * thread (so fn must not block); e.g. to shut the server down only after "shutting_down" reached
 * the client. */
void rb_http_reply_on_complete(rb_http_reply *rep, void (*fn)(void *user), void *user);
/* Adds a header to whatever reply is set (call before or after); name and value are copied.
 * A reply holds at most eight such headers: later calls are dropped without any error.
 * X-Correlation-ID and the SSE headers are added separately and do not count. */
void rb_http_reply_header(rb_http_reply *rep, const char *name, const char *value);

/* The reason phrase of an HTTP status ("Not Found"); "HTTP error" for a status without one. */
const char *rb_http_reason(long status);

/* What rb_http_call got back. body is malloc'd (NULL for a stream or an empty reply); free it. */
typedef struct rb_http_result {
    int status;
    char *body;
    size_t body_len;
    int streamed; /* the handler answered with a stream (SSE or raw); its channel was closed */
    char content_type[64];
} rb_http_result;

/* Runs the handler of routes that method and path select, in the calling thread, as the server
 * would for a request that passed its checks (auth, size, content type) but never touched a
 * socket: for fuzzers and tests of the validation at a route's edge. The request has no
 * headers, no query string and a client that never hangs up; a stream reply's channel is
 * closed at once, as when a client leaves before reading, then the reply's on_complete runs.
 * Unknown path: 404, known path with another method: 405, no reply set: 500. Returns 0, or -1
 * when out of memory. */
int rb_http_call(const rb_http_route *routes, size_t nroutes, void *user, const char *method,
                 const char *path, const char *body, size_t body_len, rb_http_result *out);

/* Parses "Authorization: Bearer <token>". Returns 0 when absent, 1 with the token borrowed
 * into *tok, -1 when present but malformed. */
int rb_http_parse_bearer(const char *header, const char **tok, size_t *toklen);

#endif
