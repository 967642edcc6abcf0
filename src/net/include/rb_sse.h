/*
 * rb_sse.h - server-sent events: the event channel between a producer thread and an HTTP
 * response, and the frame parser used by clients.
 *
 * Channel (one producer side, one consumer side, reference-counted):
 *
 *     rb_chan *ch = rb_chan_new(64);                 // at most 64 queued events
 *     rb_http_reply_sse(reply, ch);                  // the HTTP layer takes its own reference
 *     // any thread:
 *     if (rb_chan_push(ch, "{\"type\":\"token\"}", -1, 1000) == RB_ECLOSED) stop();  // client gone
 *     rb_chan_push(ch, "[DONE]", -1, 1000);
 *     rb_chan_finish(ch);                            // consumer drains, then ends the stream
 *     rb_chan_unref(ch);
 *
 * The consumer waits on rb_chan_fd() (readable when an event or the finish is pending) so it
 * never busy-waits and can poll a socket at the same time. When the consumer goes away it calls
 * rb_chan_close(): the next push (and every later one) returns RB_ECLOSED, so the producer
 * learns of a disconnect within one push.
 */
#ifndef RB_SSE_H
#define RB_SSE_H

#include <stddef.h>
#include "rb_buf.h"
#include "rb_err.h"

#define RB_SSE_MAX_EVENT (256 * 1024) /* bytes of one event's data */

typedef struct rb_chan rb_chan;

/* New channel holding at most max_events undelivered events; refcount 1. NULL on ENOMEM. */
rb_chan *rb_chan_new(size_t max_events);
void rb_chan_ref(rb_chan *ch);
/* Drops a reference; frees on the last. NULL-safe. */
void rb_chan_unref(rb_chan *ch);

/* Producer: queues a copy of data (len bytes, or strlen when len is (size_t)-1). Blocks while
 * the channel is full for up to timeout_ms (-1: until space or close). Returns RB_OK,
 * RB_ECLOSED (consumer gone, or already finished), RB_ETIMEDOUT, RB_ETOOBIG, RB_ENOMEM. */
rb_err rb_chan_push(rb_chan *ch, const char *data, size_t len, int timeout_ms);
/* Producer: printf-style push (uses a 1000 ms full-channel timeout). */
rb_err rb_chan_pushf(rb_chan *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Producer: no more events. The consumer drains what is queued, then sees the end. */
void rb_chan_finish(rb_chan *ch);

/* Consumer: takes the next event into out (replacing its contents), waiting at most timeout_ms
 * (-1 forever). Returns RB_OK, RB_ETIMEDOUT, or RB_ECLOSED once nothing is queued and the
 * channel is finished or closed (events queued before a close are still handed out). */
rb_err rb_chan_pop(rb_chan *ch, rb_buf *out, int timeout_ms);
/* Consumer: non-blocking variant: RB_OK, RB_EBUSY (nothing yet), RB_ECLOSED (ended). */
rb_err rb_chan_trypop(rb_chan *ch, rb_buf *out);
/* Consumer: fd that polls readable when trypop may have something. Valid until the last unref. */
int rb_chan_fd(rb_chan *ch);
/* Consumer: read the fd empty before checking again (call before trypop in a poll loop). */
void rb_chan_fd_drain(rb_chan *ch);
/* Consumer gone (client disconnected): pending and future pushes fail with RB_ECLOSED. */
void rb_chan_close(rb_chan *ch);
/* 1 once rb_chan_close() was called. */
int rb_chan_is_closed(rb_chan *ch);
/* Events queued now. */
size_t rb_chan_depth(rb_chan *ch);
/* 1 when the consumer came back for more after taking the last queued event and found none.
 * An SSE response asks only once it has handed the previous event to the socket, so this
 * says every event pushed so far has left the process. */
int rb_chan_drained(rb_chan *ch);

/* Formats one event as SSE text into out (appending): "data: <line>\n" per line, then "\n". */
rb_err rb_sse_format(rb_buf *out, const char *data, size_t len);

/*
 * Frame parser: feed any slicing of an event stream; it calls on_event once per complete event
 * (at its blank line). Handles LF, CRLF and CR line ends, comments (":..."), multi-line data
 * (joined with "\n"), "event:" names, and a leading BOM. Lines longer than max_line fail with
 * RB_ETOOBIG.
 */
typedef int (*rb_sse_event_fn)(void *user, const char *event, const char *data, size_t len);

typedef struct rb_sse_parser {
    rb_buf line;  /* the unfinished line */
    rb_buf data;  /* the event's data so far */
    rb_buf event; /* the event's name */
    int has_data;
    int saw_cr; /* last byte was CR: a following LF belongs to it */
    int bom_done;
    size_t max_line;
    rb_sse_event_fn on_event;
    void *user;
    long comments; /* comment lines seen (keep-alives) */
} rb_sse_parser;

void rb_sse_parser_init(rb_sse_parser *p, size_t max_line, rb_sse_event_fn fn, void *user);
void rb_sse_parser_release(rb_sse_parser *p);
/* Returns RB_OK, RB_ETOOBIG, RB_ENOMEM, or RB_ECANCELED when on_event returned non-zero. */
rb_err rb_sse_parser_feed(rb_sse_parser *p, const char *bytes, size_t n);

#endif
