/*
 * hive_relay.h - the hive as the node's OpenAI endpoint: POST /v1/chat/completions and
 * POST /v1/completions go to a worker serving the request's "model" (spawned when there is
 * none), and the worker's response is relayed byte for byte as it arrives (docs/hive.md,
 * "OpenAI routes").
 *
 *     hive_relays *rl;
 *     hive_relays_new(16, &rl);            // at most 16 requests queued for a full model
 *     ... routes call hive_h_openai with the hive as user ...
 *     hive_relays_stop(rl);                // before the HTTP server stops: waits end, relays abort
 *     rb_http_server_stop(srv);
 *     hive_relays_free(rl);                // joins what is left of the relays
 *
 * Errors of these routes use OpenAI's shape {"error":{"message","type","param","code"}}.
 */
#ifndef HIVE_RELAY_H
#define HIVE_RELAY_H

#include "hive_ctx.h"
#include "rb_http.h"

/* How long a waiting request sleeps between checks of its client (it is woken at once by any
 * change of the registry). */
#define HIVE_RELAY_WAIT_SLICE_MS 100
#define HIVE_RELAY_CONNECT_MS 5000 /* connecting to the worker */

/* queue_max: requests that may wait for a slot of a full model at once (0: full means 503).
 * RB_ENOMEM. */
rb_err hive_relays_new(int queue_max, hive_relays **out);
/* Waiting requests give up (503) and running relays close their transfers. NULL-safe. */
void hive_relays_stop(hive_relays *rl);
/* Waits (at most 10 s) for the relay threads to end, then frees. Call after the HTTP server
 * stopped. NULL-safe. */
void hive_relays_free(hive_relays *rl);
/* OpenAI requests waiting for a worker or being relayed now (GET /metrics). */
int hive_relays_active(hive_relays *rl);

/* The handler of both routes; user is the hive. */
void hive_h_openai(rb_http_req *req, rb_http_reply *rep, void *user);

/* OpenAI's error shape. param may be NULL (null); code NULL is null. */
void hive_openai_error(rb_http_reply *rep, int status, const char *type, const char *param,
                       const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
