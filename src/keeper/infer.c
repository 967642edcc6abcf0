/*
 * infer.c - `rbee infer`: its options, phases 1 and 4 to 6, and the order of all 8
 * (docs/architecture.md §5.1).
 *
 * DESIGN
 * One kpr_run carries the state from phase to phase; each phase either reports what it did
 * ([Phase N]) or fills the run's kpr_fail and returns an error, and only this file turns the
 * outcome into an exit status (0, 1, 130) and prints the failure, once. Phase 1 trusts the
 * worker cache only as far as the hive confirms it: a cached worker is used when its hive lists
 * it as idle; one the hive no longer knows is dropped from the cache and said to be gone
 * (EC10), and the run goes on as a cold start. An ephemeral hive is stopped on every way out,
 * after the failure or "Canceled." has been printed, and its workers leave the cache with it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kpr.h"
#include "kpr_args.h"
#include "kpr_hive.h"
#include "kpr_infer.h"
#include "rb_util.h"

#define MAX_PROMPT 32768
#define MAX_DEVICE 1024
#define MAX_CACHED 8
#define LIST_TIMEOUT_MS 5000
#define SPAWN_TIMEOUT_MS 30000

/* RB_OPT_FN of --stop: one more stop string (the count goes on past the limit). */
static int add_stop(const char *value, void *out)
{
    kpr_stops *st = out;

    if (st->n < KPR_MAX_STOP)
        st->s[st->n] = value;
    st->n++;
    return 0;
}

