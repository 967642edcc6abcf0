/*
 * rbt_keeper.h - running the real `rbee` in a test: its own RBEE_HOME, free ports for an
 * ephemeral hive and its workers, stdout and stderr in separate files, a deadline on every run,
 * and a marker in the environment of everything it starts so that a suite can find and stop
 * what a failed test left behind (detached hives included).
 *
 *     rbt_keeper k;
 *     rbt_keeper_init(&k, NULL);                         // fresh RBEE_HOME
 *     rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);   // more "K=V"; later entries win
 *     const char *args[] = {"infer", "--prompt", "In the beginning", NULL};
 *     ck_assert_int_eq(rbt_keeper_run(&k, 60000, args), 0);
 *     ck_assert(rbt_keeper_err_has(&k, "[Phase 8]"));
 *     rbt_keeper_cleanup(&k);                            // removes RBEE_HOME (if it made it)
 */
#ifndef RBT_KEEPER_H
#define RBT_KEEPER_H

#include <stdint.h>
#include <sys/types.h>

#define RBT_KEEPER_ENV 24
#define RBT_MARK_VAR "RBT_KEEPER_TEST"

typedef struct rbt_keeper {
    char home[4096];
    int own_home;              /* rbt_keeper_init made home: cleanup removes it */
    char out[4200], err[4200]; /* stdout and stderr of the latest run */
    char mark[128];            /* "RBT_KEEPER_TEST=<pid>", in every child's environment */
    char env[RBT_KEEPER_ENV][1024];
    char *envp[RBT_KEEPER_ENV + 1];
    int nenv, runs;
    int hive_port, worker_port_base; /* the free ports given by default */
    pid_t pid;                       /* the running rbee, 0 when none */
    int64_t started_ms, ended_ms;
} rbt_keeper;

/* home NULL: a fresh temporary folder. Sets RBEE_HOME, RBEE_HIVE_PORT and
 * RBEE_WORKER_PORT_BASE (free ports), RBEE_BUNDLED_MODEL (the source tree's Q8_0 file, so a
 * build tree anywhere works), and empties RBEE_API_TOKEN and RBEE_SSH. */
void rbt_keeper_init(rbt_keeper *k, const char *home);
/* Adds an environment entry "K=V" (printf-style). */
void rbt_keeper_env(rbt_keeper *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Starts rbee with args (NULL-terminated, without "rbee") and returns at once. */
pid_t rbt_keeper_start(rbt_keeper *k, const char *const *args);
/* Waits up to timeout_ms for the started rbee; its exit code, or 128 + signal. Fails the test
 * when it does not end in time. */
int rbt_keeper_wait(rbt_keeper *k, int timeout_ms);
/* rbt_keeper_start + rbt_keeper_wait. */
int rbt_keeper_run(rbt_keeper *k, int timeout_ms, const char *const *args);
/* Duration of the latest finished run in ms. */
int64_t rbt_keeper_ms(const rbt_keeper *k);
/* The latest run's stdout or stderr (caller frees; "" when empty, never NULL). */
char *rbt_keeper_out(const rbt_keeper *k);
char *rbt_keeper_err(const rbt_keeper *k);
int rbt_keeper_out_has(const rbt_keeper *k, const char *needle);
int rbt_keeper_err_has(const rbt_keeper *k, const char *needle);
/* Size of the latest run's stdout so far. */
long rbt_keeper_out_size(const rbt_keeper *k);
/* Kills what is left and removes RBEE_HOME when rbt_keeper_init made it. */
void rbt_keeper_cleanup(rbt_keeper *k);

/* Copies the bundled Q8_0 model to <root>/test/kjv/model.gguf, where mock-files serves it as
 * hf:test/kjv/model.gguf. Returns its size. */
size_t rbt_keeper_serve_model(const char *root);
/* How many times needle occurs in s. */
int rbt_count(const char *s, const char *needle);

/* Processes (not zombies) whose environment holds the entry kv ("RBEE_HOME=/tmp/x"). */
int rbt_procs_with_env(const char *kv);
/* SIGKILLs every process whose environment holds kv; returns how many. */
int rbt_kill_with_env(const char *kv);
/* The marker entry RBT_MARK_VAR=<pid>. The first call (make it in main(), before the suite
 * forks its tests) puts it into this process's environment, so that every process the suite
 * starts carries it. */
const char *rbt_keeper_mark(void);
/* SIGKILLs every marked process but this one: for an unchecked teardown, which runs in the
 * suite's main process even after a test failed half-way. */
void rbt_keeper_reap_marked(void);

#endif
