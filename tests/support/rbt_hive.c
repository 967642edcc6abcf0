/*
 * rbt_hive.c - running the real rbee-hive in tests (see rbt_hive.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_buf.h"
#include "rb_models.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"

#define MAX_ARGS 48
#define HEALTH_WAIT_MS 10000
#define STOP_WAIT_MS 35000
#define REQUEST_TIMEOUT_MS 10000
rbt_hive_opts rbt_hive_opts_default(void)
{
    rbt_hive_opts o = {0};
    o.monitor_interval = "1";
    o.idle_timeout = "300";
    o.load_timeout = "300";
    o.heartbeat_interval = "30";
    return o;
}

int rbt_scaled(int ms)
{
    const char *s = getenv("RBT_TIME_SCALE");
    double f = s ? atof(s) : 1.0;
    return (int)(ms * (f >= 1.0 ? f : 1.0));
}

void rbt_hive_init(rbt_hive *h)
{
    memset(h, 0, sizeof(*h));
    rbt_tmpdir(h->home);
    snprintf(h->log, sizeof h->log, "%s/hive.log", h->home);
}

/* Splits $RBT_HIVE_WRAPPER into argv; returns the count. */
static int wrapper_args(char **argv, char *buf, size_t buflen)
{
    const char *w = getenv("RBT_HIVE_WRAPPER");
    int n = 0;

    snprintf(buf, buflen, "%s", w ? w : "");
    for (char *tok = strtok(buf, " "); tok && n < MAX_ARGS / 2; tok = strtok(NULL, " "))
        argv[n++] = tok;
    return n;
}

void rbt_hive_start(rbt_hive *h, const rbt_hive_opts *o)
{
    char *argv[MAX_ARGS], *env[16], wrap[1024], addr[64], home_env[4200], base_env[64],
        tok_env[600];
    char url[128], hive_bin[4096], worker_bin[4096];
    int n, e = 0;

    if (!h->home[0])
        rbt_hive_init(h);
    h->port = rbt_free_port();
    h->worker_port_base = rbt_free_port();
    h->token = o->token;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", h->port);
    snprintf(h->base, sizeof h->base, "http://127.0.0.1:%d", h->port);
    /* rbt_bin answers in one static buffer: copy each path out. */
    snprintf(hive_bin, sizeof hive_bin, "%s", rbt_bin("rbee-hive"));
    snprintf(worker_bin, sizeof worker_bin, "%s",
             o->worker_binary ? o->worker_binary : rbt_bin("mock-worker"));
    n = wrapper_args(argv, wrap, sizeof wrap);
    argv[n++] = hive_bin;
    argv[n++] = "daemon";
    argv[n++] = "--addr";
    argv[n++] = addr;
    argv[n++] = "--monitor-interval";
    argv[n++] = (char *)o->monitor_interval;
    argv[n++] = "--idle-timeout";
    argv[n++] = (char *)o->idle_timeout;
    argv[n++] = "--load-timeout";
    argv[n++] = (char *)o->load_timeout;
    argv[n++] = "--heartbeat-interval";
    argv[n++] = (char *)o->heartbeat_interval;
    argv[n++] = "--worker-binary";
    argv[n++] = worker_bin;
    if (!o->token)
        argv[n++] = "--local-mode";
    for (int i = 0; i < 8 && o->args[i]; i++)
        argv[n++] = (char *)o->args[i];
    argv[n] = NULL;
    snprintf(home_env, sizeof home_env, "RBEE_HOME=%s", h->home);
    snprintf(base_env, sizeof base_env, "RBEE_WORKER_PORT_BASE=%d", h->worker_port_base);
    env[e++] = home_env;
    env[e++] = base_env;
    if (o->token) {
        snprintf(tok_env, sizeof tok_env, "RBEE_API_TOKEN=%s", o->token);
        env[e++] = tok_env;
    }
    for (int i = 0; i < 8 && o->env[i]; i++)
        env[e++] = (char *)o->env[i];
    env[e] = NULL;
    h->pid = rbt_spawn(argv, env, h->log);
    snprintf(url, sizeof url, "%s/v1/health", h->base);
    ck_assert_msg(rbt_wait_http(url, 200, rbt_scaled(HEALTH_WAIT_MS)),
                  "rbee-hive did not come up; log %s", h->log);
}

