/*
 * ctx.c - the shared context of the keeper's commands: state folder, databases, targets and
 * tokens (see kpr_ctx.h).
 *
 * DESIGN
 * A command names a node; everything about reaching it is decided here, once: "localhost" is
 * built in (127.0.0.1 and $RBEE_HIVE_PORT, and the one node where `rbee infer` may start an
 * ephemeral hive), other names come from nodes.db, and --hive URL bypasses the registry. The
 * token is looked up for the node's name, most specific source first, and the source is kept
 * so that an authentication failure can say where the token was configured (EC9).
 * config.json holding a token must not be readable by others; the keeper warns when it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kpr.h"
#include "kpr_ctx.h"
#include "rb_json.h"
#include "rb_util.h"

#define CONFIG_MAX (64 * 1024)

void kpr_ctx_init(kpr_ctx *c, atomic_int *interrupted, int json)
{
    memset(c, 0, sizeof(*c));
    c->interrupted = interrupted;
    kpr_out_init(&c->out, json);
    if (rb_home_dir(c->home, sizeof c->home) != RB_OK)
        c->home[0] = '\0';
}

void kpr_ctx_release(kpr_ctx *c)
{
    kpr_store_close(c->store);
    c->store = NULL;
}

void kpr_ctx_model_dir(kpr_ctx *c, const char *model_ref)
{
    const char *p = strncmp(model_ref, "file:", 5) == 0 ? model_ref + 5 : NULL;
    const char *slash;

    if (p && strncmp(p, "//", 2) == 0)
        p += 2; /* file:///abs/path */
    slash = p ? strrchr(p, '/') : NULL;
    if (slash && slash > p && (size_t)(slash - p) < sizeof c->models_dir)
        snprintf(c->models_dir, sizeof c->models_dir, "%.*s", (int)(slash - p), p);
}

int kpr_ctx_interrupted(const kpr_ctx *c)
{
    return c->interrupted && atomic_load(c->interrupted) != 0;
}

rb_err kpr_ctx_store(kpr_ctx *c, kpr_store **out, kpr_fail *f)
{
    char err[512];
    rb_err rc = RB_OK;

    if (!c->home[0]) {
        rc = RB_EINVAL;
        kpr_fail_set(f, "NO_HOME", "Cannot find the state folder: set RBEE_HOME or HOME");
    } else if (!c->store && (rc = kpr_store_open(c->home, &c->store, err, sizeof err))) {
        kpr_fail_set(f, "STATE_ERROR", "Cannot open the keeper's state in %s: %s", c->home, err);
    }
    *out = c->store;
    return rc;
}

/* ---- tokens ------------------------------------------------------------------------------ */

static void warn_if_readable(kpr_ctx *c, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077))
        kpr_out_note(&c->out,
                     "Warning: %s holds a token and is readable by other users; "
                     "run: chmod 600 %s",
                     path, path);
}

/* Reads config.json into *cfg (NULL when there is no file). */
static rb_err config_load(kpr_ctx *c, char *path, size_t pathlen, json_t **cfg, kpr_fail *f)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t je;
    rb_err rc = rb_path_join(path, pathlen, c->home, KPR_CONFIG_FILE);

    *cfg = NULL;
    if (rc || rb_read_file(path, CONFIG_MAX, &text, &len) != RB_OK)
        goto out; /* no file: no tokens from it */
    *cfg = json_loadb(text, len, 0, &je);
    if (!json_is_object(*cfg)) {
        rc = RB_EFORMAT;
        kpr_fail_set(f, "BAD_CONFIG", "Cannot read %s: %s", path,
                     *cfg ? "it is not a JSON object" : je.text);
        kpr_fail_hint(f,
                      "the format is {\"token\":\"...\",\"nodes\":{\"<node>\":{\"token\":\"...\"}}}"
                      " (docs/keeper.md)");
        json_decref(*cfg);
        *cfg = NULL;
    }
out:
    free(text);
    return rc;
}

