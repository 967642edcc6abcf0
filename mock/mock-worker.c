/*
 * mock-worker - a scripted stand-in for llm-worker-rbee: the worker API of
 * docs/architecture.md §4.2 with scripted tokens and faults, for hive and keeper tests and for
 * running a hive by hand.
 *
 *     mock-worker --model PATH --port P [--scenario FILE] [the options of llm-worker-rbee]
 *
 * It accepts every option of the real worker (--worker-id --model --model-ref --backend
 * --device --port --hive-url --local-mode --threads --slots --queue --ctx --kv-type
 * --heartbeat-interval --stream-open-timeout --advertise-host) and behaves like it: binds its
 * port first (exit 1 with "cannot listen on 127.0.0.1:P: Address already in use" when taken),
 * sends a heartbeat at once and then every interval, "loads" the model (the file must exist and
 * start with the GGUF magic), posts the ready callback and serves inference as SSE.
 *
 * The script is a JSON object from --scenario FILE, then $MOCK_WORKER_SCENARIO (inline JSON)
 * on top; every field is optional:
 *     tokens              ["In"," the",...]  the generated token texts (one stream: at most
 *                                             max_tokens of them; fewer ends with EOS)
 *     token_interval_ms   20                  pause before each token
 *     load_ms             100                 time spent "loading" (layer progress events)
 *     layers              4                   layers reported while loading
 *     never_ready         false               stay loading forever
 *     start_exit_code     -1                  >= 0: print start_message, exit at once
 *     start_message       "bad model"
 *     crash_after_tokens  -1                  >= 0: SIGKILL itself once that many tokens
 *                                             have reached the client
 *     hang_after_tokens   -1                  >= 0: stop producing after that many tokens
 *     busy                false               inference answers 503 ALL_SLOTS_BUSY
 *     health_status       200                 status of GET /health
 *     heartbeats_stop_after_ms -1             >= 0: no heartbeat after that time
 *     ignore_shutdown     false               POST /v1/admin/shutdown answers but does not exit
 *     ignore_sigterm      false               SIGTERM is ignored (only SIGKILL ends it)
 *     keepalive_ms        10000               SSE keep-alive period
 *     max_conns_per_ip    (server default)    the HTTP server's per-address connection limit
 * POST /v1/chat/completions and POST /v1/completions answer in OpenAI's format with the same
 * scripted tokens: with "stream":true as chat.completion.chunk / text_completion chunks
 * ("data: {...}" events, then "data: [DONE]"), else one chat.completion / text_completion
 * object once every token is "generated"; errors in OpenAI's shape.
 * POST /mock/busy {"busy":true|false} switches `busy` while it runs (its health and heartbeats
 * keep saying idle: the state a hive sees when another client took the slot a moment ago).
 * GET /mock/records returns counters: {"inference_requests","shutdown_requests",
 * "heartbeats_sent","cancels","health_checks","chat_requests","completion_requests",
 * "disconnects" (streams whose client left before the end), "openai_requests" (the bodies of
 * the OpenAI requests, in order, at most 16), "job_requests" (the bodies of POST /v1/jobs, the
 * same way)}. Every event worth asserting is also printed on
 * stdout.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rb_args.h"
#include "rb_bcast.h"
#include "rb_client.h"
#include "rb_http.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"

#define MAX_TOKENS_SCRIPT 256
#define MAX_JOBS 64
#define JOB_CHANNEL 64
#define CRASH_DRAIN_MS 2000 /* longest wait for the client to take the tokens before a crash */
#define MAX_RECORDED 16     /* OpenAI request bodies kept for /mock/records */

typedef enum job_format { FMT_RBEE = 0, FMT_CHAT, FMT_COMPLETION } job_format;

typedef struct script {
    char *tokens[MAX_TOKENS_SCRIPT];
    int ntokens;
    int token_interval_ms, load_ms, layers, never_ready;
    int start_exit_code;
    char start_message[256];
    int crash_after, hang_after, busy, health_status;
    int heartbeats_stop_after_ms, ignore_shutdown, ignore_sigterm, keepalive_ms;
    int max_conns_per_ip;
} script;

typedef struct opts {
    const char *worker_id, *model, *model_ref, *backend, *device, *hive_url, *advertise_host;
    const char *scenario;
    int port, local_mode, slots, queue, stream_open_timeout_ms;
    double heartbeat_s;
} opts;

typedef struct mock mock;

typedef struct job {
    mock *m;
    char id[64];
    int max_tokens;
    job_format format;
    char model[128];
    rb_chan *ch;
    atomic_int cancel;
    atomic_int attached;
    atomic_int refs;
} job;

struct mock {
    script s;
    opts o;
    const char *token;
    pthread_t main_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;        /* under mu */
    job *jobs[MAX_JOBS]; /* under mu */
    int active;          /* running jobs, under mu */
    atomic_int loaded;
    atomic_int busy; /* the script's busy, switchable by POST /mock/busy */
    rb_bcast *progress;
    int64_t start_ms;
    atomic_long n_infer, n_shutdown, n_heartbeats, n_cancels, n_health;
    atomic_long n_chat, n_completion, n_disconnects;
    json_t *openai_requests; /* under mu */
    json_t *job_requests;    /* the bodies of POST /v1/jobs, at most MAX_RECORDED; under mu */
};

