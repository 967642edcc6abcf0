/*
 * rbee-bench - benchmarks: the engine on its own, a running worker over HTTP, and the
 * memory bandwidth generation is bound by.
 *
 *     rbee-bench engine -m MODEL.gguf -p 128 -n 64 -t 2 -r 5 [--kv-type T] [--no-mmap] [--json]
 *     rbee-bench stream --url http://127.0.0.1:8081 --clients 1,2,4 [--requests 8] [--json]
 *                      [--route inference|chat|completions]
 *     rbee-bench memory -m MODEL.gguf -t 2 -r 5 [--no-mmap]
 *
 * Results are medians over repetitions; the machines are noisy, so single runs mean little.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_quantile(double *v, size_t n, double q)
{
    size_t i;
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(double), cmp_double);
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "engine") == 0)
        return bench_engine_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "stream") == 0)
        return bench_stream_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "memory") == 0)
        return bench_memory_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: rbee-bench engine -m MODEL -p N -n N -t THREADS -r REPS [--kv-type "
                    "f16|q8_0|f32] [--no-mmap] [--json]\n"
                    "       rbee-bench stream --url WORKER_URL [--clients 1,2,4] [--requests N]\n"
                    "                         [--max-tokens N] [--prompt TEXT] [--json]\n"
                    "                         [--route inference|chat|completions]\n"
                    "       rbee-bench memory -m FILE [-t THREADS] [-r REPS] [--no-mmap]\n");
    return argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) ? 0 : 1;
}
