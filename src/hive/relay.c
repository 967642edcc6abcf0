/*
 * relay.c - the OpenAI routes of the hive: pick (or spawn) a worker for the request's model,
 * hold the request until the worker is ready, and relay the worker's response as it arrives.
 *
 * DESIGN
 * The handler runs on a thread of its own while the client's connection is suspended
 * (rb_http.h), so it may wait. It validates the body just enough to read "model", then leases a
 * worker from the registry: a ready worker of that model with fewer relays than slots
 * (hive_registry_lease). When there is none it either spawns one (at most one spawn per model at a
 * time: the model is marked spawning while the spawner runs, and the new worker is registered as
 * loading before the mark is cleared, so a concurrent request sees one or the other and waits), or,
 * when the model's workers are all full, takes a place in a bounded queue. Waiting is a loop
 * on the registry's change counter in slices of HIVE_RELAY_WAIT_SLICE_MS, checking between
 * slices that the client is still there (rb_http_req_client_gone), that the hive is not
 * stopping, and the deadline (--load-timeout).
 *
 * The relay itself is a thread per request running one libcurl transfer to the worker on
 * loopback. Its header callback records the status and content type and wakes the handler,
 * which then answers with a raw stream reply (rb_http_reply_stream) of the same status and
 * type; the write callback pushes every chunk curl hands over into the reply's channel at
 * once, so bytes leave the hive as they arrive, unchanged. When the client disconnects the
 * HTTP layer closes the channel: the next push fails and the write callback returns 0, or,
 * while the worker is silent, the progress callback (called at least once a second) sees the
 * closed channel; either way curl closes the connection and the worker cancels the job. The
 * relay thread owns the lease and gives it back (hive_registry_unlease) when the transfer
 * ends, which also counts as the worker's last activity.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hive_api.h"
#include "hive_relay.h"
#include "hive_spawn.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"

#define RELAY_CHANNEL 64   /* chunks queued towards the client */
#define FREE_WAIT_MS 10000 /* hive_relays_free: longest wait for the relay threads */
#define CONTENT_TYPE_MAX 64
/* A client that takes nothing of a full channel for this long is treated as gone (the HTTP
 * server's own idle limit is 120 s too). */
#define RELAY_PUSH_TIMEOUT_MS 120000

struct hive_relays {
    pthread_mutex_t mu; /* guards every field below but stopping */
    pthread_cond_t cv;  /* a relay thread ended */
    int queue_max;
    int waiting;                                   /* requests queued for a slot of a full model */
    char spawning[HIVE_MAX_WORKERS][HIVE_REF_MAX]; /* models being spawned now */
    int nspawning;
    int threads; /* relay threads running: requests being relayed */
    int active;  /* requests waiting for a worker */
    atomic_int stopping;
};

typedef enum relay_phase { RELAY_WAITING = 0, RELAY_HEADERS, RELAY_FAILED } relay_phase;

/* One relayed request, shared by the handler and the relay thread (two references). */
typedef struct relay {
    atomic_int refs;
    hive *h;
    hive_worker w;
    char url[320];
    char *body;
    size_t body_len;
    char auth[600];
    char corr[100];
    rb_chan *ch;
    atomic_int abort;   /* the handler gave up before it replied */
    pthread_mutex_t mu; /* guards phase, status, content_type, err */
    pthread_cond_t cv;
    relay_phase phase;
    long status;
    char content_type[CONTENT_TYPE_MAX];
    char err[CURL_ERROR_SIZE];
    long long bytes;
} relay;

rb_err hive_relays_new(int queue_max, hive_relays **out)
{
    hive_relays *rl = calloc(1, sizeof(*rl));

    *out = rl;
    if (!rl)
        return RB_ENOMEM;
    pthread_mutex_init(&rl->mu, NULL);
    rb_cond_init_monotonic(&rl->cv);
    rl->queue_max = queue_max;
    atomic_init(&rl->stopping, 0);
    return RB_OK;
}

void hive_relays_stop(hive_relays *rl)
{
    if (rl)
        atomic_store(&rl->stopping, 1);
}

