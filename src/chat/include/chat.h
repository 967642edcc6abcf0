/*
 * chat.h - chat templates: the Jinja subset that models' `tokenizer.chat_template` use,
 * rendered as Hugging Face's apply_chat_template does (jinja2 with trim_blocks and
 * lstrip_blocks), and the prompt pipeline a server needs on top of it.
 *
 *     char *prompt = NULL, err[256];
 *     chat_render_opts o = chat_render_opts_default();
 *     o.bos_token = "<s>";
 *     if (chat_apply(src, messages, &o, &prompt, err, sizeof err)) fail(err);
 *     ... tokenize prompt (the tokenizer adds BOS) ...
 *     free(prompt);
 *
 * rb_chat links rb_base and jansson only: no engine, no HTTP (ci/check-layers).
 * A construct this renderer does not know fails by name ("filter 'x' is not supported"),
 * never renders different text.
 */
#ifndef CHAT_H
#define CHAT_H

#include <jansson.h>
#include <stddef.h>

#include "rb_err.h"

/* A parsed Jinja template, immutable, thread-safe to render. */
typedef struct chat_template chat_template;

/* Parses Jinja source (len bytes, need not be NUL-terminated). RB_EFORMAT with
 * "line L, column C: <what>" in err on a syntax error or on a construct this renderer does
 * not support (named). *out: caller frees with chat_template_free(). */
rb_err chat_template_parse(const char *src, size_t len, chat_template **out, char *err,
                           size_t errlen);
void chat_template_free(chat_template *t); /* NULL-safe */

typedef struct chat_render_opts {
    const char *bos_token;     /* text of the vocabulary's BOS ("" when none) */
    const char *eos_token;     /* text of the vocabulary's EOS ("" when none) */
    int add_generation_prompt; /* 1: end with the assistant's header */
    const char *today;         /* "YYYY-MM-DD" for strftime_now; NULL: the real date */
} chat_render_opts;
chat_render_opts chat_render_opts_default(void); /* "", "", 1, NULL */

/* Renders t with messages (a JSON array of {"role","content"} objects; content a string or
 * an array of {"type":"text","text":...} parts; borrowed) and tools = none. *out: malloc'd
 * text, caller frees. RB_EINVAL with a message for raise_exception() (the template's own
 * message) or a runtime error with line and column. */
rb_err chat_template_render(const chat_template *t, const json_t *messages,
                            const chat_render_opts *o, char **out, char *err, size_t errlen);

/* The whole pipeline a server needs, as llama.cpp's server does it:
 *  - template_src NULL or empty: ChatML (<|im_start|>role\ncontent<|im_end|>\n ... and
 *    "<|im_start|>assistant\n" when add_generation_prompt);
 *  - content given as an array of text parts is joined into one string first;
 *  - a template that raises on the system role: render again with the system text folded
 *    into the first user message ("<system>\n<user>", as the goldens hold);
 *  - a rendered prompt that starts with bos_token (non-empty) has it removed, because the
 *    tokenizer adds BOS (so it is never doubled).
 * The result is exactly the prompt the goldens in ../shared/data/chat-templates hold.
 * *prompt: malloc'd, caller frees. */
rb_err chat_apply(const char *template_src, const json_t *messages, const chat_render_opts *o,
                  char **prompt, char *err, size_t errlen);

#endif
