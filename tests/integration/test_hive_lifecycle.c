/*
 * Integration tests for spec/hive_lifecycle.feature: the real rbee-hive binary on loopback,
 * mock-worker as its worker binary, a fresh RBEE_HOME per test, a 1 s monitor interval.
 * Every wait polls with a deadline; every process started is checked by its recorded pid.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eng_gguf.h"
#include "hive.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"

#define READY_MS 5000

typedef struct spawned {
    char id[64];
    char url[128];
    pid_t pid;
    int port;
} spawned;

/* The tests become a subreaper: workers orphaned by a dead hive are re-parented here, so a
 * worker left running or unreaped is seen (and cleaned up) instead of vanishing into init. */
static void setup(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    unsetenv("RBEE_API_TOKEN");
    unsetenv("MOCK_WORKER_SCENARIO");
}

static void model_path(const rbt_hive *h, char *out, size_t outlen)
{
    /* in $RBEE_HOME/models: the only folder of the hive's own that file: may name */
    snprintf(out, outlen, "%s/models", h->home);
    ck_assert_int_eq(rb_mkdir_p(out), RB_OK);
    snprintf(out, outlen, "%s/models/model.gguf", h->home);
}

/* Starts a hive with a fake model in its home. */
static void start_hive(rbt_hive *h, rbt_hive_opts *o)
{
    char path[4200];
    rbt_hive_init(h);
    model_path(h, path, sizeof path);
    rbt_write_fake_gguf(path, 4096);
    rbt_hive_start(h, o);
}

/* POST /v1/workers/spawn for the fake model; returns the status, *reply the body. */
static long spawn(rbt_hive *h, const char *backend, json_t **reply)
{
    char path[4200], body[4400];
    model_path(h, path, sizeof path);
    snprintf(body, sizeof body, "{\"model_ref\":\"file:%s\",\"backend\":\"%s\",\"device\":0}", path,
             backend);
    return rbt_hive_json(h, "POST", "/v1/workers/spawn", body, reply);
}

/* Spawns a worker and waits until it is listed idle. */
static void spawn_idle(rbt_hive *h, spawned *s)
{
    json_t *r = NULL, *w = NULL;
    ck_assert_int_eq(spawn(h, "cpu", &r), 200);
    snprintf(s->id, sizeof s->id, "%s", json_string_value(json_object_get(r, "worker_id")));
    snprintf(s->url, sizeof s->url, "%s", json_string_value(json_object_get(r, "url")));
    json_decref(r);
    ck_assert_msg(rbt_hive_wait_worker(h, s->id, "idle", rbt_scaled(READY_MS), &w),
                  "worker %s never became idle", s->id);
    s->pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    s->port = atoi(strrchr(s->url, ':') + 1);
    ck_assert_int_gt(s->pid, 0);
    json_decref(w);
}

/* Reaps any re-parented child that has exited (we are a subreaper). */
static void reap_orphans(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

static int wait_pid_gone(pid_t pid, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    while (!rbt_pid_gone(pid) && rbt_ms() < end)
        rbt_poll_interval();
    return rbt_pid_gone(pid);
}

/* Asks the hive to shut worker s down (200). */
static void request_shutdown(rbt_hive *h, const spawned *s)
{
    char body[128];
    json_t *r = NULL;
    snprintf(body, sizeof body, "{\"worker_id\":\"%s\"}", s->id);
    ck_assert_int_eq(rbt_hive_json(h, "POST", "/v1/workers/shutdown", body, &r), 200);
    json_decref(r);
}

/* Worker id leaves the hive's list, and the list is then empty. */
static void assert_list_empties(rbt_hive *h, const char *id)
{
    json_t *r = NULL;
    ck_assert(rbt_hive_wait_worker(h, id, NULL, rbt_scaled(2000), NULL));
    ck_assert_int_eq(rbt_hive_json(h, "GET", "/v1/workers/list", NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r, "workers")), 0);
    json_decref(r);
}

/* Polls the hive log until it contains every needle (the log line follows the removal). */
static int wait_log(const rbt_hive *h, const char *a, const char *b, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    int found = 0;
    while (!found && rbt_ms() < end) {
        found = rbt_file_contains(h->log, a) && (!b || rbt_file_contains(h->log, b));
        if (!found)
            rbt_poll_interval();
    }
    return found;
}

static void finish(rbt_hive *h)
{
    ck_assert_int_eq(rbt_hive_stop(h), 0);
    rbt_hive_cleanup(h);
    reap_orphans();
}

/* Scenario: The hive answers health and capabilities */
START_TEST(test_hive_lifecycle__the_hive_answers_health_and_capabilities)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL;

    start_hive(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "GET", "/v1/health", NULL, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r, "status")), "alive");
    ck_assert_str_eq(json_string_value(json_object_get(r, "version")), RB_VERSION);
    ck_assert_str_eq(json_string_value(json_object_get(r, "api_version")), "v1");
    json_decref(r);
    ck_assert_int_eq(rbt_hive_json(&h, "GET", "/v1/capabilities", NULL, &r), 200);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "backends"), 0)), "cpu");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "devices"), "cpu")), 1);
    ck_assert_int_gt(json_integer_value(json_object_get(r, "ram_total_mb")), 0);
    ck_assert(json_is_integer(json_object_get(r, "ram_available_mb")));
    json_decref(r);
    finish(&h);
}
END_TEST

