/*
 * job.c - jobs, their registry and the bounded FIFO in front of the generation threads.
 *
 * One mutex guards the FIFO, the registry and the counts; a job's own mutex guards its stream
 * state. The two are never held together: the queue copies what it needs and calls into a job
 * only after unlocking.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"
#include "rb_time.h"

#define REGISTRY_MAX 4096

void wrk_request_release(wrk_request *r)
{
    free(r->prompt);
    r->prompt = NULL;
    free(r->ids);
    r->ids = NULL;
    for (int i = 0; i < r->nstop; i++)
        free(r->stop[i]);
    r->nstop = 0;
}

wrk_job *wrk_job_new(const char *id, wrk_request *req, size_t chan_cap)
{
    wrk_job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    j->chan = rb_chan_new(chan_cap);
    j->chan_cap = chan_cap;
    if (!j->chan) {
        free(j);
        return NULL;
    }
    snprintf(j->id, sizeof j->id, "%s", id);
    j->req = *req;
    memset(req, 0, sizeof(*req));
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, 0);
    pthread_mutex_init(&j->mu, NULL);
    rb_cond_init_monotonic(&j->opened_cv);
    return j;
}

void wrk_job_ref(wrk_job *j)
{
    atomic_fetch_add(&j->refs, 1);
}

void wrk_job_unref(wrk_job *j)
{
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    rb_chan_unref(j->chan);
    wrk_oai_acc_free(j->oai);
    wrk_request_release(&j->req);
    pthread_cond_destroy(&j->opened_cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

int wrk_job_open_stream(wrk_job *j)
{
    int first;
    pthread_mutex_lock(&j->mu);
    first = !j->stream_opened;
    j->stream_opened = 1;
    pthread_cond_broadcast(&j->opened_cv);
    pthread_mutex_unlock(&j->mu);
    return first;
}

int wrk_job_stream_is_open(wrk_job *j)
{
    int opened;
    pthread_mutex_lock(&j->mu);
    opened = j->stream_opened;
    pthread_mutex_unlock(&j->mu);
    return opened;
}

int wrk_job_wait_stream(wrk_job *j, int timeout_ms)
{
    struct timespec until;
    int opened;

    until = rb_deadline_ms(timeout_ms);
    pthread_mutex_lock(&j->mu);
    while (!j->stream_opened && !atomic_load(&j->cancel))
        if (pthread_cond_timedwait(&j->opened_cv, &j->mu, &until) != 0)
            break;
    opened = j->stream_opened;
    pthread_mutex_unlock(&j->mu);
    return opened;
}

void wrk_job_cancel(wrk_job *j)
{
    atomic_store(&j->cancel, 1);
    pthread_mutex_lock(&j->mu);
    pthread_cond_broadcast(&j->opened_cv);
    pthread_mutex_unlock(&j->mu);
}

int wrk_job_cancelled(wrk_job *j)
{
    return atomic_load(&j->cancel);
}

/* ---- the queue and registry --------------------------------------------------------------- */

struct wrk_jobs {
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    wrk_job *head, *tail; /* FIFO of queued jobs */
    int queued, running;
    int slots, queue_cap;
    int closed;
    unsigned kicks;                  /* wrk_jobs_kick: wakes a wrk_jobs_pop_wait with no job */
    wrk_job *registry[REGISTRY_MAX]; /* queued and running jobs */
    int nreg;
};

wrk_jobs *wrk_jobs_new(int slots, int queue_cap)
{
    wrk_jobs *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    q->slots = slots;
    q->queue_cap = queue_cap;
    return q;
}

void wrk_jobs_free(wrk_jobs *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->nreg; i++)
        wrk_job_unref(q->registry[i]);
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static int reg_index(wrk_jobs *q, const char *id)
{
    for (int i = 0; i < q->nreg; i++)
        if (strcmp(q->registry[i]->id, id) == 0)
            return i;
    return -1;
}

