/*
 * api_models.c - the model endpoints of §4.1: catalog list, download, download progress.
 *
 * DESIGN
 * A download request resolves the reference first: anything already on disk (a file: path,
 * the bundled model, a catalog hit) answers {"download_id":"cached","local_path":...} at once;
 * an hf: file not yet downloaded starts (or joins) a download and answers its id with
 * local_path null. Progress is an SSE stream fed by the download's broadcast.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static int download_request(rb_http_req *req, rb_http_reply *rep, char *out, size_t outlen)
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

    if (!download_request(req, rep, text, sizeof text))
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
