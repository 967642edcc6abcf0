/*
 * api_models.c - the model endpoints of §4.1: catalog list, download, download progress, and
 * removal of a downloaded model (POST /v1/models/delete).
 *
 * DESIGN
 * A download request resolves the reference first: anything already on disk (a file: path,
 * the bundled model, a catalog hit) answers {"download_id":"cached","local_path":...} at once;
 * an hf: file not yet downloaded starts (or joins) a download and answers its id with
 * local_path null. Progress is an SSE stream fed by the download's broadcast.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hive_api.h"
#include "hive_download.h"
#include "rb_json.h"
#include "rb_log.h"

static json_t *openai_model(const char *id, int64_t created)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                     (json_int_t)created, "owned_by", "rbee");
}

/* One body for both clients: the hive's "models" (rbee models list) and OpenAI's list
 * ("object":"list","data"), which also names the bundled model when it is installed. */
void hive_h_models(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    hive_model *rows = NULL;
    size_t n = 0;
    json_t *list, *data;
    char bundled[HIVE_PATH_MAX];

    (void)req;
    if (hive_catalog_list(h->cat, &rows, &n) != RB_OK) {
        rb_http_reply_error(rep, 500, "CATALOG_ERROR", "cannot read the model catalog", NULL);
        goto out;
    }
    list = json_array();
    data = json_array();
    if (hive_bundled_path(h->exe_dir, bundled, sizeof bundled) == RB_OK)
        json_array_append_new(data, openai_model(HIVE_BUNDLED_NAME, h->started_unix));
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I, s:I}", "reference",
                                              rows[i].reference, "provider", rows[i].provider,
                                              "local_path", rows[i].local_path, "size_bytes",
                                              (json_int_t)rows[i].size_bytes, "downloaded_at_unix",
                                              (json_int_t)rows[i].downloaded_at_unix));
        json_array_append_new(data, openai_model(rows[i].reference, rows[i].downloaded_at_unix));
    }
    free(rows);
    rb_http_reply_json(
        rep, 200, json_pack("{s:o, s:s, s:o}", "models", list, "object", "list", "data", data));
out:
    return;
}

/* Validates {"model_ref"} into out; 0 after replying 400. */
static int model_ref_request(rb_http_req *req, rb_http_reply *rep, char *out, size_t outlen)
{
    json_t *body = hive_api_body(req, rep);
    const char *ref = NULL;
    rb_jcheck c;
    int ok = 0;

    if (!body)
        goto out;
    rb_jcheck_init(&c);
    rb_json_str(&c, body, "model_ref", RB_REQUIRED, 1, HIVE_REF_MAX - 1, &ref);
    ok = rb_jcheck_ok(&c);
    if (ok)
        snprintf(out, outlen, "%s", ref);
    else
        rb_http_reply_json(rep, 400, rb_jcheck_envelope(&c));
    rb_jcheck_release(&c);
    json_decref(body);
out:
    return ok;
}

void hive_h_download(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    hive_modelref ref;
    hive_resolved what;
    hive_api_error e;
    char text[HIVE_REF_MAX], canonical[HIVE_REF_MAX], path[HIVE_PATH_MAX];
    char id[HIVE_DOWNLOAD_ID_MAX], err[1024];
    rb_err rc;

    if (!model_ref_request(req, rep, text, sizeof text))
        goto out;
    if (hive_resolve_model(h, text, &ref, canonical, sizeof canonical, path, sizeof path, &what,
                           &e)) {
        hive_api_reply(rep, &e);
    } else if (what == HIVE_RESOLVED_LOCAL) {
        rb_http_reply_json(rep, 200,
                           json_pack("{s:s, s:s}", "download_id", "cached", "local_path", path));
    } else if ((rc = hive_downloads_start(h->dl, &ref, id, sizeof id, err, sizeof err))) {
        rb_http_reply_error(rep, 503, rc == RB_ECANCELED ? "SHUTTING_DOWN" : "DOWNLOAD_BUSY", err,
                            NULL);
    } else {
        rb_log(RB_LOG_INFO, "api", "download %s of %s requested", id, canonical);
        rb_http_reply_json(rep, 200, json_pack("{s:s, s:n}", "download_id", id, "local_path"));
    }
out:
    return;
}

void hive_h_download_progress(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    rb_chan *ch = hive_downloads_subscribe(h->dl, req->params[0]);

    if (ch)
        rb_http_reply_sse(rep, ch);
    else
        rb_http_reply_error(rep, 404, "DOWNLOAD_NOT_FOUND",
                            "no such download (finished downloads are kept for 60 s)",
                            json_pack("{s:s}", "download_id", req->params[0]));
    rb_chan_unref(ch);
}

/* The catalog row text names: an exact reference, or for hf:org/repo the one downloaded file of
 * that repo. 0 with e filled when there is none (404) or several (409, listing them). */
