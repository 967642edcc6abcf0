/*
 * catalog.c - the model catalog in SQLite (models.db).
 *
 * DESIGN
 * One table keyed by the canonical model reference. The connection is opened by rb_db_open in
 * WAL mode with SQLite's serialized threading mode, so handlers, download threads and the
 * monitor share it without a lock of ours. Rows are copied out into plain structs: nothing
 * outside this file sees a statement or a column.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hive_catalog.h"
#include "rb_db.h"

#define LIST_MAX 100000 /* rows returned by one list; far above any real catalog */

struct hive_catalog {
    sqlite3 *db;
};

static const char schema[] = "CREATE TABLE IF NOT EXISTS models ("
                             " reference TEXT PRIMARY KEY,"
                             " provider TEXT NOT NULL,"
                             " local_path TEXT NOT NULL,"
                             " size_bytes INTEGER NOT NULL,"
                             " sha256 TEXT NOT NULL DEFAULT '',"
                             " downloaded_at_unix INTEGER NOT NULL);";

static const char select_cols[] =
    "SELECT reference, provider, local_path, size_bytes, sha256, downloaded_at_unix FROM models";

rb_err hive_catalog_open(const char *path, hive_catalog **out, char *err, size_t errlen)
{
    hive_catalog *c = calloc(1, sizeof(*c));
    rb_err rc = c ? rb_db_open(path, schema, &c->db, err, errlen)
                  : rb_errf(err, errlen, RB_ENOMEM, "out of memory");

    if (rc) {
        free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

void hive_catalog_close(hive_catalog *c)
{
    if (!c)
        return;
    sqlite3_close(c->db);
    free(c);
}

static void copy_text(char *dst, size_t n, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, n, "%s", t ? (const char *)t : "");
}

static void row_to_model(sqlite3_stmt *st, hive_model *m)
{
    memset(m, 0, sizeof(*m));
    copy_text(m->reference, sizeof m->reference, st, 0);
    copy_text(m->provider, sizeof m->provider, st, 1);
    copy_text(m->local_path, sizeof m->local_path, st, 2);
    m->size_bytes = sqlite3_column_int64(st, 3);
    copy_text(m->sha256, sizeof m->sha256, st, 4);
    m->downloaded_at_unix = sqlite3_column_int64(st, 5);
}

rb_err hive_catalog_find(hive_catalog *c, const char *reference, hive_model *out)
{
    char sql[256];
    sqlite3_stmt *st = NULL;
    rb_err rc = RB_OK;
    int step;

    snprintf(sql, sizeof sql, "%s WHERE reference = ?1", select_cols);
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = RB_EIO;
        goto out;
    }
    sqlite3_bind_text(st, 1, reference, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        row_to_model(st, out);
    else
        rc = step == SQLITE_DONE ? RB_ENOTFOUND : RB_EIO;
out:
    sqlite3_finalize(st);
    return rc;
}

rb_err hive_catalog_put(hive_catalog *c, const hive_model *m)
{
    static const char sql[] =
        "INSERT OR REPLACE INTO models (reference, provider, local_path, size_bytes, sha256,"
        " downloaded_at_unix) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    sqlite3_stmt *st = NULL;
    rb_err rc = RB_OK;

    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = RB_EIO;
        goto out;
    }
    sqlite3_bind_text(st, 1, m->reference, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->local_path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, m->size_bytes);
    sqlite3_bind_text(st, 5, m->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, m->downloaded_at_unix);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = RB_EIO;
out:
    sqlite3_finalize(st);
    return rc;
}

rb_err hive_catalog_remove(hive_catalog *c, const char *reference)
{
    sqlite3_stmt *st = NULL;
    rb_err rc = RB_OK;

    if (sqlite3_prepare_v2(c->db, "DELETE FROM models WHERE reference = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = RB_EIO;
        goto out;
    }
    sqlite3_bind_text(st, 1, reference, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = RB_EIO;
out:
    sqlite3_finalize(st);
    return rc;
}

rb_err hive_catalog_list(hive_catalog *c, hive_model **out, size_t *n)
{
    char sql[256];
    sqlite3_stmt *st = NULL;
    hive_model *v = NULL;
    size_t len = 0, cap = 0;
    rb_err rc = RB_OK;
    int step;

    snprintf(sql, sizeof sql, "%s ORDER BY reference", select_cols);
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = RB_EIO;
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW && len < LIST_MAX) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            hive_model *nv = realloc(v, ncap * sizeof(*nv));
            if (!nv) {
                rc = RB_ENOMEM;
                goto out;
            }
            v = nv;
            cap = ncap;
        }
        row_to_model(st, &v[len++]);
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = RB_EIO;
out:
    sqlite3_finalize(st);
    if (rc) {
        free(v);
        v = NULL;
        len = 0;
    }
    *out = v;
    *n = len;
    return rc;
}
