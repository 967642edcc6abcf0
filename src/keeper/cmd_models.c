/*
 * cmd_models.c - `rbee models list|download|rm`: the model catalog of a node's hive.
 *
 * DESIGN
 * Both go through phase 2's connection, so on localhost without a hive an ephemeral one is
 * started for the command and stopped afterwards: the catalog and the downloaded files live in
 * $RBEE_HOME and outlast it, and the next `rbee infer` finds the model there. A download shows
 * the same progress as phase 3.
 */
#include <stdio.h>
#include <string.h>

#include "kpr.h"
#include "kpr_args.h"
#include "kpr_cmds.h"
#include "kpr_hive.h"
#include "rb_util.h"
#include "kpr_infer.h"

static void list_json(kpr_ctx *c, const kpr_target *t, json_t *ms)
{
    json_t *arr = json_array(), *m;
    size_t i;

    json_array_foreach(ms, i, m)
    {
        json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "reference",
                                             kpr_jstr(m, "reference"), "size_bytes",
                                             json_integer_value(json_object_get(m, "size_bytes")),
                                             "local_path", kpr_jstr(m, "local_path")));
    }
    kpr_out_doc(&c->out, json_pack("{s:s, s:s, s:s, s:o}", "node", t->name, "hive_url", t->hive_url,
                                   "bundled_model", KPR_DEFAULT_MODEL, "models", arr));
}

static rb_err do_list(kpr_ctx *c, const kpr_target *t, int json, kpr_fail *f)
{
    kpr_reply r;
    json_t *ms, *m;
    size_t i;
    rb_err rc = kpr_call(t->hive_url, t->token, "GET", "/v1/models", NULL, KPR_CALL_TIMEOUT_MS, &r);

    if (rc || r.status != 200) {
        kpr_reply_fail(f, t, &r, "list its models");
        rc = rc ? rc : RB_EHTTP;
        goto out;
    }
    ms = json_object_get(r.body, "models");
    if (json) {
        list_json(c, t, ms);
        goto out;
    }
    if (json_array_size(ms) == 0)
        kpr_out_line(&c->out,
                     "No downloaded models on %s (the bundled model %s needs no "
                     "download)",
                     t->name, KPR_DEFAULT_MODEL);
    else
        kpr_out_line(&c->out, "%-48s %10s  %s", "REFERENCE", "SIZE_MB", "PATH");
    json_array_foreach(ms, i, m)
    {
        kpr_out_line(&c->out, "%-48s %10.1f  %s", kpr_jstr(m, "reference"),
                     (double)json_integer_value(json_object_get(m, "size_bytes")) / 1e6,
                     kpr_jstr(m, "local_path"));
    }
out:
    kpr_reply_release(&r);
    return rc;
}

/* The option that names t again in a suggestion: "--node NAME" or "--hive URL". */
static const char *target_opt(const kpr_target *t, char *buf, size_t n)
{
    snprintf(buf, n, "%s %s", strncmp(t->name, "http", 4) == 0 ? "--hive" : "--node", t->name);
    return buf;
}

/* POST /v1/models/delete: the file and its catalog row go; a model a worker serves stays. */
static rb_err do_rm(kpr_ctx *c, const kpr_target *t, const char *ref, int json, kpr_fail *f)
{
    kpr_reply r;
    json_t *req = json_pack("{s:s}", "model_ref", ref), *d;
    rb_err rc =
        kpr_call(t->hive_url, t->token, "POST", "/v1/models/delete", req, KPR_CALL_TIMEOUT_MS, &r);
    size_t i;
    char to[KPR_URL_MAX + 8];

    json_decref(req);
    if (rc || r.status != 200) {
        kpr_reply_fail(f, t, &r, "remove the model");
        d = json_object_get(json_object_get(r.body, "error"), "details");
        if (strcmp(r.code, "MODEL_IN_USE") == 0) {
            json_t *ws = json_object_get(d, "workers");
            for (i = 0; i < json_array_size(ws); i++)
                kpr_fail_line(f, "worker %s serves it", json_string_value(json_array_get(ws, i)));
            kpr_fail_hint(f, "stop it first: rbee workers shutdown %s --id %s",
                          target_opt(t, to, sizeof to), json_string_value(json_array_get(ws, 0)));
        } else if (strcmp(r.code, "AMBIGUOUS_MODEL_REF") == 0) {
            json_t *refs = json_object_get(d, "references");
            for (i = 0; i < json_array_size(refs); i++)
                kpr_fail_line(f, "%s", json_string_value(json_array_get(refs, i)));
            kpr_fail_hint(f, "name the file: rbee models rm %s",
                          json_string_value(json_array_get(refs, 0)));
        } else if (strcmp(r.code, "MODEL_NOT_FOUND") == 0) {
            kpr_fail_hint(f, "rbee models list %s shows the downloaded models",
                          target_opt(t, to, sizeof to));
        }
        rc = rc ? rc : RB_EHTTP;
        goto out;
    }
    if (json)
        kpr_out_doc(&c->out, json_pack("{s:s, s:O}", "node", t->name, "removed", r.body));
    else
        kpr_out_line(&c->out, "Removed %s from %s (%.1f MB freed: %s)",
                     kpr_jstr(r.body, "reference"), t->name,
                     (double)json_integer_value(json_object_get(r.body, "size_bytes")) / 1e6,
                     kpr_jstr(r.body, "local_path"));
out:
    kpr_reply_release(&r);
    return rc;
}

