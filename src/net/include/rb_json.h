/*
 * rb_json.h - JSON helpers over jansson: typed field extraction that collects every field
 * error, and the project's error envelope.
 *
 *     rb_jcheck c; rb_jcheck_init(&c);
 *     const char *prompt; long long n = 128;
 *     rb_json_str(&c, body, "prompt", RB_REQUIRED, 1, 32768, &prompt);
 *     rb_json_int(&c, body, "max_tokens", RB_OPTIONAL, 1, 2048, &n);
 *     if (!rb_jcheck_ok(&c)) reply 400 with rb_jcheck_envelope(&c);
 *     rb_jcheck_release(&c);
 *
 * Each getter returns 1 when the field is present and valid (out written), 0 when it is absent
 * and optional (out untouched: keep your default), -1 when an error was recorded.
 * A JSON null counts as absent. Messages never echo the value (prompts are private).
 */
#ifndef RB_JSON_H
#define RB_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rb_buf.h"
#include "rb_sse.h"

#define RB_REQUIRED 1
#define RB_OPTIONAL 0

typedef struct rb_jcheck {
    json_t *fields; /* array of {field, constraint, message}; owned */
} rb_jcheck;

void rb_jcheck_init(rb_jcheck *c);
void rb_jcheck_release(rb_jcheck *c);
int rb_jcheck_ok(const rb_jcheck *c);
/* Records an error by hand (for cross-field rules). */
void rb_jcheck_add(rb_jcheck *c, const char *field, const char *constraint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* New reference: {"error":{"code":"INVALID_REQUEST","message":...,"details":{"fields":[...]}}} */
json_t *rb_jcheck_envelope(const rb_jcheck *c);

/* String of byte length [minlen, maxlen]; out borrowed from obj. */
int rb_json_str(rb_jcheck *c, const json_t *obj, const char *key, int required, size_t minlen,
                size_t maxlen, const char **out);
/* Integer in [min, max] (a float with no fraction is not accepted: integers only). */
int rb_json_int(rb_jcheck *c, const json_t *obj, const char *key, int required, long long min,
                long long max, long long *out);
/* Non-negative integer into a uint64_t. jansson holds 63 bits: a larger integer makes
 * json_loads() fail on the whole document ("too big integer"), so it never reaches here. */
int rb_json_u64(rb_jcheck *c, const json_t *obj, const char *key, int required, uint64_t *out);
/* Number (integer or real) in [min, max]. */
int rb_json_num(rb_jcheck *c, const json_t *obj, const char *key, int required, double min,
                double max, double *out);
int rb_json_bool(rb_jcheck *c, const json_t *obj, const char *key, int required, int *out);
/* Array of at most maxitems strings, or a single string (as OpenAI and llama.cpp accept for
 * "stop"), each [minlen, maxlen] bytes; out[] borrowed from obj. */
int rb_json_strarr(rb_jcheck *c, const json_t *obj, const char *key, int required, size_t maxitems,
                   size_t minlen, size_t maxlen, const char **out, size_t *n);

/* New reference: {"error":{"code":code,"message":message[,"details":details]}}.
 * details is stolen (may be NULL). */
json_t *rb_error_envelope(const char *code, const char *message, json_t *details);

/* Parses an error envelope; code/message written into the buffers (empty when absent).
 * Returns 1 if body was an envelope. */
int rb_error_envelope_parse(const char *body, char *code, size_t codelen, char *message,
                            size_t msglen);

/* Appends s (len bytes, UTF-8) as a quoted JSON string; control characters are escaped and
 * bytes that are not valid UTF-8 become U+FFFD. */
rb_err rb_json_quote(rb_buf *out, const char *s, size_t len);

/* Compact serialisation, caller frees with free(). */
char *rb_json_dump(const json_t *j);
/* A JSON string of s[0..len) with every invalid UTF-8 sequence replaced by U+FFFD (jansson
 * refuses invalid UTF-8). NULL only when out of memory. For json_pack's "o". */
json_t *rb_json_text(const char *s, size_t len);

/* Pushes event e (taken, NULL-safe: RB_ENOMEM) to ch as compact JSON, numbers with 10
 * significant digits (12.3 goes out as 12.3); as rb_chan_push otherwise. */
rb_err rb_json_push(rb_chan *ch, json_t *e, int timeout_ms);

#endif
