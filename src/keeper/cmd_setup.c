/*
 * cmd_setup.c - `rbee setup add-node|list-nodes|remove-node`: the node registry (nodes.db).
 *
 * DESIGN
 * A node is saved only after an ssh command reached it (BatchMode, so a password prompt
 * fails instead of hanging; ConnectTimeout, so an unroutable host fails in seconds): a
 * registry entry the keeper cannot use would only fail later, further from the mistake. The
 * same command looks for rbee-hive on the node and warns when it is missing. Names, hosts and
 * users are checked against short character sets before they reach an ssh command line or a
 * shell, so nothing in them is interpreted.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpr.h"
#include "kpr_args.h"
#include "kpr_cmds.h"
#include "kpr_proc.h"
#include "rb_util.h"

#define SSH_TEST_MS 30000
#define DEFAULT_SSH_PORT 22
#define OUTPUT_MAX (64 * 1024)

/* 1 when s is non-empty, shorter than max, made of letters, digits and extra, and does not
 * start with '-' (it could pass for an option). */
static int word_ok(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    int ok = n > 0 && n < max && s[0] != '-';

    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)s[i]) || strchr(extra, s[i]) != NULL;
    return ok;
}

static rb_err check_node(const kpr_node *n, kpr_fail *f)
{
    rb_err rc = RB_EINVAL;

    if (!word_ok(n->name, sizeof n->name, "._-"))
        kpr_fail_set(f, "INVALID_ARGUMENT",
                     "rbee setup add-node: --name takes letters, digits "
                     "and ._- (at most 63)");
    else if (strcmp(n->name, "localhost") == 0)
        kpr_fail_set(f, "INVALID_ARGUMENT",
                     "rbee setup add-node: 'localhost' is built in; "
                     "choose another name");
    else if (!word_ok(n->ssh_host, sizeof n->ssh_host, ".-_:[]"))
        kpr_fail_set(f, "INVALID_ARGUMENT",
                     "rbee setup add-node: --ssh-host takes a host name "
                     "or an address");
    else if (n->ssh_user[0] && !word_ok(n->ssh_user, sizeof n->ssh_user, "._-"))
        kpr_fail_set(f, "INVALID_ARGUMENT",
                     "rbee setup add-node: --ssh-user takes letters, "
                     "digits and ._-");
    else if (strpbrk(n->hive_bin, "'\n") || !n->hive_bin[0])
        kpr_fail_set(f, "INVALID_ARGUMENT",
                     "rbee setup add-node: --hive-bin cannot contain "
                     "quotes or newlines");
    else
        rc = RB_OK;
    return rc;
}

/* Runs a harmless command over ssh; also tells whether rbee-hive is on the node. */
static rb_err test_ssh(kpr_ctx *c, const kpr_node *n, kpr_fail *f)
{
    char cmd[KPR_PATH_MAX + 128], err[512] = "", line[512], how[64];
    rb_buf out;
    int status = -1;
    rb_err rc;

    snprintf(cmd, sizeof cmd,
             "command -v '%s' >/dev/null 2>&1 && echo rbee-hive-found || echo rbee-hive-missing",
             n->hive_bin);
    rb_buf_init(&out, OUTPUT_MAX);
    rc = kpr_ssh_run(n, cmd, NULL, SSH_TEST_MS, &out, &status, err, sizeof err);
    kpr_last_line(out.data ? out.data : "", line, sizeof line);
    if (rc || status != 0) {
        rc = rc ? rc : RB_ECONNECT;
        snprintf(how, sizeof how, "ssh exited with status %d", status);
        kpr_fail_set(f, "SSH_FAILED", "Cannot reach '%s' over ssh (%s): %s", n->ssh_host,
                     status >= 0 ? how
                     : err[0]    ? err
                                 : "ssh did not run",
                     line[0] ? line : "no output");
        kpr_fail_line(f, "Nothing was saved.");
        kpr_fail_hint(f,
                      "check that 'ssh -p %d %s%s%s true' works without a password prompt "
                      "(keys or an agent: rbee runs ssh with BatchMode=yes)",
                      n->ssh_port, n->ssh_user, n->ssh_user[0] ? "@" : "", n->ssh_host);
    } else if (strstr(out.data ? out.data : "", "rbee-hive-missing")) {
        kpr_out_note(&c->out,
                     "Warning: '%s' was not found on %s; install rbee-hive there or "
                     "give its path with --hive-bin",
                     n->hive_bin, n->name);
    }
    rb_buf_release(&out);
    return rc;
}

