/*
 * hive_download.h - the download manager: one thread per model being downloaded, progress
 * fanned out to SSE subscribers (§4.3), the catalog row written when the file is checked.
 *
 *     hive_downloads *d;
 *     hive_downloads_new(h, &d);
 *     char id[HIVE_DOWNLOAD_ID_MAX];
 *     hive_downloads_start(d, &ref, id, sizeof id, err, sizeof err);   // ref names a file
 *     rb_chan *ch = hive_downloads_subscribe(d, id);                  // NULL: unknown id
 *     rb_http_reply_sse(reply, ch); rb_chan_unref(ch);
 *     hive_downloads_sweep(d);                                        // the monitor's tick
 *     hive_downloads_stop(d);                                         // cancels and joins
 *     hive_downloads_free(d);
 *
 * Requests for a reference that is already downloading share that download (same id). A
 * finished download stays subscribable for HIVE_DOWNLOAD_KEEP_MS (RBEE_DOWNLOAD_KEEP_MS
 * overrides it) so a late subscriber still sees how it ended.
 */
#ifndef HIVE_DOWNLOAD_H
#define HIVE_DOWNLOAD_H

#include <stddef.h>

#include "hive_ctx.h"
#include "hive_modelref.h"
#include "rb_sse.h"

#define HIVE_DOWNLOAD_ID_MAX 40
#define HIVE_DOWNLOAD_KEEP_MS 60000
#define HIVE_DOWNLOADS_MAX 32 /* downloads running or kept at once */

rb_err hive_downloads_new(hive *h, hive_downloads **out);
/* Refuses new downloads, cancels running ones (they end with code CANCELLED) and joins their
 * threads. Sweeping stays safe afterwards (there is nothing left to sweep). */
void hive_downloads_stop(hive_downloads *d);
/* hive_downloads_stop, then frees. NULL-safe. */
void hive_downloads_free(hive_downloads *d);

/* Starts the download of ref (kind HIVE_REF_HF with a file), or joins the one already running
 * for the same reference. Writes the download id into id. RB_EBUSY when HIVE_DOWNLOADS_MAX are
 * in use, RB_ECANCELED while the hive stops. */
rb_err hive_downloads_start(hive_downloads *d, const hive_modelref *ref, char *id, size_t idlen,
                            char *err, size_t errlen);
/* A new SSE channel for the download's progress (caller owns one reference), or NULL when the
 * id is unknown or expired. */
rb_chan *hive_downloads_subscribe(hive_downloads *d, const char *id);
/* Frees downloads that finished more than the keep time ago. NULL-safe. */
void hive_downloads_sweep(hive_downloads *d);
/* Downloads still running. */
size_t hive_downloads_running(hive_downloads *d);

/* Local path of a downloaded hf reference: <models_dir>/<org>/<repo>/<file>. */
rb_err hive_download_dest(const hive *h, const hive_modelref *ref, char *out, size_t outlen);

#endif
