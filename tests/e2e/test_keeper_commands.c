/*
 * End-to-end tests of spec/keeper_commands.feature: nodes, hives, workers and models managed
 * with the real rbee. ssh is replaced through RBEE_SSH by small scripts (one that fails, one
 * that runs the command on this machine). The scenario with a second network namespace is in
 * test_keeper_two_nodes.c, which ctest reports as skipped where namespaces are not allowed.
 * Every rbee run has a deadline; detached hives carry the suite's marker and are stopped by
 * the unchecked teardown even when a test fails half-way.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_models.h"
#include "rb_procs.h"
#include "rb_test.h"
#include "rb_util.h"
#include "rbt_hive.h"
#include "rbt_keeper.h"

#define RUN_MS 60000
#define PROMPT "In the beginning"

/* The end of a test with a hive: it stops cleanly (exit 0), then both are cleaned up. */
static void finish(rbt_hive *h, rbt_keeper *k)
{
    ck_assert_int_eq(rbt_hive_stop(h), 0);
    rbt_keeper_cleanup(k);
    rbt_hive_cleanup(h);
}

/* s with every run of spaces squeezed to one (caller frees). */
static char *squeeze(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    for (; *s; s++)
        if (*s != ' ' || o == out || o[-1] != ' ')
            *o++ = *s;
    *o = '\0';
    return out;
}

/* Scenario: Adding a node tests SSH first */
START_TEST(test_keeper_commands__adding_a_node_tests_ssh_first)
{
    const char *add[] = {"setup", "add-node", "--name", "down", "--ssh-host", "down.example", NULL};
    const char *list[] = {"setup", "list-nodes", NULL};
    char script[4400], argslog[4400], text[9000], *err, *args;
    rbt_keeper k;
    int code;

    rbt_keeper_init(&k, NULL);
    snprintf(script, sizeof script, "%s/fake-ssh", k.home);
    snprintf(argslog, sizeof argslog, "%s/ssh-args", k.home);
    snprintf(text, sizeof text,
             "#!/bin/sh\necho \"$@\" >> '%s'\ncase \"$*\" in *down.example*)\n"
             "  echo 'ssh: Could not resolve hostname down.example: Name or service not known' "
             ">&2\n  exit 255;;\nesac\nexit 0\n",
             argslog);
    rbt_write_script(script, text);
    rbt_keeper_env(&k, "RBEE_SSH=%s", script);
    code = rbt_keeper_run(&k, RUN_MS, add);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 1, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Cannot reach 'down.example' over ssh"));
    ck_assert_ptr_nonnull(strstr(err, "Could not resolve hostname down.example"));
    ck_assert_ptr_nonnull(strstr(err, "Nothing was saved."));
    args = rbt_slurp(argslog);
    ck_assert_ptr_nonnull(args);
    ck_assert_ptr_nonnull(strstr(args, "-o BatchMode=yes -o ConnectTimeout=10 -p 22 down.example"));
    free(args);
    free(err);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, list), 0);
    ck_assert(rbt_keeper_out_has(&k, "No nodes registered"));
    ck_assert(!rbt_keeper_out_has(&k, "down"));
    rbt_keeper_cleanup(&k);
}
END_TEST

/* Scenario: Nodes are added, listed and removed */
START_TEST(test_keeper_commands__nodes_are_added_listed_and_removed)
{
    const char *add[] = {"setup",      "add-node", "--name",      "gpu1", "--ssh-host", "10.0.0.5",
                         "--ssh-user", "rbee",     "--hive-port", "9090", NULL};
    const char *list[] = {"setup", "list-nodes", NULL};
    const char *rm[] = {"setup", "remove-node", "--name", "gpu1", NULL};
    char script[4400], *out, *sq;
    rbt_keeper k;

    rbt_keeper_init(&k, NULL);
    snprintf(script, sizeof script, "%s/fake-ssh", k.home);
    rbt_write_script(script, "#!/bin/sh\necho rbee-hive-found\n");
    rbt_keeper_env(&k, "RBEE_SSH=%s", script);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, add), 0);
    ck_assert(rbt_keeper_out_has(&k, "Node 'gpu1' added"));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, add), 1); /* the name is taken */
    ck_assert(rbt_keeper_err_has(&k, "already exists"));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, list), 0);
    out = rbt_keeper_out(&k);
    sq = squeeze(out);
    ck_assert_msg(strstr(sq, "gpu1 10.0.0.5 9090 rbee@10.0.0.5:22") != NULL, "%s", out);
    free(sq);
    free(out);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, rm), 0);
    ck_assert(rbt_keeper_out_has(&k, "Node 'gpu1' removed"));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, list), 0);
    ck_assert(!rbt_keeper_out_has(&k, "gpu1"));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, rm), 1);
    ck_assert(rbt_keeper_err_has(&k, "Unknown node 'gpu1'"));
    rbt_keeper_cleanup(&k);
}
END_TEST

