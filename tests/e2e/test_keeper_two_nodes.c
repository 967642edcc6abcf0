/*
 * End-to-end test of two nodes over real OpenSSH (spec/keeper_commands.feature): each node is
 * a network namespace joined to this one by a veth pair on private addresses, running the
 * real sshd with its own host key, port, authorized_keys (a key the test generates) and
 * RBEE_HOME. The real rbee registers both nodes, starts their hives over the real ssh client
 * (network mode, a token), streams from both at once, meets EC1 with one link down and EC9
 * with a wrong token, and stops both hives; nothing is left running in either namespace.
 *
 * Making a namespace needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN, and the ip command; the
 * nodes need /usr/sbin/sshd and ssh-keygen (openssh-server, which ci/install-deps installs).
 * main() checks both once: where either is missing the executable runs nothing, prints one
 * SKIP line with the reason and exits 77, which ctest reports as skipped.
 */
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_test.h"
#include "rbt_keeper.h"

#define RUN_MS 60000
#define PROMPT "In the beginning"
#define SSH_PORT "2222"
#define HIVE_PORT "9090"
#define NNODES 2
#define TOKEN "two-node-secret"
#define SSHD "/usr/sbin/sshd"
#define KEYGEN "/usr/bin/ssh-keygen"
#define PATH_CAP 4600

typedef struct node {
    char name[8], ns[32], host_if[16], ns_if[16], host_ip[32], ns_ip[32];
    char dir[PATH_CAP]; /* the node's files: sshd's config, host key, log and RBEE_HOME */
    pid_t sshd;
} node;

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

/* Names and addresses of node i, derived from the suite's main process so that its teardown
 * can remove what a failed test left. Node i is on 10.(213+i).x.0/24. */
static void node_names(node *n, int i)
{
    int id = atoi(strchr(rbt_keeper_mark(), '=') + 1);

    snprintf(n->name, sizeof n->name, "%c", 'a' + i);
    snprintf(n->ns, sizeof n->ns, "rbt-ssh%d-%d", i, id);
    snprintf(n->host_if, sizeof n->host_if, "rbsh%d%d", i, id % 100000);
    snprintf(n->ns_if, sizeof n->ns_if, "rbsn%d%d", i, id % 100000);
    snprintf(n->host_ip, sizeof n->host_ip, "10.%d.%d.1", 213 + i, id % 200);
    snprintf(n->ns_ip, sizeof n->ns_ip, "10.%d.%d.2", 213 + i, id % 200);
}

/* Makes node i's namespace and veth pair; 0 when that is not allowed. */
static int netns_up(node *n, int i, const char *log)
{
    char host_cidr[40], ns_cidr[40];

    node_names(n, i);
    snprintf(host_cidr, sizeof host_cidr, "%s/24", n->host_ip);
    snprintf(ns_cidr, sizeof ns_cidr, "%s/24", n->ns_ip);
    return access("/usr/sbin/ip", X_OK) == 0 &&
           ip(log, "netns", "add", n->ns, NULL, NULL, NULL, NULL, NULL) == 0 &&
           ip(log, "link", "add", n->host_if, "type", "veth", "peer", "name", n->ns_if) == 0 &&
           ip(log, "link", "set", n->ns_if, "netns", n->ns, NULL, NULL, NULL) == 0 &&
           ip(log, "addr", "add", host_cidr, "dev", n->host_if, NULL, NULL, NULL) == 0 &&
           ip(log, "link", "set", n->host_if, "up", NULL, NULL, NULL, NULL) == 0 &&
           ip(log, "-n", n->ns, "addr", "add", ns_cidr, "dev", n->ns_if, NULL) == 0 &&
           ip(log, "-n", n->ns, "link", "set", n->ns_if, "up", NULL, NULL) == 0 &&
           ip(log, "-n", n->ns, "link", "set", "lo", "up", NULL, NULL) == 0;
}

/* The processes inside namespace ns (their /proc/<pid>/ns/net is the namespace's file) and,
 * when names is given, their command names, space-separated. */
static int netns_pids(const char *ns, pid_t *pids, int cap, char *names, size_t nlen)
{
    char path[300], comm[64];
    struct stat want, st;
    struct dirent *e;
    DIR *d;
    int n = 0;

    if (names)
        names[0] = '\0';
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    if (stat(path, &want) != 0 || !(d = opendir("/proc")))
        return 0;
    while ((e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name);
        FILE *f;

        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
        if (stat(path, &st) != 0 || st.st_ino != want.st_ino || st.st_dev != want.st_dev)
            continue;
        if (n < cap)
            pids[n] = pid;
        n++;
        snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
        if (names && (f = fopen(path, "r"))) {
            if (fgets(comm, sizeof comm, f)) {
                size_t used = strlen(names);

                comm[strcspn(comm, "\n")] = '\0';
                snprintf(names + used, nlen - used, "%s%s", used ? " " : "", comm);
            }
            fclose(f);
        }
    }
    closedir(d);
    return n;
}

