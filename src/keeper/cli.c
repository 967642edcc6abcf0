/*
 * cli.c - the `rbee` command line: dispatch to the commands, usage and version.
 *
 * DESIGN
 * Exit statuses are the contract's three (§1): 0, 1 (any failure, usage errors included) and
 * 130 after Ctrl+C. Usage errors are one line on stderr naming the option; `rbee --help`
 * and `rbee <command> --help` print their usage on stdout (rb_args builds it from the tables).
 */
#include <stdio.h>
#include <string.h>

#include "kpr.h"
#include "kpr_cmds.h"
#include "kpr_infer.h"
#include "rb_args.h"
#include "rb_util.h"

static const rb_subcmd commands[] = {
    {"infer", "run a prompt on a node's model and stream the text"},
    {"chat", "talk with a model, one line at a time"},
    {"workers", "list, check or stop a node's workers"},
    {"models", "list or download a node's models"},
    {"hive", "start, stop or ask a node's hive"},
    {"setup", "add, list or remove the nodes rbee knows"},
};

static const rb_group group = {
    "rbee", commands, RB_ARRAY_LEN(commands),
    "defaults: node localhost (127.0.0.1:$RBEE_HIVE_PORT, 8080), model kjv (the bundled one),\n"
    "          128 tokens; state in $RBEE_HOME (~/.rbee); token from RBEE_API_TOKEN or\n"
    "          $RBEE_HOME/config.json. Exit status: 0, 1 on failure, 130 after Ctrl+C.\n",
    1};

int kpr_cmd_status(kpr_ctx *c, rb_err rc, kpr_fail *f)
{
    int status = KPR_EXIT_OK;

    if (rc == RB_ECANCELED || (rc && kpr_ctx_interrupted(c))) {
        kpr_out_canceled(&c->out, NULL);
        status = KPR_EXIT_CANCELED;
    } else if (rc) {
        if (!kpr_fail_isset(f))
            kpr_fail_set(f, "FAILED", "failed: %s", rb_strerror(rc));
        kpr_out_fail(&c->out, f);
        status = KPR_EXIT_FAIL;
    }
    kpr_fail_release(f);
    return status;
}

int kpr_main(int argc, char **argv, atomic_int *interrupted)
{
    static int (*const run[])(kpr_ctx *, int, char **) = {
        kpr_cmd_infer, kpr_cmd_chat, kpr_cmd_workers, kpr_cmd_models, kpr_cmd_hive, kpr_cmd_setup,
    };
    int status = KPR_EXIT_FAIL;
    int k = rb_group_pick(&group, argc - 1, argv + 1, &status);
    kpr_ctx c;

    _Static_assert(RB_ARRAY_LEN(run) == RB_ARRAY_LEN(commands), "one runner per command");
    if (k < 0)
        return status;
    kpr_ctx_init(&c, interrupted, 0);
    status = run[k](&c, argc - 2, argv + 2);
    kpr_ctx_release(&c);
    return status;
}
