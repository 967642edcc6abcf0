/*
 * http_internal.h - shared between the HTTP server core (http.c) and its SSE responses
 * (http_sse.c). Not part of rb_net's public interface.
 */
#ifndef RB_HTTP_INTERNAL_H
#define RB_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>

#include "rb_http.h"

typedef struct sse_stream sse_stream;

struct rb_http_server {
    struct MHD_Daemon *mhd;
    rb_http_config cfg;
    char *token; /* owned copy; NULL when auth is off */
    char component[32];
    uint16_t port;
    int listen_fd;
    pthread_mutex_t mu;        /* guards streams and nstreams */
    pthread_cond_t streams_cv; /* signalled when a stream ends */
    sse_stream *streams;       /* active SSE responses (doubly linked) */
    int nstreams;
    int stopping;
};

/* Builds the MHD response streaming ch to the connection's socket fd: as SSE events, or with
 * raw set as the events' bytes themselves (no framing, no keep-alive). NULL on ENOMEM. */
struct MHD_Response *rb_http_sse_response(rb_http_server *srv, rb_chan *ch, int sockfd, int raw);
/* Closes every active stream's channel so its reader ends. */
void rb_http_sse_close_all(rb_http_server *srv);

#endif
