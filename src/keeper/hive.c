/*
 * hive.c - JSON calls to hives and workers, and the failures users read (see kpr_hive.h).
 *
 * DESIGN
 * Every call has a connect timeout and a total timeout; none retries by itself, because the
 * retry policy belongs to the phase (EC1 tries three times, EC6 waits 1, 2 and 4 s, other calls
 * fail at once). The error envelope of §4 is taken apart here so that callers compare codes,
 * and the wording of an authentication failure (EC9) lives in one place: it names the node,
 * the code the hive gave and where the keeper's token came from.
 */
#include <stdio.h>
#include <string.h>

#include "kpr_hive.h"
#include "rb_client.h"
#include "rb_http.h"
#include "rb_json.h"

#define CONNECT_TIMEOUT_MS 5000

rb_err kpr_call(const char *base, const char *token, const char *method, const char *path,
                const json_t *body, long timeout_ms, kpr_reply *r)
{
    rb_client_opts o = rb_client_opts_default();
    char url[1024];
    json_t *err;
    rb_err rc;

    memset(r, 0, sizeof(*r));
    o.token = token && *token ? token : NULL;
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS;
    snprintf(url, sizeof url, "%s%s", base, path);
    rc = rb_client_json(method, url, body, &o, &r->status, &r->body, r->err, sizeof r->err);
    err = json_object_get(r->body, "error");
    if (json_is_object(err)) {
        snprintf(r->code, sizeof r->code, "%s", kpr_jstr(err, "code"));
        snprintf(r->message, sizeof r->message, "%s", kpr_jstr(err, "message"));
    }
    return rc;
}

void kpr_reply_release(kpr_reply *r)
{
    json_decref(r->body);
    r->body = NULL;
}

static void fail_auth(kpr_fail *f, const kpr_target *t, const kpr_reply *r)
{
    kpr_fail_set(f, "AUTH_FAILED", "Authentication failed: the hive of %s (%s) refused the %s",
                 t->name, t->hive_url,
                 strcmp(r->code, "MISSING_API_KEY") == 0 ? "request without a token"
                                                         : "keeper's token");
    kpr_fail_line(f, "The hive answered %ld %s. The keeper's token: %s.", r->status,
                  r->code[0] ? r->code : "Unauthorized", t->token_source);
    kpr_fail_hint(f,
                  "set the hive's token in RBEE_API_TOKEN, or for this node in "
                  "$RBEE_HOME/config.json as {\"nodes\":{\"%s\":{\"token\":\"...\"}}}; the "
                  "hive logs its token's fingerprint at start-up: compare it with "
                  "printf %%s \"$RBEE_API_TOKEN\" | sha256sum | cut -c1-6",
                  t->name);
}

void kpr_reply_fail(kpr_fail *f, const kpr_target *t, const kpr_reply *r, const char *what)
{
    if (r->status == 401) {
        fail_auth(f, t, r);
    } else if (r->status == 0) {
        kpr_fail_set(f, "HIVE_UNREACHABLE", "Cannot reach %s to %s: %s", t->name, what,
                     r->err[0] ? r->err : "no answer");
        kpr_fail_hint(f, "check that its hive runs: rbee hive status --node %s", t->name);
    } else {
        /* an answer without an envelope: the client's own words (a 200 that is not JSON) */
        const char *detail = r->message[0] ? r->message : r->code[0] ? "" : r->err;

        kpr_fail_set(f, r->code[0] ? "HIVE_ERROR" : "HTTP_ERROR",
                     "The hive of %s could not %s: %ld %s%s%s", t->name, what, r->status,
                     r->code[0] ? r->code : rb_http_reason(r->status), detail[0] ? ": " : "",
                     detail);
        if (r->code[0])
            f->code = strcmp(r->code, "INVALID_MODEL_REF") == 0  ? "INVALID_MODEL_REF"
                      : strcmp(r->code, "MODEL_NOT_FOUND") == 0  ? "MODEL_NOT_FOUND"
                      : strcmp(r->code, "WORKER_NOT_FOUND") == 0 ? "WORKER_NOT_FOUND"
                                                                 : "HIVE_ERROR";
    }
}

json_t *kpr_workers_entry(json_t *list_body, const char *id)
{
    json_t *found = NULL, *ws = json_object_get(list_body, "workers");

    for (size_t i = 0; i < json_array_size(ws) && !found; i++)
        if (strcmp(kpr_jstr(json_array_get(ws, i), "id"), id) == 0)
            found = json_array_get(ws, i);
    return found;
}

kpr_fate kpr_worker_fate(rb_err rc, const kpr_reply *r, const char *base, const char *id,
                         json_t **entry, char *why, size_t len)
{
    json_t *ws = json_object_get(r->body, "workers");
    kpr_fate fate = KPR_FATE_UNKNOWN;

    *entry = NULL;
    why[0] = '\0';
    if (rc) {
        snprintf(why, len, "cannot reach the hive at %s: %s", base,
                 r->err[0] ? r->err : rb_strerror(rc));
    } else if (r->status == 401 || r->status == 403) {
        snprintf(why, len, "the hive at %s refused the keeper's token (%ld %s)", base, r->status,
                 r->code[0]         ? r->code
                 : r->status == 401 ? "Unauthorized"
                                    : "Forbidden");
    } else if (r->status == 200 && json_is_array(ws)) {
        *entry = kpr_workers_entry(r->body, id);
        fate = *entry ? KPR_FATE_LISTED : KPR_FATE_GONE;
    } else if (r->status >= 500 &&
               r->code[0]) { /* a hive answers its list with 200, 401/403 or 500 */
        snprintf(why, len, "the hive at %s could not list its workers (%ld %s)", base, r->status,
                 r->code);
    } else {
        snprintf(why, len, "the program at %s does not answer as a hive (%ld%s)", base, r->status,
                 r->status == 200 ? " without a worker list" : "");
    }
    return fate;
}

size_t kpr_workers_match(const json_t *ws, const char *prefix, char *id, size_t idlen, char *ids,
                         size_t idslen)
{
    size_t n = 0, plen = strlen(prefix), used = 0;

    if (idslen)
        ids[0] = '\0';
    for (size_t i = 0; i < json_array_size(ws); i++) {
        const char *w = kpr_jstr(json_array_get(ws, i), "id");
        if (strcmp(w, prefix) == 0) { /* a whole id wins over the ids it begins */
            snprintf(id, idlen, "%s", w);
            snprintf(ids, idslen, "%s", w);
            return 1;
        }
    }
    for (size_t i = 0; i < json_array_size(ws) && plen > 0; i++) {
        const char *w = kpr_jstr(json_array_get(ws, i), "id");
        if (strncmp(w, prefix, plen) != 0)
            continue;
        if (n++ == 0)
            snprintf(id, idlen, "%s", w);
        if (used < idslen) {
            int k = snprintf(ids + used, idslen - used, "%s%s", n > 1 ? ", " : "", w);
            used += k > 0 ? (size_t)k : 0;
        }
    }
    return n;
}

const char *kpr_jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

void kpr_http_error(const rb_sse_result *res, const char *who, char *out, size_t outlen)
{
    char code[64], msg[512];

    rb_error_envelope_parse(res->body.data, code, sizeof code, msg, sizeof msg);
    snprintf(out, outlen, "the %s answered %ld %s%s%s", who, res->status,
             code[0] ? code : rb_http_reason(res->status), msg[0] ? ": " : "", msg);
}
