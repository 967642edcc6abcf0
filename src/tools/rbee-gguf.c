/*
 * rbee-gguf.c - the model tool: looks inside GGUF files and runs their tokenizer.
 *
 *     rbee-gguf info FILE                         version, metadata, tensor table, totals
 *     rbee-gguf tokenize FILE [--bos] [--special] < text
 *     rbee-gguf generate | quantize | random | chat-render ...  (gguf_cmds.c)
 *
 * Subcommands live in one table (name, summary) and a row of handlers; each parses with
 * rb_cmd_parse, so its --help lists its options. Exit codes: 0 success, 1 the work failed (bad
 * model, I/O), 2 usage errors.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng_gguf.h"
#include "eng_tok.h"
#include "gguf_cmds.h"
#include "rb_args.h"
#include "rb_util.h"

#define PROG "rbee-gguf"
#define EXIT_USAGE 2
#define STDIN_MAX ((size_t)1 << 30) /* tokenize refuses more input than this */
#define ARR_SHOWN 3                 /* array elements shown by info */
#define STR_SHOWN 60                /* bytes of a string shown by info */

static int cmd_info(int argc, char **argv);
static int cmd_tokenize(int argc, char **argv);

static const rb_subcmd subcmds[] = {
    {"info", "metadata and tensors of a model"},
    {"tokenize", "the token ids of standard input, on one line"},
    {"generate", "continue a prompt, streamed to stdout"},
    {"quantize", "write a model in another tensor type"},
    {"random", "a model of random weights in a real model's shape (for benchmarks)"},
    {"chat-render", "the prompt a conversation (JSON on standard input) makes"},
};

/* argv[0] is the subcommand name; one per row of subcmds */
static int (*const runs[])(int argc, char **argv) = {
    cmd_info,          cmd_tokenize,    gguf_cmd_generate,
    gguf_cmd_quantize, gguf_cmd_random, gguf_cmd_chat_render,
};

static int open_model(const char *path, eng_gguf **g)
{
    char err[512];

    if (eng_gguf_open(path, g, err, sizeof err)) {
        fprintf(stderr, "%s: cannot open model '%s': %s\n", PROG, path, err);
        return 1;
    }
    return 0;
}

/* Prints s with control bytes and quotes escaped, at most max bytes. */
static void print_escaped(const char *s, uint64_t len, uint64_t max)
{
    for (uint64_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    if (len > max)
        fputs("...", stdout);
}

static void print_number(eng_gguf_vtype t, const unsigned char *p)
{
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        uint64_t u64;
        int64_t i64;
        double f64;
    } v;

    memcpy(&v, p, eng_gguf_vtype_size(t));
    switch (t) {
    case ENG_GGUF_U8:
        printf("%u", v.u8);
        break;
    case ENG_GGUF_I8:
        printf("%d", v.i8);
        break;
    case ENG_GGUF_U16:
        printf("%u", v.u16);
        break;
    case ENG_GGUF_I16:
        printf("%d", v.i16);
        break;
    case ENG_GGUF_U32:
        printf("%" PRIu32, v.u32);
        break;
    case ENG_GGUF_I32:
        printf("%" PRId32, v.i32);
        break;
    case ENG_GGUF_F32:
        printf("%g", v.f32);
        break;
    case ENG_GGUF_BOOL:
        fputs(v.u8 ? "true" : "false", stdout);
        break;
    case ENG_GGUF_U64:
        printf("%" PRIu64, v.u64);
        break;
    case ENG_GGUF_I64:
        printf("%" PRId64, v.i64);
        break;
    case ENG_GGUF_F64:
        printf("%g", v.f64);
        break;
    default:
        fputs("?", stdout);
        break;
    }
}

static void print_value(const eng_gguf *g, int64_t i)
{
    eng_gguf_vtype t = eng_gguf_key_type(g, i), et;
    eng_gguf_str s;
    uint64_t n;

    if (t == ENG_GGUF_STRING && !eng_gguf_get_str(g, i, &s)) {
        putchar('"');
        print_escaped(s.p, s.len, STR_SHOWN);
        putchar('"');
    } else if (t == ENG_GGUF_ARRAY && !eng_gguf_get_arr(g, i, &et, &n)) {
        const unsigned char *d = eng_gguf_arr_data(g, i);
        printf("[%s x %" PRIu64 "]", eng_gguf_vtype_name(et), n);
        for (uint64_t j = 0; j < n && j < ARR_SHOWN; j++) {
            fputs(j ? ", " : " ", stdout);
            if (et == ENG_GGUF_STRING && !eng_gguf_arr_str(g, i, j, &s)) {
                putchar('"');
                print_escaped(s.p, s.len, STR_SHOWN);
                putchar('"');
            } else if (d) {
                print_number(et, d + j * eng_gguf_vtype_size(et));
            }
        }
        if (n > ARR_SHOWN && (et == ENG_GGUF_STRING || d))
            fputs(", ...", stdout);
    } else {
        const void *raw;
        uint64_t len;
        if (!eng_gguf_key_raw(g, i, &raw, &len))
            print_number(t, raw);
    }
}

