/*
 * cmd_workers.c - `rbee workers list|health|shutdown`: a node's workers, as its hive sees
 * them.
 *
 * DESIGN
 * The hive owns its workers, so the list comes from the hive and a shutdown goes through it
 * (it stops the worker gracefully and removes it); health asks each worker itself, which is
 * the check the hive's monitor also makes. Shutdown waits until the hive no longer lists the
 * worker, so "stopped" means stopped, and drops the worker from the keeper's cache. On
 * localhost, no hive running simply means no workers.
 */
#include <stdio.h>
#include <string.h>

#include "kpr.h"
#include "kpr_args.h"
#include "kpr_cmds.h"
#include "kpr_hive.h"
#include "kpr_infer.h"
#include "rb_http.h"
#include "rb_util.h"

#define LIST_MS 5000
#define HEALTH_MS 3000
#define STOP_WAIT_MS 30000
#define POLL_MS 200

typedef struct wopts {
    const char *node, *hive, *id;
    int all, json;
} wopts;

/* One worker of the hive's list as the JSON document shows it: the text table's columns. */
static json_t *worker_doc(json_t *w)
{
    json_t *rss = json_object_get(w, "rss_mb");

    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:O}", "id", kpr_jstr(w, "id"), "state",
                     kpr_jstr(w, "state"), "model_ref", kpr_jstr(w, "model_ref"), "url",
                     kpr_jstr(w, "url"), "pid", json_integer_value(json_object_get(w, "pid")),
                     "slots_busy", json_integer_value(json_object_get(w, "slots_busy")),
                     "slots_total", json_integer_value(json_object_get(w, "slots_total")), "rss_mb",
                     json_is_integer(rss) ? rss : json_null());
}

static void list_json(kpr_ctx *c, const kpr_target *t, json_t *ws, int hive_running)
{
    json_t *arr = json_array(), *w;
    size_t i;

    json_array_foreach(ws, i, w)
    {
        json_array_append_new(arr, worker_doc(w));
    }
    kpr_out_doc(&c->out, json_pack("{s:s, s:s, s:b, s:o}", "node", t->name, "hive_url", t->hive_url,
                                   "hive_running", hive_running, "workers", arr));
}

/* The hive's worker list into *list; RB_ENOTFOUND (nothing to report) when localhost has no
 * hive. */
static rb_err fetch_list(kpr_ctx *c, const kpr_target *t, int json, kpr_reply *list, kpr_fail *f)
{
    rb_err rc = kpr_call(t->hive_url, t->token, "GET", "/v1/workers/list", NULL, LIST_MS, list);

    if (rc == RB_ECONNECT && t->is_local) {
        if (json)
            list_json(c, t, NULL, 0);
        else
            kpr_out_line(&c->out, "No hive runs on localhost (%s), so no workers", t->hive_url);
        rc = RB_ENOTFOUND;
    } else if (rc || list->status != 200) {
        kpr_reply_fail(f, t, list, "list its workers");
        rc = rc ? rc : RB_EHTTP;
    }
    return rc;
}

static rb_err do_list(kpr_ctx *c, const kpr_target *t, json_t *ws, int json)
{
    size_t i;
    json_t *w;

    if (json) {
        list_json(c, t, ws, 1);
        return RB_OK;
    }
    if (json_array_size(ws) == 0)
        kpr_out_line(&c->out, "No workers on %s", t->name);
    else
        kpr_out_line(&c->out, "%-44s %-8s %-24s %-28s %-8s %-6s %s", "ID", "STATE", "MODEL", "URL",
                     "PID", "SLOTS", "RSS");
    json_array_foreach(ws, i, w)
    {
        char rss[32] = "-"; /* a hive without rss_mb, or a process it could not read */
        if (json_is_integer(json_object_get(w, "rss_mb")))
            snprintf(rss, sizeof rss, "%lld MB",
                     (long long)json_integer_value(json_object_get(w, "rss_mb")));
        kpr_out_line(&c->out, "%-44s %-8s %-24s %-28s %-8lld %lld/%-4lld %s", kpr_jstr(w, "id"),
                     kpr_jstr(w, "state"), kpr_jstr(w, "model_ref"), kpr_jstr(w, "url"),
                     (long long)json_integer_value(json_object_get(w, "pid")),
                     (long long)json_integer_value(json_object_get(w, "slots_busy")),
                     (long long)json_integer_value(json_object_get(w, "slots_total")), rss);
    }
    return RB_OK;
}

