/*
 * llm-worker-rbee - serves one GGUF model with real-time token streaming (see wrk.h).
 */
#include <stdio.h>

#include "wrk.h"

int main(int argc, char **argv)
{
    wrk_config c = wrk_config_default();
    char err[512];
    int shown = 0;

    if (wrk_config_parse(&c, argc, argv, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (shown)
        return 0;
    return wrk_run(&c);
}
