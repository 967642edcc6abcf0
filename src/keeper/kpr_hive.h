/*
 * kpr_hive.h - the keeper's side of the hive and worker APIs (docs/architecture.md §4): one
 * JSON call with its error envelope taken apart, and the failures a user reads when a call goes
 * wrong.
 *
 *     kpr_reply r;
 *     rb_err rc = kpr_call(t->hive_url, t->token, "GET", "/v1/workers/list", NULL, 5000, &r);
 *     if (rc || r.status != 200) { kpr_reply_fail(&f, t, &r, "list the workers"); ... }
 *     json_t *w = kpr_workers_entry(r.body, "worker-1");   // borrowed from r.body
 *     kpr_reply_release(&r);
 */
#ifndef KPR_HIVE_H
#define KPR_HIVE_H

#include <jansson.h>

#include "kpr_ctx.h"
#include "kpr_out.h"
#include "rb_err.h"
#include "rb_client.h"

#define KPR_CALL_TIMEOUT_MS 10000

typedef struct kpr_reply {
    long status;       /* HTTP status; 0 when none arrived */
    json_t *body;      /* the parsed body or NULL; owned */
    char code[64];     /* the error envelope's code, or "" */
    char message[512]; /* the error envelope's message, or "" */
    char err[512];     /* what went wrong when the call itself failed */
} kpr_reply;

/* method base+path with an optional JSON body (borrowed) and a bearer token (may be "").
 * One attempt, connect timeout min(timeout_ms, 5 s). Returns RB_OK when an answer arrived,
 * whatever its status; otherwise RB_ECONNECT, RB_ETIMEDOUT, ... with r->err set. Release r
 * with kpr_reply_release in every case. */
rb_err kpr_call(const char *base, const char *token, const char *method, const char *path,
                const json_t *body, long timeout_ms, kpr_reply *r);
void kpr_reply_release(kpr_reply *r);

/* "the <who> answered <status> <code or reason phrase>[: <message>]" for a non-2xx answer of
 * an SSE call (the hive's envelope or OpenAI's error shape in res->body). */
void kpr_http_error(const rb_sse_result *res, const char *who, char *out, size_t outlen);

/* Fills f for a call that failed or answered an error: "Authentication failed" (EC9) for
 * 401, "Cannot reach" for no answer, otherwise the hive's code and message. what says what
 * the keeper tried ("list the workers"). */
void kpr_reply_fail(kpr_fail *f, const kpr_target *t, const kpr_reply *r, const char *what);

/* The entry of worker id in a /v1/workers/list body (borrowed), or NULL. */
json_t *kpr_workers_entry(json_t *list_body, const char *id);

/* What a hive's /v1/workers/list answer says about one worker. */
typedef enum kpr_fate {
    KPR_FATE_LISTED,  /* the hive lists it */
    KPR_FATE_GONE,    /* the hive answered its list and the worker is not in it */
    KPR_FATE_UNKNOWN, /* no answer, a refused token, or not a hive's answer: keep the worker */
} kpr_fate;

/* Judges worker id from a list call to the hive at base (rc and r as kpr_call left them).
 * LISTED sets *entry (borrowed from r->body); UNKNOWN puts the reason into why ("cannot reach
 * the hive at ...", "the hive at ... refused the keeper's token (401 INVALID_API_KEY)", "the
 * program at ... does not answer as a hive (404)"). Only GONE lets a cache drop the worker. */
kpr_fate kpr_worker_fate(rb_err rc, const kpr_reply *r, const char *base, const char *id,
                         json_t **entry, char *why, size_t len);

/* Worker ids of ws (a list's "workers" array, borrowed) that prefix selects: the worker whose
 * id it is, else every worker whose id begins with it. Returns how many; when one, its id
 * goes to id. ids gets the matching ids joined by ", " (truncated to idslen). */
size_t kpr_workers_match(const json_t *ws, const char *prefix, char *id, size_t idlen, char *ids,
                         size_t idslen);

/* A string field of obj, or "" (never NULL). */
const char *kpr_jstr(const json_t *obj, const char *key);

#endif