static const char *const default_tokens[] = {"In",       " the",   " beginning", " God",
                                             " created", " the",   " heaven",    " and",
                                             " the",     " earth", "."};

static void say(const char *fmt, const char *arg)
{
    printf(fmt, arg);
    putchar('\n');
    fflush(stdout);
}

/* ---- script ---------------------------------------------------------------------------- */

static void script_defaults(script *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < RB_ARRAY_LEN(default_tokens); i++)
        s->tokens[s->ntokens++] = strdup(default_tokens[i]);
    s->token_interval_ms = 20;
    s->load_ms = 100;
    s->layers = 4;
    s->start_exit_code = s->crash_after = s->hang_after = s->heartbeats_stop_after_ms = -1;
    snprintf(s->start_message, sizeof s->start_message, "bad model");
    s->health_status = 200;
    s->keepalive_ms = 10000;
}

static void get_int(json_t *j, const char *key, int *out)
{
    json_t *v = json_object_get(j, key);
    if (json_is_integer(v))
        *out = (int)json_integer_value(v);
    else if (json_is_boolean(v))
        *out = json_is_true(v);
}

static void script_apply(script *s, json_t *j)
{
    json_t *toks = json_object_get(j, "tokens"), *v;
    size_t i;

    get_int(j, "token_interval_ms", &s->token_interval_ms);
    get_int(j, "load_ms", &s->load_ms);
    get_int(j, "layers", &s->layers);
    get_int(j, "never_ready", &s->never_ready);
    get_int(j, "start_exit_code", &s->start_exit_code);
    get_int(j, "crash_after_tokens", &s->crash_after);
    get_int(j, "hang_after_tokens", &s->hang_after);
    get_int(j, "busy", &s->busy);
    get_int(j, "health_status", &s->health_status);
    get_int(j, "heartbeats_stop_after_ms", &s->heartbeats_stop_after_ms);
    get_int(j, "ignore_shutdown", &s->ignore_shutdown);
    get_int(j, "ignore_sigterm", &s->ignore_sigterm);
    get_int(j, "keepalive_ms", &s->keepalive_ms);
    get_int(j, "max_conns_per_ip", &s->max_conns_per_ip);
    if ((v = json_object_get(j, "start_message")) && json_is_string(v))
        snprintf(s->start_message, sizeof s->start_message, "%s", json_string_value(v));
    if (json_is_array(toks)) {
        for (int k = 0; k < s->ntokens; k++)
            free(s->tokens[k]);
        s->ntokens = 0;
        for (i = 0; i < json_array_size(toks); i++) {
            v = json_array_get(toks, i);
            if (json_is_string(v) && s->ntokens < MAX_TOKENS_SCRIPT)
                s->tokens[s->ntokens++] = strdup(json_string_value(v));
        }
    }
    if (s->layers < 1)
        s->layers = 1;
}

/* Applies one script source (NULL j: nothing to apply); 0 when it is not a JSON object. */
static int script_take(script *s, json_t *j, const char *what, const json_error_t *je)
{
    int ok = json_is_object(j);

    if (ok)
        script_apply(s, j);
    else
        fprintf(stderr, "mock-worker: %s is not a JSON object: %s\n", what, je->text);
    json_decref(j);
    return ok;
}

/* Reads the scenario file, then $MOCK_WORKER_SCENARIO. 0 on a bad script. */
static int script_load(script *s, const char *file)
{
    const char *env = getenv("MOCK_WORKER_SCENARIO");
    json_error_t je;
    int ok = 1;

    script_defaults(s);
    if (file)
        ok = script_take(s, json_load_file(file, 0, &je), file, &je);
    if (ok && env && *env)
        ok = script_take(s, json_loads(env, 0, &je), "MOCK_WORKER_SCENARIO", &je);
    return ok;
}

/* ---- state ---------------------------------------------------------------------------- */

static const char *state_name(mock *m)
{
    int active;
    pthread_mutex_lock(&m->mu);
    active = m->active;
    pthread_mutex_unlock(&m->mu);
    return !atomic_load(&m->loaded) ? "loading" : active > 0 ? "busy" : "idle";
}

static int busy_slots(mock *m)
{
    int a;
    pthread_mutex_lock(&m->mu);
    a = m->active < m->o.slots ? m->active : m->o.slots;
    pthread_mutex_unlock(&m->mu);
    return a;
}

static void request_exit(mock *m)
{
    pthread_kill(m->main_thread, SIGUSR1);
}

/* ---- hive calls ------------------------------------------------------------------------- */

