/*
 * pool.c - forward-pass thread pool with chunked work sharing.
 *
 * DESIGN
 * One 64-bit atomic holds (run generation << 32 | next chunk). A run publishes its function,
 * context and chunk count, then stores a new generation with chunk 0. Every thread (the caller
 * first) claims chunks with a compare-and-swap that also checks the generation, so a helper
 * waking late can neither take a chunk of a finished run nor run a new run's chunk with an old
 * function. The function, context and chunk count live in one of two slots chosen by the
 * generation's parity: a helper that read a generation can only find that slot rewritten for
 * two generations later, by which time its claims fail on the generation check.
 * The caller waits only for chunks that were claimed and are still running.
 * Helpers spin for a short while on the generation, then sleep on a condition variable.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool.h"
#include "rb_util.h"

#define SPIN_ROUNDS 20000        /* ~0.1-0.5 ms of pause instructions before sleeping */
#define MIN_WORK_PER_CHUNK 32768 /* operations below which a chunk is not worth a thread */

typedef struct helper {
    struct eng_pool *pool;
    pthread_t tid;
} helper;

struct eng_pool {
    int n;
    helper *helpers;        /* n - 1 */
    _Atomic uint64_t state; /* gen << 32 | next chunk */
    atomic_int done;        /* chunks finished in the current run */
    atomic_int stop;
    struct {
        /* Atomic (relaxed) because a late helper may read a slot while it is rewritten for a
         * later run; its claims then fail on the generation check. */
        _Atomic(eng_pool_fn) fn;
        _Atomic(void *) ctx;
        atomic_int n_chunks;
    } run[2];           /* by generation parity; written before it is published */
    pthread_mutex_t mu; /* only for sleeping helpers */
    pthread_cond_t wake;
    int sleepers; /* guarded by mu */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of generation gen until none is left. */
static void work(eng_pool *p, uint32_t gen, eng_pool_fn fn, void *ctx, int n)
{
    for (;;) {
        uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
        if ((uint32_t)(s >> 32) != gen || (int)(uint32_t)s >= n)
            return;
        if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        fn(ctx, (int)(uint32_t)s, n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *helper_main(void *arg)
{
    helper *h = arg;
    eng_pool *p = h->pool;
    uint32_t seen = 0; /* runs start at generation 1: none is missed */

    rb_thread_set_name("eng-pool");
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32)) ==
                   seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while ((uint32_t)(atomic_load(&p->state) >> 32) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            break;
        seen = g;
        work(p, g, atomic_load_explicit(&p->run[g & 1].fn, memory_order_relaxed),
             atomic_load_explicit(&p->run[g & 1].ctx, memory_order_relaxed),
             atomic_load_explicit(&p->run[g & 1].n_chunks, memory_order_relaxed));
    }
    return NULL;
}

eng_pool *eng_pool_new(int n_threads)
{
    eng_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->n = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->helpers = calloc((size_t)p->n, sizeof(*p->helpers));
    if (!p->helpers) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < p->n; i++) {
        helper *h = &p->helpers[i - 1];
        h->pool = p;
        if (pthread_create(&h->tid, NULL, helper_main, h) != 0) {
            p->n = i; /* run with the helpers we have */
            break;
        }
    }
    return p;
}

void eng_pool_free(eng_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->helpers[i - 1].tid, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->helpers);
    free(p);
}

int eng_pool_size(const eng_pool *p)
{
    return p->n;
}

int eng_pool_max_chunks(const eng_pool *p)
{
    return 4 * p->n;
}

int eng_pool_chunks(const eng_pool *p, long work_units, long unit_cost)
{
    long total = work_units * unit_cost, chunks;
    if (p->n == 1 || total < 2 * MIN_WORK_PER_CHUNK)
        return 1;
    chunks = total / MIN_WORK_PER_CHUNK;
    if (chunks > eng_pool_max_chunks(p))
        chunks = eng_pool_max_chunks(p);
    if (chunks > work_units)
        chunks = work_units;
    return chunks < 1 ? 1 : (int)chunks;
}

void eng_pool_for(eng_pool *p, int n_chunks, eng_pool_fn fn, void *ctx)
{
    uint32_t gen;

    if (n_chunks <= 1 || p->n == 1) {
        for (int c = 0; c < n_chunks; c++)
            fn(ctx, c, n_chunks);
        return;
    }
    gen = (uint32_t)(atomic_load_explicit(&p->state, memory_order_relaxed) >> 32) + 1;
    atomic_store_explicit(&p->run[gen & 1].fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->run[gen & 1].ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&p->run[gen & 1].n_chunks, n_chunks, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->state, (uint64_t)gen << 32, memory_order_release);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers)
        pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    work(p, gen, fn, ctx, n_chunks);
    /* Only chunks claimed by helpers and still running remain: spin, then yield so a helper
     * that shares our core can finish. */
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks;) {
        if (++spins < SPIN_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}

void eng_split(long n, int ith, int nth, long align, long *begin, long *end)
{
    long units = (n + align - 1) / align;
    long per = units / nth, extra = units % nth;
    long b = ith * per + (ith < extra ? ith : extra);
    long e = b + per + (ith < extra ? 1 : 0);
    b *= align;
    e *= align;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}