/* Scenario: Spawn, ready and list */
START_TEST(test_hive_lifecycle__spawn_ready_and_list)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL, *w = NULL;
    regex_t re;
    int64_t t0;

    start_hive(&h, &o);
    t0 = rbt_ms();
    ck_assert_int_eq(spawn(&h, "cpu", &r), 200);
    ck_assert_int_eq(regcomp(&re,
                             "^worker-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                             "-[0-9a-f]{12}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    const char *id = json_string_value(json_object_get(r, "worker_id"));
    const char *url = json_string_value(json_object_get(r, "url"));
    ck_assert_msg(id && regexec(&re, id, 0, NULL, 0) == 0, "bad worker id %s", id);
    ck_assert_int_ge(atoi(strrchr(url, ':') + 1), 8081);
    ck_assert_int_ge(atoi(strrchr(url, ':') + 1), h.worker_port_base);
    ck_assert_str_eq(json_string_value(json_object_get(r, "state")), "loading");
    ck_assert(rbt_hive_wait_worker(&h, id, "idle", rbt_scaled(READY_MS), &w));
    ck_assert_int_lt(rbt_ms() - t0, rbt_scaled(READY_MS));
    ck_assert(rbt_alive((pid_t)json_integer_value(json_object_get(w, "pid"))));
    ck_assert_str_eq(json_string_value(json_object_get(w, "url")), url);
    ck_assert_str_eq(json_string_value(json_object_get(w, "backend")), "cpu");
    ck_assert(json_is_integer(json_object_get(w, "last_heartbeat_unix")));
    ck_assert(json_is_integer(json_object_get(w, "last_activity_unix")));
    regfree(&re);
    json_decref(w);
    json_decref(r);
    finish(&h);
}
END_TEST

/* Scenario: A worker killed with SIGKILL disappears within one monitor interval */
START_TEST(test_hive_lifecycle__a_worker_killed_with_sigkill_disappears_within_one_monitor_interval)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    spawned s;

    start_hive(&h, &o);
    spawn_idle(&h, &s);
    kill(s.pid, SIGKILL);
    ck_assert(rbt_hive_wait_worker(&h, s.id, NULL, rbt_scaled(2000), NULL));
    ck_assert(wait_pid_gone(s.pid, rbt_scaled(2000)));
    ck_assert_msg(wait_log(&h, s.id, "died", rbt_scaled(2000)),
                  "the hive log does not name the dead worker");
    ck_assert(rbt_file_contains(h.log, "not restarted"));
    finish(&h);
}
END_TEST

/* Scenario: A worker that exits at once is reported with its log tail */
START_TEST(test_hive_lifecycle__a_worker_that_exits_at_once_is_reported_with_its_log_tail)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL;
    const char *msg;

    o.env[0] = "MOCK_WORKER_SCENARIO={\"start_exit_code\":1,\"start_message\":\"bad model\"}";
    start_hive(&h, &o);
    ck_assert_int_eq(spawn(&h, "cpu", &r), 500);
    ck_assert_str_eq(rbt_error_code(r), "WORKER_START_FAILED");
    msg = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
    ck_assert_msg(msg && strstr(msg, "bad model"), "message: %s", msg);
    ck_assert_msg(strstr(msg, "exit status 1"), "message: %s", msg);
    json_decref(r);
    ck_assert_int_eq(rbt_hive_json(&h, "GET", "/v1/workers/list", NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r, "workers")), 0);
    json_decref(r);
    finish(&h);
}
END_TEST

/* Scenario: A worker that never becomes ready is removed */
START_TEST(test_hive_lifecycle__a_worker_that_never_becomes_ready_is_removed)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL, *w = NULL;
    char id[64];
    pid_t pid;

    o.load_timeout = "3";
    o.env[0] = "MOCK_WORKER_SCENARIO={\"never_ready\":true}";
    start_hive(&h, &o);
    ck_assert_int_eq(spawn(&h, "cpu", &r), 200);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r, "worker_id")));
    json_decref(r);
    ck_assert(rbt_hive_wait_worker(&h, id, "loading", rbt_scaled(1000), &w));
    pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    json_decref(w);
    ck_assert(rbt_hive_wait_worker(&h, id, NULL, rbt_scaled(5000), NULL));
    ck_assert(wait_pid_gone(pid, rbt_scaled(1000)));
    ck_assert(wait_log(&h, "load timeout", NULL, rbt_scaled(2000)));
    finish(&h);
}
END_TEST

/* Scenario: A worker whose heartbeats stop is removed */
START_TEST(test_hive_lifecycle__a_worker_whose_heartbeats_stop_is_removed)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    spawned s;
    int64_t last_beat;

    o.heartbeat_interval = "1";
    o.env[0] = "MOCK_WORKER_SCENARIO={\"heartbeats_stop_after_ms\":1500}";
    start_hive(&h, &o);
    spawn_idle(&h, &s);
    /* Heartbeats go out at 0 and 1 s; the one due at 2 s is not sent. */
    last_beat = rbt_ms() + 1000;
    ck_assert(rbt_hive_wait_worker(&h, s.id, NULL, rbt_scaled(6000), NULL));
    ck_assert_int_le(rbt_ms() - last_beat, rbt_scaled(4000));
    ck_assert_int_ge(rbt_ms() - last_beat, 1500);
    ck_assert(wait_pid_gone(s.pid, rbt_scaled(1000)));
    ck_assert(wait_log(&h, "heartbeat lost", NULL, rbt_scaled(2000)));
    finish(&h);
}
END_TEST