/* Resolves o->id, a worker id or a unique prefix of one, against the hive's list into id.
 * No match leaves id as given (the caller reports it); several fill f (AMBIGUOUS_ID). */
static rb_err resolve_id(const kpr_target *t, json_t *ws, const char *given, char *id, size_t len,
                         kpr_fail *f)
{
    char ids[768] = "";
    size_t n = kpr_workers_match(ws, given, id, len, ids, sizeof ids);

    if (n > 1) {
        kpr_fail_set(f, "AMBIGUOUS_ID", "Worker id '%s' matches %zu workers on %s: %s", given, n,
                     t->name, ids);
        return RB_EINVAL;
    }
    if (n == 0)
        snprintf(id, len, "%s", given);
    return RB_OK;
}

static rb_err do_health(kpr_ctx *c, const kpr_target *t, json_t *ws, const wopts *o, kpr_fail *f)
{
    size_t i, checked = 0, bad = 0;
    char id[128];
    json_t *w;

    if (o->id && resolve_id(t, ws, o->id, id, sizeof id, f))
        return RB_EINVAL;
    json_array_foreach(ws, i, w)
    {
        kpr_reply h;
        if (o->id && strcmp(id, kpr_jstr(w, "id")) != 0)
            continue;
        checked++;
        if (kpr_call(kpr_jstr(w, "url"), t->token, "GET", "/v1/health", NULL, HEALTH_MS, &h) ==
                RB_OK &&
            h.status == 200) {
            kpr_out_line(&c->out, "%s %s %s %s", kpr_jstr(w, "id"), kpr_jstr(h.body, "status"),
                         kpr_jstr(h.body, "state"), kpr_jstr(w, "url"));
        } else {
            bad++;
            char why[600];

            if (h.status && h.status != 200)
                snprintf(why, sizeof why, "it answered %ld %s", h.status,
                         h.code[0] ? h.code : rb_http_reason(h.status));
            else
                snprintf(why, sizeof why, "%s", h.err[0] ? h.err : "no answer");
            kpr_out_line(&c->out, "%s unhealthy %s (%s)", kpr_jstr(w, "id"), kpr_jstr(w, "url"),
                         why);
        }
        kpr_reply_release(&h);
    }
    if (o->id && checked == 0)
        kpr_fail_set(f, "WORKER_NOT_FOUND", "No worker %s on %s (rbee workers list --node %s)",
                     o->id, t->name, t->name);
    else if (bad)
        kpr_fail_set(f, "WORKER_UNHEALTHY",
                     "%zu of %zu workers on %s did not answer their "
                     "health check",
                     bad, checked, t->name);
    return kpr_fail_isset(f) ? RB_EIO : RB_OK;
}

/* Asks the hive to stop worker id and waits until it no longer lists it. */
static rb_err stop_one(kpr_ctx *c, const kpr_target *t, const char *id, kpr_fail *f)
{
    json_t *req = json_pack("{s:s}", "worker_id", id);
    int64_t end = rb_now_ms() + STOP_WAIT_MS;
    kpr_store *st;
    kpr_reply r;
    int gone = 0;
    rb_err rc = kpr_call(t->hive_url, t->token, "POST", "/v1/workers/shutdown", req, LIST_MS, &r);

    if (rc || r.status != 200) {
        kpr_reply_fail(f, t, &r, "stop the worker");
        rc = rc ? rc : RB_EHTTP;
    }
    while (!rc && !gone && rb_now_ms() < end) {
        kpr_reply_release(&r);
        gone = kpr_call(t->hive_url, t->token, "GET", "/v1/workers/list", NULL, LIST_MS, &r) ==
                   RB_OK &&
               r.status == 200 && !kpr_workers_entry(r.body, id);
        if (!gone)
            rc = kpr_wait_ms(c, POLL_MS);
    }
    if (!rc && !gone) {
        rc = RB_ETIMEDOUT;
        kpr_fail_set(f, "STOP_TIMEOUT",
                     "Worker %s on %s was asked to stop but is still listed "
                     "after %d s",
                     id, t->name, STOP_WAIT_MS / 1000);
    }
    if (gone) {
        if (kpr_ctx_store(c, &st, f) == RB_OK)
            kpr_worker_remove(st, id);
        kpr_out_line(&c->out, "Worker %s stopped", id);
    }
    kpr_reply_release(&r);
    json_decref(req);
    return rc;
}

