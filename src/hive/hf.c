/*
 * hf.c - the Hugging Face hub rules: endpoint, file URLs and the choice of a repo's file.
 *
 * DESIGN
 * The hub (or anything imitating it, such as mock-files in the tests) is reached at
 * $HF_ENDPOINT. A file is <endpoint>/<org>/<repo>/resolve/main/<file>; a repo's file list is the
 * "siblings" array of <endpoint>/api/models/<org>/<repo>, each {"rfilename": "..."}, which is
 * the public model-info API of the hub. The choice among those files is hive_pick_gguf's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive_fetch.h"
#include "rb_client.h"

#define DEFAULT_ENDPOINT "https://huggingface.co"
#define LIST_TIMEOUT_MS 15000
#define LIST_ATTEMPTS 3
#define LIST_MAX_BYTES (8 << 20)
#define LIST_MAX_FILES 4096

void hive_hf_endpoint(char *out, size_t outlen)
{
    const char *e = getenv("HF_ENDPOINT");
    size_t n;

    snprintf(out, outlen, "%s", e && *e ? e : DEFAULT_ENDPOINT);
    n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
}

rb_err hive_hf_file_url(const char *endpoint, const hive_modelref *r, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/%s/%s/resolve/main/%s", endpoint, r->org, r->repo, r->file);
    return n < 0 || (size_t)n >= outlen ? RB_ETOOBIG : RB_OK;
}

/* GET the repo's model info; *info is a new reference on RB_OK. */
static rb_err fetch_info(const char *endpoint, const char *token, const hive_modelref *r,
                         json_t **info, char *err, size_t errlen)
{
    rb_client_opts o = rb_client_opts_default();
    char url[1024];
    long status = 0;
    rb_err rc;

    o.timeout_ms = LIST_TIMEOUT_MS;
    o.attempts = LIST_ATTEMPTS;
    o.max_reply = LIST_MAX_BYTES;
    o.token = token;
    snprintf(url, sizeof url, "%s/api/models/%s/%s", endpoint, r->org, r->repo);
    rc = rb_client_json("GET", url, NULL, &o, &status, info, err, errlen);
    if (rc)
        goto out;
    if (status == 404 || status == 401) {
        rc = rb_errf(err, errlen, RB_ENOTFOUND, "repo '%s/%s' was not found at %s", r->org, r->repo,
                     endpoint);
    } else if (status != 200 || !json_is_object(*info)) {
        rc = status == 200 ? rb_errf(err, errlen, RB_EPROTO,
                                     "%s answered HTTP 200 without a repository's model info", url)
                           : rb_errf(err, errlen, RB_EPROTO, "%s answered HTTP %ld", url, status);
    }
out:
    if (rc) {
        json_decref(*info);
        *info = NULL;
    }
    return rc;
}

rb_err hive_hf_pick_file(const char *endpoint, const char *token, hive_modelref *r, json_t **files,
                         char *err, size_t errlen)
{
    json_t *info = NULL, *sib;
    const char **names = NULL;
    size_t n = 0, idx, pick;
    rb_err rc;

    if (files)
        *files = NULL;
    if ((rc = fetch_info(endpoint, token, r, &info, err, errlen)))
        goto out;
    sib = json_object_get(info, "siblings");
    names = calloc(json_array_size(sib) + 1, sizeof(*names));
    if (!names) {
        rc = RB_ENOMEM;
        goto out;
    }
    for (idx = 0; idx < json_array_size(sib); idx++) {
        const char *name =
            json_string_value(json_object_get(json_array_get(sib, idx), "rfilename"));
        if (name && n < LIST_MAX_FILES && hive_modelref_valid_file(name))
            names[n++] = name;
    }
    rc = hive_pick_gguf(names, n, &pick);
    if (rc == RB_OK) {
        snprintf(r->file, sizeof r->file, "%s", names[pick]);
    } else if (rc == RB_ENOTFOUND) {
        rb_errf(err, errlen, rc, "repo '%s/%s' has no .gguf file", r->org, r->repo);
    } else {
        rb_errf(err, errlen, rc,
                "repo '%s/%s' has several .gguf files and none is Q4_K_M: "
                "name one as hf:%s/%s/<file>",
                r->org, r->repo, r->org, r->repo);
        if (files && (*files = json_array()))
            for (size_t i = 0; i < n; i++)
                json_array_append_new(*files, json_string(names[i]));
    }
out:
    free(names);
    json_decref(info);
    return rc;
}
