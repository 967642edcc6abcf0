/*
 * Unit tests for the socket-free parts of spec/common_http.feature: buffers, JSON field
 * validation, Authorization header parsing, constant-time comparison and fingerprints.
 */
#include <string.h>

#include "rb_args.h"
#include "rb_buf.h"
#include "rb_db.h"
#include "rb_http.h"
#include "rb_json.h"
#include "rb_test.h"
#include "rb_sock.h"
#include "rb_utf8.h"
#include "rb_util.h"

/* Scenario: The buffer refuses to grow past its maximum */
START_TEST(test_common_http__the_buffer_refuses_to_grow_past_its_maximum)
{
    rb_buf b;
    rb_buf_init(&b, 16);
    ck_assert_int_eq(rb_buf_append(&b, "0123456789", 10), RB_OK);
    ck_assert_int_eq(rb_buf_append(&b, "abcdefg", 7), RB_ETOOBIG);
    ck_assert_int_eq(b.len, 10);
    ck_assert_str_eq(b.data, "0123456789");
    ck_assert_int_eq(rb_buf_appendf(&b, "%s", "abcdefg"), RB_ETOOBIG);
    ck_assert_int_eq(rb_buf_appendf(&b, "%d", 123456), RB_OK);
    ck_assert_str_eq(b.data, "0123456789123456");
    rb_buf_consume(&b, 10);
    ck_assert_str_eq(b.data, "123456");
    rb_buf_release(&b);
}
END_TEST

/* Scenario: Field validation collects every error */
START_TEST(test_common_http__field_validation_collects_every_error)
{
    json_t *body =
        json_loads("{\"prompt\": 5, \"max_tokens\": 99999, \"temperature\": \"hot\"}", 0, NULL);
    const char *prompt = NULL;
    long long n = 128;
    double t = 0.7;
    rb_jcheck c;
    json_t *env;
    char *text;

    rb_jcheck_init(&c);
    ck_assert_int_eq(rb_json_str(&c, body, "prompt", RB_REQUIRED, 1, 32768, &prompt), -1);
    ck_assert_int_eq(rb_json_int(&c, body, "max_tokens", RB_OPTIONAL, 1, 2048, &n), -1);
    ck_assert_int_eq(rb_json_num(&c, body, "temperature", RB_OPTIONAL, 0, 2, &t), -1);
    ck_assert_int_eq(n, 128);
    ck_assert(!rb_jcheck_ok(&c));
    env = rb_jcheck_envelope(&c);
    json_t *fields =
        json_object_get(json_object_get(json_object_get(env, "error"), "details"), "fields");
    ck_assert_int_eq(json_array_size(fields), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 0), "constraint")),
                     "type");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 1), "constraint")),
                     "range");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 2), "constraint")),
                     "type");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(env, "error"), "code")),
                     "INVALID_REQUEST");
    text = rb_json_dump(env);
    ck_assert_ptr_null(strstr(text, "99999"));
    ck_assert_ptr_null(strstr(text, "hot"));
    free(text);
    json_decref(env);
    rb_jcheck_release(&c);
    json_decref(body);
}
END_TEST

