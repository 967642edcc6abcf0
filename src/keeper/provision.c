/*
 * provision.c - phase 3: the model on the node, from the hive's catalog or downloaded with
 * progress (EC2). Also `rbee models download`.
 *
 * DESIGN
 * The hive decides what is already there (a catalog row, the bundled model, a file: path) and
 * answers "cached" with the path; otherwise it starts or joins the download and the keeper
 * follows the progress stream (SSE, §4.3) to its end. The hive retries a download itself (6
 * attempts), so the keeper only reports: progress as it comes, each failed attempt as the hive
 * announces it ("retrying" events), the last error when the hive gives up. Ctrl+C stops following,
 * not the download: the hive finishes it for the next run.
 */
#include <stdio.h>
#include <string.h>

#include "kpr_hive.h"
#include "kpr_infer.h"
#include "rb_client.h"
#include "rb_util.h"

#define DOWNLOAD_REQUEST_MS 60000 /* resolving hf:org/repo asks the hub first */
#define PROGRESS_IDLE_MS 60000    /* the hive sends keep-alives every 10 s */

typedef struct follow {
    kpr_ctx *c;
    int phase;
    char path[KPR_PATH_MAX];
    char code[64];
    char message[512];
    int complete, failed;
    int attempts; /* of the failure; 0 when the hive did not say */
    int64_t bytes;
} follow;

static int on_progress(void *user, const char *event, const char *data, size_t len)
{
    follow *fl = user;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *stage = kpr_jstr(ev, "stage");
    (void)event;

    if (strcmp(stage, "downloading") == 0) {
        kpr_progress p = {fl->phase, KPR_PROGRESS_BYTES, 0, 0, 0};
        p.done = json_integer_value(json_object_get(ev, "bytes_downloaded"));
        p.total = json_integer_value(json_object_get(ev, "bytes_total"));
        p.mbps = json_number_value(json_object_get(ev, "speed_mbps"));
        fl->bytes = p.done;
        kpr_out_progress(&fl->c->out, &p);
    } else if (strcmp(stage, "complete") == 0) {
        fl->complete = 1;
        snprintf(fl->path, sizeof fl->path, "%s", kpr_jstr(ev, "local_path"));
    } else if (strcmp(stage, "retrying") == 0) {
        long pause = (long)json_integer_value(json_object_get(ev, "retry_in_ms"));
        char in[32];
        if (pause < 1000)
            snprintf(in, sizeof in, "%ld ms", pause);
        else
            snprintf(in, sizeof in, "%.0f s", pause / 1000.0);
        kpr_out_progress_end(&fl->c->out);
        kpr_out_note(&fl->c->out, "Download attempt %d/%d failed: %s; retrying in %s",
                     (int)json_integer_value(json_object_get(ev, "attempt")),
                     (int)json_integer_value(json_object_get(ev, "attempts")),
                     kpr_jstr(ev, "message"), in);
    } else if (strcmp(stage, "error") == 0) {
        fl->failed = 1;
        fl->attempts = (int)json_integer_value(json_object_get(ev, "attempts"));
        snprintf(fl->code, sizeof fl->code, "%s", kpr_jstr(ev, "code"));
        snprintf(fl->message, sizeof fl->message, "%s", kpr_jstr(ev, "message"));
    }
    json_decref(ev);
    return 0;
}

static void fail_download(const kpr_target *t, const char *ref, const follow *fl, kpr_fail *f)
{
    kpr_fail_set(f, "DOWNLOAD_FAILED", "Download of %s failed on %s: %s: %s", ref, t->name,
                 fl->code[0] ? fl->code : "DOWNLOAD_FAILED",
                 fl->message[0] ? fl->message : "no reason given");
    if (fl->attempts > 1)
        kpr_fail_line(f, "The hive tried %d times with growing pauses; this was its last error.",
                      fl->attempts);
    else if (fl->attempts == 1)
        kpr_fail_line(f, "This failure is not retried: another attempt would end the same way.");
    kpr_fail_hint(f, "check the reference (hf:<org>/<repo>/<file>.gguf) and that the node reaches "
                     "the hub (HF_ENDPOINT, HF_TOKEN for gated repos); the hive's log has every "
                     "attempt");
}

