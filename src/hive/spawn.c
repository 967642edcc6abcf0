/*
 * spawn.c - starting workers.
 *
 * DESIGN
 * One spawner thread, fed one request at a time through a mutex and condition variable, does
 * every fork of the hive. Serialising spawns makes the port choice race-free (a port is tested
 * by binding it, and ports of registered workers are skipped), and a long-lived forking thread
 * is what PR_SET_PDEATHSIG needs: the signal fires when the forking *thread* exits, so forking
 * from a short-lived HTTP connection thread would kill the worker as soon as the request ended.
 *
 * The child gets its own process group (a Ctrl+C meant for the hive reaches the workers only
 * through the hive's orderly shutdown), an empty signal mask (the hive blocks SIGTERM for its
 * sigwait loop and masks are inherited across exec), SIGXFSZ at its default (the hive ignores
 * it, and an ignored signal stays ignored across exec), stdin from /dev/null, stdout and stderr
 * appended to $RBEE_HOME/logs/<id>.log, and no other descriptor. Between fork and exec it only
 * makes async-signal-safe calls.
 *
 * The child is registered as "starting" right after fork, so its first heartbeat finds it.
 * The spawner then watches it for HIVE_START_WATCH_MS through its pidfd, without reaping. A
 * child that dies in that window is discarded (reaped through the registry) and the answer
 * quotes its log tail; if the log says the port was taken, the next port is tried (§3). A
 * child that survives is handed to the monitor, which reaps it whenever it exits.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hive_monitor.h"
#include "hive_spawn.h"
#include "rb_sock.h"
#include "rb_log.h"
#include "rb_util.h"

#define PORT_TRIES 16        /* workers started before giving up on "address in use" */
#define TAIL_LINES 8         /* log lines quoted in a start failure */
#define TAIL_READ_BYTES 4096 /* bytes read from the end of a log for its tail */
#define FALLBACK_POLL_MS 5   /* start watch without a pidfd: waitpid every 5 ms */
#define PORT_IN_USE_TEXT "Address already in use"
#define LOGS_KEPT 20 /* worker logs kept besides those of registered workers */

struct hive_spawner {
    hive *h;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const hive_spawn_req *req; /* the request being served; NULL when the slot is free */
    hive_worker *out;
    char *err;
    size_t errlen;
    rb_err rc;
    int done; /* the request in the slot has been answered */
    int stopping;
};

typedef struct spawn_args {
    char port[16], device[16], heartbeat[16], slots[16], threads[16], ctx[16], kv_type[16];
    char *argv[32];
} spawn_args;

rb_err hive_worker_log_path(const hive *h, const char *id, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/%s.log", h->logs_dir, id);
    return n < 0 || (size_t)n >= outlen ? RB_ETOOBIG : RB_OK;
}

