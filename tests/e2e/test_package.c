/*
 * End-to-end test of spec/package.feature: the Debian package built from this build tree
 * (cpack -G DEB), extracted with dpkg-deb -x into a temporary root, serves `rbee infer` on the
 * bundled model from another working directory, with nothing pointing it at the source tree.
 *
 * Without cpack or dpkg-deb the executable prints one SKIP line and exits 77 (ctest: skipped).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rb_test.h"
#include "rbt_hive.h"

#define CPACK_MS 120000
#define RUN_MS 60000

/* Runs argv with output in log and a deadline; the exit code or -1. */
static int run(char *const argv[], char *const env[], const char *log, int timeout_ms)
{
    int st = 0;
    pid_t pid = rbt_spawn(argv, env, log);

    if (!rbt_wait_exit(pid, timeout_ms, &st)) {
        rbt_kill(pid);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *root, const char *rel)
{
    char p[4400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return stat(p, &st) == 0;
}

static char cpack_bin[4096], dpkg_deb_bin[4096];

/* The path of name on $PATH into out; 1 when found. */
static int on_path(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    char dirs[8192], *save = NULL;

    snprintf(dirs, sizeof dirs, "%s", path && *path ? path : "/usr/bin:/bin");
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", d, name);
        if (access(out, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* Scenario: The Debian package installs a working rbee */
START_TEST(test_package__the_debian_package_installs_a_working_rbee)
{
    char dir[4096], out[4200], root[4200], log[4200], deb[4400], cfg[4200], cwd[4200];
    char home[4200], unit[4400], env_home[4300], env_port[64], env_wport[64], env_path[4400];
    char rbee[4400], *text, *err;
    int code;

    rbt_tmpdir(dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(log, sizeof log, "%s/cpack.log", dir);
    snprintf(cfg, sizeof cfg, "%s/CPackConfig.cmake", RB_BIN_DIR);
    {
        char *argv[] = {cpack_bin, "--config", cfg, "-G", "DEB", "-B", out, NULL};
        code = run(argv, NULL, log, rbt_scaled(CPACK_MS));
        text = rbt_slurp(log);
        ck_assert_msg(code == 0, "cpack exit %d:\n%s", code, text);
        free(text);
    }
    snprintf(deb, sizeof deb, "%s/rbee_%s_amd64.deb", out, RB_VERSION);
    ck_assert_msg(access(deb, R_OK) == 0, "no %s", deb);
    {
        char *argv[] = {dpkg_deb_bin, "-x", deb, root, NULL};
        ck_assert_int_eq(run(argv, NULL, log, rbt_scaled(30000)), 0);
    }
    /* The layout of docs/hive.md, "Installed layout". */
    ck_assert(exists(root, "usr/bin/rbee"));
    ck_assert(exists(root, "usr/bin/rbee-hive"));
    ck_assert(exists(root, "usr/bin/llm-worker-rbee"));
    ck_assert(exists(root, "usr/bin/rbee-gguf"));
    ck_assert(exists(root, "usr/share/rbee/models/kjv-5m-q8_0.gguf"));
    ck_assert(exists(root, "usr/share/doc/rbee/README.md"));
    ck_assert(exists(root, "usr/share/doc/rbee/hive.md"));
    ck_assert(exists(root, "usr/share/doc/rbee/rbee-hive.env.example"));
    ck_assert(!exists(root, "usr/bin/mock-worker"));
    {
        char *argv[] = {dpkg_deb_bin, "-f", deb, "Depends", NULL};
        ck_assert_int_eq(run(argv, NULL, log, rbt_scaled(30000)), 0);
        text = rbt_slurp(log);
        ck_assert_msg(strstr(text, "libmicrohttpd12") && strstr(text, "libjansson4") &&
                          strstr(text, "libopenblas0"),
                      "%s", text);
        free(text);
    }
    /* The unit: the installed binary, the token file, the state folder. */
    snprintf(unit, sizeof unit, "%s/usr/lib/systemd/system/rbee-hive.service", root);
    text = rbt_slurp(unit);
    ck_assert_msg(text != NULL, "no %s", unit);
    ck_assert_ptr_nonnull(strstr(text, "\nExecStart=/usr/bin/rbee-hive daemon $RBEE_HIVE_ARGS\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nEnvironmentFile=-/etc/rbee/rbee-hive.env\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nEnvironment=RBEE_HIVE_ARGS=--local-mode\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nStateDirectory=rbee\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nWantedBy=multi-user.target\n"));
    free(text);

    /* rbee infer from the extracted tree, in another folder, with no hint of the source tree. */
    snprintf(cwd, sizeof cwd, "%s/elsewhere", dir);
    snprintf(home, sizeof home, "%s/home", dir);
    ck_assert_int_eq(mkdir(cwd, 0755), 0);
    snprintf(env_home, sizeof env_home, "RBEE_HOME=%s", home);
    snprintf(env_port, sizeof env_port, "RBEE_HIVE_PORT=%d", rbt_free_port());
    snprintf(env_wport, sizeof env_wport, "RBEE_WORKER_PORT_BASE=%d", rbt_free_port());
    snprintf(env_path, sizeof env_path, "PATH=/usr/bin:/bin");
    snprintf(rbee, sizeof rbee, "%s/usr/bin/rbee", root);
    snprintf(log, sizeof log, "%s/infer.log", dir);
    {
        char *argv[] = {"/bin/sh", "-c", "cd \"$0\" && exec \"$1\" infer --max-tokens 8 \"$2\"",
                        cwd,       rbee, "In the beginning",
                        NULL};
        char *env[] = {env_home, env_port, env_wport, env_path, NULL};
        code = run(argv, env, log, rbt_scaled(RUN_MS));
    }
    err = rbt_slurp(log);
    ck_assert_msg(code == 0, "rbee infer exit %d:\n%s", code, err);
    snprintf(deb, sizeof deb, "(%s/usr/share/rbee/models/kjv-5m-q8_0.gguf)", root);
    ck_assert_msg(strstr(err, deb) != NULL, "the model did not come from the package:\n%s", err);
    ck_assert_msg(strstr(err, "[Summary] 8 tokens") != NULL, "%s", err);
    printf("package: %s\n", strstr(err, "[Summary]"));
    free(err);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: A build tree elsewhere finds its source tree's bundled model */
START_TEST(test_package__a_build_tree_elsewhere_finds_its_source_tree_s_bundled_model)
{
    char dir[4096], bin[4200], cwd[4200], log[4200], want[4400], rbee[4400], env_home[4300];
    char env_port[64], env_wport[64], *err;
    const char *progs[] = {"rbee", "rbee-hive", "llm-worker-rbee"};
    int code;

    /* The build's three programs in a folder that is neither the build tree nor under the
     * source tree, as a build tree made anywhere is. */
    rbt_tmpdir(dir);
    snprintf(bin, sizeof bin, "%s/build-elsewhere", dir);
    snprintf(cwd, sizeof cwd, "%s/cwd", dir);
    snprintf(log, sizeof log, "%s/run.log", dir);
    ck_assert_int_eq(mkdir(bin, 0755), 0);
    ck_assert_int_eq(mkdir(cwd, 0755), 0);
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        char *argv[] = {"/bin/cp", (char *)rbt_bin(progs[i]), bin, NULL};
        ck_assert_int_eq(run(argv, NULL, log, 30000), 0);
    }
    snprintf(env_home, sizeof env_home, "RBEE_HOME=%s/home", dir);
    snprintf(env_port, sizeof env_port, "RBEE_HIVE_PORT=%d", rbt_free_port());
    snprintf(env_wport, sizeof env_wport, "RBEE_WORKER_PORT_BASE=%d", rbt_free_port());
    snprintf(rbee, sizeof rbee, "%s/rbee", bin);
    {
        char *argv[] = {"/bin/sh",
                        "-c",
                        "cd \"$0\" && exec env -u RBEE_BUNDLED_MODEL \"$1\" infer --max-tokens 4 "
                        "\"$2\"",
                        cwd,
                        rbee,
                        "In the beginning",
                        NULL};
        char *env[] = {env_home, env_port, env_wport, NULL};
        code = run(argv, env, log, rbt_scaled(RUN_MS));
    }
    err = rbt_slurp(log);
    ck_assert_msg(code == 0, "rbee infer exit %d:\n%s", code, err);
    snprintf(want, sizeof want, "(%s)", rbt_src("models/kjv-5m-q8_0.gguf"));
    ck_assert_msg(strstr(err, want) != NULL, "the model is not the source tree's:\n%s", err);
    ck_assert_msg(strstr(err, "[Summary] 4 tokens") != NULL, "%s", err);
    free(err);
    rbt_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("package");
    TCase *tc = rbt_tcase(s, "package", rbt_scaled(240000) / 1000.0);

    if (!on_path("cpack", cpack_bin, sizeof cpack_bin) ||
        !on_path("dpkg-deb", dpkg_deb_bin, sizeof dpkg_deb_bin)) {
        printf("SKIP: cpack or dpkg-deb is not installed (ci/install-deps installs both); 1 "
               "test needs them\n");
        return 77;
    }
    tcase_add_test(tc, test_package__the_debian_package_installs_a_working_rbee);
    tcase_add_test(tc, test_package__a_build_tree_elsewhere_finds_its_source_tree_s_bundled_model);
    return rbt_run(s);
}
