/*
 * Unit tests for spec/engine_sampler.feature: the samplers and the stop-string filter, on
 * hand-made logits (no model needed).
 */
#include <math.h>
#include <string.h>

#include "rb_test.h"
#include "sampler.h"

static eng_sampler_params params(float temp, int top_k, float top_p, float min_p, uint64_t seed)
{
    eng_sampler_params p = eng_sampler_params_default();
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    return p;
}

/* Counts how often each of n tokens is drawn in draws samples. */
static void histogram(const float *logits, int n, eng_sampler_params p, int draws, int *counts)
{
    eng_sampler s;
    ck_assert_int_eq(eng_sampler_init(&s, n, 64), RB_OK);
    eng_sampler_reset(&s, &p);
    memset(counts, 0, (size_t)n * sizeof(int));
    for (int i = 0; i < draws; i++) {
        int32_t t = eng_sampler_sample(&s, logits);
        ck_assert(t >= 0 && t < n);
        counts[t]++;
    }
    eng_sampler_release(&s);
}

/* Scenario: Temperature 0 is greedy */
START_TEST(test_engine_sampler__temperature_0_is_greedy)
{
    const float logits[] = {1.0f, 3.0f, 2.0f};
    int c[3];
    histogram(logits, 3, params(0, 0, 1, 0, 1), 100, c);
    ck_assert_int_eq(c[1], 100);
}
END_TEST

/* Scenario: Top-k keeps the k most likely tokens */
START_TEST(test_engine_sampler__top_k_keeps_the_k_most_likely_tokens)
{
    const float logits[] = {4, 3, 2, 1};
    int c[4];
    histogram(logits, 4, params(1, 2, 1, 0, 7), 10000, c);
    ck_assert_int_gt(c[0], 0);
    ck_assert_int_gt(c[1], 0);
    ck_assert_int_eq(c[2] + c[3], 0);
    /* Within the two kept, the softmax ratio e^1 holds. */
    ck_assert_double_eq_tol((double)c[0] / c[1], exp(1.0), 0.25);
}
END_TEST

/* Scenario: Top-p keeps the smallest set reaching p */
START_TEST(test_engine_sampler__top_p_keeps_the_smallest_set_reaching_p)
{
    const float logits[] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int c[4];
    histogram(logits, 4, params(1, 0, 0.8f, 0, 11), 10000, c);
    ck_assert_int_gt(c[0], 0);
    ck_assert_int_gt(c[1], 0);
    ck_assert_int_eq(c[2] + c[3], 0);
}
END_TEST

/* Scenario: Min-p drops tokens below a fraction of the best */
START_TEST(test_engine_sampler__min_p_drops_tokens_below_a_fraction_of_the_best)
{
    const float logits[] = {logf(0.6f), logf(0.3f), logf(0.06f), logf(0.04f)};
    int c[4];
    histogram(logits, 4, params(1, 0, 1, 0.2f, 13), 10000, c);
    ck_assert_int_gt(c[0], 0);
    ck_assert_int_gt(c[1], 0);        /* 0.3 >= 0.2 * 0.6 */
    ck_assert_int_eq(c[2] + c[3], 0); /* 0.06 < 0.12 */
}
END_TEST

/* Scenario: Repetition penalty lowers recently seen tokens */
START_TEST(test_engine_sampler__repetition_penalty_lowers_recently_seen_tokens)
{
    const float logits[] = {2.0f, 1.9f};
    eng_sampler s;
    eng_sampler_params p = params(0, 0, 1, 0, 1);
    ck_assert_int_eq(eng_sampler_init(&s, 2, 64), RB_OK);
    eng_sampler_reset(&s, &p);
    ck_assert_int_eq(eng_sampler_sample(&s, logits), 0);
    p.repeat_penalty = 1.5f;
    eng_sampler_reset(&s, &p);
    eng_sampler_accept(&s, 0);
    eng_sampler_accept(&s, 0); /* counted once: 2.0 / 1.5 = 1.33 < 1.9 */
    ck_assert_int_eq(eng_sampler_sample(&s, logits), 1);
    /* Out of the window: 64 other tokens later the penalty is gone. */
    for (int i = 0; i < 64; i++)
        eng_sampler_accept(&s, 1);
    const float l2[] = {2.0f, -1.0f};
    ck_assert_int_eq(eng_sampler_sample(&s, l2), 0);
    eng_sampler_release(&s);
}
END_TEST