static int delete_target(hive *h, const hive_modelref *ref, const char *canonical, hive_model *out,
                         hive_api_error *e)
{
    hive_model *rows = NULL;
    size_t n = 0, hits = 0;
    char prefix[HIVE_REF_MAX + 2];
    json_t *names;

    if (hive_catalog_find(h->cat, canonical, out) == RB_OK)
        return 1;
    memset(e, 0, sizeof(*e));
    e->status = 404;
    e->code = "MODEL_NOT_FOUND";
    snprintf(e->message, sizeof e->message,
             "'%s' is not a downloaded model on this hive (rbee models list shows them)",
             canonical);
    if (ref->file[0] || hive_catalog_list(h->cat, &rows, &n) != RB_OK)
        return 0;
    snprintf(prefix, sizeof prefix, "%s/", canonical);
    names = json_array();
    for (size_t i = 0; i < n; i++) {
        if (strncmp(rows[i].reference, prefix, strlen(prefix)) != 0)
            continue;
        if (hits++ == 0)
            *out = rows[i];
        json_array_append_new(names, json_string(rows[i].reference));
    }
    free(rows);
    if (hits == 1) {
        json_decref(names);
        return 1;
    }
    if (hits > 1) {
        e->status = 409;
        e->code = "AMBIGUOUS_MODEL_REF";
        snprintf(e->message, sizeof e->message,
                 "%zu files of '%s' are downloaded; name one of them", hits, canonical);
        e->details = json_pack("{s:o}", "references", names);
    } else {
        json_decref(names);
    }
    return 0;
}

/* 1 when path is a file directly under or below dir. */
static int inside(const char *dir, const char *path)
{
    char d[HIVE_PATH_MAX], p[HIVE_PATH_MAX];
    size_t n;

    if (!realpath(dir, d) || !realpath(path, p))
        return 0;
    n = strlen(d);
    return strncmp(d, p, n) == 0 && p[n] == '/';
}

void hive_h_models_delete(rb_http_req *req, rb_http_reply *rep, void *user)
{
    hive *h = user;
    hive_modelref ref;
    hive_model m;
    hive_worker *ws = NULL;
    hive_api_error e;
    size_t nw = 0;
    json_t *users;
    char text[HIVE_REF_MAX], canonical[HIVE_REF_MAX], err[HIVE_PATH_MAX + 256];
    char part[HIVE_PATH_MAX + 8];

    if (!model_ref_request(req, rep, text, sizeof text))
        return;
    if (hive_modelref_parse(text, &ref, err, sizeof err) ||
        hive_modelref_format(&ref, canonical, sizeof canonical)) {
        rb_http_reply_error(rep, 400, "INVALID_MODEL_REF", err, NULL);
        return;
    }
    if (ref.kind != HIVE_REF_HF) {
        rb_http_reply_error(rep, 400, "INVALID_MODEL_REF",
                            "only downloaded (hf:) models can be removed: the bundled model and "
                            "file: references are not the hive's to delete",
                            NULL);
        return;
    }
    if (!delete_target(h, &ref, canonical, &m, &e)) {
        hive_api_reply(rep, &e);
        return;
    }
    /* A worker serving it (in any state) keeps it: stop the worker first. */
    users = json_array();
    if (hive_registry_list(h->reg, &ws, &nw) == RB_OK)
        for (size_t i = 0; i < nw; i++)
            if (strcmp(ws[i].model_ref, m.reference) == 0)
                json_array_append_new(users, json_string(ws[i].id));
    free(ws);
    if (json_array_size(users)) {
        rb_http_reply_error(rep, 409, "MODEL_IN_USE",
                            "workers of this hive serve the model; stop them first",
                            json_pack("{s:s, s:o}", "reference", m.reference, "workers", users));
        return;
    }
    json_decref(users);
    if (access(m.local_path, F_OK) == 0) {
        if (!inside(h->models_dir, m.local_path)) {
            rb_http_reply_error(rep, 409, "MODEL_OUTSIDE_HOME",
                                "the catalog names a file outside this hive's models folder; "
                                "it was left in place",
                                json_pack("{s:s}", "local_path", m.local_path));
            return;
        }
        if (unlink(m.local_path) != 0) {
            snprintf(err, sizeof err, "cannot remove %s: %s", m.local_path, strerror(errno));
            rb_http_reply_error(rep, 500, "DELETE_FAILED", err, NULL);
            return;
        }
    }
    /* A partial download left by an interrupted transfer goes too, unless one is running. */
    snprintf(part, sizeof part, "%s.part", m.local_path);
    if (hive_downloads_running(h->dl) == 0 && inside(h->models_dir, part))
        unlink(part);
    if (hive_catalog_remove(h->cat, m.reference) != RB_OK) {
        rb_http_reply_error(rep, 500, "CATALOG_ERROR", "cannot update the model catalog", NULL);
        return;
    }
    rb_log(RB_LOG_INFO, "api", "model %s removed (%s, %lld bytes)", m.reference, m.local_path,
           (long long)m.size_bytes);
    rb_http_reply_json(rep, 200,
                       json_pack("{s:s, s:s, s:I, s:b}", "reference", m.reference, "local_path",
                                 m.local_path, "size_bytes", (json_int_t)m.size_bytes, "removed",
                                 1));
}
