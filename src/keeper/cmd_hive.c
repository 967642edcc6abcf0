/*
 * cmd_hive.c - `rbee hive start|stop|status --node NAME`: a persistent hive on a node.
 *
 * DESIGN
 * A registered node's hive is started over ssh with a short sh script: the token arrives on
 * the script's standard input (never on a command line, where `ps` would show it), the hive
 * runs under nohup in network mode with its output in $RBEE_HOME/logs/hive-<port>.log on the
 * node, and its pid goes to $RBEE_HOME/hive-<port>.pid there. Stopping reads that file and
 * sends SIGTERM only if the pid still belongs to an rbee-hive, so a recycled pid is never
 * hit; the hive then stops its workers itself. For localhost the same scripts run under
 * /bin/sh without ssh and the hive runs in local mode. Start and stop both end by watching
 * /v1/health, so the command returns when the change is real.
 */
#include <stdio.h>
#include <string.h>

#include "kpr.h"
#include "kpr_args.h"
#include "kpr_cmds.h"
#include "kpr_hive.h"
#include "kpr_infer.h"
#include "kpr_proc.h"
#include "rb_http.h"
#include "rb_util.h"

#define SCRIPT_MS 30000
#define START_WAIT_MS 15000
#define STOP_WAIT_MS 40000
#define STATUS_MS 3000
#define POLL_MS 200
#define OUTPUT_MAX (64 * 1024)
#define NO_PID_FILE 3 /* exit status of the stop script */
#define PROBE_EVERY_MS 1000
#define RUNNING "rbee-hive-running"

static const char start_network[] =
    "H=\"${RBEE_HOME:-$HOME/.rbee}\"; mkdir -p \"$H/logs\" || exit 1; "
    "IFS= read -r RBEE_API_TOKEN || exit 1; export RBEE_API_TOKEN; "
    "nohup '%s' daemon --addr 0.0.0.0:%d </dev/null >>\"$H/logs/hive-%d.log\" 2>&1 & "
    "echo $! >\"$H/hive-%d.pid\"";

static const char start_local[] =
    "H=\"${RBEE_HOME:-$HOME/.rbee}\"; mkdir -p \"$H/logs\" || exit 1; "
    "nohup '%s' daemon --local-mode --addr 127.0.0.1:%d </dev/null >>\"$H/logs/hive-%d.log\" "
    "2>&1 & echo $! >\"$H/hive-%d.pid\"";

/* Whether the hive of a start is still running; when not, the end of its log. */
static const char probe_script[] =
    "H=\"${RBEE_HOME:-$HOME/.rbee}\"; P=$(cat \"$H/hive-%d.pid\" 2>/dev/null); "
    "if [ -n \"$P\" ] && kill -0 \"$P\" 2>/dev/null; then echo " RUNNING "; else "
    "tail -n 20 \"$H/logs/hive-%d.log\" 2>/dev/null; fi";

static const char stop_script[] =
    "H=\"${RBEE_HOME:-$HOME/.rbee}\"; F=\"$H/hive-%d.pid\"; "
    "[ -r \"$F\" ] || { echo \"no pid file $F\"; exit 3; }; P=$(cat \"$F\"); "
    "if ps -p \"$P\" -o comm= 2>/dev/null | grep -q rbee-hive; then kill -TERM \"$P\"; fi; "
    "rm -f \"$F\"";

/* The script's output without its trailing newlines ("" when none). */
static const char *output_text(rb_buf *out)
{
    while (out->len > 0 && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
        out->data[--out->len] = '\0';
    return out->data ? out->data : "";
}

/* Why a start or stop script failed: its last line of output, else the runner's error, else
 * its exit status (into buf). */
static const char *script_failure(rb_buf *out, const char *err, int status, char *buf, size_t len)
{
    kpr_last_line(output_text(out), buf, len);
    if (!buf[0] && err[0])
        snprintf(buf, len, "%s", err);
    else if (!buf[0])
        snprintf(buf, len, "the script exited with status %d and printed nothing", status);
    return buf;
}

/* Runs script on t's node: over ssh, or under /bin/sh for localhost. */
static rb_err run_script(const kpr_target *t, const char *script, const char *input, int *status,
                         rb_buf *out, char *err, size_t errlen)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    rb_err rc;

    if (t->registered)
        rc = kpr_ssh_run(&t->node, script, input, SCRIPT_MS, out, status, err, errlen);
    else
        rc = kpr_run_program(argv, input, SCRIPT_MS, out, status, err, errlen);
    return rc;
}

