/*
 * kpr_out.h - everything the keeper shows: [Phase N] lines, progress, tokens, the summary and
 * errors, either as text (phases and messages on stderr, tokens on stdout) or, with --json, as
 * one JSON object per line on stdout.
 *
 *     kpr_out o;
 *     kpr_out_init(&o, json);
 *     kpr_out_phase(&o, 2, "Hive preflight: %s is alive", url);
 *     kpr_out_token(&o, 0, "In");
 *     kpr_fail f;  kpr_fail_init(&f);
 *     kpr_fail_set(&f, "HIVE_UNREACHABLE", "Cannot connect to %s after 3 attempts", node);
 *     kpr_fail_hint(&f, "start a hive there: rbee hive start --node %s", node);
 *     kpr_out_fail(&o, &f);              // prints and releases f
 *
 * Text mode draws progress bars in place only when stderr is a terminal; otherwise it prints
 * a plain line at every 10 % step. Not thread-safe: one thread prints.
 */
#ifndef KPR_OUT_H
#define KPR_OUT_H

#include <jansson.h>
#include <stdint.h>

#define KPR_FAIL_LINES 12

typedef struct kpr_out {
    int json;        /* JSON lines on stdout instead of text */
    int tty;         /* stderr is a terminal */
    int color;       /* colour the Error:/Warning:/Suggestion: words (kpr_out_color_wanted) */
    int bar_open;    /* a progress bar is on screen without its newline */
    int last_step;   /* plain progress: the last 10 % step printed, -1 for none */
    int64_t last_ms; /* plain progress without a total: time of the last line */
    int tokens_open; /* text tokens were printed and no newline followed yet */
    int closed;      /* writing a token to stdout failed: nobody reads the output any more */
} kpr_out;

typedef enum kpr_progress_kind { KPR_PROGRESS_BYTES, KPR_PROGRESS_LAYERS } kpr_progress_kind;

typedef struct kpr_progress {
    int phase;
    kpr_progress_kind kind;
    int64_t done;  /* bytes or layers */
    int64_t total; /* <= 0: unknown */
    double mbps;   /* bytes only: average megabytes (10^6) per second */
} kpr_progress;

typedef struct kpr_summary {
    long tokens;
    int64_t elapsed_ms;      /* from the job request to the worker's end event */
    int64_t first_ms;        /* from the job request to the first token; -1 if none */
    const char *stop_reason; /* borrowed; may be NULL */
} kpr_summary;

/* A failure to report: a code (JSON), a one-line message, facts on further lines, and a
 * suggestion. details (owned) adds fields to the JSON event. */
typedef struct kpr_fail {
    const char *code;
    char message[1024];
    char lines[KPR_FAIL_LINES][512];
    int nlines;
    char suggestion[512];
    json_t *details;
} kpr_fail;

void kpr_out_init(kpr_out *o, int json);
/* The id to show in a phase line: "worker-" and the first 8 characters of its UUID (a unique
 * beginning selects the worker, as in `rbee workers shutdown --id`); other ids unchanged.
 * Returns buf. */
const char *kpr_short_id(const char *id, char *buf, size_t len);
/* Colour on stderr: a terminal, $NO_COLOR unset or empty (no-color.org) and $TERM not "dumb". */
int kpr_out_color_wanted(int tty, const char *no_color, const char *term);

/* "[Phase N] ..." on stderr, or {"event":"phase","phase":N,"message":...}. Phase 0 (commands
 * other than infer) prints the message without the prefix (a notice in JSON). */
void kpr_out_phase(kpr_out *o, int phase, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line outside the phases (a retry, a warning): stderr, or {"event":"notice"}. */
void kpr_out_note(kpr_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Progress of a download or of a worker's loading. */
void kpr_out_progress(kpr_out *o, const kpr_progress *p);
/* Ends a progress bar drawn in place (prints its newline). */
void kpr_out_progress_end(kpr_out *o);
/* One token's text, written and flushed at once. */
void kpr_out_token(kpr_out *o, long index, const char *text);
/* After the last token: a newline on stdout in text mode. */
void kpr_out_tokens_end(kpr_out *o);
/* The summary line (tokens, time, tokens/s) on stderr, or {"event":"summary"}. */
void kpr_out_summary(kpr_out *o, const kpr_summary *s);
/* "Canceled." on stderr, or {"event":"canceled"}. */
void kpr_out_canceled(kpr_out *o, const char *detail);
/* A table row or other command output on stdout (text mode only: JSON callers print JSON). */
void kpr_out_line(kpr_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command's whole answer as one JSON document (compact, one line) on stdout, whatever the
 * mode: `rbee workers list --json` and the like. Takes doc (NULL-safe). */
void kpr_out_doc(kpr_out *o, json_t *doc);

void kpr_fail_init(kpr_fail *f);
/* Sets code and message (replacing earlier ones). */
void kpr_fail_set(kpr_fail *f, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kpr_fail_line(kpr_fail *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kpr_fail_hint(kpr_fail *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 once a message was set. */
int kpr_fail_isset(const kpr_fail *f);
/* Prints "Error: message", the lines and "Suggestion: ..." on stderr (or one JSON error
 * event) and releases f. */
void kpr_out_fail(kpr_out *o, kpr_fail *f);
void kpr_fail_release(kpr_fail *f);

#endif
