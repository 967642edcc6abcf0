/*
 * bench.h - rbee-bench subcommands and the statistics they share.
 */
#ifndef RB_BENCH_H
#define RB_BENCH_H

#include <stddef.h>

/* `rbee-bench engine ...`: prompt-processing and generation tokens/s of the engine. */
int bench_engine_main(int argc, char **argv);
/* `rbee-bench stream ...`: latency and throughput of a running worker's SSE stream. */
int bench_stream_main(int argc, char **argv);

/* `rbee-bench memory ...`: GB/s of reading a model file whole with 1..N threads. */
int bench_memory_main(int argc, char **argv);

/* Sorts v in place and returns the q-quantile (0..1) by nearest rank; 0 when n == 0. */
double bench_quantile(double *v, size_t n, double q);

#endif