/* GET /v1/health once: 1 alive (its version into version), 0 not, -1 another program
 * answers there (either way the reason into version). */
static int alive(const kpr_target *t, char *version, size_t len)
{
    kpr_reply r;
    int ok = kpr_call(t->hive_url, NULL, "GET", "/v1/health", NULL, STATUS_MS, &r) == RB_OK &&
             r.status == 200 && strcmp(kpr_jstr(r.body, "status"), "alive") == 0,
        foreign = !ok && r.status != 0;

    if (ok)
        snprintf(version, len, "%s",
                 *kpr_jstr(r.body, "version") ? kpr_jstr(r.body, "version") : "unknown");
    else if (r.status == 200)
        snprintf(version, len,
                 "the program on its port is not a hive (its /v1/health is not a "
                 "hive's)");
    else if (r.status)
        snprintf(version, len, "the program on its port is not a hive (it answered %ld %s)",
                 r.status, rb_http_reason(r.status));
    else
        snprintf(version, len, "%s", r.err[0] ? r.err : "no answer");
    kpr_reply_release(&r);
    return ok ? 1 : foreign ? -1 : 0;
}

/* Polls health until it is up (want 1) or down (want 0), at most ms. */
static int wait_state(kpr_ctx *c, const kpr_target *t, int want, int ms, char *v, size_t len)
{
    int64_t end = rb_now_ms() + ms;
    int state = alive(t, v, len);

    while ((state == 1) != want && rb_now_ms() < end && kpr_wait_ms(c, POLL_MS) == RB_OK)
        state = alive(t, v, len);
    return (state == 1) == want;
}

/* Polls health until the hive just started answers (1). Every second it also asks the node
 * whether the hive still runs: when it has exited, or when START_WAIT_MS pass, it returns 0
 * with the reason in why (the last line of the hive's log, or the last health error). */
static int wait_started(kpr_ctx *c, const kpr_target *t, int port, char *v, size_t vlen, char *why,
                        size_t wlen)
{
    char script[512], err[512], line[512];
    int64_t end = rb_now_ms() + START_WAIT_MS, next_probe = rb_now_ms() + PROBE_EVERY_MS;
    int running = 1, status;

    while (alive(t, v, vlen) != 1) {
        int now_done = rb_now_ms() >= end;

        if (rb_now_ms() >= next_probe || now_done) {
            rb_buf out;

            rb_buf_init(&out, OUTPUT_MAX);
            snprintf(script, sizeof script, probe_script, port, port);
            if (run_script(t, script, NULL, &status, &out, err, sizeof err) == RB_OK &&
                status == 0 && !strstr(out.data ? out.data : "", RUNNING)) {
                kpr_last_line(out.data ? out.data : "", line, sizeof line);
                snprintf(why, wlen, "it exited: %s", line[0] ? line : "its log is empty");
                running = 0;
            }
            rb_buf_release(&out);
            next_probe = rb_now_ms() + PROBE_EVERY_MS;
        }
        if (!running)
            return 0;
        if (now_done || kpr_wait_ms(c, POLL_MS) != RB_OK) {
            snprintf(why, wlen, "it runs but did not answer within %d s (%s)", START_WAIT_MS / 1000,
                     v[0] ? v : "no answer");
            return 0;
        }
    }
    return 1;
}

