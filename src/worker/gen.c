/*
 * gen.c - model loading and the generation threads: the one place where HTTP streams and the
 * engine meet.
 *
 * DESIGN
 * A loader thread opens the model (publishing layer progress), opens one engine session per
 * slot and starts one generation thread per slot. Each generation thread pops a job, runs
 * the prompt, and then for every token pushes a "token" event into the job's channel the
 * moment the engine returns it; the HTTP side drains the channel concurrently. Before every
 * token the thread checks the job's cancel flag and whether the client has gone (the channel
 * is closed), so a cancel or a disconnect stops generation within one token and the thread
 * takes the next job. Every job ends with exactly one `end` or `error` event and then [DONE].
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"
#include "worker.h"

#define PUSH_TIMEOUT_MS 30000 /* a client that reads nothing for this long is dropped */

typedef struct slot {
    wrk *w;
    int index;
    eng_session *session;
    pthread_t tid;
    int started;
} slot;

struct wrk_gen {
    eng_model *model;
    slot *slots;
    int nslots;
    pthread_t loader;
    int loader_started;
};

/* ---- events ------------------------------------------------------------------------------ */

static rb_err push_json(wrk_job *j, json_t *e, int timeout_ms)
{
    return rb_json_push(j->chan, e, timeout_ms);
}

/* x rounded to one decimal, as the end event reports durations and rates. */
static double tenths(double x)
{
    return (double)(int64_t)(x * 10.0 + (x < 0 ? -0.5 : 0.5)) / 10.0;
}

static void end_stream(wrk_job *j)
{
    rb_chan_push(j->chan, "[DONE]", (size_t)-1, 1000);
    rb_chan_finish(j->chan);
}

static void push_error(wrk_job *j, const char *code, const char *message)
{
    push_json(j, json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message),
              PUSH_TIMEOUT_MS);
}

/* The end event: what was generated, how fast, and why it stopped. */
static json_t *end_event(int tokens_out, size_t prompt_tokens, double decode_ms, double ttft_ms,
                         double tokens_per_sec, const char *stop_reason)
{
    return json_pack("{s:s, s:i, s:I, s:f, s:f, s:f, s:s}", "type", "end", "tokens_out", tokens_out,
                     "prompt_tokens", (json_int_t)prompt_tokens, "decode_time_ms",
                     tenths(decode_ms), "ttft_ms", tenths(ttft_ms), "tokens_per_sec",
                     tenths(tokens_per_sec), "stop_reason", stop_reason);
}

static const char *stop_reason_name(eng_stop_reason r, int max_tokens_hit)
{
    if (max_tokens_hit)
        return "MAX_TOKENS";
    switch (r) {
    case ENG_STOP_EOS:
        return "EOS";
    case ENG_STOP_SEQUENCE:
        return "STOP_SEQUENCE";
    case ENG_STOP_CANCELLED:
        return "CANCELLED";
    case ENG_STOP_CONTEXT:
        return "MAX_TOKENS"; /* the context bounds the tokens: documented */
    default:
        return "MAX_TOKENS";
    }
}

void wrk_job_end_unstarted(wrk_job *j)
{
    if (j->req.api != WRK_API_NATIVE) {
        wrk_oai_fail(j, "the request was cancelled before it started");
        end_stream(j);
        return;
    }
    push_json(j, end_event(0, 0, 0, 0, 0, "CANCELLED"), PUSH_TIMEOUT_MS);
    end_stream(j);
}

/* ---- one job ----------------------------------------------------------------------------- */

typedef struct run_state {
    int emitted;      /* token events sent: the next "i" */
    int generated;    /* tokens sampled */
    int64_t first_ms; /* when the first token event was pushed (0: none yet) */
} run_state;

/* Pushes a token event; RB_ECLOSED when the client has gone. sampled_us is when the
 * generation thread produced the text (CLOCK_MONOTONIC, microseconds): a client on the same
 * machine compares it with its own receive time. */
