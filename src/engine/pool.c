/*
 * pool.c - forward-pass thread pool: a generation counter announces work, helpers spin on it
 * for a short while and then block on a condition variable; a done counter tells the caller
 * when every part has finished.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pool.h"
#include "rb_util.h"

#define SPIN_ROUNDS 20000 /* ~0.1-0.5 ms of pause instructions before sleeping */

typedef struct helper {
    struct eng_pool *pool;
    int ith;
    pthread_t tid;
} helper;

struct eng_pool {
    int n;
    helper *helpers;          /* n - 1 */
    atomic_uint gen;          /* bumped for every run */
    atomic_int done;          /* parts finished in the current run */
    atomic_int stop;
    eng_pool_fn fn;           /* written before gen is bumped */
    void *ctx;
    pthread_mutex_t mu;       /* only for sleeping helpers */
    pthread_cond_t wake;
    int sleepers;             /* guarded by mu */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *helper_main(void *arg)
{
    helper *h = arg;
    eng_pool *p = h->pool;
    unsigned seen = 0; /* gen starts at 0: a run posted before we got here is not missed */

    rb_thread_set_name("eng-pool");
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            break;
        seen = g;
        p->fn(p->ctx, h->ith, p->n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
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
        h->ith = i;
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

void eng_pool_run(eng_pool *p, eng_pool_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers)
        pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    /* Spin briefly (the parts finish together on idle cores), then yield so that a helper
     * sharing our core with other work can run instead of us burning its time slice. */
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < p->n - 1;) {
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