void hive_relays_free(hive_relays *rl)
{
    struct timespec dl;

    if (!rl)
        return;
    dl = rb_deadline_ms(FREE_WAIT_MS);
    pthread_mutex_lock(&rl->mu);
    while (rl->threads > 0)
        if (pthread_cond_timedwait(&rl->cv, &rl->mu, &dl) != 0)
            break;
    if (rl->threads > 0)
        rb_log(RB_LOG_ERROR, "relay", "%d relays still running at shutdown", rl->threads);
    pthread_mutex_unlock(&rl->mu);
    /* A relay thread that outlived the wait still holds the struct: leave it allocated. */
    if (rl->threads == 0) {
        pthread_cond_destroy(&rl->cv);
        pthread_mutex_destroy(&rl->mu);
        free(rl);
    }
}

int hive_relays_active(hive_relays *rl)
{
    int n;
    pthread_mutex_lock(&rl->mu);
    n = rl->active + rl->threads;
    pthread_mutex_unlock(&rl->mu);
    return n;
}

static void count_active(hive_relays *rl, int d)
{
    pthread_mutex_lock(&rl->mu);
    rl->active += d;
    pthread_mutex_unlock(&rl->mu);
}

void hive_openai_error(rb_http_reply *rep, int status, const char *type, const char *param,
                       const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rb_http_reply_json(rep, status,
                       json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", msg, "type", type,
                                 "param", param ? json_string(param) : json_null(), "code",
                                 code ? json_string(code) : json_null()));
}

/* ---- choosing a worker ------------------------------------------------------------------- */

/* The canonical form of a reference without any lookup (hf:org/repo stays a repo), or the text
 * itself when it does not parse. */
static void canonical_ref(const char *text, char *out, size_t outlen)
{
    hive_modelref r;
    char err[8];

    if (hive_modelref_parse(text, &r, err, sizeof err) != RB_OK ||
        hive_modelref_format(&r, out, outlen) != RB_OK)
        snprintf(out, outlen, "%s", text);
}

/* Claims the spawn of model: 1 when this caller is to spawn it, 0 when another one is. */
static int spawn_claim(hive_relays *rl, const char *model)
{
    int mine = 1;

    pthread_mutex_lock(&rl->mu);
    for (int i = 0; i < rl->nspawning && mine; i++)
        mine = strcmp(rl->spawning[i], model) != 0;
    if (mine && rl->nspawning < HIVE_MAX_WORKERS)
        snprintf(rl->spawning[rl->nspawning++], HIVE_REF_MAX, "%s", model);
    else
        mine = 0;
    pthread_mutex_unlock(&rl->mu);
    return mine;
}

static void spawn_release(hive_relays *rl, const char *model)
{
    pthread_mutex_lock(&rl->mu);
    for (int i = 0; i < rl->nspawning; i++)
        if (strcmp(rl->spawning[i], model) == 0) {
            memmove(rl->spawning[i], rl->spawning[rl->nspawning - 1], HIVE_REF_MAX);
            rl->nspawning--;
            break;
        }
    pthread_mutex_unlock(&rl->mu);
}

/* A place in the queue of requests waiting for a slot; 0 when the queue is full. */
static int queue_enter(hive_relays *rl)
{
    int ok;
    pthread_mutex_lock(&rl->mu);
    ok = rl->waiting < rl->queue_max;
    rl->waiting += ok;
    pthread_mutex_unlock(&rl->mu);
    return ok;
}

static void queue_leave(hive_relays *rl)
{
    pthread_mutex_lock(&rl->mu);
    rl->waiting--;
    pthread_mutex_unlock(&rl->mu);
}

