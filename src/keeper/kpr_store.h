/*
 * kpr_store.h - the keeper's two state databases under $RBEE_HOME (SQLite, WAL):
 * nodes.db, the machines the user registered with `rbee setup add-node`, and workers.db, the
 * worker cache that lets `rbee infer` reuse a loaded model (a warm start).
 *
 *     kpr_store *st;
 *     if (kpr_store_open(home, &st, err, sizeof err)) ...
 *     kpr_node n;
 *     if (kpr_node_get(st, "gpu1", &n) == RB_OK) use(n.ssh_host, n.hive_port);
 *     kpr_cached_worker w[8]; size_t nw;
 *     kpr_worker_find(st, hive_url, "kjv", "cpu", 0, w, 8, &nw);
 *     kpr_store_close(st);
 *
 * The databases are opened on first use (with their folder). Rows are copied out into plain
 * structs. One connection per database, used by one thread.
 */
#ifndef KPR_STORE_H
#define KPR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "rb_err.h"

#define KPR_NAME_MAX 64
#define KPR_HOST_MAX 256
#define KPR_URL_MAX 512
#define KPR_REF_MAX 512
#define KPR_PATH_MAX 4096

typedef struct kpr_store kpr_store;

typedef struct kpr_node {
    char name[KPR_NAME_MAX];
    char ssh_host[KPR_HOST_MAX];
    char ssh_user[KPR_NAME_MAX]; /* "" : ssh's default */
    int ssh_port;                /* 22 */
    int hive_port;               /* 8080 */
    char hive_bin[KPR_PATH_MAX]; /* the rbee-hive program on the node: "rbee-hive" */
    int64_t added_unix;
} kpr_node;

typedef struct kpr_cached_worker {
    char id[128];
    char node[KPR_URL_MAX];     /* the node's name, or the hive URL given with --hive */
    char hive_url[KPR_URL_MAX]; /* the hive that owns the worker: part of the key */
    char url[KPR_URL_MAX];
    char model_ref[KPR_REF_MAX];
    char backend[32];
    int device;
    int64_t created_unix, last_used_unix;
} kpr_cached_worker;

/* The one spelling of a hive URL, so that the cache sees one hive where the user wrote it
 * several ways: scheme and host in lower case, localhost as 127.0.0.1, the port always
 * written (80 for http, 443 for https when none is given), no trailing slash.
 * http://LOCALHOST:8080/ becomes http://127.0.0.1:8080. RB_EINVAL (out "") for a URL that is
 * not http(s)://host[:port][/path] or does not fit. */
rb_err kpr_hive_url_norm(const char *in, char *out, size_t len);

/* Opens (creating) nodes.db and workers.db in home. Caller closes with kpr_store_close. */
rb_err kpr_store_open(const char *home, kpr_store **out, char *err, size_t errlen);
/* NULL-safe. */
void kpr_store_close(kpr_store *st);

/* SQLite's words for the last failure on nodes.db (workers 0) or workers.db (workers 1). */
const char *kpr_store_error(kpr_store *st, int workers);

/* Adds a node; RB_EEXIST when the name is taken. */
rb_err kpr_node_add(kpr_store *st, const kpr_node *n);
/* RB_ENOTFOUND when there is no such node. */
rb_err kpr_node_get(kpr_store *st, const char *name, kpr_node *out);
/* RB_ENOTFOUND when there was no such node. */
rb_err kpr_node_remove(kpr_store *st, const char *name);
/* Every node by name, in a new array the caller frees with free(). */
rb_err kpr_node_list(kpr_store *st, kpr_node **out, size_t *n);

/* Inserts or replaces the row of w->id (its hive URL normalised). */
rb_err kpr_worker_put(kpr_store *st, const kpr_cached_worker *w);
/* Workers of hive_url (compared normalised) for (model_ref, backend, device), most recently used
 * first: at most max of them into out. */
rb_err kpr_worker_find(kpr_store *st, const char *hive_url, const char *model_ref,
                       const char *backend, int device, kpr_cached_worker *out, size_t max,
                       size_t *n);
/* Marks a worker used now. */
rb_err kpr_worker_touch(kpr_store *st, const char *id);
/* Deletes one row (RB_OK when there was none). */
rb_err kpr_worker_remove(kpr_store *st, const char *id);
/* Deletes every row of hive_url (its hive stopped: its workers are gone). */
rb_err kpr_worker_remove_hive(kpr_store *st, const char *hive_url);

#endif
