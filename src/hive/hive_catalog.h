/*
 * hive_catalog.h - the model catalog: one SQLite table in $RBEE_HOME/models.db listing the
 * models this hive has downloaded and checked.
 *
 *     hive_catalog *cat;
 *     if (hive_catalog_open("/home/u/.rbee/models.db", &cat, err, sizeof err)) ...
 *     hive_model m;
 *     if (hive_catalog_find(cat, "hf:org/repo/model.gguf", &m) == RB_OK) use(m.local_path);
 *     hive_catalog_close(cat);
 *
 * A row is written only for a complete file that passed its checks (docs/architecture.md §7). All
 * functions are thread-safe (the connection is opened in SQLite's serialized mode).
 */
#ifndef HIVE_CATALOG_H
#define HIVE_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "hive_modelref.h"
#include "rb_err.h"

typedef struct hive_catalog hive_catalog;

typedef struct hive_model {
    char reference[HIVE_REF_MAX]; /* canonical reference, the key */
    char provider[16];            /* "hf" */
    char local_path[HIVE_PATH_MAX];
    int64_t size_bytes;
    char sha256[65]; /* lower-case hex, or "" when unknown */
    int64_t downloaded_at_unix;
} hive_model;

/* Opens (creating) the catalog database. Caller closes with hive_catalog_close. */
rb_err hive_catalog_open(const char *path, hive_catalog **out, char *err, size_t errlen);
/* NULL-safe. */
void hive_catalog_close(hive_catalog *c);

/* The row for reference. RB_ENOTFOUND when there is none, RB_EIO on a database error. */
rb_err hive_catalog_find(hive_catalog *c, const char *reference, hive_model *out);
/* Inserts or replaces the row of m->reference. */
rb_err hive_catalog_put(hive_catalog *c, const hive_model *m);
/* Deletes the row of reference (RB_OK when there was none). */
rb_err hive_catalog_remove(hive_catalog *c, const char *reference);
/* Every row, ordered by reference, in a new array the caller frees with free(). */
rb_err hive_catalog_list(hive_catalog *c, hive_model **out, size_t *n);

#endif
