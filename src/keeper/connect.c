/*
 * connect.c - phase 2: reaching a node's hive, starting an ephemeral one on localhost when
 * none runs, and the preflight checks (EC1, EC8, EC9).
 *
 * DESIGN
 * Persistent or ephemeral is decided by one quick probe of localhost's port: a hive that
 * answers is used as it is (the operator runs it); a refused connection means nobody is there
 * and the keeper starts its own hive on that port, in local mode, as its child; any other
 * answer means another program holds the port, so the ephemeral hive takes a free port and
 * the user is told which. Only then come the contract's three health attempts (10 s each,
 * pauses of 1 and 2 s), so a missing remote hive costs three tries while a missing local hive
 * costs none. Health is public; the authenticated capabilities call that follows is what
 * proves the token (EC9), and its answer feeds phase 4.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kpr_hive.h"
#include "kpr_infer.h"
#include "rb_util.h"

#define HEALTH_ATTEMPTS 3
#define HEALTH_TIMEOUT_MS 10000
#define HEALTH_BACKOFF_MS 1000
#define PROBE_TIMEOUT_MS 2000
#define WAIT_SLICE_MS 50

rb_err kpr_wait_ms(kpr_ctx *c, long ms)
{
    int64_t end = rb_now_ms() + ms;

    while (!kpr_ctx_interrupted(c) && rb_now_ms() < end) {
        int64_t left = end - rb_now_ms();
        rb_sleep_ms(left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS);
    }
    return kpr_ctx_interrupted(c) ? RB_ECANCELED : RB_OK;
}

/* 1 when the reply is a hive's health answer. */
static int is_hive_health(const kpr_reply *r)
{
    return r->status == 200 && strcmp(kpr_jstr(r->body, "status"), "alive") == 0;
}

/* Starts the ephemeral hive on port, or on a free port when another program holds it. */
static rb_err start_ephemeral(kpr_ctx *c, kpr_target *t, kpr_local_hive *eph, int phase,
                              int port_taken, kpr_fail *f)
{
    char err[512];
    int port = t->local_port;
    rb_err rc;

    if (port_taken || !kpr_port_free(port)) {
        port = kpr_pick_port();
        kpr_out_phase(&c->out, phase,
                      "Port %d is used by another program; the ephemeral hive uses port %d",
                      t->local_port, port);
    }
    kpr_out_phase(&c->out, phase,
                  "No hive runs on localhost: starting an ephemeral local hive on port %d "
                  "(stopped when rbee exits)",
                  port);
    rc = kpr_local_hive_start(eph, c->home, port, c->models_dir, KPR_HIVE_START_MS, c->interrupted,
                              err, sizeof err);
    if (rc == RB_EEXIST) { /* lost a race for the port: once more on a fresh one */
        port = kpr_pick_port();
        kpr_out_phase(&c->out, phase, "Port taken meanwhile; trying port %d", port);
        rc = kpr_local_hive_start(eph, c->home, port, c->models_dir, KPR_HIVE_START_MS,
                                  c->interrupted, err, sizeof err);
    }
    if (rc == RB_OK) {
        snprintf(t->hive_url, sizeof t->hive_url, "%s", eph->url);
        t->ephemeral = 1;
    } else if (rc != RB_ECANCELED) {
        kpr_fail_set(f, "HIVE_START_FAILED", "Cannot start a local hive: %s", err);
        kpr_fail_hint(f, "start one yourself with: rbee-hive daemon --local-mode (then rbee "
                         "connects to it)");
    }
    return rc;
}

/* For localhost: uses the hive on the port, or starts an ephemeral one. */
static rb_err local_hive(kpr_ctx *c, kpr_target *t, kpr_local_hive *eph, int phase, kpr_fail *f)
{
    kpr_reply r;
    rb_err rc = kpr_call(t->hive_url, NULL, "GET", "/v1/health", NULL, PROBE_TIMEOUT_MS, &r);

    if (rc == RB_OK && is_hive_health(&r))
        kpr_out_phase(&c->out, phase, "A persistent hive answers on localhost (%s)", t->hive_url);
    else
        rc = start_ephemeral(c, t, eph, phase, rc != RB_ECONNECT, f);
    kpr_reply_release(&r);
    return rc;
}

