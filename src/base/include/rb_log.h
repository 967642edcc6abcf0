/*
 * rb_log.h - levelled logging with a swappable sink.
 *
 *     rb_log(RB_LOG_INFO, "worker", "job %s started", id);
 *
 * Default sink: one line per event on stderr, "2026-11-22T09:00:00.123Z INFO  worker: ...".
 * Tests install their own sink with rb_log_set_sink() to capture lines. Thread-safe.
 */
#ifndef RB_LOG_H
#define RB_LOG_H

#include <stdarg.h>

typedef enum rb_log_level {
    RB_LOG_DEBUG = 0,
    RB_LOG_INFO,
    RB_LOG_WARN,
    RB_LOG_ERROR,
    RB_LOG_OFF
} rb_log_level;

/* A sink receives the formatted message (no time, no newline) and its metadata. */
typedef void (*rb_log_sink)(void *user, rb_log_level level, const char *component, const char *msg);

void rb_log(rb_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rb_logv(rb_log_level level, const char *component, const char *fmt, va_list ap);

/* Messages below level are dropped. Default RB_LOG_INFO, or $RBEE_LOG (debug|info|warn|error|off).
 */
void rb_log_set_level(rb_log_level level);
rb_log_level rb_log_get_level(void);
/* Parses "debug", "info", "warn" (or "warning"), "error", "off", in any case; returns -1
 * when unknown. */
int rb_log_level_parse(const char *s);

/* Replaces the sink; NULL restores the stderr sink. Returns nothing; not to be called
 * concurrently with itself. */
void rb_log_set_sink(rb_log_sink sink, void *user);

#endif