static void print_tensors(const eng_gguf *g)
{
    uint64_t bytes = 0, elems = 0;

    printf("tensors: %" PRId64 "\n", eng_gguf_n_tensors(g));
    printf("  %-40s %-6s %-28s %14s\n", "name", "type", "dims", "bytes");
    for (int64_t i = 0; i < eng_gguf_n_tensors(g); i++) {
        const eng_gguf_tensor *t = eng_gguf_tensor_at(g, i);
        char dims[64];
        int o = 0;
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->ndim; d++) {
            o +=
                snprintf(dims + o, sizeof dims - (size_t)o, "%s%" PRId64, d ? " x " : "", t->ne[d]);
            ne *= (uint64_t)t->ne[d];
        }
        if (t->ndim == 0)
            snprintf(dims, sizeof dims, "scalar");
        printf("  %-40s %-6s %-28s %14" PRIu64 "\n", t->name, eng_type_name(t->type), dims,
               t->size);
        bytes += t->size;
        elems += ne;
    }
    printf("total: %" PRId64 " tensors, %" PRIu64 " elements, %" PRIu64 " bytes (%.1f MiB)\n",
           eng_gguf_n_tensors(g), elems, bytes, (double)bytes / (1024.0 * 1024.0));
}

static int cmd_info(int argc, char **argv)
{
    eng_gguf *g = NULL;
    const char *path = NULL;
    const rb_cmd cmd = {PROG " info", "FILE", subcmds[0].summary, NULL, 0, NULL, 0};
    size_t npos = 0;
    int shown = 0;
    char err[256];

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, &path, 1, &npos, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return EXIT_USAGE;
    }
    if (!shown && npos != 1) {
        fprintf(stderr, "%s info: name the model (FILE)\n", PROG);
        return EXIT_USAGE;
    }
    if (shown)
        return 0;
    if (open_model(path, &g))
        return 1;
    printf("file: %s\nversion: %u\nsize: %" PRIu64 " bytes\nalignment: %u\n", path,
           eng_gguf_version(g), eng_gguf_file_size(g), eng_gguf_alignment(g));
    printf("metadata: %" PRId64 " keys\n", eng_gguf_n_keys(g));
    for (int64_t i = 0; i < eng_gguf_n_keys(g); i++) {
        eng_gguf_str k = eng_gguf_key_name(g, i);
        fputs("  ", stdout);
        print_escaped(k.p, k.len, 200);
        printf(" (%s) = ", eng_gguf_vtype_name(eng_gguf_key_type(g, i)));
        print_value(g, i);
        putchar('\n');
    }
    print_tensors(g);
    eng_gguf_close(g);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Reads all of standard input; NULL on error or past STDIN_MAX. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);

    while (buf) {
        ssize_t got;
        if (n == cap) {
            char *p = cap < STDIN_MAX ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        got = read(STDIN_FILENO, buf + n, cap - n);
        if (got == 0)
            break;
        if (got < 0) {
            free(buf);
            return NULL;
        }
        n += (size_t)got;
    }
    *len = n;
    return buf;
}

static int cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL;
    unsigned flags = 0;
    eng_gguf *g = NULL;
    eng_tokenizer *tok = NULL;
    eng_token *ids = NULL;
    char *text = NULL, err[512];
    size_t len = 0, n = 0;
    int ret = 1;

    int bos = 0, special = 0;
    size_t npos = 0;
    int shown = 0;
    const rb_opt opts[] = {
        {"--bos", RB_OPT_FLAG, &bos, .help = "add the BOS token first"},
        {"--special", RB_OPT_FLAG, &special, .help = "read special tokens (<s>, ...) as such"},
    };
    const rb_cmd cmd = {
        PROG " tokenize", "FILE < TEXT", subcmds[1].summary, opts, RB_ARRAY_LEN(opts), NULL, 0};

    if (rb_cmd_parse(&cmd, argc - 1, argv + 1, &path, 1, &npos, &shown, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return EXIT_USAGE;
    }
    if (shown)
        return 0;
    flags = (bos ? ENG_TOK_ADD_BOS : 0) | (special ? ENG_TOK_PARSE_SPECIAL : 0);
    if (!path) {
        fprintf(stderr, "%s tokenize: name the model (FILE)\n", PROG);
        return EXIT_USAGE;
    }
    if (open_model(path, &g))
        goto out;
    if (eng_tokenizer_load(g, &tok, err, sizeof err)) {
        fprintf(stderr, "%s: cannot load tokenizer of '%s': %s\n", PROG, path, err);
        goto out;
    }
    text = read_stdin(&len);
    if (!text) {
        fprintf(stderr, "%s: cannot read standard input\n", PROG);
        goto out;
    }
    /* A first guess (ids rarely outnumber bytes), then exactly what the tokenizer asks. */
    for (size_t cap = len + 16;; cap = n) {
        rb_err rc;
        free(ids);
        ids = malloc(cap * sizeof(*ids));
        rc = ids ? eng_tokenize(tok, text, len, flags, ids, cap, &n) : RB_ENOMEM;
        if (rc == RB_OK)
            break;
        if (rc != RB_ETOOBIG) {
            fprintf(stderr, "%s: cannot tokenize: %s\n", PROG, rb_strerror(rc));
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    ret = fflush(stdout) == 0 ? 0 : 1;
out:
    free(ids);
    free(text);
    eng_tokenizer_free(tok);
    eng_gguf_close(g);
    return ret;
}

int main(int argc, char **argv)
{
    static const rb_group group = {PROG, subcmds, RB_ARRAY_LEN(subcmds),
                                   "exit status: 0, 1 when the work failed, 2 for a usage error.\n",
                                   1};
    int status = 0;
    int k = rb_group_pick(&group, argc - 1, argv + 1, &status);

    _Static_assert(RB_ARRAY_LEN(runs) == RB_ARRAY_LEN(subcmds), "one handler per command");
    if (k < 0)
        return status ? EXIT_USAGE : 0;
    return runs[k](argc - 1, argv + 1);
}