/* Scenario: Hive start, status and stop on a node over ssh */
START_TEST(test_keeper_commands__hive_start_status_and_stop_on_a_node_over_ssh)
{
    char script[4400], argslog[4400], text[9000], port[16], bin[4096], *args;
    const char *add[] = {"setup",      "add-node",  "--name",      "local2",
                         "--ssh-host", "127.0.0.1", "--hive-port", port,
                         "--hive-bin", bin,         NULL};
    const char *start[] = {"hive", "start", "--node", "local2", NULL};
    const char *status[] = {"hive", "status", "--node", "local2", NULL};
    const char *stop[] = {"hive", "stop", "--node", "local2", NULL};
    rbt_keeper k;
    int p = rbt_free_port(), code;

    rbt_keeper_init(&k, NULL);
    snprintf(port, sizeof port, "%d", p);
    snprintf(bin, sizeof bin, "%s", rbt_bin("rbee-hive"));
    snprintf(script, sizeof script, "%s/local-ssh", k.home);
    snprintf(argslog, sizeof argslog, "%s/ssh-args", k.home);
    /* ssh's last argument is the command: run it here. */
    snprintf(text, sizeof text,
             "#!/bin/sh\necho \"$@\" >> '%s'\nfor a; do cmd=$a; done\nexec /bin/sh -c \"$cmd\"\n",
             argslog);
    rbt_write_script(script, text);
    rbt_keeper_env(&k, "RBEE_SSH=%s", script);
    rbt_keeper_env(&k, "RBEE_API_TOKEN=local2-secret");
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, add), 0);
    ck_assert(!rbt_keeper_err_has(&k, "was not found"));

    code = rbt_keeper_run(&k, RUN_MS, start);
    ck_assert_msg(code == 0, "hive start: exit %d", code);
    ck_assert(rbt_keeper_out_has(&k, "Hive started on local2"));
    ck_assert(rbt_port_open(p));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, status), 0);
    ck_assert(rbt_keeper_out_has(&k, "alive, version " RB_VERSION ", 0 workers"));
    /* The token travelled on ssh's stdin, never on its command line. */
    args = rbt_slurp(argslog);
    ck_assert_ptr_nonnull(args);
    ck_assert_ptr_null(strstr(args, "local2-secret"));
    ck_assert_ptr_nonnull(strstr(args, "--addr 0.0.0.0:"));
    free(args);

    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, stop), 0);
    ck_assert(rbt_keeper_out_has(&k, "Hive on local2 stopped"));
    ck_assert(!rbt_port_open(p));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, status), 1);
    ck_assert(rbt_keeper_err_has(&k, "is not running"));
    rbt_keeper_cleanup(&k);
}
END_TEST

