/*
 * download.c - the download manager: shared downloads, progress broadcast, catalog rows.
 *
 * DESIGN
 * Each download is a reference-counted record with its own thread and an rb_bcast that fans
 * its progress events out to any number of SSE subscribers and replays the latest one to late
 * subscribers. The manager's list holds one reference; a subscriber takes a temporary one under
 * the manager lock and subscribes after releasing it, so the manager lock and the broadcast's
 * lock are never held together. A record leaves the list (and its thread is joined) only once
 * it has been finished for the keep time; the last reference frees it. The catalog row is
 * written by the download thread after hive_fetch_run renamed the checked file into place, so
 * a row always names a complete file; if the row cannot be written the file is removed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hive_download.h"
#include "hive_fetch.h"
#include "rb_bcast.h"
#include "rb_buf.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"

#define EVENT_MAX 8192

typedef struct dl {
    hive_downloads *mgr;
    char id[HIVE_DOWNLOAD_ID_MAX];
    char reference[HIVE_REF_MAX];
    char url[2048];
    char dest[HIVE_PATH_MAX];
    rb_bcast *progress;
    pthread_t thread;
    atomic_int cancel;
    atomic_int refs;
    int finished;        /* under mgr->mu */
    int ok;              /* under mgr->mu */
    int64_t finished_ms; /* under mgr->mu */
    struct dl *next;
} dl;

struct hive_downloads {
    hive *h;
    pthread_mutex_t mu;
    dl *list;
    size_t count;
    int stopping;
    int64_t keep_ms;
    char endpoint[1024];
    const char *hf_token; /* from the environment; NULL when unset */
};

rb_err hive_download_dest(const hive *h, const hive_modelref *ref, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/%s/%s/%s", h->models_dir, ref->org, ref->repo, ref->file);
    return n < 0 || (size_t)n >= outlen ? RB_ETOOBIG : RB_OK;
}

static void dl_unref(dl *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    rb_bcast_free(d->progress);
    free(d);
}

static void on_progress(void *user, int64_t done, int64_t total, double speed_mbps)
{
    dl *d = user;
    char ev[256], tot[32] = "null";

    if (total >= 0)
        snprintf(tot, sizeof tot, "%lld", (long long)total);
    snprintf(ev, sizeof ev,
             "{\"stage\":\"downloading\",\"bytes_downloaded\":%lld,\"bytes_total\":%s,"
             "\"speed_mbps\":%.2f}",
             (long long)done, tot, speed_mbps);
    rb_bcast_publish(d->progress, ev);
}

/* {"stage":"retrying","attempt":N,"attempts":M,"retry_in_ms":P,"message":...}: the keeper
 * shows each failed attempt as it happens. */
static void on_retry(void *user, int attempt, int attempts, const char *why, long pause_ms)
{
    dl *d = user;
    rb_buf b;

    rb_buf_init(&b, EVENT_MAX);
    rb_buf_appendf(&b,
                   "{\"stage\":\"retrying\",\"attempt\":%d,\"attempts\":%d,\"retry_in_ms\":%ld,"
                   "\"message\":",
                   attempt, attempts, pause_ms);
    rb_json_quote(&b, why, strlen(why));
    rb_buf_appends(&b, "}");
    if (b.data)
        rb_bcast_publish(d->progress, b.data);
    rb_buf_release(&b);
}

/* {"stage":"complete","local_path":...} or {"stage":"error","code":...,"message":...,
 * "attempts":N} (the attempts made: 1 for a failure that is not retried). */
static void finish_events(dl *d, const char *code, const char *message, int attempts)
{
    rb_buf b;

    rb_buf_init(&b, EVENT_MAX);
    if (!code) {
        rb_buf_appends(&b, "{\"stage\":\"complete\",\"local_path\":");
        rb_json_quote(&b, d->dest, strlen(d->dest));
    } else {
        rb_buf_appendf(&b,
                       "{\"stage\":\"error\",\"code\":\"%s\",\"attempts\":%d,\"message\":", code,
                       attempts);
        rb_json_quote(&b, message, strlen(message));
    }
    rb_buf_appends(&b, "}");
    rb_bcast_finish(d->progress, b.data ? b.data : "{\"stage\":\"error\"}");
    rb_buf_release(&b);
}

