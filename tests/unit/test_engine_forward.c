/*
 * Unit tests for spec/engine_forward.feature: the forward pass against the independent
 * PyTorch reference (tools/reference/), generation, limits, cancel and loading progress.
 * White-box where a path must be proven taken: kernels.h forces the kernel set and session.h
 * counts the forward pass's OpenBLAS calls.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_gguf.h"
#include "eng_tools.h"
#include "kernels.h"
#include "rb_models.h"
#include "rb_test.h"
#include "session.h"

/* The OpenBLAS sgemm path against the scalar kernels token by token, and against the detected
 * set's batch kernel: the max abs difference of any logit at any position. All sum the same
 * float products in another order; measured 1.4e-5 and 6.7e-6 (Zen 4, OpenBLAS 0.3.21),
 * while a wrong product is off by the size of the logits (1 to 10). */
#define BLAS_LOGIT_TOL 1e-3

static eng_session *open_session(eng_model *m, int n_ctx, int threads)
{
    eng_session_params sp = eng_session_params_default();
    eng_session *s = NULL;
    char err[512];
    sp.n_ctx = n_ctx;
    sp.n_threads = threads;
    ck_assert_msg(eng_session_open(m, &sp, &s, err, sizeof err) == RB_OK, "%s", err);
    return s;
}

/* Runs the reference's tokens and compares every position's logits. Returns the max abs
 * error; counts top-1 agreements into *agree. kl receives the mean KL(ref || engine). */
static double compare_logits(eng_model *m, const rbt_reference *ref, int *agree, double *kl)
{
    eng_session *s = open_session(m, 0, 2);
    const float *all;
    size_t n;
    char err[256];
    double maxerr = 0, klsum = 0;

    eng_session_keep_all_logits(s, 1);
    eng_session_reset(s, NULL, NULL, 0);
    ck_assert_msg(eng_session_prefill(s, ref->tokens, ref->ntokens, err, sizeof err) == RB_OK, "%s",
                  err);
    all = eng_session_all_logits(s, &n);
    ck_assert_int_eq(n, ref->ntokens);
    *agree = 0;
    for (size_t p = 0; p < n; p++) {
        const float *a = all + p * (size_t)ref->n_vocab;
        const float *b = ref->logits + p * (size_t)ref->n_vocab;
        double za = 0, zb = 0, ma = a[rbt_argmax(a, ref->n_vocab)],
               mb = b[rbt_argmax(b, ref->n_vocab)];
        for (int v = 0; v < ref->n_vocab; v++) {
            double e = fabs((double)a[v] - b[v]);
            if (e > maxerr)
                maxerr = e;
            za += exp(a[v] - ma);
            zb += exp(b[v] - mb);
        }
        for (int v = 0; v < ref->n_vocab; v++) {
            double pb = exp(b[v] - mb) / zb, pa = exp(a[v] - ma) / za;
            if (pb > 0)
                klsum += pb * (log(pb) - log(pa > 1e-30 ? pa : 1e-30));
        }
        *agree += rbt_argmax(a, ref->n_vocab) == rbt_argmax(b, ref->n_vocab);
    }
    *kl = klsum / (double)n;
    eng_session_free(s);
    return maxerr;
}

/* Scenario: Logits match the PyTorch reference for the bundled model */
START_TEST(test_engine_forward__logits_match_the_pytorch_reference_for_the_bundled_model)
{
    const char *path = rbt_model_f16();
    eng_model *m = rbt_open_model(path);
    rbt_reference ref;
    int32_t *ids;
    size_t n;
    int agree;
    double kl, err;

    ck_assert_int_eq(rbt_reference_load(path, &ref), 0);
    ck_assert_int_eq(eng_model_tokenize(m, ref.prompt, strlen(ref.prompt), 1, &ids, &n), RB_OK);
    ck_assert_int_eq(n, ref.ntokens);
    ck_assert_mem_eq(ids, ref.tokens, n * sizeof(int32_t));
    free(ids);
    err = compare_logits(m, &ref, &agree, &kl);
    printf("bundled f16 vs reference: max abs logit error %.5f, top-1 %d/%zu, KL %.2e\n", err,
           agree, ref.ntokens, kl);
    ck_assert_double_lt(err, 0.02);
    ck_assert_int_eq(agree, (int)ref.ntokens);
    rbt_reference_release(&ref);
    eng_model_free(m);
}
END_TEST