void hive_log_tail(const char *path, int max_lines, char *out, size_t outlen)
{
    char buf[TAIL_READ_BYTES + 1];
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    char *start;
    int lines = 0;

    out[0] = '\0';
    if (!f)
        return;
    if (fseek(f, -(long)TAIL_READ_BYTES, SEEK_END) != 0)
        rewind(f);
    n = fread(buf, 1, TAIL_READ_BYTES, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    start = buf + n;
    while (start > buf && lines < max_lines) {
        start--;
        if (*start == '\n' && ++lines == max_lines) {
            start++;
            break;
        }
    }
    {
        /* the lines joined by " | "; when that does not fit, its end is kept (the newest line
         * is the one that says why), cut at a character boundary after "..." */
        char joined[TAIL_READ_BYTES * 3 + 1];
        size_t o = 0, skip = 0;

        for (; *start; start++) {
            if (*start == '\r')
                continue;
            if (*start == '\n') {
                memcpy(joined + o, " | ", 3);
                o += 3;
            } else {
                joined[o++] = *start;
            }
        }
        joined[o] = '\0';
        if (outlen < 8)
            return;
        if (o + 1 > outlen) {
            skip = o - (outlen - 4);
            while (skip < o && ((unsigned char)joined[skip] & 0xC0) == 0x80)
                skip++;
            snprintf(out, outlen, "...%s", joined + skip);
        } else {
            memcpy(out, joined, o + 1);
        }
    }
}

/* First port >= from that no worker holds and that binds; -1 when none. */
static int pick_port(hive *h, int from)
{
    const char *addr = h->cfg.local_mode ? "127.0.0.1" : "0.0.0.0";
    int found = -1;
    for (int p = from; p <= 65535 && found < 0; p++)
        if (!hive_registry_port_taken(h->reg, p) && rb_port_probe(addr, p, 1) == p)
            found = p;
    return found;
}

static void build_args(const hive *h, const hive_spawn_req *req, const char *id, int port,
                       spawn_args *a)
{
    int i = 0;
    int hb_s = (h->cfg.heartbeat_interval_ms + 999) / 1000;

    snprintf(a->port, sizeof a->port, "%d", port);
    snprintf(a->device, sizeof a->device, "%d", req->device);
    snprintf(a->heartbeat, sizeof a->heartbeat, "%d", hb_s > 0 ? hb_s : 1);
    a->argv[i++] = (char *)h->worker_binary;
    a->argv[i++] = "--worker-id";
    a->argv[i++] = (char *)id;
    a->argv[i++] = "--model";
    a->argv[i++] = (char *)req->model_path;
    a->argv[i++] = "--model-ref";
    a->argv[i++] = (char *)req->model_ref;
    a->argv[i++] = "--backend";
    a->argv[i++] = (char *)req->backend;
    a->argv[i++] = "--device";
    a->argv[i++] = a->device;
    a->argv[i++] = "--port";
    a->argv[i++] = a->port;
    a->argv[i++] = "--hive-url";
    a->argv[i++] = (char *)h->hive_url;
    a->argv[i++] = "--heartbeat-interval";
    a->argv[i++] = a->heartbeat;
    /* the operator's --worker-slots, --worker-threads, --worker-ctx and --worker-kv-type,
     * when given */
    if (h->cfg.worker_slots > 0) {
        snprintf(a->slots, sizeof a->slots, "%d", h->cfg.worker_slots);
        a->argv[i++] = "--slots";
        a->argv[i++] = a->slots;
    }
    if (h->cfg.worker_threads > 0) {
        snprintf(a->threads, sizeof a->threads, "%d", h->cfg.worker_threads);
        a->argv[i++] = "--threads";
        a->argv[i++] = a->threads;
    }
    if (h->cfg.worker_ctx >= 0) {
        snprintf(a->ctx, sizeof a->ctx, "%d", h->cfg.worker_ctx);
        a->argv[i++] = "--ctx";
        a->argv[i++] = a->ctx;
    }
    if (h->cfg.worker_kv_type) {
        snprintf(a->kv_type, sizeof a->kv_type, "%s", h->cfg.worker_kv_type);
        a->argv[i++] = "--kv-type";
        a->argv[i++] = a->kv_type;
    }
    if (req->advertise_host[0]) {
        a->argv[i++] = "--advertise-host";
        a->argv[i++] = (char *)req->advertise_host;
    }
    if (h->cfg.local_mode)
        a->argv[i++] = "--local-mode";
    a->argv[i] = NULL;
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void child_exec(int logfd, int nullfd, pid_t parent, char *const argv[])
{
    static const char msg[] = "rbee-hive: cannot execute the worker binary\n";
    sigset_t none;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127); /* the hive died before prctl took effect */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGXFSZ, SIG_DFL);
    dup2(nullfd, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    close_range(3, ~0U, 0);
    execv(argv[0], argv);
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(127);
    _exit(127);
}

/* Forks and execs the worker; *pidfd is -1 when the kernel offers none. */
static rb_err start_child(hive *h, const hive_spawn_req *req, const char *id, int port,
                          const char *log_path, pid_t *pid, int *pidfd, char *err, size_t errlen)
{
    spawn_args a;
    pid_t parent = getpid();
    int logfd = -1, nullfd = -1;
    rb_err rc = RB_OK;

    build_args(h, req, id, port, &a);
    logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot open worker log '%s': %s", log_path,
                     strerror(errno));
        goto out;
    }
    *pid = fork();
    if (*pid < 0) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot fork a worker: %s", strerror(errno));
        goto out;
    }
    if (*pid == 0)
        child_exec(logfd, nullfd, parent, a.argv);
    *pidfd = pidfd_open(*pid, 0);
out:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    return rc;
}