static rb_err hive_start(kpr_ctx *c, const kpr_target *t, kpr_fail *f)
{
    char script[KPR_PATH_MAX + 1024], bin[KPR_PATH_MAX], v[512], err[512] = "", why[1100];
    char input[KPR_TOKEN_MAX + 2];
    int port = t->registered ? t->node.hive_port : t->local_port, status = -1, script_ok;
    rb_buf out;
    rb_err rc = RB_OK;

    rb_buf_init(&out, OUTPUT_MAX);
    if (alive(t, v, sizeof v) == 1) {
        kpr_out_line(&c->out, "A hive already runs on %s at %s (version %s)", t->name, t->hive_url,
                     v);
        goto out;
    }
    if (t->registered && !t->token[0]) {
        rc = RB_EAUTH;
        kpr_fail_set(f, "NO_TOKEN", "A hive on %s runs in network mode and needs a token: %s",
                     t->name, t->token_source);
        kpr_fail_hint(f,
                      "set RBEE_API_TOKEN, or add {\"nodes\":{\"%s\":{\"token\":\"...\"}}} to "
                      "$RBEE_HOME/config.json",
                      t->name);
        goto out;
    }
    if (t->registered) {
        snprintf(script, sizeof script, start_network, t->node.hive_bin, port, port, port);
    } else {
        kpr_hive_program(bin, sizeof bin);
        snprintf(script, sizeof script, start_local, strchr(bin, '\'') ? "rbee-hive" : bin, port,
                 port, port);
    }
    snprintf(input, sizeof input, "%s\n", t->token);
    rc = run_script(t, script, t->registered ? input : NULL, &status, &out, err, sizeof err);
    script_ok = !rc && status == 0;
    if (script_ok && wait_started(c, t, port, v, sizeof v, why, sizeof why)) {
        kpr_out_line(&c->out, "Hive started on %s at %s (version %s)", t->name, t->hive_url, v);
    } else if (kpr_ctx_interrupted(c)) {
        rc = RB_ECANCELED;
    } else if (rc != RB_ECANCELED) {
        rc = rc ? rc : RB_EIO;
        kpr_fail_set(f, "HIVE_START_FAILED", "The hive on %s did not come up at %s: %s", t->name,
                     t->hive_url, script_ok ? why : script_failure(&out, err, status, v, sizeof v));
        kpr_fail_hint(f, "read its log on %s: $RBEE_HOME/logs/hive-%d.log", t->name, port);
    }
out:
    rb_buf_release(&out);
    return rc;
}

static rb_err hive_stop(kpr_ctx *c, const kpr_target *t, kpr_fail *f)
{
    char script[1024], v[512], err[512] = "";
    int port = t->registered ? t->node.hive_port : t->local_port, status = -1;
    rb_buf out;
    rb_err rc;

    rb_buf_init(&out, OUTPUT_MAX);
    snprintf(script, sizeof script, stop_script, port);
    rc = run_script(t, script, NULL, &status, &out, err, sizeof err);
    if (!rc && status == NO_PID_FILE) {
        rc = RB_ENOTFOUND;
        kpr_fail_set(f, "NOT_STARTED_BY_RBEE", "No hive started by rbee runs on %s (%s)", t->name,
                     *output_text(&out) ? output_text(&out) : "no pid file");
        kpr_fail_hint(f, "a hive started by hand is stopped with Ctrl+C or kill -TERM <pid>");
    } else if (rc || status != 0) {
        rc = rc ? rc : RB_EIO;
        kpr_fail_set(f, "HIVE_STOP_FAILED", "Cannot stop the hive on %s: %s", t->name,
                     script_failure(&out, err, status, v, sizeof v));
    } else if (!wait_state(c, t, 0, STOP_WAIT_MS, v, sizeof v)) {
        rc = RB_ETIMEDOUT;
        kpr_fail_set(f, "HIVE_STOP_FAILED", "The hive on %s still answers at %s", t->name,
                     t->hive_url);
    } else {
        kpr_out_line(&c->out, "Hive on %s stopped", t->name);
    }
    rb_buf_release(&out);
    return rc;
}

