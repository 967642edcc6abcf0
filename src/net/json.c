/*
 * json.c - typed field extraction collecting all field errors, and the error envelope.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_json.h"
#include "rb_utf8.h"
#include "rb_util.h"

void rb_jcheck_init(rb_jcheck *c)
{
    c->fields = json_array();
}

void rb_jcheck_release(rb_jcheck *c)
{
    json_decref(c->fields);
    c->fields = NULL;
}

int rb_jcheck_ok(const rb_jcheck *c)
{
    return json_array_size(c->fields) == 0;
}

void rb_jcheck_add(rb_jcheck *c, const char *field, const char *constraint, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(c->fields, json_pack("{s:s, s:s, s:s}", "field", field, "constraint",
                                               constraint, "message", msg));
}

json_t *rb_jcheck_envelope(const rb_jcheck *c)
{
    char msg[320];
    size_t n = json_array_size(c->fields);
    json_t *first = json_array_get(c->fields, 0);

    if (n == 1)
        snprintf(msg, sizeof msg, "invalid request: %s",
                 json_string_value(json_object_get(first, "message")));
    else
        snprintf(msg, sizeof msg, "invalid request: %zu fields are invalid", n);
    return rb_error_envelope("INVALID_REQUEST", msg, json_pack("{s:O}", "fields", c->fields));
}

/* Looks the key up; returns NULL when absent or null (and records "required" if needed). */
static json_t *lookup(rb_jcheck *c, const json_t *obj, const char *key, int required)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (v && !json_is_null(v))
        return v;
    if (required)
        rb_jcheck_add(c, key, "required", "'%s' is required", key);
    return NULL;
}