static void post_hive(mock *m, const char *path, json_t *body)
{
    rb_client_opts o = rb_client_opts_default();
    char url[512], err[256];
    long status;
    json_t *reply = NULL;

    o.connect_timeout_ms = 1000;
    o.timeout_ms = 2000;
    o.token = m->token;
    snprintf(url, sizeof url, "%s%s", m->o.hive_url, path);
    if (rb_client_json("POST", url, body, &o, &status, &reply, err, sizeof err))
        rb_log(RB_LOG_INFO, "mock-worker", "POST %s failed: %s", path, err);
    else if (status != 200)
        rb_log(RB_LOG_INFO, "mock-worker", "POST %s answered %ld", path, status);
    json_decref(reply);
    json_decref(body);
}

static void *heartbeat_main(void *arg)
{
    mock *m = arg;
    int interval = (int)(m->o.heartbeat_s * 1000);
    struct timespec dl;

    rb_thread_set_name("mock-heartbeat");
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        int64_t age = rb_now_ms() - m->start_ms;
        int stop_after = m->s.heartbeats_stop_after_ms;
        pthread_mutex_unlock(&m->mu);
        if (stop_after < 0 || age < stop_after) {
            post_hive(m, "/v1/heartbeat",
                      json_pack("{s:s, s:I, s:s, s:s, s:i, s:i}", "worker_id", m->o.worker_id,
                                "timestamp", (json_int_t)rb_unix_s(), "health_status", "healthy",
                                "state", state_name(m), "slots_total", m->o.slots, "slots_busy",
                                busy_slots(m)));
            atomic_fetch_add(&m->n_heartbeats, 1);
        }
        dl = rb_deadline_ms(interval);
        pthread_mutex_lock(&m->mu);
        if (!m->stopping)
            pthread_cond_timedwait(&m->cv, &m->mu, &dl);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* Loading: layer progress, then ready (unless scripted never to be). 0 on a bad model. */
static int load_model(mock *m)
{
    FILE *f = fopen(m->o.model, "rb");
    char magic[4] = {0}, url[300], ev[128];
    int ok = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;

    if (f)
        fclose(f);
    if (!ok) {
        fprintf(stderr, "mock-worker: cannot load model '%s': %s\n", m->o.model,
                f ? "not a GGUF file" : "no such file");
        goto out;
    }
    for (int i = 1; i <= m->s.layers; i++) {
        rb_sleep_ms(m->s.load_ms / m->s.layers);
        snprintf(ev, sizeof ev, "{\"stage\":\"loading\",\"layers_loaded\":%d,\"layers_total\":%d}",
                 i, m->s.layers);
        rb_bcast_publish(m->progress, ev);
    }
    if (m->s.never_ready) {
        say("mock-worker: scripted never to become ready%s", "");
        goto out;
    }
    rb_bcast_finish(m->progress, "{\"stage\":\"ready\"}");
    atomic_store(&m->loaded, 1);
    snprintf(url, sizeof url, "http://%s:%d", m->o.advertise_host, m->o.port);
    if (m->o.hive_url)
        post_hive(m, "/v1/workers/ready",
                  json_pack("{s:s, s:s, s:s, s:s, s:s}", "worker_id", m->o.worker_id, "url", url,
                            "model_ref", m->o.model_ref, "backend", m->o.backend, "device",
                            m->o.device));
    say("mock-worker: ready at %s", url);
out:
    return ok;
}

/* ---- jobs ------------------------------------------------------------------------------- */

static void job_unref(job *j)
{
    if (j && atomic_fetch_sub(&j->refs, 1) == 1) {
        rb_chan_unref(j->ch);
        free(j);
    }
}

static job *job_find(mock *m, const char *id)
{
    job *j = NULL;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < MAX_JOBS && !j; i++)
        if (m->jobs[i] && strcmp(m->jobs[i]->id, id) == 0) {
            j = m->jobs[i];
            atomic_fetch_add(&j->refs, 1);
        }
    pthread_mutex_unlock(&m->mu);
    return j;
}

static void job_remove(mock *m, job *j)
{
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < MAX_JOBS; i++)
        if (m->jobs[i] == j) {
            m->jobs[i] = NULL;
            m->active--;
        }
    pthread_mutex_unlock(&m->mu);
    job_unref(j);
}

/* Waits for the client to open the stream; 0 when it never did. */
static int wait_attached(mock *m, job *j)
{
    int64_t end = rb_now_ms() + m->o.stream_open_timeout_ms;
    while (!atomic_load(&j->attached) && !atomic_load(&j->cancel) && rb_now_ms() < end)
        rb_sleep_ms(10);
    return atomic_load(&j->attached);
}

/* The scripted crash: once the tokens so far have reached the client, SIGKILL itself. */
static void crash(job *j, int tokens)
{
    int64_t end = rb_now_ms() + CRASH_DRAIN_MS;

    /* until the SSE response has written every token out (it asked again and found none) */
    while (!rb_chan_drained(j->ch) && !rb_chan_is_closed(j->ch) && rb_now_ms() < end)
        rb_sleep_ms(5);
    printf("mock-worker: crashing after %d tokens (scripted)\n", tokens);
    fflush(stdout);
    kill(getpid(), SIGKILL);
}

