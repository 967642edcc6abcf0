/*
 * fetch.c - one model file transfer: resume with Range, retries with backoff, size, magic and
 * checksum checks, atomic rename.
 *
 * DESIGN
 * The transfer writes to "<dest>.part" through libcurl's easy interface. Each attempt starts
 * from the bytes already on disk, asking for the rest with a Range header; the header callback
 * reads the status line, Content-Length, Content-Range and the ETag of every response (redirects
 * included), and the body callback decides once per response whether its body belongs in the
 * file: a 206 for the asked offset appends, a 200 replaces (the server ignored the range), an
 * error status is discarded. An attempt's outcome is classified as done, retry (network error,
 * short body, 408/429/5xx) or fatal (any other status, a disk error), and retries pause for a
 * doubling backoff that a cancel interrupts. Nothing named dest exists until every check passed.
 * A cancelled run (the hive stopping) or one whose retries ran out keeps the .part, and the next
 * run resumes it; any other failure removes it.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hive_fetch.h"
#include "rb_log.h"
#include "rb_util.h"

#define CONNECT_TIMEOUT_MS 10000
#define STALL_TIMEOUT_S 30
#define CANCEL_POLL_MS 50 /* granularity of a cancellable backoff pause */
#define HASH_CHUNK (1 << 20)

typedef enum attempt_result { ATT_OK, ATT_RETRY, ATT_FATAL, ATT_CANCEL } attempt_result;

typedef struct xfer {
    const hive_fetch *f;
    FILE *fp;
    int64_t offset;  /* bytes on disk when the attempt began */
    int64_t written; /* body bytes written by this attempt */
    int64_t total;   /* full size once announced, else -1 (kept across attempts) */
    char sha[65];    /* expected SHA-256 from an ETag (kept across attempts) */
    /* per response, reset at each status line */
    long status;
    int64_t content_length, range_start, range_total;
    int began;   /* the body callback has judged this response */
    int body_ok; /* its body goes to the file */
    rb_err werr;
    int64_t start_ms, last_report_ms, run_bytes;
} xfer;

hive_fetch hive_fetch_default(void)
{
    hive_fetch f = {0};
    const char *b = getenv("RBEE_DOWNLOAD_BACKOFF_MS");
    int64_t v;

    f.attempts = HIVE_FETCH_ATTEMPTS;
    f.backoff_ms = b && rb_parse_i64(b, 0, 600000, &v) == RB_OK ? (long)v : HIVE_FETCH_BACKOFF_MS;
    f.stall_timeout_s = STALL_TIMEOUT_S;
    return f;
}

static int cancelled(const hive_fetch *f)
{
    return f->cancel && atomic_load(f->cancel);
}

static void report(xfer *x, int force)
{
    int64_t now = rb_now_ms();
    double secs;

    if (!x->f->progress || (!force && now - x->last_report_ms < HIVE_FETCH_PROGRESS_MS))
        return;
    x->last_report_ms = now;
    secs = (double)(now - x->start_ms) / 1000.0;
    x->f->progress(x->f->user, x->offset + x->written, x->total,
                   secs > 0 ? (double)x->run_bytes / 1e6 / secs : 0.0);
}

/* Keeps a 64-hex-digit ETag value (quotes and W/ stripped) as the expected SHA-256. */
static void take_etag(xfer *x, const char *v)
{
    char hex[65];
    size_t n = 0;

    if (strncmp(v, "W/", 2) == 0)
        v += 2;
    if (*v == '"')
        v++;
    while (n < 64 && ((v[n] >= '0' && v[n] <= '9') || (v[n] >= 'a' && v[n] <= 'f') ||
                      (v[n] >= 'A' && v[n] <= 'F'))) {
        hex[n] = (char)(v[n] | 0x20);
        n++;
    }
    if (n == 64 && (v[64] == '"' || v[64] == '\0')) {
        hex[64] = '\0';
        memcpy(x->sha, hex, sizeof hex);
    }
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *user)
{
    xfer *x = user;
    size_t len = size * nmemb, n = len < 511 ? len : 511;
    char line[512];
    long long a, b, t;

    memcpy(line, p, n);
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = strchr(line, ' ');
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->content_length = x->range_start = x->range_total = -1;
        x->began = 0;
    } else if (strncasecmp(line, "Content-Length:", 15) == 0) {
        x->content_length = strtoll(line + 15, NULL, 10);
    } else if (strncasecmp(line, "Content-Range:", 14) == 0) {
        if (sscanf(line + 14, " bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
            x->range_start = a;
            x->range_total = t;
        } else if (sscanf(line + 14, " bytes */%lld", &t) == 1) {
            x->range_total = t;
        }
    } else if (strncasecmp(line, "X-Linked-Etag:", 14) == 0) {
        take_etag(x, line + 14 + strspn(line + 14, " "));
    } else if (strncasecmp(line, "ETag:", 5) == 0 && !x->sha[0]) {
        take_etag(x, line + 5 + strspn(line + 5, " "));
    }
    return len;
}

