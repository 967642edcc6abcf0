/*
 * rbt_hive.h - running the real rbee-hive binary in a test: a fresh RBEE_HOME, a free port,
 * mock-worker as the worker binary, JSON requests, and a clean stop.
 *
 *     rbt_hive h;
 *     rbt_hive_opts o = rbt_hive_opts_default();
 *     o.idle_timeout = "2";
 *     rbt_hive_start(&h, &o);                       // fails the test if it does not come up
 *     json_t *r;
 *     long st = rbt_hive_json(&h, "GET", "/v1/workers/list", NULL, &r);
 *     ck_assert_int_eq(rbt_hive_stop(&h), 0);       // SIGTERM; the exit status
 *     rbt_hive_cleanup(&h);                         // kills what is left, removes RBEE_HOME
 *
 * Two environment variables adapt the runs: RBT_HIVE_WRAPPER is a command prefix for the hive
 * (e.g. "valgrind --leak-check=full --error-exitcode=99 --log-file=/tmp/vg.%p"), and
 * RBT_TIME_SCALE multiplies the deadlines of rbt_scaled() (e.g. 4 under valgrind).
 */
#ifndef RBT_HIVE_H
#define RBT_HIVE_H

#include <jansson.h>
#include <sys/types.h>

typedef struct rbt_hive_opts {
    const char *monitor_interval;   /* seconds; default "1" */
    const char *idle_timeout;       /* default "300" */
    const char *load_timeout;       /* default "300" */
    const char *heartbeat_interval; /* default "30" */
    const char *worker_binary;      /* default: the built mock-worker */
    const char *token;              /* network mode with this RBEE_API_TOKEN; NULL: local */
    const char *env[8];             /* extra "K=V" entries for the hive (and its workers) */
    const char *args[8];            /* extra daemon arguments, NULL-terminated */
} rbt_hive_opts;

typedef struct rbt_hive {
    char home[4096]; /* RBEE_HOME */
    char log[4200];  /* the hive's stdout and stderr */
    char base[64];   /* http://127.0.0.1:PORT */
    const char *token;
    int port;
    int worker_port_base;
    pid_t pid;
} rbt_hive;

rbt_hive_opts rbt_hive_opts_default(void);

/* ms multiplied by $RBT_TIME_SCALE (default 1). */
int rbt_scaled(int ms);

/* Makes a fresh RBEE_HOME (h->home) without starting anything. */
void rbt_hive_init(rbt_hive *h);
/* Starts rbee-hive daemon in h->home (rbt_hive_init first, or it is done here when h->home is
 * empty) and waits for /v1/health. */
void rbt_hive_start(rbt_hive *h, const rbt_hive_opts *o);
/* Adds RBEE_BUNDLED_MODEL=<the bundled Q8_0 model> to o->env, so a build tree anywhere works. */
void rbt_hive_opts_bundled(rbt_hive_opts *o);
/* rbt_hive_start with the real llm-worker-rbee as the worker and the bundled model. */
void rbt_hive_start_real(rbt_hive *h, rbt_hive_opts *o);
/* SIGTERM, then waits (rbt_scaled 35 s) for the exit. Returns the exit code, or -1 if it was
 * killed by a signal or did not exit (then it is SIGKILLed). */
int rbt_hive_stop(rbt_hive *h);
/* SIGKILLs the hive if it still runs and removes RBEE_HOME. */
void rbt_hive_cleanup(rbt_hive *h);

/* A JSON request to the hive (with its token). *reply (may be NULL) gets the parsed body or
 * NULL. Returns the status, -1 when no answer came within 10 s. */
long rbt_hive_json(rbt_hive *h, const char *method, const char *path, const char *body,
                   json_t **reply);

/* Writes a fake model of size bytes at path: from 256 bytes a GGUF v3 header the hive reads
 * (a one-layer llama shape, no tensors) and filler, below that only the magic and a version. */
void rbt_write_fake_gguf(const char *path, size_t size);
/* Writes a fake 4 KB model at <h->home>/models/model.gguf (the hive's own folder, one that
 * file: references may name) and puts "file:<that path>" in ref. */
void rbt_hive_fake_model(const rbt_hive *h, char *ref, size_t cap);

/* The code of an error envelope ("" if body is none). */
const char *rbt_error_code(json_t *body);

/* Polls the worker list until the worker id shows state (or, with state NULL, is absent), at
 * most timeout_ms. Fills *w (may be NULL) with its entry (new reference). 1 on success. */
int rbt_hive_wait_worker(rbt_hive *h, const char *id, const char *state, int timeout_ms,
                         json_t **w);

/* 1 when no process with this pid exists (not even a zombie). */
int rbt_pid_gone(pid_t pid);

/*
 * mock-files, the stand-in for the Hugging Face hub (see mock/mock-files.c):
 *
 *     rbt_files f;
 *     rbt_files_init(&f);                                   // f.root: put org/repo/file there
 *     rbt_write_fake_gguf(path_under_f_root, 3 << 20);
 *     rbt_files_start(&f, "{\"rate_bytes_per_s\":3145728}");  // scenario JSON or NULL
 *     ... HF_ENDPOINT=f.base ...
 *     json_t *reqs = rbt_files_requests(&f);                // what the server was asked
 *     rbt_files_stop(&f);
 */
typedef struct rbt_files {
    char root[4200]; /* the served folder (inside dir) */
    char dir[4096];  /* a fresh temporary folder */
    char log[4200];
    char base[64]; /* http://127.0.0.1:PORT */
    int port;
    pid_t pid;
} rbt_files;

void rbt_files_init(rbt_files *f);
/* Writes the scenario (may be NULL), starts mock-files and waits until it answers. */
void rbt_files_start(rbt_files *f, const char *scenario_json);
/* Stops the server and removes its folder. */
void rbt_files_stop(rbt_files *f);
/* The "requests" array of GET /mock/requests (new reference; empty array on failure). */
json_t *rbt_files_requests(rbt_files *f);

#endif
