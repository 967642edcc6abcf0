/*
 * chat.c - `rbee chat`: an interactive multi-turn chat through the hive's OpenAI route.
 *
 * DESIGN
 * The session starts like `rbee infer`: phases 1 to 7 (kpr_run_prepare) find or start a hive
 * and a worker for the model, and their lines are shown once. Every turn then goes to the
 * hive's POST /v1/chat/completions with "stream":true and the whole conversation so far (the
 * messages array, kept here), and the reply is printed chunk by chunk as the hive relays it.
 * The hive picks the worker itself (the one just started or found, or a new one if it went
 * away), so a session outlives an idle timeout.
 *
 * Input is read with read(2) on descriptor 0, a line at a time: on a terminal the line
 * discipline does the editing, Ctrl+D on an empty line is the end of input, and Ctrl+C raises
 * SIGINT, whose handler (main) only sets the interrupt flag. Ctrl+C during a reply stops the
 * stream (rb_sse_opts.cancel is that flag): the connection closes, the hive closes its
 * transfer and the worker stops generating; the partial reply stays in the history, so the
 * next turn sees what the model had said. The flag is then cleared, so the session goes on
 * and a later Ctrl+C is again a first one (a second Ctrl+C while one is pending still ends
 * the process, main's rule). Ctrl+C at the prompt only reminds how to leave. SIGTERM ends the
 * session (exit 130). Without a terminal no prompt is shown: one line is one turn and each
 * reply ends with a newline.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kpr.h"
#include "kpr_args.h"
#include "kpr_hive.h"
#include "kpr_infer.h"
#include "rb_client.h"
#include "rb_json.h"
#include "rb_util.h"

#define LINE_MAX_BYTES 32768
#define HISTORY_MAX_BYTES (1u << 20) /* the hive's request limit is 1 MiB */
#define REPLY_MAX_BYTES (1u << 20)
#define STREAM_IDLE_MS 120000 /* the worker sends keep-alives every 10 s */
#define INPUT_POLL_MS 200     /* the prompt's wait between looks at the interrupt flag */
#define BYE "/bye"

typedef struct chat_opts {
    kpr_infer_opts io; /* the phases' options; prompt unused */
    const char *system;
    long long max_tokens;
    int has_max_tokens;
} chat_opts;

typedef struct line_reader {
    char buf[LINE_MAX_BYTES + 1];
    size_t len; /* bytes in buf */
    int eof;
} line_reader;

typedef struct turn {
    rb_buf *reply; /* the assistant's text so far */
    char err[512]; /* an error event of the stream */
    int printed;   /* text was printed */
    kpr_out *out;
} turn;

