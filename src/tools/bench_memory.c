/*
 * bench_memory.c - `rbee-bench memory`: how fast this machine streams a model file's bytes,
 * the ceiling single-token generation works under (every weight is read once per token).
 *
 * The file is mapped (as the engine serves it by default) or read into anonymous memory
 * advised for transparent huge pages (as with --no-mmap), touched once, then read whole by 1
 * to N threads, each summing its own contiguous slice with the widest vector loads the CPU
 * has. Each thread count runs r times; the median GB/s (10^9 bytes/s) is printed.
 */
#include <fcntl.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "rb_args.h"
#include "rb_util.h"

#define HUGE_PAGE ((size_t)2 << 20)

typedef struct slice {
    const uint8_t *p;
    size_t n;
    pthread_barrier_t *start;
    uint64_t sum;         /* keeps the loads from being optimised away */
    int64_t t0_ns, t1_ns; /* this reader's own start and end */
} slice;

__attribute__((target("avx512f"))) static uint64_t sum512(const uint8_t *p, size_t n)
{
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a = _mm512_add_epi64(a, _mm512_loadu_si512(p + i));
        b = _mm512_add_epi64(b, _mm512_loadu_si512(p + i + 64));
        c = _mm512_add_epi64(c, _mm512_loadu_si512(p + i + 128));
        d = _mm512_add_epi64(d, _mm512_loadu_si512(p + i + 192));
    }
    return (uint64_t)_mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
}

__attribute__((target("avx2"))) static uint64_t sum256(const uint8_t *p, size_t n)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    uint64_t out[4];
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    _mm256_storeu_si256((__m256i *)out,
                        _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
    return out[0] + out[1] + out[2] + out[3];
}

static uint64_t sum_bytes(const uint8_t *p, size_t n)
{
    static int isa = -1;
    uint64_t s = 0;
    if (isa < 0)
        isa = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
    if (isa == 2)
        return sum512(p, n);
    if (isa == 1)
        return sum256(p, n);
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        s += x;
    }
    return s;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *reader(void *arg)
{
    slice *s = arg;
    pthread_barrier_wait(s->start);
    s->t0_ns = now_ns();
    s->sum += sum_bytes(s->p, s->n);
    s->t1_ns = now_ns();
    return NULL;
}

/* Seconds for `threads` threads to read buf[0, n) once, split in equal slices: from the first
 * reader's start to the last reader's end, as the readers themselves saw it. (Timing from the
 * main thread was wrong: a reader could finish before the main thread, descheduled after the
 * barrier, read the clock, which printed thousands of GB/s.) */
static double read_once(const uint8_t *buf, size_t n, int threads, uint64_t *sink)
{
    pthread_t tid[64];
    slice sl[64];
    pthread_barrier_t start;
    int64_t first = INT64_MAX, last = 0;

    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        sl[i] = (slice){buf + n / (size_t)threads * (size_t)i, n / (size_t)threads, &start, 0};
        pthread_create(&tid[i], NULL, reader, &sl[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        *sink += sl[i].sum;
        first = sl[i].t0_ns < first ? sl[i].t0_ns : first;
        last = sl[i].t1_ns > last ? sl[i].t1_ns : last;
    }
    pthread_barrier_destroy(&start);
    return (double)(last - first) / 1e9 + 1e-9;
}

int bench_memory_main(int argc, char **argv)
{
    const char *path = NULL;
    int threads = 2, reps = 5, copy = 0, fd, code = 1;
    struct stat st;
    uint8_t *buf = MAP_FAILED;
    size_t n = 0, len = 0;
    uint64_t sink = 0;

    char err[256];
    const rb_opt opts[] = {
        {"-m", RB_OPT_STR, &path, .what = "FILE", .help = "the file to read (required)"},
        {"-t", RB_OPT_INT, &threads, 1, 64, .help = "threads (default 2)"},
        {"-r", RB_OPT_INT, &reps, 1, 1000, .help = "repetitions, the median is shown (5)"},
        {"--no-mmap", RB_OPT_FLAG, &copy, .help = "read a copy in memory, not the mapping"},
    };
    const rb_cmd cmd = {"rbee-bench memory",
                        NULL,
                        "The bandwidth of reading a model's weights, which bounds decoding.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        NULL,
                        0};
    int shown = 0;

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (shown)
        return 0;
    if (!path) {
        fprintf(stderr, "rbee-bench memory: -m FILE is required\n");
        return 1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 4096) {
        fprintf(stderr, "rbee-bench memory: cannot read '%s' (or it is under 4 KiB)\n", path);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    n = (size_t)st.st_size & ~(size_t)4095;
    if (!copy) {
        len = n;
        buf = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    } else {
        len = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf != MAP_FAILED) {
            madvise(buf, len, MADV_HUGEPAGE);
            for (size_t done = 0; done < n;) {
                ssize_t k = pread(fd, buf + done, n - done, (off_t)done);
                if (k <= 0) {
                    fprintf(stderr, "rbee-bench memory: short read of '%s'\n", path);
                    goto out;
                }
                done += (size_t)k;
            }
        }
    }
    if (buf == MAP_FAILED) {
        fprintf(stderr, "rbee-bench memory: cannot map %zu bytes\n", len);
        goto out;
    }
    read_once(buf, n, 1, &sink); /* warm-up: page everything in */
    printf("file %s: %.1f MiB, %s\n", path, (double)n / 1048576.0,
           copy ? "copied into huge-page memory" : "mapped");
    for (int t = 1; t <= threads; t++) {
        double *gbs = calloc((size_t)reps, sizeof(double));
        if (!gbs)
            goto out;
        double med;
        for (int r = 0; r < reps; r++)
            gbs[r] = (double)n / read_once(buf, n, t, &sink) / 1e9;
        med = bench_quantile(gbs, (size_t)reps, 0.5); /* sorts gbs */
        printf("threads %d: %6.1f GB/s  (median of %d; min %.1f, max %.1f)\n", t, med, reps, gbs[0],
               gbs[reps - 1]);
        free(gbs);
    }
    code = sink == 1 ? 2 : 0; /* never 2: only makes the sum observable */
out:
    if (buf != MAP_FAILED)
        munmap(buf, len);
    close(fd);
    return code;
}
