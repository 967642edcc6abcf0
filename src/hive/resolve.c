/*
 * resolve.c - from a model reference to a local file, or to the file that must be downloaded.
 *
 * DESIGN
 * Spawning and downloading both start here. file: references and the bundled model name a
 * local file directly. An hf: reference that names a file is looked up in the catalog, and the
 * row is trusted only while its file still exists with the recorded size (a row whose file was
 * deleted by hand is dropped, so the model can be downloaded again). An hf: reference to a
 * repo first asks the endpoint which file the Q4_K_M rule picks; when the endpoint cannot be
 * reached, a downloaded Q4_K_M file of that repo still resolves, so a node works offline.
 * A file: reference is confined to the hive's model folders ($RBEE_HOME/models, the bundled
 * model's folder and the operator's --models-dir folders), compared after resolving links
 * (realpath), and must name a regular .gguf file. Outside them every answer is the same 403,
 * whether the path exists or not, so the endpoint tells nothing about the rest of the disk.
 */
#include <libgen.h>
#include <limits.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hive_api.h"
#include "hive_gguf.h"
#include "hive_fetch.h"
#include "rb_log.h"

static rb_err fail(hive_api_error *e, int status, const char *code, rb_err rc)
{
    e->status = status;
    e->code = code;
    return rc;
}

/* 1 when the catalog has reference and its file is intact; fills path. */
static int catalog_hit(hive *h, const char *reference, char *path, size_t pathlen)
{
    hive_model m;
    struct stat st;
    int hit = hive_catalog_find(h->cat, reference, &m) == RB_OK;

    if (hit && (stat(m.local_path, &st) != 0 || (int64_t)st.st_size != m.size_bytes)) {
        rb_log(RB_LOG_WARN, "catalog", "%s: file '%s' is missing or changed; row removed",
               reference, m.local_path);
        hive_catalog_remove(h->cat, reference);
        hit = 0;
    }
    if (hit)
        snprintf(path, pathlen, "%s", m.local_path);
    return hit;
}

/* Offline fallback for hf:org/repo: a downloaded file of the repo chosen by the same rule,
 * accepted only when it is a Q4_K_M file. */
static int cached_repo_pick(hive *h, hive_modelref *ref)
{
    hive_model *rows = NULL;
    const char **names = NULL;
    char prefix[HIVE_REF_MAX];
    size_t n = 0, k = 0, pick;
    int found = 0;

    snprintf(prefix, sizeof prefix, "hf:%s/%s/", ref->org, ref->repo);
    if (hive_catalog_list(h->cat, &rows, &n) != RB_OK || !(names = calloc(n + 1, sizeof(*names))))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (strncmp(rows[i].reference, prefix, strlen(prefix)) == 0)
            names[k++] = rows[i].reference + strlen(prefix);
    if (hive_pick_gguf(names, k, &pick) == RB_OK && strcasestr(names[pick], "Q4_K_M")) {
        snprintf(ref->file, sizeof ref->file, "%s", names[pick]);
        found = 1;
    }
out:
    free(names);
    free(rows);
    return found;
}

static rb_err choose_repo_file(hive *h, hive_modelref *ref, hive_api_error *e)
{
    char endpoint[1024];
    const char *tok = getenv("HF_TOKEN");
    json_t *files = NULL;
    rb_err rc;

    hive_hf_endpoint(endpoint, sizeof endpoint);
    rc = hive_hf_pick_file(endpoint, tok && *tok ? tok : NULL, ref, &files, e->message,
                           sizeof e->message);
    if (rc == RB_ENOTFOUND) {
        fail(e, 404, "MODEL_NOT_FOUND", rc);
    } else if (rc == RB_EINVAL) {
        e->details = json_pack("{s:o}", "files", files ? files : json_array());
        files = NULL;
        fail(e, 400, "AMBIGUOUS_MODEL_REF", rc);
    } else if (rc && cached_repo_pick(h, ref)) {
        rb_log(RB_LOG_WARN, "resolve", "%s; using the downloaded %s", e->message, ref->file);
        rc = RB_OK;
    } else if (rc) {
        fail(e, 502, "DOWNLOAD_FAILED", rc);
    }
    json_decref(files);
    return rc;
}

static rb_err resolve_hf(hive *h, hive_modelref *ref, char *canonical, size_t canonlen, char *path,
                         size_t pathlen, hive_resolved *what, hive_api_error *e)
{
    rb_err rc = RB_OK;

    if (!ref->file[0] && (rc = choose_repo_file(h, ref, e)))
        goto out;
    if ((rc = hive_modelref_format(ref, canonical, canonlen))) {
        snprintf(e->message, sizeof e->message, "model reference is too long");
        fail(e, 400, "INVALID_MODEL_REF", rc);
        goto out;
    }
    *what = catalog_hit(h, canonical, path, pathlen) ? HIVE_RESOLVED_LOCAL : HIVE_RESOLVED_DOWNLOAD;
out:
    return rc;
}

/* 1 when the real path p lies inside folder dir (resolved here). */
static int inside(const char *dir, const char *p)
{
    char real[PATH_MAX];
    size_t n;

    if (!dir[0] || !realpath(dir, real))
        return 0;
    n = strlen(real);
    return strncmp(p, real, n) == 0 && (p[n] == '/' || (n == 1 && real[0] == '/'));
}

