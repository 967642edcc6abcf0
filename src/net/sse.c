/*
 * sse.c - the SSE event channel and the SSE frame parser.
 *
 * DESIGN
 * The channel is a bounded ring of event copies under one mutex. The producer blocks on a
 * condition variable while the ring is full. The consumer never blocks on the mutex for long:
 * it waits on an eventfd that every push and the finish make readable, so an HTTP stream can
 * poll that fd together with its socket and notice a disconnect without busy-waiting.
 * Order of a consumer's wait: drain the fd, try to pop, and only then poll; a push that lands
 * between the try and the poll has already made the fd readable, so no wake-up is lost.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "rb_sse.h"
#include "rb_util.h"

typedef struct chan_event {
    char *data;
    size_t len;
} chan_event;

struct rb_chan {
    pthread_mutex_t mu;
    pthread_cond_t not_full;
    atomic_int refs;
    chan_event *ring;
    size_t cap, head, count;
    int finished; /* producer is done */
    int closed;   /* consumer is gone */
    int drained;  /* a pop found the ring empty after the last event was taken */
    int efd;
};

rb_chan *rb_chan_new(size_t max_events)
{
    rb_chan *ch = calloc(1, sizeof(*ch));

    if (!ch)
        return NULL;
    if (max_events == 0)
        max_events = 1;
    ch->ring = calloc(max_events, sizeof(*ch->ring));
    ch->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!ch->ring || ch->efd < 0) {
        if (ch->efd >= 0)
            close(ch->efd);
        free(ch->ring);
        free(ch);
        return NULL;
    }
    ch->cap = max_events;
    atomic_init(&ch->refs, 1);
    pthread_mutex_init(&ch->mu, NULL);
    rb_cond_init_monotonic(&ch->not_full);
    return ch;
}

void rb_chan_ref(rb_chan *ch)
{
    atomic_fetch_add(&ch->refs, 1);
}