static rb_err push_token(wrk_job *j, run_state *rs, const char *text, size_t len,
                         int64_t sampled_us)
{
    rb_err rc =
        push_json(j,
                  json_pack("{s:s, s:o, s:i, s:I}", "type", "token", "t", rb_json_text(text, len),
                            "i", rs->emitted, "sampled_us", (json_int_t)sampled_us),
                  PUSH_TIMEOUT_MS);
    if (!rc) {
        if (!rs->first_ms)
            rs->first_ms = rb_now_ms();
        rs->emitted++;
    }
    return rc;
}

/* One step's output for whichever API the job speaks. */
static rb_err emit(wrk *w, wrk_job *j, run_state *rs, const eng_step *st, int32_t token)
{
    wrk_lp top[ENG_MAX_TOP_LOGPROBS];
    rb_err rc;

    if (j->req.api == WRK_API_NATIVE)
        return st->text_len ? push_token(j, rs, st->text, st->text_len, rb_now_us()) : RB_OK;
    for (int i = 0; i < st->n_top; i++)
        top[i] = (wrk_lp){st->top[i].token, st->top[i].logprob};
    rc = wrk_oai_token(w, j, st->text, st->text_len, token, st->logprob, top, st->n_top);
    if (!rc && st->text_len && !rs->first_ms)
        rs->first_ms = rb_now_ms();
    return rc;
}

static void fail(wrk_job *j, const char *code, const char *message)
{
    if (j->req.api == WRK_API_NATIVE)
        push_error(j, code, message);
    else
        wrk_oai_fail(j, message);
}

