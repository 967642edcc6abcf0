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
#include "rb_args.h"
#include "rb_util.h"

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

static const rb_subcmd commands[] = {
    {"engine", "prefill and decode tokens/s of the engine alone"},
    {"stream", "handler latency, time to first token and throughput of a running worker"},
    {"memory", "the read bandwidth of a model's weights"},
};

int main(int argc, char **argv)
{
    static const rb_group group = {"rbee-bench", commands, RB_ARRAY_LEN(commands),
                                   "Results are medians over repetitions.\n", 1};
    static int (*const run[])(int, char **) = {bench_engine_main, bench_stream_main,
                                               bench_memory_main};
    int status = 1;
    int k = rb_group_pick(&group, argc - 1, argv + 1, &status);

    return k < 0 ? status : run[k](argc - 1, argv + 1);
}