/* 1 when the real path p is inside one of the hive's model folders. */
static int allowed(const hive *h, const char *p)
{
    char bundled[HIVE_PATH_MAX], dirs[sizeof h->models_dirs], *save = NULL;
    int ok = inside(h->models_dir, p);

    if (!ok && hive_bundled_path(h->exe_dir, bundled, sizeof bundled) == RB_OK)
        ok = inside(dirname(bundled), p);
    snprintf(dirs, sizeof dirs, "%s", h->models_dirs);
    for (char *d = strtok_r(dirs, ":", &save); d && !ok; d = strtok_r(NULL, ":", &save))
        ok = inside(d, p);
    return ok;
}

/* Checks a file: path against the model folders; on success path gets its real path. */
static rb_err confine_file(hive *h, const char *given, char *path, size_t pathlen,
                           hive_api_error *e)
{
    char real[PATH_MAX];
    size_t n = strlen(given);
    struct stat st;
    rb_err rc = RB_OK;

    if (n <= 5 || strcasecmp(given + n - 5, ".gguf") != 0) {
        snprintf(e->message, sizeof e->message, "a file: reference must name a .gguf file");
        return fail(e, 400, "INVALID_MODEL_REF", RB_EINVAL);
    }
    /* A missing file is judged by the folder it would be in. */
    if (!realpath(given, real)) {
        char parent[HIVE_PATH_MAX], base[HIVE_PATH_MAX], rp[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", given);
        snprintf(base, sizeof base, "%s", given);
        if (!realpath(dirname(parent), rp) ||
            snprintf(real, sizeof real, "%s/%s", rp, basename(base)) >= (int)sizeof real)
            real[0] = '\0';
    }
    if (!real[0] || !allowed(h, real)) {
        snprintf(e->message, sizeof e->message,
                 "file: references may only name .gguf files in the hive's model folders "
                 "($RBEE_HOME/models, the bundled model's folder, --models-dir)");
        return fail(e, 403, "MODEL_PATH_FORBIDDEN", RB_EAUTH);
    }
    if (stat(real, &st) != 0 || access(real, R_OK) != 0) {
        snprintf(e->message, sizeof e->message,
                 "model file '%.900s' does not exist or is not readable", given);
        rc = fail(e, 404, "MODEL_NOT_FOUND", RB_ENOTFOUND);
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(e->message, sizeof e->message, "model file '%.900s' is not a regular file", given);
        rc = fail(e, 400, "INVALID_MODEL_REF", RB_EINVAL);
    } else if (snprintf(path, pathlen, "%s", real) >= (int)pathlen) {
        snprintf(e->message, sizeof e->message, "model path is too long");
        rc = fail(e, 400, "INVALID_MODEL_REF", RB_ETOOBIG);
    }
    return rc;
}

/* file: and the bundled model: the file must be there. */
static rb_err resolve_local(hive *h, hive_modelref *ref, char *path, size_t pathlen,
                            hive_api_error *e)
{
    rb_err rc = RB_OK;

    if (ref->kind == HIVE_REF_BUNDLED && hive_bundled_path(h->exe_dir, path, pathlen)) {
        snprintf(e->message, sizeof e->message,
                 "the bundled model ('%s', %s) was not found: looked in %.250s/models, "
                 "%.250s/../models, %.250s/../share/rbee/models and the source tree's models/ "
                 "(set RBEE_BUNDLED_MODEL to its path)",
                 HIVE_BUNDLED_NAME, HIVE_BUNDLED_GLOB, h->exe_dir, h->exe_dir, h->exe_dir);
        rc = fail(e, 404, "MODEL_NOT_FOUND", RB_ENOTFOUND);
    } else if (ref->kind == HIVE_REF_FILE) {
        rc = confine_file(h, ref->path, path, pathlen, e);
    }
    return rc;
}

/* A local file must be a GGUF model the hive can read the header of, or phase 3 would call it
 * available and the worker would fail on it later. */
static rb_err check_gguf(const char *path, hive_api_error *e)
{
    rb_mem_shape sh;
    char why[512];

    if (hive_gguf_shape(path, &sh, why, sizeof why) == RB_OK)
        return RB_OK;
    snprintf(e->message, sizeof e->message, "the model file is not a usable GGUF model: %.800s",
             why);
    return fail(e, 400, "NOT_GGUF", RB_EFORMAT);
}

rb_err hive_resolve_model(hive *h, const char *text, hive_modelref *ref, char *canonical,
                          size_t canonlen, char *path, size_t pathlen, hive_resolved *what,
                          hive_api_error *e)
{
    rb_err rc;

    memset(e, 0, sizeof(*e));
    path[0] = '\0';
    canonical[0] = '\0';
    *what = HIVE_RESOLVED_LOCAL;
    if ((rc = hive_modelref_parse(text, ref, e->message, sizeof e->message))) {
        fail(e, 400, "INVALID_MODEL_REF", rc);
    } else if (ref->kind == HIVE_REF_HF) {
        rc = resolve_hf(h, ref, canonical, canonlen, path, pathlen, what, e);
    } else {
        hive_modelref_format(ref, canonical, canonlen);
        rc = resolve_local(h, ref, path, pathlen, e);
        if (!rc)
            rc = check_gguf(path, e);
    }
    return rc;
}

void hive_api_reply(rb_http_reply *rep, hive_api_error *e)
{
    rb_http_reply_error(rep, e->status, e->code, e->message, e->details);
    e->details = NULL;
}
