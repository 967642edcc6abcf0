/*
 * rbt_keeper.c - running the real rbee in tests (see rbt_keeper.h).
 */
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_models.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_keeper.h"
#include "rbt_hive.h"

#define MAX_ARGS 48
#define ENVIRON_MAX (256 * 1024)

const char *rbt_keeper_mark(void)
{
    static char mark[64];
    char pid[16];

    if (!getenv(RBT_MARK_VAR)) {
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        setenv(RBT_MARK_VAR, pid, 1);
    }
    snprintf(mark, sizeof mark, "%s=%s", RBT_MARK_VAR, getenv(RBT_MARK_VAR));
    return mark;
}

void rbt_keeper_reap_marked(void)
{
    rbt_kill_with_env(rbt_keeper_mark());
}

void rbt_keeper_env(rbt_keeper *k, const char *fmt, ...)
{
    va_list ap;
    ck_assert_int_lt(k->nenv, RBT_KEEPER_ENV);
    va_start(ap, fmt);
    vsnprintf(k->env[k->nenv], sizeof k->env[0], fmt, ap);
    va_end(ap);
    k->envp[k->nenv] = k->env[k->nenv];
    k->nenv++;
    k->envp[k->nenv] = NULL;
}

void rbt_keeper_init(rbt_keeper *k, const char *home)
{
    memset(k, 0, sizeof(*k));
    if (home) {
        snprintf(k->home, sizeof k->home, "%s", home);
    } else {
        rbt_tmpdir(k->home);
        k->own_home = 1;
    }
    k->hive_port = rbt_free_port();
    k->worker_port_base = rbt_free_port();
    rbt_keeper_env(k, "%s", rbt_keeper_mark());
    rbt_keeper_env(k, "RBEE_HOME=%s", k->home);
    rbt_keeper_env(k, "RBEE_HIVE_PORT=%d", k->hive_port);
    rbt_keeper_env(k, "RBEE_WORKER_PORT_BASE=%d", k->worker_port_base);
    rbt_keeper_env(k, "RBEE_API_TOKEN=");
    rbt_keeper_env(k, "RBEE_SSH=");
    /* Hives started through rbee find the bundled model wherever the build tree is. */
    if (rbt_model_q8())
        rbt_keeper_env(k, "RBEE_BUNDLED_MODEL=%s", rbt_model_q8());
}

pid_t rbt_keeper_start(rbt_keeper *k, const char *const *args)
{
    char *argv[MAX_ARGS], bin[4096];
    int n = 0;

    ck_assert_msg(k->pid == 0, "rbee is still running");
    snprintf(bin, sizeof bin, "%s", rbt_bin("rbee"));
    argv[n++] = bin;
    for (int i = 0; args[i] && n < MAX_ARGS - 1; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    k->runs++;
    snprintf(k->out, sizeof k->out, "%s/rbee-%d.out", k->home, k->runs);
    snprintf(k->err, sizeof k->err, "%s/rbee-%d.err", k->home, k->runs);
    unlink(k->out);
    unlink(k->err);
    k->started_ms = rbt_ms();
    k->pid = rbt_spawn_split(argv, k->envp, k->out, k->err);
    return k->pid;
}

int rbt_keeper_wait(rbt_keeper *k, int timeout_ms)
{
    int st = 0, code;
    char *err;

    if (!rbt_wait_exit(k->pid, rbt_scaled(timeout_ms), &st)) {
        rbt_kill(k->pid);
        k->pid = 0;
        err = rbt_keeper_err(k);
        ck_abort_msg("rbee did not finish within %d ms; stderr:\n%s", timeout_ms, err);
    }
    k->pid = 0;
    k->ended_ms = rbt_ms();
    code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return code;
}

int rbt_keeper_run(rbt_keeper *k, int timeout_ms, const char *const *args)
{
    rbt_keeper_start(k, args);
    return rbt_keeper_wait(k, timeout_ms);
}

int64_t rbt_keeper_ms(const rbt_keeper *k)
{
    return k->ended_ms - k->started_ms;
}

static char *slurp_or_empty(const char *path)
{
    char *s = rbt_slurp(path);
    return s ? s : strdup("");
}

char *rbt_keeper_out(const rbt_keeper *k)
{
    return slurp_or_empty(k->out);
}

char *rbt_keeper_err(const rbt_keeper *k)
{
    return slurp_or_empty(k->err);
}

int rbt_keeper_out_has(const rbt_keeper *k, const char *needle)
{
    return rbt_file_contains(k->out, needle);
}

int rbt_keeper_err_has(const rbt_keeper *k, const char *needle)
{
    return rbt_file_contains(k->err, needle);
}

long rbt_keeper_out_size(const rbt_keeper *k)
{
    struct stat sb;
    return stat(k->out, &sb) == 0 ? (long)sb.st_size : 0;
}

void rbt_keeper_cleanup(rbt_keeper *k)
{
    char home_kv[4200];

    if (k->pid > 0)
        rbt_kill(k->pid);
    k->pid = 0;
    snprintf(home_kv, sizeof home_kv, "RBEE_HOME=%s", k->home);
    rbt_kill_with_env(home_kv);
    if (k->own_home && !getenv("RBT_KEEP_HOME"))
        rbt_rmtree(k->home);
}

size_t rbt_keeper_serve_model(const char *root)
{
    char dir[4400], path[4500], *data;
    size_t n;
    FILE *out;

    snprintf(dir, sizeof dir, "%s/test/kjv", root);
    ck_assert_int_eq(rb_mkdir_p(dir), RB_OK);
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    ck_assert_int_eq(rb_read_file(rbt_model_q8(), 64u << 20, &data, &n), RB_OK);
    out = fopen(path, "wb");
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(fwrite(data, 1, n, out), n);
    fclose(out);
    free(data);
    return n;
}

int rbt_count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- processes by environment ------------------------------------------------------------ */

/* 1 when the environment of pid holds the entry kv and pid is not a zombie. */
static int env_has(pid_t pid, const char *kv)
{
    char path[64], *buf = NULL;
    size_t n = 0, len = strlen(kv);
    int found = 0;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    f = fopen(path, "r");
    if (f) {
        buf = malloc(ENVIRON_MAX);
        n = buf ? fread(buf, 1, ENVIRON_MAX - 1, f) : 0;
        if (buf)
            buf[n] = '\0';
        fclose(f);
    }
    for (size_t i = 0; i < n && !found; i += strlen(buf + i) + 1) {
        found = strncmp(buf + i, kv, len) == 0 && buf[i + len] == '\0';
    }
    free(buf);
    return found && rbt_alive(pid);
}

/* Counts the processes holding kv, sending each sig when it is not 0. */
static int each_with_env(const char *kv, int sig)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int count = 0;

    while (d && (e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0 || pid == getpid() || !env_has(pid, kv))
            continue;
        count++;
        if (sig)
            kill(pid, sig);
    }
    if (d)
        closedir(d);
    return count;
}

int rbt_procs_with_env(const char *kv)
{
    return each_with_env(kv, 0);
}

int rbt_kill_with_env(const char *kv)
{
    return each_with_env(kv, SIGKILL);
}