/* Spawns a worker for model (canonical text); 0 after replying with the failure. */
static int spawn_for(hive *h, rb_http_req *req, rb_http_reply *rep, const char *model)
{
    hive_spawn_req sr = {0};
    hive_modelref ref;
    hive_resolved what;
    hive_api_error e;
    hive_worker w;
    char canonical[HIVE_REF_MAX], err[1536];
    rb_err rc;
    int ok = 0;

    if (hive_resolve_model(h, model, &ref, canonical, sizeof canonical, sr.model_path,
                           sizeof sr.model_path, &what, &e) != RB_OK ||
        what == HIVE_RESOLVED_DOWNLOAD) {
        json_decref(e.details);
        hive_openai_error(rep, 404, "invalid_request_error", "model", "model_not_found",
                          "The model '%s' does not exist on this node%s%s", model,
                          what == HIVE_RESOLVED_DOWNLOAD ? ": it is not downloaded yet (rbee "
                                                           "models download)"
                          : e.message[0]                 ? ": "
                                                         : "",
                          what == HIVE_RESOLVED_DOWNLOAD ? "" : e.message);
        goto out;
    }
    if (!hive_memory_ok(h, sr.model_path, &e)) {
        json_decref(e.details);
        hive_openai_error(rep, 507, "server_error", NULL, "insufficient_memory", "%s", e.message);
        goto out;
    }
    snprintf(sr.model_ref, sizeof sr.model_ref, "%s", model);
    snprintf(sr.backend, sizeof sr.backend, "cpu");
    if (h->cfg.local_mode)
        snprintf(sr.advertise_host, sizeof sr.advertise_host, "127.0.0.1");
    else
        hive_request_host(req, sr.advertise_host, sizeof sr.advertise_host);
    rc = hive_spawner_run(h->sp, &sr, &w, err, sizeof err);
    if (rc) {
        atomic_fetch_add(&h->m.spawn_failures, 1);
        rb_log(RB_LOG_WARN, "relay", "spawn for %s failed: %s", model, err);
        hive_openai_error(rep, rc == RB_EIO ? 500 : 503, "server_error", NULL,
                          rc == RB_EIO ? "worker_start_failed" : "no_capacity",
                          "cannot start a worker for '%s': %s", model, err);
        goto out;
    }
    atomic_fetch_add(&h->m.spawned, 1);
    rb_log(RB_LOG_INFO, "relay", "spawned worker %s for %s (a request is waiting)", w.id, model);
    ok = 1;
out:
    return ok;
}

/* Leases a worker for model into *w, spawning or queueing as needed. 0 after replying (or
 * when the client left). */
static int acquire(hive *h, rb_http_req *req, rb_http_reply *rep, const char *model, hive_worker *w)
{
    hive_relays *rl = h->relays;
    int64_t deadline = rb_now_ms() + h->cfg.load_timeout_ms;
    int queued = 0, spawned = 0, ok = 0, loading = 0;
    unsigned long seq = 0;

    for (;;) {
        rb_err rc = hive_registry_lease(h->reg, model, w, &loading, &seq);
        if (rc == RB_OK) {
            ok = 1;
            break;
        }
        if (atomic_load(&rl->stopping)) {
            hive_openai_error(rep, 503, "server_error", NULL, "shutting_down",
                              "the hive is shutting down");
            break;
        }
        if (rb_http_req_client_gone(req)) {
            rb_log(RB_LOG_INFO, "relay", "client left while waiting for a worker for %s", model);
            hive_openai_error(rep, 499, "invalid_request_error", NULL, "client_closed",
                              "the client closed the request");
            break;
        }
        if (rb_now_ms() >= deadline) {
            hive_openai_error(rep, 503, "server_error", NULL, "timeout",
                              "no worker for '%s' became available within the load timeout", model);
            break;
        }
        if (rc == RB_EBUSY && !loading && !queued && !(queued = queue_enter(rl))) {
            rb_http_reply_header(rep, "Retry-After", "1");
            hive_openai_error(rep, 503, "server_error", NULL, "all_slots_busy",
                              "every slot of the workers serving '%s' is busy and the queue "
                              "is full; retry later",
                              model);
            break;
        }
        if (rc == RB_ENOTFOUND && !loading && spawn_claim(rl, model)) {
            int started = !spawned && spawn_for(h, req, rep, model);
            spawn_release(rl, model);
            if (!started && spawned)
                hive_openai_error(rep, 503, "server_error", NULL, "worker_failed",
                                  "the worker started for '%s' stopped before it was ready", model);
            if (!started)
                break;
            spawned = 1;
            continue;
        }
        hive_registry_wait_change(h->reg, seq, HIVE_RELAY_WAIT_SLICE_MS);
    }
    if (queued)
        queue_leave(rl);
    return ok;
}

/* ---- the transfer ------------------------------------------------------------------------ */

static void relay_unref(relay *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        rb_chan_unref(r->ch);
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r->body);
        free(r);
    }
}

