/*
 * store.c - nodes.db and workers.db (see kpr_store.h).
 *
 * DESIGN
 * Two files, as docs/architecture.md §3 names them, each with one table. The worker cache is
 * keyed by the worker id and looked up by (hive URL, model, backend, device): the hive URL
 * rather than the node name, because a worker belongs to the hive that spawned it, and
 * `--hive URL` or a changed RBEE_HIVE_PORT means another hive. The cache is only a hint:
 * `rbee infer` trusts a row only after the hive lists that worker as idle, and deletes rows
 * only when that hive answers its list without them. Hive URLs are normalised on the way in
 * (put, find, remove_hive), so every spelling of one hive finds its rows. Statements are
 * prepared per call; these tables hold a handful of rows.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpr_store.h"
#include "rb_db.h"
#include "rb_util.h"

#define NODES_MAX 4096

struct kpr_store {
    sqlite3 *nodes;
    sqlite3 *workers;
};

static const char nodes_schema[] = "CREATE TABLE IF NOT EXISTS nodes ("
                                   " name TEXT PRIMARY KEY,"
                                   " ssh_host TEXT NOT NULL,"
                                   " ssh_user TEXT NOT NULL DEFAULT '',"
                                   " ssh_port INTEGER NOT NULL DEFAULT 22,"
                                   " hive_port INTEGER NOT NULL DEFAULT 8080,"
                                   " hive_bin TEXT NOT NULL DEFAULT 'rbee-hive',"
                                   " added_unix INTEGER NOT NULL);";

static const char workers_schema[] = "CREATE TABLE IF NOT EXISTS workers ("
                                     " id TEXT PRIMARY KEY,"
                                     " node TEXT NOT NULL,"
                                     " hive_url TEXT NOT NULL,"
                                     " url TEXT NOT NULL,"
                                     " model_ref TEXT NOT NULL,"
                                     " backend TEXT NOT NULL,"
                                     " device INTEGER NOT NULL,"
                                     " created_unix INTEGER NOT NULL,"
                                     " last_used_unix INTEGER NOT NULL);"
                                     "CREATE INDEX IF NOT EXISTS workers_key ON workers"
                                     " (hive_url, model_ref, backend, device);";

rb_err kpr_store_open(const char *home, kpr_store **out, char *err, size_t errlen)
{
    kpr_store *st = calloc(1, sizeof(*st));
    char path[KPR_PATH_MAX];
    rb_err rc = st ? RB_OK : RB_ENOMEM;

    if (!rc)
        rc = rb_path_join(path, sizeof path, home, "nodes.db");
    if (!rc)
        rc = rb_db_open(path, nodes_schema, &st->nodes, err, errlen);
    if (!rc)
        rc = rb_path_join(path, sizeof path, home, "workers.db");
    if (!rc)
        rc = rb_db_open(path, workers_schema, &st->workers, err, errlen);
    if (rc) {
        if (rc == RB_ENOMEM || rc == RB_ETOOBIG)
            rb_errf(err, errlen, rc, "cannot open the keeper's state in '%s': %s", home,
                    rb_strerror(rc));
        kpr_store_close(st);
        st = NULL;
    }
    *out = st;
    return rc;
}

void kpr_store_close(kpr_store *st)
{
    if (st) {
        sqlite3_close(st->nodes);
        sqlite3_close(st->workers);
        free(st);
    }
}

static void copy_text(char *dst, size_t n, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, n, "%s", t ? (const char *)t : "");
}

/* ---- nodes ------------------------------------------------------------------------------- */

static const char node_cols[] =
    "SELECT name, ssh_host, ssh_user, ssh_port, hive_port, hive_bin, added_unix FROM nodes";

static void node_row(sqlite3_stmt *s, kpr_node *n)
{
    copy_text(n->name, sizeof n->name, s, 0);
    copy_text(n->ssh_host, sizeof n->ssh_host, s, 1);
    copy_text(n->ssh_user, sizeof n->ssh_user, s, 2);
    n->ssh_port = sqlite3_column_int(s, 3);
    n->hive_port = sqlite3_column_int(s, 4);
    copy_text(n->hive_bin, sizeof n->hive_bin, s, 5);
    n->added_unix = sqlite3_column_int64(s, 6);
}

