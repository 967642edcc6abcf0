/*
 * Integration tests for spec/cli_help.feature: the help walker. Every binary and every
 * subcommand is run with --help, -h, --version and an unknown option, each run with a
 * deadline; the table below is what each command's help must list. A group's help ("commands:")
 * names its subcommands, and each of them must have a row here, so a new subcommand without a
 * row fails the walk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_test.h"
#include "rb_util.h"
#include "rbt_keeper.h"

#define RUN_MS 10000
#define MAX_WORDS 4
#define MAX_OPTS 24

typedef struct help_case {
    const char *argv[MAX_WORDS]; /* binary, then subcommand words */
    const char *opts[MAX_OPTS];  /* the options (or subcommands) its help names */
    int bad_exit;                /* exit code of an unknown option */
} help_case;

#define KEEPER_TARGET "--node", "--hive"
static const help_case cases[] = {
    {{"rbee"}, {"infer", "chat", "workers", "models", "hive", "setup", "--version"}, 1},
    {{"rbee", "infer"},
     {KEEPER_TARGET, "--model", "--file", "--prompt", "--max-tokens", "--temperature", "--top-p",
      "--top-k", "--min-p", "--repetition-penalty", "--stop", "--seed", "--backend", "--device",
      "--ready-timeout", "--json", "[PROMPT]"},
     1},
    {{"rbee", "chat"},
     {KEEPER_TARGET, "--model", "--file", "--system", "--max-tokens", "--temperature", "--backend",
      "--device", "--ready-timeout"},
     1},
    {{"rbee", "workers"}, {"list", "health", "shutdown"}, 1},
    {{"rbee", "workers", "list"}, {KEEPER_TARGET}, 1},
    {{"rbee", "workers", "health"}, {KEEPER_TARGET, "--id"}, 1},
    {{"rbee", "workers", "shutdown"}, {KEEPER_TARGET, "--id", "--all"}, 1},
    {{"rbee", "models"}, {"list", "download", "rm"}, 1},
    {{"rbee", "models", "rm"}, {KEEPER_TARGET, "--file", "--json", "REF"}, 1},
    {{"rbee", "models", "list"}, {KEEPER_TARGET}, 1},
    {{"rbee", "models", "download"}, {KEEPER_TARGET, "--file", "REF"}, 1},
    {{"rbee", "hive"}, {"start", "stop", "status"}, 1},
    {{"rbee", "hive", "start"}, {"--node"}, 1},
    {{"rbee", "hive", "stop"}, {"--node"}, 1},
    {{"rbee", "hive", "status"}, {"--node"}, 1},
    {{"rbee", "setup"}, {"add-node", "list-nodes", "remove-node"}, 1},
    {{"rbee", "setup", "add-node"},
     {"--name", "--ssh-host", "--ssh-user", "--ssh-port", "--hive-port", "--hive-bin"},
     1},
    {{"rbee", "setup", "list-nodes"}, {"--help"}, 1},
    {{"rbee", "setup", "remove-node"}, {"--name"}, 1},
    {{"rbee-hive"}, {"daemon", "detect", "--version"}, 2},
    {{"rbee-hive", "daemon"},
     {"--addr", "--local-mode", "--monitor-interval", "--idle-timeout", "--load-timeout",
      "--heartbeat-interval", "--worker-binary", "--worker-slots", "--worker-threads",
      "--worker-ctx", "--worker-kv-type", "--models-dir", "--queue", "--max-connections",
      "--max-connections-per-ip", "--request-timeout"},
     2},
    {{"rbee-hive", "detect"}, {"--json"}, 2},
    {{"llm-worker-rbee"},
     {"--model",
      "--port",
      "--worker-id",
      "--model-ref",
      "--backend",
      "--device",
      "--hive-url",
      "--advertise-host",
      "--local-mode",
      "--threads",
      "--no-mmap",
      "--slots",
      "--batch",
      "--queue",
      "--ctx",
      "--kv-type",
      "--heartbeat-interval",
      "--stream-open-timeout",
      "--max-connections",
      "--max-connections-per-ip",
      "--request-timeout",
      "--version"},
     1},
    {{"rbee-gguf"},
     {"info", "tokenize", "generate", "quantize", "random", "chat-render", "--version"},
     2},
    {{"rbee-gguf", "info"}, {"FILE"}, 2},
    {{"rbee-gguf", "tokenize"}, {"FILE", "--bos", "--special"}, 2},
    {{"rbee-gguf", "generate"},
     {"FILE", "--prompt", "-n", "--temp", "--top-k", "--top-p", "--seed", "--threads"},
     2},
    {{"rbee-gguf", "quantize"}, {"IN", "OUT", "TYPE", "--threads", "q4_k_m"}, 2},
    {{"rbee-gguf", "random"}, {"OUT", "--like", "--type", "--vocab", "--seed"}, 2},
    {{"rbee-gguf", "chat-render"}, {"FILE", "--template", "--today"}, 2},
    {{"rbee-bench"}, {"engine", "stream", "memory", "--version"}, 1},
    {{"rbee-bench", "engine"},
     {"-m", "-p", "-n", "-t", "-r", "--kv-type", "--no-mmap", "--json"},
     1},
    {{"rbee-bench", "stream"},
     {"--url", "--clients", "--requests", "--max-tokens", "--prompt", "--route", "--json"},
     1},
    {{"rbee-bench", "memory"}, {"-m", "-t", "-r", "--no-mmap"}, 1},
    {{"mock-hive"}, {"--port", "--claim-version", "--scenario", "--version"}, 1},
    {{"mock-worker"},
     {"--model", "--port", "--scenario", "--worker-id", "--model-ref", "--backend", "--device",
      "--hive-url", "--advertise-host", "--local-mode", "--slots", "--queue",
      "--stream-open-timeout", "--heartbeat-interval", "--no-mmap", "--threads", "--ctx",
      "--kv-type", "--version"},
     2},
    {{"mock-files"}, {"--root", "--port", "--scenario", "--version"}, 2},
};