/* Follows download id to its end. */
static rb_err follow_download(kpr_ctx *c, const kpr_target *t, const char *ref, const char *id,
                              int phase, char *path, size_t pathlen, kpr_fail *f)
{
    rb_sse_opts so = rb_sse_opts_default();
    rb_sse_result res;
    follow fl = {0};
    char url[1024], err[512] = "";
    int64_t t0 = rb_now_ms();
    rb_err rc;

    fl.c = c;
    fl.phase = phase;
    so.idle_timeout_ms = PROGRESS_IDLE_MS;
    so.token = t->token[0] ? t->token : NULL;
    so.cancel = c->interrupted;
    snprintf(url, sizeof url, "%s/v1/models/download/%s/progress", t->hive_url, id);
    rb_sse_result_init(&res);
    rc = rb_client_sse("GET", url, NULL, &so, on_progress, &fl, &res, err, sizeof err);
    kpr_out_progress_end(&c->out);
    if (rc == RB_ECANCELED) {
        if (t->ephemeral)
            kpr_out_note(&c->out,
                         "The download stops with the ephemeral hive; the bytes that arrived are "
                         "kept and the next run resumes from them");
        else
            kpr_out_note(&c->out, "The download continues on %s; the next run picks it up",
                         t->name);
    } else if (fl.failed) {
        rc = RB_EIO;
        fail_download(t, ref, &fl, f);
    } else if (rc || !fl.complete) {
        rc = rc ? rc : RB_EPROTO;
        kpr_fail_set(f, "DOWNLOAD_FAILED", "Lost the progress of the download of %s on %s: %s", ref,
                     t->name, err[0] ? err : "the hive ended the progress stream without a result");
        kpr_fail_hint(f, "run the command again: the hive resumes the download");
    } else {
        snprintf(path, pathlen, "%s", fl.path);
        kpr_out_phase(&c->out, phase, "Model: downloaded %s to %s (%.1f MB in %.1f s)", ref,
                      fl.path, fl.bytes / 1e6, (rb_now_ms() - t0) / 1000.0);
    }
    rb_sse_result_release(&res);
    return rc;
}

rb_err kpr_provision(kpr_ctx *c, const kpr_target *t, const char *model_ref, int phase, char *path,
                     size_t pathlen, kpr_fail *f)
{
    json_t *req = json_pack("{s:s}", "model_ref", model_ref);
    kpr_reply r;
    char id[128];
    rb_err rc = kpr_call(t->hive_url, t->token, "POST", "/v1/models/download", req,
                         DOWNLOAD_REQUEST_MS, &r);

    if (rc || r.status != 200) {
        kpr_reply_fail(f, t, &r, "provide the model");
        if (!strcmp(r.code, "AMBIGUOUS_MODEL_REF")) {
            json_t *files = json_object_get(
                json_object_get(json_object_get(r.body, "error"), "details"), "files");
            size_t n = json_array_size(files), shown = n < KPR_FAIL_LINES ? n : KPR_FAIL_LINES - 1;
            for (size_t i = 0; i < shown; i++)
                kpr_fail_line(f, "  %s/%s", model_ref, json_string_value(json_array_get(files, i)));
            if (shown < n)
                kpr_fail_line(f, "  and %zu more", n - shown);
            if (json_array_size(files))
                kpr_fail_hint(f, "name one of them: --model %s --file %s", model_ref,
                              json_string_value(json_array_get(files, 0)));
        } else if (!strcmp(r.code, "INVALID_MODEL_REF"))
            kpr_fail_hint(f,
                          "models are named hf:<org>/<repo>/<file>.gguf, hf:<org>/<repo> (its "
                          "Q4_K_M file), file:/path.gguf or %s (the bundled model)",
                          KPR_DEFAULT_MODEL);
        rc = rc ? rc : RB_EHTTP;
    } else {
        snprintf(id, sizeof id, "%s", kpr_jstr(r.body, "download_id"));
        if (strcmp(id, "cached") == 0) {
            snprintf(path, pathlen, "%s", kpr_jstr(r.body, "local_path"));
            kpr_out_phase(&c->out, phase,
                          "Model: %s is already available on %s (%s); no "
                          "download needed",
                          model_ref, t->name, path);
        } else {
            kpr_out_phase(&c->out, phase, "Model: downloading %s to %s", model_ref, t->name);
            rc = follow_download(c, t, model_ref, id, phase, path, pathlen, f);
        }
    }
    kpr_reply_release(&r);
    json_decref(req);
    return rc;
}
