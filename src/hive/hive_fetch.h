/*
 * hive_fetch.h - one model file transfer over HTTP with resume, retries and checks, and the
 * Hugging Face URL rules (docs/architecture.md §7).
 *
 *     hive_fetch f = hive_fetch_default();
 *     f.url = "http://hub/org/repo/resolve/main/model.gguf";
 *     f.dest = "/home/u/.rbee/models/org/repo/model.gguf";
 *     f.progress = on_progress; f.user = ctx; f.cancel = &flag;
 *     hive_fetch_result res;
 *     if (hive_fetch_run(&f, &res, err, sizeof err)) -> res.code names the failure
 *
 * The body goes to "<dest>.part"; a broken transfer is resumed with "Range: bytes=<have>-";
 * failures that may pass (connection errors, 5xx, 429, a short body) are retried with a
 * doubling pause, others (404, 403, ...) end at once. The complete file must have the
 * announced size, start with the GGUF magic and, when the server names one (an ETag or
 * X-Linked-Etag of 64 hex digits, as the Hugging Face hub sends for LFS files), match its
 * SHA-256. Only then is it fsynced and renamed to dest. A run that is cancelled or whose
 * retries run out keeps the .part, and the next run resumes from it; after any other failure
 * no .part file remains.
 */
#ifndef HIVE_FETCH_H
#define HIVE_FETCH_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hive_modelref.h"
#include "rb_err.h"

#define HIVE_FETCH_ATTEMPTS 6
#define HIVE_FETCH_BACKOFF_MS 1000 /* first pause between attempts; RBEE_DOWNLOAD_BACKOFF_MS */

typedef void (*hive_fetch_progress_fn)(void *user, int64_t done, int64_t total, double speed_mbps);
/* An attempt failed and another follows after pause_ms; why is the attempt's error. */
typedef void (*hive_fetch_retry_fn)(void *user, int attempt, int attempts, const char *why,
                                    long pause_ms);

typedef struct hive_fetch {
    const char *url;
    const char *dest;
    const char *token; /* bearer token for the server (HF_TOKEN) or NULL */
    const char *tag;   /* names the transfer in log lines (the download id) */
    int attempts;
    long backoff_ms;
    long stall_timeout_s;            /* abort an attempt that receives nothing for this long */
    atomic_int *cancel;              /* non-zero: stop (code CANCELLED); may be NULL */
    hive_fetch_progress_fn progress; /* at most every HIVE_FETCH_PROGRESS_MS, and at the end */
    hive_fetch_retry_fn retry;       /* before each pause between attempts; may be NULL */
    void *user;
} hive_fetch;

#define HIVE_FETCH_PROGRESS_MS 200

typedef struct hive_fetch_result {
    int64_t size;
    char sha256[65]; /* of the file, when the server named one; else "" */
    char code[32];   /* on failure: DOWNLOAD_FAILED, NOT_GGUF, SIZE_MISMATCH,
                        CHECKSUM_MISMATCH, CANCELLED */
    int attempts;    /* attempts made */
} hive_fetch_result;

/* Defaults: HIVE_FETCH_ATTEMPTS, backoff from $RBEE_DOWNLOAD_BACKOFF_MS or
 * HIVE_FETCH_BACKOFF_MS, 30 s stall timeout. */
hive_fetch hive_fetch_default(void);

/* Runs the transfer. RB_OK when dest holds the checked file; otherwise res->code and err say
 * why (RB_ECANCELED when cancelled). */
rb_err hive_fetch_run(const hive_fetch *f, hive_fetch_result *res, char *err, size_t errlen);

/* $HF_ENDPOINT without trailing slashes, or https://huggingface.co. */
void hive_hf_endpoint(char *out, size_t outlen);
/* <endpoint>/<org>/<repo>/resolve/main/<file>. */
rb_err hive_hf_file_url(const char *endpoint, const hive_modelref *r, char *out, size_t outlen);
/* Lists the repo through <endpoint>/api/models/<org>/<repo> (its "siblings[].rfilename") and
 * sets r->file with hive_pick_gguf. RB_ENOTFOUND (no such repo, or no .gguf file), RB_EINVAL
 * (several files and no Q4_K_M; *files gets a new reference to the list of .gguf names),
 * RB_ECONNECT / RB_ETIMEDOUT / RB_EPROTO for the endpoint. files may be NULL. */
rb_err hive_hf_pick_file(const char *endpoint, const char *token, hive_modelref *r, json_t **files,
                         char *err, size_t errlen);

#endif