void rb_chan_unref(rb_chan *ch)
{
    if (!ch || atomic_fetch_sub(&ch->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ch->count; i++)
        free(ch->ring[(ch->head + i) % ch->cap].data);
    free(ch->ring);
    close(ch->efd);
    pthread_cond_destroy(&ch->not_full);
    pthread_mutex_destroy(&ch->mu);
    free(ch);
}

static void wake_consumer(rb_chan *ch)
{
    uint64_t one = 1;
    /* The counter cannot overflow in practice; EAGAIN would only mean it is readable anyway. */
    ssize_t w = write(ch->efd, &one, sizeof one);
    (void)w;
}

rb_err rb_chan_push(rb_chan *ch, const char *data, size_t len, int timeout_ms)
{
    struct timespec until;
    char *copy;
    rb_err rc = RB_OK;

    if (len == (size_t)-1)
        len = strlen(data);
    if (len > RB_SSE_MAX_EVENT)
        return RB_ETOOBIG;
    copy = malloc(len + 1);
    if (!copy)
        return RB_ENOMEM;
    memcpy(copy, data, len);
    copy[len] = '\0';
    if (timeout_ms >= 0)
        until = rb_deadline_ms(timeout_ms);

    pthread_mutex_lock(&ch->mu);
    while (!ch->closed && !ch->finished && ch->count == ch->cap) {
        int w = timeout_ms < 0 ? pthread_cond_wait(&ch->not_full, &ch->mu)
                               : pthread_cond_timedwait(&ch->not_full, &ch->mu, &until);
        if (w == ETIMEDOUT) {
            rc = RB_ETIMEDOUT;
            break;
        }
    }
    if (!rc && (ch->closed || ch->finished))
        rc = RB_ECLOSED;
    if (!rc) {
        ch->ring[(ch->head + ch->count) % ch->cap] = (chan_event){copy, len};
        ch->count++;
        copy = NULL;
    }
    pthread_mutex_unlock(&ch->mu);
    free(copy);
    if (!rc)
        wake_consumer(ch);
    return rc;
}

rb_err rb_chan_pushf(rb_chan *ch, const char *fmt, ...)
{
    char small[1024], *p = small;
    va_list ap;
    int n;
    rb_err rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RB_EINVAL;
    if ((size_t)n >= sizeof small) {
        p = malloc((size_t)n + 1);
        if (!p)
            return RB_ENOMEM;
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    rc = rb_chan_push(ch, p, (size_t)n, 1000);
    if (p != small)
        free(p);
    return rc;
}

void rb_chan_finish(rb_chan *ch)
{
    pthread_mutex_lock(&ch->mu);
    ch->finished = 1;
    pthread_cond_broadcast(&ch->not_full);
    pthread_mutex_unlock(&ch->mu);
    wake_consumer(ch);
}

void rb_chan_close(rb_chan *ch)
{
    pthread_mutex_lock(&ch->mu);
    ch->closed = 1;
    pthread_cond_broadcast(&ch->not_full);
    pthread_mutex_unlock(&ch->mu);
    wake_consumer(ch);
}

int rb_chan_is_closed(rb_chan *ch)
{
    int c;
    pthread_mutex_lock(&ch->mu);
    c = ch->closed;
    pthread_mutex_unlock(&ch->mu);
    return c;
}

int rb_chan_drained(rb_chan *ch)
{
    int d;
    pthread_mutex_lock(&ch->mu);
    d = ch->count == 0 && ch->drained;
    pthread_mutex_unlock(&ch->mu);
    return d;
}

size_t rb_chan_depth(rb_chan *ch)
{
    size_t n;
    pthread_mutex_lock(&ch->mu);
    n = ch->count;
    pthread_mutex_unlock(&ch->mu);
    return n;
}

int rb_chan_fd(rb_chan *ch)
{
    return ch->efd;
}

void rb_chan_fd_drain(rb_chan *ch)
{
    uint64_t v;
    ssize_t r = read(ch->efd, &v, sizeof v);
    (void)r;
}

rb_err rb_chan_trypop(rb_chan *ch, rb_buf *out)
{
    chan_event ev = {0};
    rb_err rc;

    pthread_mutex_lock(&ch->mu);
    if (ch->count) {
        ev = ch->ring[ch->head];
        ch->head = (ch->head + 1) % ch->cap;
        ch->count--;
        ch->drained = 0;
        pthread_cond_signal(&ch->not_full);
        rc = RB_OK;
    } else {
        ch->drained = 1;
        rc = ch->finished || ch->closed ? RB_ECLOSED : RB_EBUSY;
    }
    pthread_mutex_unlock(&ch->mu);
    if (rc == RB_OK) {
        rb_buf_reset(out);
        rc = rb_buf_append(out, ev.data, ev.len);
        free(ev.data);
    }
    return rc;
}

rb_err rb_chan_pop(rb_chan *ch, rb_buf *out, int timeout_ms)
{
    int64_t end = timeout_ms < 0 ? INT64_MAX : rb_now_ms() + timeout_ms;

    for (;;) {
        struct pollfd pfd = {.fd = ch->efd, .events = POLLIN};
        int64_t left;
        rb_err rc;

        rb_chan_fd_drain(ch);
        rc = rb_chan_trypop(ch, out);
        if (rc != RB_EBUSY)
            return rc;
        left = end - rb_now_ms();
        if (left <= 0)
            return RB_ETIMEDOUT;
        if (poll(&pfd, 1, timeout_ms < 0 ? -1 : (int)(left > INT32_MAX ? INT32_MAX : left)) < 0 &&
            errno != EINTR)
            return RB_EIO;
    }
}

rb_err rb_sse_format(rb_buf *out, const char *data, size_t len)
{
    const char *p = data, *end = data + len;
    rb_err rc = RB_OK;

    /* Each line of the payload becomes its own "data:" line; the reader joins them with \n. */
    while (!rc) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        rc = rb_buf_append(out, "data: ", 6);
        if (!rc)
            rc = rb_buf_append(out, p, (size_t)(stop - p));
        if (!rc)
            rc = rb_buf_append(out, "\n", 1);
        if (!nl)
            break;
        p = nl + 1;
    }
    if (!rc)
        rc = rb_buf_append(out, "\n", 1);
    return rc;
}

/* ---- frame parser ---------------------------------------------------------------------- */

void rb_sse_parser_init(rb_sse_parser *p, size_t max_line, rb_sse_event_fn fn, void *user)
{
    memset(p, 0, sizeof(*p));
    p->max_line = max_line;
    rb_buf_init(&p->line, max_line);
    rb_buf_init(&p->data, RB_SSE_MAX_EVENT);
    rb_buf_init(&p->event, 256);
    p->on_event = fn;
    p->user = user;
}

void rb_sse_parser_release(rb_sse_parser *p)
{
    rb_buf_release(&p->line);
    rb_buf_release(&p->data);
    rb_buf_release(&p->event);
}

/* Handles one complete line (without its end). */
static rb_err handle_line(rb_sse_parser *p, const char *line, size_t n)
{
    const char *colon, *value;
    size_t flen, vlen;
    rb_err rc = RB_OK;

    if (n == 0) {
        /* Blank line: dispatch the event if it had data. */
        if (p->has_data) {
            int stop = p->on_event(p->user, p->event.len ? p->event.data : "message",
                                   p->data.data ? p->data.data : "", p->data.len);
            rb_buf_reset(&p->data);
            rb_buf_reset(&p->event);
            p->has_data = 0;
            if (stop)
                return RB_ECANCELED;
        }
        rb_buf_reset(&p->event);
        return RB_OK;
    }
    if (line[0] == ':') {
        p->comments++;
        return RB_OK;
    }
    colon = memchr(line, ':', n);
    flen = colon ? (size_t)(colon - line) : n;
    value = colon ? colon + 1 : line + n;
    vlen = colon ? n - flen - 1 : 0;
    if (vlen && *value == ' ')
        value++, vlen--;
    if (flen == 4 && memcmp(line, "data", 4) == 0) {
        if (p->has_data)
            rc = rb_buf_append(&p->data, "\n", 1);
        if (!rc)
            rc = rb_buf_append(&p->data, value, vlen);
        p->has_data = 1;
    } else if (flen == 5 && memcmp(line, "event", 5) == 0) {
        rb_buf_reset(&p->event);
        rc = rb_buf_append(&p->event, value, vlen);
    }
    /* "id" and "retry" are accepted and ignored: rbee streams are not resumable. */
    return rc;
}

rb_err rb_sse_parser_feed(rb_sse_parser *p, const char *bytes, size_t n)
{
    size_t i = 0;
    rb_err rc;

    if (!p->bom_done && n) {
        /* A UTF-8 BOM may only start the stream; it can arrive split over feeds. */
        static const char bom[3] = {'\xEF', '\xBB', '\xBF'};
        while (i < n && p->line.len + i < 3 && bytes[i] == bom[p->line.len + i])
            i++;
        if (p->line.len + i < 3 && i == n) {
            rc = rb_buf_append(&p->line, bytes, n);
            return rc;
        }
        if (p->line.len + i == 3) {
            rb_buf_reset(&p->line);
        } else {
            i = 0; /* not a BOM: keep what was held as ordinary bytes */
        }
        p->bom_done = 1;
    }
    for (; i < n; i++) {
        char c = bytes[i];
        if (p->saw_cr) {
            p->saw_cr = 0;
            if (c == '\n')
                continue; /* the LF of a CRLF pair */
        }
        if (c == '\r' || c == '\n') {
            p->saw_cr = c == '\r';
            rc = handle_line(p, p->line.data ? p->line.data : "", p->line.len);
            rb_buf_reset(&p->line);
            if (rc)
                return rc;
            continue;
        }
        /* Copy the run of ordinary bytes at once. */
        size_t j = i;
        while (j < n && bytes[j] != '\r' && bytes[j] != '\n')
            j++;
        rc = rb_buf_append(&p->line, bytes + i, j - i);
        if (rc)
            return rc;
        i = j - 1;
    }
    return RB_OK;
}