/* More of the same scenario: present-and-valid, absent-optional and the other getters. */
START_TEST(test_common_http__field_getters_accept_valid_values)
{
    json_t *body =
        json_loads("{\"prompt\":\"hi\",\"n\":5,\"x\":0.5,\"b\":true,\"s\":[\"a\",\"bb\"],"
                   "\"seed\":42,\"nul\":null,\"one\":\"z\"}",
                   0, NULL);
    const char *p = NULL, *arr[4];
    long long n = 0;
    double x = 0;
    int b = 0;
    uint64_t seed = 0;
    size_t na = 0;
    rb_jcheck c;

    rb_jcheck_init(&c);
    ck_assert_int_eq(rb_json_str(&c, body, "prompt", RB_REQUIRED, 1, 10, &p), 1);
    ck_assert_str_eq(p, "hi");
    ck_assert_int_eq(rb_json_int(&c, body, "n", RB_REQUIRED, 1, 10, &n), 1);
    ck_assert_int_eq(rb_json_num(&c, body, "x", RB_REQUIRED, 0, 1, &x), 1);
    ck_assert_int_eq(rb_json_num(&c, body, "n", RB_REQUIRED, 0, 10, &x), 1); /* ints are numbers */
    ck_assert_int_eq(rb_json_bool(&c, body, "b", RB_REQUIRED, &b), 1);
    ck_assert_int_eq(rb_json_strarr(&c, body, "s", RB_OPTIONAL, 4, 1, 100, arr, &na), 1);
    ck_assert_int_eq(na, 2);
    ck_assert_str_eq(arr[1], "bb");
    ck_assert_int_eq(rb_json_strarr(&c, body, "one", RB_OPTIONAL, 4, 1, 100, arr, &na), 1);
    ck_assert_int_eq(na, 1);
    ck_assert_int_eq(rb_json_u64(&c, body, "seed", RB_OPTIONAL, &seed), 1);
    ck_assert_int_eq(seed, 42);
    ck_assert_int_eq(rb_json_int(&c, body, "nul", RB_OPTIONAL, 0, 1, &n), 0);
    ck_assert_int_eq(rb_json_int(&c, body, "absent", RB_OPTIONAL, 0, 1, &n), 0);
    ck_assert(rb_jcheck_ok(&c));
    ck_assert_int_eq(rb_json_int(&c, body, "absent", RB_REQUIRED, 0, 1, &n), -1);
    ck_assert_int_eq(rb_json_str(&c, body, "prompt", RB_REQUIRED, 3, 10, &p), -1);
    ck_assert_int_eq(rb_json_strarr(&c, body, "s", RB_OPTIONAL, 1, 1, 100, arr, &na), -1);
    ck_assert_int_eq(rb_json_bool(&c, body, "n", RB_OPTIONAL, &b), -1);
    ck_assert_int_eq(json_array_size(c.fields), 4);
    rb_jcheck_release(&c);
    json_decref(body);
}
END_TEST

/* Scenario: Authorization headers are parsed strictly */
START_TEST(test_common_http__authorization_headers_are_parsed_strictly)
{
    const char *tok;
    size_t len;
    ck_assert_int_eq(rb_http_parse_bearer("Bearer abc", &tok, &len), 1);
    ck_assert_int_eq(len, 3);
    ck_assert(strncmp(tok, "abc", 3) == 0);
    ck_assert_int_eq(rb_http_parse_bearer("bearer  abc ", &tok, &len), 1);
    ck_assert_int_eq(len, 3);
    ck_assert_int_eq(rb_http_parse_bearer("Bearer", &tok, &len), -1);
    ck_assert_int_eq(rb_http_parse_bearer("Bearer a b", &tok, &len), -1);
    ck_assert_int_eq(rb_http_parse_bearer("Token abc", &tok, &len), -1);
    ck_assert_int_eq(rb_http_parse_bearer(NULL, &tok, &len), 0);
}
END_TEST