/* One OpenAI chunk of job j: a text delta (NULL: the role chunk), or the final one with
 * finish_reason. */
static json_t *openai_chunk(const job *j, const char *text, const char *finish)
{
    json_t *choice = json_pack("{s:i, s:o}", "index", 0, "finish_reason",
                               finish ? json_string(finish) : json_null());
    json_t *c;

    if (j->format == FMT_CHAT) {
        json_t *delta = json_object();
        if (!text && !finish) {
            json_object_set_new(delta, "role", json_string("assistant"));
            json_object_set_new(delta, "content", json_string(""));
        } else if (text) {
            json_object_set_new(delta, "content", rb_json_text(text, strlen(text)));
        }
        json_object_set_new(choice, "delta", delta);
    } else {
        json_object_set_new(choice, "text",
                            text ? rb_json_text(text, strlen(text)) : json_string(""));
    }
    c = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", j->id, "object",
                  j->format == FMT_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                  (json_int_t)rb_unix_s(), "model", j->model, "choices", choice);
    return c;
}

/* The OpenAI stream of job j. */
static void openai_stream(job *j)
{
    mock *m = j->m;
    int n = j->max_tokens < m->s.ntokens ? j->max_tokens : m->s.ntokens, gone = 0;
    const char *finish = n == j->max_tokens ? "length" : "stop";

    if (j->format == FMT_CHAT)
        gone = rb_json_push(j->ch, openai_chunk(j, NULL, NULL), -1) != RB_OK;
    for (int i = 0; i < n && !gone && !atomic_load(&j->cancel); i++) {
        rb_sleep_ms(m->s.token_interval_ms);
        gone = rb_json_push(j->ch, openai_chunk(j, m->s.tokens[i], NULL), -1) != RB_OK;
    }
    if (!gone)
        gone = rb_json_push(j->ch, openai_chunk(j, NULL, finish), 1000) != RB_OK ||
               rb_chan_push(j->ch, "[DONE]", (size_t)-1, 1000) != RB_OK;
    if (gone) {
        atomic_fetch_add(&m->n_disconnects, 1);
        say("mock-worker: client of %s left before the end", j->id);
    }
}

static void *job_main(void *arg)
{
    job *j = arg;
    mock *m = j->m;
    int n = j->max_tokens < m->s.ntokens ? j->max_tokens : m->s.ntokens, sent = 0;
    const char *reason = n == j->max_tokens ? "MAX_TOKENS" : "EOS";
    int64_t t0 = rb_now_ms(), ttft = 0;

    if (!wait_attached(m, j))
        goto out;
    if (j->format != FMT_RBEE) {
        openai_stream(j);
        goto out;
    }
    rb_json_push(j->ch,
                 json_pack("{s:s, s:s, s:s, s:I}", "type", "started", "job_id", j->id, "model",
                           "mock", "started_at", (json_int_t)rb_unix_s()),
                 -1);
    for (int i = 0; i < n && !atomic_load(&j->cancel); i++) {
        if (i == m->s.crash_after)
            crash(j, i);
        while (i == m->s.hang_after && !atomic_load(&j->cancel) && !rb_chan_is_closed(j->ch))
            rb_sleep_ms(20);
        rb_sleep_ms(m->s.token_interval_ms);
        if (atomic_load(&j->cancel))
            break;
        if (rb_json_push(j->ch,
                         json_pack("{s:s, s:o, s:i, s:I}", "type", "token", "t",
                                   rb_json_text(m->s.tokens[i], strlen(m->s.tokens[i])), "i", i,
                                   "sampled_us", (json_int_t)rb_now_us()),
                         -1) != RB_OK)
            break;
        if (i == 0)
            ttft = rb_now_ms() - t0;
        sent++;
    }
    if (atomic_load(&j->cancel))
        reason = "CANCELLED";
    rb_json_push(j->ch,
                 json_pack("{s:s, s:i, s:i, s:I, s:I, s:f, s:s}", "type", "end", "tokens_out", sent,
                           "prompt_tokens", 5, "decode_time_ms", (json_int_t)(rb_now_ms() - t0),
                           "ttft_ms", (json_int_t)ttft, "tokens_per_sec",
                           m->s.token_interval_ms ? 1000.0 / m->s.token_interval_ms : 0.0,
                           "stop_reason", reason),
                 1000);
    rb_chan_push(j->ch, "[DONE]", (size_t)-1, 1000);
out:
    rb_chan_finish(j->ch);
    job_remove(m, j);
    return NULL;
}

static job *job_alloc(mock *m, const char *id, int max_tokens);

