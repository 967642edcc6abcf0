/*
 * http.c - the HTTP server core over libmicrohttpd: routing, limits, auth, replies.
 *
 * DESIGN
 * One libmicrohttpd thread polls every socket (epoll, MHD_ALLOW_SUSPEND_RESUME); no callback
 * it makes may block. A request goes through these gates, in order, on libmicrohttpd's first
 * call: route lookup (404/405), bearer auth (401), declared Content-Length against the limit
 * (413), content type of a body (415); those answers are made on the I/O thread. The body is
 * then accumulated in a bounded buffer (413 if a chunked body outgrows it). On the final call
 * the connection is suspended and the handler runs on a thread of its own (handlers may wait:
 * the hive's relay waits for a worker); when it has set its reply it resumes the connection,
 * and libmicrohttpd's next call queues that reply. SSE readers never block (http_sse.c).
 * Every reply carries X-Correlation-ID.
 *
 * Connection limits are the server's own accounting (http_conn.c), exact since one thread accepts:
 * the accept-policy callback refuses (libmicrohttpd closes the socket at once) when
 * max_connections are open or max_connections_per_ip from that address; the connection-notify
 * callback counts a connection in at its start and out at its close, and keeps a conn_info
 * per connection with its request deadline. The deadline is armed at accept and again when a
 * response ends (a kept-alive connection waiting for its next request), and disarmed when the
 * request is complete, so bytes trickling in never extend it and a long stream is never cut.
 * The watcher thread (http_sse.c) calls rb_http_sweep_deadlines, which writes a 408 and shuts
 * the socket down; libmicrohttpd then sees the end of input and closes the connection. The
 * conn_info is removed under the server lock before libmicrohttpd closes the descriptor, so
 * the sweep never touches a descriptor that was closed and reused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_internal.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"

#define MAX_HEADERS 8
#define MAX_PATH_SEGMENTS 16
#define PARAMS_BYTES 512
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_MAX_PER_IP 256
#define DEFAULT_REQUEST_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_S 120 /* libmicrohttpd's own limit on a connection without any I/O */
#define LISTEN_BACKLOG 1024

typedef struct reply_header {
    char *name, *value;
} reply_header;

struct rb_http_reply {
    int set;
    int status;
    char *body; /* owned */
    size_t body_len;
    char content_type[64];
    rb_chan *sse; /* owned reference */
    int raw;      /* sse is a raw body stream (rb_http_reply_stream) */
    reply_header headers[MAX_HEADERS];
    int nheaders;
    void (*on_complete)(void *user);
    void *on_complete_user;
};

typedef struct req_ctx {
    const rb_http_route *route; /* NULL: rejected early */
    rb_buf body;
    int too_big;
    int64_t start_us;
    char corr[80];
    char params[PARAMS_BYTES];
    const char *param_ptr[RB_HTTP_MAX_PARAMS];
    int nparams;
    void (*on_complete)(void *user);
    void *on_complete_user;
    int openai_errors; /* the route answers errors in OpenAI's shape (RB_ROUTE_OPENAI) */
    int handled;       /* 0: handler not started, 1: running on its thread, 2: reply in rep */
    rb_http_server *srv;
    rb_http_req req;
    rb_http_reply *rep;
    const char *method, *url;
} req_ctx;

rb_http_config rb_http_config_default(void)
{
    rb_http_config c = {0};
    c.bind_addr = "127.0.0.1";
    c.max_body = 1024 * 1024;
    c.sse_keepalive_ms = 10000;
    c.max_connections = DEFAULT_MAX_CONNECTIONS;
    c.max_connections_per_ip = DEFAULT_MAX_PER_IP;
    c.request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
    c.component = "http";
    return c;
}

/* ---- routing ---------------------------------------------------------------------------- */

/* Matches path against pattern; on success copies {x} values into ctx. */
static int route_match(const char *pattern, const char *path, req_ctx *ctx)
{
    const char *p = pattern, *u = path;
    size_t used = 0;
    int np = 0;

    while (*p && *u) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *ue = strchr(u, '/');
            size_t n;
            if (!pe)
                return 0;
            if (!ue)
                ue = u + strlen(u);
            n = (size_t)(ue - u);
            if (n == 0 || np == RB_HTTP_MAX_PARAMS || used + n + 1 > PARAMS_BYTES)
                return 0;
            if (ctx) {
                memcpy(ctx->params + used, u, n);
                ctx->params[used + n] = '\0';
                ctx->param_ptr[np] = ctx->params + used;
            }
            used += n + 1;
            np++;
            p = pe + 1;
            u = ue;
            continue;
        }
        if (*p != *u)
            return 0;
        p++, u++;
    }
    if (*p || *u)
        return 0;
    if (ctx)
        ctx->nparams = np;
    return 1;
}