/* Kills everything in node i's namespace, then removes its veth pair and the namespace. */
static void netns_down(int i, const char *log)
{
    pid_t pids[256];
    node n;
    int k;

    node_names(&n, i);
    k = netns_pids(n.ns, pids, 256, NULL, 0);
    for (int j = 0; j < k && j < 256; j++)
        kill(pids[j], SIGKILL);
    if (access("/usr/sbin/ip", X_OK) == 0) {
        ip(log, "link", "del", n.host_if, NULL, NULL, NULL, NULL, NULL);
        ip(log, "netns", "del", n.ns, NULL, NULL, NULL, NULL, NULL);
    }
}

/* Writes a file from a printf format; fails the test if it cannot. */
static void write_file(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void write_file(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    va_list ap;

    ck_assert_msg(f != NULL, "cannot write %s", path);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    ck_assert_int_eq(fclose(f), 0);
}

/* The first line of a .pub file ("type base64 comment"), without its comment. */
static void read_pub(const char *path, char *out, size_t cap)
{
    char *text = rbt_slurp(path), *sp;

    ck_assert_msg(text != NULL, "no %s", path);
    text[strcspn(text, "\n")] = '\0';
    sp = strchr(text, ' ');
    if (sp && (sp = strchr(sp + 1, ' ')))
        *sp = '\0';
    snprintf(out, cap, "%s", text);
    free(text);
}

static void keygen(const char *path, const char *log)
{
    char *argv[] = {KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", (char *)path, NULL};

    ck_assert_msg(run_cmd(argv, log) == 0, "ssh-keygen -f %s failed", path);
}

/* Starts node n's sshd inside its namespace: its own host key, port and authorized_keys, and
 * RBEE_HOME for every session. Waits until it listens. */
static void sshd_up(node *n, const char *home, const char *client_pub)
{
    char key[PATH_CAP + 16], conf[PATH_CAP + 16], log[PATH_CAP + 16], auth[PATH_CAP + 16];
    char *argv[] = {"/usr/sbin/ip", "netns", "exec", n->ns, SSHD, "-D", "-e", "-f", conf, NULL};
    int64_t end;

    snprintf(n->dir, sizeof n->dir, "%.4400s/node-%.7s", home, n->name);
    ck_assert_int_eq(mkdir(n->dir, 0700), 0);
    snprintf(key, sizeof key, "%s/host_key", n->dir);
    snprintf(conf, sizeof conf, "%s/sshd_config", n->dir);
    snprintf(log, sizeof log, "%s/sshd.log", n->dir);
    snprintf(auth, sizeof auth, "%s/authorized_keys", n->dir);
    keygen(key, log);
    write_file(auth, "%s\n", client_pub);
    write_file(conf,
               "Port " SSH_PORT "\nListenAddress %s\nHostKey %s\nPidFile %s/sshd.pid\n"
               "AuthorizedKeysFile %s\nPermitRootLogin prohibit-password\n"
               "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
               "StrictModes no\nSetEnv RBEE_HOME=%s/rbee\n",
               n->ns_ip, key, n->dir, auth, n->dir);
    /* sshd refuses to start without its privilege-separation folder. */
    mkdir("/run/sshd", 0755);
    n->sshd = rbt_spawn(argv, NULL, log);
    for (end = rbt_ms() + 10000; !rbt_file_contains(log, "Server listening on");
         rbt_poll_interval()) {
        char *text = rbt_slurp(log);

        ck_assert_msg(rbt_alive(n->sshd) && rbt_ms() < end, "sshd of node %s did not listen:\n%s",
                      n->name, text ? text : "");
        free(text);
    }
}

/* A keeper on home (NULL: a fresh one) with the ssh client's config and a token. */
static void keeper_for(rbt_keeper *k, const char *home, const char *token)
{
    rbt_keeper_init(k, home);
    rbt_keeper_env(k, "RBEE_SSH=/usr/bin/ssh -F %s/ssh_config", k->home);
    rbt_keeper_env(k, "RBEE_API_TOKEN=%s", token);
}

/* Polls until node n's namespace holds nothing but its sshd. */
static void only_sshd_left(const node *n)
{
    char names[2048];
    pid_t pids[64];
    int64_t end = rbt_ms() + 20000;

    while (netns_pids(n->ns, pids, 64, names, sizeof names) != 1 || pids[0] != n->sshd) {
        ck_assert_msg(rbt_ms() < end, "node %s still runs: %s", n->name, names);
        rbt_poll_interval();
    }
}

/* Checks one finished infer run against node n: its hive answered, its worker streamed. */
static void streamed_from(const rbt_keeper *r, int code, const node *n)
{
    char want[160], *err = rbt_keeper_err(r);

    ck_assert_msg(code == 0, "infer --node %s: exit %d:\n%s", n->name, code, err);
    snprintf(want, sizeof want, "Hive preflight: %s (http://%s:" HIVE_PORT ") is alive", n->name,
             n->ns_ip);
    ck_assert_msg(strstr(err, want) != NULL, "no \"%s\" in:\n%s", want, err);
    snprintf(want, sizeof want, "at http://%s:", n->ns_ip);
    ck_assert_msg(strstr(err, want) != NULL, "the worker is not on node %s:\n%s", n->name, err);
    ck_assert_msg(strstr(err, "[Summary] 24 tokens") != NULL, "%s", err);
    ck_assert(rbt_keeper_out_size(r) > 0);
    free(err);
}

/* Scenario: Two nodes over real ssh */
START_TEST(test_keeper_commands__two_nodes_over_real_ssh)
{
    node nodes[NNODES] = {0};
    char log[PATH_CAP], path[PATH_CAP], client_pub[1024], want[160], *err, *out;
    char known[NNODES][1200], bin[4096];
    rbt_keeper k, kb;
    int code, code_b;

    keeper_for(&k, NULL, TOKEN);
    snprintf(log, sizeof log, "%.4096s/setup.log", k.home);
    for (int i = 0; i < NNODES; i++)
        if (!netns_up(&nodes[i], i, log)) {
            char *why = rbt_slurp(log);
            ck_abort_msg("main() could make a network namespace, this test could not: %s",
                         why ? why : "no /usr/sbin/ip");
        }
    /* The user's key, and the nodes' host keys in a known_hosts file, so that ssh checks
     * them strictly (no "yes" to a prompt). */
    snprintf(path, sizeof path, "%.4096s/id_ed25519", k.home);
    keygen(path, log);
    snprintf(path, sizeof path, "%.4096s/id_ed25519.pub", k.home);
    read_pub(path, client_pub, sizeof client_pub);
    for (int i = 0; i < NNODES; i++) {
        char host_pub[1000];

        sshd_up(&nodes[i], k.home, client_pub);
        snprintf(path, sizeof path, "%.4400s/host_key.pub", nodes[i].dir);
        read_pub(path, host_pub, sizeof host_pub);
        snprintf(known[i], sizeof known[i], "[%s]:" SSH_PORT " %s", nodes[i].ns_ip, host_pub);
    }
    snprintf(path, sizeof path, "%.4096s/known_hosts", k.home);
    write_file(path, "%s\n%s\n", known[0], known[1]);
    snprintf(path, sizeof path, "%.4096s/ssh_config", k.home);
    write_file(path,
               "Host *\n  IdentityFile %s/id_ed25519\n  IdentitiesOnly yes\n"
               "  UserKnownHostsFile %s/known_hosts\n  StrictHostKeyChecking yes\n"
               "  LogLevel ERROR\n",
               k.home, k.home);
    snprintf(bin, sizeof bin, "%s", rbt_bin("rbee-hive"));

    for (int i = 0; i < NNODES; i++) {
        const char *add[] = {
            "setup",        "add-node",   "--name",     nodes[i].name, "--ssh-host",
            nodes[i].ns_ip, "--ssh-port", SSH_PORT,     "--ssh-user",  "root",
            "--hive-port",  HIVE_PORT,    "--hive-bin", bin,           NULL};
        const char *start[] = {"hive", "start", "--node", nodes[i].name, NULL};

        code = rbt_keeper_run(&k, RUN_MS, add);
        err = rbt_keeper_err(&k);
        ck_assert_msg(code == 0, "add-node %s: exit %d:\n%s", nodes[i].name, code, err);
        free(err);
        code = rbt_keeper_run(&k, RUN_MS, start);
        err = rbt_keeper_err(&k);
        out = rbt_keeper_out(&k);
        ck_assert_msg(code == 0, "hive start --node %s: exit %d:\n%s%s", nodes[i].name, code, out,
                      err);
        free(err);
        free(out);
    }

    /* Both nodes at once: two keepers, each streaming from the worker on its node. */
    {
        const char *infer_a[] = {"infer", "--node",       "a",  "--prompt",
                                 PROMPT,  "--max-tokens", "24", NULL};
        const char *infer_b[] = {"infer", "--node",       "b",  "--prompt",
                                 PROMPT,  "--max-tokens", "24", NULL};

        keeper_for(&kb, k.home, TOKEN);
        rbt_keeper_start(&k, infer_a);
        rbt_keeper_start(&kb, infer_b);
        code = rbt_keeper_wait(&k, RUN_MS);
        code_b = rbt_keeper_wait(&kb, RUN_MS);
        ck_assert_msg(k.started_ms < kb.ended_ms && kb.started_ms < k.ended_ms,
                      "the two runs did not overlap");
        streamed_from(&k, code, &nodes[0]);
        streamed_from(&kb, code_b, &nodes[1]);
    }

    /* EC9: a wrong token is refused by node a's hive; no token is printed. */
    {
        const char *infer[] = {"infer", "--node", "a", "--prompt", PROMPT, NULL};

        keeper_for(&kb, k.home, "not-the-token");
        code = rbt_keeper_run(&kb, RUN_MS, infer);
        err = rbt_keeper_err(&kb);
        out = rbt_keeper_out(&kb);
        ck_assert_msg(code == 1, "EC9: exit %d:\n%s", code, err);
        ck_assert_msg(strstr(err, "Authentication failed") != NULL, "EC9:\n%s", err);
        ck_assert_msg(!strstr(err, "not-the-token") && !strstr(out, "not-the-token") &&
                          !strstr(err, TOKEN),
                      "a token was printed:\n%s", err);
        free(err);
        free(out);
    }

    /* EC1: node b's end of its link is down (its cable pulled): connections to it time out;
     * the keeper retries, then names the node and suggests. */
    {
        const char *infer[] = {"infer", "--node", "b", "--prompt", PROMPT, NULL};

        ck_assert_int_eq(
            ip(log, "-n", nodes[1].ns, "link", "set", nodes[1].ns_if, "down", NULL, NULL), 0);
        code = rbt_keeper_run(&k, RUN_MS, infer);
        err = rbt_keeper_err(&k);
        ck_assert_msg(code == 1, "EC1: exit %d:\n%s", code, err);
        snprintf(want, sizeof want,
                 "Cannot connect to b (http://%s:" HIVE_PORT ") after 3 attempts", nodes[1].ns_ip);
        ck_assert_msg(strstr(err, want) != NULL, "EC1: no \"%s\" in:\n%s", want, err);
        ck_assert_msg(strstr(err, "Couldn't connect to server") != NULL, "EC1: no cause:\n%s", err);
        ck_assert_msg(strstr(err, "Suggestion: check that b is up and reachable from here") != NULL,
                      "EC1:\n%s", err);
        free(err);
        ck_assert_int_eq(
            ip(log, "-n", nodes[1].ns, "link", "set", nodes[1].ns_if, "up", NULL, NULL), 0);
    }

    /* Both hives stop over ssh; each namespace is left with its sshd only. */
    for (int i = 0; i < NNODES; i++) {
        const char *stop[] = {"hive", "stop", "--node", nodes[i].name, NULL};

        code = rbt_keeper_run(&k, RUN_MS, stop);
        err = rbt_keeper_err(&k);
        ck_assert_msg(code == 0, "hive stop --node %s: exit %d:\n%s", nodes[i].name, code, err);
        free(err);
        snprintf(want, sizeof want, "Hive on %.7s stopped", nodes[i].name);
        ck_assert(rbt_keeper_out_has(&k, want));
        only_sshd_left(&nodes[i]);
    }
    for (int i = 0; i < NNODES; i++) {
        rbt_kill(nodes[i].sshd);
        netns_down(i, log);
    }
    rbt_keeper_cleanup(&k);
}
END_TEST

static void reap(void)
{
    rbt_keeper_reap_marked();
    for (int i = 0; i < NNODES; i++)
        netns_down(i, "/dev/null");
}

/* 1 if namespaces can be made here (one is made and removed) and sshd is installed; else
 * prints the SKIP line. */
static int nodes_possible(void)
{
    char dir[4096], log[4200], *why;
    node n;
    int up;

    if (access(SSHD, X_OK) != 0 || access(KEYGEN, X_OK) != 0) {
        printf("SKIP: %s or %s is missing; 1 test needs openssh-server and openssh-client "
               "(ci/install-deps installs them)\n",
               SSHD, KEYGEN);
        return 0;
    }
    rbt_tmpdir(dir);
    snprintf(log, sizeof log, "%s/ip.log", dir);
    up = netns_up(&n, 0, log);
    netns_down(0, "/dev/null");
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
    if (!nodes_possible())
        return 77;
    tc = rbt_tcase(s, "two_nodes", 180);
    tcase_add_unchecked_fixture(tc, NULL, reap);
    tcase_add_test(tc, test_keeper_commands__two_nodes_over_real_ssh);
    return rbt_run(s);
}