/* Scenario: Workers are listed, health-checked and shut down */
START_TEST(test_keeper_commands__workers_are_listed_health_checked_and_shut_down)
{
    char id[128], health_line[256];
    const char *list[] = {"workers", "list", NULL};
    const char *health[] = {"workers", "health", NULL};
    const char *shutdown[] = {"workers", "shutdown", "--id", id, NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *r = NULL;
    rbt_hive h;
    rbt_keeper k;

    rbt_hive_start_real(&h, &o);
    ck_assert_int_eq(rbt_hive_json(&h, "POST", "/v1/workers/spawn", "{\"model_ref\":\"kjv\"}", &r),
                     200);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r, "worker_id")));
    json_decref(r);
    ck_assert(rbt_hive_wait_worker(&h, id, "idle", 15000, NULL));
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);

    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, list), 0);
    ck_assert(rbt_keeper_out_has(&k, id));
    ck_assert(rbt_keeper_out_has(&k, " idle "));
    ck_assert(rbt_keeper_out_has(&k, " RSS"));
    ck_assert(rbt_keeper_out_has(&k, " MB")); /* the real worker's resident set */
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, health), 0);
    snprintf(health_line, sizeof health_line, "%s healthy idle", id);
    ck_assert(rbt_keeper_out_has(&k, health_line));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, shutdown), 0);
    ck_assert(rbt_keeper_out_has(&k, "stopped"));
    ck_assert(rbt_hive_wait_worker(&h, id, NULL, 1000, NULL)); /* already gone */
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, list), 0);
    ck_assert(rbt_keeper_out_has(&k, "No workers on localhost"));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, shutdown), 1);
    ck_assert(rbt_keeper_err_has(&k, "WORKER_NOT_FOUND"));
    finish(&h, &k);
}
END_TEST

/* Scenario: Models are listed and downloaded */
START_TEST(test_keeper_commands__models_are_listed_and_downloaded)
{
    const char *dl[] = {"models", "download", "hf:test/kjv/model.gguf", NULL};
    const char *list[] = {"models", "list", NULL};
    char *err, *out, *sq, row[128];
    rbt_files f;
    rbt_keeper k;
    size_t n;
    int code;

    rbt_files_init(&f);
    n = rbt_keeper_serve_model(f.root);
    rbt_files_start(&f, "{\"rate_bytes_per_s\":3000000}");
    rbt_keeper_init(&k, NULL);
    rbt_keeper_env(&k, "HF_ENDPOINT=%s", f.base);

    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, list), 0);
    ck_assert(rbt_keeper_out_has(&k, "No downloaded models on localhost"));
    code = rbt_keeper_run(&k, RUN_MS, dl);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Model: downloading hf:test/kjv/model.gguf"));
    ck_assert_msg(rbt_count(err, "\ndownloading: ") >= 3, "too few progress lines:\n%s", err);
    ck_assert_ptr_nonnull(strstr(err, "Model: downloaded hf:test/kjv/model.gguf"));
    free(err);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, list), 0);
    out = rbt_keeper_out(&k);
    sq = squeeze(out);
    snprintf(row, sizeof row, "hf:test/kjv/model.gguf %.1f ", (double)n / 1e6);
    ck_assert_msg(strstr(sq, row) != NULL, "no '%s' in:\n%s", row, out);
    free(sq);
    free(out);
    rbt_keeper_cleanup(&k);
    rbt_files_stop(&f);
}
END_TEST

/* Scenario: A repository and a --file hint name the model */
START_TEST(test_keeper_commands__a_repository_and_a_file_hint_name_the_model)
{
    const char *dl[] = {"models", "download", "hf:test/kjv", "--file", "model.gguf", NULL};
    const char *twice[] = {"models", "download", "hf:test/kjv/model.gguf",
                           "--file", "x.gguf",   NULL};
    const char *notgguf[] = {"infer",  "--prompt",     "x", "--model", "hf:test/kjv",
                             "--file", "../model.bin", NULL};
    char *err;
    rbt_files f;
    rbt_keeper k;
    int code;

    rbt_files_init(&f);
    rbt_keeper_serve_model(f.root);
    rbt_files_start(&f, NULL);
    rbt_keeper_init(&k, NULL);
    rbt_keeper_env(&k, "HF_ENDPOINT=%s", f.base);
    code = rbt_keeper_run(&k, RUN_MS, dl);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, err);
    ck_assert_ptr_nonnull(strstr(err, "Model: downloaded hf:test/kjv/model.gguf"));
    free(err);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, twice), 1);
    ck_assert(rbt_keeper_err_has(&k, "--file applies to a reference hf:<org>/<repo> without a "
                                     "file name, not 'hf:test/kjv/model.gguf'"));
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, notgguf), 1);
    ck_assert(rbt_keeper_err_has(&k, "--file must name a .gguf file of the repository"));
    rbt_keeper_cleanup(&k);
    rbt_files_stop(&f);
}
END_TEST

