/*
 * rbee - the keeper: the command line of rbee (see kpr.h and docs/keeper.md).
 *
 *     rbee infer --prompt "In the beginning"
 *
 * Exit status: 0, 1 on failure, 130 after Ctrl+C.
 */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "kpr.h"
#include "rb_client.h"

/* Set by the handler, read by the keeper: the one piece of state a signal handler may touch. */
static atomic_int interrupted;

/* Async-signal-safe: an atomic store, or _exit at the second signal (the user insists). */
static void on_signal(int sig)
{
    if (atomic_exchange(&interrupted, sig) != 0)
        _exit(KPR_EXIT_CANCELED);
}

int main(int argc, char **argv)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rb_client_global_init();
    return kpr_main(argc, argv, &interrupted);
}
