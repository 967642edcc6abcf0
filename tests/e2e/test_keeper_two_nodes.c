/*
 * End-to-end test of the scenario of spec/keeper_commands.feature with two nodes: the real
 * rbee starts a hive on a second "node", a network namespace joined to this one by a veth pair,
 * with ssh replaced through RBEE_SSH by a script that runs the command inside the namespace.
 *
 * Making a namespace needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN, and the ip command.
 * main() tries once: where it is not allowed the executable runs nothing, prints one SKIP line
 * with ip's reason and exits 77, which ctest reports as skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_test.h"
#include "rbt_keeper.h"

#define RUN_MS 60000
#define PROMPT "In the beginning"

typedef struct netns {
    char name[32], host_if[16], ns_if[16], host_ip[32], ns_ip[32];
} netns;

/* Runs a command (argv) with a deadline; its exit code, or -1. */
static int run_cmd(char *const argv[], const char *log)
{
    int st = 0, code = -1;
    pid_t pid = rbt_spawn(argv, NULL, log);

    if (rbt_wait_exit(pid, 10000, &st))
        code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    else
        rbt_kill(pid);
    return code;
}

/* ip with up to 8 arguments (NULL-terminated). */
static int ip(const char *log, const char *a, const char *b, const char *c, const char *d,
              const char *e, const char *f, const char *g, const char *h)
{
    char *argv[] = {"/usr/sbin/ip", (char *)a, (char *)b, (char *)c, (char *)d,
                    (char *)e,      (char *)f, (char *)g, (char *)h, NULL};
    return run_cmd(argv, log);
}

/* Names and addresses derived from the suite's main process, so that its teardown can remove
 * what a failed test left. */
static void netns_names(netns *n)
{
    int id = atoi(strchr(rbt_keeper_mark(), '=') + 1);

    snprintf(n->name, sizeof n->name, "rbt-ns2-%d", id);
    snprintf(n->host_if, sizeof n->host_if, "rbth%d", id % 100000);
    snprintf(n->ns_if, sizeof n->ns_if, "rbtn%d", id % 100000);
    snprintf(n->host_ip, sizeof n->host_ip, "10.213.%d.1", id % 200);
    snprintf(n->ns_ip, sizeof n->ns_ip, "10.213.%d.2", id % 200);
}

/* Makes the namespace and a veth pair on private addresses; 0 when that is not allowed. */
static int netns_up(netns *n, const char *log)
{
    char host_cidr[40], ns_cidr[40];

    netns_names(n);
    snprintf(host_cidr, sizeof host_cidr, "%s/24", n->host_ip);
    snprintf(ns_cidr, sizeof ns_cidr, "%s/24", n->ns_ip);
    return access("/usr/sbin/ip", X_OK) == 0 &&
           ip(log, "netns", "add", n->name, NULL, NULL, NULL, NULL, NULL) == 0 &&
           ip(log, "link", "add", n->host_if, "type", "veth", "peer", "name", n->ns_if) == 0 &&
           ip(log, "link", "set", n->ns_if, "netns", n->name, NULL, NULL, NULL) == 0 &&
           ip(log, "addr", "add", host_cidr, "dev", n->host_if, NULL, NULL, NULL) == 0 &&
           ip(log, "link", "set", n->host_if, "up", NULL, NULL, NULL, NULL) == 0 &&
           ip(log, "-n", n->name, "addr", "add", ns_cidr, "dev", n->ns_if, NULL) == 0 &&
           ip(log, "-n", n->name, "link", "set", n->ns_if, "up", NULL, NULL) == 0 &&
           ip(log, "-n", n->name, "link", "set", "lo", "up", NULL, NULL) == 0;
}

/* Removes the veth pair and the namespace (each may already be gone). */
static void netns_down(const char *log)
{
    netns n;

    netns_names(&n);
    if (access("/usr/sbin/ip", X_OK) == 0) {
        ip(log, "link", "del", n.host_if, NULL, NULL, NULL, NULL, NULL);
        ip(log, "netns", "del", n.name, NULL, NULL, NULL, NULL, NULL);
    }
}