/* Scenario: Persistent mode keeps the hive and worker alive after the keeper exits */
START_TEST(
    test_keeper_commands__persistent_mode_keeps_the_hive_and_worker_alive_after_the_keeper_exits)
{
    const char *args[] = {"infer", "--prompt", PROMPT, "--max-tokens", "8", NULL};
    rbt_hive_opts o = rbt_hive_opts_default();
    json_t *list = NULL, *w;
    rbt_hive h;
    rbt_keeper k;
    pid_t wpid;

    rbt_hive_start_real(&h, &o);
    rbt_keeper_init(&k, h.home);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", h.port);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, args), 0);
    ck_assert(rbt_keeper_err_has(&k, "persistent"));
    ck_assert(rbt_alive(h.pid));
    ck_assert_int_eq(rbt_hive_json(&h, "GET", "/v1/workers/list", NULL, &list), 200);
    ck_assert_int_eq(json_array_size(json_object_get(list, "workers")), 1);
    w = json_array_get(json_object_get(list, "workers"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(w, "state")), "idle");
    wpid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    ck_assert(!rbt_pid_gone(wpid));
    json_decref(list);
    finish(&h, &k);
}
END_TEST

/* Scenario: A hive that cannot take its port says why */
START_TEST(test_keeper_commands__a_hive_that_cannot_take_its_port_says_why)
{
    const char *start[] = {"hive", "start", NULL};
    const char *status[] = {"hive", "status", NULL};
    char want[256];
    rbt_files f;
    rbt_keeper k;

    rbt_files_init(&f);
    rbt_files_start(&f, NULL);
    rbt_keeper_init(&k, NULL);
    rbt_keeper_env(&k, "RBEE_HIVE_PORT=%d", f.port);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, status), 1);
    snprintf(want, sizeof want,
             "Error: The hive of localhost (http://127.0.0.1:%d) is not running: the program on "
             "its port is not a hive (it answered 404 Not Found)\n"
             "Suggestion: stop the program that holds port %d, or give the hive another port "
             "(RBEE_HIVE_PORT)",
             f.port, f.port);
    ck_assert_msg(rbt_keeper_err_has(&k, want), "no \"%s\" in:\n%s", want, rbt_keeper_err(&k));
    /* The hive that start runs exits at once: the keeper says so within seconds, with the
     * hive's own words, not after the whole start wait. */
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, start), 1);
    snprintf(want, sizeof want,
             "Error: The hive on localhost did not come up at http://127.0.0.1:%d: it exited: "
             "rbee-hive: cannot listen on 127.0.0.1:%d: Address already in use\n",
             f.port, f.port);
    ck_assert_msg(rbt_keeper_err_has(&k, want), "no \"%s\" in:\n%s", want, rbt_keeper_err(&k));
    ck_assert_msg(rbt_keeper_ms(&k) < 10000, "took %lld ms", (long long)rbt_keeper_ms(&k));
    rbt_keeper_cleanup(&k);
    rbt_files_stop(&f);
}
END_TEST

static void reap(void)
{
    rbt_keeper_reap_marked();
}

int main(void)
{
    Suite *s = suite_create("keeper_commands");
    TCase *tc;

    rbt_keeper_mark();
    tc = rbt_tcase(s, "commands", 120);
    tcase_add_unchecked_fixture(tc, NULL, reap);
    tcase_add_test(tc, test_keeper_commands__adding_a_node_tests_ssh_first);
    tcase_add_test(tc, test_keeper_commands__nodes_are_added_listed_and_removed);
    tcase_add_test(tc, test_keeper_commands__hive_start_status_and_stop_on_a_node_over_ssh);
    tcase_add_test(tc, test_keeper_commands__workers_are_listed_health_checked_and_shut_down);
    tcase_add_test(tc, test_keeper_commands__models_are_listed_and_downloaded);
    tcase_add_test(tc, test_keeper_commands__a_repository_and_a_file_hint_name_the_model);
    tcase_add_test(
        tc,
        test_keeper_commands__persistent_mode_keeps_the_hive_and_worker_alive_after_the_keeper_exits);
    tcase_add_test(tc, test_keeper_commands__a_hive_that_cannot_take_its_port_says_why);
    return rbt_run(s);
}