/* Validates the request and starts a job; NULL after replying with an error. */
static job *job_start(mock *m, rb_http_req *req, rb_http_reply *rep)
{
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    const char *prompt = NULL, *id = NULL;
    long long max_tokens = 128;
    rb_jcheck c;
    job *j = NULL;

    rb_jcheck_init(&c);
    if (!json_is_object(body)) {
        rb_http_reply_error(rep, 400, "INVALID_JSON", "body is not a JSON object", NULL);
        goto out;
    }
    rb_json_str(&c, body, "prompt", RB_REQUIRED, 1, 32768, &prompt);
    rb_json_int(&c, body, "max_tokens", RB_OPTIONAL, 1, 2048, &max_tokens);
    rb_json_str(&c, body, "job_id", RB_OPTIONAL, 1, 63, &id);
    if (!rb_jcheck_ok(&c)) {
        rb_http_reply_json(rep, 400, rb_jcheck_envelope(&c));
        goto out;
    }
    if (!atomic_load(&m->loaded)) {
        rb_http_reply_error(rep, 503, "LOADING", "the model is still loading", NULL);
        goto out;
    }
    j = job_alloc(m, id, (int)max_tokens);
    if (!j)
        rb_http_reply_error(
            rep, 503, "ALL_SLOTS_BUSY", "all slots are busy",
            json_pack("{s:i, s:i}", "slots_total", m->o.slots, "slots_busy", m->o.slots));
out:
    rb_jcheck_release(&c);
    json_decref(body);
    return j;
}

/* A job in a free place of the table (NULL when slots and queue are full, or busy). */
static job *job_alloc(mock *m, const char *id, int max_tokens)
{
    job *j = NULL;
    char uuid[37];
    int slot = -1;

    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < MAX_JOBS && slot < 0 && m->active < m->o.slots + m->o.queue; i++)
        if (!m->jobs[i])
            slot = i;
    if (slot >= 0 && !atomic_load(&m->busy)) {
        j = calloc(1, sizeof(*j));
        j->m = m;
        rb_uuid(uuid);
        snprintf(j->id, sizeof j->id, "%s", id ? id : uuid);
        j->max_tokens = max_tokens;
        j->ch = rb_chan_new(JOB_CHANNEL);
        atomic_init(&j->refs, 2); /* the table and the caller */
        m->jobs[slot] = j;
        m->active++;
    }
    pthread_mutex_unlock(&m->mu);
    return j;
}

static void job_run(mock *m, job *j)
{
    pthread_t t;

    atomic_fetch_add(&j->refs, 1); /* the thread's */
    pthread_create(&t, NULL, job_main, j);
    pthread_detach(t);
    atomic_fetch_add(&m->n_infer, 1);
}

/* ---- handlers --------------------------------------------------------------------------- */

static void h_health(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    (void)req;
    atomic_fetch_add(&m->n_health, 1);
    if (m->s.health_status != 200)
        rb_http_reply_error(rep, m->s.health_status, "SCRIPTED", "scripted health failure", NULL);
    else
        rb_http_reply_json(rep, 200,
                           json_pack("{s:s, s:s}", "status", "healthy", "state", state_name(m)));
}

static void h_ready(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    (void)req;
    if (atomic_load(&m->loaded))
        rb_http_reply_json(
            rep, 200,
            json_pack("{s:b, s:s, s:b}", "ready", 1, "state", state_name(m), "model_loaded", 1));
    else
        rb_http_reply_json(rep, 200,
                           json_pack("{s:b, s:s, s:s}", "ready", 0, "state", "loading",
                                     "progress_url", "/v1/loading/progress"));
}

static void h_progress(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    rb_chan *ch = rb_bcast_subscribe(m->progress);
    (void)req;
    rb_http_reply_sse(rep, ch);
    rb_chan_unref(ch);
}

static void h_inference(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    job *j = job_start(m, req, rep);
    if (!j)
        return;
    atomic_store(&j->attached, 1);
    rb_http_reply_sse(rep, j->ch);
    job_run(m, j);
    job_unref(j);
}

static void h_jobs(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    char url[128];
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    job *j;

    pthread_mutex_lock(&m->mu);
    if (body && json_array_size(m->job_requests) < MAX_RECORDED)
        json_array_append(m->job_requests, body);
    pthread_mutex_unlock(&m->mu);
    json_decref(body);
    if (!(j = job_start(m, req, rep)))
        return;
    snprintf(url, sizeof url, "/v1/jobs/%s/stream", j->id);
    rb_http_reply_json(rep, 202, json_pack("{s:s, s:s}", "job_id", j->id, "sse_url", url));
    job_run(m, j);
    job_unref(j);
}

static void h_job_stream(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    job *j = job_find(m, req->params[0]);
    if (!j)
        rb_http_reply_error(rep, 404, "JOB_NOT_FOUND", "no such job", NULL);
    else if (atomic_exchange(&j->attached, 1))
        rb_http_reply_error(rep, 409, "STREAM_TAKEN", "the job's stream is already open", NULL);
    else
        rb_http_reply_sse(rep, j->ch);
    job_unref(j);
}