static void set_phase(relay *r, relay_phase p)
{
    pthread_mutex_lock(&r->mu);
    if (r->phase == RELAY_WAITING)
        r->phase = p;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static size_t on_header(char *p, size_t size, size_t n, void *user)
{
    relay *r = user;
    size_t len = size * n;
    long st;

    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', len);
        if (sp && sscanf(sp, " %ld", &st) == 1) {
            pthread_mutex_lock(&r->mu);
            r->status = st;
            r->content_type[0] = '\0';
            pthread_mutex_unlock(&r->mu);
        }
    } else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
        const char *v = p + 13;
        size_t k;
        while (v < p + len && (*v == ' ' || *v == '\t'))
            v++;
        k = (size_t)(p + len - v);
        while (k > 0 && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
            k--;
        pthread_mutex_lock(&r->mu);
        snprintf(r->content_type, sizeof r->content_type, "%.*s", (int)k, v);
        pthread_mutex_unlock(&r->mu);
    } else if ((len == 2 && p[0] == '\r') || (len == 1 && p[0] == '\n')) {
        /* the end of a header block; an interim 1xx block is followed by the real one */
        if (r->status >= 200)
            set_phase(r, RELAY_HEADERS);
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    relay *r = user;
    size_t len = size * n;

    set_phase(r, RELAY_HEADERS);
    if (atomic_load(&r->abort) || rb_chan_push(r->ch, p, len, RELAY_PUSH_TIMEOUT_MS) != RB_OK)
        return 0; /* the client is gone: curl closes the worker's connection */
    r->bytes += (long long)len;
    return len;
}

static int on_progress(void *user, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    relay *r = user;
    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&r->abort) || rb_chan_is_closed(r->ch) ||
           atomic_load(&r->h->relays->stopping);
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    hive_relays *rl = r->h->relays;
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    CURLcode cc = CURLE_FAILED_INIT;
    char corr[128];

    rb_thread_set_name("hive-relay");
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    snprintf(corr, sizeof corr, "X-Correlation-ID: %s", r->corr);
    hdr = curl_slist_append(hdr, corr);
    if (r->auth[0])
        hdr = curl_slist_append(hdr, r->auth);
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, r->url);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)HIVE_RELAY_CONNECT_MS);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
        curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L); /* byte for byte */
        cc = curl_easy_perform(c);
    }
    pthread_mutex_lock(&r->mu);
    if (cc != CURLE_OK && !r->err[0])
        snprintf(r->err, sizeof r->err, "%s", curl_easy_strerror(cc));
    pthread_mutex_unlock(&r->mu);
    set_phase(r, RELAY_FAILED); /* only when no header arrived */
    rb_chan_finish(r->ch);
    hive_registry_unlease(r->h->reg, r->w.id);
    rb_log(RB_LOG_INFO, "relay", "relay to %s ended: %lld bytes%s%s (%s)", r->w.id, r->bytes,
           cc == CURLE_OK ? "" : ", ", cc == CURLE_OK ? "" : r->err, r->corr);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    relay_unref(r);
    pthread_mutex_lock(&rl->mu);
    rl->threads--;
    pthread_cond_broadcast(&rl->cv);
    pthread_mutex_unlock(&rl->mu);
    return NULL;
}

static relay *relay_new(hive *h, rb_http_req *req, const hive_worker *w)
{
    relay *r = calloc(1, sizeof(*r));

    if (!r || !(r->body = malloc(req->body_len + 1)) || !(r->ch = rb_chan_new(RELAY_CHANNEL))) {
        if (r)
            free(r->body);
        free(r);
        return NULL;
    }
    memcpy(r->body, req->body, req->body_len);
    r->body[req->body_len] = '\0';
    r->body_len = req->body_len;
    r->h = h;
    r->w = *w;
    /* The worker runs on this node: reach it on loopback whatever host it advertises. */
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d%s", w->port, req->path);
    if (h->token[0])
        snprintf(r->auth, sizeof r->auth, "Authorization: Bearer %s", h->token);
    snprintf(r->corr, sizeof r->corr, "%s", req->correlation_id);
    pthread_mutex_init(&r->mu, NULL);
    rb_cond_init_monotonic(&r->cv);
    atomic_init(&r->refs, 2); /* the handler's and the thread's */
    atomic_init(&r->abort, 0);
    return r;
}

