/*
 * chat_apply.c - the prompt pipeline of chat.h: ChatML when a model has no template,
 * content parts joined, the system message folded into the first user message for
 * templates that refuse the system role, and a leading BOS removed.
 *
 * DESIGN: the fold is a retry, not a guess: the template is rendered as given first, and
 * only a template that raised (raise_exception) on a conversation that starts with a system
 * message is rendered again with that message folded in. That matches what llama.cpp's
 * server renders for such templates (Gemma's "System role not supported"), which is what
 * the goldens in ../shared/data/chat-templates hold.
 */
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

chat_render_opts chat_render_opts_default(void)
{
    chat_render_opts o = {"", "", 1, NULL};
    return o;
}

/* A copy of messages with each array-of-parts content joined into one string (text parts,
 * "\n" between them). */
static rb_err normalise(const json_t *messages, json_t **out, char *err, size_t errlen)
{
    size_t i, k;
    json_t *m, *part;
    json_t *copy = json_deep_copy(messages);

    if (!copy)
        return rb_errf(err, errlen, RB_ENOMEM, "out of memory");
    json_array_foreach(copy, i, m)
    {
        if (!json_is_object(m)) {
            json_decref(copy);
            return rb_errf(err, errlen, RB_EINVAL, "message %zu is not an object", i);
        }
        json_t *content = json_object_get(m, "content");
        if (!json_is_array(content))
            continue;
        rb_buf b;
        rb_buf_init(&b, (size_t)1 << 26);
        int first = 1;
        rb_err rc = RB_OK;
        json_array_foreach(content, k, part)
        {
            const char *type = json_string_value(json_object_get(part, "type"));
            json_t *text = json_object_get(part, "text");
            if (!type || strcmp(type, "text") || !json_is_string(text)) {
                rc = rb_errf(err, errlen, RB_EUNSUPPORTED,
                             "message %zu: only text content parts are supported", i);
                break;
            }
            if ((!first && rb_buf_append(&b, "\n", 1)) ||
                rb_buf_append(&b, json_string_value(text), json_string_length(text))) {
                rc = rb_errf(err, errlen, RB_ETOOBIG, "message %zu: content too long", i);
                break;
            }
            first = 0;
        }
        if (!rc && json_object_set_new(m, "content", json_stringn(b.data ? b.data : "", b.len)))
            rc = rb_errf(err, errlen, RB_EINVAL, "message %zu: content is not UTF-8", i);
        rb_buf_release(&b);
        if (rc) {
            json_decref(copy);
            return rc;
        }
    }
    *out = copy;
    return RB_OK;
}

static const char *role_of(const json_t *m)
{
    const char *r = json_string_value(json_object_get(m, "role"));
    return r ? r : "";
}

static rb_err chatml(const json_t *messages, const chat_render_opts *o, char **out, char *err,
                     size_t errlen)
{
    rb_buf b;
    size_t i, n;
    json_t *m;
    int bad = 0;

    rb_buf_init(&b, (size_t)1 << 26);
    json_array_foreach(messages, i, m)
    {
        const char *content = json_string_value(json_object_get(m, "content"));
        bad |= rb_buf_appendf(&b, "<|im_start|>%s\n", role_of(m)) != RB_OK;
        bad |= rb_buf_appends(&b, content ? content : "") != RB_OK;
        bad |= rb_buf_appends(&b, "<|im_end|>\n") != RB_OK;
    }
    if (o->add_generation_prompt)
        bad |= rb_buf_appends(&b, "<|im_start|>assistant\n") != RB_OK;
    if (bad) {
        rb_buf_release(&b);
        return rb_errf(err, errlen, RB_ETOOBIG, "the prompt is too long");
    }
    *out = b.data ? rb_buf_detach(&b, &n) : strdup("");
    return *out ? RB_OK : rb_errf(err, errlen, RB_ENOMEM, "out of memory");
}