/* First body bytes of a response: decide where they go. */
static void begin_body(xfer *x)
{
    x->began = 1;
    x->body_ok = 0;
    if (x->status == 206 && x->range_start == x->offset) {
        x->body_ok = 1;
        if (x->range_total >= 0)
            x->total = x->range_total;
    } else if (x->status == 200) {
        x->body_ok = 1;
        if (x->offset > 0) { /* the range was ignored: start over */
            if (ftruncate(fileno(x->fp), 0) != 0)
                x->werr = RB_EIO;
            x->offset = 0;
        }
        if (x->content_length >= 0)
            x->total = x->content_length;
    }
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *user)
{
    xfer *x = user;
    size_t len = size * nmemb;

    if (!x->began)
        begin_body(x);
    if (!x->body_ok)
        goto out; /* an error page: not part of the file */
    if (x->werr || fwrite(p, 1, len, x->fp) != len) {
        x->werr = RB_EIO;
        len = 0; /* curl stops the transfer */
        goto out;
    }
    x->written += (int64_t)len;
    x->run_bytes += (int64_t)len;
    report(x, 0);
out:
    return len;
}

static int on_xfer(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    xfer *x = user;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return cancelled(x->f);
}

static void setup(CURL *c, xfer *x, struct curl_slist *h, char *range, char *cerr)
{
    curl_easy_setopt(c, CURLOPT_URL, x->f->url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, x->f->stall_timeout_s);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    if (x->offset > 0) {
        snprintf(range, 32, "%lld-", (long long)x->offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
}

/* Judges a finished attempt. */
static attempt_result judge(xfer *x, CURLcode cc, const char *cerr, char *err, size_t errlen)
{
    int64_t have = x->offset + x->written;
    attempt_result r;

    if (cancelled(x->f)) {
        r = ATT_CANCEL;
    } else if (x->werr) {
        rb_errf(err, errlen, RB_EIO, "cannot write the download: %s", strerror(errno));
        r = ATT_FATAL;
    } else if (cc != CURLE_OK) {
        rb_errf(err, errlen, RB_EIO, "transfer from %s failed after %lld bytes: %s", x->f->url,
                (long long)have, cerr[0] ? cerr : curl_easy_strerror(cc));
        r = ATT_RETRY;
    } else if ((x->status == 200 || x->status == 206) && x->body_ok) {
        r = x->total >= 0 && have < x->total ? ATT_RETRY : ATT_OK;
        if (r == ATT_RETRY)
            rb_errf(err, errlen, RB_EIO, "connection closed after %lld of %lld bytes",
                    (long long)have, (long long)x->total);
    } else if (x->status == 416 && x->offset > 0 && x->range_total == x->offset) {
        x->total = x->range_total; /* we already had every byte */
        r = ATT_OK;
    } else {
        if (x->status == 200 || x->status == 206)
            rb_errf(err, errlen, RB_EIO, "%s answered HTTP %ld with %s", x->f->url, x->status,
                    x->status == 200 ? "an empty body" : "a range that was not asked for");
        else
            rb_errf(err, errlen, RB_EIO, "%s answered HTTP %ld", x->f->url, x->status);
        if (x->status == 416 || x->status == 206) /* a range we did not ask for: start over */
            r = ftruncate(fileno(x->fp), 0) == 0 ? ATT_RETRY : ATT_FATAL;
        else
            r = x->status == 408 || x->status == 429 || x->status >= 500 ? ATT_RETRY : ATT_FATAL;
    }
    return r;
}

static attempt_result attempt(xfer *x, const char *part, char *err, size_t errlen)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char range[32], cerr[CURL_ERROR_SIZE] = "", auth[600];
    attempt_result r = ATT_FATAL;
    struct stat st;
    CURLcode cc;

    x->fp = fopen(part, "ab");
    if (!c || !x->fp) {
        rb_errf(err, errlen, RB_EIO, "cannot open '%s': %s", part, strerror(errno));
        goto out;
    }
    x->offset = fstat(fileno(x->fp), &st) == 0 ? (int64_t)st.st_size : 0;
    x->written = 0;
    x->werr = RB_OK;
    x->status = 0;
    x->began = 0;
    if (x->f->token && *x->f->token && strlen(x->f->token) < 500) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", x->f->token);
        h = curl_slist_append(h, auth);
    }
    setup(c, x, h, range, cerr);
    cc = curl_easy_perform(c);
    if (fflush(x->fp) != 0)
        x->werr = RB_EIO;
    r = judge(x, cc, cerr, err, errlen);
out:
    if (x->fp)
        fclose(x->fp);
    x->fp = NULL;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

/* Sleeps ms unless cancelled first; 1 when cancelled. */
static int pause_ms(const hive_fetch *f, long ms)
{
    int64_t end = rb_now_ms() + ms;
    while (!cancelled(f) && rb_now_ms() < end)
        rb_sleep_ms(CANCEL_POLL_MS);
    return cancelled(f);
}

static rb_err file_sha256(const char *path, char hex[65])
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf = malloc(HASH_CHUNK);
    rb_sha256_ctx c;
    uint8_t d[32];
    size_t n;
    rb_err rc = RB_OK;

    if (!fp || !buf) {
        rc = fp ? RB_ENOMEM : RB_EIO;
        goto out;
    }
    rb_sha256_init(&c);
    while ((n = fread(buf, 1, HASH_CHUNK, fp)) > 0)
        rb_sha256_update(&c, buf, n);
    if (ferror(fp))
        rc = RB_EIO;
    rb_sha256_final(&c, d);
    rb_hex(d, sizeof d, hex);
out:
    if (fp)
        fclose(fp);
    free(buf);
    return rc;
}

