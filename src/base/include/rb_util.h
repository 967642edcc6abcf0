/*
 * rb_util.h - small helpers shared by every module: ids, hashing, files, signals, threads,
 * number parsing and machine facts. The clocks are in rb_time.h, which this header includes.
 */
#ifndef RB_UTIL_H
#define RB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "rb_err.h"
#include "rb_time.h"

#define RB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Clocks (rb_now_ms, rb_unix_ms ...) are in rb_time.h, included here. */

/* Random UUID v4 text into out (37 bytes with NUL). Uses getrandom(). */
void rb_uuid(char out[37]);
/* n random bytes from the kernel. */
void rb_random_bytes(void *p, size_t n);

/* SHA-256 of data into out. */
void rb_sha256(const void *data, size_t len, uint8_t out[32]);
/* Incremental SHA-256 for files and downloads. */
typedef struct rb_sha256_ctx {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t block[64];
    size_t fill;
} rb_sha256_ctx;
void rb_sha256_init(rb_sha256_ctx *c);
void rb_sha256_update(rb_sha256_ctx *c, const void *data, size_t len);
void rb_sha256_final(rb_sha256_ctx *c, uint8_t out[32]);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void rb_hex(const uint8_t *p, size_t n, char *out);

/* First 6 hex chars of SHA-256(token): what logs show instead of a secret. out: 7 bytes. */
void rb_token_fingerprint(const char *token, char out[7]);
/* 1 when s is an id: 1 to max characters, each a letter, a digit or one of - _ . :
 * (job ids, correlation ids). */
int rb_id_valid(const char *s, size_t max);
/* Constant-time comparison of two strings (time depends only on their lengths). 1 if equal. */
int rb_ct_streq(const char *a, const char *b);

/* mkdir -p; mode 0755. */
rb_err rb_mkdir_p(const char *path);
/* Writes data to path via "<path>.tmp.<pid>" + fsync + rename. */
rb_err rb_write_file_atomic(const char *path, const void *data, size_t len);
/* Reads a whole file (at most max bytes) into a malloc'd, NUL-terminated buffer. */
rb_err rb_read_file(const char *path, size_t max, char **out, size_t *len);
/* $RBEE_HOME, else $HOME/.rbee (/tmp/.rbee without HOME). Writes into out; RB_ETOOBIG if it
 * does not fit. */
rb_err rb_home_dir(char *out, size_t outlen);
/* snprintf that reports truncation as RB_ETOOBIG. */
rb_err rb_path_join(char *out, size_t outlen, const char *a, const char *b);

/* Routes SIGTERM and SIGINT to a pipe through an async-signal-safe handler and ignores
 * SIGPIPE. Unlike sigwait() with blocked masks this works even when a library started threads
 * before main() (OpenBLAS does). Each signal arrives as one byte, its number; *read_fd is the
 * pipe's read end (close-on-exec). Call once per process. */
rb_err rb_signal_pipe(int *read_fd);
/* Writes byte 0 to the signal pipe so that a thread blocked reading it wakes up. */
void rb_signal_pipe_wake(void);

/* Names the calling thread (at most 15 chars shown by the kernel). */
void rb_thread_set_name(const char *name);

/* Parses a whole decimal string; RB_EINVAL on junk or out of [min, max]. */
rb_err rb_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
rb_err rb_parse_u64(const char *s, uint64_t *out);
rb_err rb_parse_double(const char *s, double min, double max, double *out);
/* 1 when x keeps its meaning as a 32-bit float: 0, or finite with FLT_MIN <= |x| <= FLT_MAX.
 * (1e-300 would become 0.0f: a repetition penalty of 1e-300 is not one of 0.) */
int rb_fits_float(double x);

/* Physical cores of this machine (falls back to online CPUs). */
int rb_physical_cores(void);
/* MemTotal and MemAvailable from /proc/meminfo, in MiB. */
rb_err rb_meminfo_mb(uint64_t *total, uint64_t *available);

#endif