static void fail_unreachable(const kpr_target *t, const kpr_reply *last, kpr_fail *f)
{
    int same = strcmp(t->name, t->hive_url) == 0;

    kpr_fail_set(f, "HIVE_UNREACHABLE", "Cannot connect to %s%s%s%s after %d attempts: %s", t->name,
                 same ? "" : " (", same ? "" : t->hive_url, same ? "" : ")", HEALTH_ATTEMPTS,
                 last->status ? "it does not answer as a hive" : last->err);
    if (t->registered)
        kpr_fail_hint(f,
                      "check that %s is up and reachable from here; start its hive with: rbee "
                      "hive start --node %s; check its address with: rbee setup list-nodes",
                      t->name, t->name);
    else if (t->is_local)
        kpr_fail_hint(f, "start a hive with: rbee-hive daemon --local-mode, or unset "
                         "RBEE_HIVE_PORT");
    else
        kpr_fail_hint(f, "check that a hive listens there (rbee-hive daemon --addr "
                         "0.0.0.0:PORT on that machine) and that no firewall blocks the port");
}

/* GET /v1/health with 3 attempts; the health body into *health. */
static rb_err health(kpr_ctx *c, const kpr_target *t, int phase, kpr_reply *health, kpr_fail *f)
{
    rb_err rc = RB_EIO;
    long pause = HEALTH_BACKOFF_MS;

    memset(health, 0, sizeof(*health));
    for (int attempt = 1; attempt <= HEALTH_ATTEMPTS && rc && rc != RB_ECANCELED; attempt++) {
        kpr_reply_release(health);
        rc = kpr_call(t->hive_url, NULL, "GET", "/v1/health", NULL, HEALTH_TIMEOUT_MS, health);
        if (rc == RB_OK && !is_hive_health(health))
            rc = RB_EPROTO;
        if (rc && attempt < HEALTH_ATTEMPTS) {
            kpr_out_phase(&c->out, phase,
                          "Attempt %d of %d to reach %s failed (%s); retrying in %ld s", attempt,
                          HEALTH_ATTEMPTS, t->hive_url, health->status ? "not a hive" : health->err,
                          pause / 1000);
            if (kpr_wait_ms(c, pause) == RB_ECANCELED)
                rc = RB_ECANCELED;
            pause *= 2;
        }
    }
    if (rc && rc != RB_ECANCELED)
        fail_unreachable(t, health, f);
    return rc;
}

static rb_err check_version(const kpr_target *t, const kpr_reply *h, kpr_fail *f)
{
    const char *v = kpr_jstr(h->body, "version"), *api = kpr_jstr(h->body, "api_version");
    rb_err rc = RB_OK;

    if (!kpr_version_compatible(RB_VERSION, v) || strcmp(api, "v1") != 0) {
        rc = RB_EUNSUPPORTED;
        kpr_fail_set(f, "VERSION_MISMATCH",
                     "Version mismatch: rbee is version %s but the hive of %s (%s) is version %s",
                     RB_VERSION, t->name, t->hive_url, v[0] ? v : "unknown");
        kpr_fail_line(f,
                      "rbee %s needs a hive with the same major and minor version and API v1; "
                      "this hive reports API %s.",
                      RB_VERSION, api[0] ? api : "unknown");
        kpr_fail_hint(f,
                      "upgrade the older side so both run the same release: build rbee and "
                      "rbee-hive from the same commit (git pull && cmake --build build) here "
                      "and on %s, then restart that hive (rbee hive stop --node %s; rbee hive "
                      "start --node %s)",
                      t->name, t->name, t->name);
    }
    return rc;
}

/* The authenticated capabilities call: proves the token (EC9). */
static rb_err capabilities(const kpr_target *t, json_t **caps, kpr_fail *f)
{
    kpr_reply r;
    rb_err rc =
        kpr_call(t->hive_url, t->token, "GET", "/v1/capabilities", NULL, KPR_CALL_TIMEOUT_MS, &r);

    if (rc || r.status != 200) {
        kpr_reply_fail(f, t, &r, "report its capabilities");
        rc = rc ? rc : r.status == 401 ? RB_EAUTH : RB_EHTTP;
    } else if (caps) {
        *caps = json_incref(r.body);
    }
    kpr_reply_release(&r);
    return rc;
}

rb_err kpr_hive_connect(kpr_ctx *c, kpr_target *t, kpr_local_hive *eph, int phase,
                        int allow_ephemeral, json_t **caps, kpr_fail *f)
{
    kpr_reply h = {0};
    rb_err rc = RB_OK;

    if (caps)
        *caps = NULL;
    if (t->is_local && allow_ephemeral)
        rc = local_hive(c, t, eph, phase, f);
    if (!rc)
        rc = health(c, t, phase, &h, f);
    if (!rc)
        rc = check_version(t, &h, f);
    if (!rc)
        rc = capabilities(t, caps, f);
    if (!rc)
        kpr_out_phase(&c->out, phase, "Hive preflight: %s (%s) is alive, version %s, %s", t->name,
                      t->hive_url, kpr_jstr(h.body, "version"),
                      eph && eph->pid ? "ephemeral (stopped when rbee exits)" : "persistent");
    kpr_reply_release(&h);
    return rc;
}