static rb_err parse_opts(int argc, char **argv, chat_opts *o, int *shown, char *err, size_t errlen)
{
    kpr_infer_opts *io = &o->io;
    const rb_opt opts[] = {
        {"--node", RB_OPT_STR, &io->node, .what = "NAME",
         .help = "a node of rbee setup list-nodes (default localhost)"},
        {"--hive", RB_OPT_STR, &io->hive_url, .what = "URL",
         .help = "the hive at this URL, bypassing the node registry"},
        {"--model", RB_OPT_STR, &io->model, .what = "REF", .help = KPR_MODEL_HELP},
        {"--file", RB_OPT_STR, &io->file, .what = "FILE.gguf",
         .help = "the file of an hf:ORG/REPO model (default: its Q4_K_M file)"},
        {"--system", RB_OPT_STR, &o->system, .what = "TEXT",
         .help = "the system message that opens the conversation"},
        {"--max-tokens", RB_OPT_LLONG, &o->max_tokens, 1, KPR_MAX_TOKENS_LIMIT, &o->has_max_tokens,
         .help = "at most this many tokens per reply, 1 to 2048 (default: the context)"},
        {"--temperature", RB_OPT_NUM, &io->temperature, 0, 2, &io->has_temperature,
         .help = "0 to 2, 0 is greedy (default: the worker's, 0.7)"},
        {"--backend", RB_OPT_STR, &io->backend, .what = "NAME", .help = "default cpu"},
        {"--device", RB_OPT_LLONG, &io->device, 0, 1024, .help = "default 0"},
        {"--ready-timeout", RB_OPT_NUM, &io->ready_timeout_s, 0.1, 86400, .what = "SECONDS",
         .help = "how long a new worker may take to load (default 300)"},
    };
    const rb_cmd cmd = {"rbee chat",
                        NULL,
                        "Talk with a model: each line is a turn; Ctrl+C stops a reply, Ctrl+D or "
                        "/bye ends.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        KPR_HELP_NOTES};
    rb_err rc;

    memset(o, 0, sizeof(*o));
    io->model = KPR_DEFAULT_MODEL;
    io->backend = "cpu";
    io->max_tokens = KPR_DEFAULT_MAX_TOKENS;
    io->ready_timeout_s = KPR_DEFAULT_READY_TIMEOUT_S;
    rc = rb_cmd_parse(&cmd, argc, argv, NULL, 0, NULL, shown, err, errlen);
    if (rc || *shown)
        return rc;
    if (o->system && strlen(o->system) > LINE_MAX_BYTES)
        rc = rb_errf(err, errlen, RB_EINVAL, "rbee chat: --system is longer than %d bytes",
                     LINE_MAX_BYTES);
    else if (!(rc = kpr_ref_with_file("chat", io->model, io->file, io->model_buf,
                                      sizeof io->model_buf, err, errlen)))
        io->model = io->model_buf;
    return rc;
}

/* ---- input ------------------------------------------------------------------------------- */

/* Takes one line (without its newline) out of lr into out. 1 when there was one. */
static int take_line(line_reader *lr, char *out, size_t outlen)
{
    char *nl = memchr(lr->buf, '\n', lr->len);
    size_t n;

    if (!nl && !(lr->eof && lr->len > 0))
        return 0;
    n = nl ? (size_t)(nl - lr->buf) : lr->len;
    snprintf(out, outlen, "%.*s", (int)n, lr->buf);
    if (n > 0 && out[n - 1] == '\r')
        out[n - 1] = '\0';
    n += nl ? 1 : 0;
    memmove(lr->buf, lr->buf + n, lr->len - n);
    lr->len -= n;
    return 1;
}

typedef enum read_result { READ_LINE, READ_EOF, READ_INTERRUPT, READ_TOO_LONG } read_result;

/* Reads the next line from descriptor 0. An interrupt at the prompt is READ_INTERRUPT. */
static read_result read_line(kpr_ctx *c, line_reader *lr, char *out, size_t outlen)
{
    for (;;) {
        if (take_line(lr, out, outlen))
            return READ_LINE;
        if (lr->eof)
            return READ_EOF;
        if (lr->len == LINE_MAX_BYTES)
            return READ_TOO_LONG;
        if (kpr_ctx_interrupted(c))
            return READ_INTERRUPT;
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int n = poll(&p, 1, INPUT_POLL_MS);
        if (n == 0 || (n < 0 && errno == EINTR))
            continue;
        ssize_t got = read(0, lr->buf + lr->len, LINE_MAX_BYTES - lr->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            lr->eof = 1;
        else
            lr->len += (size_t)got;
    }
}

/* ---- one turn ---------------------------------------------------------------------------- */

static int on_chunk(void *user, const char *event, const char *data, size_t len)
{
    turn *t = user;
    json_t *j = json_loadb(data, len, 0, NULL);
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    const char *text =
        json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
    const char *emsg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));

    (void)event;
    if (emsg)
        snprintf(t->err, sizeof t->err, "%s", emsg);
    if (text && *text) {
        rb_buf_appends(t->reply, text);
        kpr_out_token(t->out, 0, text);
        t->printed = 1;
    }
    json_decref(j);
    return t->out->closed; /* nobody reads the output any more */
}

/* Streams the reply to messages; the assistant's text goes to reply. RB_ECANCELED after an
 * interrupt, else fills f on failure. */
static rb_err run_turn(kpr_run *r, const chat_opts *o, json_t *messages, rb_buf *reply)
{
    rb_sse_opts so = rb_sse_opts_default();
    rb_sse_result res;
    turn t = {0};
    char url[KPR_URL_MAX + 32], err[512];
    json_t *req =
        json_pack("{s:s, s:O, s:b}", "model", o->io.model, "messages", messages, "stream", 1);
    char *body;
    rb_err rc;

    if (o->has_max_tokens)
        json_object_set_new(req, "max_tokens", json_integer(o->max_tokens));
    if (o->io.has_temperature)
        json_object_set_new(req, "temperature", json_real(o->io.temperature));
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    t.reply = reply;
    t.out = &r->c->out;
    so.idle_timeout_ms = STREAM_IDLE_MS;
    so.token = r->t.token[0] ? r->t.token : NULL;
    so.cancel = r->c->interrupted;
    snprintf(url, sizeof url, "%s/v1/chat/completions", r->t.hive_url);
    rb_sse_result_init(&res);
    rc = body ? rb_client_sse("POST", url, body, &so, on_chunk, &t, &res, err, sizeof err)
              : RB_ENOMEM;
    if (t.printed || rc == RB_ECANCELED)
        kpr_out_tokens_end(&r->c->out);
    if (rc == RB_ECANCELED && !kpr_ctx_interrupted(r->c))
        rc = RB_EIO; /* stopped because stdout went away */
    if (rc == RB_EHTTP) {
        kpr_http_error(&res, "hive", err, sizeof err);
        kpr_fail_set(&r->f, "CHAT_FAILED", "Chat request failed on %s: %s", r->t.name, err);
    } else if (!rc && t.err[0]) {
        rc = RB_EPROTO;
        kpr_fail_set(&r->f, "CHAT_FAILED", "The reply failed on %s: %s", r->t.name, t.err);
    } else if (rc && rc != RB_ECANCELED) {
        kpr_fail_set(&r->f, "CHAT_FAILED", "The reply from %s broke off: %s", r->t.name,
                     err[0] ? err : rb_strerror(rc));
    }
    rb_sse_result_release(&res);
    free(body);
    return rc;
}