static void greedy(eng_model *m, const rbt_reference *ref, int32_t *out, size_t n);

/* Scenario: Logits match the reference for a random GQA model with an untied head */
START_TEST(
    test_engine_forward__logits_match_the_reference_for_a_random_gqa_model_with_an_untied_head)
{
    const char *path = rbt_model_gqa();
    eng_model *m = rbt_open_model(path);
    eng_model_info info;
    rbt_reference ref;
    int agree;
    double kl, err;

    eng_model_get_info(m, &info);
    ck_assert_int_lt(info.n_head_kv, info.n_head);
    ck_assert(!info.tied_output);
    ck_assert(info.rope_freq_base != 10000.0f);
    ck_assert_int_eq(rbt_reference_load(path, &ref), 0);
    err = compare_logits(m, &ref, &agree, &kl);
    printf("random GQA f16 vs reference: max abs logit error %.5f, top-1 %d/%zu\n", err, agree,
           ref.ntokens);
    ck_assert_double_lt(err, 0.01);
    ck_assert_int_eq(agree, (int)ref.ntokens);
    /* and its greedy continuation, token for token */
    {
        int32_t got[64] = {0};
        ck_assert_int_gt(ref.ngreedy, 0);
        ck_assert_int_le(ref.ngreedy, 64);
        greedy(m, &ref, got, ref.ngreedy);
        for (size_t i = 0; i < ref.ngreedy; i++)
            ck_assert_msg(got[i] == ref.greedy[i], "GQA greedy token %zu: engine %d, PyTorch %d", i,
                          got[i], ref.greedy[i]);
    }
    rbt_reference_release(&ref);
    eng_model_free(m);
}
END_TEST

/* Scenario: rope.dimension_count below the head size is honoured */
START_TEST(test_engine_forward__rope_dimension_count_below_the_head_size_is_honoured)
{
    const char *path = rbt_model_gqa_rope8();
    eng_model *m = rbt_open_model(path), *full = rbt_open_model(rbt_model_gqa());
    eng_model_info info;
    rbt_reference ref;
    int agree;
    double kl, err, diff;

    eng_model_get_info(m, &info);
    ck_assert_int_eq(info.n_rot, 8);
    ck_assert_int_eq(info.n_embd / info.n_head, 16);
    ck_assert_int_eq(rbt_reference_load(path, &ref), 0);
    err = compare_logits(m, &ref, &agree, &kl);
    diff = compare_logits(full, &ref, &agree, &kl); /* same weights, all 16 dimensions rotated */
    printf("rope on 8 of 16 dims vs reference: max abs logit error %.5f; fully rotated: %.3f\n",
           err, diff);
    ck_assert_double_lt(err, 0.01);
    ck_assert_double_gt(diff, 0.01);
    err = compare_logits(m, &ref, &agree, &kl);
    ck_assert_int_eq(agree, (int)ref.ntokens);
    rbt_reference_release(&ref);
    eng_model_free(m);
    eng_model_free(full);
}
END_TEST

/* Greedy tokens from the prompt of the reference file. */
static void greedy(eng_model *m, const rbt_reference *ref, int32_t *out, size_t n)
{
    eng_session *s = open_session(m, 0, 2);
    eng_sampler_params sp = eng_sampler_params_default();
    char err[256];
    sp.temperature = 0;
    eng_session_reset(s, &sp, NULL, 0);
    ck_assert_int_eq(eng_session_prefill(s, ref->tokens, ref->ntokens, err, sizeof err), RB_OK);
    for (size_t i = 0; i < n; i++) {
        eng_step st;
        ck_assert_int_eq(eng_session_step(s, &st), RB_OK);
        out[i] = st.token;
        if (st.done)
            break;
    }
    eng_session_free(s);
}

