/*
 * rb_test.c - shared helpers for the Check suites (see rb_test.h).
 */
#include <dirent.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rb_sock.h"
#include "rb_buf.h"
#include "rb_client.h"
#include "rb_test.h"
#include "rb_util.h"

/* Runs s; the exit status (0: every test passed, and ntests of them when ntests >= 0). */
static int run_suite(Suite *s, int ntests)
{
    SRunner *sr = srunner_create(s);
    int failed, ran;

    rb_client_global_init();
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    ran = srunner_ntests_run(sr);
    srunner_free(sr);
    if (ntests >= 0 && ran != ntests) {
        printf("FAIL: the suite ran %d tests, its main() says %d\n", ran, ntests);
        return 1;
    }
    return failed == 0 ? 0 : 1;
}

int rbt_run(Suite *s)
{
    return run_suite(s, -1);
}

int rbt_run_counted(Suite *s, int ntests)
{
    return run_suite(s, ntests);
}

const char *rbt_test_name(const char *func)
{
    static __thread char p[256];
    size_t n = strlen(func);
    if (n >= 3 && strcmp(func + n - 3, "_fn") == 0)
        n -= 3;
    snprintf(p, sizeof p, "%.*s", (int)n, func);
    return p;
}

TCase *rbt_tcase(Suite *s, const char *name, double timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s);
    suite_add_tcase(s, tc);
    return tc;
}

void rbt_tmpdir(char *out)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, 4096, "%s/rbee-test-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(out))
        ck_abort_msg("mkdtemp failed: %s", strerror(errno));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

