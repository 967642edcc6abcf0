/*
 * Unit tests for spec/common_sse.feature: the frame parser and the event channel.
 * No sockets here; the streaming scenarios live in tests/integration/test_common_streaming.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "rb_sse.h"
#include "rb_test.h"
#include "rb_util.h"

typedef struct collected {
    char data[8][128];
    char event[8][32];
    int n;
} collected;

static int collect(void *user, const char *event, const char *data, size_t len)
{
    collected *c = user;
    if (c->n < 8) {
        snprintf(c->data[c->n], sizeof c->data[0], "%.*s", (int)len, data);
        snprintf(c->event[c->n], sizeof c->event[0], "%s", event);
    }
    c->n++;
    return 0;
}

/* Scenario: An event split across reads is delivered once, whole */
START_TEST(test_common_sse__an_event_split_across_reads_is_delivered_once_whole)
{
    const char *s = "data: {\"a\":1}\n\n";
    collected c = {0};
    rb_sse_parser p;
    rb_sse_parser_init(&p, 1024, collect, &c);
    for (size_t i = 0; i < strlen(s); i++) {
        ck_assert_int_eq(rb_sse_parser_feed(&p, s + i, 1), RB_OK);
        if (i + 1 < strlen(s))
            ck_assert_int_eq(c.n, 0);
    }
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.data[0], "{\"a\":1}");
    rb_sse_parser_release(&p);
}
END_TEST

/* Scenario: CRLF and CR line endings are accepted */
START_TEST(test_common_sse__crlf_and_cr_line_endings_are_accepted)
{
    const char *s = "data: x\r\n\r\ndata: y\r\rdata: z\n\n";
    collected c = {0};
    rb_sse_parser p;
    rb_sse_parser_init(&p, 1024, collect, &c);
    /* Also split between CR and LF, the awkward place. */
    ck_assert_int_eq(rb_sse_parser_feed(&p, s, 8), RB_OK);
    ck_assert_int_eq(rb_sse_parser_feed(&p, s + 8, strlen(s) - 8), RB_OK);
    ck_assert_int_eq(c.n, 3);
    ck_assert_str_eq(c.data[0], "x");
    ck_assert_str_eq(c.data[1], "y");
    ck_assert_str_eq(c.data[2], "z");
    rb_sse_parser_release(&p);
}
END_TEST

/* Scenario: Comments are counted and never delivered */
START_TEST(test_common_sse__comments_are_counted_and_never_delivered)
{
    const char *s = ": keep-alive\n\ndata: a\n\n";
    collected c = {0};
    rb_sse_parser p;
    rb_sse_parser_init(&p, 1024, collect, &c);
    ck_assert_int_eq(rb_sse_parser_feed(&p, s, strlen(s)), RB_OK);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.data[0], "a");
    ck_assert_int_eq(p.comments, 1);
    rb_sse_parser_release(&p);
}
END_TEST

/* Scenario: Multi-line data is joined with newlines */
START_TEST(test_common_sse__multi_line_data_is_joined_with_newlines)
{
    const char *s = "\xEF\xBB\xBF"
                    "data: one\ndata: two\nevent: note\n\n";
    collected c = {0};
    rb_sse_parser p;
    rb_sse_parser_init(&p, 1024, collect, &c);
    ck_assert_int_eq(rb_sse_parser_feed(&p, s, 2), RB_OK); /* BOM split over feeds */
    ck_assert_int_eq(rb_sse_parser_feed(&p, s + 2, strlen(s) - 2), RB_OK);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.data[0], "one\ntwo");
    ck_assert_str_eq(c.event[0], "note");
    rb_sse_parser_release(&p);
}
END_TEST

/* Scenario: An oversize line is refused */
START_TEST(test_common_sse__an_oversize_line_is_refused)
{
    char line[80];
    collected c = {0};
    rb_sse_parser p;
    memset(line, 'a', sizeof line);
    memcpy(line, "data: ", 6);
    rb_sse_parser_init(&p, 64, collect, &c);
    ck_assert_int_eq(rb_sse_parser_feed(&p, line, 64), RB_OK);
    ck_assert_int_eq(rb_sse_parser_feed(&p, line + 64, 1), RB_ETOOBIG);
    ck_assert_str_eq(rb_strerror(RB_ETOOBIG), "too large");
    ck_assert_int_eq(c.n, 0);
    rb_sse_parser_release(&p);
}
END_TEST

/* Scenario: A formatted event survives a round trip */
START_TEST(test_common_sse__a_formatted_event_survives_a_round_trip)
{
    const char *payload = "line1\nline2";
    collected c = {0};
    rb_sse_parser p;
    rb_buf b;
    rb_buf_init(&b, 1024);
    ck_assert_int_eq(rb_sse_format(&b, payload, strlen(payload)), RB_OK);
    ck_assert_str_eq(b.data, "data: line1\ndata: line2\n\n");
    rb_sse_parser_init(&p, 1024, collect, &c);
    ck_assert_int_eq(rb_sse_parser_feed(&p, b.data, b.len), RB_OK);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.data[0], payload);
    rb_sse_parser_release(&p);
    rb_buf_release(&b);
}
END_TEST