/* Finds the route; *path_known tells whether another method would have matched. */
static const rb_http_route *route_find(const rb_http_route *routes, size_t nroutes,
                                       const char *method, const char *path, req_ctx *ctx,
                                       int *path_known)
{
    *path_known = 0;
    for (size_t i = 0; i < nroutes; i++) {
        const rb_http_route *r = &routes[i];
        if (!route_match(r->pattern, path, NULL))
            continue;
        *path_known = 1;
        if (strcmp(r->method, method) == 0) {
            route_match(r->pattern, path, ctx);
            return r;
        }
    }
    return NULL;
}

/* ---- replies ---------------------------------------------------------------------------- */

static void reply_clear(rb_http_reply *rep)
{
    free(rep->body);
    rep->body = NULL;
    rep->body_len = 0;
    rb_chan_unref(rep->sse);
    rep->sse = NULL;
    rep->raw = 0;
}

void rb_http_reply_text(rb_http_reply *rep, int status, const char *content_type, const char *text)
{
    reply_clear(rep);
    rep->set = 1;
    rep->status = status;
    rep->body = strdup(text ? text : "");
    rep->body_len = rep->body ? strlen(rep->body) : 0;
    snprintf(rep->content_type, sizeof rep->content_type, "%s", content_type);
}

void rb_http_reply_json(rb_http_reply *rep, int status, json_t *body)
{
    char *s = body ? rb_json_dump(body) : NULL;
    reply_clear(rep);
    rep->set = 1;
    rep->status = s ? status : 500;
    rep->body = s ? s : strdup("{\"error\":{\"code\":\"INTERNAL\",\"message\":\"out of memory\"}}");
    rep->body_len = rep->body ? strlen(rep->body) : 0;
    snprintf(rep->content_type, sizeof rep->content_type, "application/json");
    json_decref(body);
}

void rb_http_reply_error(rb_http_reply *rep, int status, const char *code, const char *message,
                         json_t *details)
{
    rb_http_reply_json(rep, status, rb_error_envelope(code, message, details));
}

void rb_http_reply_sse(rb_http_reply *rep, rb_chan *ch)
{
    reply_clear(rep);
    rep->set = 1;
    rep->status = 200;
    rb_chan_ref(ch);
    rep->sse = ch;
}

void rb_http_reply_stream(rb_http_reply *rep, int status, const char *content_type, rb_chan *ch)
{
    reply_clear(rep);
    rep->set = 1;
    rep->status = status;
    rb_chan_ref(ch);
    rep->sse = ch;
    rep->raw = 1;
    snprintf(rep->content_type, sizeof rep->content_type, "%s",
             content_type ? content_type : "application/octet-stream");
}