/* messages with messages[0] (system) folded into the first user message. */
static json_t *fold_system(const json_t *messages)
{
    json_t *sys = json_array_get(messages, 0);
    const char *stext = json_string_value(json_object_get(sys, "content"));
    json_t *out = json_array();
    int folded = 0;

    if (!out)
        return NULL;
    for (size_t i = 1; i < json_array_size(messages); i++) {
        json_t *m = json_deep_copy(json_array_get(messages, i));
        if (!m) {
            json_decref(out);
            return NULL;
        }
        if (!folded && !strcmp(role_of(m), "user")) {
            const char *u = json_string_value(json_object_get(m, "content"));
            size_t ls = stext ? strlen(stext) : 0, lu = u ? strlen(u) : 0;
            char *t = malloc(ls + lu + 2);
            if (!t) {
                json_decref(m);
                json_decref(out);
                return NULL;
            }
            memcpy(t, stext ? stext : "", ls);
            t[ls] = '\n';
            memcpy(t + ls + 1, u ? u : "", lu);
            t[ls + 1 + lu] = '\0';
            json_object_set_new(m, "content", json_stringn(t, ls + 1 + lu));
            free(t);
            folded = 1;
        }
        json_array_append_new(out, m);
    }
    if (!folded) /* no user message: the system text becomes one */
        json_array_insert_new(
            out, 0, json_pack("{s:s, s:s}", "role", "user", "content", stext ? stext : ""));
    return out;
}

rb_err chat_apply(const char *template_src, const json_t *messages, const chat_render_opts *o,
                  char **prompt, char *err, size_t errlen)
{
    chat_render_opts def = chat_render_opts_default();
    chat_template *t = NULL;
    json_t *msgs = NULL, *folded = NULL, *extra = NULL;
    char *text = NULL;
    int raised = 0;
    rb_err rc;

    *prompt = NULL;
    if (!o)
        o = &def;
    if (!json_is_array(messages))
        return rb_errf(err, errlen, RB_EINVAL, "messages must be a JSON array");
    if ((rc = normalise(messages, &msgs, err, errlen)))
        return rc;
    if (!template_src || !template_src[0]) {
        rc = chatml(msgs, o, &text, err, errlen);
        goto out;
    }
    if ((rc = chat_template_parse(template_src, strlen(template_src), &t, err, errlen)))
        goto out;
    /* What llama.cpp's server adds to every rendering: enable_thinking (true by default),
     * and for Llama 3.x templates (they name the ipython header) today's date_string. */
    char date[64];
    if (!(extra = json_pack("{s:b}", "enable_thinking", 1))) {
        rc = rb_errf(err, errlen, RB_ENOMEM, "out of memory");
        goto out;
    }
    if (strstr(template_src, "<|start_header_id|>ipython<|end_header_id|>") &&
        ch_strftime(o, "%d %b %Y", date, sizeof date))
        json_object_set_new(extra, "date_string", json_string(date));
    rc = ch_render(t, msgs, o, extra, &text, err, errlen, &raised);
    if (rc && raised && json_array_size(msgs) > 0 &&
        !strcmp(role_of(json_array_get(msgs, 0)), "system")) {
        if (!(folded = fold_system(msgs))) {
            rc = rb_errf(err, errlen, RB_ENOMEM, "out of memory");
            goto out;
        }
        rc = ch_render(t, folded, o, extra, &text, err, errlen, NULL);
    }
    if (rc)
        goto out;
    const char *bos = o->bos_token;
    size_t bl = bos ? strlen(bos) : 0;
    if (bl && !strncmp(text, bos, bl))
        memmove(text, text + bl, strlen(text + bl) + 1);
out:
    chat_template_free(t);
    json_decref(msgs);
    json_decref(folded);
    json_decref(extra);
    if (rc) {
        free(text);
        return rc;
    }
    *prompt = text;
    return RB_OK;
}