/* Scenario: Greedy generation matches PyTorch on the bundled model */
START_TEST(test_engine_forward__greedy_generation_matches_pytorch_on_the_bundled_model)
{
    const char *path = rbt_model_f16();
    eng_model *m = rbt_open_model(path);
    rbt_reference ref;
    int32_t got[64] = {0};

    ck_assert_int_eq(rbt_reference_load(path, &ref), 0);
    ck_assert_int_gt(ref.ngreedy, 0);
    ck_assert_int_le(ref.ngreedy, 64);
    greedy(m, &ref, got, ref.ngreedy);
    for (size_t i = 0; i < ref.ngreedy; i++)
        ck_assert_msg(got[i] == ref.greedy[i], "greedy token %zu: engine %d, PyTorch %d", i, got[i],
                      ref.greedy[i]);
    rbt_reference_release(&ref);
    eng_model_free(m);
}
END_TEST

/* Scenario: Batched prompt processing equals token-by-token processing */
START_TEST(test_engine_forward__batched_prompt_processing_equals_token_by_token_processing)
{
    eng_model *m = rbt_open_model(rbt_model_f16());
    eng_model_info info;
    const char *text = "And God said, Let there be light: and there was light. And God saw the "
                       "light, that it was good: and God divided the light from the darkness.";
    int32_t *ids;
    size_t n;
    float *a, *b;
    char err[256];
    double maxerr = 0;

    eng_model_get_info(m, &info);
    ck_assert_int_eq(eng_model_tokenize(m, text, strlen(text), 1, &ids, &n), RB_OK);
    /* 32 tokens or more: the sgemm path where F16 has no batch kernel (not on AVX-512; the
     * portable-kernels scenario forces it) */
    ck_assert_int_ge(n, 33);
    a = malloc((size_t)info.n_vocab * sizeof(float));
    b = malloc((size_t)info.n_vocab * sizeof(float));
    eng_session *s = open_session(m, 0, 2);
    eng_session_reset(s, NULL, NULL, 0);
    ck_assert_int_eq(eng_session_prefill(s, ids, n, err, sizeof err), RB_OK);
    memcpy(a, eng_session_logits(s), (size_t)info.n_vocab * sizeof(float));
    eng_session_reset(s, NULL, NULL, 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(eng_session_prefill(s, ids + i, 1, err, sizeof err), RB_OK);
    memcpy(b, eng_session_logits(s), (size_t)info.n_vocab * sizeof(float));
    for (int v = 0; v < info.n_vocab; v++)
        if (fabs((double)a[v] - b[v]) > maxerr)
            maxerr = fabs((double)a[v] - b[v]);
    printf("batched vs one-by-one: max abs logit difference %.6f over %zu tokens\n", maxerr, n);
    ck_assert_double_lt(maxerr, 2e-2);
    ck_assert_int_eq(rbt_argmax(a, info.n_vocab), rbt_argmax(b, info.n_vocab));
    eng_session_free(s);
    free(a);
    free(b);
    free(ids);
    eng_model_free(m);
}
END_TEST

/* Every position's logits of text prefilled in session s: at once (batched) or one token at a
 * time. Returns a copy of (n, n_vocab) logits (caller frees); *sgemm gets the OpenBLAS calls
 * the prefill made. */
static float *prefill_logits(eng_model *m, const int32_t *ids, size_t n, int batched, long *sgemm)
{
    eng_session *s = open_session(m, 0, 2);
    const float *all;
    size_t got;
    char err[256];
    long c0;
    float *copy;

    eng_session_keep_all_logits(s, 1);
    eng_session_reset(s, NULL, NULL, 0);
    c0 = eng_forward_sgemm_calls();
    if (batched)
        ck_assert_msg(eng_session_prefill(s, ids, n, err, sizeof err) == RB_OK, "%s", err);
    else
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(eng_session_prefill(s, ids + i, 1, err, sizeof err) == RB_OK, "%s", err);
    *sgemm = eng_forward_sgemm_calls() - c0;
    all = eng_session_all_logits(s, &got);
    ck_assert_uint_eq(got, n);
    copy = malloc(got * (size_t)m->hp.n_vocab * sizeof(float));
    memcpy(copy, all, got * (size_t)m->hp.n_vocab * sizeof(float));
    eng_session_free(s);
    return copy;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d)
            d = fabs((double)a[i] - b[i]);
    return d;
}