/* Watches a new child for HIVE_START_WATCH_MS without reaping it. 1 if it exited. */
static int exited_at_once(pid_t pid, int pidfd)
{
    int64_t deadline = rb_now_ms() + HIVE_START_WATCH_MS;
    int64_t left;
    int exited = 0, n = -1;
    siginfo_t si;

    while (!exited && n != 0 && (left = deadline - rb_now_ms()) > 0) {
        if (pidfd >= 0) {
            struct pollfd p = {.fd = pidfd, .events = POLLIN};
            n = poll(&p, 1, (int)left); /* -1: EINTR, wait again */
            exited = n > 0;
            continue;
        }
        memset(&si, 0, sizeof si);
        exited =
            waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
        if (!exited)
            rb_sleep_ms(FALLBACK_POLL_MS);
    }
    return exited;
}

void hive_describe_status(int status, char *out, size_t outlen)
{
    if (WIFEXITED(status))
        snprintf(out, outlen, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "signal %d", WTERMSIG(status));
    else
        snprintf(out, outlen, "status %d", status);
}

static void fill_worker(hive_worker *w, const hive_spawn_req *req, const char *id, int port,
                        pid_t pid)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->url, sizeof w->url, "http://%s:%d",
             req->advertise_host[0] ? req->advertise_host : "127.0.0.1", port);
    snprintf(w->model_ref, sizeof w->model_ref, "%s", req->model_ref);
    snprintf(w->backend, sizeof w->backend, "%s", req->backend);
    w->device = req->device;
    w->pid = pid;
    w->port = port;
    w->state = HIVE_W_LOADING;
    w->started_ms = w->last_heartbeat_ms = w->last_activity_ms = rb_now_ms();
}

/* Forks a worker on port and registers it as starting; *w describes it. *pidfd stays owned
 * by the registry (and open while the worker is starting). */
static rb_err start_worker(hive *h, const hive_spawn_req *req, const char *id, int port,
                           const char *log_path, hive_worker *w, int *pidfd, char *err,
                           size_t errlen)
{
    pid_t pid = -1;
    rb_err rc = start_child(h, req, id, port, log_path, &pid, pidfd, err, errlen);

    if (rc)
        goto out;
    fill_worker(w, req, id, port, pid);
    if ((rc = hive_registry_add(h->reg, w, *pidfd))) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (*pidfd >= 0)
            close(*pidfd);
        rc = rb_errf(err, errlen, rc, "too many workers (at most %d)", HIVE_MAX_WORKERS);
    }
out:
    return rc;
}

typedef struct log_file {
    char name[256];
    time_t mtime;
} log_file;

static int newest_first(const void *a, const void *b)
{
    const log_file *x = a, *y = b;
    return (y->mtime > x->mtime) - (y->mtime < x->mtime);
}

/* Deletes the worker logs beyond the LOGS_KEPT newest, sparing those of registered workers
 * (their logs are read when they fail). Runs after each spawn, so logs/ stays bounded. */
static void prune_logs(hive *h)
{
    DIR *d = opendir(h->logs_dir);
    log_file *files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        struct stat st;
        char path[HIVE_PATH_MAX + 256];
        if (strncmp(e->d_name, "worker-", 7) != 0 || len < 5 || len >= sizeof files->name ||
            strcmp(e->d_name + len - 4, ".log") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", h->logs_dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            log_file *more = realloc(files, (cap = cap ? cap * 2 : 64) * sizeof *files);
            if (!more)
                break;
            files = more;
        }
        snprintf(files[n].name, sizeof files[n].name, "%s", e->d_name);
        files[n++].mtime = st.st_mtime;
    }
    if (d)
        closedir(d);
    qsort(files, n, sizeof *files, newest_first);
    for (size_t i = LOGS_KEPT; i < n; i++) {
        char id[HIVE_WORKER_ID_MAX], path[HIVE_PATH_MAX + 256];
        hive_worker w;
        snprintf(id, sizeof id, "%.*s", (int)(strlen(files[i].name) - 4), files[i].name);
        if (hive_registry_get(h->reg, id, &w) == RB_OK)
            continue;
        snprintf(path, sizeof path, "%s/%s", h->logs_dir, files[i].name);
        if (unlink(path) == 0)
            rb_log(RB_LOG_DEBUG, "spawn", "removed old worker log %s", files[i].name);
    }
    free(files);
}