/* The announced SHA-256, when there is one; sets res->code on a mismatch. */
static rb_err check_sha(const xfer *x, const char *part, hive_fetch_result *res, char *err,
                        size_t errlen)
{
    rb_err rc = RB_OK;

    if (!x->sha[0])
        goto out;
    if (file_sha256(part, res->sha256)) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot read the download to check it");
    } else if (strcmp(res->sha256, x->sha) != 0) {
        snprintf(res->code, sizeof res->code, "CHECKSUM_MISMATCH");
        rc = rb_errf(err, errlen, RB_EFORMAT, "SHA-256 %s does not match the expected %s",
                     res->sha256, x->sha);
    }
out:
    return rc;
}

/* The checks of a complete .part file; sets res->code on failure. */
static rb_err check_file(const xfer *x, const char *part, hive_fetch_result *res, char *err,
                         size_t errlen)
{
    struct stat st;
    char head[8] = "";
    FILE *fp;
    rb_err rc = RB_OK;

    if (stat(part, &st) != 0) {
        rc = rb_errf(err, errlen, RB_EIO, "download vanished: %s", strerror(errno));
        goto out;
    }
    res->size = (int64_t)st.st_size;
    if (x->total >= 0 && res->size != x->total) {
        snprintf(res->code, sizeof res->code, "SIZE_MISMATCH");
        rc = rb_errf(err, errlen, RB_EFORMAT, "downloaded %lld bytes, expected %lld",
                     (long long)res->size, (long long)x->total);
        goto out;
    }
    if ((fp = fopen(part, "rb"))) {
        size_t n = fread(head, 1, 6, fp);
        head[n] = '\0';
        fclose(fp);
    }
    if (memcmp(head, "GGUF", 4) != 0) {
        for (char *p = head; *p; p++)
            *p = *p >= 32 && *p < 127 ? *p : '?';
        snprintf(res->code, sizeof res->code, "NOT_GGUF");
        rc = rb_errf(err, errlen, RB_EFORMAT, "%s is not a GGUF model (it starts with '%s')",
                     x->f->url, head);
        goto out;
    }
    rc = check_sha(x, part, res, err, errlen);
out:
    return rc;
}

