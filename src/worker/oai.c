/*
 * oai.c - OpenAI's API on the worker: POST /v1/chat/completions, POST /v1/completions and
 * GET /v1/models, answered exactly as OpenAI answers them (docs/openai.md).
 *
 * DESIGN
 * The routes share the job queue and the generation threads with /v1/inference; only the
 * edges differ. The handler validates the body strictly (every field OpenAI defines that
 * rbee cannot honour is a 400 naming it, never silently ignored), renders a chat through the
 * model's template, tokenizes the prompt (so a prompt too long for the context is a 400 before
 * any stream starts, and usage.prompt_tokens is exact), and queues a wrk_request with api set.
 * The generation thread then calls wrk_oai_begin/token/end instead of pushing the project's
 * events: with stream true each sampled token becomes a chunk in the job's channel at once
 * (the SSE response drains it; a closed channel means the client left, and generation stops
 * within one token); with stream false the text and logprobs accumulate in the job's
 * wrk_oai_acc and the finished body is handed to the waiting handler. Errors on these routes
 * use OpenAI's shape {"error":{"message","type","param","code"}}; what the HTTP layer answers
 * before a handler runs (401, 404, 413, 415) keeps the project's envelope. A handler holds the
 * model (wrk_gen_hold) only while it renders and tokenizes, never while it waits for a job, so
 * a shutdown that frees the model waits for no generation.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_time.h"
#include "rb_util.h"
#include "worker.h"

#define OAI_CHAN_EVENTS 512
#define OAI_MAX_PROMPT 32768      /* bytes of a prompt or of a rendered chat */
#define OAI_MAX_STOP_LEN 128      /* the engine's stop-string limit */
#define OAI_DEFAULT_MAX (1 << 30) /* no max_tokens: until EOS or the context is full */
#define OAI_PUSH_TIMEOUT_MS 30000
#define OAI_DONE_MARK "rbee-oai-done"

struct wrk_oai_acc {
    rb_buf text;      /* non-streamed: every text delta */
    json_t *lp;       /* chat-shaped logprob entries not sent yet (streamed) or all */
    json_t *offs;     /* text_offset of each entry in lp (completions) */
    size_t tok_bytes; /* bytes of the tokens so far: the next text_offset */
    char *body;       /* non-streamed: the finished answer (or error) for the handler */
    int status;
};

void wrk_oai_acc_free(struct wrk_oai_acc *a)
{
    if (!a)
        return;
    rb_buf_release(&a->text);
    json_decref(a->lp);
    json_decref(a->offs);
    free(a->body);
    free(a);
}

/* ---- errors ------------------------------------------------------------------------------ */

static json_t *error_object(const char *message, const char *type, const char *param,
                            const char *code)
{
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", message, "type", type, "param",
                     param ? json_string(param) : json_null(), "code",
                     code ? json_string(code) : json_null());
}

