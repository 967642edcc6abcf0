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

static rb_err do_list(kpr_ctx *c, const kpr_target *t, kpr_fail *f)
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

int kpr_cmd_models(kpr_ctx *c, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "", *node = NULL, *hive = NULL, *ref = NULL;
    const char *file = NULL;
    const rb_opt opts[] = {
        {"--node", RB_OPT_STR, &node, 0, 0, NULL},
        {"--hive", RB_OPT_STR, &hive, 0, 0, NULL},
        {"--file", RB_OPT_STR, &file, 0, 0, NULL},
    };
    char full[512];
    int is_download = strcmp(sub, "download") == 0;
    kpr_local_hive eph = {0};
    kpr_target t;
    kpr_fail f;
    char err[256], cmd[32], path[KPR_PATH_MAX];
    size_t npos = 0;
    rb_err rc = RB_EINVAL;

    kpr_fail_init(&f);
    snprintf(cmd, sizeof cmd, "models %s", sub);
    if (strcmp(sub, "list") && !is_download)
        kpr_fail_set(&f, "INVALID_ARGUMENT", "rbee models: expected list or download");
    else if ((rc = kpr_args_parse(cmd, argc - 1, argv + 1, opts, RB_ARRAY_LEN(opts), &ref,
                                  is_download, &npos, err, sizeof err)))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    else if (is_download && npos == 0 && (rc = RB_EINVAL))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "rbee models download: name the model (REF)");
    else if (file && !is_download && (rc = RB_EINVAL))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "rbee models list: unknown option --file");
    else if (is_download &&
             (rc = kpr_ref_with_file(cmd, ref, file, full, sizeof full, err, sizeof err)))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    else if (!(rc = kpr_target_resolve(c, node, hive, &t, &f)) &&
             !(rc = kpr_hive_connect(c, &t, &eph, 0, 1, NULL, &f)))
        rc =
            is_download ? kpr_provision(c, &t, full, 0, path, sizeof path, &f) : do_list(c, &t, &f);
    kpr_local_hive_stop(&eph, KPR_HIVE_STOP_MS);
    return kpr_cmd_status(c, rc, &f);
}
