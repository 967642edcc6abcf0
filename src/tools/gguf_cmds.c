/*
 * gguf_cmds.c - rbee-gguf generate, quantize and random.
 *
 *     rbee-gguf generate FILE --prompt TEXT -n N [--temp T] [--top-k K] [--top-p P]
 *                        [--seed S] [--threads N]       continuation only, streamed to stdout
 *     rbee-gguf quantize IN OUT TYPE [--threads N]      TYPE: f32 f16 bf16 q8_0 q4_0 q2_k
 *                                                       q3_k_s q3_k_m q4_k q4_k_m q6_k
 *                                                       iq4_nl iq4_xs
 *     rbee-gguf random OUT --like SHAPE --type q4_0 [--vocab VOCAB.gguf] [--seed S]
 *         SHAPE: a real model (tinyllama-1.1b, llama-3.2-1b, qwen3-0.6b, gemma-3-1b, ...) or
 *         a fixture shape (qwen2-tiny, ...); an unknown one lists them all
 *     rbee-gguf chat-render FILE [--template T.jinja] [--today YYYY-MM-DD] < messages.json
 *                                                       the prompt chat_apply makes (rb_chat)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "eng.h"
#include "eng_gguf.h"
#include "eng_tok.h"
#include "eng_tools.h"
#include "gguf_cmds.h"
#include "rb_args.h"
#include "rb_util.h"

#define PROG "rbee-gguf"

static int bad(const char *cmd, const char *what)
{
    fprintf(stderr, "%s %s: %s\n", PROG, cmd, what);
    return 2;
}

int gguf_cmd_generate(int argc, char **argv)
{
    const char *path = NULL, *prompt = NULL;
    long long n = 64, threads = 0, top_k = 0;
    double temp = 0.8, top_p = 1.0;
    unsigned long long seed = 0;
    eng_model_params mp = eng_model_params_default();
    eng_session_params sp = eng_session_params_default();
    eng_sampler_params smp = eng_sampler_params_default();
    eng_model *m = NULL;
    eng_session *s = NULL;
    int32_t *ids = NULL;
    size_t nids;
    char err[512];
    int code = 1;

    const char *pos[1];
    size_t npos = 0;
    const rb_opt opts[] = {
        {"--prompt", RB_OPT_STR, &prompt, .help = "the text to continue (required)"},
        {"-n", RB_OPT_LLONG, &n, 1, 1 << 20, .help = "tokens to generate (default 64)"},
        {"--temp", RB_OPT_NUM, &temp, 0, 100, .help = "temperature, 0 is greedy (default 0.8)"},
        {"--top-k", RB_OPT_LLONG, &top_k, 0, 1 << 24, .help = "default 0: off"},
        {"--top-p", RB_OPT_NUM, &top_p, 0, 1, .help = "default 1: off"},
        {"--seed", RB_OPT_U64, &seed, .help = "seed of the sampler (default 0)"},
        {"--threads", RB_OPT_LLONG, &threads, 0, 256, .help = "default: physical cores"},
    };
    const rb_cmd cmd = {PROG " generate",
                        "FILE",
                        "Continue a prompt, streamed to stdout.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        NULL,
                        0};
    int shown = 0;

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, pos, 1, &npos, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (shown)
        return 0;
    path = npos ? pos[0] : NULL;
    if (!path || !prompt)
        return bad("generate", "usage: generate FILE --prompt TEXT -n N [--temp T] [--top-k K] "
                               "[--top-p P] [--seed S] [--threads N]");
    if (eng_model_open(path, &mp, &m, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    sp.n_threads = (int)threads;
    if (eng_session_open(m, &sp, &s, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        goto out;
    }
    smp.temperature = (float)temp;
    smp.top_k = (int)top_k;
    smp.top_p = (float)top_p;
    smp.seed = seed;
    if (eng_model_tokenize(m, prompt, strlen(prompt), 1, &ids, &nids) ||
        eng_session_reset(s, &smp, NULL, 0) || eng_session_prefill(s, ids, nids, err, sizeof err)) {
        fprintf(stderr, "%s: cannot run the prompt: %s\n", PROG, err);
        goto out;
    }
    for (long long i = 0; i < n; i++) {
        eng_step st;
        if (eng_session_step(s, &st))
            break;
        fwrite(st.text, 1, st.text_len, stdout);
        fflush(stdout);
        if (st.done)
            break;
        if (i + 1 == n) {
            eng_session_flush(s, &st);
            fwrite(st.text, 1, st.text_len, stdout);
        }
    }
    if (isatty(STDOUT_FILENO))
        putchar('\n'); /* for the prompt's sake; a pipe gets the continuation only */
    code = fflush(stdout) == 0 ? 0 : 1;
