/*
 * http_internal.h - shared between the HTTP server core (http.c), its SSE responses
 * (http_sse.c) and its connection accounting (http_conn.c). Not part of rb_net's public
 * interface.
 */
#ifndef RB_HTTP_INTERNAL_H
#define RB_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "rb_http.h"

typedef struct sse_stream sse_stream;
typedef struct conn_info conn_info;
typedef struct ip_count ip_count;

#define RB_HTTP_IP_BUCKETS 1024
#define RB_HTTP_MIN_CONNECTIONS 16 /* the least a too-low open-file limit leaves */

struct rb_http_server {
    struct MHD_Daemon *mhd;
    rb_http_config cfg;
    char *token; /* owned copy; NULL when auth is off */
    char component[32];
    uint16_t port;
    int listen_fd;
    pthread_mutex_t mu;        /* guards every field below */
    pthread_cond_t streams_cv; /* signalled when a stream or a handler thread ends */
    sse_stream *streams;       /* active SSE responses (doubly linked) */
    int nstreams;
    int stopping;
    int handlers; /* handler threads running */
    /* connections (http.c) */
    conn_info *conns; /* every open connection (doubly linked) */
    int nconns;
    ip_count *ips[RB_HTTP_IP_BUCKETS]; /* open connections per client address */
    long refused, timed_out;
    int64_t last_refused_ms;
    int64_t conn_next_due_ms; /* earliest request deadline, INT64_MAX when none is armed */
    /* the watcher thread (http_sse.c): suspended streams and request deadlines */
    pthread_t watcher;
    int watcher_started;
    int epfd;
    int wake_fd;
    int64_t sse_next_due_ms; /* earliest keep-alive of a suspended stream, INT64_MAX: none */
};

/* Builds the MHD response streaming ch to the connection (socket fd sockfd): as SSE events, or
 * with raw set as the events' bytes themselves (no framing, no keep-alive). NULL on ENOMEM. */
struct MHD_Response *rb_http_sse_response(rb_http_server *srv, rb_chan *ch,
                                          struct MHD_Connection *conn, int sockfd, int raw);
/* Closes every active stream's channel so its reader ends. */
void rb_http_sse_close_all(rb_http_server *srv);
/* Starts and stops the watcher thread. */
rb_err rb_http_watcher_start(rb_http_server *srv);
void rb_http_watcher_stop(rb_http_server *srv);
/* Wakes the watcher (a deadline was armed while none was). */
void rb_http_watcher_wake(rb_http_server *srv);
/* Called by the watcher under srv->mu: closes every connection whose request deadline passed
 * and returns the next deadline (INT64_MAX when none is armed). */
int64_t rb_http_sweep_deadlines(rb_http_server *srv, int64_t now_ms);

/* Connection accounting (http_conn.c). */
/* libmicrohttpd's accept policy: MHD_NO when a connection limit is reached. */
enum MHD_Result rb_http_on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/* libmicrohttpd's connection notification: counts a connection in and out. */
void rb_http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code);
/* Arms (on) or disarms the connection's request deadline. */
void rb_http_request_deadline(rb_http_server *srv, struct MHD_Connection *conn, int on);
/* Raises the soft open-file limit for cfg.max_connections, or lowers that limit to fit. */
void rb_http_fit_fd_limit(rb_http_server *srv);
/* Frees the per-address counts (the server is stopped). */
void rb_http_conns_release(rb_http_server *srv);

#endif
