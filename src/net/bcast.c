/*
 * bcast.c - fan-out of progress events to SSE subscribers with replay of the latest state.
 *
 * The subscriber list is copied (with references) under the lock and the pushes happen
 * outside it, so a slow subscriber never holds the broadcaster's lock and no two locks are
 * ever held together.
 */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "rb_bcast.h"

#define SUB_QUEUE 64 /* events a subscriber may lag behind */
#define MAX_SUBS 256

struct rb_bcast {
    pthread_mutex_t mu;
    rb_chan *subs[MAX_SUBS];
    int nsubs;
    char *latest; /* owned */
    int finished;
};

rb_bcast *rb_bcast_new(void)
{
    rb_bcast *b = calloc(1, sizeof(*b));
    if (b)
        pthread_mutex_init(&b->mu, NULL);
    return b;
}

void rb_bcast_free(rb_bcast *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->nsubs; i++) {
        rb_chan_finish(b->subs[i]);
        rb_chan_unref(b->subs[i]);
    }
    free(b->latest);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* Takes a reference to every subscriber (refcounts are atomic: no channel lock is taken). */
static int snapshot(rb_bcast *b, rb_chan **out)
{
    for (int i = 0; i < b->nsubs; i++) {
        rb_chan_ref(b->subs[i]);
        out[i] = b->subs[i];
    }
    return b->nsubs;
}

/* Forgets subscribers whose client left (seen by a failed push). */
static void prune(rb_bcast *b, rb_chan *const *gone, int ngone)
{
    rb_chan *drop[MAX_SUBS];
    int ndrop = 0;

    if (!ngone)
        return;
    pthread_mutex_lock(&b->mu);
    for (int g = 0; g < ngone; g++)
        for (int i = 0; i < b->nsubs; i++)
            if (b->subs[i] == gone[g]) {
                drop[ndrop++] = b->subs[i];
                b->subs[i] = b->subs[--b->nsubs];
                break;
            }
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < ndrop; i++)
        rb_chan_unref(drop[i]);
}

rb_chan *rb_bcast_subscribe(rb_bcast *b)
{
    rb_chan *ch = rb_chan_new(SUB_QUEUE + 2);
    int finished, added = 0;

    if (!ch)
        return NULL;
    pthread_mutex_lock(&b->mu);
    finished = b->finished;
    if (b->latest)
        rb_chan_push(ch, b->latest, (size_t)-1, 0);
    if (!finished && b->nsubs < MAX_SUBS) {
        rb_chan_ref(ch);
        b->subs[b->nsubs++] = ch;
        added = 1;
    }
    pthread_mutex_unlock(&b->mu);
    if (finished || !added) {
        if (finished)
            rb_chan_push(ch, "[DONE]", (size_t)-1, 0);
        rb_chan_finish(ch);
    }
    return ch;
}

void rb_bcast_publish(rb_bcast *b, const char *event)
{
    rb_chan *subs[MAX_SUBS];
    int n;
    char *copy = strdup(event);

    pthread_mutex_lock(&b->mu);
    if (b->finished || !copy) {
        pthread_mutex_unlock(&b->mu);
        free(copy);
        return;
    }
    free(b->latest);
    b->latest = copy;
    n = snapshot(b, subs);
    pthread_mutex_unlock(&b->mu);
    rb_chan *gone[MAX_SUBS];
    int ngone = 0;
    for (int i = 0; i < n; i++) {
        /* Keep two places free for the final event and [DONE]. */
        if (rb_chan_depth(subs[i]) < SUB_QUEUE &&
            rb_chan_push(subs[i], event, (size_t)-1, 0) == RB_ECLOSED)
            gone[ngone++] = subs[i];
        else if (rb_chan_is_closed(subs[i]))
            gone[ngone++] = subs[i];
    }
    prune(b, gone, ngone);
    for (int i = 0; i < n; i++)
        rb_chan_unref(subs[i]);
}

void rb_bcast_finish(rb_bcast *b, const char *final_event)
{
    rb_chan *subs[MAX_SUBS];
    int n;

    pthread_mutex_lock(&b->mu);
    if (b->finished) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    b->finished = 1;
    if (final_event) {
        free(b->latest);
        b->latest = strdup(final_event);
    }
    n = snapshot(b, subs);
    for (int i = 0; i < b->nsubs; i++)
        rb_chan_unref(b->subs[i]);
    b->nsubs = 0;
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < n; i++) {
        if (final_event)
            rb_chan_push(subs[i], final_event, (size_t)-1, 0);
        rb_chan_push(subs[i], "[DONE]", (size_t)-1, 0);
        rb_chan_finish(subs[i]);
        rb_chan_unref(subs[i]);
    }
}

int rb_bcast_finished(rb_bcast *b)
{
    int f;
    pthread_mutex_lock(&b->mu);
    f = b->finished;
    pthread_mutex_unlock(&b->mu);
    return f;
}
