/*
 * rb_time.h - clocks, deadlines and waits for every module.
 *
 *     pthread_cond_t cv;
 *     rb_cond_init_monotonic(&cv);                 // timed waits measure CLOCK_MONOTONIC
 *     struct timespec until = rb_deadline_ms(500);  // now + 500 ms on that clock
 *     while (!ready && pthread_cond_timedwait(&cv, &mu, &until) == 0) {}
 *
 * Timeouts are measured on the monotonic clock, so a change of the wall clock neither ends a
 * wait early nor makes it hang.
 */
#ifndef RB_TIME_H
#define RB_TIME_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds and microseconds (for timeouts and durations). */
int64_t rb_now_ms(void);
int64_t rb_now_us(void);
/* Wall-clock Unix seconds and milliseconds (for timestamps on the wire). */
int64_t rb_unix_s(void);
int64_t rb_unix_ms(void);

/* The CLOCK_MONOTONIC time timeout_ms from now (negative counts as 0). */
struct timespec rb_deadline_ms(int64_t timeout_ms);
/* Initialises cv so that pthread_cond_timedwait takes deadlines on CLOCK_MONOTONIC. */
void rb_cond_init_monotonic(pthread_cond_t *cv);
/* Sleeps ms milliseconds (resumed after a signal); nothing for ms <= 0. */
void rb_sleep_ms(int64_t ms);

#endif