typedef struct run_result {
    int code;
    char *out, *err;
} run_result;

/* Runs c's words plus extra (NULL-terminated) with a deadline; RBEE_HOME is a fresh folder. */
static run_result run(const help_case *c, const char *const *extra)
{
    char dir[4096], outp[4200], errp[4200], home[4200], bin[4096];
    char *argv[MAX_WORDS + 4], *env[] = {home, "RBEE_API_TOKEN=", NULL};
    run_result r = {0};
    int n = 0, st = 0;
    pid_t pid;

    rbt_tmpdir(dir);
    snprintf(outp, sizeof outp, "%s/out", dir);
    snprintf(errp, sizeof errp, "%s/err", dir);
    snprintf(home, sizeof home, "RBEE_HOME=%s", dir);
    snprintf(bin, sizeof bin, "%s", rbt_bin(c->argv[0]));
    argv[n++] = bin;
    for (int i = 1; i < MAX_WORDS && c->argv[i]; i++)
        argv[n++] = (char *)c->argv[i];
    for (int i = 0; extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    pid = rbt_spawn_split(argv, env, outp, errp);
    if (!rbt_wait_exit(pid, RUN_MS, &st)) {
        rbt_kill(pid);
        ck_abort_msg("%s %s did not finish within %d ms", c->argv[0], extra[0], RUN_MS);
    }
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = rbt_slurp(outp);
    r.err = rbt_slurp(errp);
    r.out = r.out ? r.out : strdup("");
    r.err = r.err ? r.err : strdup("");
    rbt_rmtree(dir);
    return r;
}

static void result_release(run_result *r)
{
    free(r->out);
    free(r->err);
}

/* "rbee workers list" */
static void command_name(const help_case *c, char *out, size_t len)
{
    out[0] = '\0';
    for (int i = 0; i < MAX_WORDS && c->argv[i]; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", c->argv[i]);
}

/* 1 when word occurs in text as a whole word (spaces, commas, brackets or a line end around). */
static int has_word(const char *text, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        int before = p == text || strchr(" ,[\n", p[-1]);
        int after = strchr(" ,]\n", p[n]) != NULL;
        if (before && after)
            return 1;
    }
    return 0;
}

static const help_case *find_case(const help_case *parent, const char *sub)
{
    for (size_t i = 0; i < RB_ARRAY_LEN(cases); i++) {
        int same = 1, k = 0;
        for (; k < MAX_WORDS - 1 && parent->argv[k]; k++)
            same &= cases[i].argv[k] && strcmp(cases[i].argv[k], parent->argv[k]) == 0;
        if (same && k < MAX_WORDS && cases[i].argv[k] && strcmp(cases[i].argv[k], sub) == 0 &&
            (k + 1 == MAX_WORDS || !cases[i].argv[k + 1]))
            return &cases[i];
    }
    return NULL;
}

/* Every subcommand under "commands:" of a group's help has a row. */
static void check_subcommands(const help_case *c, const char *out)
{
    const char *p = strstr(out, "\ncommands:\n");
    char name[64];

    if (!p)
        return;
    for (p = strchr(p + 1, '\n') + 1; *p == ' '; p = strchr(p, '\n') + 1) {
        ck_assert_int_eq(sscanf(p, " %63s", name), 1);
        ck_assert_msg(find_case(c, name), "%s %s: a subcommand without a row in the walker",
                      c->argv[0], name);
    }
}

/* Scenario: Every command prints its help and every binary its version */
START_TEST(test_cli_help__every_command_prints_its_help_and_every_binary_its_version)
{
    static const char *const forms[][2] = {{"--help", NULL}, {"-h", NULL}};
    static const char *const version[] = {"--version", NULL};
    char name[256], usage[300], want[300];

    for (size_t i = 0; i < RB_ARRAY_LEN(cases); i++) {
        const help_case *c = &cases[i];
        command_name(c, name, sizeof name);
        snprintf(usage, sizeof usage, "usage: %s", name);
        for (size_t f = 0; f < RB_ARRAY_LEN(forms); f++) {
            run_result r = run(c, forms[f]);
            ck_assert_msg(r.code == 0, "%s %s: exit %d, stderr: %s", name, forms[f][0], r.code,
                          r.err);
            ck_assert_msg(
                strncmp(r.out, usage, strlen(usage)) == 0 && strchr(" \n", r.out[strlen(usage)]),
                "%s %s: stdout does not start with '%s':\n%s", name, forms[f][0], usage, r.out);
            ck_assert_msg(r.err[0] == '\0', "%s %s: stderr: %s", name, forms[f][0], r.err);
            for (int k = 0; k < MAX_OPTS && c->opts[k]; k++)
                ck_assert_msg(has_word(r.out, c->opts[k]), "%s %s does not name %s:\n%s", name,
                              forms[f][0], c->opts[k], r.out);
            ck_assert_msg(!strstr(r.out, "docs/"), "%s: the help names a source file:\n%s", name,
                          r.out);
            if (f == 0)
                check_subcommands(c, r.out);
            result_release(&r);
        }
        if (!c->argv[1]) {
            run_result r = run(c, version);
            snprintf(want, sizeof want, "%s %s\n", name, RB_VERSION);
            ck_assert_msg(r.code == 0, "%s --version: exit %d", name, r.code);
            ck_assert_str_eq(r.out, want);
            result_release(&r);
        }
    }
}
END_TEST

/* Scenario: A bad option is one line on stderr */
START_TEST(test_cli_help__a_bad_option_is_one_line_on_stderr)
{
    static const char *const bad[] = {"--no-such-option", NULL};
    char name[256], want[400];

    for (size_t i = 0; i < RB_ARRAY_LEN(cases); i++) {
        const help_case *c = &cases[i];
        run_result r = run(c, bad);
        int group = strncmp(c->opts[0], "-", 1) != 0 && strcmp(c->opts[0], "FILE") != 0 &&
                    strcmp(c->opts[0], "IN") != 0 && strcmp(c->opts[0], "OUT") != 0;
        command_name(c, name, sizeof name);
        if (group) /* a group takes the word as its command */
            snprintf(want, sizeof want, "%s: unknown command '--no-such-option': expected ", name);
        else
            snprintf(want, sizeof want, "%s: unknown option --no-such-option\n", name);
        const char *line = r.err;
        ck_assert_msg(r.code == c->bad_exit, "%s: exit %d, not %d", name, r.code, c->bad_exit);
        if (strncmp(line, "Error: ", 7) == 0) /* the keeper's failure line of its commands */
            line += 7;
        ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "%s: stderr '%s', want '%s'", name,
                      r.err, want);
        ck_assert_msg(rbt_count(r.err, "\n") == 1, "%s: stderr is not one line: %s", name, r.err);
        ck_assert_msg(r.out[0] == '\0', "%s: stdout: %s", name, r.out);
        result_release(&r);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli_help");
    TCase *tc = rbt_tcase(s, "walk", 240);

    tcase_add_test(tc, test_cli_help__every_command_prints_its_help_and_every_binary_its_version);
    tcase_add_test(tc, test_cli_help__a_bad_option_is_one_line_on_stderr);
    return rbt_run(s);
}