static rb_err hive_status(kpr_ctx *c, const kpr_target *t, int json, kpr_fail *f)
{
    char v[512];
    kpr_reply list = {0};
    json_t *doc = NULL;
    rb_err rc = RB_OK;
    int state = alive(t, v, sizeof v), up = state == 1, counted = 0;
    char why[700] = "";

    if (up &&
        kpr_call(t->hive_url, t->token, "GET", "/v1/workers/list", NULL, STATUS_MS, &list) ==
            RB_OK &&
        list.status == 200 && json_is_array(json_object_get(list.body, "workers")))
        counted = 1;
    else if (up && (list.status == 401 || list.status == 403))
        snprintf(why, sizeof why, "authentication failed");
    else if (up && list.status)
        snprintf(why, sizeof why, "the list answered %ld %s", list.status,
                 list.code[0] ? list.code : rb_http_reason(list.status));
    else if (up)
        snprintf(why, sizeof why, "%s", list.err[0] ? list.err : "no answer to the list");
    if (json)
        doc = json_pack("{s:s, s:s, s:b}", "node", t->name, "hive_url", t->hive_url, "alive", up);
    if (!up) {
        rc = RB_ECONNECT;
        kpr_fail_set(f, "HIVE_DOWN", "The hive of %s (%s) is not running: %s", t->name, t->hive_url,
                     v);
        if (state < 0)
            kpr_fail_hint(f,
                          "stop the program that holds port %d, or give the hive another port "
                          "(%s)",
                          t->registered ? t->node.hive_port : t->local_port,
                          t->registered ? "rbee setup add-node --hive-port" : "RBEE_HIVE_PORT");
        else
            kpr_fail_hint(f, "start it with: rbee hive start --node %s", t->name);
        json_object_set_new(doc, "error", json_string(v));
    } else if (json) {
        json_object_set_new(doc, "version", json_string(v));
        json_object_set_new(doc, "workers",
                            counted ? json_integer((json_int_t)json_array_size(
                                          json_object_get(list.body, "workers")))
                                    : json_null());
        if (!counted)
            json_object_set_new(doc, "workers_error", json_string(why));
    } else if (counted) {
        kpr_out_line(&c->out, "%s %s alive, version %s, %zu workers", t->name, t->hive_url, v,
                     json_array_size(json_object_get(list.body, "workers")));
    } else {
        kpr_out_line(&c->out, "%s %s alive, version %s (workers: %s)", t->name, t->hive_url, v,
                     why);
    }
    if (doc)
        kpr_out_doc(&c->out, doc);
    kpr_reply_release(&list);
    return rc;
}

static const rb_subcmd subcommands[] = {
    {"start", "start the hive of a node (over ssh for a remote node) and wait until it answers"},
    {"stop", "stop the hive of a node and, with it, its workers"},
    {"status", "whether the hive of a node answers, its version and workers"},
};

int kpr_cmd_hive(kpr_ctx *c, int argc, char **argv)
{
    static const rb_group group = {"rbee hive", subcommands, RB_ARRAY_LEN(subcommands), NULL, 0};
    const char *node = NULL;
    int json = 0;
    const rb_opt opts[] = {
        {"--node", RB_OPT_STR, &node, .what = "NAME",
         .help = "a node of rbee setup list-nodes (default localhost)"},
        {"--json", RB_OPT_FLAG, &json, .help = "the status as one JSON document on stdout"}};
    int status = KPR_EXIT_FAIL, shown = 0;
    int k = rb_group_pick(&group, argc, argv, &status);
    char err[256], prog[32];
    rb_cmd cmd = {prog, NULL, NULL, opts, 1, NULL, 0}; /* --json: status only */
    kpr_target t;
    kpr_fail f;
    rb_err rc;

    if (k < 0)
        return status;
    snprintf(prog, sizeof prog, "rbee hive %s", subcommands[k].name);
    cmd.summary = subcommands[k].summary;
    cmd.nopts = k == 2 ? RB_ARRAY_LEN(opts) : 1;
    kpr_fail_init(&f);
    if ((rc = rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, &shown, err, sizeof err)))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    else if (!shown && !(rc = kpr_target_resolve(c, node, NULL, &t, &f)))
        rc = k == 0   ? hive_start(c, &t, &f)
             : k == 1 ? hive_stop(c, &t, &f)
                      : hive_status(c, &t, json, &f);
    return kpr_cmd_status(c, rc, &f);
}