/* Scenario: Frequency and presence penalties subtract per occurrence and once */
START_TEST(test_engine_sampler__frequency_and_presence_penalties_subtract_per_occurrence_and_once)
{
    const float logits[] = {2.0f, -1.0f, 0.5f, 1.0f};
    float out[4];
    eng_sampler s;
    eng_sampler_params p = params(0, 0, 1, 0, 1);
    ck_assert_int_eq(eng_sampler_init(&s, 4, 64), RB_OK);
    /* Window [0, 0, 1]: token 0 seen twice, token 1 once, 2 and 3 never. */
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    eng_sampler_reset(&s, &p);
    eng_sampler_accept(&s, 0);
    eng_sampler_accept(&s, 0);
    eng_sampler_accept(&s, 1);
    eng_sampler_penalized(&s, logits, out);
    ck_assert_float_eq_tol(out[0], 2.0f - (2 * 0.5f + 0.25f), 1e-6f); /* 0.75 */
    ck_assert_float_eq_tol(out[1], -1.0f - (0.5f + 0.25f), 1e-6f);    /* -1.75 */
    ck_assert_float_eq(out[2], 0.5f);
    ck_assert_float_eq(out[3], 1.0f);
    /* Greedy now prefers token 3 (1.0 > 0.75). */
    ck_assert_int_eq(eng_sampler_sample(&s, logits), 3);
    /* With the repetition penalty first, as llama.cpp: 2 / 2 - 1.25 and -1 * 2 - 0.75. */
    p.repeat_penalty = 2.0f;
    eng_sampler_reset(&s, &p);
    eng_sampler_accept(&s, 0);
    eng_sampler_accept(&s, 0);
    eng_sampler_accept(&s, 1);
    eng_sampler_penalized(&s, logits, out);
    ck_assert_float_eq_tol(out[0], -0.25f, 1e-6f);
    ck_assert_float_eq_tol(out[1], -2.75f, 1e-6f);
    /* Negative penalties favour seen tokens (OpenAI allows -2..2). */
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = -1.0f;
    p.presence_penalty = 0;
    eng_sampler_reset(&s, &p);
    eng_sampler_accept(&s, 1);
    eng_sampler_accept(&s, 1);
    eng_sampler_accept(&s, 1);
    eng_sampler_penalized(&s, logits, out);
    ck_assert_float_eq_tol(out[1], 2.0f, 1e-6f);
    ck_assert_int_eq(eng_sampler_sample(&s, logits), 0); /* tie 2.0: the lower id */
    eng_sampler_release(&s);
}
END_TEST

/* Scenario: Log-probabilities are the log-softmax of the model's logits */
START_TEST(test_engine_sampler__log_probabilities_are_the_log_softmax_of_the_model_s_logits)
{
    const float logits[] = {1.0f, 2.0f, 3.0f, 2.0f};
    eng_token_logprob top[ENG_MAX_TOP_LOGPROBS];
    /* log(e^1 + 2 e^2 + e^3) = 3.6265..., by hand. */
    double lse = log(exp(1.0) + 2 * exp(2.0) + exp(3.0));
    float lp = eng_logprobs(logits, 4, 0, 3, top);
    ck_assert_double_eq_tol(lp, 1.0 - lse, 1e-5);
    ck_assert_int_eq(top[0].token, 2);
    ck_assert_double_eq_tol(top[0].logprob, 3.0 - lse, 1e-5);
    ck_assert_int_eq(top[1].token, 1); /* ties: lower id first */
    ck_assert_int_eq(top[2].token, 3);
    ck_assert_double_eq_tol(top[2].logprob, 2.0 - lse, 1e-5);
    /* k larger than the vocabulary is clamped; k 0 writes nothing. */
    lp = eng_logprobs(logits, 4, 2, 0, top);
    ck_assert_double_eq_tol(lp, 3.0 - lse, 1e-5);
}
END_TEST

/* Scenario: The same seed gives the same tokens */
START_TEST(test_engine_sampler__the_same_seed_gives_the_same_tokens)
{
    float logits[50];
    int32_t a[100], b[100], c[100];
    eng_sampler s;
    for (int i = 0; i < 50; i++)
        logits[i] = sinf((float)i) * 2.0f;
    ck_assert_int_eq(eng_sampler_init(&s, 50, 64), RB_OK);
    for (int run = 0; run < 3; run++) {
        eng_sampler_params p = params(0.8f, 0, 1, 0, run < 2 ? 42 : 43);
        int32_t *out = run == 0 ? a : run == 1 ? b : c;
        eng_sampler_reset(&s, &p);
        for (int i = 0; i < 100; i++)
            out[i] = eng_sampler_sample(&s, logits);
    }
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    eng_sampler_release(&s);
}
END_TEST