/* The kernel set the CPU offers, back in use: eng_isa_force is process-wide. A checked
 * teardown, so it also runs after a failed assertion when Check does not fork. */
static void restore_detected_isa(void)
{
    eng_isa_force(eng_isa_detect());
}

/* Scenario: Prompts on the portable kernels go through OpenBLAS sgemm */
START_TEST(test_engine_forward__prompts_on_the_portable_kernels_go_through_openblas_sgemm)
{
    const char *text = "And God said, Let there be light: and there was light. And God saw the "
                       "light, that it was good: and God divided the light from the darkness.";
    const eng_isa best = eng_isa_detect();
    eng_model *m = rbt_open_model(rbt_model_f16());
    const int matrices = 7 * m->hp.n_layer + 1; /* q k v o gate up down per layer, the head */
    int32_t *ids;
    size_t n, nl;
    long blas_calls, scalar_calls, best_calls;
    float *blas, *scalar, *fast;
    double d_scalar, d_best;

    unsetenv("RBEE_BLAS_MIN"); /* the default threshold: 32 tokens */
    ck_assert_int_eq(eng_model_tokenize(m, text, strlen(text), 1, &ids, &n), RB_OK);
    ck_assert_int_ge(n, 33);
    ck_assert_int_le(n, 64); /* one forward pass: the default n_batch */
    nl = n * (size_t)m->hp.n_vocab;

    /* The portable set has no batch kernel for F16, so a prompt takes the sgemm branch. */
    ck_assert_int_eq(eng_isa_force(ENG_ISA_SCALAR), ENG_ISA_SCALAR);
    ck_assert(!eng_matmul_has_gemm(ENG_TYPE_F16));
    blas = prefill_logits(m, ids, n, 1, &blas_calls);
    ck_assert_msg(blas_calls >= matrices,
                  "a %zu-token prompt on the scalar set made %ld sgemm calls; its %d matrices "
                  "should each have gone through OpenBLAS",
                  n, blas_calls, matrices);
    /* The reference: the same kernels one token at a time, the scalar twins' dot products. */
    scalar = prefill_logits(m, ids, n, 0, &scalar_calls);
    ck_assert_int_eq(scalar_calls, 0);
    d_scalar = max_abs_diff(blas, scalar, nl);

    /* And the kernel set this CPU would use (AVX-512: the F16 batch kernel, no sgemm). */
    restore_detected_isa();
    ck_assert_int_eq(eng_isa_active(), best);
    fast = prefill_logits(m, ids, n, 1, &best_calls);
    d_best = max_abs_diff(blas, fast, nl);
    printf("OpenBLAS path (scalar set, %zu tokens): %ld sgemm calls for %d matrices; max abs "
           "logit difference %.2e vs scalar token by token, %.2e vs %s batched (%ld sgemm "
           "calls)\n",
           n, blas_calls, matrices, d_scalar, d_best, eng_isa_name(best), best_calls);
    ck_assert_double_lt(d_scalar, BLAS_LOGIT_TOL);
    ck_assert_double_lt(d_best, BLAS_LOGIT_TOL);
    free(blas);
    free(scalar);
    free(fast);
    free(ids);
    eng_model_free(m);
}
END_TEST