/* Scenario: A worker that fails three health checks is removed */
START_TEST(test_hive_lifecycle__a_worker_that_fails_three_health_checks_is_removed)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    spawned s;

    o.env[0] = "MOCK_WORKER_SCENARIO={\"health_status\":500}";
    start_hive(&h, &o);
    spawn_idle(&h, &s);
    ck_assert(rbt_hive_wait_worker(&h, s.id, NULL, rbt_scaled(5000), NULL));
    ck_assert(wait_pid_gone(s.pid, rbt_scaled(1000)));
    ck_assert(wait_log(&h, "health checks failed", NULL, rbt_scaled(2000)));
    finish(&h);
}
END_TEST

/* Count of lines of the hive's log that contain needle. */
static int log_count(const rbt_hive *h, const char *needle)
{
    char *text = rbt_slurp(h->log);
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(text);
    return n;
}

static int wait_log_count(const rbt_hive *h, const char *needle, int n, int timeout_ms)
{
    int64_t end = rbt_ms() + timeout_ms;
    while (log_count(h, needle) < n && rbt_ms() < end)
        rbt_poll_interval();
    return log_count(h, needle) >= n;
}

/* A connection to 127.0.0.1:port with the start of a request sent, held open. */
static int hold_partial(int port)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    const char part[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\n";

    ck_assert_int_ge(fd, 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(send(fd, part, sizeof part - 1, MSG_NOSIGNAL), (ssize_t)(sizeof part - 1));
    return fd;
}

/* Scenario: A worker that is full is not taken for dead */
START_TEST(test_hive_lifecycle__a_worker_that_is_full_is_not_taken_for_dead)
{
    const char *scenarios[] = {"MOCK_WORKER_SCENARIO={\"max_conns_per_ip\":3}",
                               "MOCK_WORKER_SCENARIO={\"health_status\":503}"};
    for (int k = 0; k < 2; k++) {
        rbt_hive h;
        rbt_hive_opts o = rbt_hive_opts_default();
        spawned s;
        int held[3], nheld = k == 0 ? 3 : 0;

        o.env[0] = scenarios[k];
        start_hive(&h, &o);
        spawn_idle(&h, &s);
        for (int i = 0; i < nheld; i++)
            held[i] = hold_partial(s.port);
        /* Four checks, one more than HIVE_HEALTH_FAILURES, every one of them "full". */
        ck_assert_msg(wait_log_count(&h, "is full", 4, rbt_scaled(8000)),
                      "scenario %d: the monitor did not see the worker full 4 times", k);
        ck_assert_int_eq(log_count(&h, "health checks failed"), 0);
        ck_assert(rbt_alive(s.pid));
        ck_assert(rbt_hive_wait_worker(&h, s.id, "idle", 1000, NULL));
        for (int i = 0; i < nheld; i++)
            close(held[i]);
        finish(&h);
    }
}
END_TEST

/* Scenario: Idle workers are shut down after the idle timeout */
START_TEST(test_hive_lifecycle__idle_workers_are_shut_down_after_the_idle_timeout)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    char wlog[4400];
    spawned s;
    int64_t idle_at;

    o.idle_timeout = "2";
    start_hive(&h, &o);
    spawn_idle(&h, &s);
    idle_at = rbt_ms();
    ck_assert(rbt_hive_wait_worker(&h, s.id, NULL, rbt_scaled(4000), NULL));
    ck_assert_int_le(rbt_ms() - idle_at, rbt_scaled(4000));
    ck_assert(wait_pid_gone(s.pid, rbt_scaled(1000)));
    snprintf(wlog, sizeof wlog, "%s/logs/%s.log", h.home, s.id);
    ck_assert_msg(rbt_file_contains(wlog, "received POST /v1/admin/shutdown"),
                  "the worker was not asked over HTTP (see %s)", wlog);
    ck_assert(wait_log(&h, "idle timeout", NULL, rbt_scaled(2000)));
    finish(&h);
}
END_TEST

/* The mock worker's counters. */
static long worker_record(const spawned *s, const char *name)
{
    char url[256];
    rb_buf b;
    json_t *j;
    long v = -1;

    snprintf(url, sizeof url, "%s/mock/records", s->url);
    rb_buf_init(&b, 1 << 16);
    if (rbt_http("GET", url, NULL, NULL, rbt_scaled(2000), &b, NULL) == 200 &&
        (j = json_loads(b.data, 0, NULL))) {
        v = (long)json_integer_value(json_object_get(j, name));
        json_decref(j);
    }
    rb_buf_release(&b);
    return v;
}