/* The prompt from standard input (a pipe or a file), one trailing newline dropped. */
static rb_err read_prompt(kpr_infer_opts *o, char *err, size_t errlen)
{
    size_t cap = MAX_PROMPT + 2, n = 0;
    char *buf = malloc(cap);
    ssize_t got = 1;

    if (!buf)
        return rb_errf(err, errlen, RB_ENOMEM, "rbee infer: out of memory");
    while (n < cap - 1 && (got = read(STDIN_FILENO, buf + n, cap - 1 - n)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            return rb_errf(err, errlen, RB_EIO, "rbee infer: cannot read the prompt from stdin: %s",
                           strerror(errno));
        }
        n += (size_t)got;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n -= n > 1 && buf[n - 2] == '\r' ? 2 : 1;
    buf[n] = '\0';
    o->prompt_buf = buf;
    o->prompt = buf;
    return RB_OK;
}

/* The prompt: --prompt TEXT, the one positional word, or stdin (--prompt -, or nothing given
 * and stdin not a terminal). */
static rb_err take_prompt(kpr_infer_opts *o, const char *word, char *err, size_t errlen)
{
    rb_err rc = RB_OK;

    if (o->prompt && word)
        return rb_errf(err, errlen, RB_EINVAL,
                       "rbee infer: give the prompt once: --prompt TEXT or TEXT, not both");
    if (word)
        o->prompt = word;
    if ((o->prompt && strcmp(o->prompt, "-") == 0) || (!o->prompt && !isatty(STDIN_FILENO)))
        rc = read_prompt(o, err, errlen);
    if (!rc && (!o->prompt || !o->prompt[0]))
        rc =
            rb_errf(err, errlen, RB_EINVAL,
                    "rbee infer: --prompt is required (or the prompt as an argument, or on stdin)");
    else if (!rc && strlen(o->prompt) > MAX_PROMPT)
        rc = rb_errf(err, errlen, RB_EINVAL, "rbee infer: the prompt is longer than %d bytes",
                     MAX_PROMPT);
    return rc;
}

/* What the options cannot say alone: the stop strings' count and length, a penalty above 0. */
static rb_err check_sampling(const kpr_infer_opts *o, char *err, size_t errlen)
{
    if (o->stops.n > KPR_MAX_STOP)
        return rb_errf(err, errlen, RB_EINVAL,
                       "rbee infer: --stop is given %zu times; the worker takes at most %d",
                       o->stops.n, KPR_MAX_STOP);
    for (size_t i = 0; i < o->stops.n; i++) {
        json_t *s = json_string(o->stops.s[i]);
        size_t n = strlen(o->stops.s[i]);
        json_decref(s);
        if (!s || n > KPR_STOP_MAX_BYTES)
            return rb_errf(err, errlen, RB_EINVAL,
                           "rbee infer: --stop takes 1 to %d bytes of UTF-8, not '%.40s%s'",
                           KPR_STOP_MAX_BYTES, o->stops.s[i], n > 40 ? "..." : "");
    }
    if (o->has_repetition_penalty && o->repetition_penalty <= 0)
        return rb_errf(err, errlen, RB_EINVAL,
                       "rbee infer: --repetition-penalty takes a number above 0 and at most 2, "
                       "not 0");
    return RB_OK;
}

static rb_err parse_opts(int argc, char **argv, kpr_infer_opts *o, int *shown, char *err,
                         size_t errlen)
{
    const rb_opt opts[] = {
        {"--node", RB_OPT_STR, &o->node, .what = "NAME",
         .help = "a node of rbee setup list-nodes (default localhost)"},
        {"--hive", RB_OPT_STR, &o->hive_url, .what = "URL",
         .help = "the hive at this URL, bypassing the node registry"},
        {"--model", RB_OPT_STR, &o->model, .what = "REF", .help = KPR_MODEL_HELP},
        {"--file", RB_OPT_STR, &o->file, .what = "FILE.gguf",
         .help = "the file of an hf:ORG/REPO model (default: its Q4_K_M file)"},
        {"--prompt", RB_OPT_STR, &o->prompt, .what = "TEXT",
         .help = "the text to continue (or PROMPT; -: read it from stdin)"},
        {"--max-tokens", RB_OPT_LLONG, &o->max_tokens, 1, KPR_MAX_TOKENS_LIMIT,
         .help = "tokens to generate, 1 to 2048 (default 128)"},
        {"--temperature", RB_OPT_NUM, &o->temperature, 0, 2, &o->has_temperature,
         .help = "0 to 2, 0 is greedy (default: the worker's, 0.7)"},
        {"--top-p", RB_OPT_NUM, &o->top_p, 0, 1, &o->has_top_p,
         .help = "nucleus sampling, 0 to 1 (default 1: off)"},
        {"--top-k", RB_OPT_LLONG, &o->top_k, 0, 1e9, &o->has_top_k,
         .help = "sample among the K likeliest tokens (default 0: off)"},
        {"--min-p", RB_OPT_NUM, &o->min_p, 0, 1, &o->has_min_p,
         .help = "drop tokens below P x the likeliest's probability (default 0: off)"},
        {"--repetition-penalty", RB_OPT_NUM, &o->repetition_penalty, 0, 2,
         &o->has_repetition_penalty, .help = "above 0, at most 2; 1 is off (default 1)"},
        {"--stop", RB_OPT_FN, &o->stops, 0, 0, NULL, add_stop, "TEXT",
         "end the text before this string; up to 4 times"},
        {"--seed", RB_OPT_U64, &o->seed, 0, 0, &o->has_seed,
         .help = "seed of the sampler, for repeatable output (default random)"},
        {"--backend", RB_OPT_STR, &o->backend, .what = "NAME", .help = "default cpu"},
        {"--device", RB_OPT_LLONG, &o->device, 0, MAX_DEVICE, .help = "default 0"},
        {"--ready-timeout", RB_OPT_NUM, &o->ready_timeout_s, 0.1, 86400, .what = "SECONDS",
         .help = "how long a new worker may take to load (default 300)"},
        {"--json", RB_OPT_FLAG, &o->json, .help = "one JSON object per line on stdout"},
    };
    const rb_cmd cmd = {"rbee infer",
                        "[PROMPT]",
                        "Run a prompt on a node's model and stream the text. Without --prompt or "
                        "PROMPT, the prompt is read from stdin when it is not a terminal.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        KPR_HELP_NOTES};
    const char *word = NULL;
    size_t nwords = 0;
    rb_err rc;

    memset(o, 0, sizeof(*o));
    o->model = KPR_DEFAULT_MODEL;
    o->backend = "cpu";
    o->max_tokens = KPR_DEFAULT_MAX_TOKENS;
    o->ready_timeout_s = KPR_DEFAULT_READY_TIMEOUT_S;
    rc = rb_cmd_parse(&cmd, argc, argv, &word, 1, &nwords, shown, err, errlen);
    if (rc || *shown)
        return rc;
    if (o->seed > INT64_MAX)
        rc = rb_errf(err, errlen, RB_EINVAL, "rbee infer: --seed must be below 2^63");
    else if (!(rc = check_sampling(o, err, errlen)) && !(rc = take_prompt(o, word, err, errlen)) &&
             !(rc = kpr_ref_with_file("infer", o->model, o->file, o->model_buf, sizeof o->model_buf,
                                      err, errlen)))
        o->model = o->model_buf;
    return rc;
}

/* ---- phase 1 ----------------------------------------------------------------------------- */

/* Looks at one cached worker in the hive's list; 1 when it is idle (warm start). The entry
 * is dropped only when the hive answered its list without it. */
static int judge_cached(kpr_run *r, kpr_store *st, const kpr_cached_worker *w, rb_err rc,
                        const kpr_reply *list)
{
    char sid[64]; /* a short worker id for the phase lines */
    char why[1024];
    json_t *e;
    kpr_fate fate = kpr_worker_fate(rc, list, r->t.hive_url, w->id, &e, why, sizeof why);
    const char *state = kpr_jstr(e, "state");
    int idle = fate == KPR_FATE_LISTED && strcmp(state, "idle") == 0;

    if (idle) {
        snprintf(r->worker_id, sizeof r->worker_id, "%.*s", (int)sizeof r->worker_id - 1, w->id);
        snprintf(r->worker_url, sizeof r->worker_url, "%s", kpr_jstr(e, "url"));
        kpr_worker_touch(st, w->id);
        kpr_out_phase(&r->c->out, 1,
                      "Worker cache: worker %s on %s is idle: warm start "
                      "(phases 2 to 7 skipped)",
                      kpr_short_id(w->id, sid, sizeof sid), r->t.name);
    } else if (fate == KPR_FATE_LISTED) {
        kpr_out_phase(&r->c->out, 1, "Worker cache: worker %s on %s is %s, not idle",
                      kpr_short_id(w->id, sid, sizeof sid), r->t.name, state);
    } else if (fate == KPR_FATE_GONE) {
        kpr_worker_remove(st, w->id);
        kpr_out_phase(&r->c->out, 1,
                      "Worker cache: the cached worker %s is gone from %s (its "
                      "hive stopped it, e.g. after its idle timeout)",
                      kpr_short_id(w->id, sid, sizeof sid), r->t.name);
    } else {
        kpr_out_phase(&r->c->out, 1,
                      "Worker cache: cached worker %s not reused (kept in the cache): %s",
                      kpr_short_id(w->id, sid, sizeof sid), why);
    }
    return idle;
}

static rb_err phase_cache(kpr_run *r)
{
    const kpr_infer_opts *o = r->o;
    kpr_cached_worker ws[MAX_CACHED];
    kpr_store *st;
    kpr_reply list = {0};
    size_t n = 0;
    rb_err call, rc = kpr_ctx_store(r->c, &st, &r->f);

    if (!rc)
        rc = kpr_worker_find(st, r->t.hive_url, o->model, o->backend, (int)o->device, ws,
                             MAX_CACHED, &n);
    if (rc || n == 0) {
        kpr_out_phase(&r->c->out, 1, "Worker cache: no cached worker for %s on %s: cold start",
                      o->model, r->t.name);
        rc = RB_OK;
        goto out;
    }
    call = kpr_call(r->t.hive_url, r->t.token, "GET", "/v1/workers/list", NULL, LIST_TIMEOUT_MS,
                    &list);
    for (size_t i = 0; i < n && !r->warm; i++)
        r->warm = judge_cached(r, st, &ws[i], call, &list);
    if (!r->warm)
        kpr_out_phase(&r->c->out, 1, "Worker cache: cold start");
out:
    kpr_reply_release(&list);
    return rc;
}

/* ---- phases 4 to 6 ----------------------------------------------------------------------- */

static void fail_backend(kpr_run *r, json_t *available)
{
    char list[256] = "";
    size_t i;
    json_t *b;

    json_array_foreach(available, i, b)
    {
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 json_string_value(b) ? json_string_value(b) : "?");
    }
    kpr_fail_set(&r->f, "BACKEND_UNAVAILABLE",
                 "Backend unavailable on %s: requested %s (device %lld), available: %s", r->t.name,
                 r->o->backend, r->o->device, list[0] ? list : "none");
    kpr_fail_hint(&r->f, "use --backend %s, or choose a node that has %s (rbee setup list-nodes)",
                  json_string_value(json_array_get(available, 0))
                      ? json_string_value(json_array_get(available, 0))
                      : "cpu",
                  r->o->backend);
}

static rb_err phase_preflight(kpr_run *r)
{
    json_t *backends = json_object_get(r->caps, "backends");
    json_t *devices = json_object_get(json_object_get(r->caps, "devices"), r->o->backend);
    int found = 0;
    size_t i;
    json_t *b;
    rb_err rc = RB_OK;

    json_array_foreach(backends, i, b)
    {
        found |= json_string_value(b) && strcmp(json_string_value(b), r->o->backend) == 0;
    }
    if (!found || (json_is_integer(devices) && r->o->device >= json_integer_value(devices))) {
        rc = RB_EUNSUPPORTED;
        fail_backend(r, backends);
    } else {
        kpr_out_phase(&r->c->out, 4,
                      "Worker preflight: backend %s device %lld is available; %lld "
                      "MB of RAM available on %s",
                      r->o->backend, r->o->device,
                      (long long)json_integer_value(json_object_get(r->caps, "ram_available_mb")),
                      r->t.name);
    }
    return rc;
}

static void fail_memory(kpr_run *r, const kpr_reply *rep)
{
    json_t *d = json_object_get(json_object_get(rep->body, "error"), "details");
    long long need = json_integer_value(json_object_get(d, "required_mb"));
    long long have = json_integer_value(json_object_get(d, "available_mb"));

    kpr_fail_set(&r->f, "INSUFFICIENT_MEMORY",
                 "Not enough RAM on %s for %s: the worker needs about %lld MB and %lld MB are "
                 "available",
                 r->t.name, r->o->model, need, have);
    kpr_fail_line(&r->f, "Required: %lld MB. Available: %lld MB.", need, have);
    if (json_is_integer(json_object_get(d, "kv_cache_mb")))
        kpr_fail_line(&r->f,
                      "Estimate: weights %lld MB + KV cache %lld MB (%lld x %lld tokens, %s) + "
                      "buffers %lld MB.",
                      (long long)json_integer_value(json_object_get(d, "weights_mb")),
                      (long long)json_integer_value(json_object_get(d, "kv_cache_mb")),
                      (long long)json_integer_value(json_object_get(d, "slots")),
                      (long long)json_integer_value(json_object_get(d, "context")),
                      json_string_value(json_object_get(d, "kv_type"))
                          ? json_string_value(json_object_get(d, "kv_type"))
                          : "?",
                      (long long)json_integer_value(json_object_get(d, "scratch_mb")));
    kpr_fail_hint(&r->f,
                  "use a smaller quantization of the model (a Q4_K_M file instead of Q8_0 "
                  "or F16), a shorter context or a Q8_0 KV cache (rbee-hive --worker-ctx, "
                  "--worker-kv-type q8_0), or free memory by stopping workers (rbee workers "
                  "list --node %s)",
                  r->t.name);
    r->f.details = json_deep_copy(d);
    if (!json_is_object(r->f.details)) {
        json_decref(r->f.details);
        r->f.details = json_pack("{s:I, s:I}", "required_mb", (json_int_t)need, "available_mb",
                                 (json_int_t)have);
    }
}

static rb_err phase_spawn(kpr_run *r)
{
    char sid[64]; /* a short worker id for the phase lines */
    json_t *req = json_pack("{s:s, s:s, s:I}", "model_ref", r->o->model, "backend", r->o->backend,
                            "device", (json_int_t)r->o->device);
    kpr_reply rep;
    rb_err rc = kpr_call(r->t.hive_url, r->t.token, "POST", "/v1/workers/spawn", req,
                         SPAWN_TIMEOUT_MS, &rep);

    if (!rc && rep.status == 200) {
        snprintf(r->worker_id, sizeof r->worker_id, "%s", kpr_jstr(rep.body, "worker_id"));
        snprintf(r->worker_url, sizeof r->worker_url, "%s", kpr_jstr(rep.body, "url"));
        kpr_out_phase(&r->c->out, 5, "Spawn: worker %s is loading %s at %s",
                      kpr_short_id(r->worker_id, sid, sizeof sid), r->o->model, r->worker_url);
    } else if (!rc && rep.status == 507) {
        rc = RB_ENOMEM;
        fail_memory(r, &rep);
    } else if (!rc && strcmp(rep.code, "BACKEND_UNAVAILABLE") == 0) {
        rc = RB_EUNSUPPORTED;
        fail_backend(r,
                     json_object_get(json_object_get(json_object_get(rep.body, "error"), "details"),
                                     "available"));
    } else {
        kpr_reply_fail(&r->f, &r->t, &rep, "start a worker");
        rc = rc ? rc : RB_EHTTP;
    }
    kpr_reply_release(&rep);
    json_decref(req);
    return rc;
}

static rb_err phase_register(kpr_run *r)
{
    char sid[64]; /* a short worker id for the phase lines */
    kpr_cached_worker w = {0};
    kpr_store *st;
    rb_err rc = kpr_ctx_store(r->c, &st, &r->f);

    snprintf(w.id, sizeof w.id, "%s", r->worker_id);
    snprintf(w.node, sizeof w.node, "%s", r->t.name);
    snprintf(w.hive_url, sizeof w.hive_url, "%s", r->t.hive_url);
    snprintf(w.url, sizeof w.url, "%s", r->worker_url);
    snprintf(w.model_ref, sizeof w.model_ref, "%s", r->o->model);
    snprintf(w.backend, sizeof w.backend, "%s", r->o->backend);
    w.device = (int)r->o->device;
    w.created_unix = w.last_used_unix = rb_unix_s();
    if (!rc && (rc = kpr_worker_put(st, &w)) != RB_OK)
        kpr_fail_set(&r->f, "STATE_ERROR", "Cannot write the worker cache in %s/workers.db: %s",
                     r->c->home, kpr_store_error(st, 1));
    if (!rc)
        kpr_out_phase(&r->c->out, 6, "Worker cache: registered %s for %s on %s",
                      kpr_short_id(w.id, sid, sizeof sid), w.model_ref, r->t.name);
    return rc;
}

/* Phases 2 to 7. */
static rb_err cold_start(kpr_run *r)
{
    char path[KPR_PATH_MAX];
    rb_err rc;

    kpr_ctx_model_dir(r->c, r->o->model);
    rc = kpr_hive_connect(r->c, &r->t, &r->eph, 2, 1, &r->caps, &r->f);
    if (!rc)
        rc = kpr_provision(r->c, &r->t, r->o->model, 3, path, sizeof path, &r->f);
    if (!rc)
        rc = phase_preflight(r);
    if (!rc)
        rc = phase_spawn(r);
    if (!rc)
        rc = phase_register(r);
    if (!rc)
        rc = kpr_phase_ready(r);
    return rc;
}

/* ---- the command ------------------------------------------------------------------------- */

kpr_fate kpr_run_forget_worker(kpr_run *r, char *why, size_t len)
{
    kpr_reply list;
    kpr_store *st;
    kpr_fail ignored;
    json_t *e;
    rb_err rc = kpr_call(r->t.hive_url, r->t.token, "GET", "/v1/workers/list", NULL,
                         LIST_TIMEOUT_MS, &list);
    kpr_fate fate = kpr_worker_fate(rc, &list, r->t.hive_url, r->worker_id, &e, why, len);

    kpr_fail_init(&ignored);
    if (fate == KPR_FATE_GONE && kpr_ctx_store(r->c, &st, &ignored) == RB_OK)
        kpr_worker_remove(st, r->worker_id);
    else if (fate == KPR_FATE_LISTED)
        snprintf(why, len, "its hive still lists it as %s", kpr_jstr(e, "state"));
    kpr_reply_release(&list);
    return fate;
}

/* The idle worker of phase 1 refused the job's connection: dropped from the cache when its
 * hive no longer lists it, kept otherwise; then a cold start. */
static rb_err warm_worker_vanished(kpr_run *r)
{
    char why[1024];
    rb_err rc = RB_OK;

    if (kpr_run_forget_worker(r, why, sizeof why) == KPR_FATE_GONE)
        kpr_out_note(&r->c->out,
                     "The cached worker %s is gone (it stopped before the job reached "
                     "it): cold start",
                     r->worker_id);
    else
        kpr_out_note(&r->c->out,
                     "The cached worker %s does not accept the job (kept in the cache: %s): "
                     "cold start",
                     r->worker_id, why);
    r->warm = 0;
    rc = cold_start(r);
    if (!rc)
        rc = kpr_phase_infer(r);
    return rc;
}

rb_err kpr_run_prepare(kpr_run *r)
{
    rb_err rc = kpr_target_resolve(r->c, r->o->node, r->o->hive_url, &r->t, &r->f);

    if (!rc)
        rc = phase_cache(r);
    if (!rc && !r->warm)
        rc = cold_start(r);
    return rc;
}

void kpr_run_finish(kpr_run *r)
{
    kpr_store *st = NULL;

    if (r->eph.pid > 0) {
        if (kpr_ctx_store(r->c, &st, &r->f) == RB_OK)
            kpr_worker_remove_hive(st, r->eph.url);
        kpr_local_hive_stop(&r->eph, KPR_HIVE_STOP_MS);
    }
    json_decref(r->caps);
    r->caps = NULL;
    kpr_fail_release(&r->f);
}

int kpr_cmd_infer(kpr_ctx *c, int argc, char **argv)
{
    kpr_infer_opts o;
    kpr_run r;
    char err[512];
    int status = KPR_EXIT_FAIL, shown = 0;
    rb_err rc;

    memset(&r, 0, sizeof(r));
    kpr_fail_init(&r.f);
    if (parse_opts(argc, argv, &o, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (shown) {
        status = KPR_EXIT_OK;
        goto out;
    }
    c->out.json = o.json;
    r.c = c;
    r.o = &o;
    rc = kpr_run_prepare(&r);
    if (!rc)
        rc = kpr_phase_infer(&r);
    if (rc == RB_ENOTFOUND && r.warm)
        rc = warm_worker_vanished(&r);
    if (rc == RB_ECANCELED || (rc && kpr_ctx_interrupted(c))) {
        kpr_out_canceled(&c->out, r.cancel_detail[0] ? r.cancel_detail : NULL);
        status = KPR_EXIT_CANCELED;
    } else if (rc) {
        if (!kpr_fail_isset(&r.f))
            kpr_fail_set(&r.f, "FAILED", "rbee infer failed: %s", rb_strerror(rc));
        kpr_out_fail(&c->out, &r.f);
    } else {
        status = KPR_EXIT_OK;
    }
    kpr_run_finish(&r);
out:
    free(o.prompt_buf);
    return status;
}
