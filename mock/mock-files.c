/*
 * mock-files - a small file server that imitates the Hugging Face hub for download tests:
 * Range requests, a repo listing, and scripted faults.
 *
 *     mock-files --root DIR --port P [--scenario FILE]
 *
 *     GET|HEAD /<org>/<repo>/resolve/main/<file>   DIR/<org>/<repo>/<file>, with Range support
 *                                                  and X-Linked-Etag: "<sha256 of the file>"
 *     GET /api/models/<org>/<repo>                 {"id":"org/repo","siblings":[{"rfilename"}]}
 *     GET /<path>                                  DIR/<path>
 *     GET /mock/requests                           what was asked:
 *         {"requests":[{"method","path","range","status","bytes_sent"}]}
 *
 * The scenario (a JSON object, every field optional) slows and breaks the transfers:
 *     {"rate_bytes_per_s": 3145728,            body bytes per second (0: as fast as possible)
 *      "etag": true,                           send X-Linked-Etag
 *      "faults": [{"path": "/org/repo/resolve/main/model.gguf" or "*",
 *                  "drop_after_bytes": 1048576, (close the connection after that many bytes)
 *                  "status": 500,              (answer this status instead)
 *                  "wrong_etag": true,         (announce a checksum that does not match)
 *                  "times": 1}]}               (requests it applies to; -1: all)
 * The first fault whose path matches and whose times are not used up applies.
 * It prints "listening on port N" once it serves, and stops on SIGTERM/SIGINT.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rb_args.h"
#include "rb_json.h"
#include "rb_util.h"

#define MAX_FAULTS 16
#define MAX_RECORDS 1024
#define BLOCK 16384

typedef struct fault {
    char path[512];
    long long drop_after; /* -1: no drop */
    int status;           /* 0: no scripted status */
    int wrong_etag;
    int times; /* -1: always */
} fault;

typedef struct record {
    char method[8];
    char path[512];
    char range[64];
    int status;
    long long bytes_sent;
} record;

typedef struct server {
    const char *root;
    long long rate; /* bytes per second, 0: unlimited */
    int etag;
    pthread_mutex_t mu;
    fault faults[MAX_FAULTS];
    int nfaults;
    record records[MAX_RECORDS];
    int nrecords;
} server;

typedef struct body {
    server *s;
    int fd;
    long long start, len, sent, drop_after;
    int rec; /* index into records, -1 when full */
} body;

static void pause_ns(long long ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    while (ns > 0 && nanosleep(&ts, &ts) != 0)
        ;
}

static int load_scenario(server *s, const char *file)
{
    json_error_t je;
    json_t *j = json_load_file(file, 0, &je), *f, *faults = json_object_get(j, "faults");
    size_t i;
    int ok = json_is_object(j);

    if (!ok) {
        fprintf(stderr, "mock-files: cannot read scenario '%s': %s\n", file, je.text);
        goto out;
    }
    s->rate = json_integer_value(json_object_get(j, "rate_bytes_per_s"));
    if (json_is_boolean(json_object_get(j, "etag")))
        s->etag = json_is_true(json_object_get(j, "etag"));
    for (i = 0; i < json_array_size(faults) && s->nfaults < MAX_FAULTS; i++) {
        fault *x = &s->faults[s->nfaults];
        json_t *v;
        f = json_array_get(faults, i);
        v = json_object_get(f, "path");
        snprintf(x->path, sizeof x->path, "%s", json_is_string(v) ? json_string_value(v) : "*");
        x->drop_after = (v = json_object_get(f, "drop_after_bytes")) ? json_integer_value(v) : -1;
        x->status = (int)json_integer_value(json_object_get(f, "status"));
        x->wrong_etag = json_is_true(json_object_get(f, "wrong_etag"));
        x->times = (v = json_object_get(f, "times")) ? (int)json_integer_value(v) : -1;
        s->nfaults++;
    }
out:
    json_decref(j);
    return ok;
}