/* Scenario: Quantized variants stay close to the reference */
START_TEST(test_engine_forward__quantized_variants_stay_close_to_the_reference)
{
    const char *f16 = rbt_model_f16();
    const char *types[] = {"q8_0", "q4_0", "q4_k_m"};
    char dir[4096], path[4200], err[512];
    rbt_reference ref;

    ck_assert_ptr_nonnull(f16);
    ck_assert_int_eq(rbt_reference_load(f16, &ref), 0);
    rbt_tmpdir(dir);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        int agree;
        double kl, maxerr;
        snprintf(path, sizeof path, "%s/model-%s.gguf", dir, types[t]);
        ck_assert_msg(eng_quantize_file(f16, path, types[t], 2, err, sizeof err) == RB_OK, "%s",
                      err);
        eng_model *m = rbt_open_model(path);
        maxerr = compare_logits(m, &ref, &agree, &kl);
        printf("%s vs reference: max abs logit error %.4f, top-1 %d/%zu, mean KL %.5f\n", types[t],
               maxerr, agree, ref.ntokens, kl);
        if (t == 0) {
            ck_assert_int_eq(agree, (int)ref.ntokens);
            ck_assert_double_lt(kl, 0.001);
        } else {
            ck_assert_int_gt(2 * agree, (int)ref.ntokens); /* most positions: more than half */
            ck_assert_double_lt(kl, 0.05);
        }
        eng_model_free(m);
    }
    rbt_reference_release(&ref);
    rbt_rmtree(dir);
}
END_TEST

/* Scenario: The context limit is enforced */
START_TEST(test_engine_forward__the_context_limit_is_enforced)
{
    eng_model *m = rbt_open_model(rbt_model_f16());
    eng_session *s = open_session(m, 16, 1);
    int32_t toks[20];
    char err[256];
    eng_step st;

    for (int i = 0; i < 20; i++)
        toks[i] = 100 + i;
    ck_assert_int_eq(eng_session_n_ctx(s), 16);
    eng_session_reset(s, NULL, NULL, 0);
    ck_assert_int_eq(eng_session_prefill(s, toks, 20, err, sizeof err), RB_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err, "16"));
    /* Generation stops when the context is full. */
    eng_sampler_params sp = eng_sampler_params_default();
    sp.temperature = 0;
    eng_session_reset(s, &sp, NULL, 0);
    ck_assert_int_eq(eng_session_prefill(s, toks, 14, err, sizeof err), RB_OK);
    int steps = 0;
    do {
        ck_assert_int_eq(eng_session_step(s, &st), RB_OK);
        steps++;
    } while (!st.done && steps < 10);
    ck_assert(st.done);
    ck_assert(st.reason == ENG_STOP_CONTEXT || st.reason == ENG_STOP_EOS);
    ck_assert_int_le(steps, 4); /* 14 + 2 fed back = 16; the 4th step finds the context full */
    eng_session_free(s);
    eng_model_free(m);
}
END_TEST

/* Scenario: A cancel flag stops generation between tokens */
START_TEST(test_engine_forward__a_cancel_flag_stops_generation_between_tokens)
{
    eng_model *m = rbt_open_model(rbt_model_f16());
    eng_session *s = open_session(m, 64, 1);
    int32_t *ids;
    size_t n;
    char err[256];
    eng_step st;

    ck_assert_int_eq(eng_model_tokenize(m, "In the beginning", 16, 1, &ids, &n), RB_OK);
    eng_session_reset(s, NULL, NULL, 0);
    ck_assert_int_eq(eng_session_prefill(s, ids, n, err, sizeof err), RB_OK);
    ck_assert_int_eq(eng_session_step(s, &st), RB_OK);
    eng_session_cancel(s);
    ck_assert_int_eq(eng_session_step(s, &st), RB_ECANCELED);
    ck_assert(st.done);
    ck_assert_int_eq(st.reason, ENG_STOP_CANCELLED);
    ck_assert_str_eq(rb_strerror(RB_ECANCELED), "canceled");
    free(ids);
    eng_session_free(s);
    eng_model_free(m);
}
END_TEST

typedef struct progress_log {
    int calls, last, total, monotonic;
} progress_log;

