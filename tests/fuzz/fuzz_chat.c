/*
 * fuzz_chat - libFuzzer target: the chat-template parser and renderer on arbitrary template
 * source (a model's tokenizer.chat_template is untrusted input), rendered over a fixed
 * conversation through both chat_template_render and chat_apply. A result must be a
 * NUL-terminated string with an empty error, an error must come with a message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

static json_t *conversation(void)
{
    static json_t *m;
    json_error_t je;
    if (!m)
        m = json_loads("[{\"role\":\"system\",\"content\":\"S\"},"
                       "{\"role\":\"user\",\"content\":\"Hi \\u00e9 {{ x }}\"},"
                       "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
                       "\"call12345\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                       "\"arguments\":{\"a\":[1,2.5,true,null]}}}]},"
                       "{\"role\":\"tool\",\"content\":\"r\",\"tool_call_id\":\"call12345\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"p\"}]}]",
                       0, &je);
    return m;
}

static void check(rb_err rc, char *out, const char *err)
{
    if (rc == RB_OK && (!out || err[0]))
        __builtin_trap();
    if (rc != RB_OK && (out || !err[0]))
        __builtin_trap();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    chat_template *t = NULL;
    char err[512] = "", *out = NULL, *src;
    chat_render_opts o = chat_render_opts_default();

    o.bos_token = "<s>";
    o.eos_token = "</s>";
    o.today = "2026-12-01";
    if (chat_template_parse((const char *)data, size, &t, err, sizeof err) == RB_OK) {
        err[0] = '\0';
        check(chat_template_render(t, conversation(), &o, &out, err, sizeof err), out, err);
        chat_template_free(t);
    } else if (t || !err[0]) {
        __builtin_trap();
    }
    if (!(src = malloc(size + 1)))
        return 0;
    memcpy(src, data, size);
    src[size] = '\0';
    err[0] = '\0';
    out = NULL;
    if (!memchr(data, '\0', size))
        check(chat_apply(src, conversation(), &o, &out, err, sizeof err), out, err);
    free(src);
    return 0;
}