/* Starts the relay thread; 0 when it could not start (r then has one reference left). */
static int relay_start(hive_relays *rl, relay *r)
{
    pthread_t t;
    pthread_attr_t a;
    int ok;

    pthread_mutex_lock(&rl->mu);
    rl->threads++;
    pthread_mutex_unlock(&rl->mu);
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&t, &a, relay_main, r) == 0;
    pthread_attr_destroy(&a);
    if (!ok) {
        pthread_mutex_lock(&rl->mu);
        rl->threads--;
        pthread_mutex_unlock(&rl->mu);
        atomic_fetch_sub(&r->refs, 1);
    }
    return ok;
}

/* Waits for the worker's status line and headers, then replies with its stream. */
static void relay_answer(hive *h, rb_http_req *req, rb_http_reply *rep, relay *r)
{
    relay_phase ph = RELAY_WAITING;
    long status;
    char ct[CONTENT_TYPE_MAX], err[CURL_ERROR_SIZE];

    for (;;) {
        struct timespec dl = rb_deadline_ms(HIVE_RELAY_WAIT_SLICE_MS);
        pthread_mutex_lock(&r->mu);
        if (r->phase == RELAY_WAITING)
            pthread_cond_timedwait(&r->cv, &r->mu, &dl);
        ph = r->phase;
        status = r->status;
        snprintf(ct, sizeof ct, "%s", r->content_type[0] ? r->content_type : "application/json");
        snprintf(err, sizeof err, "%s", r->err);
        pthread_mutex_unlock(&r->mu);
        if (ph != RELAY_WAITING)
            break;
        if (rb_http_req_client_gone(req) || atomic_load(&h->relays->stopping)) {
            atomic_store(&r->abort, 1);
            rb_chan_close(r->ch);
            hive_openai_error(rep, 499, "invalid_request_error", NULL, "client_closed",
                              "the request ended before the worker answered");
            return;
        }
    }
    if (ph == RELAY_HEADERS) {
        rb_http_reply_stream(rep, (int)status, ct, r->ch);
    } else {
        rb_chan_close(r->ch);
        hive_openai_error(rep, 502, "server_error", NULL, "worker_unreachable",
                          "worker %s did not answer: %s", r->w.id, err);
    }
}

/* "model" from the body into out; 0 after replying 400. */
static int read_model(rb_http_req *req, rb_http_reply *rep, char *out, size_t outlen)
{
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *m = json_object_get(body, "model");
    int ok = 0;

    if (!json_is_object(body))
        hive_openai_error(rep, 400, "invalid_request_error", NULL, NULL,
                          "We could not parse the JSON body of your request: it is not a JSON "
                          "object");
    else if (!json_is_string(m) || json_string_length(m) == 0)
        hive_openai_error(rep, 400, "invalid_request_error", "model", NULL,
                          "you must provide a model parameter (a model of GET /v1/models)");
    else if (json_string_length(m) >= HIVE_REF_MAX)
        hive_openai_error(rep, 404, "invalid_request_error", "model", "model_not_found",
                          "The model does not exist on this node (the name is too long)");
    else {
        canonical_ref(json_string_value(m), out, outlen);
        ok = 1;
    }
    json_decref(body);
    return ok;
}

void hive_h_openai(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    char model[HIVE_REF_MAX];
    hive_worker w;
    relay *r = NULL;
    int got;

    if (!read_model(req, rep, model, sizeof model))
        goto out;
    count_active(h->relays, 1);
    got = acquire(h, req, rep, model, &w);
    count_active(h->relays, -1);
    if (!got)
        goto out;
    rb_log(RB_LOG_INFO, "relay", "%s for %s -> worker %s (%s)", req->path, model, w.id,
           req->correlation_id);
    if (!(r = relay_new(h, req, &w)) || !relay_start(h->relays, r)) {
        hive_registry_unlease(h->reg, w.id);
        hive_openai_error(rep, 500, "server_error", NULL, NULL, "cannot start the relay");
        goto out;
    }
    relay_answer(h, req, rep, r);
out:
    relay_unref(r);
}
