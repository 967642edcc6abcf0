/*
 * rb_test.h - support for the Check suites: running a suite with a deadline, temporary
 * folders, child processes with deadlines, polling helpers and log capture.
 *
 * Every wait here has a deadline; nothing sleeps a fixed time except the short poll interval
 * inside rbt_poll-style loops.
 */
#ifndef RB_TEST_H
#define RB_TEST_H

#include <check.h>
#include <stdint.h>
#include <sys/types.h>

#include "rb_buf.h"
#include "rb_log.h"

/* Runs the suite (fork mode, so a crash fails one test), prints Check's summary and returns
 * the process exit status: 0 only if every test passed. */
int rbt_run(Suite *s);
/* rbt_run, and also a failure (with a message) when the suite did not run exactly ntests
 * tests. */
int rbt_run_counted(Suite *s, int ntests);

/* The test's name for messages, given __func__ inside START_TEST (Check names the function
 * <test>_fn; thread-local buffer). */
const char *rbt_test_name(const char *func);

/* Adds a test case with its own timeout in seconds. */
TCase *rbt_tcase(Suite *s, const char *name, double timeout_s);

/* Creates a fresh folder under $TMPDIR (or /tmp) and writes its path into out (4096 bytes). */
void rbt_tmpdir(char *out);
/* rm -rf path (test folders only). */
void rbt_rmtree(const char *path);

/* Path of a built binary ("llm-worker-rbee") or a source file ("models/x.gguf"). */
const char *rbt_bin(const char *name);
const char *rbt_src(const char *rel);

/* Starts argv[0] with argv; stdout and stderr go to logpath (or inherit when NULL). Extra
 * environment entries "K=V" in env (NULL-terminated, may be NULL) are added. Returns the pid.
 * The child gets its own process group, no inherited descriptor beyond 0-2, and SIGTERM when
 * the calling thread ends (so call it from the test's main thread): a daemon never outlives
 * the test that started it, even one that failed half-way. */
pid_t rbt_spawn(char *const argv[], char *const env[], const char *logpath);
/* rbt_spawn with stdout appended to outpath and stderr to errpath (NULL: stderr follows
 * stdout; both NULL: inherited). */
pid_t rbt_spawn_split(char *const argv[], char *const env[], const char *outpath,
                      const char *errpath);
/* Waits up to timeout_ms for pid to exit. Returns 1 and writes the wait status, or 0. */
int rbt_wait_exit(pid_t pid, int timeout_ms, int *status);
/* SIGKILLs and reaps pid if still running. */
void rbt_kill(pid_t pid);
/* 1 while pid exists (and is not a zombie of ours still to reap). */
int rbt_alive(pid_t pid);
/* Open descriptors of process pid (entries of /proc/<pid>/fd); fails the test when unreadable. */
int rbt_count_fds(pid_t pid);

/* Waits up to timeout_ms for a "listening on port N" line in logpath; returns N or -1. */
int rbt_wait_listening(const char *logpath, int timeout_ms);

/* Polls GET url every 20 ms until it answers status want, for at most timeout_ms. 1 on
 * success. */
int rbt_wait_http(const char *url, long want, int timeout_ms);
/* Raw HTTP exchange for tests that need exact headers: headers is a NULL-terminated list of
 * "Name: value" lines (may be NULL), body may be NULL. The reply body goes into body_out and
 * the response headers into headers_out (both optional, caller-initialised). Returns the
 * status, or -1 when no answer came within timeout_ms. */
long rbt_http(const char *method, const char *url, const char *const *headers, const char *body,
              int timeout_ms, rb_buf *body_out, rb_buf *headers_out);

/* A TCP port that was free a moment ago on 127.0.0.1. */
int rbt_free_port(void);
/* 1 if something accepts connections on 127.0.0.1:port. */
int rbt_port_open(int port);
/* Sends the raw bytes req to 127.0.0.1:port, then reads the answer into out (NUL-terminated,
 * at most cap - 1 bytes) until the server closes or timeout_ms passes. Returns the bytes read,
 * -1 when the connection failed. For requests a real client would never send. */
long rbt_raw_http(int port, const char *req, char *out, size_t cap, int timeout_ms);

/* The pause between two checks of a polling loop (a few ms); never a wait for a condition. */
void rbt_poll_interval(void);

/* Milliseconds since an arbitrary start (monotonic). */
int64_t rbt_ms(void);

/* Log capture: installs a sink that keeps the last lines in memory. */
void rbt_log_capture_start(rb_log_level level);
void rbt_log_capture_stop(void);
/* 1 if a captured line contains needle. */
int rbt_log_contains(const char *needle);

/* Reads a whole file into a static-lifetime malloc'd string (caller frees); NULL if absent. */
char *rbt_slurp(const char *path);
/* 1 if file contains needle. */
int rbt_file_contains(const char *path, const char *needle);
/* Writes text to path and makes it executable (a stand-in program); fails the test if not. */
void rbt_write_script(const char *path, const char *text);

#endif