/* Scenario: Health checks do not count as activity */
START_TEST(test_hive_lifecycle__health_checks_do_not_count_as_activity)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    spawned s;
    int64_t idle_at, checks = 0;

    o.idle_timeout = "2";
    start_hive(&h, &o);
    spawn_idle(&h, &s);
    idle_at = rbt_ms();
    /* Wait for the first health check while the worker is idle. */
    while (checks < 1 && rbt_ms() - idle_at < rbt_scaled(3000)) {
        checks = worker_record(&s, "health_checks");
        if (checks < 1)
            rbt_poll_interval();
    }
    ck_assert_int_ge(checks, 1);
    ck_assert(rbt_hive_wait_worker(&h, s.id, NULL, rbt_scaled(4000), NULL));
    ck_assert_int_ge(rbt_ms() - idle_at, 1800);
    ck_assert_int_le(rbt_ms() - idle_at, rbt_scaled(4000));
    ck_assert(wait_log(&h, "idle timeout", NULL, rbt_scaled(2000)));
    finish(&h);
}
END_TEST

/* Scenario: Shutting a worker down by request */
START_TEST(test_hive_lifecycle__shutting_a_worker_down_by_request)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    spawned s;

    start_hive(&h, &o);
    spawn_idle(&h, &s);
    request_shutdown(&h, &s);
    ck_assert(wait_pid_gone(s.pid, rbt_scaled(5000)));
    assert_list_empties(&h, s.id);
    finish(&h);
}
END_TEST

/* Scenario: A worker that ignores the shutdown request and SIGTERM is killed */
START_TEST(test_hive_lifecycle__a_worker_that_ignores_the_shutdown_request_and_sigterm_is_killed)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    spawned s;
    int64_t t0, took;

    o.env[0] = "MOCK_WORKER_SCENARIO={\"ignore_shutdown\":true,\"ignore_sigterm\":true}";
    start_hive(&h, &o);
    spawn_idle(&h, &s);
    t0 = rbt_ms();
    request_shutdown(&h, &s);
    ck_assert(wait_pid_gone(s.pid, rbt_scaled(20000)));
    took = rbt_ms() - t0;
    printf("escalation to SIGKILL took %lld ms\n", (long long)took);
    /* the two graces (8 s each) passed: neither signal came early */
    ck_assert_int_ge(took, 16000);
    ck_assert(wait_log(&h, "did not exit after the shutdown request; sending SIGTERM",
                       "ignored SIGTERM; sending SIGKILL", rbt_scaled(2000)));
    assert_list_empties(&h, s.id);
    finish(&h);
}
END_TEST

/* Scenario: Worker options set on the hive reach every worker */
START_TEST(test_hive_lifecycle__worker_options_set_on_the_hive_reach_every_worker)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    char dir[4096], script[4200], args[4200], mock[4096], log[4200];
    char *bad[] = {NULL, "daemon", "--local-mode", "--worker-slots", "0", NULL};
    char text[8400];
    json_t *r = NULL, *w;
    spawned s;
    int status = 0;

    /* the worker binary is a script that records its arguments, then runs mock-worker */
    rbt_tmpdir(dir);
    snprintf(mock, sizeof mock, "%s", rbt_bin("mock-worker"));
    snprintf(script, sizeof script, "%s/recording-worker", dir);
    snprintf(args, sizeof args, "%s/args", dir);
    snprintf(text, sizeof text, "#!/bin/sh\necho \"$*\" > '%s'\nexec '%s' \"$@\"\n", args, mock);
    rbt_write_script(script, text);
    o.worker_binary = script;
    o.args[0] = "--worker-slots";
    o.args[1] = "2";
    o.args[2] = "--worker-threads";
    o.args[3] = "1";
    o.args[4] = "--worker-ctx";
    o.args[5] = "64";
    o.args[6] = "--worker-kv-type";
    o.args[7] = "q8_0";
    start_hive(&h, &o);
    spawn_idle(&h, &s);
    ck_assert(rbt_file_contains(args, "--slots 2"));
    ck_assert(rbt_file_contains(args, "--threads 1"));
    ck_assert(rbt_file_contains(args, "--ctx 64"));
    ck_assert(rbt_file_contains(args, "--kv-type q8_0"));
    ck_assert_int_eq(rbt_hive_json(&h, "GET", "/v1/workers/list", NULL, &r), 200);
    w = json_array_get(json_object_get(r, "workers"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "slots_total")), 2);
    /* the worker's resident set, from /proc/<pid>/statm (a mock worker: a few MB) */
    ck_assert_msg(json_is_integer(json_object_get(w, "rss_mb")), "rss_mb missing");
    ck_assert_int_ge(json_integer_value(json_object_get(w, "rss_mb")), 1);
    ck_assert_int_lt(json_integer_value(json_object_get(w, "rss_mb")), 1024);
    json_decref(r);
    finish(&h);
    /* a bad count is a usage error naming the option */
    bad[0] = (char *)rbt_bin("rbee-hive");
    snprintf(log, sizeof log, "%s/bad.log", dir);
    ck_assert(rbt_wait_exit(rbt_spawn(bad, NULL, log), rbt_scaled(5000), &status));
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 2);
    ck_assert(rbt_file_contains(log, "--worker-slots takes an integer from 1 to 64"));
    bad[3] = "--worker-kv-type";
    bad[4] = "q4_0";
    ck_assert(rbt_wait_exit(rbt_spawn(bad, NULL, log), rbt_scaled(5000), &status));
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 2);
    ck_assert(rbt_file_contains(log, "--worker-kv-type must be f16, q8_0 or f32"));
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: Unknown workers get 404 */
START_TEST(test_hive_lifecycle__unknown_workers_get_404)
{
    static const char *const paths[] = {"/v1/heartbeat", "/v1/workers/ready",
                                        "/v1/workers/shutdown"};
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL;

    start_hive(&h, &o);
    for (size_t i = 0; i < RB_ARRAY_LEN(paths); i++) {
        ck_assert_int_eq(rbt_hive_json(&h, "POST", paths[i],
                                       "{\"worker_id\":\"worker-unknown\",\"state\":\"idle\"}", &r),
                         404);
        ck_assert_str_eq(rbt_error_code(r), "WORKER_NOT_FOUND");
        json_decref(r);
    }
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/heartbeat", "{\"state\":\"idle\"}", &r), 400);
    ck_assert_str_eq(rbt_error_code(r), "INVALID_REQUEST");
    json_decref(r);
    /* Valid JSON that is not an object gets the worker's code; broken JSON INVALID_JSON. */
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/heartbeat", "[1,2]", &r), 400);
    ck_assert_str_eq(rbt_error_code(r), "INVALID_REQUEST");
    json_decref(r);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn", "{\"model_ref\":", &r), 400);
    ck_assert_str_eq(rbt_error_code(r), "INVALID_JSON");
    json_decref(r);
    finish(&h);
}
END_TEST

