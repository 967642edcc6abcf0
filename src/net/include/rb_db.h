/*
 * rb_db.h - SQLite helpers: open a state database in WAL mode, creating its folder.
 *
 *     sqlite3 *db;
 *     if (rb_db_open("/home/u/.rbee/models.db", SCHEMA_SQL, &db, err, sizeof err)) ...
 *     sqlite3_close(db);
 */
#ifndef RB_DB_H
#define RB_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include "rb_err.h"

/* Opens (creating) path with WAL journaling and a 5 s busy timeout, then runs schema_sql
 * (idempotent CREATE TABLE IF NOT EXISTS ...; may be NULL). Caller closes with sqlite3_close. */
rb_err rb_db_open(const char *path, const char *schema_sql, sqlite3 **out, char *err,
                  size_t errlen);

#endif
