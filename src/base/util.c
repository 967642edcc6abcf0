/*
 * util.c - clocks, ids, files, parsing and machine facts shared by every module.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "rb_util.h"

int rb_id_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    int ok = n > 0 && n <= max;

    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_' || c == '.' || c == ':';
    }
    return ok;
}

void rb_random_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t got = getrandom(b, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            /* getrandom cannot fail on Linux >= 3.17 once the pool is ready; fall back. */
            for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(rand() ^ (int)rb_now_us());
            return;
        }
        b += got;
        n -= (size_t)got;
    }
}

void rb_uuid(char out[37])
{
    uint8_t r[16];
    rb_random_bytes(r, sizeof r);
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

int rb_ct_streq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    volatile unsigned char diff = (unsigned char)(la != lb);
    /* Compare over the longer length so the time does not reveal a common prefix. */
    size_t n = la > lb ? la : lb;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < la ? (unsigned char)a[i] : 0;
        unsigned char y = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

rb_err rb_mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof tmp)
        return RB_EINVAL;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return RB_EIO;
            tmp[i] = c;
        }
    }
    return RB_OK;
}

rb_err rb_write_file_atomic(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    const char *p = data;
    rb_err rc = RB_OK;
    int fd;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return RB_ETOOBIG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return RB_EIO;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = RB_EIO;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    if (!rc && fsync(fd) != 0)
        rc = RB_EIO;
    if (close(fd) != 0 && !rc)
        rc = RB_EIO;
    if (!rc && rename(tmp, path) != 0)
        rc = RB_EIO;
    if (rc)
        unlink(tmp);
    return rc;
}

rb_err rb_read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t n = 0, cap = 0;
    rb_err rc = RB_OK;

    if (!f)
        return errno == ENOENT ? RB_ENOTFOUND : RB_EIO;
    for (;;) {
        if (cap - n < 4096) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *q = realloc(p, ncap + 1);
            if (!q) {
                rc = RB_ENOMEM;
                goto out;
            }
            p = q;
            cap = ncap;
        }
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            rc = RB_ETOOBIG;
            goto out;
        }
        if (got == 0) {
            if (ferror(f))
                rc = RB_EIO;
            break;
        }
    }
out:
    fclose(f);
    if (rc) {
        free(p);
        return rc;
    }
    if (!p && !(p = malloc(1)))
        return RB_ENOMEM;
    p[n] = '\0';
    *out = p;
    if (len)
        *len = n;
    return RB_OK;
}

rb_err rb_path_join(char *out, size_t outlen, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s/%s", a, b);
    return n < 0 || (size_t)n >= outlen ? RB_ETOOBIG : RB_OK;
}

rb_err rb_home_dir(char *out, size_t outlen)
{
    const char *h = getenv("RBEE_HOME");
    int n;

    if (h && *h)
        n = snprintf(out, outlen, "%s", h);
    else {
        const char *home = getenv("HOME");
        n = snprintf(out, outlen, "%s/.rbee", home && *home ? home : "/tmp");
    }
    return n < 0 || (size_t)n >= outlen ? RB_ETOOBIG : RB_OK;
}

static int signal_fds[2] = {-1, -1};

static void on_stop_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(signal_fds[1], &b, 1);
    (void)w;
    errno = saved;
}

rb_err rb_signal_pipe(int *read_fd)
{
    struct sigaction sa;

    if (signal_fds[0] < 0 && pipe2(signal_fds, O_CLOEXEC) != 0)
        return RB_EIO;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    *read_fd = signal_fds[0];
    return RB_OK;
}

void rb_signal_pipe_wake(void)
{
    unsigned char b = 0;
    if (signal_fds[1] >= 0) {
        ssize_t w = write(signal_fds[1], &b, 1);
        (void)w;
    }
}

void rb_thread_set_name(const char *name)
{
    char n[16];
    snprintf(n, sizeof n, "%s", name);
    pthread_setname_np(pthread_self(), n);
}

rb_err rb_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    /* strtoll alone would also take leading blanks and '+' */
    if (!s || !(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
        return RB_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return RB_EINVAL;
    *out = v;
    return RB_OK;
}

rb_err rb_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    /* strtoull alone would take " -1" as 2^64 - 1 */
    if (!s || !isdigit((unsigned char)s[0]))
        return RB_EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return RB_EINVAL;
    *out = v;
    return RB_OK;
}

rb_err rb_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    double v;

    if (!s || !*s || isspace((unsigned char)s[0]))
        return RB_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return RB_EINVAL;
    *out = v;
    return RB_OK;
}

int rb_fits_float(double x)
{
    double a = fabs(x);
    return x == 0 || (isfinite(x) && a >= FLT_MIN && a <= FLT_MAX);
}

int rb_physical_cores(void)
{
    /* Count distinct (physical id, core id) pairs in /proc/cpuinfo. */
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    int phys = 0, seen[256][2], nseen = 0;

    if (f) {
        while (fgets(line, sizeof line, f)) {
            int v;
            if (sscanf(line, "physical id : %d", &v) == 1)
                phys = v;
            else if (sscanf(line, "core id : %d", &v) == 1) {
                int dup = 0;
                for (int i = 0; i < nseen; i++)
                    dup |= seen[i][0] == phys && seen[i][1] == v;
                if (!dup && nseen < 256) {
                    seen[nseen][0] = phys;
                    seen[nseen][1] = v;
                    nseen++;
                }
            }
        }
        fclose(f);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (nseen <= 0 || nseen > online)
        nseen = online > 0 ? (int)online : 1;
    return nseen;
}

rb_err rb_meminfo_mb(uint64_t *total, uint64_t *available)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb;
    int found = 0;

    if (!f)
        return RB_EIO;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
            *total = kb / 1024;
            found |= 1;
        } else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            *available = kb / 1024;
            found |= 2;
        }
    }
    fclose(f);
    return found == 3 ? RB_OK : RB_EFORMAT;
}
