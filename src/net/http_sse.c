/*
 * http_sse.c - SSE responses of the HTTP server: drain an rb_chan into the socket.
 *
 * DESIGN
 * The content-reader callback runs on libmicrohttpd's I/O thread and never blocks. When it has
 * nothing to hand over (no event queued, no keep-alive due) it suspends the connection and
 * registers the stream with the watcher thread, then returns 0; a suspended connection costs
 * no thread. The watcher waits in epoll on the wake-up eventfd and, for every registered
 * stream, on the channel's eventfd (an event or the finish arrived) and the client socket; its
 * timeout is the earliest keep-alive due or request deadline (http.c). When a stream's channel
 * turns readable, its keep-alive falls due or its socket reports something, the watcher takes
 * it out of epoll and resumes the connection, and libmicrohttpd calls the reader again at once.
 * Registration happens after the suspend, and epoll is level-triggered, so an event pushed
 * between the reader's last try and the registration still wakes it. A stream is resumed only
 * after the whole batch of epoll events is looked at, so a later event of the same batch never
 * names a stream that was already freed; a registered stream cannot be freed, because
 * libmicrohttpd does not end a suspended connection.
 * There is no periodic wake-up besides the keep-alive: after keepalive_ms without output the
 * reader sends ": keep-alive".
 * A client that disconnects is noticed at once, even while the producer is silent, and the
 * channel is closed so the producer's next push fails with RB_ECLOSED. When libmicrohttpd
 * destroys the response (stream over for any reason) the channel is closed too.
 * End of input (EPOLLRDHUP) alone is not a disconnect: a client may shut down only its sending
 * side after the request (nc -N does) and still read. TCP cannot tell that half-close from a
 * full close until the server writes, so the stream then writes a keep-alive comment at once
 * as a probe: a socket that is really closed answers it with a reset, which epoll then reports
 * as EPOLLERR/EPOLLHUP, and only that ends the stream.
 *
 * A raw stream (rb_http_reply_stream) is the same reader without the framing: each event's
 * bytes go out as they are, and there is no keep-alive (a relayed body has its own format, and
 * an SSE body being relayed carries its producer's keep-alives).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
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
    struct MHD_Connection *conn;
    int watched;     /* registered with the watcher (the connection is suspended) */
    int sock_in_ep;  /* the socket is in the watcher's epoll set */
    int gone;        /* the watcher saw the client go */
    int64_t due_ms;  /* while watched: when the next keep-alive is due (INT64_MAX: never) */
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

/* Called by the reader with nothing to hand over: suspends the connection and registers the
 * stream with the watcher. 0: suspended; -1: the server is stopping. */