int rbt_hive_stop(rbt_hive *h)
{
    int status = 0, code = -1;

    if (h->pid <= 0)
        goto out;
    kill(h->pid, SIGTERM);
    if (rbt_wait_exit(h->pid, rbt_scaled(STOP_WAIT_MS), &status)) {
        if (WIFEXITED(status))
            code = WEXITSTATUS(status);
    } else {
        rbt_kill(h->pid);
    }
    h->pid = 0;
out:
    return code;
}

void rbt_hive_cleanup(rbt_hive *h)
{
    if (h->pid > 0)
        rbt_kill(h->pid);
    h->pid = 0;
    if (!getenv("RBT_KEEP_HOME"))
        rbt_rmtree(h->home);
}

long rbt_hive_json(rbt_hive *h, const char *method, const char *path, const char *body,
                   json_t **reply)
{
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
    char url[512], auth[600];
    rb_buf out;
    long st;

    if (h->token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->token);
        headers[1] = auth;
    }
    snprintf(url, sizeof url, "%s%s", h->base, path);
    rb_buf_init(&out, 16 << 20);
    st = rbt_http(method, url, headers, body, rbt_scaled(REQUEST_TIMEOUT_MS), &out, NULL);
    if (reply)
        *reply = out.data ? json_loads(out.data, 0, NULL) : NULL;
    rb_buf_release(&out);
    return st;
}

static void put_u32(FILE *f, uint32_t v)
{
    fwrite(&v, 4, 1, f);
}

static void put_u64(FILE *f, uint64_t v)
{
    fwrite(&v, 8, 1, f);
}

static void put_str(FILE *f, const char *s)
{
    put_u64(f, strlen(s));
    fwrite(s, 1, strlen(s), f);
}

static void put_kv_u32(FILE *f, const char *key, uint32_t v)
{
    put_str(f, key);
    put_u32(f, 4); /* GGUF_TYPE_UINT32 */
    put_u32(f, v);
}

void rbt_write_fake_gguf(const char *path, size_t size)
{
    FILE *f = fopen(path, "wb");
    long at;

    ck_assert_msg(f != NULL, "cannot create %s", path);
    if (size < 256) { /* too small for the header below: the magic, a version and filler */
        fwrite("GGUF\3\0\0\0", 1, size < 8 ? size : 8, f);
        for (size_t i = 8; i < size; i++)
            fputc((int)(i * 131 % 251), f);
        fclose(f);
        return;
    }
    /* A GGUF v3 header the hive can read (a one-layer llama shape, no tensors), then filler:
     * a model for the mock worker, which loads nothing. */
    fwrite("GGUF", 1, 4, f);
    put_u32(f, 3);
    put_u64(f, 0); /* tensors */
    put_u64(f, 5); /* key-value pairs */
    put_str(f, "general.architecture");
    put_u32(f, 8); /* GGUF_TYPE_STRING */
    put_str(f, "llama");
    put_kv_u32(f, "llama.block_count", 1);
    put_kv_u32(f, "llama.embedding_length", 64);
    put_kv_u32(f, "llama.attention.head_count", 1);
    put_kv_u32(f, "llama.vocab_size", 32);
    at = ftell(f);
    ck_assert_msg(at > 0 && (size_t)at <= size, "a fake GGUF needs at least %ld bytes", at);
    for (size_t i = (size_t)at; i < size; i++)
        fputc((int)(i * 131 % 251), f);
    fclose(f);
}

void rbt_hive_fake_model(const rbt_hive *h, char *ref, size_t cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/models", h->home);
    ck_assert_int_eq(rb_mkdir_p(path), RB_OK);
    snprintf(path, sizeof path, "%s/models/model.gguf", h->home);
    rbt_write_fake_gguf(path, 4096);
    snprintf(ref, cap, "file:%s", path);
}

const char *rbt_error_code(json_t *body)
{
    const char *c = json_string_value(json_object_get(json_object_get(body, "error"), "code"));
    return c ? c : "";
}