static void h_job_cancel(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    job *j = job_find(m, req->params[0]);
    if (!j) {
        rb_http_reply_error(rep, 404, "JOB_NOT_FOUND", "no such job", NULL);
    } else {
        atomic_store(&j->cancel, 1);
        atomic_fetch_add(&m->n_cancels, 1);
        say("mock-worker: job %s cancelled", j->id);
        rb_http_reply_json(rep, 200,
                           json_pack("{s:s, s:s}", "job_id", j->id, "status", "cancelling"));
    }
    job_unref(j);
}

static void openai_error(rb_http_reply *rep, int status, const char *type, const char *param,
                         const char *code, const char *msg)
{
    rb_http_reply_json(rep, status,
                       json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", msg, "type", type,
                                 "param", param ? json_string(param) : json_null(), "code",
                                 code ? json_string(code) : json_null()));
}

/* The whole reply of a non-streaming OpenAI request, after "generating" every token. */
static json_t *openai_whole(mock *m, const job *j)
{
    int n = j->max_tokens < m->s.ntokens ? j->max_tokens : m->s.ntokens;
    rb_buf text;
    json_t *choice, *out;

    rb_buf_init(&text, 1 << 20);
    for (int i = 0; i < n; i++) {
        rb_sleep_ms(m->s.token_interval_ms);
        rb_buf_appends(&text, m->s.tokens[i]);
    }
    choice = json_pack("{s:i, s:s}", "index", 0, "finish_reason",
                       n == j->max_tokens ? "length" : "stop");
    if (j->format == FMT_CHAT)
        json_object_set_new(choice, "message",
                            json_pack("{s:s, s:o}", "role", "assistant", "content",
                                      rb_json_text(text.data ? text.data : "", text.len)));
    else
        json_object_set_new(choice, "text", rb_json_text(text.data ? text.data : "", text.len));
    out = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:{s:i, s:i, s:i}}", "id", j->id, "object",
                    j->format == FMT_CHAT ? "chat.completion" : "text_completion", "created",
                    (json_int_t)rb_unix_s(), "model", j->model, "choices", choice, "usage",
                    "prompt_tokens", 5, "completion_tokens", n, "total_tokens", n + 5);
    rb_buf_release(&text);
    return out;
}

/* POST /v1/chat/completions and /v1/completions. */
static void h_openai(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    int chat = strcmp(req->path, "/v1/chat/completions") == 0;
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *mt = json_object_get(body, "max_tokens"), *model = json_object_get(body, "model");
    int stream = json_is_true(json_object_get(body, "stream"));
    char id[64], uuid[37];
    job *j;

    atomic_fetch_add(chat ? &m->n_chat : &m->n_completion, 1);
    if (json_is_object(body)) {
        pthread_mutex_lock(&m->mu);
        if (json_array_size(m->openai_requests) < MAX_RECORDED)
            json_array_append(m->openai_requests, body);
        pthread_mutex_unlock(&m->mu);
    }
    if (!json_is_object(body)) {
        openai_error(rep, 400, "invalid_request_error", NULL, NULL, "body is not a JSON object");
    } else if (chat ? json_array_size(json_object_get(body, "messages")) == 0
                    : !json_is_string(json_object_get(body, "prompt"))) {
        openai_error(rep, 400, "invalid_request_error", chat ? "messages" : "prompt", NULL,
                     chat ? "'messages' must be a non-empty array" : "'prompt' is required");
    } else if (mt && (!json_is_integer(mt) || json_integer_value(mt) < 1)) {
        openai_error(rep, 400, "invalid_request_error", "max_tokens", NULL,
                     "'max_tokens' must be a positive integer");
    } else if (!atomic_load(&m->loaded)) {
        openai_error(rep, 503, "server_error", NULL, "loading", "the model is still loading");
    } else {
        rb_uuid(uuid);
        snprintf(id, sizeof id, "%s-%.20s", chat ? "chatcmpl" : "cmpl", uuid);
        j = job_alloc(m, id, mt ? (int)json_integer_value(mt) : 128);
        if (!j) {
            openai_error(rep, 503, "server_error", NULL, "all_slots_busy", "all slots are busy");
        } else {
            j->format = chat ? FMT_CHAT : FMT_COMPLETION;
            snprintf(j->model, sizeof j->model, "%s",
                     json_is_string(model) ? json_string_value(model) : "mock");
            if (stream) {
                atomic_store(&j->attached, 1);
                rb_http_reply_sse(rep, j->ch);
                job_run(m, j);
            } else {
                atomic_fetch_add(&m->n_infer, 1);
                rb_http_reply_json(rep, 200, openai_whole(m, j));
                rb_chan_finish(j->ch);
                job_remove(m, j);
            }
            job_unref(j);
        }
    }
    json_decref(body);
}

static void h_shutdown(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    atomic_fetch_add(&m->n_shutdown, 1);
    say("mock-worker: received POST %s", req->path);
    rb_http_reply_json(rep, 200, json_pack("{s:s}", "status", "shutting_down"));
    if (!m->s.ignore_shutdown)
        request_exit(m);
}

