/*
 * out.c - what the keeper shows, as text or JSON lines.
 *
 * DESIGN
 * Two audiences, one call per event. A person at a terminal gets [Phase N] lines and messages
 * on stderr and nothing but the generated text on stdout, so `rbee infer ... > story.txt`
 * keeps only the story. Progress is redrawn in place with \r when stderr is a terminal and
 * printed as plain lines at every 10 % step otherwise, so logs and pipes stay readable. A
 * program passes --json and reads one object per line on stdout with an "event" field:
 * phase, notice, progress, token, summary, error, canceled. Every write is flushed: tokens
 * must reach the reader as they arrive.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kpr_out.h"
#include "rb_json.h"
#include "rb_util.h"

#define BAR_WIDTH 24
#define PLAIN_STEPS 10        /* plain progress lines: one per 10 % */
#define PLAIN_UNKNOWN_MS 1000 /* without a total: at most one line per second */
#define MB 1e6

void kpr_out_init(kpr_out *o, int json)
{
    memset(o, 0, sizeof(*o));
    o->json = json;
    o->tty = isatty(STDERR_FILENO);
    o->color = kpr_out_color_wanted(o->tty, getenv("NO_COLOR"), getenv("TERM"));
    o->last_step = -1;
}

const char *kpr_short_id(const char *id, char *buf, size_t len)
{
    if (strncmp(id, "worker-", 7) == 0 && strlen(id) > 7 + 8)
        snprintf(buf, len, "%.15s", id);
    else
        snprintf(buf, len, "%s", id);
    return buf;
}

int kpr_out_color_wanted(int tty, const char *no_color, const char *term)
{
    return tty && !(no_color && *no_color) && !(term && strcmp(term, "dumb") == 0);
}

/* The SGR colour of a line's leading word, or NULL: errors red, warnings yellow, suggestions
 * cyan, all bold. */
static const char *prefix_color(const char *prefix, const char *msg)
{
    if (strcmp(prefix, "Error: ") == 0)
        return "\033[1;31m";
    if (strcmp(prefix, "Suggestion: ") == 0)
        return "\033[1;36m";
    if (!*prefix && strncmp(msg, "Warning: ", 9) == 0)
        return "\033[1;33m";
    return NULL;
}

/* A JSON string of text with invalid UTF-8 repaired (json_pack's "s" would drop the whole
 * event): a message may quote a file, a log or a cut of either. */
static json_t *txt(const char *text)
{
    return rb_json_text(text ? text : "", text ? strlen(text) : 0);
}

/* Emits a JSON event on stdout; steals ev. */
static void emit(json_t *ev)
{
    char *s = ev ? rb_json_dump(ev) : NULL;
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(s);
    json_decref(ev);
}

/* A line on stderr; first finishes a bar or a run of tokens so the line starts clean. */
static void text_line(kpr_out *o, const char *prefix, const char *msg)
{
    kpr_out_progress_end(o);
    if (o->tokens_open) {
        fputc('\n', stdout);
        fflush(stdout);
        o->tokens_open = 0;
    }
    {
        const char *sgr = o->color ? prefix_color(prefix, msg) : NULL;
        if (sgr && *prefix) /* "Error:" in colour, then the message */
            fprintf(stderr, "%s%.*s\033[0m %s\n", sgr, (int)strlen(prefix) - 1, prefix, msg);
        else if (sgr) /* a "Warning: ..." note: colour its first word */
            fprintf(stderr, "%sWarning:\033[0m %s\n", sgr, msg + 9);
        else
            fprintf(stderr, "%s%s\n", prefix, msg);
    }
    fflush(stderr);
}

/* "[Phase N] " into buf, or "" for phase 0. */
static const char *phase_text(int phase, char *buf, size_t len)
{
    buf[0] = '\0';
    if (phase > 0)
        snprintf(buf, len, "[Phase %d] ", phase);
    return buf;
}

void kpr_out_phase(kpr_out *o, int phase, const char *fmt, ...)
{
    char msg[1024], prefix[32];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->last_step = -1;
    if (o->json && phase > 0)
        emit(json_pack("{s:s, s:i, s:o}", "event", "phase", "phase", phase, "message", txt(msg)));
    else if (o->json)
        emit(json_pack("{s:s, s:o}", "event", "notice", "message", txt(msg)));
    else {
        text_line(o, phase_text(phase, prefix, sizeof prefix), msg);
    }
}