/* Scenario: Tokens are compared in constant time and fingerprinted for logs */
START_TEST(test_common_http__tokens_are_compared_in_constant_time_and_fingerprinted_for_logs)
{
    char fp[7], hex[65];
    uint8_t d[32];
    ck_assert(rb_ct_streq("s3cret", "s3cret"));
    ck_assert(!rb_ct_streq("s3cret", "s3creT"));
    ck_assert(!rb_ct_streq("s3cret", "s3cre"));
    ck_assert(!rb_ct_streq("s3cret", ""));
    /* Known SHA-256 vectors (FIPS 180-2). */
    rb_sha256("abc", 3, d);
    rb_hex(d, 32, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    rb_sha256("", 0, d);
    rb_hex(d, 32, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    {
        const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        rb_sha256_ctx c;
        rb_sha256_init(&c);
        for (size_t i = 0; i < strlen(m); i += 5)
            rb_sha256_update(&c, m + i, strlen(m) - i < 5 ? strlen(m) - i : 5);
        rb_sha256_final(&c, d);
        rb_hex(d, 32, hex);
        ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    }
    rb_token_fingerprint("abc", fp);
    ck_assert_str_eq(fp, "ba7816");
}
END_TEST

/* The rest of rb_common's small helpers, exercised once each. */
START_TEST(test_common_basics_helpers)
{
    int64_t v;
    uint64_t u;
    double d;
    char dir[4096], path[4200], *text;
    size_t n;
    uint64_t total = 0, avail = 0;

    ck_assert_int_eq(rb_parse_i64("42", 0, 100, &v), RB_OK);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(rb_parse_i64("42x", 0, 100, &v), RB_EINVAL);
    ck_assert_int_eq(rb_parse_i64("101", 0, 100, &v), RB_EINVAL);
    ck_assert_int_eq(rb_parse_u64("-1", &u), RB_EINVAL);
    ck_assert_int_eq(rb_parse_u64(" -1", &u), RB_EINVAL);
    ck_assert_int_eq(rb_parse_u64("+1", &u), RB_EINVAL);
    ck_assert_int_eq(rb_parse_i64(" 5", 0, 100, &v), RB_EINVAL);
    ck_assert_int_eq(rb_parse_i64("+5", 0, 100, &v), RB_EINVAL);
    ck_assert_int_eq(rb_parse_i64("-", -9, 9, &v), RB_EINVAL);
    ck_assert_int_eq(rb_parse_i64("-5", -9, 9, &v), RB_OK);
    ck_assert_int_eq(v, -5);
    ck_assert_int_eq(rb_parse_u64("18446744073709551615", &u), RB_OK);
    ck_assert_int_eq(rb_parse_double("0.5", 0, 1, &d), RB_OK);
    ck_assert_int_eq(rb_parse_double("nan", 0, 1, &d), RB_EINVAL);
    ck_assert_int_eq(rb_parse_double("", 0, 1, &d), RB_EINVAL);
    ck_assert_int_ge(rb_physical_cores(), 1);
    ck_assert_int_eq(rb_meminfo_mb(&total, &avail), RB_OK);
    ck_assert_int_gt(total, 0);
    ck_assert_str_eq(rb_strerror(RB_ETIMEDOUT), "timed out");
    ck_assert_str_eq(rb_strerror((rb_err)999), "unknown error");
    ck_assert_int_eq(rb_err_http_status(RB_EBUSY), 503);
    ck_assert_int_eq(rb_err_http_status(RB_ENOTFOUND), 404);

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    ck_assert_int_eq(rb_mkdir_p(path), RB_OK);
    snprintf(path, sizeof path, "%s/a/b/c/f.txt", dir);
    ck_assert_int_eq(rb_write_file_atomic(path, "hello", 5), RB_OK);
    ck_assert_int_eq(rb_read_file(path, 100, &text, &n), RB_OK);
    ck_assert_str_eq(text, "hello");
    free(text);
    ck_assert_int_eq(rb_read_file(path, 3, &text, &n), RB_ETOOBIG);
    snprintf(path, sizeof path, "%s/missing", dir);
    ck_assert_int_eq(rb_read_file(path, 3, &text, &n), RB_ENOTFOUND);
    setenv("RBEE_HOME", dir, 1);
    ck_assert_int_eq(rb_home_dir(path, sizeof path), RB_OK);
    ck_assert_str_eq(path, dir);
    ck_assert_int_eq(rb_home_dir(path, 4), RB_ETOOBIG);
    rbt_rmtree(dir);

    char id[37];
    rb_uuid(id);
    ck_assert_int_eq(strlen(id), 36);
    ck_assert_int_eq(id[14], '4');
}
END_TEST

/* SQLite state files are created with their folders, in WAL mode, with the schema applied. */
START_TEST(test_common_basics_db_and_log)
{
    char dir[4096], path[4200], err[256];
    sqlite3 *db;
    sqlite3_stmt *st;

    rbt_tmpdir(dir);
    snprintf(path, sizeof path, "%s/deep/state.db", dir);
    ck_assert_int_eq(
        rb_db_open(path, "CREATE TABLE IF NOT EXISTS t (x INTEGER);", &db, err, sizeof err), RB_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    ck_assert_int_eq(rb_db_open(path, "NOT SQL", &db, err, sizeof err), RB_EIO);
    ck_assert_ptr_nonnull(strstr(err, "cannot initialise database"));
    rbt_rmtree(dir);

    /* Log levels filter, the sink is swappable, level names parse. */
    ck_assert_int_eq(rb_log_level_parse("debug"), RB_LOG_DEBUG);
    ck_assert_int_eq(rb_log_level_parse("WARNING"), RB_LOG_WARN);
    ck_assert_int_eq(rb_log_level_parse("loud"), -1);
    rbt_log_capture_start(RB_LOG_INFO);
    rb_log(RB_LOG_DEBUG, "t", "hidden %d", 1);
    rb_log(RB_LOG_WARN, "t", "shown %d", 2);
    ck_assert(!rbt_log_contains("hidden 1"));
    ck_assert(rbt_log_contains("t: shown 2"));
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_INFO);
    rbt_log_capture_stop();
    rb_log_set_level(RB_LOG_OFF);
    rb_log(RB_LOG_ERROR, "t", "to stderr sink, filtered");
    rb_log_set_level(RB_LOG_ERROR);
    rb_log(RB_LOG_ERROR, "t", "stderr sink line (expected in test output)");
}
END_TEST

static int parse_pair(const char *v, void *out)
{
    int *xy = out;
    return sscanf(v, "%d,%d", &xy[0], &xy[1]) == 2 ? 0 : -1;
}

/* rb_args: every kind, short names, '-' as a positional word, the errors' wording. */
START_TEST(test_common_basics_args)
{
    int i = 0, ms = 0, flag = 0, xy[2] = {0, 0}, seen_n = 0;
    long long ll = 0;
    double d = 0;
    unsigned long long u = 0;
    const char *str = NULL, *pos[2];
    size_t npos = 0;
    char err[200];
    const rb_opt opts[] = {
        {"-i", RB_OPT_INT, &i, -5, 5},
        {"--ll", RB_OPT_LLONG, &ll, 0, 1e12},
        {"--num", RB_OPT_NUM, &d, 0.5, 2, &seen_n},
        {"--u", RB_OPT_U64, &u},
        {"--ms", RB_OPT_MS, &ms, 0, 10},
        {"--flag", RB_OPT_FLAG, &flag},
        {"--str", RB_OPT_STR, &str},
        {"--pair", RB_OPT_FN, xy, 0, 0, NULL, parse_pair, "X,Y"},
    };
    char *ok[] = {"-i",  "-3",     "--ll", "999999999999", "--num", "1.5",    "--u", "7",   "--ms",
                  "2.5", "--flag", "-",    "--str",        "s",     "--pair", "3,4", "file"};
    ck_assert_int_eq(
        rb_args_parse("prog", 17, ok, opts, RB_ARRAY_LEN(opts), pos, 2, &npos, err, sizeof err),
        RB_OK);
    ck_assert_int_eq(i, -3);
    ck_assert(ll == 999999999999LL);
    ck_assert(d == 1.5 && seen_n == 1);
    ck_assert(u == 7);
    ck_assert_int_eq(ms, 2500);
    ck_assert_int_eq(flag, 1);
    ck_assert_str_eq(str, "s");
    ck_assert(xy[0] == 3 && xy[1] == 4);
    ck_assert_int_eq(npos, 2);
    ck_assert_str_eq(pos[0], "-");
    ck_assert_str_eq(pos[1], "file");
    const struct {
        int argc;
        char *argv[3];
        const char *want;
    } bad[] = {
        {2, {"-i", "6"}, "prog: -i takes an integer from -5 to 5, not '6'"},
        {2, {"--num", "x"}, "prog: --num takes a number from 0.5 to 2, not 'x'"},
        {2, {"--ms", "11"}, "prog: --ms takes a number of seconds from 0 to 10, not '11'"},
        {2, {"--u", "-1"}, "prog: --u takes a non-negative integer, not '-1'"},
        {2, {"--str", ""}, "prog: --str needs a non-empty value"},
        {2, {"--pair", "3"}, "prog: --pair takes X,Y, not '3'"},
        {1, {"--ll"}, "prog: --ll needs a value"},
        {1, {"--nope"}, "prog: unknown option --nope"},
        {3, {"a", "b", "c"}, "prog: unexpected argument 'c'"},
    };
    for (size_t k = 0; k < RB_ARRAY_LEN(bad); k++) {
        ck_assert_int_eq(rb_args_parse("prog", bad[k].argc, (char **)bad[k].argv, opts,
                                       RB_ARRAY_LEN(opts), pos, 2, &npos, err, sizeof err),
                         RB_EINVAL);
        ck_assert_str_eq(err, bad[k].want);
    }
}
END_TEST

/* rb_cmd_usage's layout, and -h/--help only where an option may stand. */
START_TEST(test_common_basics_args_help)
{
    const char *prompt = NULL;
    long long n = 1;
    int json = 0, shown = -1;
    char *text = NULL, err[256];
    size_t len = 0;
    const rb_opt opts[] = {
        {"--prompt", RB_OPT_STR, &prompt, .what = "TEXT", .help = "the text"},
        {"--max-tokens", RB_OPT_LLONG, &n, 1, 9, .help = "how many"},
        {"--a-very-long-option-name", RB_OPT_FLAG, &json, .help = "wide"},
    };
    const rb_cmd cmd = {"prog sub", "[WORD]", "Does a thing.", opts, 3, "notes\n", 1};
    char *value[] = {"--prompt", "--help"};
    char *bad_then_help[] = {"--nope", "-h"};
    FILE *f = open_memstream(&text, &len);

    rb_cmd_usage(&cmd, f);
    fclose(f);
    ck_assert_str_eq(text, "usage: prog sub [options] [WORD]\n"
                           "Does a thing.\n"
                           "\n"
                           "options:\n"
                           "  --prompt TEXT             the text\n"
                           "  --max-tokens N            how many\n"
                           "  --a-very-long-option-name\n"
                           "                            wide\n"
                           "  -h, --help                print this help and exit\n"
                           "  --version                 print the version and exit\n"
                           "\n"
                           "notes\n");
    free(text);
    /* a value that looks like --help is a value */
    ck_assert_int_eq(rb_cmd_parse(&cmd, 2, value, NULL, 0, NULL, &shown, err, sizeof err), RB_OK);
    ck_assert_int_eq(shown, 0);
    ck_assert_str_eq(prompt, "--help");
    /* help wins over an error elsewhere on the line: the user asked what is right */
    fflush(stdout);
    ck_assert_int_eq(rb_cmd_parse(&cmd, 2, bad_then_help, NULL, 0, NULL, &shown, err, sizeof err),
                     RB_OK);
    ck_assert_int_eq(shown, 1);
}
END_TEST

START_TEST(test_common_basics_error_envelope_repairs_invalid_utf8)
{
    /* a message quoting a log cut mid-character still makes an envelope, not "out of memory" */
    json_t *e = rb_error_envelope("WORKER_CRASHED", "log: caf\xc3", NULL);
    json_t *in = json_object_get(e, "error");

    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(json_string_value(json_object_get(in, "code")), "WORKER_CRASHED");
    ck_assert_str_eq(json_string_value(json_object_get(in, "message")), "log: caf\xef\xbf\xbd");
    json_decref(e);
}
END_TEST

/* rb_utf8, rb_json_text, rb_id_valid, deadlines and the port probe. */
START_TEST(test_common_basics_utf8_ids_time_ports)
{
    const struct {
        const char *s;
        int want;
    } steps[] = {
        {"a", 1},
        {"\xc3\xa9", 2},
        {"\xe2\x82\xac", 3},
        {"\xf0\x9f\x98\x80", 4},
        {"\xc3", 0},
        {"\xe2\x82", 0},
        {"\xc0\xaf", -1},
        {"\xe0\x80\xaf", -1},
        {"\xed\xa0\x80", -1},
        {"\xf4\x90\x80\x80", -1},
        {"\xe2\x28", -1},
        {"\xf0\x9f\x28", -2},
        {"\x80", -1},
    };
    for (size_t k = 0; k < RB_ARRAY_LEN(steps); k++)
        ck_assert_msg(rb_utf8_step((const unsigned char *)steps[k].s, strlen(steps[k].s)) ==
                          steps[k].want,
                      "step %zu", k);
    ck_assert_int_eq(rb_utf8_lead_len('a'), 1);
    ck_assert_int_eq(rb_utf8_lead_len(0xc3), 2);
    ck_assert_int_eq(rb_utf8_lead_len(0xe2), 3);
    ck_assert_int_eq(rb_utf8_lead_len(0xf0), 4);
    ck_assert_int_eq(rb_utf8_lead_len(0x80), 1);

    json_t *t = rb_json_text("caf\xc3\xa9 \xff!\xe2\x82", 10);
    ck_assert_str_eq(json_string_value(t), "caf\xc3\xa9 \xef\xbf\xbd!\xef\xbf\xbd");
    json_decref(t);
    t = rb_json_text("plain", 5);
    ck_assert_str_eq(json_string_value(t), "plain");
    json_decref(t);

    ck_assert(rb_id_valid("job-1_a.b:c", 64));
    ck_assert(!rb_id_valid("", 64));
    ck_assert(!rb_id_valid("a b", 64));
    ck_assert(!rb_id_valid("abcd", 3));
    ck_assert(rb_id_valid("abc", 3));

    struct timespec now, dl = rb_deadline_ms(1500);
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t diff = (int64_t)(dl.tv_sec - now.tv_sec) * 1000 + (dl.tv_nsec - now.tv_nsec) / 1000000;
    ck_assert(diff > 1400 && diff <= 1500);
    ck_assert(dl.tv_nsec >= 0 && dl.tv_nsec < 1000000000L);
    int64_t t0 = rb_now_ms();
    rb_sleep_ms(20);
    ck_assert_int_ge(rb_now_ms() - t0, 20);

    int port = rb_port_probe("127.0.0.1", 0, 0);
    ck_assert_int_gt(port, 0);
    ck_assert_int_eq(rb_port_probe("127.0.0.1", port, 1), port);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common_basics");
    TCase *tc = rbt_tcase(s, "basics", 10);
    tcase_add_test(tc, test_common_http__the_buffer_refuses_to_grow_past_its_maximum);
    tcase_add_test(tc, test_common_http__field_validation_collects_every_error);
    tcase_add_test(tc, test_common_http__field_getters_accept_valid_values);
    tcase_add_test(tc, test_common_http__authorization_headers_are_parsed_strictly);
    tcase_add_test(
        tc, test_common_http__tokens_are_compared_in_constant_time_and_fingerprinted_for_logs);
    tcase_add_test(tc, test_common_basics_helpers);
    tcase_add_test(tc, test_common_basics_db_and_log);
    tcase_add_test(tc, test_common_basics_args);
    tcase_add_test(tc, test_common_basics_args_help);
    tcase_add_test(tc, test_common_basics_utf8_ids_time_ports);
    tcase_add_test(tc, test_common_basics_error_envelope_repairs_invalid_utf8);
    return rbt_run(s);
}