static void run_job(slot *sl, wrk_job *j)
{
    wrk *w = sl->w;
    eng_session *s = sl->session;
    eng_sampler_params sp = eng_sampler_params_default();
    run_state rs = {0};
    int32_t *ids = NULL;
    size_t nids = 0;
    char err[256];
    eng_stop_reason reason = ENG_STOP_NONE;
    int max_hit = 0, client_gone = 0, failed = 0;
    int64_t started_ms = rb_now_ms();
    rb_err rc;

    if (j->req.api != WRK_API_NATIVE
            ? wrk_oai_begin(w, j) != RB_OK
            : push_json(j,
                        json_pack("{s:s, s:s, s:o, s:I}", "type", "started", "job_id", j->id,
                                  "model", rb_json_text(w->cfg.model_ref, strlen(w->cfg.model_ref)),
                                  "started_at", (json_int_t)rb_unix_s()),
                        PUSH_TIMEOUT_MS)) {
        client_gone = 1;
        reason = ENG_STOP_CANCELLED;
        goto out;
    }

    if (j->req.ids) { /* tokenized by the handler */
        ids = j->req.ids;
        nids = j->req.nids;
        j->req.ids = NULL;
        rc = RB_OK;
    } else {
        rc =
            eng_model_tokenize(w->gen->model, j->req.prompt, strlen(j->req.prompt), 1, &ids, &nids);
    }
    if (rc) {
        fail(j, "TOKENIZE_FAILED", "the prompt could not be tokenized");
        failed = 1;
        goto out;
    }
    if (nids >= (size_t)eng_session_n_ctx(s)) {
        snprintf(err, sizeof err, "prompt has %zu tokens; the context holds %d", nids,
                 eng_session_n_ctx(s));
        fail(j, "PROMPT_TOO_LONG", err);
        failed = 1;
        goto out;
    }
    sp.temperature = j->req.temperature;
    sp.top_k = j->req.top_k;
    sp.top_p = j->req.top_p;
    sp.min_p = j->req.min_p;
    sp.repeat_penalty = j->req.repetition_penalty;
    sp.frequency_penalty = j->req.frequency_penalty;
    sp.presence_penalty = j->req.presence_penalty;
    sp.logprobs = j->req.logprobs;
    sp.top_logprobs = j->req.top_logprobs;
    sp.seed = j->req.seed;
    rc = eng_session_reset(s, &sp, (const char *const *)j->req.stop, (size_t)j->req.nstop);
    if (!rc)
        rc = eng_session_prefill(s, ids, nids, err, sizeof err);
    if (rc) {
        /* Cancelled in the prefill: the stream ends like any cancelled job, with one "end"
         * (stop_reason CANCELLED); any other failure with one "error". */
        if (rc != RB_ECANCELED) {
            fail(j, "ENGINE_ERROR", err);
            failed = 1;
        }
        reason = ENG_STOP_CANCELLED;
        goto out;
    }

    for (;;) {
        eng_step st;
        if (wrk_job_cancelled(j) || rb_chan_is_closed(j->chan)) {
            client_gone = rb_chan_is_closed(j->chan);
            reason = ENG_STOP_CANCELLED;
            break;
        }
        rc = eng_session_step(s, &st);
        if (rc && rc != RB_ECANCELED) {
            fail(j, "ENGINE_ERROR", rb_strerror(rc));
            failed = 1;
            break;
        }
        if (st.token >= 0)
            rs.generated++;
        /* The end-of-generation token is no part of the completion (nor of its logprobs). */
        if (emit(w, j, &rs, &st, st.done && st.reason == ENG_STOP_EOS ? -1 : st.token)) {
            client_gone = 1;
            reason = ENG_STOP_CANCELLED;
            break;
        }
        if (st.done) {
            reason = st.reason;
            break;
        }
        if (rs.generated >= j->req.max_tokens) {
            max_hit = 1;
            break;
        }
    }
    if (max_hit || (reason == ENG_STOP_CONTEXT)) {
        /* Release text held back for UTF-8 or a possible stop string. */
        eng_step st;
        eng_session_flush(s, &st);
        if (st.text_len)
            emit(w, j, &rs, &st, -1);
    }
out : {
    eng_timings tm;
    double decode_ms, tps, ttft;
    eng_session_timings(s, &tm);
    decode_ms = tm.decode_ms;
    tps = decode_ms > 0 ? rs.generated * 1000.0 / decode_ms : 0;
    ttft = rs.first_ms ? (double)(rs.first_ms - j->created_ms) : 0;
    if (!failed && !client_gone && j->req.api != WRK_API_NATIVE) {
        if (reason != ENG_STOP_CANCELLED)
            wrk_oai_end(w, j, max_hit || reason == ENG_STOP_CONTEXT ? "length" : "stop", nids,
                        rs.generated - (reason == ENG_STOP_EOS));
        else
            wrk_oai_fail(j, "the request was cancelled");
    } else if (!failed && !client_gone) {
        push_json(
            j,
            end_event(rs.generated, nids, decode_ms, ttft, tps, stop_reason_name(reason, max_hit)),
            PUSH_TIMEOUT_MS);
    }
    wrk_metrics_tokens(w->metrics, rs.generated);
    wrk_metrics_request(w->metrics, failed                         ? WRK_OUT_ERROR
                                    : reason == ENG_STOP_CANCELLED ? WRK_OUT_CANCELLED
                                                                   : WRK_OUT_COMPLETED);
    if (!failed && rs.first_ms)
        wrk_metrics_generation(w->metrics, ttft, tps);
    rb_log(RB_LOG_INFO, "worker", "job %s %s after %d tokens (%d prompt, %.0f ms, %.1f tok/s)%s",
           j->id,
           failed                         ? "failed"
           : reason == ENG_STOP_CANCELLED ? "cancelled"
                                          : "completed",
           rs.generated, (int)nids, (double)(rb_now_ms() - started_ms), tps,
           client_gone ? ": client disconnected" : "");
}
    free(ids);
}

/* ---- threads ----------------------------------------------------------------------------- */

