/*
 * cli.c - the `rbee` command line: dispatch to the commands, usage and version.
 *
 * DESIGN
 * Exit statuses are the contract's three (§1): 0, 1 (any failure, usage errors included) and
 * 130 after Ctrl+C. Usage errors are one line on stderr naming the option; `rbee --help`
 * prints the full usage on stdout.
 */
#include <stdio.h>
#include <string.h>

#include "kpr.h"
#include "kpr_cmds.h"
#include "kpr_infer.h"

static const char usage_text[] =
    "usage: rbee infer [--node NAME] [--model REF] --prompt TEXT [--max-tokens N]\n"
    "                  [--temperature T] [--top-p P] [--top-k K] [--seed S] [--backend B]\n"
    "                  [--device D] [--ready-timeout S] [--hive URL] [--json]\n"
    "       rbee chat [--node NAME] [--model REF] [--system TEXT] [--max-tokens N]\n"
    "                 [--temperature T] [--backend B] [--device D] [--ready-timeout S]\n"
    "                 [--hive URL]\n"
    "       rbee workers list|health|shutdown [--node NAME] [--hive URL] [--id ID] [--all]\n"
    "       rbee models list|download [REF] [--node NAME] [--hive URL]\n"
    "       rbee hive start|stop|status [--node NAME]\n"
    "       rbee setup add-node --name NAME --ssh-host HOST [--ssh-user USER] [--ssh-port P]\n"
    "                           [--hive-port P] [--hive-bin PATH]\n"
    "       rbee setup list-nodes\n"
    "       rbee setup remove-node --name NAME\n"
    "       rbee --version\n"
    "defaults: node localhost (127.0.0.1:$RBEE_HIVE_PORT, 8080), model kjv (the bundled one),\n"
    "          128 tokens; state in $RBEE_HOME (~/.rbee); token from RBEE_API_TOKEN or\n"
    "          $RBEE_HOME/config.json. Exit status: 0, 1 on failure, 130 after Ctrl+C.\n"
    "See docs/keeper.md.\n";

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
    const char *cmd = argc > 1 ? argv[1] : "";
    kpr_ctx c;
    int status = KPR_EXIT_FAIL;

    kpr_ctx_init(&c, interrupted, 0);
    if (strcmp(cmd, "infer") == 0)
        status = kpr_cmd_infer(&c, argc - 2, argv + 2);
    else if (strcmp(cmd, "chat") == 0)
        status = kpr_cmd_chat(&c, argc - 2, argv + 2);
    else if (strcmp(cmd, "workers") == 0)
        status = kpr_cmd_workers(&c, argc - 2, argv + 2);
    else if (strcmp(cmd, "models") == 0)
        status = kpr_cmd_models(&c, argc - 2, argv + 2);
    else if (strcmp(cmd, "hive") == 0)
        status = kpr_cmd_hive(&c, argc - 2, argv + 2);
    else if (strcmp(cmd, "setup") == 0)
        status = kpr_cmd_setup(&c, argc - 2, argv + 2);
    else if (strcmp(cmd, "--version") == 0) {
        printf("rbee %s\n", RB_VERSION);
        status = KPR_EXIT_OK;
    } else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        status = KPR_EXIT_OK;
    } else if (cmd[0])
        fprintf(stderr, "rbee: unknown command '%s' (rbee --help lists them)\n", cmd);
    else
        fputs(usage_text, stderr);
    kpr_ctx_release(&c);
    return status;
}
