/*
 * llm-worker-rbee - serves one GGUF model with real-time token streaming (see wrk.h).
 */
#include <stdio.h>
#include <string.h>

#include "wrk.h"

int main(int argc, char **argv)
{
    wrk_config c = wrk_config_default();
    char err[512];

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(wrk_usage(), stdout);
            return 0;
        }
    if (wrk_config_parse(&c, argc, argv, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    return wrk_run(&c);
}
