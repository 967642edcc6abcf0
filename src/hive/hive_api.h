/*
 * hive_api.h - pieces shared by the HTTP handlers of §4.1 (api.c, api_workers.c,
 * api_models.c) and the model resolution they rely on (resolve.c).
 *
 * Handlers parse and validate JSON at the edge and pass plain C values inward; every error
 * answer uses the envelope of §4 with the codes listed in docs/hive.md.
 */
#ifndef HIVE_API_H
#define HIVE_API_H

#include <jansson.h>
#include <stdint.h>

#include "hive_ctx.h"
#include "hive_modelref.h"
#include "rb_http.h"

/* Estimated RAM a worker needs for a model file: size * HIVE_RAM_FACTOR_PCT / 100 plus
 * HIVE_RAM_OVERHEAD_MB (KV cache, buffers, the process itself). */
#define HIVE_RAM_FACTOR_PCT 110
#define HIVE_RAM_OVERHEAD_MB 128

/* The request body as a JSON object (new reference), or NULL after replying 400: INVALID_JSON
 * when it is not JSON, INVALID_REQUEST when it is JSON but not an object (as the worker). */
json_t *hive_api_body(rb_http_req *req, rb_http_reply *rep);

/* MemTotal and MemAvailable in MiB; available is capped by $RBEE_HIVE_RAM_LIMIT_MB. */
rb_err hive_ram_mb(uint64_t *total, uint64_t *available);

/* MiB a worker needs for a model file of size_bytes. */
uint64_t hive_ram_required_mb(int64_t size_bytes);

/* What resolving a model reference to a local file found. */
typedef enum hive_resolved {
    HIVE_RESOLVED_LOCAL,    /* path holds a local file (file:, bundled, or downloaded) */
    HIVE_RESOLVED_DOWNLOAD, /* an hf: file that is not downloaded; ref->file is set */
} hive_resolved;

/* The API error a resolution failure maps to. */
typedef struct hive_api_error {
    int status;       /* HTTP status */
    const char *code; /* envelope code */
    json_t *details;  /* new reference or NULL */
    char message[1024];
} hive_api_error;

/* Resolves text to a local file or to an hf: file still to download. For hf:org/repo the file
 * is chosen through the endpoint's repo listing (hive_hf_pick_file). A catalog row whose file
 * vanished is removed. On failure fills e (400 INVALID_MODEL_REF, 400 AMBIGUOUS_MODEL_REF,
 * 404 MODEL_NOT_FOUND, 502 DOWNLOAD_FAILED) and returns non-zero. path gets the local path. */
rb_err hive_resolve_model(hive *h, const char *text, hive_modelref *ref, char *canonical,
                          size_t canonlen, char *path, size_t pathlen, hive_resolved *what,
                          hive_api_error *e);

/* Host part of the request's Host header ("h:8080" -> "h", "[::1]:8080" -> "[::1]"); "" when
 * absent or unusable. */
void hive_request_host(rb_http_req *req, char *out, size_t outlen);
/* 1 when the RAM available fits a worker for the model file at path, run with h's worker
 * options (context, KV cache type, slots, threads: rb_mem.h over the file's GGUF header); else
 * 0 with e filled (507 INSUFFICIENT_MEMORY, the estimate's parts in details). */
int hive_memory_ok(const hive *h, const char *path, hive_api_error *e);

/* Replies with e (takes its details). */
void hive_api_reply(rb_http_reply *rep, hive_api_error *e);

/* Handlers (api_workers.c, api_models.c). */
void hive_h_spawn(rb_http_req *req, rb_http_reply *rep, void *user);
void hive_h_ready(rb_http_req *req, rb_http_reply *rep, void *user);
void hive_h_heartbeat(rb_http_req *req, rb_http_reply *rep, void *user);
void hive_h_workers_list(rb_http_req *req, rb_http_reply *rep, void *user);
void hive_h_workers_shutdown(rb_http_req *req, rb_http_reply *rep, void *user);
void hive_h_models(rb_http_req *req, rb_http_reply *rep, void *user);
void hive_h_download(rb_http_req *req, rb_http_reply *rep, void *user);
void hive_h_models_delete(rb_http_req *req, rb_http_reply *rep, void *user);
void hive_h_download_progress(rb_http_req *req, rb_http_reply *rep, void *user);

#endif
