/*
 * kpr_ctx.h - what every keeper command shares: the state folder, the interrupt flag, the
 * output, the state databases; and how a node name becomes a hive URL and a token.
 *
 *     kpr_ctx c;
 *     kpr_ctx_init(&c, interrupted, json);     // RBEE_HOME or ~/.rbee
 *     kpr_target t;
 *     kpr_fail f; kpr_fail_init(&f);
 *     if (kpr_target_resolve(&c, "gpu1", NULL, &t, &f)) kpr_out_fail(&c.out, &f);
 *     ... t.hive_url, t.token ...
 *     kpr_ctx_release(&c);
 *
 * Tokens (docs/keeper.md): the node's entry in $RBEE_HOME/config.json
 * ({"nodes":{"gpu1":{"token":"..."}}}), else $RBEE_API_TOKEN, else the file's top-level
 * "token". The most specific source wins, so a per-node token is never shadowed by a token
 * exported for every node.
 */
#ifndef KPR_CTX_H
#define KPR_CTX_H

#include <stdatomic.h>

#include "kpr_out.h"
#include "kpr_store.h"
#include "rb_err.h"

#define KPR_TOKEN_MAX 512
#define KPR_CONFIG_FILE "config.json"

typedef struct kpr_ctx {
    char home[KPR_PATH_MAX];
    atomic_int *interrupted; /* borrowed: non-zero after SIGINT or SIGTERM */
    kpr_out out;
    kpr_store *store;              /* opened on first use by kpr_ctx_store */
    char models_dir[KPR_PATH_MAX]; /* a file: model's folder, for an ephemeral hive; "" none */
} kpr_ctx;

typedef struct kpr_target {
    char name[KPR_URL_MAX];     /* the node's name, or the URL given with --hive */
    char hive_url[KPR_URL_MAX]; /* "http://host:port", no trailing slash */
    int is_local;               /* node localhost without --hive: may get an ephemeral hive */
    int ephemeral;              /* its hive is the ephemeral one this run started */
    int local_port;             /* is_local: $RBEE_HIVE_PORT or KPR_DEFAULT_HIVE_PORT */
    int registered;             /* node found in nodes.db (then node is its row) */
    kpr_node node;
    char token[KPR_TOKEN_MAX];            /* "" when no token is configured */
    char token_source[KPR_PATH_MAX + 64]; /* where it came from, for messages */
} kpr_target;

/* Fills c; an unusable home is reported later, by the first command that needs it. */
void kpr_ctx_init(kpr_ctx *c, atomic_int *interrupted, int json);
void kpr_ctx_release(kpr_ctx *c);
/* Remembers the folder of a file: model reference (no-op for other references), so that an
 * ephemeral hive started for it is allowed to serve it (rbee-hive --models-dir). */
void kpr_ctx_model_dir(kpr_ctx *c, const char *model_ref);
/* 1 after SIGINT or SIGTERM. */
int kpr_ctx_interrupted(const kpr_ctx *c);
/* The state databases, opened on first use; fills f on failure. */
rb_err kpr_ctx_store(kpr_ctx *c, kpr_store **out, kpr_fail *f);

/* Resolves node (NULL: "localhost") or hive_url (given with --hive; wins over the node's
 * address) into t, with its token. Unknown node names fill f (RB_ENOTFOUND). */
rb_err kpr_target_resolve(kpr_ctx *c, const char *node, const char *hive_url, kpr_target *t,
                          kpr_fail *f);

/* The token for node (see above) into tok, and a description of its source. "" and "no token
 * is configured" when there is none. RB_EFORMAT (f filled) when config.json is unreadable. */
rb_err kpr_token_lookup(kpr_ctx *c, const char *node, char *tok, size_t toklen, char *source,
                        size_t srclen, kpr_fail *f);

/* 1 when a hive of version hive_version can serve this keeper: same major and minor. */
int kpr_version_compatible(const char *keeper_version, const char *hive_version);

#endif
