/*
 * rb_bcast.h - one producer's progress events fanned out to any number of SSE subscribers,
 * with the latest state replayed to late subscribers.
 *
 *     rb_bcast *b = rb_bcast_new();
 *     rb_chan *ch = rb_bcast_subscribe(b);                // in an HTTP handler
 *     rb_http_reply_sse(reply, ch); rb_chan_unref(ch);
 *     rb_bcast_publish(b, "{\"stage\":\"loading\",\"layers_loaded\":3}");  // any thread
 *     rb_bcast_finish(b, "{\"stage\":\"ready\"}");        // final event, then [DONE]
 *     rb_bcast_free(b);
 *
 * Progress events are snapshots of a state, so a subscriber whose channel is full misses an
 * intermediate one rather than slowing the producer; the final event and [DONE] are never
 * dropped (the channel reserves room for them). A subscriber that arrives after the finish
 * receives the final event and [DONE] at once. Past 256 open subscriptions a new subscriber
 * receives only the latest event, and its stream ends without [DONE].
 */
#ifndef RB_BCAST_H
#define RB_BCAST_H

#include "rb_sse.h"

typedef struct rb_bcast rb_bcast;

rb_bcast *rb_bcast_new(void);
/* Finishes open subscriptions (without a final event if none was given) and frees. */
void rb_bcast_free(rb_bcast *b);
/* New channel (caller owns one reference) holding the latest event, or the final event and
 * [DONE] when finished. NULL on ENOMEM. */
rb_chan *rb_bcast_subscribe(rb_bcast *b);
/* Stores event as the latest state and offers it to every subscriber. */
void rb_bcast_publish(rb_bcast *b, const char *event);
/* Publishes the final event, then [DONE], and ends every subscription. Later calls are
 * ignored. */
void rb_bcast_finish(rb_bcast *b, const char *final_event);
/* 1 once finished. */
int rb_bcast_finished(rb_bcast *b);

#endif