static int append_message(json_t *messages, const char *role, const char *text, size_t len)
{
    /* rb_json_text: input that is not valid UTF-8 still makes a (repaired) string */
    return json_array_append_new(messages, json_pack("{s:s, s:o}", "role", role, "content",
                                                     rb_json_text(text, len))) == 0;
}

/* 1 while the conversation still fits a request. */
static int history_fits(json_t *messages)
{
    char *s = json_dumps(messages, JSON_COMPACT);
    int fits = s && strlen(s) < HISTORY_MAX_BYTES - 4096;
    free(s);
    return fits;
}

/* The session: prompt, turn, reply, until /bye, end of input or SIGTERM. */
static rb_err session(kpr_run *r, const chat_opts *o)
{
    static line_reader lr;
    static char line[LINE_MAX_BYTES + 1];
    int tty = isatty(0);
    json_t *messages = json_array();
    rb_buf reply;
    rb_err rc = RB_OK;

    rb_buf_init(&reply, REPLY_MAX_BYTES);
    if (o->system)
        append_message(messages, "system", o->system, strlen(o->system));
    if (tty)
        fprintf(stderr, "Chatting with %s on %s. Ctrl+C stops a reply; Ctrl+D or %s ends.\n",
                o->io.model, r->t.name, BYE);
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        read_result rr = read_line(r->c, &lr, line, sizeof line);
        if (rr == READ_INTERRUPT && atomic_load(r->c->interrupted) == SIGINT) {
            atomic_store(r->c->interrupted, 0);
            fprintf(stderr, "\n(Ctrl+D or %s ends the chat)\n", BYE);
            continue;
        }
        if (rr == READ_INTERRUPT) {
            rc = RB_ECANCELED;
            break;
        }
        if (rr == READ_TOO_LONG) {
            rc = RB_ETOOBIG;
            kpr_fail_set(&r->f, "LINE_TOO_LONG", "A line of input is longer than %d bytes",
                         LINE_MAX_BYTES);
            break;
        }
        if (rr == READ_EOF || strcmp(line, BYE) == 0) {
            if (tty && rr == READ_EOF)
                fputc('\n', stdout);
            break;
        }
        if (!line[0])
            continue;
        append_message(messages, "user", line, strlen(line));
        if (!history_fits(messages)) {
            rc = RB_ETOOBIG;
            kpr_fail_set(&r->f, "HISTORY_TOO_LONG",
                         "The conversation no longer fits one request (1 MiB)");
            kpr_fail_hint(&r->f, "start a new rbee chat");
            break;
        }
        rb_buf_reset(&reply);
        rc = run_turn(r, o, messages, &reply);
        if (rc == RB_ECANCELED && atomic_load(r->c->interrupted) == SIGINT) {
            /* Ctrl+C stopped this reply only: keep what was said, go on */
            atomic_store(r->c->interrupted, 0);
            fprintf(stderr, "[reply stopped]\n");
            rc = RB_OK;
        }
        if (rc)
            break;
        append_message(messages, "assistant", reply.data ? reply.data : "", reply.len);
    }
    rb_buf_release(&reply);
    json_decref(messages);
    return rc;
}

int kpr_cmd_chat(kpr_ctx *c, int argc, char **argv)
{
    chat_opts o;
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
    r.c = c;
    r.o = &o.io;
    rc = kpr_run_prepare(&r);
    if (!rc)
        rc = session(&r, &o);
    if (rc == RB_ECANCELED || (rc && kpr_ctx_interrupted(c))) {
        kpr_out_canceled(&c->out, NULL);
        status = KPR_EXIT_CANCELED;
    } else if (rc) {
        if (!kpr_fail_isset(&r.f))
            kpr_fail_set(&r.f, "FAILED", "rbee chat failed: %s", rb_strerror(rc));
        kpr_out_fail(&c->out, &r.f);
    } else {
        status = KPR_EXIT_OK;
    }
    kpr_run_finish(&r);
out:
    return status;
}
