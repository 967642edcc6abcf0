/*
 * mock-hive - a scripted stand-in for rbee-hive, for worker tests and for running a worker by
 * hand without a real hive.
 *
 *     mock-hive --port 19200 [--scenario FILE] [--version X.Y.Z]
 *
 * It records every heartbeat and ready callback and answers them with scripted statuses after
 * a scripted delay. The script comes from --scenario (a JSON object) and can be changed at run
 * time with POST /mock/script; GET /mock/records returns what was received:
 *     {"heartbeat_status":200,"ready_status":200,"delay_ms":0}
 *     {"heartbeats":[{...,"received_ms":...}],"ready":[{...}]}
 * It prints "listening on port N" once it serves, and stops on SIGTERM/SIGINT.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rb_args.h"
#include "rb_http.h"
#include "rb_json.h"
#include "rb_log.h"
#include "rb_util.h"

typedef struct mock {
    pthread_mutex_t mu;
    json_t *heartbeats; /* array */
    json_t *ready;      /* array */
    int heartbeat_status;
    int ready_status;
    int delay_ms;
    const char *version;
} mock;

static void apply_script(mock *m, json_t *s)
{
    json_t *v;
    pthread_mutex_lock(&m->mu);
    if ((v = json_object_get(s, "heartbeat_status")) && json_is_integer(v))
        m->heartbeat_status = (int)json_integer_value(v);
    if ((v = json_object_get(s, "ready_status")) && json_is_integer(v))
        m->ready_status = (int)json_integer_value(v);
    if ((v = json_object_get(s, "delay_ms")) && json_is_integer(v))
        m->delay_ms = (int)json_integer_value(v);
    pthread_mutex_unlock(&m->mu);
}

/* Records the body in list and answers with the scripted status. */
static void record(mock *m, rb_http_req *req, rb_http_reply *rep, json_t *list, int which)
{
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    int status, d;

    if (!json_is_object(body)) {
        json_decref(body);
        rb_http_reply_error(rep, 400, "INVALID_JSON", "body is not a JSON object", NULL);
        return;
    }
    json_object_set_new(body, "received_ms", json_integer(rb_unix_ms()));
    pthread_mutex_lock(&m->mu);
    json_array_append_new(list, body);
    status = which ? m->ready_status : m->heartbeat_status;
    d = m->delay_ms;
    pthread_mutex_unlock(&m->mu);
    rb_sleep_ms(d);
    if (status == 200)
        rb_http_reply_json(rep, 200, json_pack("{s:s}", "status", "ok"));
    else
        rb_http_reply_error(rep, status, "SCRIPTED", "scripted failure", NULL);
}

static void h_heartbeat(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    record(m, req, rep, m->heartbeats, 0);
}

static void h_ready(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    record(m, req, rep, m->ready, 1);
}

static void h_health(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    (void)req;
    rb_http_reply_json(rep, 200,
                       json_pack("{s:s, s:s, s:s}", "status", "alive", "version", m->version,
                                 "api_version", "v1"));
}

static void h_records(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    json_t *r;
    (void)req;
    pthread_mutex_lock(&m->mu);
    r = json_pack("{s:O, s:O}", "heartbeats", m->heartbeats, "ready", m->ready);
    char *s = rb_json_dump(r); /* serialise under the lock: the arrays are shared */
    pthread_mutex_unlock(&m->mu);
    json_decref(r);
    rb_http_reply_text(rep, 200, "application/json", s ? s : "{}");
    free(s);
}

static void h_script(rb_http_req *req, rb_http_reply *rep, void *user)
{
    mock *m = user;
    json_t *s = json_loadb(req->body, req->body_len, 0, NULL);
    if (!json_is_object(s)) {
        json_decref(s);
        rb_http_reply_error(rep, 400, "INVALID_JSON", "script must be a JSON object", NULL);
        return;
    }
    apply_script(m, s);
    json_decref(s);
    rb_http_reply_json(rep, 200, json_pack("{s:s}", "status", "ok"));
}

static const rb_http_route routes[] = {
    {"GET", "/v1/health", h_health, RB_ROUTE_PUBLIC},
    {"POST", "/v1/heartbeat", h_heartbeat, 0},
    {"POST", "/v1/workers/ready", h_ready, 0},
    {"GET", "/mock/records", h_records, 0},
    {"POST", "/mock/script", h_script, 0},
};

int main(int argc, char **argv)
{
    mock m = {0};
    rb_http_config cfg = rb_http_config_default();
    rb_http_server *srv;
    sigset_t set;
    int sig;
    char err[256];

    pthread_mutex_init(&m.mu, NULL);
    m.heartbeats = json_array();
    m.ready = json_array();
    m.heartbeat_status = 200;
    m.ready_status = 200;
    m.version = RB_VERSION;
    {
        const char *scenario = NULL;
        int port = 0;
        const rb_opt opts[] = {
            {"--port", RB_OPT_INT, &port, 0, 65535, .help = "HTTP port (0: any free port)"},
            {"--claim-version", RB_OPT_STR, &m.version, .what = "X.Y.Z",
             .help = "the version /v1/health reports (default rbee's)"},
            {"--scenario", RB_OPT_STR, &scenario, .what = "FILE", .help = "replies to play (JSON)"},
        };
        const rb_cmd cmd = {"mock-hive",
                            NULL,
                            "The hive side a worker talks to: heartbeats and the ready callback.",
                            opts,
                            RB_ARRAY_LEN(opts),
                            NULL,
                            1};
        int shown = 0;
        json_error_t je;
        json_t *sc;

        if (rb_cmd_parse(&cmd, argc - 1, argv + 1, NULL, 0, NULL, &shown, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (shown)
            return 0;
        cfg.port = (uint16_t)port;
        if (scenario) {
            if (!json_is_object(sc = json_load_file(scenario, 0, &je))) {
                fprintf(stderr, "mock-hive: cannot read scenario '%s': %s\n", scenario, je.text);
                return 1;
            }
            apply_script(&m, sc);
            json_decref(sc);
        }
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    cfg.routes = routes;
    cfg.nroutes = sizeof routes / sizeof routes[0];
    cfg.user = &m;
    cfg.component = "mock-hive";
    if (rb_http_server_start(&cfg, &srv, err, sizeof err)) {
        fprintf(stderr, "mock-hive: %s\n", err);
        return 1;
    }
    printf("listening on port %u\n", rb_http_server_port(srv));
    fflush(stdout);
    sigwait(&set, &sig);
    rb_http_server_stop(srv);
    json_decref(m.heartbeats);
    json_decref(m.ready);
    pthread_mutex_destroy(&m.mu);
    return 0;
}