static void reply_error(rb_http_reply *rep, int status, const char *type, const char *param,
                        const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void reply_error(rb_http_reply *rep, int status, const char *type, const char *param,
                        const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rb_http_reply_json(rep, status, error_object(msg, type, param, code));
}

/* A validation failure: the first one found is answered. */
typedef struct vfail {
    int failed;
    char param[96];
    char code[40];
    char msg[400];
} vfail;

static int bad(vfail *v, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad(vfail *v, const char *param, const char *code, const char *fmt, ...)
{
    va_list ap;
    if (v->failed)
        return 0;
    v->failed = 1;
    snprintf(v->param, sizeof v->param, "%s", param);
    snprintf(v->code, sizeof v->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- field readers: absent and null mean "not given"; return 1 when a value was read ---- */

static const json_t *field(const json_t *body, const char *key)
{
    const json_t *v = json_object_get(body, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int get_num(vfail *v, const json_t *body, const char *key, double min, double max,
                   double *out)
{
    const json_t *x = field(body, key);
    if (!x)
        return 0;
    if (!json_is_number(x))
        return bad(v, key, "invalid_type", "'%s' must be a number", key);
    double d = json_number_value(x);
    if (!(d >= min && d <= max))
        return bad(v, key, "invalid_value", "'%s' must be between %g and %g", key, min, max);
    if (!rb_fits_float(d))
        return bad(v, key, "invalid_value",
                   "'%s' is too small for a 32-bit float: use 0 or at least 1.2e-38", key);
    *out = d;
    return 1;
}

static int get_int(vfail *v, const json_t *body, const char *key, long long min, long long max,
                   long long *out)
{
    const json_t *x = field(body, key);
    if (!x)
        return 0;
    if (!json_is_integer(x))
        return bad(v, key, "invalid_type", "'%s' must be an integer", key);
    long long i = (long long)json_integer_value(x);
    if (i < min || i > max)
        return bad(v, key, "invalid_value", "'%s' must be between %lld and %lld", key, min, max);
    *out = i;
    return 1;
}

static int get_bool(vfail *v, const json_t *body, const char *key, int *out)
{
    const json_t *x = field(body, key);
    if (!x)
        return 0;
    if (!json_is_boolean(x))
        return bad(v, key, "invalid_type", "'%s' must be a boolean", key);
    *out = json_is_true(x);
    return 1;
}

/* ---- the fields both routes share ------------------------------------------------------- */

/* Fields a route accepts; anything else is a 400 naming it. */
static const char *const CHAT_FIELDS[] = {"model",
                                          "messages",
                                          "stream",
                                          "stream_options",
                                          "max_tokens",
                                          "max_completion_tokens",
                                          "temperature",
                                          "top_p",
                                          "stop",
                                          "seed",
                                          "frequency_penalty",
                                          "presence_penalty",
                                          "logprobs",
                                          "top_logprobs",
                                          "n",
                                          "user",
                                          "top_k",
                                          "min_p",
                                          "repeat_penalty",
                                          "response_format",
                                          NULL};
static const char *const COMPLETION_FIELDS[] = {"model",
                                                "prompt",
                                                "stream",
                                                "stream_options",
                                                "max_tokens",
                                                "temperature",
                                                "top_p",
                                                "stop",
                                                "seed",
                                                "frequency_penalty",
                                                "presence_penalty",
                                                "logprobs",
                                                "n",
                                                "user",
                                                "top_k",
                                                "min_p",
                                                "repeat_penalty",
                                                "echo",
                                                "best_of",
                                                NULL};

static int listed(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (strcmp(*list, key) == 0)
            return 1;
    return 0;
}

static void check_fields(vfail *v, const json_t *body, const char *const *allowed)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)body, key, val)
    {
        if (!listed(allowed, key)) {
            bad(v, key, "unsupported_parameter", "'%s' is not supported by this server", key);
            return;
        }
    }
}

/* stop: a string or an array of up to WRK_MAX_STOP non-empty strings. */
static void get_stop(vfail *v, const json_t *body, wrk_request *r)
{
    const json_t *x = field(body, "stop");
    const char *list[WRK_MAX_STOP];
    size_t n = 0;

    if (!x)
        return;
    if (json_is_string(x)) {
        list[n++] = json_string_value(x);
    } else if (json_is_array(x)) {
        if (json_array_size(x) > WRK_MAX_STOP) {
            bad(v, "stop", "invalid_value", "'stop' holds at most %d strings", WRK_MAX_STOP);
            return;
        }
        for (size_t i = 0; i < json_array_size(x); i++) {
            const json_t *s = json_array_get(x, i);
            if (!json_is_string(s)) {
                bad(v, "stop", "invalid_type", "'stop' must be a string or an array of strings");
                return;
            }
            list[n++] = json_string_value(s);
        }
    } else {
        bad(v, "stop", "invalid_type", "'stop' must be a string or an array of strings");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(list[i]);
        if (len == 0 || len > OAI_MAX_STOP_LEN) {
            bad(v, "stop", "invalid_value", "each stop string must have 1 to %d bytes",
                OAI_MAX_STOP_LEN);
            return;
        }
    }
    for (size_t i = 0; i < n; i++)
        r->stop[r->nstop++] = strdup(list[i]);
}

/* Everything but the prompt and logprobs, which differ between the routes. */
static void common_fields(vfail *v, const json_t *body, wrk_request *r)
{
    double d;
    long long i;
    int b;
    const json_t *x;

    if ((x = field(body, "model")) && !json_is_string(x))
        bad(v, "model", "invalid_type", "'model' must be a string");
    if ((x = field(body, "user")) && !json_is_string(x))
        bad(v, "user", "invalid_type", "'user' must be a string");
    r->max_tokens = OAI_DEFAULT_MAX;
    if (get_int(v, body, "max_tokens", 1, OAI_DEFAULT_MAX, &i))
        r->max_tokens = (int)i;
    if (get_int(v, body, "max_completion_tokens", 1, OAI_DEFAULT_MAX, &i))
        r->max_tokens = (int)i;
    r->temperature = 1.0f;
    if (get_num(v, body, "temperature", 0, 2, &d))
        r->temperature = (float)d;
    r->top_p = 1.0f;
    if (get_num(v, body, "top_p", 0, 1, &d))
        r->top_p = (float)d;
    if (get_num(v, body, "frequency_penalty", -2, 2, &d))
        r->frequency_penalty = (float)d;
    if (get_num(v, body, "presence_penalty", -2, 2, &d))
        r->presence_penalty = (float)d;
    if (get_int(v, body, "top_k", 0, 1000000, &i))
        r->top_k = (int)i;
    if (get_num(v, body, "min_p", 0, 1, &d))
        r->min_p = (float)d;
    r->repetition_penalty = 1.0f;
    if (get_num(v, body, "repeat_penalty", 0, 2, &d)) {
        if (d <= 0)
            bad(v, "repeat_penalty", "invalid_value",
                "'repeat_penalty' must be greater than 0 and at most 2");
        r->repetition_penalty = (float)d;
    }
    if ((x = field(body, "seed"))) {
        if (!json_is_integer(x))
            bad(v, "seed", "invalid_type", "'seed' must be an integer");
        else
            r->seed = (uint64_t)json_integer_value(x);
    } else {
        rb_random_bytes(&r->seed, sizeof r->seed);
    }
    if (get_int(v, body, "n", 1, 128, &i) && i != 1)
        bad(v, "n", "unsupported_value", "only n = 1 is supported");
    if (get_bool(v, body, "stream", &b))
        r->stream = b;
    if ((x = field(body, "stream_options"))) {
        const char *key;
        json_t *val;
        if (!json_is_object(x))
            bad(v, "stream_options", "invalid_type", "'stream_options' must be an object");
        else if (!r->stream)
            bad(v, "stream_options", "invalid_value",
                "'stream_options' is only allowed when 'stream' is true");
        json_object_foreach((json_t *)x, key, val)
        {
            if (strcmp(key, "include_usage") != 0) {
                char p[96];
                snprintf(p, sizeof p, "stream_options.%s", key);
                bad(v, p, "unsupported_parameter", "'%s' is not supported by this server", p);
            } else if (!json_is_null(val) && !json_is_boolean(val)) {
                bad(v, "stream_options.include_usage", "invalid_type",
                    "'stream_options.include_usage' must be a boolean");
            } else {
                r->include_usage = json_is_true(val);
            }
        }
    }
    get_stop(v, body, r);
}

/* ---- chat messages ----------------------------------------------------------------------- */

/* Checks messages and returns the array chat_apply renders (roles and text only). */
static json_t *chat_messages(vfail *v, const json_t *body)
{
    const json_t *m = field(body, "messages");
    json_t *out;
    char p[96];

    if (!m)
        return bad(v, "messages", "missing_required_parameter", "'messages' is required"), NULL;
    if (!json_is_array(m) || json_array_size(m) == 0)
        return bad(v, "messages", "invalid_value", "'messages' must be a non-empty array"), NULL;
    out = json_array();
    for (size_t i = 0; i < json_array_size(m) && !v->failed; i++) {
        const json_t *msg = json_array_get(m, i), *role, *content;
        const char *key, *r;
        json_t *val, *text;

        if (!json_is_object(msg)) {
            snprintf(p, sizeof p, "messages[%zu]", i);
            bad(v, p, "invalid_type", "'%s' must be an object", p);
            break;
        }
        json_object_foreach((json_t *)msg, key, val)
        {
            if (strcmp(key, "role") && strcmp(key, "content") && strcmp(key, "name")) {
                snprintf(p, sizeof p, "messages[%zu].%s", i, key);
                bad(v, p, "unsupported_parameter", "'%s' is not supported by this server", p);
                break;
            }
        }
        role = json_object_get(msg, "role");
        r = json_is_string(role) ? json_string_value(role) : NULL;
        if (!v->failed && (!r || (strcmp(r, "system") && strcmp(r, "user") &&
                                  strcmp(r, "assistant") && strcmp(r, "developer")))) {
            snprintf(p, sizeof p, "messages[%zu].role", i);
            bad(v, p, "invalid_value",
                "'%s' must be one of 'system', 'developer', 'user', 'assistant'", p);
        }
        content = json_object_get(msg, "content");
        if (v->failed)
            break;
        if (json_is_string(content)) {
            text = json_incref((json_t *)content);
        } else if (json_is_array(content)) {
            /* Only text parts, passed on as such: chat_apply joins them as llama.cpp's server
             * does ("\n" between texts). */
            size_t total = 0;
            text = json_array();
            for (size_t k = 0; k < json_array_size(content) && !v->failed; k++) {
                const json_t *part = json_array_get(content, k);
                const json_t *type = json_object_get(part, "type");
                const json_t *t = json_object_get(part, "text");
                if (!json_is_object(part) || !json_is_string(type) ||
                    strcmp(json_string_value(type), "text") != 0) {
                    snprintf(p, sizeof p, "messages[%zu].content[%zu].type", i, k);
                    bad(v, p, "unsupported_value",
                        "only content parts of type 'text' are supported");
                } else if (!json_is_string(t)) {
                    snprintf(p, sizeof p, "messages[%zu].content[%zu].text", i, k);
                    bad(v, p, "invalid_type", "'%s' must be a string", p);
                } else if ((total += json_string_length(t)) > OAI_MAX_PROMPT) {
                    snprintf(p, sizeof p, "messages[%zu].content", i);
                    bad(v, p, "invalid_value", "the messages exceed %d bytes", OAI_MAX_PROMPT);
                } else {
                    json_array_append_new(text, json_pack("{s:s, s:O}", "type", "text", "text", t));
                }
            }
        } else {
            snprintf(p, sizeof p, "messages[%zu].content", i);
            bad(v, p, "invalid_type", "'%s' must be a string or an array of text parts", p);
            break;
        }
        /* OpenAI's "developer" is the newer name of "system". */
        json_array_append_new(out, json_pack("{s:s, s:o}", "role",
                                             strcmp(r, "developer") == 0 ? "system" : r, "content",
                                             text));
    }
    if (v->failed) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* ---- submitting -------------------------------------------------------------------------- */

static int refuse_unready(wrk *w, rb_http_reply *rep)
{
    int phase = atomic_load(&w->phase);
    if (phase == WRK_READY && !wrk_stop_requested(w))
        return 0;
    if (phase == WRK_LOADING && !wrk_stop_requested(w))
        reply_error(rep, 503, "server_error", NULL, "model_loading", "the model is still loading");
    else
        reply_error(rep, 503, "server_error", NULL, "shutting_down", "the worker is shutting down");
    rb_http_reply_header(rep, "Retry-After", "1");
    wrk_metrics_request(w->metrics, WRK_OUT_REJECTED);
    return 1;
}

/* Tokenizes r->prompt into r->ids (a 400 when it does not fit the context). */
static int tokenize(wrk *w, rb_http_reply *rep, wrk_request *r, int special)
{
    int n_ctx = w->n_ctx;
    if (wrk_gen_tokenize(w, r->prompt, special, &r->ids, &r->nids)) {
        reply_error(rep, 500, "server_error", NULL, NULL, "the prompt could not be tokenized");
        return 0;
    }
    if (r->nids == 0) {
        reply_error(rep, 400, "invalid_request_error",
                    r->api == WRK_API_CHAT ? "messages" : "prompt", "invalid_value",
                    "the prompt is empty");
        return 0;
    }
    if (r->nids >= (size_t)n_ctx) {
        reply_error(rep, 400, "invalid_request_error",
                    r->api == WRK_API_CHAT ? "messages" : "prompt", "context_length_exceeded",
                    "this model's context holds %d tokens, the prompt has %zu", n_ctx, r->nids);
        return 0;
    }
    /* An explicit max_tokens the context cannot hold is refused as OpenAI refuses it, not cut
     * short in silence (without one, generation runs until the context is full). */
    if (r->max_tokens != OAI_DEFAULT_MAX && r->nids + (size_t)r->max_tokens > (size_t)n_ctx + 1) {
        reply_error(rep, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                    "this model's context holds %d tokens; the prompt has %zu, so at most %zu "
                    "can be generated, not %d",
                    n_ctx, r->nids, (size_t)n_ctx + 1 - r->nids, r->max_tokens);
        return 0;
    }
    return 1;
}

static wrk_job *queue(wrk *w, rb_http_reply *rep, wrk_request *r)
{
    char id[WRK_JOB_ID_MAX + 1], u[37];
    wrk_job *j;
    rb_err rc;

    rb_uuid(u);
    snprintf(id, sizeof id, "%s-%s", r->api == WRK_API_CHAT ? "chatcmpl" : "cmpl", u);
    r->created = rb_unix_s();
    j = wrk_job_new(id, r, OAI_CHAN_EVENTS);
    if (!j) {
        wrk_request_release(r);
        reply_error(rep, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    j->oai = calloc(1, sizeof(*j->oai));
    if (!j->oai) {
        wrk_job_unref(j);
        reply_error(rep, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    rb_buf_init(&j->oai->text, 64u << 20);
    j->oai->lp = json_array();
    j->oai->offs = json_array();
    j->created_ms = rb_now_ms();
    rc = wrk_jobs_submit(w->jobs, j);
    if (rc == RB_EBUSY) {
        reply_error(rep, 503, "server_error", NULL, "all_slots_busy",
                    "every generation slot is busy and the queue is full");
        rb_http_reply_header(rep, "Retry-After", "1");
        wrk_metrics_request(w->metrics, WRK_OUT_REJECTED);
    } else if (rc) {
        reply_error(rep, 503, "server_error", NULL, "shutting_down", "the worker is shutting down");
        wrk_metrics_request(w->metrics, WRK_OUT_REJECTED);
    }
    if (rc) {
        wrk_job_unref(j);
        return NULL;
    }
    return j;
}

/* Answers with the stream, or waits for the finished body. */
static void answer(wrk_job *j, rb_http_reply *rep)
{
    rb_buf ev;

    if (j->req.stream) {
        wrk_job_open_stream(j);
        rb_http_reply_sse(rep, j->chan);
        return;
    }
    rb_buf_init(&ev, RB_SSE_MAX_EVENT);
    for (;;) {
        rb_err rc = rb_chan_pop(j->chan, &ev, 1000);
        if (rc == RB_ETIMEDOUT)
            continue;
        if (rc || (ev.len == strlen(OAI_DONE_MARK) && memcmp(ev.data, OAI_DONE_MARK, ev.len) == 0))
            break;
    }
    rb_buf_release(&ev);
    if (j->oai->body)
        rb_http_reply_text(rep, j->oai->status, "application/json", j->oai->body);
    else
        reply_error(rep, 500, "server_error", NULL, NULL, "the generation ended without an answer");
}

/* Called with the model held (wrk_gen_hold): releases it once the prompt is tokenized. */
static void submit(wrk *w, rb_http_reply *rep, wrk_request *r, vfail *v, int special)
{
    wrk_job *j;
    int ok = !v->failed && tokenize(w, rep, r, special);

    wrk_gen_release(w);
    if (v->failed)
        reply_error(rep, 400, "invalid_request_error", v->param, v->code, "%s", v->msg);
    if (!ok) {
        wrk_metrics_request(w->metrics, WRK_OUT_INVALID);
        wrk_request_release(r);
        return;
    }
    j = queue(w, rep, r);
    if (!j)
        return;
    answer(j, rep);
    wrk_job_unref(j);
}

/* Holds the model for the handler, or answers 503 (it is being freed). */
static int hold(wrk *w, rb_http_reply *rep, json_t *body)
{
    if (wrk_gen_hold(w))
        return 1;
    reply_error(rep, 503, "server_error", NULL, "shutting_down", "the worker is shutting down");
    wrk_metrics_request(w->metrics, WRK_OUT_REJECTED);
    json_decref(body);
    return 0;
}

static json_t *parse_body(rb_http_req *req, rb_http_reply *rep, wrk *w)
{
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, 0, &je);
    if (!body || !json_is_object(body)) {
        reply_error(rep, 400, "invalid_request_error", NULL, "invalid_json",
                    "the request body must be a JSON object");
        wrk_metrics_request(w->metrics, WRK_OUT_INVALID);
        json_decref(body);
        return NULL;
    }
    return body;
}

void wrk_h_chat(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    wrk_request r;
    vfail v = {0};
    json_t *body, *msgs = NULL;
    const json_t *x;
    int b;
    long long i;

    if (refuse_unready(w, rep) || !(body = parse_body(req, rep, w)) || !hold(w, rep, body))
        return;
    memset(&r, 0, sizeof r);
    r.api = WRK_API_CHAT;
    check_fields(&v, body, CHAT_FIELDS);
    common_fields(&v, body, &r);
    if (get_bool(&v, body, "logprobs", &b))
        r.logprobs = b;
    if (get_int(&v, body, "top_logprobs", 0, 20, &i)) {
        if (!r.logprobs)
            bad(&v, "top_logprobs", "invalid_value",
                "'top_logprobs' requires 'logprobs' to be true");
        r.top_logprobs = (int)i;
    }
    if ((x = field(body, "response_format"))) {
        const json_t *t = json_object_get(x, "type");
        if (!json_is_object(x) || !json_is_string(t) || strcmp(json_string_value(t), "text") ||
            json_object_size(x) != 1)
            bad(&v, "response_format", "unsupported_value",
                "only response_format {\"type\": \"text\"} is supported");
    }
    if (!v.failed)
        msgs = chat_messages(&v, body);
    if (!v.failed) {
        chat_render_opts o = chat_render_opts_default();
        char err[256];
        o.bos_token = w->bos_text;
        o.eos_token = w->eos_text;
        if (chat_apply(w->chat_template, msgs, &o, &r.prompt, err, sizeof err))
            bad(&v, "messages", "invalid_value", "the chat template failed: %s", err);
        else if (strlen(r.prompt) > OAI_MAX_PROMPT)
            bad(&v, "messages", "invalid_value", "the rendered chat exceeds %d bytes",
                OAI_MAX_PROMPT);
    }
    json_decref(msgs);
    json_decref(body);
    submit(w, rep, &r, &v, 1);
}

void wrk_h_completions(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    wrk_request r;
    vfail v = {0};
    json_t *body;
    const json_t *x;
    const char *prompt = NULL;
    long long i;
    int b;

    if (refuse_unready(w, rep) || !(body = parse_body(req, rep, w)) || !hold(w, rep, body))
        return;
    memset(&r, 0, sizeof r);
    r.api = WRK_API_COMPLETION;
    check_fields(&v, body, COMPLETION_FIELDS);
    common_fields(&v, body, &r);
    if (get_int(&v, body, "logprobs", 0, 20, &i)) {
        r.logprobs = 1;
        r.top_logprobs = (int)i;
    }
    if (get_bool(&v, body, "echo", &b) && b)
        bad(&v, "echo", "unsupported_value", "'echo' true is not supported");
    if (get_int(&v, body, "best_of", 1, 128, &i) && i != 1)
        bad(&v, "best_of", "unsupported_value", "only best_of = 1 is supported");
    x = field(body, "prompt");
    if (!x)
        bad(&v, "prompt", "missing_required_parameter", "'prompt' is required");
    else if (json_is_string(x))
        prompt = json_string_value(x);
    else if (json_is_array(x) && json_array_size(x) == 1 && json_is_string(json_array_get(x, 0)))
        prompt = json_string_value(json_array_get(x, 0));
    else if (json_is_array(x) && json_array_size(x) > 1)
        bad(&v, "prompt", "unsupported_value", "only one prompt per request is supported");
    else
        bad(&v, "prompt", "invalid_type", "'prompt' must be a string or an array of one string");
    if (prompt && strlen(prompt) > OAI_MAX_PROMPT)
        bad(&v, "prompt", "invalid_value", "'prompt' exceeds %d bytes", OAI_MAX_PROMPT);
    if (!v.failed)
        r.prompt = strdup(prompt);
    json_decref(body);
    submit(w, rep, &r, &v, 0);
}

void wrk_h_models(rb_http_req *req, rb_http_reply *rep, void *user)
{
    wrk *w = user;
    int64_t created = 0; /* not loaded (yet, or any more) */
    (void)req;
    if (wrk_gen_hold(w)) {
        created = w->started_unix;
        wrk_gen_release(w);
    }
    rb_http_reply_json(rep, 200,
                       json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id",
                                 w->cfg.model_ref, "object", "model", "created",
                                 (json_int_t)created, "owned_by", "rbee"));
}

/* ---- what the generation thread sends ---------------------------------------------------- */

static rb_err push(wrk_job *j, json_t *e)
{
    return rb_json_push(j->chan, e, OAI_PUSH_TIMEOUT_MS);
}

static json_t *chunk_base(wrk *w, wrk_job *j)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", j->id, "object",
                     j->req.api == WRK_API_CHAT ? "chat.completion.chunk" : "text_completion",
                     "created", (json_int_t)j->req.created, "model", w->cfg.model_ref,
                     "system_fingerprint", "rbee");
}

/* A choice of a chunk: delta (chat) or text (completions), logprobs, finish_reason. */
static json_t *chunk(wrk *w, wrk_job *j, json_t *content, json_t *logprobs, const char *finish)
{
    json_t *c = chunk_base(w, j), *choice;
    if (j->req.api == WRK_API_CHAT)
        choice = json_pack("{s:i, s:o}", "index", 0, "delta", content);
    else
        choice = json_pack("{s:i, s:o}", "index", 0, "text", content);
    json_object_set_new(choice, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    return c;
}

static json_t *byte_array(const char *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

/* {token, logprob, bytes} of one token. */
static json_t *token_entry(wrk *w, int32_t token, float logprob, size_t *nbytes)
{
    char b[256];
    size_t n = wrk_gen_token_bytes(w, token, b, sizeof b);
    if (nbytes)
        *nbytes = n;
    return json_pack("{s:o, s:f, s:o}", "token", rb_json_text(b, n), "logprob",
                     isfinite(logprob) ? (double)logprob : -9999.0, "bytes", byte_array(b, n));
}

/* The pending entries in OpenAI's shape for the route, and the pending list emptied. */
static json_t *take_logprobs(wrk_job *j)
{
    struct wrk_oai_acc *a = j->oai;
    json_t *out;
    size_t i;
    json_t *e;

    if (!j->req.logprobs || json_array_size(a->lp) == 0)
        return NULL;
    if (j->req.api == WRK_API_CHAT) {
        out = json_pack("{s:o, s:n}", "content", a->lp, "refusal"); /* a->lp moves */
    } else {
        json_t *tokens = json_array(), *lps = json_array(), *tops = json_array();
        json_array_foreach(a->lp, i, e)
        {
            json_t *d = json_object(), *t;
            size_t k;
            json_array_append(tokens, json_object_get(e, "token"));
            json_array_append(lps, json_object_get(e, "logprob"));
            json_array_foreach(json_object_get(e, "top_logprobs"), k, t) json_object_set(
                d, json_string_value(json_object_get(t, "token")), json_object_get(t, "logprob"));
            json_array_append_new(tops, d);
        }
        out = json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps,
                        "top_logprobs", tops, "text_offset", a->offs);
        a->offs = json_array();
        json_decref(a->lp);
    }
    a->lp = json_array();
    return out;
}

rb_err wrk_oai_begin(wrk *w, wrk_job *j)
{
    if (!j->req.stream || j->req.api != WRK_API_CHAT)
        return RB_OK;
    return push(
        j, chunk(w, j, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL));
}

rb_err wrk_oai_token(wrk *w, wrk_job *j, const char *text, size_t len, int32_t token, float logprob,
                     const wrk_lp *top, int ntop)
{
    struct wrk_oai_acc *a = j->oai;

    if (token >= 0 && j->req.logprobs) {
        size_t nb = 0;
        json_t *e = token_entry(w, token, logprob, &nb), *t = json_array();
        for (int i = 0; i < ntop; i++)
            json_array_append_new(t, token_entry(w, top[i].token, top[i].logprob, NULL));
        json_object_set_new(e, "top_logprobs", t);
        json_array_append_new(a->lp, e);
        json_array_append_new(a->offs, json_integer((json_int_t)a->tok_bytes));
        a->tok_bytes += nb;
    }
    if (!len)
        return RB_OK;
    if (!j->req.stream)
        return rb_buf_append(&a->text, text, len) ? RB_ENOMEM : RB_OK;
    json_t *content = j->req.api == WRK_API_CHAT
                          ? json_pack("{s:o}", "content", rb_json_text(text, len))
                          : rb_json_text(text, len);
    return push(j, chunk(w, j, content, take_logprobs(j), NULL));
}

void wrk_oai_end(wrk *w, wrk_job *j, const char *finish_reason, size_t prompt_tokens,
                 size_t cached_tokens, int completion_tokens)
{
    struct wrk_oai_acc *a = j->oai;
    json_t *usage = json_pack("{s:I, s:i, s:I, s:{s:I}}", "prompt_tokens",
                              (json_int_t)prompt_tokens, "completion_tokens", completion_tokens,
                              "total_tokens", (json_int_t)prompt_tokens + completion_tokens,
                              "prompt_tokens_details", "cached_tokens", (json_int_t)cached_tokens);

    if (j->req.stream) {
        json_t *last = chunk(w, j, j->req.api == WRK_API_CHAT ? json_object() : json_string(""),
                             take_logprobs(j), finish_reason);
        if (!push(j, last) && j->req.include_usage) {
            json_t *u = chunk_base(w, j);
            json_object_set_new(u, "choices", json_array());
            json_object_set(u, "usage", usage);
            push(j, u);
        }
        json_decref(usage);
        return;
    }
    json_t *text = rb_json_text(a->text.data ? a->text.data : "", a->text.len);
    json_t *lp = take_logprobs(j), *choice, *body;
    if (j->req.api == WRK_API_CHAT)
        choice = json_pack("{s:i, s:{s:s, s:o, s:n}}", "index", 0, "message", "role", "assistant",
                           "content", text, "refusal");
    else
        choice = json_pack("{s:i, s:o}", "index", 0, "text", text);
    json_object_set_new(choice, "logprobs",
                        lp ? lp
                        : j->req.logprobs && j->req.api == WRK_API_CHAT
                            ? json_pack("{s:[], s:n}", "content", "refusal")
                            : json_null());
    json_object_set_new(choice, "finish_reason", json_string(finish_reason));
    body = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o], s:o}", "id", j->id, "object",
                     j->req.api == WRK_API_CHAT ? "chat.completion" : "text_completion", "created",
                     (json_int_t)j->req.created, "model", w->cfg.model_ref, "system_fingerprint",
                     "rbee", "choices", choice, "usage", usage);
    a->body = rb_json_dump(body);
    a->status = 200;
    json_decref(body);
    rb_chan_push(j->chan, OAI_DONE_MARK, (size_t)-1, OAI_PUSH_TIMEOUT_MS);
}

void wrk_oai_fail(wrk_job *j, const char *message)
{
    json_t *e = error_object(message, "server_error", NULL, NULL);
    if (j->req.stream) {
        push(j, e);
        return;
    }
    if (j->oai) {
        free(j->oai->body);
        j->oai->body = rb_json_dump(e);
        j->oai->status = 500;
    }
    json_decref(e);
    rb_chan_push(j->chan, OAI_DONE_MARK, (size_t)-1, OAI_PUSH_TIMEOUT_MS);
}