/* Scenario: Two nodes, a hive in a second network namespace */
START_TEST(test_keeper_commands__two_nodes_a_hive_in_a_second_network_namespace)
{
    netns n = {0};
    char log[4400], script[4400], text[9000], bin[4096], node_home[4400], want[128], *err;
    const char *add[] = {"setup",       "add-node", "--name",     "ns2", "--ssh-host", n.ns_ip,
                         "--hive-port", "9090",     "--hive-bin", bin,   NULL};
    const char *start[] = {"hive", "start", "--node", "ns2", NULL};
    const char *infer[] = {"infer", "--node",       "ns2", "--prompt",
                           PROMPT,  "--max-tokens", "16",  NULL};
    const char *stop[] = {"hive", "stop", "--node", "ns2", NULL};
    rbt_keeper k;
    int code;

    rbt_keeper_init(&k, NULL);
    snprintf(log, sizeof log, "%s/ip.log", k.home);
    if (!netns_up(&n, log)) {
        char *why = rbt_slurp(log);
        ck_abort_msg("main() could make a network namespace, this test could not: %s",
                     why ? why : "no /usr/sbin/ip");
    }
    snprintf(bin, sizeof bin, "%s", rbt_bin("rbee-hive"));
    snprintf(node_home, sizeof node_home, "%s/node2", k.home);
    snprintf(script, sizeof script, "%s/ns-ssh", k.home);
    /* "ssh" into the namespace: the node has its own RBEE_HOME and its own ports. */
    snprintf(text, sizeof text,
             "#!/bin/sh\nfor a; do cmd=$a; done\nexec /usr/sbin/ip netns exec %s env "
             "RBEE_HOME='%s' RBEE_WORKER_PORT_BASE=8081 /bin/sh -c \"$cmd\"\n",
             n.name, node_home);
    rbt_write_script(script, text);
    rbt_keeper_env(&k, "RBEE_SSH=%s", script);
    rbt_keeper_env(&k, "RBEE_API_TOKEN=ns2-secret");

    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, add), 0);
    code = rbt_keeper_run(&k, RUN_MS, start);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 0, "hive start: exit %d:\n%s", code, err);
    free(err);
    code = rbt_keeper_run(&k, RUN_MS, infer);
    err = rbt_keeper_err(&k);
    ck_assert_msg(code == 0, "infer: exit %d:\n%s", code, err);
    snprintf(want, sizeof want, "Hive preflight: ns2 (http://%s:9090) is alive", n.ns_ip);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    snprintf(want, sizeof want, "at http://%s:8081", n.ns_ip);
    ck_assert_msg(strstr(err, want) != NULL, "the worker is not in the namespace:\n%s", err);
    ck_assert_ptr_nonnull(strstr(err, "[Summary] 16 tokens"));
    ck_assert(rbt_keeper_out_size(&k) > 0);
    free(err);
    ck_assert_int_eq(rbt_keeper_run(&k, RUN_MS, stop), 0);
    ck_assert(rbt_keeper_out_has(&k, "Hive on ns2 stopped"));
    netns_down(log);
    rbt_keeper_cleanup(&k);
}
END_TEST

static void reap(void)
{
    rbt_keeper_reap_marked();
    netns_down("/dev/null");
}

/* 1 if a namespace and its veth pair can be made here (they are removed again); else prints
 * the SKIP line. */
static int netns_allowed(void)
{
    char dir[4096], log[4200], *why;
    netns n;
    int up;

    rbt_tmpdir(dir);
    snprintf(log, sizeof log, "%s/ip.log", dir);
    up = netns_up(&n, log);
    netns_down("/dev/null");
    if (!up) {
        why = rbt_slurp(log);
        if (why)
            why[strcspn(why, "\n")] = '\0';
        printf("SKIP: network namespaces are not allowed here (%s); 1 test needs root, or "
               "CAP_NET_ADMIN and CAP_SYS_ADMIN, and /usr/sbin/ip\n",
               why && *why ? why : "no /usr/sbin/ip");
        free(why);
    }
    rbt_rmtree(dir);
    return up;
}

int main(void)
{
    Suite *s = suite_create("keeper_two_nodes");
    TCase *tc;

    rbt_keeper_mark();
    if (!netns_allowed())
        return 77;
    tc = rbt_tcase(s, "two_nodes", 120);
    tcase_add_unchecked_fixture(tc, NULL, reap);
    tcase_add_test(tc, test_keeper_commands__two_nodes_a_hive_in_a_second_network_namespace);
    return rbt_run(s);
}