typedef struct popper {
    rb_chan *ch;
    int64_t delay_ms;
} popper;

static void *pop_later(void *arg)
{
    popper *pp = arg;
    rb_buf b;
    rb_chan *never = rb_chan_new(1);
    rb_buf_init(&b, 1024);
    /* The consumer is deliberately late: wait on a channel nothing is pushed to. */
    rb_chan_pop(never, &b, (int)pp->delay_ms);
    rb_chan_unref(never);
    rb_chan_pop(pp->ch, &b, 1000);
    rb_buf_release(&b);
    return NULL;
}

/* Scenario: A full channel blocks the producer until the consumer pops */
START_TEST(test_common_sse__a_full_channel_blocks_the_producer_until_the_consumer_pops)
{
    rb_chan *ch = rb_chan_new(2);
    pthread_t t;
    popper pp = {ch, 100};
    int64_t t0;

    ck_assert_int_eq(rb_chan_push(ch, "1", (size_t)-1, 0), RB_OK);
    ck_assert_int_eq(rb_chan_push(ch, "2", (size_t)-1, 0), RB_OK);
    t0 = rbt_ms();
    ck_assert_int_eq(rb_chan_push(ch, "3", (size_t)-1, 100), RB_ETIMEDOUT);
    ck_assert_int_ge(rbt_ms() - t0, 95);
    pthread_create(&t, NULL, pop_later, &pp);
    ck_assert_int_eq(rb_chan_push(ch, "3", (size_t)-1, 5000), RB_OK);
    pthread_join(t, NULL);
    ck_assert_int_eq(rb_chan_depth(ch), 2);
    rb_chan_unref(ch);
}
END_TEST

/* Scenario: A closed channel refuses the next push */
START_TEST(test_common_sse__a_closed_channel_refuses_the_next_push)
{
    rb_chan *ch = rb_chan_new(4);
    ck_assert_int_eq(rb_chan_push(ch, "a", (size_t)-1, 0), RB_OK);
    rb_chan_close(ch);
    ck_assert(rb_chan_is_closed(ch));
    ck_assert_int_eq(rb_chan_push(ch, "b", (size_t)-1, 0), RB_ECLOSED);
    ck_assert_str_eq(rb_strerror(RB_ECLOSED), "closed");
    rb_chan_unref(ch);
}
END_TEST

/* Scenario: A finished channel drains before it ends */
START_TEST(test_common_sse__a_finished_channel_drains_before_it_ends)
{
    rb_chan *ch = rb_chan_new(4);
    rb_buf b;
    rb_buf_init(&b, 64);
    rb_chan_push(ch, "e1", (size_t)-1, 0);
    rb_chan_push(ch, "e2", (size_t)-1, 0);
    rb_chan_push(ch, "e3", (size_t)-1, 0);
    rb_chan_finish(ch);
    ck_assert_int_eq(rb_chan_push(ch, "late", (size_t)-1, 0), RB_ECLOSED);
    for (int i = 1; i <= 3; i++) {
        char want[4];
        snprintf(want, sizeof want, "e%d", i);
        ck_assert_int_eq(rb_chan_pop(ch, &b, 100), RB_OK);
        ck_assert_str_eq(b.data, want);
    }
    ck_assert_int_eq(rb_chan_pop(ch, &b, 100), RB_ECLOSED);
    rb_buf_release(&b);
    rb_chan_unref(ch);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common_sse");
    TCase *tc = rbt_tcase(s, "parser", 10);
    tcase_add_test(tc, test_common_sse__an_event_split_across_reads_is_delivered_once_whole);
    tcase_add_test(tc, test_common_sse__crlf_and_cr_line_endings_are_accepted);
    tcase_add_test(tc, test_common_sse__comments_are_counted_and_never_delivered);
    tcase_add_test(tc, test_common_sse__multi_line_data_is_joined_with_newlines);
    tcase_add_test(tc, test_common_sse__an_oversize_line_is_refused);
    tcase_add_test(tc, test_common_sse__a_formatted_event_survives_a_round_trip);
    tc = rbt_tcase(s, "channel", 10);
    tcase_add_test(tc, test_common_sse__a_full_channel_blocks_the_producer_until_the_consumer_pops);
    tcase_add_test(tc, test_common_sse__a_closed_channel_refuses_the_next_push);
    tcase_add_test(tc, test_common_sse__a_finished_channel_drains_before_it_ends);
    return rbt_run(s);
}
