/*
 * proc.c - the ephemeral local hive and short child programs (see kpr_proc.h).
 *
 * DESIGN
 * Whoever spawns a process owns it (docs/architecture.md §1). The ephemeral hive is the keeper's
 * child: its own process group keeps a terminal's Ctrl+C away from it, so that the keeper can
 * first cancel the running job and then stop the hive, which stops its workers; the kernel's
 * parent-death signal stops it even when the keeper is killed outright. Programs such as ssh
 * run with a pipe on stdin (for a token, never on a command line) and one on stdout and
 * stderr, read with poll() against a deadline, and are killed when it passes. Children keep no
 * descriptor of the keeper beyond 0-2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kpr_proc.h"
#include "rb_sock.h"
#include "rb_client.h"
#include "rb_util.h"

#define POLL_MS 50
#define HEALTH_TIMEOUT_MS 1000
#define SSH_CONNECT_TIMEOUT_S 10
#define MAX_SSH_WORDS 16

void kpr_hive_program(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash;

    snprintf(out, len, "%s", KPR_HIVE_PROGRAM);
    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(out, len, "%s/%s", exe, KPR_HIVE_PROGRAM) >= (int)len ||
                access(out, X_OK) != 0)
                snprintf(out, len, "%s", KPR_HIVE_PROGRAM);
        }
    }
}

int kpr_port_free(int port)
{
    /* As the hive binds (SO_REUSEADDR): connections of a hive that just stopped linger in
     * TIME_WAIT for a minute and must not make its port look taken. */
    return rb_port_probe("127.0.0.1", port, 1) == port;
}

int kpr_pick_port(void)
{
    return rb_port_probe("127.0.0.1", 0, 0);
}

/* In the child: the hive's descriptors, process group, parent-death signal; then exec. */
static void exec_hive(const char *program, const char *addr, const char *models_dir, int logfd,
                      pid_t parent)
{
    char *argv[] = {(char *)program, "daemon",       "--local-mode",     "--addr",
                    (char *)addr,    "--models-dir", (char *)models_dir, NULL};
    int devnull = open("/dev/null", O_RDONLY);

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    if (!models_dir || !*models_dir)
        argv[5] = NULL;
    if (devnull >= 0)
        dup2(devnull, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    close_range(3, ~0U, 0);
    execvp(program, argv);
    fprintf(stderr, "cannot run %s: %s\n", program, strerror(errno));
    _exit(127);
}

/* 1 when the hive's log says its port was taken. */
static int log_says_port_taken(const char *log)
{
    char *text = NULL;
    size_t n = 0;
    int taken = rb_read_file(log, 1 << 20, &text, &n) == RB_OK && strstr(text, "in use");
    free(text);
    return taken;
}

/* Polls until the hive answers, exits, or the deadline or an interrupt comes. */
static rb_err wait_healthy(kpr_local_hive *h, int timeout_ms, atomic_int *interrupted, char *err,
                           size_t errlen)
{
    rb_client_opts o = rb_client_opts_default();
    int64_t end = rb_now_ms() + timeout_ms;
    char url[128];
    rb_buf body;
    rb_err rc = RB_ETIMEDOUT;
    int st;

    o.connect_timeout_ms = o.timeout_ms = HEALTH_TIMEOUT_MS;
    snprintf(url, sizeof url, "%s/v1/health", h->url);
    rb_buf_init(&body, 64 * 1024);
    while (rc == RB_ETIMEDOUT && rb_now_ms() < end) {
        long status = 0;
        if (interrupted && atomic_load(interrupted)) {
            rc = rb_errf(err, errlen, RB_ECANCELED, "interrupted");
        } else if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
            h->pid = 0;
            rc = log_says_port_taken(h->log) ? RB_EEXIST : RB_EIO;
            rb_errf(err, errlen, rc, "the local hive exited at start-up (see %s)", h->log);
        } else if (rb_client_request("GET", url, NULL, &o, &status, &body, err, errlen) == RB_OK &&
                   status == 200) {
            rc = RB_OK;
        } else {
            rb_sleep_ms(POLL_MS);
        }
    }
    if (rc == RB_ETIMEDOUT)
        rb_errf(err, errlen, rc, "the local hive did not answer within %d ms (see %s)", timeout_ms,
                h->log);
    rb_buf_release(&body);
    return rc;
}