static void h_metrics(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    char text[256];
    (void)req;
    snprintf(text, sizeof text, "mock_worker_requests_total %ld\nmock_worker_slots_busy %d\n",
             atomic_load(&m->n_infer), busy_slots(m));
    rb_http_reply_text(rep, 200, "text/plain; version=0.0.4", text);
}

static void h_records(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    (void)req;
    json_t *reqs, *jobs;

    pthread_mutex_lock(&m->mu);
    reqs = json_deep_copy(m->openai_requests);
    jobs = json_deep_copy(m->job_requests);
    pthread_mutex_unlock(&m->mu);
    rb_http_reply_json(rep, 200,
                       json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
                                 "inference_requests", (json_int_t)atomic_load(&m->n_infer),
                                 "shutdown_requests", (json_int_t)atomic_load(&m->n_shutdown),
                                 "heartbeats_sent", (json_int_t)atomic_load(&m->n_heartbeats),
                                 "cancels", (json_int_t)atomic_load(&m->n_cancels), "health_checks",
                                 (json_int_t)atomic_load(&m->n_health), "chat_requests",
                                 (json_int_t)atomic_load(&m->n_chat), "completion_requests",
                                 (json_int_t)atomic_load(&m->n_completion), "disconnects",
                                 (json_int_t)atomic_load(&m->n_disconnects), "openai_requests",
                                 reqs ? reqs : json_array(), "job_requests",
                                 jobs ? jobs : json_array()));
}

static void h_busy(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *v = json_object_get(body, "busy");

    if (!json_is_boolean(v)) {
        rb_http_reply_error(rep, 400, "INVALID_REQUEST", "expected {\"busy\":true|false}", NULL);
    } else {
        atomic_store(&m->busy, json_is_true(v));
        say("busy set to %s", json_is_true(v) ? "true" : "false");
        rb_http_reply_json(rep, 200, json_pack("{s:b}", "busy", json_is_true(v)));
    }
    json_decref(body);
}

static const rb_http_route routes[] = {
    {"GET", "/health", h_health, RB_ROUTE_PUBLIC},
    {"GET", "/v1/health", h_health, RB_ROUTE_PUBLIC},
    {"GET", "/metrics", h_metrics, RB_ROUTE_PUBLIC},
    {"GET", "/v1/ready", h_ready, 0},
    {"GET", "/v1/loading/progress", h_progress, 0},
    {"POST", "/v1/inference", h_inference, 0},
    {"POST", "/v1/chat/completions", h_openai, 0},
    {"POST", "/v1/completions", h_openai, 0},
    {"DELETE", "/v1/inference/{id}", h_job_cancel, 0},
    {"POST", "/v1/jobs", h_jobs, 0},
    {"GET", "/v1/jobs/{id}/stream", h_job_stream, 0},
    {"DELETE", "/v1/jobs/{id}", h_job_cancel, 0},
    {"POST", "/v1/admin/shutdown", h_shutdown, 0},
    {"POST", "/v1/shutdown", h_shutdown, 0},
    {"GET", "/mock/records", h_records, 0},
    {"POST", "/mock/busy", h_busy, 0},
};

/* ---- main ------------------------------------------------------------------------------- */

/* The worker's options (those it does not act on, as --threads, are accepted and ignored).
 * Returns 1 when the mock may start, 0 after -h/--help or --version (printed), -1 after a
 * usage error (printed). */
static int parse_args(int argc, char **argv, opts *o)
{
    int ignored = 0;
    const char *ignored_str = NULL;
    char err[256];
    const rb_opt defs[] = {
        {"--model", RB_OPT_STR, &o->model, .what = "PATH",
         .help = "reported as the model (required)"},
        {"--port", RB_OPT_INT, &o->port, 1, 65535, .help = "HTTP port (required)"},
        {"--scenario", RB_OPT_STR, &o->scenario, .what = "FILE|JSON",
         .help = "replies, delays and faults to play"},
        {"--worker-id", RB_OPT_STR, &o->worker_id, .what = "ID", .help = "default worker-mock"},
        {"--model-ref", RB_OPT_STR, &o->model_ref, .what = "REF", .help = "default mock"},
        {"--backend", RB_OPT_STR, &o->backend, .what = "NAME", .help = "reported backend"},
        {"--device", RB_OPT_STR, &o->device, .what = "N", .help = "reported device"},
        {"--hive-url", RB_OPT_STR, &o->hive_url, .what = "URL",
         .help = "hive for heartbeats and the ready callback"},
        {"--advertise-host", RB_OPT_STR, &o->advertise_host, .what = "HOST",
         .help = "host in the URL sent to the hive"},
        {"--local-mode", RB_OPT_FLAG, &o->local_mode, .help = "no authentication"},
        {"--slots", RB_OPT_INT, &o->slots, 1, 64, .help = "concurrent jobs"},
        {"--queue", RB_OPT_INT, &o->queue, 0, 1000000, .help = "jobs that may wait"},
        {"--stream-open-timeout", RB_OPT_INT, &o->stream_open_timeout_ms, 0, 1000000, .what = "MS",
         .help = "as the worker's"},
        {"--heartbeat-interval", RB_OPT_NUM, &o->heartbeat_s, 0.01, 86400, .what = "SECONDS",
         .help = "seconds between heartbeats"},
        {"--no-mmap", RB_OPT_FLAG, &ignored, .help = "accepted and ignored"},
        {"--threads", RB_OPT_INT, &ignored, 0, 1000000, .help = "accepted and ignored"},
        {"--ctx", RB_OPT_INT, &ignored, 0, 1000000, .help = "accepted and ignored"},
        {"--kv-type", RB_OPT_STR, &ignored_str, .help = "accepted and ignored"},
    };
    const rb_cmd cmd = {"mock-worker",
                        NULL,
                        "A stand-in for llm-worker-rbee, driven by a scenario.",
                        defs,
                        RB_ARRAY_LEN(defs),
                        NULL,
                        1};
    int shown = 0;

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (shown)
        return 0;
    if (!o->model || !o->port) {
        fprintf(stderr, "mock-worker: --model and --port are required\n");
        return -1;
    }
    return 1;
}

