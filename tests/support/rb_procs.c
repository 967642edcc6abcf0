/*
 * rb_procs.c - daemons as test children, and recorded SSE streams (see rb_procs.h).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/wait.h>

#include "rb_buf.h"
#include "rb_json.h"
#include "rb_procs.h"
#include "rb_test.h"

static void set_base(rbt_proc *p)
{
    snprintf(p->base, sizeof p->base, "http://127.0.0.1:%d", p->port);
}

void rbt_start_mock_hive(rbt_proc *p, const char *dir)
{
    char *argv[] = {(char *)rbt_bin("mock-hive"), "--port", "0", NULL};
    memset(p, 0, sizeof(*p));
    snprintf(p->log, sizeof p->log, "%s/mock-hive.log", dir);
    p->pid = rbt_spawn(argv, NULL, p->log);
    p->port = rbt_wait_listening(p->log, 10000);
    ck_assert_msg(p->port > 0, "mock-hive did not start (log %s)", p->log);
    set_base(p);
}

void rbt_start_worker(rbt_proc *p, const char *dir, const char *model, const char *hive_url,
                      const char *const *extra, char *const *env)
{
    char *argv[48];
    int n = 0;
    static int seq;

    memset(p, 0, sizeof(*p));
    snprintf(p->log, sizeof p->log, "%s/worker-%d.log", dir, ++seq);
    argv[n++] = (char *)rbt_bin("llm-worker-rbee");
    argv[n++] = "--worker-id";
    argv[n++] = "worker-test";
    argv[n++] = "--model";
    argv[n++] = (char *)model;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--local-mode";
    if (hive_url) {
        argv[n++] = "--hive-url";
        argv[n++] = (char *)hive_url;
    }
    for (int i = 0; extra && extra[i] && n < 46; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    p->pid = rbt_spawn(argv, env, p->log);
    p->port = rbt_wait_listening(p->log, 10000);
    ck_assert_msg(p->port > 0, "worker did not start (log %s)", p->log);
    set_base(p);
}

int rbt_wait_ready(const rbt_proc *p, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    do {
        char *r = rbt_get(p->base, "/v1/ready");
        int ready = r && strstr(r, "\"ready\": true") != NULL;
        ready |= r && strstr(r, "\"ready\":true") != NULL;
        free(r);
        if (ready)
            return 1;
        rbt_poll_interval();
    } while (rbt_ms() < end);
    return 0;
}

int rbt_stop(rbt_proc *p, int timeout_ms)
{
    int st;
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    if (!rbt_wait_exit(p->pid, timeout_ms, &st)) {
        rbt_kill(p->pid);
        p->pid = 0;
        return -1;
    }
    p->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int64_t rbt_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int record(void *user, const char *event, const char *data, size_t len)
{
    rbt_stream *st = user;
    (void)event;
    if (st->n == st->cap) {
        int cap = st->cap ? st->cap * 2 : 64;
        rbt_event *e = realloc(st->ev, (size_t)cap * sizeof(*e));
        if (!e)
            return 1;
        st->ev = e;
        st->cap = cap;
    }
    st->ev[st->n].data = strndup(data, len);
    st->ev[st->n].at_us = rbt_us();
    st->ev[st->n].at_ms = st->ev[st->n].at_us / 1000;
    st->n++;
    atomic_store(&st->received, st->n);
    return st->stop_after > 0 && st->n >= st->stop_after;
}

rb_err rbt_stream_run(rbt_stream *st, const char *base, const char *path, const char *body,
                      long idle_timeout_ms, long deadline_ms)
{
    rb_sse_opts o = rb_sse_opts_default();
    char url[512];
    /* Field by field: another thread may be watching `received` already. */
    st->ev = NULL;
    st->n = st->cap = 0;
    atomic_store(&st->received, 0);
    st->err[0] = '\0';
    rb_sse_result_init(&st->res);
    o.idle_timeout_ms = idle_timeout_ms;
    o.deadline_ms = deadline_ms;
    snprintf(url, sizeof url, "%s%s", base, path);
    st->start_ms = rbt_ms();
    st->rc = rb_client_sse(body ? "POST" : "GET", url, body, &o, record, st, &st->res, st->err,
                           sizeof st->err);
    return st->rc;
}

void rbt_stream_release(rbt_stream *st)
{
    for (int i = 0; i < st->n; i++)
        free(st->ev[i].data);
    free(st->ev);
    rb_sse_result_release(&st->res);
    memset(st, 0, sizeof(*st));
}

int rbt_stream_find(const rbt_stream *st, const char *needle)
{
    for (int i = 0; i < st->n; i++)
        if (strstr(st->ev[i].data, needle))
            return i;
    return -1;
}

char *rbt_get(const char *base, const char *path)
{
    char url[512];
    rb_buf b;
    rb_buf_init(&b, 8 << 20);
    snprintf(url, sizeof url, "%s%s", base, path);
    if (rbt_http("GET", url, NULL, NULL, 5000, &b, NULL) < 0) {
        rb_buf_release(&b);
        return NULL;
    }
    return rb_buf_detach(&b, NULL);
}

double rbt_metric(const char *metrics, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = metrics; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

double rbt_logged_job_ms(const char *log, const char *id, int *tokens)
{
    char needle[160];
    int64_t end = rbt_ms() + 5000;
    snprintf(needle, sizeof needle, "job %s completed after ", id);
    while (rbt_ms() < end) {
        char *text = rbt_slurp(log);
        char *at = text ? strstr(text, needle) : NULL;
        double ms;
        int prompt;
        if (at && sscanf(at + strlen(needle), "%d tokens (%d prompt, %lf ms", tokens, &prompt,
                         &ms) == 3) {
            free(text);
            return ms;
        }
        free(text);
        rbt_poll_interval();
    }
    return -1;
}

void rbt_check_openai_spread(const char *base, const char *path, const char *body,
                             const char *field, const char *worker_log)
{
    rbt_stream st = {0};
    int64_t first = -1, last = -1;
    int nchunks = 0, tokens = 0;
    char id[128] = "";
    double ms;

    rbt_stream_run(&st, base, path, body, 30000, 120000);
    ck_assert_msg(st.rc == RB_OK, "%s: %s", path, st.err);
    for (int i = 0; i < st.n; i++) {
        json_t *j = json_loads(st.ev[i].data, 0, NULL);
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        json_t *t = strcmp(field, "content") == 0
                        ? json_object_get(json_object_get(c0, "delta"), "content")
                        : json_object_get(c0, "text");
        if (j && !id[0] && json_is_string(json_object_get(j, "id")))
            snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
        if (json_is_string(t) && json_string_length(t) > 0) {
            if (first < 0)
                first = st.ev[i].at_us;
            last = st.ev[i].at_us;
            nchunks++;
        }
        json_decref(j);
    }
    ms = rbt_logged_job_ms(worker_log, id, &tokens);
    ck_assert_msg(ms > 0, "no log line for job %s (log %s)", id, worker_log);
    printf("%s%s: %d content chunks of %d tokens arrived over %.1f ms of a %.1f ms generation\n",
           base, path, nchunks, tokens, (last - first) / 1000.0, ms);
    ck_assert_int_ge(tokens, 150);
    ck_assert_int_ge(nchunks, tokens / 2);
    ck_assert_msg((double)(last - first) / 1000.0 >= ms / 2,
                  "%s: chunks arrived within %.1f ms of a %.1f ms generation: buffered", path,
                  (last - first) / 1000.0, ms);
    rbt_stream_release(&st);
}