static void on_progress(void *user, int loaded, int total)
{
    progress_log *p = user;
    if (p->calls && loaded < p->last)
        p->monotonic = 0;
    p->calls++;
    p->last = loaded;
    p->total = total;
}

/* Scenario: Loading reports layer progress */
START_TEST(test_engine_forward__loading_reports_layer_progress)
{
    eng_model_params mp = eng_model_params_default();
    progress_log p = {0, 0, 0, 1};
    eng_model *m = NULL;
    eng_model_info info;
    char err[256];

    mp.progress = on_progress;
    mp.progress_user = &p;
    ck_assert_int_eq(eng_model_open(rbt_model_f16(), &mp, &m, err, sizeof err), RB_OK);
    eng_model_get_info(m, &info);
    ck_assert_int_eq(p.total, info.n_layer);
    ck_assert_int_eq(p.last, info.n_layer);
    ck_assert_int_eq(p.calls, info.n_layer + 1);
    ck_assert(p.monotonic);
    eng_model_free(m);
    /* A file that is not a model is refused with its name in the message. */
    ck_assert_int_ne(eng_model_open(rbt_src("README.md"), &mp, &m, err, sizeof err), RB_OK);
    ck_assert_ptr_nonnull(strstr(err, "README.md"));
}
END_TEST

/* Both models prefill the reference prompt of path with every position's logits kept: the
 * logits must be bit-identical. */
static void assert_same_prefill_logits(eng_model *x, eng_model *y, const char *path)
{
    eng_session *a = open_session(x, 0, 2), *b = open_session(y, 0, 2);
    const float *la, *lb;
    size_t na, nb;
    rbt_reference ref;
    char err[256];

    ck_assert_int_eq(rbt_reference_load(path, &ref), 0);
    eng_session_keep_all_logits(a, 1);
    eng_session_keep_all_logits(b, 1);
    ck_assert_int_eq(eng_session_prefill(a, ref.tokens, ref.ntokens, err, sizeof err), RB_OK);
    ck_assert_int_eq(eng_session_prefill(b, ref.tokens, ref.ntokens, err, sizeof err), RB_OK);
    la = eng_session_all_logits(a, &na);
    lb = eng_session_all_logits(b, &nb);
    ck_assert_int_eq(na, ref.ntokens);
    ck_assert_int_eq(nb, na);
    ck_assert_int_eq(memcmp(la, lb, na * (size_t)ref.n_vocab * sizeof(float)), 0);
    eng_session_free(a);
    eng_session_free(b);
    rbt_reference_release(&ref);
}

/* Scenario: Weights read into memory give the same logits as mapped weights */
START_TEST(test_engine_forward__weights_read_into_memory_give_the_same_logits_as_mapped_weights)
{
    const char *path = rbt_model_gqa();
    eng_model_params mp = eng_model_params_default();
    progress_log p = {0, 0, 0, 1};
    eng_model *mapped = rbt_open_model(path), *copied = NULL;
    char err[256];

    mp.copy_weights = 1;
    mp.progress = on_progress;
    mp.progress_user = &p;
    ck_assert_msg(eng_model_open(path, &mp, &copied, err, sizeof err) == RB_OK, "%s", err);
    ck_assert(p.monotonic);
    ck_assert_int_eq(p.last, p.total);
    assert_same_prefill_logits(mapped, copied, path);
    eng_model_free(mapped);
    eng_model_free(copied);

    /* A file that fails after the copy began (a tensor missing) is refused cleanly: the
     * error names the tensor and nothing is read after it was freed (ASan runs this too). */
    {
        char dir[4096], bad[4200];
        eng_gguf *g = NULL;
        eng_gguf_writer *w = eng_gguf_writer_new();
        ck_assert_int_eq(eng_gguf_open(path, &g, err, sizeof err), RB_OK);
        ck_assert_int_eq(eng_gguf_writer_copy_kv(w, g), RB_OK);
        for (int64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
            const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
            if (strcmp(t->name, "blk.1.ffn_down.weight") != 0)
                ck_assert_int_eq(eng_gguf_writer_add_tensor(w, t->name, t->type, t->ndim, t->ne,
                                                            t->data, t->size),
                                 RB_OK);
        }
        rbt_tmpdir(dir);
        snprintf(bad, sizeof bad, "%s/missing.gguf", dir);
        ck_assert_int_eq(eng_gguf_writer_write(w, bad, err, sizeof err), RB_OK);
        eng_gguf_writer_free(w);
        eng_gguf_close(g);
        copied = NULL;
        ck_assert_int_ne(eng_model_open(bad, &mp, &copied, err, sizeof err), RB_OK);
        ck_assert_ptr_null(copied);
        ck_assert_msg(strstr(err, "blk.1.ffn_down.weight") != NULL, "%s", err);
        rbt_rmtree(dir);
    }
}
END_TEST