static void opts_defaults(opts *o)
{
    memset(o, 0, sizeof(*o));
    o->worker_id = "worker-mock";
    o->model_ref = "mock";
    o->backend = "cpu";
    o->device = "0";
    o->advertise_host = "127.0.0.1";
    o->slots = 1;
    o->queue = 4;
    o->heartbeat_s = 30;
    o->stream_open_timeout_ms = 30000;
}

/* Runs the worker's life once the server listens: heartbeats, loading, then waiting for
 * SIGTERM, SIGINT or a shutdown request (SIGUSR1). Returns the exit status. */
static int live(mock *m, const sigset_t *set)
{
    pthread_t hb;
    int sig = 0, rc = 0, have_hb = m->o.hive_url != NULL;

    if (have_hb)
        pthread_create(&hb, NULL, heartbeat_main, m);
    if (!load_model(m)) {
        rc = 1;
    } else {
        while (sig != SIGTERM && sig != SIGINT && sig != SIGUSR1)
            if (sigwait(set, &sig) != 0)
                sig = 0;
        say("mock-worker: stopping (%s)", sig == SIGUSR1 ? "shutdown request" : strsignal(sig));
    }
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (have_hb)
        pthread_join(hb, NULL);
    return rc;
}

static int serve(mock *m)
{
    rb_http_config cfg = rb_http_config_default();
    rb_http_server *srv = NULL;
    sigset_t set;
    char err[256];
    int rc = 1;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    if (!m->s.ignore_sigterm)
        sigaddset(&set, SIGTERM);
    else
        signal(SIGTERM, SIG_IGN);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    cfg.bind_addr = m->o.local_mode ? "127.0.0.1" : "0.0.0.0";
    cfg.port = (uint16_t)m->o.port;
    cfg.token = m->token;
    cfg.routes = routes;
    cfg.nroutes = RB_ARRAY_LEN(routes);
    cfg.user = m;
    cfg.component = "mock-worker";
    cfg.sse_keepalive_ms = m->s.keepalive_ms;
    if (m->s.max_conns_per_ip > 0)
        cfg.max_connections_per_ip = m->s.max_conns_per_ip;
    if (rb_http_server_start(&cfg, &srv, err, sizeof err)) {
        fprintf(stderr, "mock-worker: %s\n", err);
        goto out;
    }
    printf("mock-worker %s listening on port %d\n", m->o.worker_id, m->o.port);
    fflush(stdout);
    rc = live(m, &set);
out:
    rb_http_server_stop(srv);
    return rc;
}

int main(int argc, char **argv)
{
    static mock m;
    int rc = 2, parsed;

    opts_defaults(&m.o);
    if ((parsed = parse_args(argc, argv, &m.o)) <= 0) {
        rc = parsed < 0 ? 2 : 0;
        goto out;
    }
    if (!script_load(&m.s, m.o.scenario))
        goto out;
    atomic_init(&m.busy, m.s.busy);
    if (m.s.start_exit_code >= 0) {
        fprintf(stderr, "%s\n", m.s.start_message);
        rc = m.s.start_exit_code;
        goto out;
    }
    m.token = m.o.local_mode ? NULL : getenv("RBEE_API_TOKEN");
    if (!m.o.local_mode && (!m.token || !*m.token)) {
        fprintf(stderr, "mock-worker: RBEE_API_TOKEN is required without --local-mode\n");
        rc = 1;
        goto out;
    }
    rb_client_global_init();
    m.main_thread = pthread_self();
    m.start_ms = rb_now_ms();
    pthread_mutex_init(&m.mu, NULL);
    rb_cond_init_monotonic(&m.cv);
    m.progress = rb_bcast_new();
    m.openai_requests = json_array();
    m.job_requests = json_array();
    rc = serve(&m);
    json_decref(m.openai_requests);
    json_decref(m.job_requests);
    rb_bcast_free(m.progress);
out:
    return rc;
}