/* Scenario: Not enough RAM gives 507 with the numbers */
START_TEST(test_hive_lifecycle__not_enough_ram_gives_507_with_the_numbers)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    char path[4200], bundled[4300];
    json_t *r = NULL, *d;

    rbt_hive_init(&h);
    model_path(&h, path, sizeof path);
    rbt_write_fake_gguf(path, 4096);
    snprintf(bundled, sizeof bundled, "RBEE_BUNDLED_MODEL=%s", path);
    o.env[0] = "RBEE_HIVE_RAM_LIMIT_MB=1";
    o.env[1] = bundled;
    rbt_hive_start(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn",
                                   "{\"model_ref\":\"" HIVE_BUNDLED_NAME "\",\"backend\":\"cpu\","
                                   "\"device\":0}",
                                   &r),
                     507);
    ck_assert_str_eq(rbt_error_code(r), "INSUFFICIENT_MEMORY");
    d = json_object_get(json_object_get(r, "error"), "details");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "available_mb")), 1);
    ck_assert_int_gt(json_integer_value(json_object_get(d, "required_mb")), 1);
    json_decref(r);
    ck_assert_int_eq(rbt_hive_json(&h, "GET", "/v1/capabilities", NULL, &r), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "ram_available_mb")), 1);
    json_decref(r);
    finish(&h);
}
END_TEST

/* A GGUF file with the metadata of Llama-3.1-8B and no tensors at path. */
static void write_llama3_header(const char *path)
{
    eng_gguf_writer *w = eng_gguf_writer_new();
    const char *toks[1000];
    char names[1000][8], err[256];

    for (int i = 0; i < 1000; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        toks[i] = names[i];
    }
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(eng_gguf_writer_set_str(w, "general.architecture", "llama"), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "llama.context_length", 131072), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "llama.embedding_length", 4096), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "llama.block_count", 32), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "llama.feed_forward_length", 14336), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "llama.attention.head_count", 32), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 8), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_u32(w, "llama.rope.dimension_count", 128), RB_OK);
    ck_assert_int_eq(eng_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 1000), RB_OK);
    ck_assert_msg(eng_gguf_writer_write(w, path, err, sizeof err) == RB_OK, "%s", err);
    eng_gguf_writer_free(w);
}

/* Scenario: The memory check counts the KV cache at the workers' context and cache type */
START_TEST(
    test_hive_lifecycle__the_memory_check_counts_the_kv_cache_at_the_workers_context_and_cache_type)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    char path[4200], bundled[4300];
    const char *msg;
    json_t *r = NULL, *d;

    /* default worker options: 4096 tokens of F16 cache fit in 2048 MB */
    rbt_hive_init(&h);
    model_path(&h, path, sizeof path);
    write_llama3_header(path);
    snprintf(bundled, sizeof bundled, "RBEE_BUNDLED_MODEL=%s", path);
    o.env[0] = "RBEE_HIVE_RAM_LIMIT_MB=2048";
    o.env[1] = bundled;
    rbt_hive_start(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn",
                                   "{\"model_ref\":\"" HIVE_BUNDLED_NAME "\"}", &r),
                     200);
    json_decref(r);
    finish(&h);

    /* the training context in F32: 32 GiB of cache */
    o.args[0] = "--worker-ctx";
    o.args[1] = "0";
    o.args[2] = "--worker-kv-type";
    o.args[3] = "f32";
    rbt_hive_init(&h);
    model_path(&h, path, sizeof path);
    write_llama3_header(path);
    snprintf(bundled, sizeof bundled, "RBEE_BUNDLED_MODEL=%s", path);
    rbt_hive_start(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn",
                                   "{\"model_ref\":\"" HIVE_BUNDLED_NAME "\"}", &r),
                     507);
    ck_assert_str_eq(rbt_error_code(r), "INSUFFICIENT_MEMORY");
    d = json_object_get(json_object_get(r, "error"), "details");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "kv_cache_mb")), 32768);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "context")), 131072);
    ck_assert_str_eq(json_string_value(json_object_get(d, "kv_type")), "f32");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "slots")), 1);
    ck_assert_int_gt(json_integer_value(json_object_get(d, "required_mb")), 32768);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "available_mb")), 2048);
    msg = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
    ck_assert_msg(msg && strstr(msg, "KV cache 32768 MB for 1 x 131072 tokens in f32"), "%s", msg);
    json_decref(r);
    finish(&h);
}
END_TEST