/* One spawn, on the spawner thread. */
static rb_err spawn_one(hive *h, const hive_spawn_req *req, hive_worker *out, char *err,
                        size_t errlen)
{
    char id[HIVE_WORKER_ID_MAX], uuid[37], log_path[HIVE_PATH_MAX], tail[1024], st[32];
    int from = h->cfg.worker_port_base, port = -1, pidfd = -1, status = 0;
    rb_err rc = RB_OK;

    rb_uuid(uuid);
    snprintf(id, sizeof id, "worker-%s", uuid);
    if ((rc = hive_worker_log_path(h, id, log_path, sizeof log_path)))
        goto out;
    for (int tries = 0;; tries++) {
        if (tries == PORT_TRIES || (port = pick_port(h, from)) < 0) {
            rc = rb_errf(err, errlen, RB_EBUSY, "no free port for a worker at or above %d",
                         h->cfg.worker_port_base);
            goto out;
        }
        if ((rc = start_worker(h, req, id, port, log_path, out, &pidfd, err, errlen)))
            goto out;
        if (!exited_at_once(out->pid, pidfd))
            break;
        hive_registry_discard(h->reg, id, &status);
        hive_log_tail(log_path, TAIL_LINES, tail, sizeof tail);
        if (strstr(tail, PORT_IN_USE_TEXT)) {
            rb_log(RB_LOG_INFO, "spawn", "port %d was taken; trying the next one", port);
            from = port + 1;
            continue;
        }
        hive_describe_status(status, st, sizeof st);
        rc = rb_errf(err, errlen, RB_EIO, "worker exited at once (%s): %s", st,
                     tail[0] ? tail : "(no output)");
        goto out;
    }
    hive_registry_started(h->reg, id);
    rb_log(RB_LOG_INFO, "spawn", "worker %s started: pid %d, port %d, model %s, log %s", id,
           (int)out->pid, port, req->model_ref, log_path);
    prune_logs(h);
    hive_monitor_wake(h->mon);
out:
    return rc;
}

static void *spawner_main(void *arg)
{
    hive_spawner *sp = arg;

    rb_thread_set_name("hive-spawner");
    pthread_mutex_lock(&sp->mu);
    for (;;) {
        while (!sp->stopping && (!sp->req || sp->done))
            pthread_cond_wait(&sp->cv, &sp->mu);
        if (sp->stopping)
            break;
        const hive_spawn_req *req = sp->req;
        pthread_mutex_unlock(&sp->mu);
        rb_err rc = spawn_one(sp->h, req, sp->out, sp->err, sp->errlen);
        pthread_mutex_lock(&sp->mu);
        sp->rc = rc;
        sp->done = 1;
        pthread_cond_broadcast(&sp->cv);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

rb_err hive_spawner_start(hive *h, hive_spawner **out)
{
    hive_spawner *sp = calloc(1, sizeof(*sp));
    rb_err rc = RB_OK;

    if (!sp) {
        rc = RB_ENOMEM;
        goto out;
    }
    sp->h = h;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->cv, NULL);
    if (pthread_create(&sp->thread, NULL, spawner_main, sp) != 0) {
        pthread_cond_destroy(&sp->cv);
        pthread_mutex_destroy(&sp->mu);
        free(sp);
        sp = NULL;
        rc = RB_ENOMEM;
    }
out:
    *out = sp;
    return rc;
}

void hive_spawner_stop(hive_spawner *sp)
{
    if (!sp)
        return;
    pthread_mutex_lock(&sp->mu);
    while (sp->req && !sp->done)
        pthread_cond_wait(&sp->cv, &sp->mu); /* let the running spawn finish */
    sp->stopping = 1;
    pthread_cond_broadcast(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
    pthread_join(sp->thread, NULL);
    pthread_cond_destroy(&sp->cv);
    pthread_mutex_destroy(&sp->mu);
    free(sp);
}

rb_err hive_spawner_run(hive_spawner *sp, const hive_spawn_req *req, hive_worker *out, char *err,
                        size_t errlen)
{
    rb_err rc;

    pthread_mutex_lock(&sp->mu);
    while (!sp->stopping && sp->req)
        pthread_cond_wait(&sp->cv, &sp->mu); /* another caller holds the slot */
    if (sp->stopping) {
        rc = rb_errf(err, errlen, RB_ECANCELED, "the hive is shutting down");
        goto out;
    }
    sp->req = req;
    sp->out = out;
    sp->err = err;
    sp->errlen = errlen;
    sp->done = 0;
    pthread_cond_broadcast(&sp->cv);
    while (!sp->done)
        pthread_cond_wait(&sp->cv, &sp->mu);
    rc = sp->rc;
    sp->req = NULL;
    pthread_cond_broadcast(&sp->cv); /* the slot is free */
out:
    pthread_mutex_unlock(&sp->mu);
    return rc;
}
