/*
 * kpr.h - rbee, the keeper: the command line a user types, and the orchestrator behind
 * `rbee infer` (docs/architecture.md §5.1 and §8; docs/keeper.md for the user's view).
 *
 *     static atomic_int interrupted;            // set by the SIGINT/SIGTERM handler
 *     rb_client_global_init();
 *     return kpr_main(argc, argv, &interrupted);
 *
 * kpr_main parses the command (infer, workers, models, hive, setup), runs it and returns the
 * process exit status: KPR_EXIT_OK, KPR_EXIT_FAIL or KPR_EXIT_CANCELED. Everything the user
 * should see goes to stdout (tokens, tables) and stderr (phases, progress, errors); nothing is
 * printed by the caller. *interrupted (a non-zero value: the signal, SIGINT or SIGTERM, that
 * arrived) is borrowed for the call and only read, except by `rbee chat`, which clears a
 * SIGINT once it has stopped the reply it was meant for (docs/keeper.md).
 */
#ifndef KPR_H
#define KPR_H

#include <stdatomic.h>

#define KPR_EXIT_OK 0
#define KPR_EXIT_FAIL 1
#define KPR_EXIT_CANCELED 130

/* The hive port of node "localhost" when $RBEE_HIVE_PORT is not set. */
#define KPR_DEFAULT_HIVE_PORT 8080

int kpr_main(int argc, char **argv, atomic_int *interrupted);

#endif