/* Writes the catalog row of a checked file; removes the file when that fails. */
static rb_err record(dl *d, const hive_fetch_result *res, char *err, size_t errlen)
{
    hive *h = d->mgr->h;
    hive_model m = {0};
    rb_err rc = RB_OK;

    snprintf(m.reference, sizeof m.reference, "%s", d->reference);
    snprintf(m.provider, sizeof m.provider, "hf");
    snprintf(m.local_path, sizeof m.local_path, "%s", d->dest);
    m.size_bytes = res->size;
    snprintf(m.sha256, sizeof m.sha256, "%s", res->sha256);
    m.downloaded_at_unix = rb_unix_s();
    if (hive_catalog_put(h->cat, &m) != RB_OK) {
        unlink(d->dest);
        rc = rb_errf(err, errlen, RB_EIO, "cannot write the catalog row of %s", d->reference);
    }
    return rc;
}

static rb_err prepare_dest(const char *dest, char *err, size_t errlen)
{
    char dir[HIVE_PATH_MAX];
    char *slash;
    rb_err rc = RB_OK;

    snprintf(dir, sizeof dir, "%s", dest);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (rb_mkdir_p(dir))
        rc = rb_errf(err, errlen, RB_EIO, "cannot create folder '%s'", dir);
    return rc;
}

static void *dl_main(void *arg)
{
    dl *d = arg;
    hive *h = d->mgr->h;
    hive_fetch f = hive_fetch_default();
    hive_fetch_result res = {0};
    char err[1024] = "";
    rb_err rc;

    rb_thread_set_name("hive-download");
    f.url = d->url;
    f.dest = d->dest;
    f.token = d->mgr->hf_token;
    f.tag = d->id;
    f.cancel = &d->cancel;
    f.progress = on_progress;
    f.retry = on_retry;
    f.user = d;
    rb_log(RB_LOG_INFO, "download", "%s: downloading %s", d->id, d->url);
    rc = prepare_dest(d->dest, err, sizeof err);
    if (!rc && (rc = hive_fetch_run(&f, &res, err, sizeof err)) == RB_OK)
        rc = record(d, &res, err, sizeof err);
    if (rc) {
        atomic_fetch_add(&h->m.downloads_failed, 1);
        rb_log(RB_LOG_WARN, "download", "%s: %s failed (%s): %s", d->id, d->reference,
               res.code[0] ? res.code : "DOWNLOAD_FAILED", err);
        finish_events(d, res.code[0] ? res.code : "DOWNLOAD_FAILED", err, res.attempts);
    } else {
        atomic_fetch_add(&h->m.downloads_done, 1);
        atomic_fetch_add(&h->m.download_bytes, res.size);
        rb_log(RB_LOG_INFO, "download", "%s: %s complete: %s (%lld bytes)", d->id, d->reference,
               d->dest, (long long)res.size);
        finish_events(d, NULL, NULL, res.attempts);
    }
    pthread_mutex_lock(&d->mgr->mu);
    d->finished = 1;
    d->ok = rc == RB_OK;
    d->finished_ms = rb_now_ms();
    pthread_mutex_unlock(&d->mgr->mu);
    return NULL;
}

rb_err hive_downloads_new(hive *h, hive_downloads **out)
{
    hive_downloads *d = calloc(1, sizeof(*d));
    const char *keep = getenv("RBEE_DOWNLOAD_KEEP_MS");
    const char *tok = getenv("HF_TOKEN");
    int64_t v;
    rb_err rc = RB_OK;

    if (!d) {
        rc = RB_ENOMEM;
        goto out;
    }
    d->h = h;
    pthread_mutex_init(&d->mu, NULL);
    d->keep_ms = keep && rb_parse_i64(keep, 0, 86400000, &v) == RB_OK ? v : HIVE_DOWNLOAD_KEEP_MS;
    d->hf_token = tok && *tok ? tok : NULL;
    hive_hf_endpoint(d->endpoint, sizeof d->endpoint);
out:
    *out = d;
    return rc;
}

/* Joins and drops the list's reference of every record in a detached list. */
static void release_list(dl *d)
{
    while (d) {
        dl *next = d->next;
        pthread_join(d->thread, NULL);
        dl_unref(d);
        d = next;
    }
}

void hive_downloads_stop(hive_downloads *d)
{
    dl *all;

    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    for (dl *x = d->list; x; x = x->next)
        atomic_store(&x->cancel, 1);
    all = d->list;
    d->list = NULL;
    pthread_mutex_unlock(&d->mu);
    release_list(all);
}