rb_err kpr_node_add(kpr_store *st, const kpr_node *n)
{
    sqlite3_stmt *s = NULL;
    rb_err rc = RB_EIO;
    int r;

    if (sqlite3_prepare_v2(st->nodes,
                           "INSERT INTO nodes (name, ssh_host, ssh_user, ssh_port, hive_port,"
                           " hive_bin, added_unix) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           -1, &s, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(s, 1, n->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, n->ssh_host, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, n->ssh_user, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, n->ssh_port);
    sqlite3_bind_int(s, 5, n->hive_port);
    sqlite3_bind_text(s, 6, n->hive_bin, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, n->added_unix);
    r = sqlite3_step(s);
    rc = r == SQLITE_DONE ? RB_OK : r == SQLITE_CONSTRAINT ? RB_EEXIST : RB_EIO;
out:
    sqlite3_finalize(s);
    return rc;
}

rb_err kpr_node_get(kpr_store *st, const char *name, kpr_node *out)
{
    char sql[256];
    sqlite3_stmt *s = NULL;
    rb_err rc = RB_EIO;
    int r;

    snprintf(sql, sizeof sql, "%s WHERE name = ?", node_cols);
    if (sqlite3_prepare_v2(st->nodes, sql, -1, &s, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        node_row(s, out);
        rc = RB_OK;
    } else if (r == SQLITE_DONE) {
        rc = RB_ENOTFOUND;
    }
out:
    sqlite3_finalize(s);
    return rc;
}

rb_err kpr_node_remove(kpr_store *st, const char *name)
{
    sqlite3_stmt *s = NULL;
    rb_err rc = RB_EIO;

    if (sqlite3_prepare_v2(st->nodes, "DELETE FROM nodes WHERE name = ?", -1, &s, NULL) !=
        SQLITE_OK)
        goto out;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_DONE)
        rc = sqlite3_changes(st->nodes) > 0 ? RB_OK : RB_ENOTFOUND;
out:
    sqlite3_finalize(s);
    return rc;
}

rb_err kpr_node_list(kpr_store *st, kpr_node **out, size_t *n)
{
    char sql[256];
    sqlite3_stmt *s = NULL;
    kpr_node *rows = NULL;
    size_t count = 0, cap = 0;
    rb_err rc = RB_EIO;

    snprintf(sql, sizeof sql, "%s ORDER BY name", node_cols);
    if (sqlite3_prepare_v2(st->nodes, sql, -1, &s, NULL) != SQLITE_OK)
        goto out;
    rc = RB_OK;
    while (!rc && count < NODES_MAX && sqlite3_step(s) == SQLITE_ROW) {
        if (count == cap) {
            kpr_node *more = realloc(rows, (cap ? cap * 2 : 8) * sizeof(*rows));
            if (!more) {
                rc = RB_ENOMEM;
                break;
            }
            rows = more;
            cap = cap ? cap * 2 : 8;
        }
        node_row(s, &rows[count++]);
    }
out:
    sqlite3_finalize(s);
    if (rc) {
        free(rows);
        rows = NULL;
        count = 0;
    }
    *out = rows;
    *n = count;
    return rc;
}

/* ---- hive URLs --------------------------------------------------------------------------- */

rb_err kpr_hive_url_norm(const char *in, char *out, size_t len)
{
    char scheme[8] = "", host[KPR_HOST_MAX];
    const char *p = strstr(in, "://"), *h, *end, *path;
    size_t n, plen;
    int64_t port;
    int w;

    if (len)
        out[0] = '\0';
    if (!p || p - in > 5)
        return RB_EINVAL;
    for (n = 0; in + n < p; n++)
        scheme[n] = (char)tolower((unsigned char)in[n]);
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        return RB_EINVAL;
    h = p + 3;
    end = *h == '[' ? strchr(h, ']') : h + strcspn(h, ":/?#");
    if (!end || end == h)
        return RB_EINVAL;
    if (*h == '[')
        end++;
    if ((size_t)(end - h) >= sizeof host)
        return RB_EINVAL;
    for (n = 0; h + n < end; n++)
        host[n] = (char)tolower((unsigned char)h[n]);
    host[n] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    port = strcmp(scheme, "https") == 0 ? 443 : 80;
    path = end;
    if (*end == ':') {
        char digits[8];
        size_t d = strspn(end + 1, "0123456789");
        if (d == 0 || d >= sizeof digits)
            return RB_EINVAL;
        memcpy(digits, end + 1, d);
        digits[d] = '\0';
        if (rb_parse_i64(digits, 1, 65535, &port) != RB_OK)
            return RB_EINVAL;
        path = end + 1 + d;
    }
    if (*path && *path != '/')
        return RB_EINVAL;
    plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    w = snprintf(out, len, "%s://%s:%lld%.*s", scheme, host, (long long)port, (int)plen, path);
    if (w < 0 || (size_t)w >= len) {
        if (len)
            out[0] = '\0';
        return RB_EINVAL;
    }
    return RB_OK;
}

/* hive_url normalised into out, or copied as it is when it does not parse. */
static void norm_or_copy(const char *hive_url, char *out, size_t len)
{
    if (kpr_hive_url_norm(hive_url, out, len) != RB_OK)
        snprintf(out, len, "%s", hive_url);
}

/* ---- workers ----------------------------------------------------------------------------- */

rb_err kpr_worker_put(kpr_store *st, const kpr_cached_worker *w)
{
    sqlite3_stmt *s = NULL;
    char hive[KPR_URL_MAX];
    rb_err rc = RB_EIO;

    norm_or_copy(w->hive_url, hive, sizeof hive);
    if (sqlite3_prepare_v2(st->workers,
                           "INSERT OR REPLACE INTO workers (id, node, hive_url, url, model_ref,"
                           " backend, device, created_unix, last_used_unix)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &s, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(s, 1, w->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, w->node, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, hive, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, w->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, w->model_ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, w->backend, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 7, w->device);
    sqlite3_bind_int64(s, 8, w->created_unix);
    sqlite3_bind_int64(s, 9, w->last_used_unix);
    if (sqlite3_step(s) == SQLITE_DONE)
        rc = RB_OK;
out:
    sqlite3_finalize(s);
    return rc;
}

rb_err kpr_worker_find(kpr_store *st, const char *hive_url, const char *model_ref,
                       const char *backend, int device, kpr_cached_worker *out, size_t max,
                       size_t *n)
{
    sqlite3_stmt *s = NULL;
    char hive[KPR_URL_MAX];
    rb_err rc = RB_EIO;
    size_t count = 0;

    norm_or_copy(hive_url, hive, sizeof hive);
    if (sqlite3_prepare_v2(st->workers,
                           "SELECT id, node, hive_url, url, model_ref, backend, device,"
                           " created_unix, last_used_unix FROM workers WHERE hive_url = ? AND"
                           " model_ref = ? AND backend = ? AND device = ?"
                           " ORDER BY last_used_unix DESC, created_unix DESC",
                           -1, &s, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(s, 1, hive, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, model_ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, backend, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, device);
    while (count < max && sqlite3_step(s) == SQLITE_ROW) {
        kpr_cached_worker *w = &out[count++];
        copy_text(w->id, sizeof w->id, s, 0);
        copy_text(w->node, sizeof w->node, s, 1);
        copy_text(w->hive_url, sizeof w->hive_url, s, 2);
        copy_text(w->url, sizeof w->url, s, 3);
        copy_text(w->model_ref, sizeof w->model_ref, s, 4);
        copy_text(w->backend, sizeof w->backend, s, 5);
        w->device = sqlite3_column_int(s, 6);
        w->created_unix = sqlite3_column_int64(s, 7);
        w->last_used_unix = sqlite3_column_int64(s, 8);
    }
    rc = RB_OK;
out:
    sqlite3_finalize(s);
    *n = count;
    return rc;
}

/* Runs one statement with one text parameter. */
static rb_err exec1(sqlite3 *db, const char *sql, const char *arg)
{
    sqlite3_stmt *s = NULL;
    rb_err rc = RB_EIO;

    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_DONE)
        rc = RB_OK;
out:
    sqlite3_finalize(s);
    return rc;
}

rb_err kpr_worker_touch(kpr_store *st, const char *id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE workers SET last_used_unix = %lld WHERE id = ?",
             (long long)rb_unix_s());
    return exec1(st->workers, sql, id);
}

rb_err kpr_worker_remove(kpr_store *st, const char *id)
{
    return exec1(st->workers, "DELETE FROM workers WHERE id = ?", id);
}

rb_err kpr_worker_remove_hive(kpr_store *st, const char *hive_url)
{
    char hive[KPR_URL_MAX];

    norm_or_copy(hive_url, hive, sizeof hive);
    return exec1(st->workers, "DELETE FROM workers WHERE hive_url = ?", hive);
}

const char *kpr_store_error(kpr_store *st, int workers)
{
    sqlite3 *db = st ? (workers ? st->workers : st->nodes) : NULL;

    return db ? sqlite3_errmsg(db) : "the state folder is not open";
}