/* The fault for url (copied into out), its use counted; 0 when none applies. */
static int take_fault(server *s, const char *url, fault *out)
{
    int found = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nfaults && !found; i++) {
        fault *f = &s->faults[i];
        if (f->times == 0 || (strcmp(f->path, "*") != 0 && strcmp(f->path, url) != 0))
            continue;
        if (f->times > 0)
            f->times--;
        *out = *f;
        found = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static int add_record(server *s, const char *method, const char *url, const char *range)
{
    int i = -1;
    pthread_mutex_lock(&s->mu);
    if (s->nrecords < MAX_RECORDS) {
        i = s->nrecords++;
        snprintf(s->records[i].method, sizeof s->records[i].method, "%s", method);
        snprintf(s->records[i].path, sizeof s->records[i].path, "%s", url);
        snprintf(s->records[i].range, sizeof s->records[i].range, "%s", range ? range : "");
    }
    pthread_mutex_unlock(&s->mu);
    return i;
}

static void set_record(server *s, int i, int status, long long sent)
{
    if (i < 0)
        return;
    pthread_mutex_lock(&s->mu);
    if (status)
        s->records[i].status = status;
    s->records[i].bytes_sent = sent;
    pthread_mutex_unlock(&s->mu);
}

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    body *b = cls;
    long long want = b->len - (long long)pos;
    ssize_t n = MHD_CONTENT_READER_END_WITH_ERROR; /* also: the scripted broken connection */

    if (b->drop_after >= 0 && (long long)pos >= b->drop_after)
        goto out;
    if (want > (long long)max)
        want = (long long)max;
    if (want > BLOCK)
        want = BLOCK;
    if (b->drop_after >= 0 && (long long)pos + want > b->drop_after)
        want = b->drop_after - (long long)pos;
    if (want <= 0) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
        goto out;
    }
    if (b->s->rate > 0)
        pause_ns(want * 1000000000LL / b->s->rate);
    n = pread(b->fd, buf, (size_t)want, (off_t)(b->start + (long long)pos));
    if (n <= 0) {
        n = MHD_CONTENT_READER_END_WITH_ERROR;
        goto out;
    }
    b->sent = (long long)pos + n;
    set_record(b->s, b->rec, 0, b->sent);
out:
    return n;
}

static void free_body(void *cls)
{
    body *b = cls;
    close(b->fd);
    free(b);
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *j)
{
    char *text = rb_json_dump(j);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ok;
    MHD_add_response_header(r, "Content-Type", "application/json");
    ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    json_decref(j);
    return ok;
}

static enum MHD_Result send_status(struct MHD_Connection *c, int status)
{
    return send_json(
        c, status,
        json_pack("{s:{s:s, s:s}}", "error", "code", "MOCK", "message", "scripted or not found"));
}

/* Maps a URL to a file below root; 0 for a path with "..". */
static int map_path(const server *s, const char *url, char *out, size_t outlen)
{
    char org[256], repo[256];
    int n = 0, ok = !strstr(url, "..");

    if (ok && sscanf(url, "/%255[^/]/%255[^/]/resolve/main/%n", org, repo, &n) == 2 && n > 0)
        snprintf(out, outlen, "%s/%s/%s/%s", s->root, org, repo, url + n);
    else if (ok)
        snprintf(out, outlen, "%s%s", s->root, url);
    return ok;
}

static void file_etag(const char *path, int wrong, char *out, size_t outlen)
{
    char *data;
    size_t n;
    uint8_t d[32];
    char hex[65];

    out[0] = '\0';
    if (rb_read_file(path, (size_t)1 << 31, &data, &n) == RB_OK) {
        rb_sha256(data, n, d);
        free(data);
        if (wrong)
            d[0] ^= 0xff;
        rb_hex(d, sizeof d, hex);
        snprintf(out, outlen, "\"%s\"", hex);
    }
}

/* Parses "bytes=a-" or "bytes=a-b" against size; 0 when absent or unusable. */
static int parse_range(const char *h, long long size, long long *a, long long *b)
{
    int got = h ? sscanf(h, "bytes=%lld-%lld", a, b) : 0;

    if (got == 1 || (got == 2 && *b >= size))
        *b = size - 1;
    return got >= 1;
}

static enum MHD_Result send_unsatisfiable(struct MHD_Connection *c, long long size)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    char cr[64];
    enum MHD_Result ok;

    snprintf(cr, sizeof cr, "bytes */%lld", size);
    MHD_add_response_header(r, "Content-Range", cr);
    ok = MHD_queue_response(c, 416, r);
    MHD_destroy_response(r);
    return ok;
}