static const rb_subcmd subcommands[] = {
    {"add-node", "register a machine reached over ssh, after checking that ssh works"},
    {"list-nodes", "the registered nodes (localhost is built in)"},
    {"remove-node", "forget a node and its cached workers"},
};

static int add_node(kpr_ctx *c, int argc, char **argv)
{
    const char *name = NULL, *host = NULL, *user = "", *bin = KPR_HIVE_PROGRAM;
    long long ssh_port = DEFAULT_SSH_PORT, hive_port = KPR_DEFAULT_HIVE_PORT;
    const rb_opt opts[] = {
        {"--name", RB_OPT_STR, &name, .what = "NAME", .help = "the node's name (required)"},
        {"--ssh-host", RB_OPT_STR, &host, .what = "HOST",
         .help = "the machine's host name or address (required)"},
        {"--ssh-user", RB_OPT_STR, &user, .what = "USER", .help = "default: ssh's own"},
        {"--ssh-port", RB_OPT_LLONG, &ssh_port, 1, 65535, .help = "default 22"},
        {"--hive-port", RB_OPT_LLONG, &hive_port, 1, 65535,
         .help = "the port of the hive there (default 8080)"},
        {"--hive-bin", RB_OPT_STR, &bin, .what = "PATH",
         .help = "rbee-hive on that machine (default: rbee-hive on its PATH)"},
    };
    const rb_cmd cmd = {
        "rbee setup add-node", NULL, subcommands[0].summary, opts, RB_ARRAY_LEN(opts), NULL, 0};
    int shown = 0;
    kpr_node n = {0}, old;
    kpr_store *st = NULL;
    kpr_fail f;
    char err[512];
    rb_err rc;

    kpr_fail_init(&f);
    rc = rb_cmd_parse(&cmd, argc, argv, NULL, 0, NULL, &shown, err, sizeof err);
    if (shown)
        goto out;
    if (!rc && (!name || !host))
        rc = rb_errf(err, sizeof err, RB_EINVAL,
                     "rbee setup add-node: --name and --ssh-host are required");
    if (rc) {
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
        goto out;
    }
    snprintf(n.name, sizeof n.name, "%.*s", (int)sizeof n.name - 1, name);
    snprintf(n.ssh_host, sizeof n.ssh_host, "%.*s", (int)sizeof n.ssh_host - 1, host);
    snprintf(n.ssh_user, sizeof n.ssh_user, "%.*s", (int)sizeof n.ssh_user - 1, user);
    snprintf(n.hive_bin, sizeof n.hive_bin, "%s", bin);
    n.ssh_port = (int)ssh_port;
    n.hive_port = (int)hive_port;
    n.added_unix = rb_unix_s();
    rc = strlen(name) >= sizeof n.name || strlen(host) >= sizeof n.ssh_host ? RB_EINVAL
                                                                            : check_node(&n, &f);
    if (!rc)
        rc = kpr_ctx_store(c, &st, &f);
    if (!rc && kpr_node_get(st, n.name, &old) == RB_OK) {
        rc = RB_EEXIST;
        kpr_fail_set(&f, "NODE_EXISTS", "Node '%s' already exists (ssh host %s)", n.name,
                     old.ssh_host);
        kpr_fail_hint(&f, "remove it first: rbee setup remove-node --name %s", n.name);
    }
    if (!rc)
        rc = test_ssh(c, &n, &f);
    if (!rc && (rc = kpr_node_add(st, &n)) != RB_OK)
        kpr_fail_set(&f, "STATE_ERROR", "Cannot save node '%s' in %s/nodes.db: %s", n.name, c->home,
                     kpr_store_error(st, 0));
    if (!rc)
        kpr_out_line(&c->out, "Node '%s' added: ssh %s%s%s port %d, hive port %d", n.name,
                     n.ssh_user, n.ssh_user[0] ? "@" : "", n.ssh_host, n.ssh_port, n.hive_port);
out:
    if (rc && !kpr_fail_isset(&f))
        kpr_fail_set(&f, "INVALID_ARGUMENT", "rbee setup add-node: a value is too long");
    return kpr_cmd_status(c, rc, &f);
}