/* Scenario: Sampled frequencies follow the softmax */
START_TEST(test_engine_sampler__sampled_frequencies_follow_the_softmax)
{
    const float logits[] = {0.0f, logf(2.0f), logf(3.0f)};
    int c[3];
    const int draws = 60000;
    histogram(logits, 3, params(1, 0, 1, 0, 5), draws, c);
    ck_assert_double_eq_tol((double)c[0] / draws, 1.0 / 6, 0.01);
    ck_assert_double_eq_tol((double)c[1] / draws, 2.0 / 6, 0.01);
    ck_assert_double_eq_tol((double)c[2] / draws, 3.0 / 6, 0.01);
    /* Temperature 2 flattens: p ~ sqrt(1:2:3). */
    eng_sampler_params p = params(2, 0, 1, 0, 5);
    histogram(logits, 3, p, draws, c);
    double z = 1 + sqrt(2.0) + sqrt(3.0);
    ck_assert_double_eq_tol((double)c[2] / draws, sqrt(3.0) / z, 0.01);
}
END_TEST

/* Scenario: Stop strings are not emitted, even across tokens */
START_TEST(test_engine_sampler__stop_strings_are_not_emitted_even_across_tokens)
{
    const char *stop[] = {"LORD"};
    const char *pieces[] = {"the L", "OR", "D said"};
    eng_stopper st;
    char emitted[64] = "";
    const char *out;
    size_t n;
    int stopped = 0;

    eng_stopper_init(&st);
    ck_assert_int_eq(eng_stopper_reset(&st, stop, 1), RB_OK);
    for (int i = 0; i < 3 && !stopped; i++) {
        stopped = eng_stopper_feed(&st, pieces[i], strlen(pieces[i]), &out, &n);
        strncat(emitted, out, n);
    }
    ck_assert(stopped);
    ck_assert_str_eq(emitted, "the ");

    /* A near miss is released once it can no longer match. */
    eng_stopper_reset(&st, stop, 1);
    emitted[0] = '\0';
    stopped = eng_stopper_feed(&st, "the LOR", 7, &out, &n);
    strncat(emitted, out, n);
    ck_assert_str_eq(emitted, "the ");
    stopped |= eng_stopper_feed(&st, "d", 1, &out, &n);
    strncat(emitted, out, n);
    ck_assert(!stopped);
    ck_assert_str_eq(emitted, "the LORd");
    /* At the end, held-back text is flushed. */
    eng_stopper_feed(&st, " L", 2, &out, &n);
    strncat(emitted, out, n);
    eng_stopper_flush(&st, &out, &n);
    strncat(emitted, out, n);
    ck_assert_str_eq(emitted, "the LORd L");
    /* No stop strings: text passes straight through. */
    eng_stopper_reset(&st, NULL, 0);
    ck_assert_int_eq(eng_stopper_feed(&st, "LORD", 4, &out, &n), 0);
    ck_assert_int_eq(n, 4);
    /* Limits. */
    const char *five[] = {"a", "b", "c", "d", "e"};
    ck_assert_int_eq(eng_stopper_reset(&st, five, 5), RB_EINVAL);
    eng_stopper_release(&st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_sampler");
    TCase *tc = rbt_tcase(s, "sampler", 30);
    tcase_add_test(tc, test_engine_sampler__temperature_0_is_greedy);
    tcase_add_test(tc, test_engine_sampler__top_k_keeps_the_k_most_likely_tokens);
    tcase_add_test(tc, test_engine_sampler__top_p_keeps_the_smallest_set_reaching_p);
    tcase_add_test(tc, test_engine_sampler__min_p_drops_tokens_below_a_fraction_of_the_best);
    tcase_add_test(tc, test_engine_sampler__repetition_penalty_lowers_recently_seen_tokens);
    tcase_add_test(tc, test_engine_sampler__the_same_seed_gives_the_same_tokens);
    tcase_add_test(
        tc, test_engine_sampler__frequency_and_presence_penalties_subtract_per_occurrence_and_once);
    tcase_add_test(
        tc, test_engine_sampler__log_probabilities_are_the_log_softmax_of_the_model_s_logits);
    tcase_add_test(tc, test_engine_sampler__sampled_frequencies_follow_the_softmax);
    tcase_add_test(tc, test_engine_sampler__stop_strings_are_not_emitted_even_across_tokens);
    return rbt_run(s);
}
