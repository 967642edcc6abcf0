/*
 * cmd_models.c - `rbee models list|download`: the model catalog of a node's hive.
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

static const rb_subcmd subcommands[] = {
    {"list", "the models a node's hive has downloaded"},
    {"download", "download a model onto a node, with its progress"},
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
    int status = KPR_EXIT_FAIL, shown = 0;
    int k = rb_group_pick(&group, argc, argv, &status);
    int is_download = k == 1;
    char full[512], prog[32];
    rb_cmd cmd = {prog, is_download ? "REF" : NULL,
                  NULL, is_download ? opts : list_opts,
                  3,    is_download ? "REF: " KPR_MODEL_HELP "\n" : NULL,
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
    if ((rc = rb_cmd_parse(&cmd, argc - 1, argv + 1, &ref, is_download, &npos, &shown, err,
                           sizeof err)))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    else if (shown)
        rc = RB_OK;
    else if (is_download && npos == 0 && (rc = RB_EINVAL))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "rbee models download: name the model (REF)");
    else if (is_download &&
             (rc = kpr_ref_with_file(prog + 5, ref, file, full, sizeof full, err, sizeof err)))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    else if (!(rc = kpr_target_resolve(c, node, hive, &t, &f)) &&
             !(rc = kpr_hive_connect(c, &t, &eph, 0, 1, NULL, &f)))
        rc = is_download ? kpr_provision(c, &t, full, 0, path, sizeof path, &f)
                         : do_list(c, &t, json, &f);
    kpr_local_hive_stop(&eph, KPR_HIVE_STOP_MS);
    return kpr_cmd_status(c, rc, &f);
}
