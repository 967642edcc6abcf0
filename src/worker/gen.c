/*
 * gen.c - model loading and the scheduler: the one place where HTTP streams and the engine
 * meet.
 *
 * DESIGN
 * A loader thread opens the model (publishing layer progress), one engine batch of --slots
 * sessions (eng_batch_open: one pool, one set of pass buffers, a KV cache each) and starts
 * the scheduler, the one generation thread. The scheduler takes queued jobs into free slots
 * (the slot whose cache holds the longest prefix of the prompt, else the least recently
 * used: the prompt cache), then runs rounds: every decoding slot samples its token from the
 * last pass and pushes it into its job's channel at once; then one pass (eng_batch_decode)
 * feeds back every sampled token and adds chunks of the prompts still being prefilled, up to
 * --batch tokens in all, so a long prompt delays the running streams by one chunk at most and
 * N streams read the weights once per step, not N times. Each slot samples with its own
 * parameters and seed. Before every round the scheduler checks each job's cancel flag and
 * whether its client has gone (the channel is closed), so a cancel or a disconnect stops a
 * sequence within one step or one prompt chunk. A slot steps only while its channel has room
 * for a step's events and the end events (CHAN_MARGIN), so no push ever waits: a reader that
 * stops reading stalls its own slot only, and is dropped after PUSH_TIMEOUT_MS. Every job ends
 * with exactly one `end` or `error` event and then [DONE].
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
        return "CONTEXT_FULL";
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

/* ---- the scheduler ---------------------------------------------------------------------- */

/* Events a step may push (a token, or an OpenAI role and content chunk) and the channel room
 * a slot needs before it steps: MARGIN. Since every step starts with that much room, the end
 * events always find room too, and no push ever waits for a slow reader. */
#define STEP_EVENTS 2
#define CHAN_MARGIN 16
#define IDLE_POLL_MS 20 /* a scheduler waiting only for streams to open or readers to read */

typedef enum slot_phase {
    SL_FREE = 0,
    SL_WAIT,    /* a /v1/jobs job waiting for its stream to be opened */
    SL_PREFILL, /* its prompt goes through in chunks */
    SL_DECODE,  /* one token per pass */
} slot_phase;

typedef struct slot {
    int index;
    eng_session *s;
    slot_phase phase;
    wrk_job *j;
    rb_err tok_rc; /* the tokenizer's answer, reported once the job starts */
    int32_t *ids;
    size_t nids, fed, cached; /* prompt tokens, of them in the cache, of them kept from before */
    run_state rs;
    int64_t started_ms, wait_until_ms, stalled_ms;
    uint64_t used; /* the scheduler's clock when the slot last finished: least recently used */
    eng_stop_reason reason;
    int max_hit, failed, client_gone;
} slot;

struct wrk_gen {
    eng_model *model;
    eng_batch *batch;
    slot *slots;
    int nslots;
    uint64_t clock;
    pthread_t loader, sched;
    int loader_started, sched_started;
};

static void fail(wrk_job *j, const char *code, const char *message)
{
    if (j->req.api == WRK_API_NATIVE)
        push_error(j, code, message);
    else
        wrk_oai_fail(j, message);
}

static int has_room(const wrk_job *j)
{
    return rb_chan_depth(j->chan) + CHAN_MARGIN <= j->chan_cap;
}

/* The stream-opening check of a waiting slot, the cancel and disconnect checks of a running
 * one. */
static int gone(slot *sl)
{
    if (rb_chan_is_closed(sl->j->chan)) {
        sl->client_gone = 1;
        return 1;
    }
    return wrk_job_cancelled(sl->j);
}

/* Ends the slot's job: the end or error event, metrics, the log line, [DONE]; the slot is
 * free again and its cache stays for the next prompt. */