int rb_http_req_client_gone(rb_http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        req->conn ? MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
    struct pollfd p;
    char c;
    ssize_t r;

    if (!ci || ci->connect_fd < 0)
        return 0;
    p.fd = ci->connect_fd;
    p.events = POLLIN | POLLRDHUP;
    p.revents = 0;
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return 1;
    r = recv(p.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void rb_http_reply_on_complete(rb_http_reply *rep, void (*fn)(void *user), void *user)
{
    rep->on_complete = fn;
    rep->on_complete_user = user;
}

void rb_http_reply_header(rb_http_reply *rep, const char *name, const char *value)
{
    if (rep->nheaders == MAX_HEADERS)
        return;
    rep->headers[rep->nheaders].name = strdup(name);
    rep->headers[rep->nheaders].value = strdup(value);
    rep->nheaders++;
}

static void reply_release(rb_http_reply *rep)
{
    reply_clear(rep);
    for (int i = 0; i < rep->nheaders; i++) {
        free(rep->headers[i].name);
        free(rep->headers[i].value);
    }
}

/* Hands the reply to libmicrohttpd. */
static enum MHD_Result send_reply(rb_http_server *srv, struct MHD_Connection *conn,
                                  rb_http_reply *rep, req_ctx *ctx, const char *method,
                                  const char *path)
{
    struct MHD_Response *r;
    enum MHD_Result ok;

    if (!rep->set)
        rb_http_reply_error(rep, 500, "INTERNAL", "handler produced no reply", NULL);
    if (rep->sse) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        r = rb_http_sse_response(srv, rep->sse, conn, ci ? ci->connect_fd : -1, rep->raw);
        if (r && rep->raw) {
            MHD_add_response_header(r, "Content-Type", rep->content_type);
            MHD_add_response_header(r, "Cache-Control", "no-cache");
            MHD_add_response_header(r, "X-Accel-Buffering", "no");
        } else if (r) {
            MHD_add_response_header(r, "Content-Type", "text/event-stream");
            MHD_add_response_header(r, "Cache-Control", "no-cache");
            MHD_add_response_header(r, "X-Accel-Buffering", "no");
        }
    } else {
        r = MHD_create_response_from_buffer(rep->body_len, rep->body, MHD_RESPMEM_MUST_FREE);
        if (r) {
            rep->body = NULL; /* libmicrohttpd frees it */
            MHD_add_response_header(r, "Content-Type", rep->content_type);
        }
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "X-Correlation-ID", ctx->corr);
    for (int i = 0; i < rep->nheaders; i++)
        MHD_add_response_header(r, rep->headers[i].name, rep->headers[i].value);
    ok = MHD_queue_response(conn, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    rb_log(rep->status >= 500 ? RB_LOG_WARN : RB_LOG_DEBUG, srv->component,
           "%s %s -> %d (%s, %.1f ms)", method, path, rep->status, ctx->corr,
           (double)(rb_now_us() - ctx->start_us) / 1000.0);
    return ok;
}

static enum MHD_Result send_error(rb_http_server *srv, struct MHD_Connection *conn, req_ctx *ctx,
                                  int status, const char *code, const char *msg, const char *method,
                                  const char *path)
{
    rb_http_reply rep = {0};
    enum MHD_Result ok;
    char lower[64];
    size_t i;

    if (ctx->openai_errors) {
        /* OpenAI's clients read error.code and error.type: the project's code, in lower case */
        for (i = 0; code[i] && i + 1 < sizeof lower; i++)
            lower[i] = (char)(code[i] >= 'A' && code[i] <= 'Z' ? code[i] - 'A' + 'a' : code[i]);
        lower[i] = '\0';
        rb_http_reply_json(&rep, status,
                           json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type",
                                     "invalid_request_error", "param", "code", lower));
    } else {
        rb_http_reply_error(&rep, status, code, msg, NULL);
    }
    ok = send_reply(srv, conn, &rep, ctx, method, path);
    reply_release(&rep);
    return ok;
}

/* ---- request gates ---------------------------------------------------------------------- */

int rb_http_parse_bearer(const char *header, const char **tok, size_t *toklen)
{
    const char *p, *end;

    if (!header)
        return 0;
    p = header;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return -1;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == p)
        return -1;
    for (const char *q = p; q < end; q++)
        if (*q == ' ' || *q == '\t')
            return -1;
    *tok = p;
    *toklen = (size_t)(end - p);
    return 1;
}

/* 0: authorised; else writes the error code. */
static int check_auth(rb_http_server *srv, struct MHD_Connection *conn, const char **code)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *tok;
    size_t len;
    char given[512];
    int r = rb_http_parse_bearer(h, &tok, &len);

    if (r == 0) {
        *code = "MISSING_API_KEY";
        return -1;
    }
    if (r < 0 || len >= sizeof given) {
        *code = "INVALID_API_KEY";
        return -1;
    }
    memcpy(given, tok, len);
    given[len] = '\0';
    if (!rb_ct_streq(given, srv->token)) {
        *code = "INVALID_API_KEY";
        return -1;
    }
    return 0;
}

static int is_json_type(const char *ct)
{
    size_t n = strlen("application/json");
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void set_correlation(struct MHD_Connection *conn, req_ctx *ctx)
{
    const char *c = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Correlation-ID");
    if (c && rb_id_valid(c, 64)) /* a longer one is replaced, as is one with other bytes */
        memcpy(ctx->corr, c, strlen(c) + 1);
    else
        rb_uuid(ctx->corr);
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind, (void)value;
    if (strcasecmp(key, "Content-Length") == 0)
        (*(int *)cls)++;
    return MHD_YES;
}

/* Why the request's framing is ambiguous (RFC 9112 sections 3.2 and 6.3), or NULL: a repeated
 * or non-numeric Content-Length could be read two ways by two servers on the path, and
 * HTTP/1.1 requires Host. */
static const char *framing_error(struct MHD_Connection *conn, const char *version)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    uint64_t n;
    int count = 0;

    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &count);
    if (count > 1)
        return "repeated Content-Length header";
    if (cl && rb_parse_u64(cl, &n) != RB_OK)
        return "Content-Length is not a number";
    if (version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0 &&
        !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host"))
        return "HTTP/1.1 request without Host header";
    return NULL;
}