void kpr_out_note(kpr_out *o, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (o->json)
        emit(json_pack("{s:s, s:o}", "event", "notice", "message", txt(msg)));
    else
        text_line(o, "", msg);
}

/* "2.7 / 6.8 MB, 3.1 MB/s" or "3/6 layers" into buf. */
static void progress_text(const kpr_progress *p, char *buf, size_t len)
{
    if (p->kind == KPR_PROGRESS_LAYERS)
        snprintf(buf, len, "%lld/%lld layers", (long long)p->done, (long long)p->total);
    else if (p->total > 0 && p->mbps > 0 && p->done < p->total) {
        long eta = (long)((double)(p->total - p->done) / (p->mbps * MB) + 0.5);
        char t[32];
        if (eta >= 3600)
            snprintf(t, sizeof t, "%ld:%02ld:%02ld", eta / 3600, eta / 60 % 60, eta % 60);
        else
            snprintf(t, sizeof t, "%ld:%02ld", eta / 60, eta % 60);
        snprintf(buf, len, "%.1f / %.1f MB, %.1f MB/s, ETA %s", p->done / MB, p->total / MB,
                 p->mbps, t);
    } else if (p->total > 0)
        snprintf(buf, len, "%.1f / %.1f MB, %.1f MB/s", p->done / MB, p->total / MB, p->mbps);
    else
        snprintf(buf, len, "%.1f MB, %.1f MB/s", p->done / MB, p->mbps);
}

static void progress_json(const kpr_progress *p)
{
    json_t *ev = json_pack("{s:s, s:i}", "event", "progress", "phase", p->phase);

    if (p->kind == KPR_PROGRESS_LAYERS) {
        json_object_set_new(ev, "stage", json_string("loading"));
        json_object_set_new(ev, "layers_loaded", json_integer(p->done));
        json_object_set_new(ev, "layers_total", json_integer(p->total));
    } else {
        json_object_set_new(ev, "stage", json_string("downloading"));
        json_object_set_new(ev, "bytes_downloaded", json_integer(p->done));
        json_object_set_new(ev, "bytes_total", p->total > 0 ? json_integer(p->total) : json_null());
        json_object_set_new(ev, "speed_mbps", json_real(p->mbps));
    }
    emit(ev);
}

/* "[Phase N] " for phases, nothing for other commands (phase 0). */
static const char *phase_prefix(const kpr_progress *p, char *buf, size_t len)
{
    return phase_text(p->phase, buf, len);
}

static void progress_bar(kpr_out *o, const kpr_progress *p, int pct, const char *text)
{
    char bar[BAR_WIDTH + 1], pre[32];
    int fill = pct < 0 ? 0 : pct * BAR_WIDTH / 100;

    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    if (pct >= 0)
        fprintf(stderr, "\r%s[%s] %3d%%  %s\033[K", phase_prefix(p, pre, sizeof pre), bar, pct,
                text);
    else
        fprintf(stderr, "\r%s%s\033[K", phase_prefix(p, pre, sizeof pre), text);
    fflush(stderr);
    o->bar_open = 1;
}

void kpr_out_progress(kpr_out *o, const kpr_progress *p)
{
    char text[128], pre[32];
    int pct = p->total > 0 ? (int)(p->done * 100 / p->total) : -1;
    int64_t now = rb_now_ms();

    progress_text(p, text, sizeof text);
    if (o->json) {
        progress_json(p);
    } else if (o->tty) {
        progress_bar(o, p, pct, text);
    } else if (pct >= 0 && pct / PLAIN_STEPS != o->last_step) {
        o->last_step = pct / PLAIN_STEPS;
        fprintf(stderr, "%s%s: %d%% (%s)\n", phase_prefix(p, pre, sizeof pre),
                p->kind == KPR_PROGRESS_LAYERS ? "loading" : "downloading", pct, text);
        fflush(stderr);
    } else if (pct < 0 && now - o->last_ms >= PLAIN_UNKNOWN_MS) {
        o->last_ms = now;
        fprintf(stderr, "%s%s: %s\n", phase_prefix(p, pre, sizeof pre),
                p->kind == KPR_PROGRESS_LAYERS ? "loading" : "downloading", text);
        fflush(stderr);
    }
}

