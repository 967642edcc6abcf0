/*
 * spec/keeper_chat.feature with the real binaries: rbee chat on localhost starts an ephemeral
 * hive, which starts llm-worker-rbee on the bundled model; two turns come from a pipe.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rb_test.h"
#include "rbt_keeper.h"

/* Scenario: rbee chat with the real worker on the bundled model */
START_TEST(test_keeper_chat__rbee_chat_with_the_real_worker_on_the_bundled_model)
{
    rbt_keeper k;
    const char *args[] = {"chat", "--max-tokens", "8", "--temperature", "0", NULL};
    char in[4200], home_kv[4200];
    int saved, fd;
    char *out, *err;

    rbt_keeper_init(&k, NULL);
    snprintf(in, sizeof in, "%s/in.txt", k.home);
    FILE *f = fopen(in, "w");
    ck_assert(f);
    fputs("In the beginning\nAnd God said\n", f);
    fclose(f);
    saved = dup(0);
    fd = open(in, O_RDONLY);
    dup2(fd, 0);
    close(fd);
    rbt_keeper_start(&k, args);
    dup2(saved, 0);
    close(saved);
    ck_assert_int_eq(rbt_keeper_wait(&k, 120000), 0);
    out = rbt_keeper_out(&k);
    err = rbt_keeper_err(&k);
    ck_assert_msg(rbt_count(out, "\n") == 2, "two replies, one line each: %s", out);
    ck_assert_msg(out[0] != '\n' && !strstr(out, "\n\n"), "an empty reply: %s", out);
    ck_assert_int_eq(rbt_count(err, "[Phase 7] Ready"), 1);
    ck_assert(strstr(err, "ephemeral"));
    snprintf(home_kv, sizeof home_kv, "RBEE_HOME=%s", k.home);
    ck_assert_int_eq(rbt_procs_with_env(home_kv), 0);
    free(out);
    free(err);
    rbt_keeper_cleanup(&k);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keeper_chat_real");
    TCase *tc = rbt_tcase(s, "real", 180);

    rbt_keeper_mark();
    tcase_add_test(tc, test_keeper_chat__rbee_chat_with_the_real_worker_on_the_bundled_model);
    return rbt_run(s);
}