void rbt_rmtree(const char *path)
{
    if (path && strstr(path, "rbee-test-"))
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *rbt_bin(const char *name)
{
    static __thread char p[4096];
    snprintf(p, sizeof p, "%s/%s", RB_BIN_DIR, name);
    return p;
}

const char *rbt_src(const char *rel)
{
    static __thread char p[4096];
    snprintf(p, sizeof p, "%s/%s", RB_SOURCE_DIR, rel);
    return p;
}

/* Points descriptor target at path (appending), if path is set. */
static void redirect(int target, const char *path)
{
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
    if (fd >= 0) {
        dup2(fd, target);
        close(fd);
    }
}

pid_t rbt_spawn_split(char *const argv[], char *const env[], const char *outpath,
                      const char *errpath)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        ck_abort_msg("fork failed");
    if (pid == 0) {
        redirect(1, outpath);
        if (errpath)
            redirect(2, errpath);
        else if (outpath)
            dup2(1, 2);
        for (int i = 0; env && env[i]; i++)
            putenv(env[i]);
        /* Own process group so a test can clean up everything a child started. */
        setpgid(0, 0);
        /* SIGTERM when the test process ends, even through a failed assertion (Check leaves
         * with _exit, so no cleanup of the test runs): a daemon never outlives its test. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        /* No inherited descriptor: a daemon left behind by a failed test must not keep the
         * test's files open (such as the build lock held by whoever ran the suite). */
        close_range(3, ~0U, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s failed: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

pid_t rbt_spawn(char *const argv[], char *const env[], const char *logpath)
{
    return rbt_spawn_split(argv, env, logpath, NULL);
}

int rbt_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t end = rbt_ms() + timeout_ms;
    int st;
    do {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (status)
                *status = st;
            return 1;
        }
        if (r < 0)
            return errno == ECHILD;
        rbt_poll_interval();
    } while (rbt_ms() < end);
    return 0;
}

void rbt_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int rbt_count_fds(pid_t pid)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    d = opendir(path);
    ck_assert_msg(d != NULL, "cannot read %s", path);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int rbt_alive(pid_t pid)
{
    char path[64], state = 0;
    FILE *f;
    if (kill(pid, 0) != 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%*d %*s %c", &state) != 1)
        state = 0;
    fclose(f);
    return state != 'Z' && state != 0;
}

int rbt_wait_http(const char *url, long want, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    rb_client_opts o = rb_client_opts_default();
    rb_buf b;
    int ok = 0;

    o.connect_timeout_ms = 500;
    o.timeout_ms = 1000;
    rb_buf_init(&b, 1 << 20);
    do {
        long st = 0;
        char err[256];
        if (rb_client_request("GET", url, NULL, &o, &st, &b, err, sizeof err) == RB_OK &&
            st == want) {
            ok = 1;
            break;
        }
        rbt_poll_interval();
    } while (rbt_ms() < end);
    rb_buf_release(&b);
    return ok;
}

int rbt_wait_listening(const char *logpath, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    do {
        char *log = rbt_slurp(logpath);
        const char *p = log ? strstr(log, "listening on port ") : NULL;
        int port = -1;
        if (p)
            port = atoi(p + strlen("listening on port "));
        free(log);
        if (port > 0)
            return port;
        rbt_poll_interval();
    } while (rbt_ms() < end);
    return -1;
}

int rbt_free_port(void)
{
    int port = rb_port_probe("127.0.0.1", 0, 0);

    if (port < 0)
        ck_abort_msg("cannot bind a loopback port");
    return port;
}

int rbt_port_open(int port)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

long rbt_raw_http(int port, const char *req, char *out, size_t cap, int timeout_ms)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int64_t end = rbt_ms() + timeout_ms;
    size_t n = 0, len = strlen(req);

    out[0] = '\0';
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while (n + 1 < cap && rbt_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;
        if (poll(&p, 1, (int)(end - rbt_ms())) <= 0)
            break;
        r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
    }
    close(fd);
    return (long)n;
}

void rbt_poll_interval(void)
{
    rb_sleep_ms(10);
}

static size_t rbt_write(char *p, size_t size, size_t n, void *user)
{
    if (user && rb_buf_append(user, p, size * n))
        return 0;
    return size * n;
}

long rbt_http(const char *method, const char *url, const char *const *headers, const char *body,
              int timeout_ms, rb_buf *body_out, rb_buf *headers_out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    long status = -1;

    for (int i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rbt_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body_out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, rbt_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, headers_out);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

int64_t rbt_ms(void)
{
    return rb_now_ms();
}

/* ---- log capture ---------------------------------------------------------------------- */

#define CAP_LINES 512
static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static char *cap_lines[CAP_LINES];
static int cap_next;

static void cap_sink(void *user, rb_log_level level, const char *component, const char *msg)
{
    char line[2200];
    (void)user;
    snprintf(line, sizeof line, "%d %s: %s", (int)level, component, msg);
    pthread_mutex_lock(&cap_mu);
    free(cap_lines[cap_next]);
    cap_lines[cap_next] = strdup(line);
    cap_next = (cap_next + 1) % CAP_LINES;
    pthread_mutex_unlock(&cap_mu);
}

void rbt_log_capture_start(rb_log_level level)
{
    rb_log_set_level(level);
    rb_log_set_sink(cap_sink, NULL);
}

void rbt_log_capture_stop(void)
{
    rb_log_set_sink(NULL, NULL);
    pthread_mutex_lock(&cap_mu);
    for (int i = 0; i < CAP_LINES; i++) {
        free(cap_lines[i]);
        cap_lines[i] = NULL;
    }
    pthread_mutex_unlock(&cap_mu);
}

int rbt_log_contains(const char *needle)
{
    int found = 0;
    pthread_mutex_lock(&cap_mu);
    for (int i = 0; i < CAP_LINES && !found; i++)
        found = cap_lines[i] && strstr(cap_lines[i], needle);
    pthread_mutex_unlock(&cap_mu);
    return found;
}

char *rbt_slurp(const char *path)
{
    char *p;
    size_t n;
    return rb_read_file(path, 64u << 20, &p, &n) == RB_OK ? p : NULL;
}

int rbt_file_contains(const char *path, const char *needle)
{
    char *s = rbt_slurp(path);
    int found = s && strstr(s, needle);
    free(s);
    return found;
}

void rbt_write_script(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, 0755), 0);
}