/* The entry of id in a /v1/workers/list reply, borrowed, or NULL. */
static json_t *find_worker(json_t *list, const char *id)
{
    json_t *w, *found = NULL, *workers = json_object_get(list, "workers");
    size_t i;

    for (i = 0; i < json_array_size(workers); i++) {
        w = json_array_get(workers, i);
        if (!found && strcmp(json_string_value(json_object_get(w, "id")), id) == 0)
            found = w;
    }
    return found;
}

int rbt_hive_wait_worker(rbt_hive *h, const char *id, const char *state, int timeout_ms,
                         json_t **out)
{
    int64_t end = rbt_ms() + timeout_ms;
    int ok = 0;

    if (out)
        *out = NULL;
    do {
        json_t *list = NULL, *w;
        if (rbt_hive_json(h, "GET", "/v1/workers/list", NULL, &list) == 200) {
            w = find_worker(list, id);
            ok = state ? w && strcmp(json_string_value(json_object_get(w, "state")), state) == 0
                       : w == NULL;
            if (ok && out && w)
                *out = json_incref(w);
        }
        json_decref(list);
        if (!ok)
            rbt_poll_interval();
    } while (!ok && rbt_ms() < end);
    return ok;
}

int rbt_pid_gone(pid_t pid)
{
    return kill(pid, 0) != 0 && errno == ESRCH;
}

/* ---- mock-files -------------------------------------------------------------------------- */

void rbt_files_init(rbt_files *f)
{
    memset(f, 0, sizeof(*f));
    rbt_tmpdir(f->dir);
    snprintf(f->root, sizeof f->root, "%s/root", f->dir);
    snprintf(f->log, sizeof f->log, "%s/files.log", f->dir);
    ck_assert_int_eq(rb_mkdir_p(f->root), RB_OK);
}

void rbt_files_start(rbt_files *f, const char *scenario_json)
{
    char port[16], scenario[4200], bin[4096], url[128];
    char *argv[] = {bin, "--root", f->root, "--port", port, NULL, NULL, NULL};
    FILE *sf;

    snprintf(bin, sizeof bin, "%s", rbt_bin("mock-files"));
    f->port = rbt_free_port();
    snprintf(port, sizeof port, "%d", f->port);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
    if (scenario_json) {
        snprintf(scenario, sizeof scenario, "%s/scenario.json", f->dir);
        sf = fopen(scenario, "w");
        ck_assert(sf != NULL);
        fputs(scenario_json, sf);
        fclose(sf);
        argv[5] = "--scenario";
        argv[6] = scenario;
    }
    f->pid = rbt_spawn(argv, NULL, f->log);
    snprintf(url, sizeof url, "%s/mock/requests", f->base);
    ck_assert_msg(rbt_wait_http(url, 200, rbt_scaled(HEALTH_WAIT_MS)),
                  "mock-files did not come up; log %s", f->log);
}

void rbt_files_stop(rbt_files *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        if (!rbt_wait_exit(f->pid, rbt_scaled(5000), NULL))
            rbt_kill(f->pid);
    }
    f->pid = 0;
    rbt_rmtree(f->dir);
}

json_t *rbt_files_requests(rbt_files *f)
{
    char url[128];
    rb_buf b;
    json_t *j = NULL, *reqs;

    snprintf(url, sizeof url, "%s/mock/requests", f->base);
    rb_buf_init(&b, 4 << 20);
    if (rbt_http("GET", url, NULL, NULL, rbt_scaled(5000), &b, NULL) == 200)
        j = json_loads(b.data, 0, NULL);
    rb_buf_release(&b);
    reqs = json_incref(json_object_get(j, "requests"));
    json_decref(j);
    return reqs ? reqs : json_array();
}

void rbt_hive_opts_bundled(rbt_hive_opts *o)
{
    static char env[4200];
    int e = 0;

    snprintf(env, sizeof env, "RBEE_BUNDLED_MODEL=%s", rbt_model_q8());
    while (e < 7 && o->env[e])
        e++;
    o->env[e] = env;
}

void rbt_hive_start_real(rbt_hive *h, rbt_hive_opts *o)
{
    static char worker[4096];

    snprintf(worker, sizeof worker, "%s", rbt_bin("llm-worker-rbee"));
    o->worker_binary = worker;
    rbt_hive_opts_bundled(o);
    rbt_hive_start(h, o);
}