static void *slot_main(void *arg)
{
    slot *sl = arg;
    wrk *w = sl->w;
    char name[16];

    snprintf(name, sizeof name, "gen-%d", sl->index);
    rb_thread_set_name(name);
    for (;;) {
        wrk_job *j = wrk_jobs_pop(w->jobs);
        if (!j)
            break;
        /* The slot is taken from here, also while a /v1/jobs job waits for its stream: the
         * worker says busy, so the hive does not offer it as idle while it would refuse. */
        atomic_fetch_add(&w->busy, 1);
        wrk_poke(w);
        if (j->wait_for_stream && !wrk_job_wait_stream(j, w->cfg.stream_open_timeout_ms) &&
            !wrk_job_cancelled(j)) {
            rb_log(RB_LOG_WARN, "worker",
                   "job %s cancelled: its stream was not opened within %d ms", j->id,
                   w->cfg.stream_open_timeout_ms);
            wrk_job_cancel(j);
        }
        if (wrk_job_cancelled(j) || rb_chan_is_closed(j->chan)) {
            wrk_jobs_done(w->jobs, j);
            atomic_fetch_sub(&w->busy, 1);
            wrk_poke(w);
            wrk_job_end_unstarted(j);
            wrk_metrics_request(w->metrics, WRK_OUT_CANCELLED);
        } else {
            run_job(sl, j);
            /* The slot is free before the client sees [DONE], so a request sent right after
             * the stream ends finds the worker idle. */
            wrk_jobs_done(w->jobs, j);
            atomic_fetch_sub(&w->busy, 1);
            wrk_poke(w);
            end_stream(j);
        }
        wrk_job_unref(j);
    }
    return NULL;
}

static void on_progress(void *user, int loaded, int total)
{
    wrk *w = user;
    json_t *e = json_pack("{s:s, s:i, s:i}", "stage", "loading", "layers_loaded", loaded,
                          "layers_total", total);
    char *ev = e ? rb_json_dump(e) : NULL;

    atomic_store(&w->layers_loaded, loaded);
    atomic_store(&w->layers_total, total);
    if (ev)
        rb_bcast_publish(w->progress, ev);
    free(ev);
    json_decref(e);
    if (w->cfg.load_delay_ms > 0 && loaded < total) {
        /* Test knob (RBEE_TEST_LOAD_DELAY_MS): makes the loading state observable with a
         * model that loads in milliseconds. Never set in production. */
        rb_sleep_ms(w->cfg.load_delay_ms);
    }
}

static void load_failed(wrk *w, const char *msg)
{
    json_t *e =
        json_pack("{s:s, s:s, s:s}", "stage", "error", "code", "MODEL_LOAD_FAILED", "message", msg);
    char *s = rb_json_dump(e);
    rb_log(RB_LOG_ERROR, "worker", "%s", msg);
    atomic_store(&w->phase, WRK_FAILED);
    rb_bcast_finish(w->progress, s);
    free(s);
    json_decref(e);
    wrk_request_stop(w);
}

static void *loader_main(void *arg)
{
    wrk *w = arg;
    wrk_gen *g = w->gen;
    eng_model_params mp = eng_model_params_default();
    eng_session_params sp = eng_session_params_default();
    eng_model_info info;
    char err[512];
    int64_t t0 = rb_now_ms();
    int threads;

    rb_thread_set_name("loader");
    mp.progress = on_progress;
    mp.progress_user = w;
    mp.copy_weights = w->cfg.no_mmap;
    if (eng_model_open(w->cfg.model_path, &mp, &g->model, err, sizeof err)) {
        load_failed(w, err);
        return NULL;
    }
    eng_model_get_info(g->model, &info);
    snprintf(w->model_name, sizeof w->model_name, "%s", info.name);
    w->chat_template = eng_model_chat_template(g->model);
    if (info.bos >= 0)
        w->bos_text[eng_model_token_bytes(g->model, info.bos, w->bos_text,
                                          sizeof w->bos_text - 1)] = 0;
    if (info.eos >= 0)
        w->eos_text[eng_model_token_bytes(g->model, info.eos, w->eos_text,
                                          sizeof w->eos_text - 1)] = 0;
    threads = w->cfg.threads > 0 ? w->cfg.threads : rb_physical_cores();
    if (w->cfg.ctx >= 0)
        sp.n_ctx = w->cfg.ctx;         /* else the engine's default */
    if (w->cfg.ctx > info.n_ctx_train) /* the default 4096 is capped without a word */
        rb_log(RB_LOG_WARN, "worker",
               "--ctx %d is more than the model's training context of %d tokens; using %d",
               w->cfg.ctx, info.n_ctx_train, info.n_ctx_train);
    sp.kv_type = (eng_type)eng_type_parse(w->cfg.kv_type); /* checked by wrk_config_parse */
    sp.n_threads = threads / g->nslots > 0 ? threads / g->nslots : 1;
    {
        rb_mem_estimate est;
        if (eng_model_estimate_memory(g->model, &sp, g->nslots, &est, err, sizeof err)) {
            load_failed(w, err);
            return NULL;
        }
        rb_log(RB_LOG_INFO, "worker",
               "memory estimate %llu MiB: weights %llu, KV cache %llu (%s), scratch %llu",
               (unsigned long long)(est.total >> 20), (unsigned long long)(est.weights >> 20),
               (unsigned long long)(est.kv >> 20), w->cfg.kv_type,
               (unsigned long long)(est.scratch >> 20));
    }
    for (int i = 0; i < g->nslots; i++) {
        slot *sl = &g->slots[i];
        sl->w = w;
        sl->index = i;
        if (eng_session_open(g->model, &sp, &sl->session, err, sizeof err)) {
            load_failed(w, err);
            return NULL;
        }
    }
    for (int i = 0; i < g->nslots; i++) {
        if (pthread_create(&g->slots[i].tid, NULL, slot_main, &g->slots[i]) != 0) {
            load_failed(w, "cannot start a generation thread");
            return NULL;
        }
        g->slots[i].started = 1;
    }
    rb_log(RB_LOG_INFO, "worker",
           "model '%s' loaded in %lld ms: %d layers, %d context, %d slots x %d threads",
           w->cfg.model_path, (long long)(rb_now_ms() - t0), info.n_layer,
           eng_session_n_ctx(g->slots[0].session), g->nslots, sp.n_threads);
    w->started_unix = rb_unix_s();
    atomic_store(&w->phase, WRK_READY);
    rb_bcast_finish(w->progress, "{\"stage\":\"ready\"}");
    wrk_poke(w);
    return NULL;
}