static rb_err do_shutdown(kpr_ctx *c, const kpr_target *t, json_t *ws, const wopts *o, kpr_fail *f)
{
    char id[128];
    rb_err rc = RB_OK;

    if (!o->id && !o->all) {
        rc = RB_EINVAL;
        kpr_fail_set(f, "INVALID_ARGUMENT", "rbee workers shutdown: give --id ID or --all");
    } else if (o->id) {
        rc = resolve_id(t, ws, o->id, id, sizeof id, f);
        if (!rc)
            rc = stop_one(c, t, id, f);
    } else if (json_array_size(ws) == 0) {
        kpr_out_line(&c->out, "No workers on %s", t->name);
    } else {
        for (size_t i = 0; i < json_array_size(ws) && !rc; i++)
            rc = stop_one(c, t, kpr_jstr(json_array_get(ws, i), "id"), f);
    }
    return rc;
}

static const rb_subcmd subcommands[] = {
    {"list", "the workers of a node, as its hive lists them"},
    {"health", "ask each worker (or the one of --id) whether it is healthy"},
    {"shutdown", "stop the worker of --id, or every worker with --all"},
};

int kpr_cmd_workers(kpr_ctx *c, int argc, char **argv)
{
    static const rb_group group = {"rbee workers", subcommands, RB_ARRAY_LEN(subcommands), NULL, 0};
    wopts o = {0};
    const rb_opt node_opt = {"--node", RB_OPT_STR, &o.node, .what = "NAME",
                             .help = "a node of rbee setup list-nodes (default localhost)"};
    const rb_opt hive_opt = {"--hive", RB_OPT_STR, &o.hive, .what = "URL",
                             .help = "the hive at this URL, bypassing the node registry"};
    const rb_opt id_opt = {"--id", RB_OPT_STR, &o.id, .what = "ID",
                           .help = "the worker, or a unique beginning of its id"};
    const rb_opt all_opt = {"--all", RB_OPT_FLAG, &o.all, .help = "every worker of the node"};
    const rb_opt json_opt = {"--json", RB_OPT_FLAG, &o.json,
                             .help = "the list as one JSON document on stdout"};
    /* list: node, hive, json; health: node, hive, id; shutdown: node, hive, id, all */
    rb_opt opts[4] = {node_opt, hive_opt};
    int status = KPR_EXIT_FAIL, shown = 0;
    int k = rb_group_pick(&group, argc, argv, &status);
    kpr_target t;
    kpr_reply list = {0};
    kpr_fail f;
    char err[256], prog[32];
    rb_cmd cmd = {prog, NULL, NULL, opts, 2, NULL, 0};
    rb_err rc;

    if (k < 0)
        return status;
    if (k == 0)
        opts[cmd.nopts++] = json_opt;
    if (k >= 1)
        opts[cmd.nopts++] = id_opt;
    if (k == 2)
        opts[cmd.nopts++] = all_opt;
    snprintf(prog, sizeof prog, "rbee workers %s", subcommands[k].name);
    cmd.summary = subcommands[k].summary;
    kpr_fail_init(&f);
    if ((rc = rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, &shown, err, sizeof err)))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    else if (!shown && !(rc = kpr_target_resolve(c, o.node, o.hive, &t, &f)) &&
             !(rc = fetch_list(c, &t, k == 0 && o.json, &list, &f))) {
        json_t *ws = json_object_get(list.body, "workers");
        rc = k == 0   ? do_list(c, &t, ws, o.json)
             : k == 1 ? do_health(c, &t, ws, &o, &f)
                      : do_shutdown(c, &t, ws, &o, &f);
    }
    if (rc == RB_ENOTFOUND && !kpr_fail_isset(&f))
        rc = RB_OK; /* localhost without a hive: nothing to do */
    kpr_reply_release(&list);
    return kpr_cmd_status(c, rc, &f);
}
