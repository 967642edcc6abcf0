/*
 * kpr_proc.h - processes the keeper starts: the ephemeral local hive of `rbee infer`, and
 * short commands (ssh, sh) whose output it reads.
 *
 *     kpr_local_hive h;
 *     if (kpr_local_hive_start(&h, home, 8080, 15000, interrupted, err, sizeof err)) ...
 *     ... h.url ...
 *     kpr_local_hive_stop(&h, 35000);       // SIGTERM; the hive stops its workers first
 *
 *     char *argv[] = {"/bin/sh", "-c", "echo hi", NULL};
 *     rb_buf out; rb_buf_init(&out, 65536);
 *     int status;
 *     kpr_run_program(argv, NULL, 10000, &out, &status, err, sizeof err);
 *     rb_buf_release(&out);
 */
#ifndef KPR_PROC_H
#define KPR_PROC_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include "kpr_store.h"
#include "rb_buf.h"
#include "rb_err.h"

#define KPR_HIVE_PROGRAM "rbee-hive"
#define KPR_EPHEMERAL_LOG "hive-ephemeral.log"

typedef struct kpr_local_hive {
    pid_t pid; /* 0: not running */
    int port;
    char url[64];           /* "http://127.0.0.1:<port>" */
    char log[KPR_PATH_MAX]; /* its output, appended */
} kpr_local_hive;

/* The rbee-hive program: the one next to the running rbee when it exists, else the name
 * (looked up on PATH when started). */
void kpr_hive_program(char *out, size_t len);

/* 1 when 127.0.0.1:port can be bound now as a server binds it (a port held only by connections
 * in TIME_WAIT is free; one with a listener is not). */
int kpr_port_free(int port);
/* A port of 127.0.0.1 that was free a moment ago, or -1. */
int kpr_pick_port(void);

/* Starts `rbee-hive daemon --local-mode --addr 127.0.0.1:<port>` (and `--models-dir
 * models_dir` unless it is NULL or empty) as a child in its own process group (so Ctrl+C at the
 * terminal reaches only the keeper, which then stops the hive in order), with SIGTERM as its
 * parent-death signal and its output appended to <home>/logs/hive-ephemeral.log, and waits up to
 * timeout_ms until it answers /v1/health. RB_EEXIST when it could not listen because the port was
 * taken, RB_ECANCELED when *interrupted became non-zero; on failure nothing is left running. */
rb_err kpr_local_hive_start(kpr_local_hive *h, const char *home, int port, const char *models_dir,
                            int timeout_ms, atomic_int *interrupted, char *err, size_t errlen);
/* SIGTERM, waits up to timeout_ms for its exit, then SIGKILL. No-op when not running. */
void kpr_local_hive_stop(kpr_local_hive *h, int timeout_ms);

/* Runs argv (argv[0] looked up on PATH) with stdin_text (may be NULL) on its standard input,
 * collecting its stdout and stderr into out (caller-initialised; output beyond out's limit is
 * dropped). *status is its exit code, 128 + signal when a signal ended it. A program still
 * running after timeout_ms is killed: RB_ETIMEDOUT. RB_EIO when it cannot be started. */
rb_err kpr_run_program(char *const argv[], const char *stdin_text, int timeout_ms, rb_buf *out,
                       int *status, char *err, size_t errlen);

/* The last non-empty line of text (a program's output), for an error message; "" when none. */
void kpr_last_line(const char *text, char *out, size_t len);
/* Runs command on node n over ssh (BatchMode, ConnectTimeout) as kpr_run_program does. The
 * ssh program is $RBEE_SSH (split at spaces) when set, else "ssh". */
rb_err kpr_ssh_run(const kpr_node *n, const char *command, const char *stdin_text, int timeout_ms,
                   rb_buf *out, int *status, char *err, size_t errlen);

#endif