/* Scenario: A model opened from memory gives the same logits as one opened from its file */
START_TEST(
    test_engine_forward__a_model_opened_from_memory_gives_the_same_logits_as_one_opened_from_its_file)
{
    const char *path = rbt_model_gqa();
    eng_model *mapped = rbt_open_model(path), *mem = NULL;
    size_t size = 0;
    char err[256];
    unsigned char *buf = NULL;
    FILE *f = fopen(path, "rb");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    size = (size_t)ftell(f);
    rewind(f);
    buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, size, f), size);
    fclose(f);
    ck_assert_msg(eng_model_open_mem(buf, size, "gqa-in-memory", NULL, &mem, err, sizeof err) ==
                      RB_OK,
                  "%s", err);
    assert_same_prefill_logits(mapped, mem, path);
    eng_model_free(mapped);
    eng_model_free(mem);

    /* Cut inside the tensor data: the header parses, the tensors do not fit. */
    mem = NULL;
    ck_assert_int_ne(eng_model_open_mem(buf, size - 100, "cut-short", NULL, &mem, err, sizeof err),
                     RB_OK);
    ck_assert_ptr_null(mem);
    ck_assert_msg(strstr(err, "cut-short") != NULL, "%s", err);
    ck_assert_int_ne(eng_model_open_mem(buf, 3, NULL, NULL, &mem, err, sizeof err), RB_OK);
    ck_assert_msg(strstr(err, "(memory)") != NULL, "%s", err);
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_forward");
    TCase *tc = rbt_tcase(s, "forward", 120);
    tcase_add_test(tc,
                   test_engine_forward__logits_match_the_pytorch_reference_for_the_bundled_model);
    tcase_add_test(
        tc,
        test_engine_forward__logits_match_the_reference_for_a_random_gqa_model_with_an_untied_head);
    tcase_add_test(tc, test_engine_forward__rope_dimension_count_below_the_head_size_is_honoured);
    tcase_add_test(tc, test_engine_forward__greedy_generation_matches_pytorch_on_the_bundled_model);
    tcase_add_test(tc,
                   test_engine_forward__batched_prompt_processing_equals_token_by_token_processing);
    tcase_add_test(tc, test_engine_forward__quantized_variants_stay_close_to_the_reference);
    tcase_add_test(tc, test_engine_forward__the_context_limit_is_enforced);
    tcase_add_test(tc, test_engine_forward__a_cancel_flag_stops_generation_between_tokens);
    tcase_add_test(tc, test_engine_forward__loading_reports_layer_progress);
    tcase_add_test(
        tc, test_engine_forward__weights_read_into_memory_give_the_same_logits_as_mapped_weights);
    tc = rbt_tcase(s, "portable", 120);
    tcase_add_test(
        tc,
        test_engine_forward__a_model_opened_from_memory_gives_the_same_logits_as_one_opened_from_its_file);
    tcase_add_checked_fixture(tc, NULL, restore_detected_isa);
    tcase_add_test(tc,
                   test_engine_forward__prompts_on_the_portable_kernels_go_through_openblas_sgemm);
    return rbt_run(s);
}