rb_err wrk_gen_start(wrk *w, char *err, size_t errlen)
{
    wrk_gen *g = calloc(1, sizeof(*g));
    if (!g)
        return RB_ENOMEM;
    g->nslots = w->cfg.slots > 0 ? w->cfg.slots : 1;
    g->slots = calloc((size_t)g->nslots, sizeof(*g->slots));
    if (!g->slots) {
        free(g);
        return RB_ENOMEM;
    }
    w->gen = g;
    if (pthread_create(&g->loader, NULL, loader_main, w) != 0) {
        free(g->slots);
        free(g);
        w->gen = NULL;
        return rb_errf(err, errlen, RB_ENOMEM, "cannot start the loader thread");
    }
    g->loader_started = 1;
    return RB_OK;
}

void wrk_gen_stop(wrk *w)
{
    wrk_gen *g = w->gen;
    if (!g)
        return;
    if (g->loader_started)
        pthread_join(g->loader, NULL);
    for (int i = 0; i < g->nslots; i++) {
        if (g->slots[i].started)
            pthread_join(g->slots[i].tid, NULL);
        eng_session_free(g->slots[i].session);
    }
    eng_model_free(g->model);
    free(w->chat_template);
    w->chat_template = NULL;
    free(g->slots);
    free(g);
    w->gen = NULL;
}

rb_err wrk_gen_tokenize(wrk *w, const char *text, int special, int32_t **ids, size_t *n)
{
    if (!w->gen || !w->gen->model || atomic_load(&w->phase) != WRK_READY)
        return RB_EINVAL;
    return eng_model_tokenize_ex(w->gen->model, text, strlen(text),
                                 ENG_MODEL_TOK_ADD_BOS | (special ? ENG_MODEL_TOK_SPECIAL : 0), ids,
                                 n);
}

int wrk_gen_n_ctx(wrk *w)
{
    return w->gen && w->gen->nslots > 0 && w->gen->slots[0].session
               ? eng_session_n_ctx(w->gen->slots[0].session)
               : 0;
}

size_t wrk_gen_token_bytes(wrk *w, int32_t id, char *out, size_t cap)
{
    return eng_model_token_bytes(w->gen->model, id, out, cap);
}

int wrk_gen_busy(wrk *w)
{
    return atomic_load(&w->busy);
}
