/*
 * http_sse.c - SSE responses of the HTTP server: drain an rb_chan into the socket.
 *
 * DESIGN
 * The server runs one thread per connection, so the content-reader callback may block. It
 * waits in poll() on two descriptors: the channel's eventfd (an event or the finish arrived)
 * and the client socket. There is no periodic wake-up besides the keep-alive: after
 * keepalive_ms without output it sends ": keep-alive".
 * A client that disconnects is noticed at once, even while the producer is silent, and the
 * channel is closed so the producer's next push fails with RB_ECLOSED. When libmicrohttpd
 * destroys the response (stream over for any reason) the channel is closed too.
 * End of input (POLLRDHUP) alone is not a disconnect: a client may shut down only its sending
 * side after the request (nc -N does) and still read. TCP cannot tell that half-close from a
 * full close until the server writes, so the stream then writes a keep-alive comment at once
 * as a probe: a socket that is really closed answers it with a reset, which the next poll()
 * reports as POLLERR/POLLHUP, and only that ends the stream.
 *
 * A raw stream (rb_http_reply_stream) is the same reader without the framing: each event's
 * bytes go out as they are, and there is no keep-alive (a relayed body has its own format, and
 * an SSE body being relayed carries its producer's keep-alives).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "http_internal.h"
#include "rb_log.h"
#include "rb_util.h"

struct sse_stream {
    rb_http_server *srv;
    rb_chan *ch;
    int sockfd;      /* -1: not watched (the client sent bytes we will not read) */
    int half_closed; /* the client sent its FIN: watch only for errors and hang-ups */
    rb_buf pending;  /* formatted text not yet handed to libmicrohttpd */
    size_t off;
    rb_buf ev;
    int64_t last_out_ms;
    int raw; /* events are body bytes, not SSE data */
    sse_stream *prev, *next;
};

static const char keepalive_text[] = ": keep-alive\n\n";

/* Returns 1 when the client has gone away. On a half-close it queues the probe (see DESIGN)
 * and returns 0; a raw stream cannot carry a comment, so there the next body bytes written
 * are the probe. */
static int client_gone(sse_stream *s, short revents)
{
    char c;
    ssize_t r;

    if (revents & (POLLHUP | POLLERR | POLLNVAL))
        return 1;
    if (!(revents & (POLLIN | POLLRDHUP)))
        return 0;
    r = recv(s->sockfd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return 1;
    if (r == 0 || (revents & POLLRDHUP)) {
        s->half_closed = 1;
        if (!s->raw)
            rb_buf_append(&s->pending, keepalive_text, sizeof keepalive_text - 1);
        return 0;
    }
    /* The client sent data (a pipelined request): stop watching to avoid spinning. */
    s->sockfd = -1;
    return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    sse_stream *s = cls;
    int ka = s->srv->cfg.sse_keepalive_ms;

    (void)pos;
    for (;;) {
        if (s->off < s->pending.len) {
            size_t n = s->pending.len - s->off;
            if (n > max)
                n = max;
            memcpy(buf, s->pending.data + s->off, n);
            s->off += n;
            s->last_out_ms = rb_now_ms();
            return (ssize_t)n;
        }
        rb_buf_reset(&s->pending);
        s->off = 0;

        rb_chan_fd_drain(s->ch);
        rb_err rc = rb_chan_trypop(s->ch, &s->ev);
        if (rc == RB_OK) {
            if (s->raw ? rb_buf_append(&s->pending, s->ev.data, s->ev.len)
                       : rb_sse_format(&s->pending, s->ev.data, s->ev.len))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        if (rc != RB_EBUSY)
            return MHD_CONTENT_READER_END_OF_STREAM;

        int64_t wait = s->raw ? -1 : s->last_out_ms + ka - rb_now_ms();
        if (!s->raw && wait <= 0) {
            rb_buf_append(&s->pending, keepalive_text, sizeof keepalive_text - 1);
            continue;
        }
        struct pollfd pfd[2] = {
            {.fd = rb_chan_fd(s->ch), .events = POLLIN},
            {.fd = s->sockfd, .events = s->half_closed ? 0 : POLLIN | POLLRDHUP},
        };
        int n = poll(pfd, s->sockfd >= 0 ? 2 : 1, (int)wait);
        if (n < 0 && errno != EINTR)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (n > 0 && s->sockfd >= 0 && client_gone(s, pfd[1].revents)) {
            rb_log(RB_LOG_DEBUG, s->srv->component, "sse client disconnected");
            rb_chan_close(s->ch);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void sse_free(void *cls)
{
    sse_stream *s = cls;
    rb_http_server *srv = s->srv;

    pthread_mutex_lock(&srv->mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->nstreams--;
    pthread_cond_broadcast(&srv->streams_cv);
    pthread_mutex_unlock(&srv->mu);

    /* Whatever ended the response, nobody reads this channel any more. */
    rb_chan_close(s->ch);
    rb_chan_unref(s->ch);
    rb_buf_release(&s->pending);
    rb_buf_release(&s->ev);
    free(s);
}

struct MHD_Response *rb_http_sse_response(rb_http_server *srv, rb_chan *ch, int sockfd, int raw)
{
    sse_stream *s = calloc(1, sizeof(*s));
    struct MHD_Response *r;

    if (!s)
        return NULL;
    s->srv = srv;
    s->ch = ch;
    s->sockfd = sockfd;
    s->raw = raw;
    rb_buf_init(&s->pending, RB_SSE_MAX_EVENT * 2);
    rb_buf_init(&s->ev, RB_SSE_MAX_EVENT);
    s->last_out_ms = rb_now_ms();
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, s, sse_free);
    if (!r) {
        rb_buf_release(&s->pending);
        rb_buf_release(&s->ev);
        free(s);
        return NULL;
    }
    rb_chan_ref(ch);
    pthread_mutex_lock(&srv->mu);
    s->next = srv->streams;
    if (s->next)
        s->next->prev = s;
    srv->streams = s;
    srv->nstreams++;
    pthread_mutex_unlock(&srv->mu);
    return r;
}

void rb_http_sse_close_all(rb_http_server *srv)
{
    rb_chan **chans = NULL;
    int n = 0;

    /* Take references under the server lock, close outside it: never two locks at once. */
    pthread_mutex_lock(&srv->mu);
    chans = calloc((size_t)srv->nstreams + 1, sizeof(*chans));
    for (sse_stream *s = srv->streams; s && chans; s = s->next) {
        rb_chan_ref(s->ch);
        chans[n++] = s->ch;
    }
    pthread_mutex_unlock(&srv->mu);
    for (int i = 0; i < n; i++) {
        rb_chan_close(chans[i]);
        rb_chan_unref(chans[i]);
    }
    free(chans);
}

int rb_http_server_drain(rb_http_server *srv, int timeout_ms)
{
    struct timespec until;
    int n;

    until = rb_deadline_ms(timeout_ms);
    pthread_mutex_lock(&srv->mu);
    while (srv->nstreams > 0)
        if (pthread_cond_timedwait(&srv->streams_cv, &srv->mu, &until) != 0)
            break;
    n = srv->nstreams;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

int rb_http_server_active_streams(rb_http_server *srv)
{
    int n;
    pthread_mutex_lock(&srv->mu);
    n = srv->nstreams;
    pthread_mutex_unlock(&srv->mu);
    return n;
}