static const rb_subcmd subcommands[] = {
    {"list", "the models a node's hive has downloaded"},
    {"download", "download a model onto a node, with its progress"},
    {"rm", "remove a downloaded model (its file and catalog entry) from a node"},
};

int kpr_cmd_models(kpr_ctx *c, int argc, char **argv)
{
    static const rb_group group = {"rbee models", subcommands, RB_ARRAY_LEN(subcommands), NULL, 0};
    const char *node = NULL, *hive = NULL, *ref = NULL, *file = NULL;
    int json = 0;
    const rb_opt opts[] = {
        {"--node", RB_OPT_STR, &node, .what = "NAME",
         .help = "a node of rbee setup list-nodes (default localhost)"},
        {"--hive", RB_OPT_STR, &hive, .what = "URL",
         .help = "the hive at this URL, bypassing the node registry"},
        {"--file", RB_OPT_STR, &file, .what = "FILE.gguf",
         .help = "the file of an hf:ORG/REPO model (default: its Q4_K_M file)"},
    };
    const rb_opt list_opts[] = {
        opts[0],
        opts[1],
        {"--json", RB_OPT_FLAG, &json, .help = "the list as one JSON document on stdout"},
    };
    const rb_opt rm_opts[] = {
        opts[0],
        opts[1],
        {"--file", RB_OPT_STR, &file, .what = "FILE.gguf",
         .help = "the file of an hf:ORG/REPO model (default: the one downloaded)"},
        {"--json", RB_OPT_FLAG, &json, .help = "what was removed as one JSON document on stdout"},
    };
    int status = KPR_EXIT_FAIL, shown = 0;
    int k = rb_group_pick(&group, argc, argv, &status);
    int is_download = k == 1, is_rm = k == 2, takes_ref = is_download || is_rm;
    char full[512], prog[32];
    rb_cmd cmd = {prog,
                  takes_ref ? "REF" : NULL,
                  NULL,
                  is_download ? opts
                  : is_rm     ? rm_opts
                              : list_opts,
                  (size_t)(is_rm ? 4 : 3),
                  takes_ref ? "REF: " KPR_MODEL_HELP "\n" : NULL,
                  0};
    kpr_local_hive eph = {0};
    kpr_target t;
    kpr_fail f;
    char err[256], path[KPR_PATH_MAX];
    size_t npos = 0;
    rb_err rc;

    if (k < 0)
        return status;
    snprintf(prog, sizeof prog, "rbee models %s", subcommands[k].name);
    cmd.summary = subcommands[k].summary;
    kpr_fail_init(&f);
    if ((rc = rb_cmd_parse(&cmd, argc - 1, argv + 1, &ref, takes_ref, &npos, &shown, err,
                           sizeof err)))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    else if (shown)
        rc = RB_OK;
    else if (takes_ref && npos == 0 && (rc = RB_EINVAL))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s: name the model (REF)", prog);
    else if (takes_ref &&
             (rc = kpr_ref_with_file(prog + 5, ref, file, full, sizeof full, err, sizeof err)))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    else if (!(rc = kpr_target_resolve(c, node, hive, &t, &f)) &&
             !(rc = kpr_hive_connect(c, &t, &eph, 0, 1, NULL, &f)))
        rc = is_download ? kpr_provision(c, &t, full, 0, path, sizeof path, &f)
             : is_rm     ? do_rm(c, &t, full, json, &f)
                         : do_list(c, &t, json, &f);
    kpr_local_hive_stop(&eph, KPR_HIVE_STOP_MS);
    return kpr_cmd_status(c, rc, &f);
}