out:
    free(ids);
    eng_session_free(s);
    eng_model_free(m);
    return code;
}

int gguf_cmd_quantize(int argc, char **argv)
{
    const char *pos[3];
    size_t npos = 0;
    long long threads = 0;
    char err[512];
    const rb_opt opts[] = {
        {"--threads", RB_OPT_LLONG, &threads, 1, 256, .help = "default: physical cores"}};
    const rb_cmd cmd = {PROG " quantize",
                        "IN OUT TYPE",
                        "Write a model in another tensor type.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        "TYPE: f32 f16 bf16 q8_0 q4_0 q2_k q3_k_s q3_k_m q4_k q4_k_m q6_k iq4_nl "
                        "iq4_xs\n",
                        0};
    int shown = 0;

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, pos, 3, &npos, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (shown)
        return 0;
    if (npos != 3)
        return bad("quantize", "usage: quantize IN OUT TYPE [--threads N]");
    if (!eng_ftype_known(pos[2])) {
        fprintf(stderr,
                "%s quantize: unknown type '%s' (known: f32 f16 bf16 q8_0 q4_0 q2_k q3_k_s "
                "q3_k_m q4_k q4_k_m q6_k iq4_nl iq4_xs)\n",
                PROG, pos[2]);
        return 1;
    }
    if (eng_quantize_file(pos[0], pos[1], pos[2], threads ? (int)threads : rb_physical_cores(), err,
                          sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    return 0;
}

int gguf_cmd_random(int argc, char **argv)
{
    const char *out = NULL, *like = NULL, *type = "f16", *vocab = NULL;
    unsigned long long seed = 1;
    char err[512];

    const char *pos[1];
    size_t npos = 0;
    const rb_opt opts[] = {
        {"--like", RB_OPT_STR, &like, .what = "SHAPE",
         .help = "a real model (tinyllama-1.1b, qwen3-0.6b, ...) or a fixture shape (required)"},
        {"--type", RB_OPT_STR, &type, .what = "TYPE", .help = "tensor type (default f16)"},
        {"--vocab", RB_OPT_STR, &vocab, .what = "VOCAB.gguf",
         .help = "take the tokenizer of this model"},
        {"--seed", RB_OPT_U64, &seed, .help = "default 1"},
    };
    const rb_cmd cmd = {PROG " random",
                        "OUT",
                        "A model of random weights in a real model's shape (for benchmarks); an "
                        "unknown SHAPE lists them all.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        NULL,
                        0};
    int shown = 0;

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, pos, 1, &npos, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (shown)
        return 0;
    out = npos ? pos[0] : NULL;
    if (!out || !like)
        return bad("random", "usage: random OUT --like SHAPE --type TYPE "
                             "[--vocab VOCAB.gguf] [--seed S]");
    if (eng_random_model(out, like, type, vocab, seed, rb_physical_cores(), err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    return 0;
}

/* The text of special token id ("" when the model has none); borrowed from tok. */
static const char *special_text(const eng_tokenizer *tok, eng_token id)
{
    size_t len;
    const char *p = id == ENG_TOKEN_NONE ? NULL : eng_tokenizer_piece(tok, id, &len);
    return p ? p : "";
}

static int valid_date(const char *value, void *out)
{
    int y, m, d;
    char tail;
    if (strlen(value) != 10 || sscanf(value, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return -1;
    *(const char **)out = value;
    return 0;
}

int gguf_cmd_chat_render(int argc, char **argv)
{
    const char *path = NULL, *tmpl_path = NULL, *today = NULL;
    eng_gguf *g = NULL;
    eng_tokenizer *tok = NULL;
    json_t *messages = NULL;
    char *file_src = NULL, *model_src = NULL, *prompt = NULL, err[512];
    size_t npos = 0, len = 0;
    int ret = 1;
    const rb_opt opts[] = {
        {"--template", RB_OPT_STR, &tmpl_path, .what = "T.jinja",
         .help = "this template instead of the model's"},
        {"--today", RB_OPT_FN, &today, 0, 0, NULL, valid_date, "YYYY-MM-DD",
         "the date strftime_now() gives (default: today)"},
    };
    const rb_cmd cmd = {PROG " chat-render",
                        "FILE < messages.json",
                        "The prompt a conversation makes with the model's chat template.",
                        opts,
                        RB_ARRAY_LEN(opts),
                        NULL,
                        0};
    int shown = 0;

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, &path, 1, &npos, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (shown)
        return 0;
    if (!path)
        return bad("chat-render", "needs a model: chat-render FILE [--template T.jinja] "
                                  "[--today YYYY-MM-DD] < messages.json");
    if (eng_gguf_open(path, &g, err, sizeof err)) {
        fprintf(stderr, "%s chat-render: cannot open model '%s': %s\n", PROG, path, err);
        goto out;
    }
    if (eng_tokenizer_load(g, &tok, err, sizeof err)) {
        fprintf(stderr, "%s chat-render: cannot load the tokenizer of '%s': %s\n", PROG, path, err);
        goto out;
    }
    const char *src = NULL;
    if (tmpl_path) {
        if (rb_read_file(tmpl_path, (size_t)16 << 20, &file_src, &len)) {
            fprintf(stderr, "%s chat-render: cannot read template '%s'\n", PROG, tmpl_path);
            goto out;
        }
        if (memchr(file_src, '\0', len)) {
            fprintf(stderr, "%s chat-render: template '%s' contains a NUL byte\n", PROG, tmpl_path);
            goto out;
        }
        src = file_src;
    } else {
        int64_t k = eng_gguf_find_key(g, "tokenizer.chat_template");
        eng_gguf_str s;
        if (k >= 0 && eng_gguf_get_str(g, k, &s) == RB_OK) {
            if (!(model_src = malloc(s.len + 1))) {
                fprintf(stderr, "%s chat-render: out of memory\n", PROG);
                goto out;
            }
            memcpy(model_src, s.p, s.len);
            model_src[s.len] = '\0';
            if (strlen(model_src) != s.len) {
                fprintf(stderr, "%s chat-render: the chat template of '%s' contains a NUL byte\n",
                        PROG, path);
                goto out;
            }
            src = model_src;
        } /* no template: chat_apply renders ChatML */
    }
    json_error_t je;
    messages = json_loadf(stdin, 0, &je);
    if (!messages) {
        fprintf(stderr, "%s chat-render: messages on standard input are not JSON: line %d: %s\n",
                PROG, je.line, je.text);
        goto out;
    }
    if (!json_is_array(messages)) {
        fprintf(stderr, "%s chat-render: messages on standard input must be a JSON array\n", PROG);
        goto out;
    }
    chat_render_opts o = chat_render_opts_default();
    o.bos_token = special_text(tok, eng_tokenizer_bos(tok));
    o.eos_token = special_text(tok, eng_tokenizer_eos(tok));
    o.today = today;
    rb_err rc = chat_apply(src, messages, &o, &prompt, err, sizeof err);
    if (rc) {
        fprintf(stderr, "%s chat-render: %s%s%s: %s\n", PROG,
                rc == RB_EFORMAT ? "template '" : "cannot render",
                rc == RB_EFORMAT ? (tmpl_path ? tmpl_path : "tokenizer.chat_template") : "",
                rc == RB_EFORMAT ? "'" : "", err);
        goto out;
    }
    ret =
        fwrite(prompt, 1, strlen(prompt), stdout) == strlen(prompt) && fflush(stdout) == 0 ? 0 : 1;
out:
    free(prompt);
    json_decref(messages);
    free(file_src);
    free(model_src);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
    return ret;
}