/* ---- connections and handler threads ------------------------------------------------------ */

static void *handler_main(void *arg)
{
    req_ctx *ctx = arg;
    rb_http_server *srv = ctx->srv;
    struct MHD_Connection *conn = ctx->req.conn;

    rb_thread_set_name("http-handler");
    ctx->route->handler(&ctx->req, ctx->rep, srv->cfg.user);
    ctx->handled = 2;
    /* The server counts this thread until the connection is resumed: stop waits for it. */
    MHD_resume_connection(conn);
    pthread_mutex_lock(&srv->mu);
    srv->handlers--;
    pthread_cond_broadcast(&srv->streams_cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* Suspends the connection and runs the route's handler on a thread of its own. */
static enum MHD_Result start_handler(rb_http_server *srv, struct MHD_Connection *conn, req_ctx *ctx,
                                     const char *method, const char *url)
{
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    ctx->rep = calloc(1, sizeof(*ctx->rep));
    if (!ctx->rep)
        return MHD_NO;
    ctx->srv = srv;
    ctx->method = method;
    ctx->url = url;
    ctx->req.method = method;
    ctx->req.path = url;
    ctx->req.body = ctx->body.data ? ctx->body.data : "";
    ctx->req.body_len = ctx->body.len;
    ctx->req.correlation_id = ctx->corr;
    ctx->req.nparams = ctx->nparams;
    for (int i = 0; i < ctx->nparams; i++)
        ctx->req.params[i] = ctx->param_ptr[i];
    ctx->req.conn = conn;
    ctx->handled = 1;

    pthread_mutex_lock(&srv->mu);
    srv->handlers++;
    pthread_mutex_unlock(&srv->mu);
    MHD_suspend_connection(conn);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, handler_main, ctx);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        rb_log(RB_LOG_WARN, srv->component, "cannot start a handler thread: %s", strerror(rc));
        rb_http_reply_error(ctx->rep, 503, "SERVICE_UNAVAILABLE", "server is out of threads", NULL);
        ctx->handled = 2;
        MHD_resume_connection(conn);
        pthread_mutex_lock(&srv->mu);
        srv->handlers--;
        pthread_cond_broadcast(&srv->streams_cv);
        pthread_mutex_unlock(&srv->mu);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    rb_http_server *srv = cls;
    req_ctx *ctx = *con_cls;

    if (!ctx) {
        int path_known;
        const char *code, *framing;
        const char *cl, *ct;

        ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
            return MHD_NO;
        *con_cls = ctx;
        ctx->start_us = rb_now_us();
        rb_buf_init(&ctx->body, srv->cfg.max_body);
        set_correlation(conn, ctx);

        if ((framing = framing_error(conn, version)))
            return send_error(srv, conn, ctx, 400, "BAD_REQUEST", framing, method, url);
        ctx->route = route_find(srv->cfg.routes, srv->cfg.nroutes, method, url, ctx, &path_known);
        ctx->openai_errors = ctx->route && (ctx->route->flags & RB_ROUTE_OPENAI);
        if (!ctx->route)
            return path_known
                       ? send_error(srv, conn, ctx, 405, "METHOD_NOT_ALLOWED",
                                    "method not allowed for this path", method, url)
                       : send_error(srv, conn, ctx, 404, "NOT_FOUND", "no such route", method, url);
        if (srv->token && !(ctx->route->flags & RB_ROUTE_PUBLIC) && check_auth(srv, conn, &code)) {
            ctx->route = NULL;
            return send_error(srv, conn, ctx, 401, code,
                              strcmp(code, "MISSING_API_KEY") == 0
                                  ? "missing bearer token (Authorization: Bearer <token>)"
                                  : "invalid bearer token",
                              method, url);
        }
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            uint64_t n;
            if (rb_parse_u64(cl, &n) == RB_OK && n > srv->cfg.max_body) {
                ctx->route = NULL;
                return send_error(srv, conn, ctx, 413, "PAYLOAD_TOO_LARGE",
                                  "request body is larger than the limit", method, url);
            }
        }
        ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (((cl && strcmp(cl, "0") != 0) ||
             MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding")) &&
            !is_json_type(ct)) {
            ctx->route = NULL;
            return send_error(srv, conn, ctx, 415, "UNSUPPORTED_MEDIA_TYPE",
                              "request body must be application/json", method, url);
        }
        return MHD_YES;
    }
    if (!ctx->route) {
        *upload_data_size = 0; /* already answered: discard the body */
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!ctx->too_big && rb_buf_append(&ctx->body, upload_data, *upload_data_size))
            ctx->too_big = 1;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ctx->too_big)
        return send_error(srv, conn, ctx, 413, "PAYLOAD_TOO_LARGE",
                          "request body is larger than the limit", method, url);
    if (ctx->handled == 0) {
        /* The request is complete: its deadline no longer applies. */
        rb_http_request_deadline(srv, conn, 0);
        return start_handler(srv, conn, ctx, method, url);
    }
    if (ctx->handled == 1) /* resumed by something else than the handler: wait on */
        return MHD_YES;
    {
        enum MHD_Result ok;
        ctx->on_complete = ctx->rep->on_complete;
        ctx->on_complete_user = ctx->rep->on_complete_user;
        ok = send_reply(srv, conn, ctx->rep, ctx, method, url);
        reply_release(ctx->rep);
        free(ctx->rep);
        ctx->rep = NULL;
        return ok;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rb_http_server *srv = cls;
    req_ctx *ctx = *con_cls;
    (void)toe;
    if (!ctx)
        return;
    if (ctx->on_complete)
        ctx->on_complete(ctx->on_complete_user);
    if (ctx->rep) {
        reply_release(ctx->rep);
        free(ctx->rep);
    }
    rb_buf_release(&ctx->body);
    free(ctx);
    *con_cls = NULL;
    /* A kept-alive connection has the same time for its next request as a new one. */
    rb_http_request_deadline(srv, conn, 1);
}

const char *rb_http_req_header(rb_http_req *req, const char *name)
{
    if (!req->conn) /* rb_http_call: a request with no headers */
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *rb_http_req_query(rb_http_req *req, const char *name)
{
    if (!req->conn)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

int rb_http_call(const rb_http_route *routes, size_t nroutes, void *user, const char *method,
                 const char *path, const char *body, size_t body_len, rb_http_result *out)
{
    req_ctx *ctx = calloc(1, sizeof(*ctx));
    rb_http_reply *rep = calloc(1, sizeof(*rep));
    char *copy = malloc(body_len + 1);
    const rb_http_route *route = NULL;
    int known = 0;

    memset(out, 0, sizeof(*out));
    if (!ctx || !rep || !copy) {
        free(ctx);
        free(rep);
        free(copy);
        return -1;
    }
    if (body_len)
        memcpy(copy, body, body_len);
    copy[body_len] = '\0';
    route = route_find(routes, nroutes, method, path, ctx, &known);
    if (!route) {
        out->status = known ? 405 : 404;
    } else {
        ctx->req.method = method;
        ctx->req.path = path;
        ctx->req.body = copy;
        ctx->req.body_len = body_len;
        ctx->req.correlation_id = "local-call";
        ctx->req.nparams = ctx->nparams;
        for (int i = 0; i < ctx->nparams; i++)
            ctx->req.params[i] = ctx->param_ptr[i];
        route->handler(&ctx->req, rep, user);
        out->status = rep->set ? rep->status : 500;
        out->streamed = rep->sse != NULL;
        if (rep->sse)
            rb_chan_close(rep->sse); /* as when a client hangs up before reading */
        else if (rep->body) {
            out->body = rep->body;
            out->body_len = rep->body_len;
            rep->body = NULL;
        }
        snprintf(out->content_type, sizeof out->content_type, "%s", rep->content_type);
        if (rep->on_complete)
            rep->on_complete(rep->on_complete_user);
    }
    reply_release(rep);
    free(rep);
    free(ctx);
    free(copy);
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    rb_http_server *srv = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    rb_log(RB_LOG_DEBUG, srv->component, "libmicrohttpd: %s", msg);
}

static rb_err listen_socket(const char *addr, uint16_t port, int *fd_out, uint16_t *port_out,
                            char *err, size_t errlen)
{
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof sa;
    int one = 1;
    int fd;

    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return rb_errf(err, errlen, RB_EINVAL, "invalid bind address '%s'", addr);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rb_errf(err, errlen, RB_EIO, "cannot create socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return rb_errf(err, errlen, RB_EIO, "cannot listen on %s:%u: %s", addr, port, strerror(e));
    }
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *fd_out = fd;
    *port_out = ntohs(sa.sin_port);
    return RB_OK;
}

rb_err rb_http_server_start(const rb_http_config *cfg, rb_http_server **out, char *err,
                            size_t errlen)
{
    rb_http_server *srv = calloc(1, sizeof(*srv));
    rb_err rc;

    if (!srv)
        return RB_ENOMEM;
    srv->cfg = *cfg;
    if (!srv->cfg.bind_addr)
        srv->cfg.bind_addr = "127.0.0.1";
    if (!srv->cfg.max_body)
        srv->cfg.max_body = 1024 * 1024;
    if (srv->cfg.sse_keepalive_ms <= 0)
        srv->cfg.sse_keepalive_ms = 10000;
    if (srv->cfg.max_connections <= 0)
        srv->cfg.max_connections = DEFAULT_MAX_CONNECTIONS;
    if (srv->cfg.max_connections_per_ip <= 0)
        srv->cfg.max_connections_per_ip = DEFAULT_MAX_PER_IP;
    if (srv->cfg.request_timeout_ms <= 0)
        srv->cfg.request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
    snprintf(srv->component, sizeof srv->component, "%s", cfg->component ? cfg->component : "http");
    rb_http_fit_fd_limit(srv);
    srv->listen_fd = -1;
    srv->epfd = srv->wake_fd = -1;
    srv->conn_next_due_ms = srv->sse_next_due_ms = INT64_MAX;
    pthread_mutex_init(&srv->mu, NULL);
    rb_cond_init_monotonic(&srv->streams_cv);
    if (cfg->token && *cfg->token && !(srv->token = strdup(cfg->token))) {
        rc = RB_ENOMEM;
        goto out;
    }
    rc = listen_socket(srv->cfg.bind_addr, cfg->port, &srv->listen_fd, &srv->port, err, errlen);
    if (rc)
        goto out;
    if ((rc = rb_http_watcher_start(srv))) {
        rc = rb_errf(err, errlen, rc, "cannot start the HTTP server's watcher thread");
        goto out;
    }
    /* libmicrohttpd's own connection limit only backs ours up (rb_http_on_accept refuses first). */
    srv->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        0, rb_http_on_accept, srv, on_request, srv, MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
        rb_http_on_connection, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->cfg.max_connections + RB_HTTP_MIN_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_END);
    if (!srv->mhd) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot start HTTP server on %s:%u", srv->cfg.bind_addr,
                     srv->port);
        goto out;
    }
out:
    if (rc) {
        rb_http_watcher_stop(srv);
        if (srv->listen_fd >= 0)
            close(srv->listen_fd);
        pthread_cond_destroy(&srv->streams_cv);
        pthread_mutex_destroy(&srv->mu);
        free(srv->token);
        free(srv);
        return rc;
    }
    *out = srv;
    return RB_OK;
}

uint16_t rb_http_server_port(const rb_http_server *srv)
{
    return srv->port;
}

void rb_http_server_stop(rb_http_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->mu);
    srv->stopping = 1;
    pthread_mutex_unlock(&srv->mu);
    rb_http_sse_close_all(srv);
    /* The watcher resumes every suspended stream as it ends; the handler threads resume their
     * own connections. libmicrohttpd must find no connection suspended when it stops. */
    rb_http_watcher_stop(srv);
    pthread_mutex_lock(&srv->mu);
    while (srv->handlers > 0)
        pthread_cond_wait(&srv->streams_cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    MHD_stop_daemon(srv->mhd); /* also closes the listen socket */
    rb_http_conns_release(srv);
    pthread_cond_destroy(&srv->streams_cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->token);
    free(srv);
}

const char *rb_http_reason(long status)
{
    const char *r =
        status > 0 && status < 1000 ? MHD_get_reason_phrase_for((unsigned)status) : NULL;

    return r && *r && strcmp(r, "Unknown") != 0 ? r : "HTTP error";
}