static void finish(wrk *w, slot *sl)
{
    wrk_job *j = sl->j;
    eng_timings tm;
    double decode_ms, tps, ttft;
    const int started = sl->phase != SL_WAIT;

    if (started && (sl->max_hit || sl->reason == ENG_STOP_CONTEXT) && !sl->failed &&
        !sl->client_gone) {
        eng_step st; /* text held back for UTF-8 or a possible stop string */
        eng_session_flush(sl->s, &st);
        if (st.text_len)
            emit(w, j, &sl->rs, &st, -1);
    }
    eng_session_timings(sl->s, &tm);
    decode_ms = started ? tm.decode_ms : 0;
    tps = decode_ms > 0 ? sl->rs.generated * 1000.0 / decode_ms : 0;
    ttft = sl->rs.first_ms ? (double)(sl->rs.first_ms - j->created_ms) : 0;
    if (!started) {
        if (!sl->client_gone)
            wrk_job_end_unstarted(j);
    } else if (!sl->failed && !sl->client_gone && j->req.api != WRK_API_NATIVE) {
        if (sl->reason != ENG_STOP_CANCELLED)
            wrk_oai_end(w, j, sl->max_hit || sl->reason == ENG_STOP_CONTEXT ? "length" : "stop",
                        sl->nids, sl->cached, sl->rs.generated - (sl->reason == ENG_STOP_EOS));
        else
            wrk_oai_fail(j, "the request was cancelled");
    } else if (!sl->failed && !sl->client_gone) {
        json_t *e = end_event(sl->rs.generated, sl->nids, decode_ms, ttft, tps,
                              stop_reason_name(sl->reason, sl->max_hit));
        json_object_set_new(e, "prompt_tokens_cached", json_integer((json_int_t)sl->cached));
        push_json(j, e, PUSH_TIMEOUT_MS);
    }
    wrk_metrics_tokens(w->metrics, sl->rs.generated);
    wrk_metrics_request(w->metrics, sl->failed                         ? WRK_OUT_ERROR
                                    : sl->reason == ENG_STOP_CANCELLED ? WRK_OUT_CANCELLED
                                                                       : WRK_OUT_COMPLETED);
    if (started && !sl->failed && sl->rs.first_ms)
        wrk_metrics_generation(w->metrics, ttft, tps);
    if (started)
        rb_log(
            RB_LOG_INFO, "worker",
            "job %s %s after %d tokens (%d prompt, %.0f ms, %.1f tok/s, %d prompt tokens cached)%s",
            j->id,
            sl->failed                         ? "failed"
            : sl->reason == ENG_STOP_CANCELLED ? "cancelled"
                                               : "completed",
            sl->rs.generated, (int)sl->nids, (double)(rb_now_ms() - sl->started_ms), tps,
            (int)sl->cached, sl->client_gone ? ": client disconnected" : "");
    /* The slot is free before the client sees [DONE], so a request sent right after the
     * stream ends finds the worker idle. */
    wrk_jobs_done(w->jobs, j);
    atomic_fetch_sub(&w->busy, 1);
    wrk_poke(w);
    end_stream(j);
    wrk_job_unref(j);
    free(sl->ids);
    sl->ids = NULL;
    sl->j = NULL;
    sl->phase = SL_FREE;
    sl->used = ++w->gen->clock;
}

/* The slot for a prompt: the free one whose cache holds the longest prefix of it, else the
 * least recently used free one. */
static slot *pick_slot(wrk_gen *g, const int32_t *ids, size_t n)
{
    slot *best = NULL;
    size_t best_len = 0;

    for (int i = 0; i < g->nslots; i++) {
        slot *sl = &g->slots[i];
        size_t k;
        if (sl->phase != SL_FREE)
            continue;
        k = ids ? eng_session_cached_prefix(sl->s, ids, n) : 0;
        if (!best || k > best_len || (k == best_len && sl->used < best->used)) {
            best = sl;
            best_len = k;
        }
    }
    return best;
}

/* Starts generation of the slot's job: the started event, the prompt checks, the sampler,
 * the prompt cache. The slot then prefills, or is finished. */