int rb_json_str(rb_jcheck *c, const json_t *obj, const char *key, int required, size_t minlen,
                size_t maxlen, const char **out)
{
    json_t *v = lookup(c, obj, key, required);
    size_t n;

    if (!v)
        return required ? -1 : 0;
    if (!json_is_string(v)) {
        rb_jcheck_add(c, key, "type", "'%s' must be a string", key);
        return -1;
    }
    n = json_string_length(v);
    if (n < minlen || n > maxlen) {
        if (minlen == 1 && n == 0)
            rb_jcheck_add(c, key, "length", "'%s' must not be empty", key);
        else
            rb_jcheck_add(c, key, "length", "'%s' must be %zu to %zu bytes long (got %zu)", key,
                          minlen, maxlen, n);
        return -1;
    }
    if (strlen(json_string_value(v)) != n) {
        rb_jcheck_add(c, key, "type", "'%s' must not contain NUL characters", key);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

int rb_json_int(rb_jcheck *c, const json_t *obj, const char *key, int required, long long min,
                long long max, long long *out)
{
    json_t *v = lookup(c, obj, key, required);
    long long x;

    if (!v)
        return required ? -1 : 0;
    if (!json_is_integer(v)) {
        rb_jcheck_add(c, key, "type", "'%s' must be an integer", key);
        return -1;
    }
    x = json_integer_value(v);
    if (x < min || x > max) {
        rb_jcheck_add(c, key, "range", "'%s' must be between %lld and %lld", key, min, max);
        return -1;
    }
    *out = x;
    return 1;
}

int rb_json_u64(rb_jcheck *c, const json_t *obj, const char *key, int required, uint64_t *out)
{
    json_t *v = lookup(c, obj, key, required);

    if (!v)
        return required ? -1 : 0;
    if (!json_is_integer(v)) {
        rb_jcheck_add(c, key, "type", "'%s' must be an unsigned integer", key);
        return -1;
    }
    if (json_integer_value(v) < 0) {
        rb_jcheck_add(c, key, "range", "'%s' must not be negative", key);
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

int rb_json_num(rb_jcheck *c, const json_t *obj, const char *key, int required, double min,
                double max, double *out)
{
    json_t *v = lookup(c, obj, key, required);
    double x;

    if (!v)
        return required ? -1 : 0;
    if (!json_is_number(v)) {
        rb_jcheck_add(c, key, "type", "'%s' must be a number", key);
        return -1;
    }
    x = json_number_value(v);
    if (!isfinite(x) || x < min || x > max) {
        rb_jcheck_add(c, key, "range", "'%s' must be between %g and %g", key, min, max);
        return -1;
    }
    if (!rb_fits_float(x)) {
        rb_jcheck_add(c, key, "range", "'%s' is too small for a 32-bit float: use 0 or at least %g",
                      key, (double)FLT_MIN);
        return -1;
    }
    *out = x;
    return 1;
}

int rb_json_bool(rb_jcheck *c, const json_t *obj, const char *key, int required, int *out)
{
    json_t *v = lookup(c, obj, key, required);

    if (!v)
        return required ? -1 : 0;
    if (!json_is_boolean(v)) {
        rb_jcheck_add(c, key, "type", "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

int rb_json_strarr(rb_jcheck *c, const json_t *obj, const char *key, int required, size_t maxitems,
                   size_t minlen, size_t maxlen, const char **out, size_t *n)
{
    json_t *v = lookup(c, obj, key, required);
    size_t i, len;
    json_t *item;

    if (!v)
        return required ? -1 : 0;
    if (json_is_string(v)) {
        /* OpenAI and llama.cpp accept a single stop string as well as a list. */
        len = json_string_length(v);
        if (len < minlen || len > maxlen) {
            rb_jcheck_add(c, key, "length", "'%s' strings must be %zu to %zu bytes long", key,
                          minlen, maxlen);
            return -1;
        }
        out[0] = json_string_value(v);
        *n = 1;
        return 1;
    }
    if (!json_is_array(v)) {
        rb_jcheck_add(c, key, "type", "'%s' must be an array of strings", key);
        return -1;
    }
    if (json_array_size(v) > maxitems) {
        rb_jcheck_add(c, key, "length", "'%s' must have at most %zu items", key, maxitems);
        return -1;
    }
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            rb_jcheck_add(c, key, "type", "'%s' must be an array of strings", key);
            return -1;
        }
        len = json_string_length(item);
        if (len < minlen || len > maxlen) {
            rb_jcheck_add(c, key, "length", "'%s' strings must be %zu to %zu bytes long", key,
                          minlen, maxlen);
            return -1;
        }
        out[i] = json_string_value(item);
    }
    *n = json_array_size(v);
    return 1;
}

json_t *rb_error_envelope(const char *code, const char *message, json_t *details)
{
    /* a message quoting a file or a log may hold invalid UTF-8: repaired, never dropped */
    json_t *e = json_pack("{s:o, s:o}", "code", rb_json_text(code, strlen(code)), "message",
                          rb_json_text(message, strlen(message)));
    if (details)
        json_object_set_new(e, "details", details);
    return json_pack("{s:o}", "error", e);
}

int rb_error_envelope_parse(const char *body, char *code, size_t codelen, char *message,
                            size_t msglen)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *m = json_string_value(json_object_get(e, "message"));

    if (codelen)
        snprintf(code, codelen, "%s", c ? c : "");
    if (msglen)
        snprintf(message, msglen, "%s", m ? m : "");
    json_decref(j);
    return c != NULL;
}

char *rb_json_dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT);
}

rb_err rb_json_quote(rb_buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    rb_err rc = rb_buf_append(out, "\"", 1);
    size_t i = 0;

    while (!rc && i < len) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = rb_buf_append(out, esc, 2);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                rc = rb_buf_append(out, "\\n", 2);
                break;
            case '\r':
                rc = rb_buf_append(out, "\\r", 2);
                break;
            case '\t':
                rc = rb_buf_append(out, "\\t", 2);
                break;
            default:
                rc = rb_buf_appendf(out, "\\u%04x", c);
                break;
            }
            i++;
        } else if (c < 0x80) {
            rc = rb_buf_append(out, s + i, 1);
            i++;
        } else {
            int n = rb_utf8_step(p + i, len - i);
            if (n > 0) {
                rc = rb_buf_append(out, s + i, (size_t)n);
                i += (size_t)n;
            } else {
                rc = rb_buf_append(out, "\xEF\xBF\xBD", 3);
                i++;
            }
        }
    }
    if (!rc)
        rc = rb_buf_append(out, "\"", 1);
    return rc;
}

json_t *rb_json_text(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    rb_buf b;
    json_t *j;
    size_t i = 0;
    int clean = 1;

    for (size_t k = 0; k < len && clean;) {
        int n = rb_utf8_step(p + k, len - k);
        clean = n > 0;
        k += n > 0 ? (size_t)n : 0;
    }
    if (clean)
        return json_stringn(s, len);
    rb_buf_init(&b, len * 3 + 16);
    while (i < len) {
        int n = rb_utf8_step(p + i, len - i);
        if (n > 0) {
            rb_buf_append(&b, s + i, (size_t)n);
            i += (size_t)n;
        } else {
            rb_buf_append(&b, "\xEF\xBF\xBD", 3);
            i += n < 0 ? (size_t)-n : len - i;
        }
    }
    j = b.data || !b.len ? json_stringn(b.data ? b.data : "", b.len) : NULL;
    rb_buf_release(&b);
    return j;
}

rb_err rb_json_push(rb_chan *ch, json_t *e, int timeout_ms)
{
    char *s = e ? json_dumps(e, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    rb_err rc = s ? rb_chan_push(ch, s, (size_t)-1, timeout_ms) : RB_ENOMEM;

    free(s);
    json_decref(e);
    return rc;
}