rb_err wrk_jobs_submit(wrk_jobs *q, wrk_job *j)
{
    rb_err rc = RB_OK;

    pthread_mutex_lock(&q->mu);
    if (q->closed)
        rc = RB_ECLOSED;
    else if (reg_index(q, j->id) >= 0)
        rc = RB_EEXIST;
    else if (q->queued + q->running >= q->slots + q->queue_cap || q->nreg == REGISTRY_MAX)
        rc = RB_EBUSY;
    if (!rc) {
        wrk_job_ref(j); /* the registry's */
        q->registry[q->nreg++] = j;
        j->next = NULL;
        if (q->tail)
            q->tail->next = j;
        else
            q->head = j;
        q->tail = j;
        q->queued++;
        q->kicks++;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

wrk_job *wrk_jobs_pop(wrk_jobs *q)
{
    return wrk_jobs_pop_wait(q, -1);
}

wrk_job *wrk_jobs_pop_wait(wrk_jobs *q, int timeout_ms)
{
    wrk_job *j = NULL;
    struct timespec until = rb_deadline_ms(timeout_ms > 0 ? timeout_ms : 0);
    unsigned kicks;

    pthread_mutex_lock(&q->mu);
    kicks = q->kicks;
    while (!q->head && !q->closed && timeout_ms != 0 && q->kicks == kicks) {
        if (timeout_ms < 0)
            pthread_cond_wait(&q->nonempty, &q->mu);
        else if (pthread_cond_timedwait(&q->nonempty, &q->mu, &until) != 0)
            break;
    }
    if (q->head && !q->closed) {
        j = q->head;
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        j->next = NULL;
        q->queued--;
        q->running++;
        j->state = WRK_JOB_RUNNING;
        wrk_job_ref(j);
    }
    pthread_mutex_unlock(&q->mu);
    return j;
}

void wrk_jobs_idle(wrk_jobs *q, int timeout_ms)
{
    struct timespec until = rb_deadline_ms(timeout_ms);
    unsigned kicks;

    pthread_mutex_lock(&q->mu);
    kicks = q->kicks;
    while (!q->closed && q->kicks == kicks)
        if (pthread_cond_timedwait(&q->nonempty, &q->mu, &until) != 0)
            break;
    pthread_mutex_unlock(&q->mu);
}

void wrk_jobs_kick(wrk_jobs *q)
{
    pthread_mutex_lock(&q->mu);
    q->kicks++;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
}

int wrk_jobs_closed(wrk_jobs *q)
{
    int c;
    pthread_mutex_lock(&q->mu);
    c = q->closed;
    pthread_mutex_unlock(&q->mu);
    return c;
}

void wrk_jobs_done(wrk_jobs *q, wrk_job *j)
{
    int i, found = 0;

    pthread_mutex_lock(&q->mu);
    i = reg_index(q, j->id);
    if (i >= 0 && q->registry[i] == j) {
        q->registry[i] = q->registry[--q->nreg];
        found = 1;
    }
    if (j->state == WRK_JOB_RUNNING)
        q->running--;
    j->state = WRK_JOB_DONE;
    pthread_mutex_unlock(&q->mu);
    if (found)
        wrk_job_unref(j);
}

wrk_job *wrk_jobs_find(wrk_jobs *q, const char *id)
{
    wrk_job *j = NULL;
    int i;

    pthread_mutex_lock(&q->mu);
    i = reg_index(q, id);
    if (i >= 0) {
        j = q->registry[i];
        wrk_job_ref(j);
    }
    pthread_mutex_unlock(&q->mu);
    return j;
}

/* Unlinks j from the FIFO; the caller holds q->mu. */
static void unlink_queued(wrk_jobs *q, wrk_job *j)
{
    wrk_job **pp = &q->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = j->next;
    if (q->tail == j)
        q->tail = prev;
    j->next = NULL;
    q->queued--;
}

wrk_job *wrk_jobs_cancel(wrk_jobs *q, const char *id, int *found)
{
    wrk_job *j = NULL, *running = NULL;
    int i;

    *found = 0;
    pthread_mutex_lock(&q->mu);
    i = reg_index(q, id);
    if (i >= 0) {
        *found = 1;
        j = q->registry[i];
        if (j->state == WRK_JOB_QUEUED) {
            unlink_queued(q, j);
            j->state = WRK_JOB_DONE;
            q->registry[i] = q->registry[--q->nreg]; /* the registry's reference moves to us */
        } else {
            running = j;
            wrk_job_ref(running);
            j = NULL;
        }
    }
    pthread_mutex_unlock(&q->mu);
    if (j)
        wrk_job_cancel(j);
    if (running) {
        wrk_job_cancel(running);
        wrk_job_unref(running);
        wrk_jobs_kick(q); /* the scheduler ends it at once, also while it waits for a stream */
    }
    return j;
}

wrk_job *wrk_jobs_shutdown(wrk_jobs *q)
{
    wrk_job *queued, *run[REGISTRY_MAX];
    int nrun = 0;

    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    queued = q->head;
    q->head = q->tail = NULL;
    q->queued = 0;
    /* Queued jobs leave the registry with their reference; running ones stay. */
    for (int i = 0; i < q->nreg;) {
        wrk_job *j = q->registry[i];
        if (j->state == WRK_JOB_QUEUED) {
            j->state = WRK_JOB_DONE;
            q->registry[i] = q->registry[--q->nreg];
            continue;
        }
        wrk_job_ref(j);
        run[nrun++] = j;
        i++;
    }
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < nrun; i++) {
        wrk_job_cancel(run[i]);
        wrk_job_unref(run[i]);
    }
    for (wrk_job *j = queued; j; j = j->next)
        wrk_job_cancel(j);
    return queued;
}

void wrk_jobs_stats_get(wrk_jobs *q, wrk_jobs_stats *out)
{
    pthread_mutex_lock(&q->mu);
    out->queued = q->queued;
    out->running = q->running;
    out->slots = q->slots;
    out->queue_cap = q->queue_cap;
    pthread_mutex_unlock(&q->mu);
}
