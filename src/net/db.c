/*
 * db.c - SQLite state files: WAL mode, busy timeout, parent folders created on first use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_db.h"
#include "rb_util.h"

rb_err rb_db_open(const char *path, const char *schema_sql, sqlite3 **out, char *err, size_t errlen)
{
    char dir[4096];
    char *slash, *emsg = NULL;
    sqlite3 *db = NULL;
    rb_err rc = RB_OK;

    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (rb_mkdir_p(dir))
            return rb_errf(err, errlen, RB_EIO, "cannot create folder '%s'", dir);
    }
    if (sqlite3_open_v2(path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot open database '%s': %s", path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     &emsg) != SQLITE_OK ||
        (schema_sql && sqlite3_exec(db, schema_sql, NULL, NULL, &emsg) != SQLITE_OK)) {
        rc = rb_errf(err, errlen, RB_EIO, "cannot initialise database '%s': %s", path,
                     emsg ? emsg : "unknown error");
        goto out;
    }
out:
    sqlite3_free(emsg);
    if (rc) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return RB_OK;
}