/* Scenario: An absent backend gives 503 with the available list */
START_TEST(test_hive_lifecycle__an_absent_backend_gives_503_with_the_available_list)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL, *avail;
    char dir[4096], smi[4200], path_env[8192], log[4200], *text;
    char hive_bin[4096];
    char *argv[] = {hive_bin, "detect", "--json", NULL};
    char *env[] = {path_env, NULL};
    const char *path = getenv("PATH");
    int status = 0;

    /* a machine with one NVIDIA GPU, as far as the hive can tell */
    rbt_tmpdir(dir);
    snprintf(smi, sizeof smi, "%s/nvidia-smi", dir);
    rbt_write_script(smi, "#!/bin/sh\necho 'NVIDIA GeForce RTX 3090'\n");
    snprintf(path_env, sizeof path_env, "PATH=%s:%s", dir, path ? path : "/usr/bin:/bin");
    o.env[0] = path_env;
    start_hive(&h, &o);
    ck_assert_int_eq(spawn(&h, "cuda", &r), 503);
    ck_assert_str_eq(rbt_error_code(r), "BACKEND_UNAVAILABLE");
    avail = json_object_get(json_object_get(json_object_get(r, "error"), "details"), "available");
    ck_assert_int_eq(json_array_size(avail), 1);
    ck_assert_str_eq(json_string_value(json_array_get(avail, 0)), "cpu");
    json_decref(r);
    finish(&h);
    snprintf(log, sizeof log, "%s/detect.json", dir);
    snprintf(hive_bin, sizeof hive_bin, "%s", rbt_bin("rbee-hive")); /* rbt_bin: one buffer */
    ck_assert(rbt_wait_exit(rbt_spawn(argv, env, log), rbt_scaled(5000), &status));
    text = rbt_slurp(log);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "detect: status %d: %s", status,
                  text);
    ck_assert_msg(strstr(text, "\"backends\":[\"cpu\"]") &&
                      strstr(text, "\"found_not_served\":{\"cuda\":1}"),
                  "detect --json: %s", text);
    free(text);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: SIGTERM stops every worker and leaves nothing behind */
START_TEST(test_hive_lifecycle__sigterm_stops_every_worker_and_leaves_nothing_behind)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    char db[4200];
    spawned s[2];
    int64_t t0;

    start_hive(&h, &o);
    spawn_idle(&h, &s[0]);
    spawn_idle(&h, &s[1]);
    ck_assert_int_ne(s[0].port, s[1].port);
    t0 = rbt_ms();
    ck_assert_int_eq(rbt_hive_stop(&h), 0);
    ck_assert_int_le(rbt_ms() - t0, rbt_scaled(30000));
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(rbt_pid_gone(s[i].pid), "worker pid %d is still there (alive: %d)",
                      (int)s[i].pid, rbt_alive(s[i].pid));
        ck_assert_msg(!rbt_port_open(s[i].port), "port %d is still bound", s[i].port);
    }
    ck_assert(!rbt_port_open(h.port));
    snprintf(db, sizeof db, "%s/models.db", h.home);
    ck_assert(access(db, F_OK) == 0);
    rbt_hive_cleanup(&h);
    reap_orphans();
}
END_TEST

/* Scenario: A hive killed with SIGKILL leaves no worker behind */
START_TEST(test_hive_lifecycle__a_hive_killed_with_sigkill_leaves_no_worker_behind)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    spawned s;
    int64_t end;

    start_hive(&h, &o);
    spawn_idle(&h, &s);
    rbt_kill(h.pid);
    h.pid = 0;
    /* The orphan is re-parented to this test (a subreaper): reap it as it exits. */
    end = rbt_ms() + rbt_scaled(5000);
    while (!rbt_pid_gone(s.pid) && rbt_ms() < end) {
        reap_orphans();
        rbt_poll_interval();
    }
    ck_assert_msg(rbt_pid_gone(s.pid), "worker %d outlived its hive", (int)s.pid);
    rbt_hive_cleanup(&h);
}
END_TEST

/* Scenario: Network mode requires a token */
START_TEST(test_hive_lifecycle__network_mode_requires_a_token)
{
    char home[4096], log[4200], addr[64], env_home[4200];
    char *argv[] = {(char *)rbt_bin("rbee-hive"), "daemon", "--addr", addr, NULL};
    char *env[] = {env_home, NULL};
    int status = 0;
    pid_t pid;

    rbt_tmpdir(home);
    snprintf(log, sizeof log, "%s/hive.log", home);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", rbt_free_port());
    snprintf(env_home, sizeof env_home, "RBEE_HOME=%s", home);
    pid = rbt_spawn(argv, env, log);
    ck_assert(rbt_wait_exit(pid, rbt_scaled(5000), &status));
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    ck_assert(rbt_file_contains(log, "--local-mode"));
    ck_assert(rbt_file_contains(log, "RBEE_API_TOKEN"));
    rbt_rmtree(home);
}
END_TEST