void kpr_out_progress_end(kpr_out *o)
{
    if (o->bar_open) {
        fputc('\n', stderr);
        fflush(stderr);
    }
    o->bar_open = 0;
}

void kpr_out_token(kpr_out *o, long index, const char *text)
{
    if (o->json) {
        emit(
            json_pack("{s:s, s:I, s:o}", "event", "token", "i", (json_int_t)index, "t", txt(text)));
    } else {
        kpr_out_progress_end(o);
        fputs(text, stdout);
        o->tokens_open = 1;
    }
    /* A reader that went away (rbee infer ... | head) ends the stream: see kpr_out.closed. */
    if (fflush(stdout) != 0 || ferror(stdout))
        o->closed = 1;
}

void kpr_out_tokens_end(kpr_out *o)
{
    if (!o->json && o->tokens_open) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    o->tokens_open = 0;
}

void kpr_out_summary(kpr_out *o, const kpr_summary *s)
{
    double secs = s->elapsed_ms / 1000.0;
    double tps = s->elapsed_ms > 0 ? s->tokens / secs : 0;
    char msg[256];

    snprintf(msg, sizeof msg, "%ld tokens in %.2f s (%.1f tokens/s)", s->tokens, secs, tps);
    if (s->first_ms >= 0)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), ", first token after %lld ms",
                 (long long)s->first_ms);
    if (s->stop_reason)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), ", stop: %s", s->stop_reason);
    if (o->json)
        emit(json_pack("{s:s, s:I, s:I, s:I, s:f, s:s?}", "event", "summary", "tokens",
                       (json_int_t)s->tokens, "elapsed_ms", (json_int_t)s->elapsed_ms,
                       "first_token_ms", (json_int_t)s->first_ms, "tokens_per_sec", tps,
                       "stop_reason", s->stop_reason));
    else
        text_line(o, "[Summary] ", msg);
}

void kpr_out_canceled(kpr_out *o, const char *detail)
{
    if (o->json) {
        emit(json_pack("{s:s, s:s?}", "event", "canceled", "detail", detail));
    } else {
        if (detail)
            text_line(o, "", detail);
        text_line(o, "", "Canceled.");
    }
}

void kpr_out_line(kpr_out *o, const char *fmt, ...)
{
    va_list ap;

    (void)o;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

void kpr_out_doc(kpr_out *o, json_t *doc)
{
    (void)o;
    emit(doc);
}

/* ---- failures ---------------------------------------------------------------------------- */

void kpr_fail_init(kpr_fail *f)
{
    memset(f, 0, sizeof(*f));
}

void kpr_fail_set(kpr_fail *f, const char *code, const char *fmt, ...)
{
    va_list ap;

    f->code = code;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
}

void kpr_fail_line(kpr_fail *f, const char *fmt, ...)
{
    va_list ap;

    if (f->nlines < KPR_FAIL_LINES) {
        va_start(ap, fmt);
        vsnprintf(f->lines[f->nlines++], sizeof f->lines[0], fmt, ap);
        va_end(ap);
    }
}

void kpr_fail_hint(kpr_fail *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->suggestion, sizeof f->suggestion, fmt, ap);
    va_end(ap);
}

int kpr_fail_isset(const kpr_fail *f)
{
    return f->message[0] != '\0';
}

void kpr_out_fail(kpr_out *o, kpr_fail *f)
{
    if (o->json) {
        json_t *ev = json_pack("{s:s, s:s, s:o}", "event", "error", "code",
                               f->code ? f->code : "FAILED", "message", txt(f->message));
        json_t *lines = json_array();
        for (int i = 0; i < f->nlines; i++)
            json_array_append_new(lines, txt(f->lines[i]));
        json_object_set_new(ev, "lines", lines);
        if (f->suggestion[0])
            json_object_set_new(ev, "suggestion", txt(f->suggestion));
        if (f->details)
            json_object_update(ev, f->details);
        emit(ev);
    } else {
        text_line(o, "Error: ", f->message);
        for (int i = 0; i < f->nlines; i++)
            text_line(o, "", f->lines[i]);
        if (f->suggestion[0])
            text_line(o, "Suggestion: ", f->suggestion);
    }
    kpr_fail_release(f);
}

void kpr_fail_release(kpr_fail *f)
{
    json_decref(f->details);
    f->details = NULL;
}