static rb_err commit(const char *part, const char *dest, char *err, size_t errlen)
{
    FILE *fp = fopen(part, "rb+");
    int synced = fp && fsync(fileno(fp)) == 0;
    rb_err rc = RB_OK;

    if (fp)
        fclose(fp);
    if (!synced || rename(part, dest) != 0)
        rc = rb_errf(err, errlen, RB_EIO, "cannot move the download to '%s': %s", dest,
                     strerror(errno));
    return rc;
}

/* Runs attempts until one succeeds, one fails for good, or they are used up. */
static attempt_result run_attempts(xfer *x, const char *part, hive_fetch_result *res, char *err,
                                   size_t errlen)
{
    long backoff = x->f->backoff_ms;
    attempt_result r = ATT_FATAL;

    for (int i = 1; i <= x->f->attempts; i++) {
        res->attempts = i;
        r = attempt(x, part, err, errlen);
        if (r != ATT_RETRY)
            break;
        rb_log(RB_LOG_WARN, "download", "%s: attempt %d of %d failed: %s",
               x->f->tag ? x->f->tag : "-", i, x->f->attempts, err);
        if (i < x->f->attempts && x->f->retry)
            x->f->retry(x->f->user, i, x->f->attempts, err, backoff);
        if (i < x->f->attempts && pause_ms(x->f, backoff)) {
            r = ATT_CANCEL;
            break;
        }
        backoff *= 2;
    }
    return r;
}

rb_err hive_fetch_run(const hive_fetch *f, hive_fetch_result *res, char *err, size_t errlen)
{
    char part[HIVE_PATH_MAX + 8];
    xfer x = {0};
    attempt_result r;
    struct stat st;
    int keep = 0;
    rb_err rc = RB_OK;

    memset(res, 0, sizeof(*res));
    x.f = f;
    x.total = -1;
    x.start_ms = x.last_report_ms = rb_now_ms();
    if (snprintf(part, sizeof part, "%s.part", f->dest) >= (int)sizeof part) {
        rc = rb_errf(err, errlen, RB_ETOOBIG, "destination path too long");
        goto out;
    }
    /* A .part left by an interrupted run is resumed: the checks below (size, magic, SHA-256
     * when announced) decide whether the whole file is right, and a range the server cannot
     * serve starts over. */
    if (stat(part, &st) == 0 && st.st_size > 0)
        rb_log(RB_LOG_INFO, "download", "%s: resuming %s from %lld bytes", f->tag ? f->tag : "-",
               part, (long long)st.st_size);
    report(&x, 1);
    r = run_attempts(&x, part, res, err, errlen);
    if (r != ATT_OK) {
        rc = r == ATT_CANCEL ? rb_errf(err, errlen, RB_ECANCELED, "download cancelled") : RB_EIO;
        /* Interrupted (cancelled, or the network gave out): keep what arrived for the next run.
         * A failure of the file itself (an HTTP error, a disk error) leaves nothing. */
        keep = r == ATT_CANCEL || r == ATT_RETRY;
        goto out;
    }
    report(&x, 1);
    if ((rc = check_file(&x, part, res, err, errlen)))
        goto out;
    rc = commit(part, f->dest, err, errlen);
out:
    if (rc) {
        if (!res->code[0])
            snprintf(res->code, sizeof res->code, "%s",
                     rc == RB_ECANCELED ? "CANCELLED" : "DOWNLOAD_FAILED");
        if (!keep || stat(part, &st) != 0 || st.st_size == 0)
            unlink(part);
    }
    return rc;
}