/* Scenario: Local mode refuses a non-loopback address */
START_TEST(test_hive_lifecycle__local_mode_refuses_a_non_loopback_address)
{
    char home[4096], log[4200], addr[64], env_home[4200];
    char *argv[] = {(char *)rbt_bin("rbee-hive"), "daemon", "--local-mode", "--addr", addr, NULL};
    char *env[] = {env_home, NULL};
    int status = 0, port = rbt_free_port();
    pid_t pid;

    rbt_tmpdir(home);
    snprintf(log, sizeof log, "%s/hive.log", home);
    snprintf(addr, sizeof addr, "0.0.0.0:%d", port);
    snprintf(env_home, sizeof env_home, "RBEE_HOME=%s", home);
    pid = rbt_spawn(argv, env, log);
    ck_assert(rbt_wait_exit(pid, rbt_scaled(5000), &status));
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    ck_assert(rbt_file_contains(log, "only on loopback"));
    ck_assert(rbt_file_contains(log, "'0.0.0.0' is not a loopback address"));
    ck_assert(!rbt_port_open(port));
    rbt_rmtree(home);
}
END_TEST

/* Status of a request without a token. */
static long no_token(rbt_hive *h, const char *method, const char *path)
{
    const char *headers[] = {"Content-Type: application/json", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s%s", h->base, path);
    return rbt_http(method, url, headers, strcmp(method, "POST") == 0 ? "{}" : NULL,
                    rbt_scaled(5000), NULL, NULL);
}

/* Scenario: Network mode protects every route but health and metrics */
START_TEST(test_hive_lifecycle__network_mode_protects_every_route_but_health_and_metrics)
{
    static const char *const protected_routes[][2] = {
        {"GET", "/v1/capabilities"},
        {"POST", "/v1/workers/spawn"},
        {"POST", "/v1/workers/ready"},
        {"POST", "/v1/heartbeat"},
        {"GET", "/v1/workers/list"},
        {"POST", "/v1/workers/shutdown"},
        {"GET", "/v1/models"},
        {"POST", "/v1/models/download"},
        {"GET", "/v1/models/download/x/progress"},
    };
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    char fp[7], line[64];
    spawned s;

    o.token = "s3cret-token";
    start_hive(&h, &o);
    ck_assert_int_eq(no_token(&h, "GET", "/v1/health"), 200);
    ck_assert_int_eq(no_token(&h, "GET", "/metrics"), 200);
    for (size_t i = 0; i < RB_ARRAY_LEN(protected_routes); i++)
        ck_assert_msg(no_token(&h, protected_routes[i][0], protected_routes[i][1]) == 401,
                      "%s %s is not protected", protected_routes[i][0], protected_routes[i][1]);
    spawn_idle(&h, &s); /* the worker's heartbeats and ready callback carry the token */
    ck_assert_int_eq(rbt_hive_stop(&h), 0);
    rb_token_fingerprint(o.token, fp);
    snprintf(line, sizeof line, "token fingerprint %s", fp);
    ck_assert(rbt_file_contains(h.log, line));
    ck_assert_msg(!rbt_file_contains(h.log, o.token), "the hive log shows the token");
    rbt_hive_cleanup(&h);
    reap_orphans();
}
END_TEST

/* Scenario: detect prints backends and devices */
START_TEST(test_hive_lifecycle__detect_prints_backends_and_devices)
{
    char home[4096], log[4200], cores[32];
    char *argv[] = {(char *)rbt_bin("rbee-hive"), "detect", NULL, NULL};
    hive_backends b;
    json_t *j, *want;
    char *text;
    int status = 0;

    hive_detect(&b);
    rbt_tmpdir(home);
    snprintf(log, sizeof log, "%s/table.txt", home);
    ck_assert(rbt_wait_exit(rbt_spawn(argv, NULL, log), rbt_scaled(5000), &status));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(cores, sizeof cores, "%d cores", rb_physical_cores());
    ck_assert(rbt_file_contains(log, "cpu"));
    ck_assert(rbt_file_contains(log, cores));
    argv[2] = "--json";
    snprintf(log, sizeof log, "%s/json.txt", home);
    ck_assert(rbt_wait_exit(rbt_spawn(argv, NULL, log), rbt_scaled(5000), &status));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    text = rbt_slurp(log);
    j = json_loads(text, 0, NULL);
    ck_assert_msg(j != NULL, "not JSON: %s", text);
    if (b.n == 1) {
        want = json_loads("{\"backends\":[\"cpu\"],\"devices\":{\"cpu\":1}}", 0, NULL);
        ck_assert_msg(json_equal(j, want), "got %s", text);
        json_decref(want);
    }
    json_decref(j);
    free(text);
    rbt_rmtree(home);
}
END_TEST

/* Scenario: Worker logs are rotated */
START_TEST(test_hive_lifecycle__worker_logs_are_rotated)
{
    rbt_hive h;
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL;
    char path[4400];
    struct timespec old[2] = {{0, 0}, {0, 0}};
    int kept = 0, have_new = 0;
    DIR *d;
    struct dirent *e;

    rbt_hive_init(&h);
    snprintf(path, sizeof path, "%s/logs", h.home);
    ck_assert_int_eq(rb_mkdir_p(path), RB_OK);
    for (int i = 0; i < 25; i++) {
        snprintf(path, sizeof path, "%s/logs/worker-old-%02d.log", h.home, i);
        ck_assert_int_eq(rb_write_file_atomic(path, "x\n", 2), RB_OK);
        old[0].tv_sec = old[1].tv_sec = 1000000 + i; /* 1970: older than any new log */
        ck_assert_int_eq(utimensat(AT_FDCWD, path, old, 0), 0);
    }
    snprintf(path, sizeof path, "%s/logs/hive-ephemeral.log", h.home);
    ck_assert_int_eq(rb_write_file_atomic(path, "x\n", 2), RB_OK);
    ck_assert_int_eq(utimensat(AT_FDCWD, path, old, 0), 0);
    model_path(&h, path, sizeof path);
    rbt_write_fake_gguf(path, 4096);
    rbt_hive_start(&h, &o);
    ck_assert_int_eq(spawn(&h, "cpu", &r), 200);
    const char *id = json_string_value(json_object_get(r, "worker_id"));
    /* The spawner prunes right after the worker started: poll for it with a deadline. */
    for (int64_t end = rbt_ms() + rbt_scaled(5000);;) {
        int old_left = 0;
        kept = have_new = 0;
        snprintf(path, sizeof path, "%s/logs", h.home);
        d = opendir(path);
        ck_assert_ptr_nonnull(d);
        while ((e = readdir(d))) {
            char want[128];
            snprintf(want, sizeof want, "%s.log", id);
            kept += strncmp(e->d_name, "worker-", 7) == 0;
            have_new += strcmp(e->d_name, want) == 0;
            /* the six oldest (00 to 05) must go */
            old_left += strncmp(e->d_name, "worker-old-0", 12) == 0 && e->d_name[12] <= '5';
        }
        closedir(d);
        if ((kept == 20 && !old_left) || rbt_ms() > end)
            break;
        rbt_poll_interval();
    }
    ck_assert_int_eq(kept, 20);
    ck_assert_int_eq(have_new, 1);
    snprintf(path, sizeof path, "%s/logs/hive-ephemeral.log", h.home);
    ck_assert_int_eq(access(path, F_OK), 0);
    json_decref(r);
    finish(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hive_lifecycle");
    TCase *tc = rbt_tcase(s, "lifecycle", rbt_scaled(60000) / 1000.0);

    tcase_add_checked_fixture(tc, setup, NULL); /* runs in each test's own process */
    tcase_add_test(tc, test_hive_lifecycle__the_hive_answers_health_and_capabilities);
    tcase_add_test(tc, test_hive_lifecycle__spawn_ready_and_list);
    tcase_add_test(
        tc,
        test_hive_lifecycle__a_worker_killed_with_sigkill_disappears_within_one_monitor_interval);
    tcase_add_test(tc,
                   test_hive_lifecycle__a_worker_that_exits_at_once_is_reported_with_its_log_tail);
    tcase_add_test(tc, test_hive_lifecycle__a_worker_that_never_becomes_ready_is_removed);
    tcase_add_test(tc, test_hive_lifecycle__a_worker_whose_heartbeats_stop_is_removed);
    tcase_add_test(tc, test_hive_lifecycle__a_worker_that_fails_three_health_checks_is_removed);
    tcase_add_test(tc, test_hive_lifecycle__a_worker_that_is_full_is_not_taken_for_dead);
    tcase_add_test(tc, test_hive_lifecycle__idle_workers_are_shut_down_after_the_idle_timeout);
    tcase_add_test(tc, test_hive_lifecycle__health_checks_do_not_count_as_activity);
    tcase_add_test(tc, test_hive_lifecycle__shutting_a_worker_down_by_request);
    tcase_add_test(
        tc, test_hive_lifecycle__a_worker_that_ignores_the_shutdown_request_and_sigterm_is_killed);
    tcase_add_test(tc, test_hive_lifecycle__worker_options_set_on_the_hive_reach_every_worker);
    tcase_add_test(tc, test_hive_lifecycle__unknown_workers_get_404);
    tcase_add_test(tc, test_hive_lifecycle__not_enough_ram_gives_507_with_the_numbers);
    tcase_add_test(
        tc,
        test_hive_lifecycle__the_memory_check_counts_the_kv_cache_at_the_workers_context_and_cache_type);
    tcase_add_test(tc, test_hive_lifecycle__an_absent_backend_gives_503_with_the_available_list);
    tcase_add_test(tc, test_hive_lifecycle__sigterm_stops_every_worker_and_leaves_nothing_behind);
    tcase_add_test(tc, test_hive_lifecycle__a_hive_killed_with_sigkill_leaves_no_worker_behind);
    tcase_add_test(tc, test_hive_lifecycle__network_mode_requires_a_token);
    tcase_add_test(tc, test_hive_lifecycle__local_mode_refuses_a_non_loopback_address);
    tcase_add_test(tc,
                   test_hive_lifecycle__network_mode_protects_every_route_but_health_and_metrics);
    tcase_add_test(tc, test_hive_lifecycle__detect_prints_backends_and_devices);
    tcase_add_test(tc, test_hive_lifecycle__worker_logs_are_rotated);
    return rbt_run(s);
}