rb_err kpr_token_lookup(kpr_ctx *c, const char *node, char *tok, size_t toklen, char *source,
                        size_t srclen, kpr_fail *f)
{
    char path[KPR_PATH_MAX];
    json_t *cfg = NULL;
    const char *node_tok, *file_tok, *env = getenv("RBEE_API_TOKEN");
    rb_err rc = config_load(c, path, sizeof path, &cfg, f);

    tok[0] = '\0';
    snprintf(source, srclen,
             "no token is configured (RBEE_API_TOKEN is not set and %s/%s has "
             "none)",
             c->home, KPR_CONFIG_FILE);
    if (rc)
        goto out;
    node_tok = json_string_value(
        json_object_get(json_object_get(json_object_get(cfg, "nodes"), node), "token"));
    file_tok = json_string_value(json_object_get(cfg, "token"));
    if (node_tok && *node_tok) {
        snprintf(tok, toklen, "%s", node_tok);
        snprintf(source, srclen, "%s (nodes.%s.token)", path, node);
    } else if (env && *env) {
        snprintf(tok, toklen, "%s", env);
        snprintf(source, srclen, "the RBEE_API_TOKEN environment variable");
    } else if (file_tok && *file_tok) {
        snprintf(tok, toklen, "%s", file_tok);
        snprintf(source, srclen, "%s (token)", path);
    }
    if (cfg && ((node_tok && *node_tok) || (file_tok && *file_tok)))
        warn_if_readable(c, path);
out:
    json_decref(cfg);
    return rc;
}

/* ---- targets ----------------------------------------------------------------------------- */

static rb_err local_port(int *port, kpr_fail *f)
{
    const char *p = getenv("RBEE_HIVE_PORT");
    int64_t v = KPR_DEFAULT_HIVE_PORT;
    rb_err rc = RB_OK;

    if (p && *p && rb_parse_i64(p, 1, 65535, &v) != RB_OK) {
        rc = RB_EINVAL;
        kpr_fail_set(f, "INVALID_ARGUMENT", "RBEE_HIVE_PORT must be a port number, not '%s'", p);
    }
    *port = (int)v;
    return rc;
}

/* "http://host:port", with brackets around an IPv6 address. */
static void host_url(char *out, size_t len, const char *host, int port)
{
    int v6 = strchr(host, ':') != NULL && host[0] != '[';
    snprintf(out, len, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

static rb_err resolve_node(kpr_ctx *c, kpr_target *t, kpr_fail *f)
{
    char raw[KPR_URL_MAX];
    kpr_store *st;
    rb_err rc = kpr_ctx_store(c, &st, f);

    if (!rc)
        rc = kpr_node_get(st, t->name, &t->node);
    if (rc == RB_ENOTFOUND) {
        kpr_fail_set(f, "UNKNOWN_NODE", "Unknown node '%s'", t->name);
        kpr_fail_hint(f,
                      "list the nodes with: rbee setup list-nodes; add one with: rbee setup "
                      "add-node --name %s --ssh-host HOST",
                      t->name);
    } else if (rc == RB_EIO && !kpr_fail_isset(f)) {
        kpr_fail_set(f, "STATE_ERROR", "Cannot read %s/nodes.db: %s", c->home,
                     kpr_store_error(st, 0));
    } else if (!rc) {
        t->registered = 1;
        host_url(raw, sizeof raw, t->node.ssh_host, t->node.hive_port);
        if (kpr_hive_url_norm(raw, t->hive_url, sizeof t->hive_url) != RB_OK)
            snprintf(t->hive_url, sizeof t->hive_url, "%s", raw);
    }
    return rc;
}

rb_err kpr_target_resolve(kpr_ctx *c, const char *node, const char *hive_url, kpr_target *t,
                          kpr_fail *f)
{
    rb_err rc = RB_OK;

    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof t->name, "%s", node ? node : hive_url ? hive_url : "localhost");
    if (hive_url) {
        if (strncmp(hive_url, "http://", 7) != 0 && strncmp(hive_url, "https://", 8) != 0) {
            rc = RB_EINVAL;
            kpr_fail_set(f, "INVALID_ARGUMENT",
                         "--hive takes a URL such as http://host:8080, "
                         "not '%s'",
                         hive_url);
            goto out;
        }
        if (kpr_hive_url_norm(hive_url, t->hive_url, sizeof t->hive_url) != RB_OK) {
            rc = RB_EINVAL;
            kpr_fail_set(f, "INVALID_ARGUMENT",
                         "--hive takes a URL such as http://host:8080, not '%s'", hive_url);
            goto out;
        }
    } else if (strcmp(t->name, "localhost") == 0) {
        rc = local_port(&t->local_port, f);
        t->is_local = 1;
        host_url(t->hive_url, sizeof t->hive_url, "127.0.0.1", t->local_port);
    } else {
        rc = resolve_node(c, t, f);
    }
    if (!rc)
        rc = kpr_token_lookup(c, t->name, t->token, sizeof t->token, t->token_source,
                              sizeof t->token_source, f);
out:
    return rc;
}

int kpr_version_compatible(const char *keeper_version, const char *hive_version)
{
    unsigned a1 = 0, a2 = 0, b1 = 0, b2 = 0;
    return hive_version && sscanf(keeper_version, "%u.%u", &a1, &a2) == 2 &&
           sscanf(hive_version, "%u.%u", &b1, &b2) == 2 && a1 == b1 && a2 == b2;
}