/* Queues the body of an open file (fd is handed to the response), ranged to [a, z]. */
static enum MHD_Result send_body(server *s, struct MHD_Connection *c, const char *method,
                                 const char *url, const char *path, int fd, int status, long long a,
                                 long long z, long long size, int rec, const fault *f)
{
    body *b = calloc(1, sizeof(*b));
    struct MHD_Response *r;
    char cr[96], etag[80];
    enum MHD_Result ok;

    b->s = s;
    b->fd = fd;
    b->start = a;
    b->len = strcmp(method, "HEAD") == 0 ? 0 : z - a + 1;
    b->drop_after = f ? f->drop_after : -1;
    b->rec = rec;
    set_record(s, rec, status, 0);
    r = MHD_create_response_from_callback((uint64_t)(z - a + 1), BLOCK, read_body, b, free_body);
    if (status == 206) {
        snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", a, z, size);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    if (s->etag && strstr(url, "/resolve/main/")) {
        file_etag(path, f && f->wrong_etag, etag, sizeof etag);
        if (etag[0])
            MHD_add_response_header(r, "X-Linked-Etag", etag);
    }
    ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result serve_file(server *s, struct MHD_Connection *c, const char *method,
                                  const char *url, int rec, const fault *f)
{
    char path[4096];
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    struct stat st;
    long long a = 0, z = 0, size = 0;
    int fd = map_path(s, url, path, sizeof path) ? open(path, O_RDONLY) : -1, ranged = 0;
    enum MHD_Result ok;

    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        size = (long long)st.st_size;
        z = size - 1;
        ranged = parse_range(range, size, &a, &z);
    }
    if (fd < 0) {
        set_record(s, rec, 404, 0);
        ok = send_status(c, 404);
    } else if (ranged && a >= size) {
        close(fd);
        set_record(s, rec, 416, 0);
        ok = send_unsatisfiable(c, size);
    } else {
        ok = send_body(s, c, method, url, path, fd, ranged ? 206 : 200, a, z, size, rec, f);
    }
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum MHD_Result serve_listing(server *s, struct MHD_Connection *c, const char *url)
{
    char org[256], repo[256], dir[4096];
    char *names[1024];
    int n = 0;
    struct dirent *e;
    DIR *d = NULL;
    json_t *sib = json_array();
    enum MHD_Result ok;

    if (sscanf(url, "/api/models/%255[^/]/%255[^/]", org, repo) == 2 && !strstr(url, "..")) {
        snprintf(dir, sizeof dir, "%s/%s/%s", s->root, org, repo);
        d = opendir(dir);
    }
    if (!d) {
        json_decref(sib);
        ok = send_status(c, 404);
        goto out;
    }
    while ((e = readdir(d)) && n < 1024)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        json_array_append_new(sib, json_pack("{s:s}", "rfilename", names[i]));
        free(names[i]);
    }
    ok = send_json(c, 200, json_pack("{s:s+++, s:o}", "id", org, "/", repo, "", "siblings", sib));
out:
    return ok;
}

static enum MHD_Result serve_records(server *s, struct MHD_Connection *c)
{
    json_t *list = json_array();
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nrecords; i++) {
        record *r = &s->records[i];
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:i, s:I}", "method", r->method,
                                              "path", r->path, "range", r->range, "status",
                                              r->status, "bytes_sent", (json_int_t)r->bytes_sent));
    }
    pthread_mutex_unlock(&s->mu);
    return send_json(c, 200, json_pack("{s:o}", "requests", list));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    server *s = cls;
    fault f;
    int rec, has_fault;
    enum MHD_Result ok = MHD_YES;

    (void)version, (void)upload, (void)upload_size;
    if (!*con_cls) { /* headers only; answer on the second call */
        *con_cls = s;
        goto out;
    }
    if (strcmp(url, "/mock/requests") == 0) {
        ok = serve_records(s, c);
        goto out;
    }
    rec = add_record(s, method, url, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range"));
    has_fault = take_fault(s, url, &f);
    if (has_fault && f.status) {
        set_record(s, rec, f.status, 0);
        ok = send_status(c, f.status);
    } else if (strncmp(url, "/api/models/", 12) == 0) {
        set_record(s, rec, 200, 0);
        ok = serve_listing(s, c, url);
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        ok = send_status(c, 405);
    } else {
        ok = serve_file(s, c, method, url, rec, has_fault ? &f : NULL);
    }
out:
    return ok;
}

int main(int argc, char **argv)
{
    static server s;
    struct sockaddr_in sa = {0};
    struct MHD_Daemon *d;
    sigset_t set;
    int sig, port = 0, rc = 2;

    pthread_mutex_init(&s.mu, NULL);
    s.etag = 1;
    {
        const char *scenario = NULL;
        char err[256];
        const rb_opt opts[] = {
            {"--root", RB_OPT_STR, &s.root, .what = "DIR", .help = "the files served (required)"},
            {"--port", RB_OPT_INT, &port, 1, 65535, .help = "HTTP port (required)"},
            {"--scenario", RB_OPT_STR, &scenario, .what = "FILE",
             .help = "faults, delays and headers to play"},
        };
        const rb_cmd cmd = {
            "mock-files", NULL, "A stand-in for the Hugging Face hub.", opts, RB_ARRAY_LEN(opts),
            NULL,         1};
        int shown = 0;

        if (rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, &shown, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            goto out;
        }
        if (shown) {
            rc = 0;
            goto out;
        }
        if (!s.root || !port) {
            fprintf(stderr, "mock-files: --root and --port are required\n");
            goto out;
        }
        if (scenario && !load_scenario(&s, scenario))
            goto out;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_POLL,
                         (uint16_t)port, NULL, NULL, on_request, &s, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mock-files: cannot listen on port %d\n", port);
        rc = 1;
        goto out;
    }
    printf("listening on port %d\n", port);
    fflush(stdout);
    sigdelset(&set, SIGPIPE);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    rc = 0;
out:
    return rc;
}
