/*
 * log.c - levelled logging with a swappable sink.
 *
 * The level and sink are process-wide settings made at start-up (main or a test's setup); the
 * default sink writes one line per event to stderr under a mutex so lines never interleave.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rb_log.h"

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

static pthread_mutex_t stderr_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int cur_level = -1; /* -1: read $RBEE_LOG on first use */
static rb_log_sink cur_sink;
static void *cur_user;

static void stderr_sink(void *user, rb_log_level level, const char *component, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char when[32];

    (void)user;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&stderr_lock);
    fprintf(stderr, "%s.%03ldZ %-5s %s: %s\n", when, ts.tv_nsec / 1000000, level_names[level],
            component, msg);
    fflush(stderr);
    pthread_mutex_unlock(&stderr_lock);
}

int rb_log_level_parse(const char *s)
{
    for (int i = 0; i <= RB_LOG_OFF; i++)
        if (s && strcasecmp(s, level_names[i]) == 0)
            return i;
    if (s && strcasecmp(s, "warning") == 0)
        return RB_LOG_WARN;
    return -1;
}

rb_log_level rb_log_get_level(void)
{
    int l = atomic_load(&cur_level);
    if (l < 0) {
        l = rb_log_level_parse(getenv("RBEE_LOG"));
        if (l < 0)
            l = RB_LOG_INFO;
        atomic_store(&cur_level, l);
    }
    return (rb_log_level)l;
}

void rb_log_set_level(rb_log_level level)
{
    atomic_store(&cur_level, (int)level);
}

void rb_log_set_sink(rb_log_sink sink, void *user)
{
    cur_user = user;
    cur_sink = sink;
}

void rb_logv(rb_log_level level, const char *component, const char *fmt, va_list ap)
{
    char msg[2048];
    rb_log_sink sink = cur_sink ? cur_sink : stderr_sink;

    if (level >= RB_LOG_OFF || level < rb_log_get_level())
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    sink(cur_user, level, component ? component : "-", msg);
}

void rb_log(rb_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rb_logv(level, component, fmt, ap);
    va_end(ap);
}