static int sse_suspend(sse_stream *s)
{
    rb_http_server *srv = s->srv;
    struct epoll_event ev = {.events = EPOLLIN};
    int64_t ka = s->raw ? INT64_MAX : s->last_out_ms + srv->cfg.sse_keepalive_ms;
    int wake = 0;

    pthread_mutex_lock(&srv->mu);
    if (srv->stopping || srv->epfd < 0) {
        pthread_mutex_unlock(&srv->mu);
        return -1;
    }
    pthread_mutex_unlock(&srv->mu);
    MHD_suspend_connection(s->conn);
    pthread_mutex_lock(&srv->mu);
    if (srv->stopping) {
        pthread_mutex_unlock(&srv->mu);
        MHD_resume_connection(s->conn); /* the reader is called again and sees stopping */
        return 0;
    }
    s->watched = 1;
    s->due_ms = ka;
    ev.data.ptr = s;
    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, rb_chan_fd(s->ch), &ev);
    if (s->sockfd >= 0) {
        /* Half-closed: EPOLLERR and EPOLLHUP are reported without being asked for. */
        struct epoll_event se = {.events = s->half_closed ? 0 : EPOLLIN | EPOLLRDHUP};
        se.data.ptr = (char *)s + 1;
        s->sock_in_ep = epoll_ctl(srv->epfd, EPOLL_CTL_ADD, s->sockfd, &se) == 0;
    }
    if (ka < srv->sse_next_due_ms) {
        srv->sse_next_due_ms = ka;
        wake = 1;
    }
    pthread_mutex_unlock(&srv->mu);
    if (wake)
        rb_http_watcher_wake(srv);
    return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    sse_stream *s = cls;
    int ka = s->srv->cfg.sse_keepalive_ms;

    (void)pos;
    for (;;) {
        if (s->gone) {
            rb_log(RB_LOG_DEBUG, s->srv->component, "sse client disconnected");
            rb_chan_close(s->ch);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
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
        if (!s->raw && s->last_out_ms + ka <= rb_now_ms()) {
            rb_buf_append(&s->pending, keepalive_text, sizeof keepalive_text - 1);
            continue;
        }
        if (sse_suspend(s) != 0) {
            rb_chan_close(s->ch);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        return 0;
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

struct MHD_Response *rb_http_sse_response(rb_http_server *srv, rb_chan *ch,
                                          struct MHD_Connection *conn, int sockfd, int raw)
{
    sse_stream *s = calloc(1, sizeof(*s));
    struct MHD_Response *r;

    if (!s)
        return NULL;
    s->srv = srv;
    s->ch = ch;
    s->conn = conn;
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

/* ---- the watcher thread ----------------------------------------------------------------- */

#define WATCH_BATCH 256

/* Under srv->mu: takes s out of epoll and marks it for resumption. */
static void unwatch(rb_http_server *srv, sse_stream *s)
{
    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, rb_chan_fd(s->ch), NULL);
    if (s->sock_in_ep)
        epoll_ctl(srv->epfd, EPOLL_CTL_DEL, s->sockfd, NULL);
    s->sock_in_ep = 0;
    s->watched = 0;
}

typedef struct resume_list {
    struct MHD_Connection **c;
    size_t n, cap;
} resume_list;

static void resume_add(resume_list *l, struct MHD_Connection *c)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct MHD_Connection **p = realloc(l->c, cap * sizeof(*p));
        if (!p) {
            /* Out of memory: resume this one now (the lock is held, libmicrohttpd's own is
             * independent of it). */
            MHD_resume_connection(c);
            return;
        }
        l->c = p;
        l->cap = cap;
    }
    l->c[l->n++] = c;
}

static void resume_all(resume_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        MHD_resume_connection(l->c[i]);
    l->n = 0;
}

/* Under srv->mu: resumes streams whose keep-alive is due (all of them when all is set) and
 * returns the next due time. */
static int64_t sweep_streams(rb_http_server *srv, int64_t now, int all, resume_list *l)
{
    int64_t next = INT64_MAX;

    for (sse_stream *s = srv->streams; s; s = s->next) {
        if (!s->watched)
            continue;
        if (all || s->due_ms <= now) {
            unwatch(srv, s);
            resume_add(l, s->conn);
        } else if (s->due_ms < next) {
            next = s->due_ms;
        }
    }
    return next;
}

static void *watcher_main(void *arg)
{
    rb_http_server *srv = arg;
    struct epoll_event evs[WATCH_BATCH];
    resume_list l = {0};

    rb_thread_set_name("http-watcher");
    for (;;) {
        int64_t now = rb_now_ms(), due;
        int timeout, n, stop;

        pthread_mutex_lock(&srv->mu);
        stop = srv->stopping;
        due = srv->sse_next_due_ms < srv->conn_next_due_ms ? srv->sse_next_due_ms
                                                           : srv->conn_next_due_ms;
        pthread_mutex_unlock(&srv->mu);
        if (stop)
            break;
        timeout = due == INT64_MAX ? -1 : due <= now ? 0 : (int)(due - now + 1);
        n = epoll_wait(srv->epfd, evs, WATCH_BATCH, timeout);
        if (n < 0 && errno != EINTR) {
            rb_log(RB_LOG_WARN, srv->component, "watcher: epoll_wait: %s", strerror(errno));
            break;
        }
        pthread_mutex_lock(&srv->mu);
        for (int i = 0; i < n; i++) {
            uintptr_t tag = (uintptr_t)evs[i].data.ptr;
            sse_stream *s = (sse_stream *)(tag & ~(uintptr_t)1);
            if (!s) {
                uint64_t v;
                ssize_t r = read(srv->wake_fd, &v, sizeof v);
                (void)r;
                continue;
            }
            if (!s->watched) /* already taken out earlier in this batch */
                continue;
            if ((tag & 1) && s->sockfd >= 0 && client_gone(s, (short)evs[i].events))
                s->gone = 1;
            unwatch(srv, s);
            resume_add(&l, s->conn);
        }
        now = rb_now_ms();
        if (now >= srv->sse_next_due_ms)
            srv->sse_next_due_ms = sweep_streams(srv, now, 0, &l);
        if (now >= srv->conn_next_due_ms)
            srv->conn_next_due_ms = rb_http_sweep_deadlines(srv, now);
        pthread_mutex_unlock(&srv->mu);
        resume_all(&l);
    }
    /* Stopping: every suspended stream is resumed; its reader sees the closed channel. */
    pthread_mutex_lock(&srv->mu);
    sweep_streams(srv, 0, 1, &l);
    srv->sse_next_due_ms = INT64_MAX;
    pthread_mutex_unlock(&srv->mu);
    resume_all(&l);
    free(l.c);
    return NULL;
}

void rb_http_watcher_wake(rb_http_server *srv)
{
    uint64_t one = 1;
    ssize_t w = write(srv->wake_fd, &one, sizeof one);
    (void)w;
}

rb_err rb_http_watcher_start(rb_http_server *srv)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->epfd < 0 || srv->wake_fd < 0 ||
        epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->wake_fd, &ev) != 0 ||
        pthread_create(&srv->watcher, NULL, watcher_main, srv) != 0) {
        rb_http_watcher_stop(srv);
        return RB_EIO;
    }
    srv->watcher_started = 1;
    return RB_OK;
}

void rb_http_watcher_stop(rb_http_server *srv)
{
    if (srv->watcher_started) {
        pthread_mutex_lock(&srv->mu);
        srv->stopping = 1;
        pthread_mutex_unlock(&srv->mu);
        rb_http_watcher_wake(srv);
        pthread_join(srv->watcher, NULL);
        srv->watcher_started = 0;
    }
    pthread_mutex_lock(&srv->mu);
    if (srv->epfd >= 0)
        close(srv->epfd);
    srv->epfd = -1;
    pthread_mutex_unlock(&srv->mu);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    srv->wake_fd = -1;
}