static void start(wrk *w, slot *sl)
{
    wrk_job *j = sl->j;
    eng_sampler_params sp = eng_sampler_params_default();
    const int n_ctx = eng_session_n_ctx(sl->s);
    char err[256];

    json_t *started = NULL;

    sl->phase = SL_PREFILL;
    sl->started_ms = rb_now_ms();
    if (j->req.api == WRK_API_NATIVE) {
        started = json_pack("{s:s, s:s, s:o, s:I}", "type", "started", "job_id", j->id, "model",
                            rb_json_text(w->cfg.model_ref, strlen(w->cfg.model_ref)), "started_at",
                            (json_int_t)rb_unix_s());
        /* tokens the context leaves: the last position's token is sampled too */
        const long left = (long)n_ctx - (long)sl->nids + 1;
        if (!sl->tok_rc && left > 0 && j->req.max_tokens > left) {
            snprintf(err, sizeof err,
                     "max_tokens %d is more than the %ld tokens the context of %d leaves after "
                     "the %zu prompt tokens; generation ends at CONTEXT_FULL",
                     j->req.max_tokens, left, n_ctx, sl->nids);
            json_object_set_new(started, "warning", json_string(err));
            json_object_set_new(started, "max_tokens", json_integer(left));
        }
    }
    if (j->req.api != WRK_API_NATIVE ? wrk_oai_begin(w, j) != RB_OK
                                     : push_json(j, started, PUSH_TIMEOUT_MS)) {
        sl->client_gone = 1;
        sl->reason = ENG_STOP_CANCELLED;
        finish(w, sl);
        return;
    }
    if (sl->tok_rc) {
        fail(j, "TOKENIZE_FAILED", "the prompt could not be tokenized");
        sl->failed = 1;
    } else if (sl->nids >= (size_t)n_ctx) {
        snprintf(err, sizeof err, "prompt has %zu tokens; the context holds %d", sl->nids, n_ctx);
        fail(j, "PROMPT_TOO_LONG", err);
        sl->failed = 1;
    }
    if (sl->failed) {
        finish(w, sl);
        return;
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
    if (eng_session_reset(sl->s, &sp, (const char *const *)j->req.stop, (size_t)j->req.nstop)) {
        fail(j, "ENGINE_ERROR", "the stop strings were refused");
        sl->failed = 1;
        finish(w, sl);
        return;
    }
    sl->cached = eng_session_reuse_prefix(sl->s, sl->ids, sl->nids);
    sl->fed = sl->cached;
}

/* Takes a popped job into a free slot. */
static void admit(wrk *w, wrk_job *j)
{
    wrk_gen *g = w->gen;
    int32_t *ids = NULL;
    size_t nids = 0;
    rb_err rc = RB_OK;
    slot *sl;

    if (j->req.ids) { /* tokenized by the handler */
        ids = j->req.ids;
        nids = j->req.nids;
        j->req.ids = NULL;
    } else {
        rc = eng_model_tokenize(g->model, j->req.prompt, strlen(j->req.prompt), 1, &ids, &nids);
    }
    sl = pick_slot(g, rc ? NULL : ids, nids);
    if (!sl) { /* not reached: the scheduler pops only with a free slot */
        free(ids);
        wrk_jobs_done(w->jobs, j);
        wrk_job_end_unstarted(j);
        wrk_job_unref(j);
        return;
    }
    memset(&sl->rs, 0, sizeof sl->rs);
    sl->j = j;
    sl->tok_rc = rc;
    sl->ids = rc ? NULL : ids;
    sl->nids = rc ? 0 : nids;
    sl->fed = sl->cached = 0;
    sl->reason = ENG_STOP_NONE;
    sl->max_hit = sl->failed = sl->client_gone = 0;
    sl->stalled_ms = 0;
    if (rc)
        free(ids);
    /* The slot is taken from here, also while a /v1/jobs job waits for its stream: the worker
     * says busy, so the hive does not offer it as idle while it would refuse. */
    atomic_fetch_add(&w->busy, 1);
    wrk_poke(w);
    if (j->wait_for_stream) {
        sl->phase = SL_WAIT;
        sl->wait_until_ms = rb_now_ms() + w->cfg.stream_open_timeout_ms;
        return;
    }
    start(w, sl);
}

/* A waiting slot: starts once its stream is opened, ends when cancelled or not opened in
 * time. */
static void check_wait(wrk *w, slot *sl)
{
    if (wrk_job_stream_is_open(sl->j) && !gone(sl)) {
        start(w, sl);
        return;
    }
    if (gone(sl)) {
        sl->reason = ENG_STOP_CANCELLED;
        finish(w, sl);
    } else if (rb_now_ms() >= sl->wait_until_ms) {
        rb_log(RB_LOG_WARN, "worker", "job %s cancelled: its stream was not opened within %d ms",
               sl->j->id, w->cfg.stream_open_timeout_ms);
        wrk_job_cancel(sl->j);
        sl->reason = ENG_STOP_CANCELLED;
        finish(w, sl);
    }
}

/* Samples the slot's next token from the logits of the last pass and sends it at once;
 * ends the job when generation is over. Returns 1 if it stepped. */
static int sample(wrk *w, slot *sl)
{
    wrk_job *j = sl->j;
    eng_step st;
    rb_err rc;

    if (!has_room(j)) { /* a reader that does not read: the slot waits, the others go on */
        if (!sl->stalled_ms)
            sl->stalled_ms = rb_now_ms();
        if (rb_now_ms() - sl->stalled_ms > PUSH_TIMEOUT_MS) {
            rb_log(RB_LOG_WARN, "worker", "job %s: its client read nothing for %d ms", j->id,
                   PUSH_TIMEOUT_MS);
            rb_chan_close(j->chan);
            sl->client_gone = 1;
            sl->reason = ENG_STOP_CANCELLED;
            finish(w, sl);
        }
        return 0;
    }
    sl->stalled_ms = 0;
    rc = eng_session_step(sl->s, &st);
    if (rc && rc != RB_ECANCELED) {
        fail(j, "ENGINE_ERROR", rb_strerror(rc));
        sl->failed = 1;
        finish(w, sl);
        return 1;
    }
    if (st.token >= 0)
        sl->rs.generated++;
    /* The end-of-generation token is no part of the completion (nor of its logprobs). */
    if (emit(w, j, &sl->rs, &st, st.done && st.reason == ENG_STOP_EOS ? -1 : st.token)) {
        sl->client_gone = 1;
        sl->reason = ENG_STOP_CANCELLED;
    } else if (st.done) {
        sl->reason = st.reason;
    } else if (sl->rs.generated >= j->req.max_tokens) {
        sl->max_hit = 1;
    } else {
        return 1;
    }
    finish(w, sl);
    return 1;
}

/* One round: cancels, samples, then one pass over every decoding slot's token and chunks of
 * the prompts waiting. Returns 1 if it did any work. */
static int round_once(wrk *w)
{
    wrk_gen *g = w->gen;
    eng_batch_entry e[ENG_BATCH_MAX_SEQ];
    slot *es[ENG_BATCH_MAX_SEQ];
    const int cap = eng_batch_capacity(g->batch);
    int ne = 0, used = 0, work = 0;
    char err[256];

    for (int i = 0; i < g->nslots; i++) {
        slot *sl = &g->slots[i];
        if (sl->phase == SL_WAIT) {
            check_wait(w, sl);
        } else if ((sl->phase == SL_PREFILL || sl->phase == SL_DECODE) && gone(sl)) {
            sl->reason = ENG_STOP_CANCELLED; /* within one chunk of a prefill */
            finish(w, sl);
            work = 1;
        }
    }
    /* Tokens first: a decoding slot whose last pass left logits samples now. */
    for (int i = 0; i < g->nslots; i++) {
        slot *sl = &g->slots[i];
        if (sl->phase == SL_DECODE && !eng_session_wants_pass(sl->s))
            work |= sample(w, sl);
    }
    for (int i = 0; i < g->nslots; i++) {
        slot *sl = &g->slots[i];
        if (sl->phase == SL_DECODE && eng_session_wants_pass(sl->s) && has_room(sl->j)) {
            es[ne] = sl;
            e[ne++] = (eng_batch_entry){sl->s, NULL, 0};
            used++;
        }
    }
    /* Then prompt chunks, oldest job first, in what the pass has left. */
    for (;;) {
        slot *next = NULL;
        for (int i = 0; i < g->nslots; i++) {
            slot *sl = &g->slots[i];
            int taken = 0;
            for (int k = 0; k < ne; k++)
                taken |= es[k] == sl;
            if (sl->phase == SL_PREFILL && !taken &&
                (!next || sl->j->created_ms < next->j->created_ms))
                next = sl;
        }
        if (!next || used >= cap)
            break;
        {
            const size_t left = next->nids - next->fed;
            const int c = left < (size_t)(cap - used) ? (int)left : cap - used;
            es[ne] = next;
            e[ne++] = (eng_batch_entry){next->s, next->ids + next->fed, c};
            used += c;
        }
    }
    if (ne == 0)
        return work;
    if (eng_batch_decode(g->batch, e, ne, err, sizeof err)) {
        for (int k = 0; k < ne; k++) {
            fail(es[k]->j, "ENGINE_ERROR", err);
            es[k]->failed = 1;
            finish(w, es[k]);
        }
        return 1;
    }
    for (int k = 0; k < ne; k++) {
        slot *sl = es[k];
        if (sl->phase != SL_PREFILL)
            continue;
        sl->fed += (size_t)e[k].n;
        if (sl->fed == sl->nids)
            sl->phase = SL_DECODE; /* its first token is sampled in the next round */
    }
    return 1;
}

/* The one generation thread: admits jobs into free slots and runs rounds while any slot has
 * work; sleeps in the queue when none has. */
static void *sched_main(void *arg)
{
    wrk *w = arg;
    wrk_gen *g = w->gen;
    int worked = 1;

    rb_thread_set_name("gen");
    for (;;) {
        int active = 0, waiting = 0, free_slots = 0;
        for (int i = 0; i < g->nslots; i++) {
            active += g->slots[i].phase == SL_PREFILL || g->slots[i].phase == SL_DECODE;
            waiting += g->slots[i].phase == SL_WAIT;
            free_slots += g->slots[i].phase == SL_FREE;
        }
        if (free_slots > 0) {
            /* Nothing to run: wait for a job. Slots that only wait (for a stream to be opened,
             * for a reader to read): look again soon, or when kicked. */
            const int t = active && worked ? 0 : active || waiting ? IDLE_POLL_MS : -1;
            wrk_job *j = wrk_jobs_pop_wait(w->jobs, t);
            if (j) {
                admit(w, j);
                worked = 1;
                continue; /* every queued job a free slot can hold joins the next pass */
            }
        } else if (!worked) {
            wrk_jobs_idle(w->jobs, IDLE_POLL_MS);
        }
        if (wrk_jobs_closed(w->jobs) && !active && !waiting)
            break;
        worked = round_once(w);
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

    threads = w->cfg.threads > 0 ? w->cfg.threads : rb_physical_cores();
    if (w->cfg.ctx >= 0)
        sp.n_ctx = w->cfg.ctx;         /* else the engine's default */
    if (w->cfg.ctx > info.n_ctx_train) /* the default 4096 is capped without a word */
        rb_log(RB_LOG_WARN, "worker",
               "--ctx %d is more than the model's training context of %d tokens; using %d",
               w->cfg.ctx, info.n_ctx_train, info.n_ctx_train);
    sp.kv_type = (eng_type)eng_type_parse(w->cfg.kv_type); /* checked by wrk_config_parse */
    sp.n_threads = threads; /* one pass at a time runs every slot's tokens */
    if (w->cfg.batch > 0)
        sp.n_batch = w->cfg.batch;
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
    if (eng_batch_open(g->model, &sp, g->nslots, &g->batch, err, sizeof err)) {
        load_failed(w, err);
        return NULL;
    }
    for (int i = 0; i < g->nslots; i++) {
        g->slots[i].index = i;
        g->slots[i].s = eng_batch_session(g->batch, i);
    }
    if (pthread_create(&g->sched, NULL, sched_main, w) != 0) {
        load_failed(w, "cannot start the generation thread");
        return NULL;
    }
    g->sched_started = 1;
    rb_log(RB_LOG_INFO, "worker",
           "model '%s' loaded in %lld ms: %d layers, %d context, %d slots in one batch of %d "
           "tokens, %d threads",
           w->cfg.model_path, (long long)(rb_now_ms() - t0), info.n_layer,
           eng_session_n_ctx(g->slots[0].s), g->nslots, eng_batch_capacity(g->batch), sp.n_threads);
    pthread_rwlock_wrlock(&w->model_lock);
    w->started_unix = rb_unix_s();
    w->chat_template = eng_model_chat_template(g->model);
    if (info.bos >= 0)
        w->bos_text[eng_model_token_bytes(g->model, info.bos, w->bos_text,
                                          sizeof w->bos_text - 1)] = 0;
    if (info.eos >= 0)
        w->eos_text[eng_model_token_bytes(g->model, info.eos, w->eos_text,
                                          sizeof w->eos_text - 1)] = 0;
    w->n_ctx = eng_session_n_ctx(g->slots[0].s);
    w->model_ready = 1;
    pthread_rwlock_unlock(&w->model_lock);
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
    /* No handler reads the model past this point (wrk_gen_hold fails from here on). */
    pthread_rwlock_wrlock(&w->model_lock);
    w->model_ready = 0;
    pthread_rwlock_unlock(&w->model_lock);
    if (g->sched_started)
        pthread_join(g->sched, NULL);
    eng_batch_free(g->batch);
    eng_model_free(g->model);
    free(w->chat_template);
    w->chat_template = NULL;
    free(g->slots);
    free(g);
    w->gen = NULL;
}

int wrk_gen_hold(wrk *w)
{
    pthread_rwlock_rdlock(&w->model_lock);
    if (w->model_ready)
        return 1;
    pthread_rwlock_unlock(&w->model_lock);
    return 0;
}

void wrk_gen_release(wrk *w)
{
    pthread_rwlock_unlock(&w->model_lock);
}

rb_err wrk_gen_tokenize(wrk *w, const char *text, int special, int32_t **ids, size_t *n)
{
    return eng_model_tokenize_ex(w->gen->model, text, strlen(text),
                                 ENG_MODEL_TOK_ADD_BOS | (special ? ENG_MODEL_TOK_SPECIAL : 0), ids,
                                 n);
}

size_t wrk_gen_token_bytes(wrk *w, int32_t id, char *out, size_t cap)
{
    return eng_model_token_bytes(w->gen->model, id, out, cap);
}

int wrk_gen_busy(wrk *w)
{
    return atomic_load(&w->busy);
}
