/*
 * kpr_infer.h - `rbee infer`, the 8 phases of docs/architecture.md §5.1, and the pieces other
 * commands share with it: reaching a hive (phase 2) and provisioning a model (phase 3).
 *
 *     kpr_target t;  kpr_local_hive eph = {0};  kpr_fail f;  kpr_fail_init(&f);
 *     if (kpr_hive_connect(c, &t, &eph, 2, 1, NULL, &f) == RB_OK)
 *         kpr_provision(c, &t, "kjv", 3, path, sizeof path, &f);
 *     kpr_local_hive_stop(&eph, KPR_HIVE_STOP_MS);
 *
 * Each phase reports what it did with kpr_out_phase and, on failure, fills a kpr_fail and
 * returns an error: RB_ECANCELED after Ctrl+C (exit 130), anything else exit 1.
 */
#ifndef KPR_INFER_H
#define KPR_INFER_H

#include <jansson.h>

#include "kpr_ctx.h"
#include "kpr_hive.h"
#include "kpr_proc.h"

#define KPR_DEFAULT_MODEL "kjv"
#define KPR_DEFAULT_MAX_TOKENS 128
#define KPR_MAX_TOKENS_LIMIT 2048 /* the worker's limit (§4.2) */
#define KPR_DEFAULT_READY_TIMEOUT_S 300.0
#define KPR_HIVE_STOP_MS 35000 /* the hive's own budget is 30 s */
#define KPR_HIVE_START_MS 15000
#define KPR_MAX_STOP 4         /* stop strings a worker takes (§4.2) */
#define KPR_STOP_MAX_BYTES 100 /* and the length of each */

/* The --stop strings, in the order given (borrowed from argv); n counts past the limit. */
typedef struct kpr_stops {
    const char *s[KPR_MAX_STOP];
    size_t n;
} kpr_stops;

typedef struct kpr_infer_opts {
    const char *node;     /* NULL: localhost */
    const char *hive_url; /* --hive: bypasses the node registry */
    const char *model;    /* the reference; points at model_buf once parsed */
    const char *file;     /* --file: the file of an hf:<org>/<repo> reference */
    char model_buf[512];
    const char *prompt; /* --prompt, the positional word, or prompt_buf */
    char *prompt_buf;   /* the prompt read from stdin; owned (free) */
    const char *backend;
    long long max_tokens, top_k, device;
    double temperature, top_p, min_p, repetition_penalty, ready_timeout_s;
    unsigned long long seed;
    kpr_stops stops;
    int has_temperature, has_top_p, has_top_k, has_seed, has_min_p, has_repetition_penalty;
    int json;
} kpr_infer_opts;

/* The state of one `rbee infer` run, shared by its phases. */
typedef struct kpr_run {
    kpr_ctx *c;
    const kpr_infer_opts *o;
    kpr_target t;
    kpr_local_hive eph; /* the ephemeral hive; pid 0 in persistent mode */
    kpr_fail f;
    json_t *caps; /* GET /v1/capabilities of phase 2; owned */
    char worker_id[128];
    char worker_url[KPR_URL_MAX];
    int warm;                /* phase 1 found an idle cached worker */
    char cancel_detail[256]; /* what phase 8 did about a Ctrl+C, shown before "Canceled." */
} kpr_run;

/* Phases 1 to 7 for r (r->c, r->o set, r->f initialised): resolves the target, then a warm
 * start from the worker cache or a cold start (hive, model, preflight, spawn, register, ready).
 * On failure r->f says why. */
rb_err kpr_run_prepare(kpr_run *r);
/* Stops r's ephemeral hive (forgetting its workers) and releases r. */
void kpr_run_finish(kpr_run *r);

/* rbee infer [options]; returns the exit status. argv: the words after "infer". */
int kpr_cmd_infer(kpr_ctx *c, int argc, char **argv);
/* rbee chat [options] (chat.c); returns the exit status. argv: the words after "chat". */
int kpr_cmd_chat(kpr_ctx *c, int argc, char **argv);

/* Phase 2: makes sure t's hive answers. For localhost (t->is_local) with allow_ephemeral and
 * no hive on the port, starts an ephemeral hive into *eph (the caller stops it) and points t at
 * it. Then GET /v1/health with 3 attempts (EC1), the version check (EC8) and an authenticated
 * GET /v1/capabilities (EC9), whose body goes to *caps (new reference; caps may be NULL).
 * phase 0 reports through notes instead of [Phase N] lines. */
rb_err kpr_hive_connect(kpr_ctx *c, kpr_target *t, kpr_local_hive *eph, int phase,
                        int allow_ephemeral, json_t **caps, kpr_fail *f);

/* Phase 3: asks t's hive for model_ref; a model already there answers at once, otherwise the
 * download's progress is shown until it completes (EC2 on failure). The model's path on the
 * node goes to path. */
rb_err kpr_provision(kpr_ctx *c, const kpr_target *t, const char *model_ref, int phase, char *path,
                     size_t pathlen, kpr_fail *f);

/* Phase 7: waits for r's worker to be ready (EC7). */
rb_err kpr_phase_ready(kpr_run *r);
/* Phase 8: runs the job on r's worker and streams its tokens (EC4, EC5, EC6). RB_ENOTFOUND
 * (nothing reported) when a warm worker no longer accepts connections. */
rb_err kpr_phase_infer(kpr_run *r);

/* Asks r's hive about r->worker_id and drops it from the worker cache only when the hive
 * answers its list without it (KPR_FATE_GONE). Otherwise why says why the entry stays. */
kpr_fate kpr_run_forget_worker(kpr_run *r, char *why, size_t len);

/* Sleeps ms unless interrupted first; RB_ECANCELED then. */
rb_err kpr_wait_ms(kpr_ctx *c, long ms);

#endif
