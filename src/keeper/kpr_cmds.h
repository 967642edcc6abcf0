/*
 * kpr_cmds.h - the keeper's commands besides infer. Each takes the words after its own name
 * (argv[0] is the sub-command: "list", "add-node", ...) and returns the exit status.
 */
#ifndef KPR_CMDS_H
#define KPR_CMDS_H

#include "kpr_ctx.h"

/* rbee setup add-node|list-nodes|remove-node */
int kpr_cmd_setup(kpr_ctx *c, int argc, char **argv);
/* rbee hive start|stop|status [--node N] */
int kpr_cmd_hive(kpr_ctx *c, int argc, char **argv);
/* rbee workers list|health|shutdown [--node N] [--id ID] */
int kpr_cmd_workers(kpr_ctx *c, int argc, char **argv);
/* rbee models list|download REF [--node N] */
int kpr_cmd_models(kpr_ctx *c, int argc, char **argv);

/* Prints f (when set) and maps rc to an exit status: 0, 130 after Ctrl+C, else 1. */
int kpr_cmd_status(kpr_ctx *c, rb_err rc, kpr_fail *f);

#endif