static int list_nodes(kpr_ctx *c, int argc, char **argv)
{
    kpr_node *ns = NULL;
    kpr_store *st = NULL;
    size_t n = 0;
    kpr_fail f;
    char err[256];
    const rb_cmd cmd = {"rbee setup list-nodes", NULL, subcommands[1].summary, NULL, 0, NULL, 0};
    int shown = 0;
    rb_err rc;

    kpr_fail_init(&f);
    rc = rb_cmd_parse(&cmd, argc, argv, NULL, 0, NULL, &shown, err, sizeof err);
    if (rc)
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    if (rc || shown)
        return kpr_cmd_status(c, rc, &f);
    rc = kpr_ctx_store(c, &st, &f);
    if (!rc && (rc = kpr_node_list(st, &ns, &n)) != RB_OK)
        kpr_fail_set(&f, "STATE_ERROR", "Cannot read %s/nodes.db: %s", c->home,
                     kpr_store_error(st, 0));
    if (!rc && n == 0)
        kpr_out_line(&c->out, "No nodes registered (localhost is built in).");
    if (!rc && n > 0)
        kpr_out_line(&c->out, "%-16s %-24s %-9s %s", "NAME", "SSH_HOST", "HIVE_PORT", "SSH");
    for (size_t i = 0; !rc && i < n; i++)
        kpr_out_line(&c->out, "%-16s %-24s %-9d %s%s%s:%d", ns[i].name, ns[i].ssh_host,
                     ns[i].hive_port, ns[i].ssh_user, ns[i].ssh_user[0] ? "@" : "", ns[i].ssh_host,
                     ns[i].ssh_port);
    free(ns);
    return kpr_cmd_status(c, rc, &f);
}

static int remove_node(kpr_ctx *c, int argc, char **argv)
{
    const char *name = NULL;
    const rb_opt opts[] = {
        {"--name", RB_OPT_STR, &name, .what = "NAME", .help = "the node to forget (required)"}};
    const rb_cmd cmd = {
        "rbee setup remove-node", NULL, subcommands[2].summary, opts, RB_ARRAY_LEN(opts), NULL, 0};
    int shown = 0;
    kpr_store *st = NULL;
    kpr_node n;
    kpr_target t;
    kpr_fail f, ignored;
    char err[256];
    rb_err rc;

    kpr_fail_init(&f);
    kpr_fail_init(&ignored);
    rc = rb_cmd_parse(&cmd, argc, argv, NULL, 0, NULL, &shown, err, sizeof err);
    if (shown)
        return kpr_cmd_status(c, rc, &f);
    if (!rc && !name)
        rc = rb_errf(err, sizeof err, RB_EINVAL, "rbee setup remove-node: --name is required");
    if (rc)
        kpr_fail_set(&f, "INVALID_ARGUMENT", "%s", err);
    if (!rc)
        rc = kpr_ctx_store(c, &st, &f);
    if (!rc && (rc = kpr_node_get(st, name, &n)) == RB_ENOTFOUND)
        kpr_fail_set(&f, "UNKNOWN_NODE", "Unknown node '%s' (rbee setup list-nodes)", name);
    else if (rc && !kpr_fail_isset(&f))
        kpr_fail_set(&f, "STATE_ERROR", "Cannot read %s/nodes.db: %s", c->home,
                     kpr_store_error(st, 0));
    /* Its cached workers go with it. */
    if (!rc && kpr_target_resolve(c, name, NULL, &t, &ignored) == RB_OK)
        kpr_worker_remove_hive(st, t.hive_url);
    kpr_fail_release(&ignored);
    if (!rc && (rc = kpr_node_remove(st, name)) != RB_OK)
        kpr_fail_set(&f, "STATE_ERROR", "Cannot remove node '%s' from %s/nodes.db: %s", name,
                     c->home, kpr_store_error(st, 0));
    if (!rc)
        kpr_out_line(&c->out, "Node '%s' removed", name);
    return kpr_cmd_status(c, rc, &f);
}

int kpr_cmd_setup(kpr_ctx *c, int argc, char **argv)
{
    static const rb_group group = {"rbee setup", subcommands, RB_ARRAY_LEN(subcommands), NULL, 0};
    static int (*const run[])(kpr_ctx *, int, char **) = {add_node, list_nodes, remove_node};
    int status = KPR_EXIT_FAIL;
    int k = rb_group_pick(&group, argc, argv, &status);

    return k < 0 ? status : run[k](c, argc - 1, argv + 1);
}