void hive_downloads_free(hive_downloads *d)
{
    if (!d)
        return;
    hive_downloads_stop(d);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* A new record for ref, not yet linked or started, in *out. */
static rb_err dl_new(hive_downloads *m, const hive_modelref *ref, const char *reference, dl **out,
                     char *err, size_t errlen)
{
    dl *d = calloc(1, sizeof(*d));
    char uuid[37];
    rb_err rc = RB_OK;

    if (!d || !(d->progress = rb_bcast_new())) {
        free(d);
        d = NULL;
        rc = rb_errf(err, errlen, RB_ENOMEM, "out of memory");
        goto out;
    }
    d->mgr = m;
    atomic_init(&d->refs, 1);
    atomic_init(&d->cancel, 0);
    rb_uuid(uuid);
    snprintf(d->id, sizeof d->id, "%s", uuid);
    snprintf(d->reference, sizeof d->reference, "%s", reference);
    if (hive_download_dest(m->h, ref, d->dest, sizeof d->dest) ||
        hive_hf_file_url(m->endpoint, ref, d->url, sizeof d->url)) {
        rc = rb_errf(err, errlen, RB_ETOOBIG, "model reference '%s' makes a path too long",
                     reference);
        dl_unref(d);
        d = NULL;
    }
out:
    *out = d;
    return rc;
}

/* The record sharing reference (running, or finished well); caller holds the lock. */
static dl *find_shared(hive_downloads *m, const char *reference)
{
    dl *found = NULL;
    for (dl *x = m->list; x && !found; x = x->next)
        /* a finished one only while its file is there: not after rbee models rm */
        if (strcmp(x->reference, reference) == 0 &&
            (!x->finished || (x->ok && access(x->dest, F_OK) == 0)))
            found = x;
    return found;
}

rb_err hive_downloads_start(hive_downloads *m, const hive_modelref *ref, char *id, size_t idlen,
                            char *err, size_t errlen)
{
    char reference[HIVE_REF_MAX];
    dl *d = NULL, *shared;
    rb_err rc = RB_OK;

    if (hive_modelref_format(ref, reference, sizeof reference)) {
        rc = rb_errf(err, errlen, RB_ETOOBIG, "model reference too long");
        goto out;
    }
    hive_downloads_sweep(m);
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        rc = rb_errf(err, errlen, RB_ECANCELED, "the hive is shutting down");
    } else if ((shared = find_shared(m, reference))) {
        snprintf(id, idlen, "%s", shared->id);
    } else if (m->count >= HIVE_DOWNLOADS_MAX) {
        rc = rb_errf(err, errlen, RB_EBUSY, "too many downloads (at most %d at once)",
                     HIVE_DOWNLOADS_MAX);
    } else if ((rc = dl_new(m, ref, reference, &d, err, errlen))) {
        d = NULL;
    } else if (pthread_create(&d->thread, NULL, dl_main, d) != 0) {
        rc = rb_errf(err, errlen, RB_ENOMEM, "cannot start a download thread");
        dl_unref(d);
    } else {
        d->next = m->list;
        m->list = d;
        m->count++;
        snprintf(id, idlen, "%s", d->id);
    }
    pthread_mutex_unlock(&m->mu);
out:
    return rc;
}

rb_chan *hive_downloads_subscribe(hive_downloads *m, const char *id)
{
    dl *d = NULL;
    rb_chan *ch = NULL;

    pthread_mutex_lock(&m->mu);
    for (dl *x = m->list; x && !d; x = x->next)
        if (strcmp(x->id, id) == 0)
            d = x;
    if (d)
        atomic_fetch_add(&d->refs, 1);
    pthread_mutex_unlock(&m->mu);
    if (d) {
        ch = rb_bcast_subscribe(d->progress);
        dl_unref(d);
    }
    return ch;
}

void hive_downloads_sweep(hive_downloads *m)
{
    dl *expired = NULL, **pp;
    int64_t now = rb_now_ms();

    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    pp = &m->list;
    while (*pp) {
        dl *x = *pp;
        if (x->finished && now - x->finished_ms >= m->keep_ms) {
            *pp = x->next;
            x->next = expired;
            expired = x;
            m->count--;
        } else {
            pp = &x->next;
        }
    }
    pthread_mutex_unlock(&m->mu);
    release_list(expired);
}

size_t hive_downloads_running(hive_downloads *m)
{
    size_t n = 0;
    pthread_mutex_lock(&m->mu);
    for (dl *x = m->list; x; x = x->next)
        n += !x->finished;
    pthread_mutex_unlock(&m->mu);
    return n;
}
