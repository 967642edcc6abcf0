/*
 * pool.h - the small thread pool that splits one forward-pass operation across cores
 * (internal to the engine).
 *
 *     eng_pool *p = eng_pool_new(2);
 *     eng_pool_for(p, 8, work, ctx);   // work(ctx, c, 8) for every chunk c in 0..7
 *     eng_pool_free(p);
 *
 * The caller takes part: chunks are handed out one at a time from an atomic counter, so when
 * a helper is slow to wake (its core is busy with other work) the caller simply takes its
 * chunks too and never waits for a thread that has not started. eng_pool_for returns when
 * every chunk is done. Helpers spin briefly between runs (a forward pass issues hundreds of
 * runs per token) and then sleep on a condition variable, so an idle pool costs nothing.
 */
#ifndef ENG_POOL_H
#define ENG_POOL_H

typedef struct eng_pool eng_pool;

/* work(ctx, chunk, n_chunks): one chunk of the job. */
typedef void (*eng_pool_fn)(void *ctx, int chunk, int n_chunks);

/* n_threads >= 1 including the caller. NULL on failure. */
eng_pool *eng_pool_new(int n_threads);
void eng_pool_free(eng_pool *p); /* NULL-safe; joins the helpers */
int eng_pool_size(const eng_pool *p);
/* Runs fn for chunks 0..n_chunks-1 on the pool's threads (the caller included). A single
 * chunk runs on the caller without waking anyone. Not reentrant. */
void eng_pool_for(eng_pool *p, int n_chunks, eng_pool_fn fn, void *ctx);
/* The most chunks eng_pool_chunks() returns: size per-chunk scratch space by this. */
int eng_pool_max_chunks(const eng_pool *p);
/* Chunks worth making for `work` units of about unit_cost operations each: 1 when the job is
 * too small to pay for waking helpers, else a few per thread. */
int eng_pool_chunks(const eng_pool *p, long work, long unit_cost);

/* Splits [0, n) into nth nearly equal parts aligned to align; writes part ith's bounds. */
void eng_split(long n, int ith, int nth, long align, long *begin, long *end);

#endif
