/*
 * pool.h - the small thread pool that splits one forward-pass operation across cores
 * (internal to the engine).
 *
 *     eng_pool *p = eng_pool_new(2);
 *     eng_pool_run(p, work, ctx);   // work(ctx, 0, 2) on the caller, work(ctx, 1, 2) on a helper
 *     eng_pool_free(p);
 *
 * eng_pool_run returns when every part is done. Helpers spin briefly between runs (a forward
 * pass issues hundreds of runs per token) and then sleep on a condition variable, so an idle
 * pool costs nothing.
 */
#ifndef ENG_POOL_H
#define ENG_POOL_H

typedef struct eng_pool eng_pool;

/* work(ctx, ith, nth): part ith of nth. */
typedef void (*eng_pool_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 including the caller. NULL on failure. */
eng_pool *eng_pool_new(int n_threads);
void eng_pool_free(eng_pool *p); /* NULL-safe; joins the helpers */
int eng_pool_size(const eng_pool *p);
/* Runs fn on every thread of the pool (the caller is thread 0). Not reentrant. */
void eng_pool_run(eng_pool *p, eng_pool_fn fn, void *ctx);

/* Splits [0, n) into nth nearly equal parts aligned to align; writes part ith's bounds. */
void eng_split(long n, int ith, int nth, long align, long *begin, long *end);

#endif