rb_err kpr_local_hive_start(kpr_local_hive *h, const char *home, int port, const char *models_dir,
                            int timeout_ms, atomic_int *interrupted, char *err, size_t errlen)
{
    char program[PATH_MAX], addr[64], logs[KPR_PATH_MAX];
    pid_t parent = getpid();
    int logfd = -1;
    rb_err rc;

    memset(h, 0, sizeof(*h));
    h->port = port;
    snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d", port);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    kpr_hive_program(program, sizeof program);
    rc = rb_path_join(logs, sizeof logs, home, "logs");
    if (!rc && (rc = rb_mkdir_p(logs)))
        rb_errf(err, errlen, rc, "cannot create '%s'", logs);
    if (!rc)
        rc = rb_path_join(h->log, sizeof h->log, logs, KPR_EPHEMERAL_LOG);
    if (!rc && (logfd = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
        rc = rb_errf(err, errlen, RB_EIO, "cannot open '%s': %s", h->log, strerror(errno));
    if (rc)
        goto out;
    h->pid = fork();
    if (h->pid == 0)
        exec_hive(program, addr, models_dir, logfd, parent);
    if (h->pid < 0) {
        h->pid = 0;
        rc = rb_errf(err, errlen, RB_EIO, "cannot start %s: %s", program, strerror(errno));
        goto out;
    }
    rc = wait_healthy(h, timeout_ms, interrupted, err, errlen);
    if (rc)
        kpr_local_hive_stop(h, timeout_ms);
out:
    if (logfd >= 0)
        close(logfd);
    return rc;
}

void kpr_local_hive_stop(kpr_local_hive *h, int timeout_ms)
{
    int64_t end = rb_now_ms() + timeout_ms;
    int st, gone = 0;

    if (h->pid > 0) {
        kill(h->pid, SIGTERM);
        while (!gone && rb_now_ms() < end) {
            gone = waitpid(h->pid, &st, WNOHANG) == h->pid;
            if (!gone)
                rb_sleep_ms(POLL_MS);
        }
        if (!gone) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, &st, 0);
        }
    }
    h->pid = 0;
}

/* ---- short programs ---------------------------------------------------------------------- */

static void exec_program(char *const argv[], int in_fd, int out_fd)
{
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    close_range(3, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Reads the child's output until EOF or the deadline. 1 at EOF. */
static int collect(int fd, int64_t end, rb_buf *out)
{
    char buf[4096];
    int eof = 0;

    while (!eof && rb_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = end - rb_now_ms();
        int r = poll(&p, 1, (int)(left > POLL_MS ? POLL_MS : left > 0 ? left : 0));
        if (r > 0) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n > 0 && out->len + (size_t)n <= out->max)
                rb_buf_append(out, buf, (size_t)n);
            eof = n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN);
        }
    }
    return eof;
}

/* Reaps pid before end, else kills it. The exit status, or -1 when it had to be killed. */
static int reap(pid_t pid, int64_t end)
{
    int st = 0, status = -1;
    pid_t r = 0;

    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && rb_now_ms() < end)
        rb_sleep_ms(POLL_MS / 5);
    if (r == pid)
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    else {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    return status;
}

rb_err kpr_run_program(char *const argv[], const char *stdin_text, int timeout_ms, rb_buf *out,
                       int *status, char *err, size_t errlen)
{
    int in[2] = {-1, -1}, o[2] = {-1, -1};
    int64_t end = rb_now_ms() + timeout_ms;
    pid_t pid = -1;
    rb_err rc = RB_OK;

    *status = -1;
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(o, O_CLOEXEC) != 0) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot create pipes: %s", strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid == 0)
        exec_program(argv, in[0], o[1]);
    if (pid < 0) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot start %s: %s", argv[0], strerror(errno));
        goto out;
    }
    close(in[0]);
    close(o[1]);
    in[0] = o[1] = -1;
    /* Small texts (a token) fit the pipe's buffer: this write does not block. */
    if (stdin_text && write(in[1], stdin_text, strlen(stdin_text)) < 0)
        rb_errf(err, errlen, RB_EIO, "cannot write to %s", argv[0]);
    close(in[1]);
    in[1] = -1;
    collect(o[0], end, out);
    *status = reap(pid, end);
    if (*status < 0)
        rc = rb_errf(err, errlen, RB_ETIMEDOUT, "%s did not finish within %d s", argv[0],
                     timeout_ms / 1000);
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (o[i] >= 0)
            close(o[i]);
    }
    return rc;
}

void kpr_last_line(const char *text, char *out, size_t len)
{
    const char *end = text + strlen(text), *start;

    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    start = end;
    while (start > text && start[-1] != '\n')
        start--;
    snprintf(out, len, "%.*s", (int)(end - start), start);
}

rb_err kpr_ssh_run(const kpr_node *n, const char *command, const char *stdin_text, int timeout_ms,
                   rb_buf *out, int *status, char *err, size_t errlen)
{
    const char *env = getenv("RBEE_SSH");
    char words[1024], port[16], connect[64];
    char *argv[MAX_SSH_WORDS + 16];
    int k = 0;

    snprintf(words, sizeof words, "%s", env && *env ? env : "ssh");
    for (char *save = NULL, *w = strtok_r(words, " ", &save); w && k < MAX_SSH_WORDS;
         w = strtok_r(NULL, " ", &save))
        argv[k++] = w;
    snprintf(port, sizeof port, "%d", n->ssh_port);
    snprintf(connect, sizeof connect, "ConnectTimeout=%d", SSH_CONNECT_TIMEOUT_S);
    argv[k++] = "-o";
    argv[k++] = "BatchMode=yes";
    argv[k++] = "-o";
    argv[k++] = connect;
    argv[k++] = "-p";
    argv[k++] = port;
    if (n->ssh_user[0]) {
        argv[k++] = "-l";
        argv[k++] = (char *)n->ssh_user;
    }
    argv[k++] = (char *)n->ssh_host;
    argv[k++] = (char *)command;
    argv[k] = NULL;
    return kpr_run_program(argv, stdin_text, timeout_ms, out, status, err, errlen);
}
