/*
 * err.c - rb_err descriptions and the mapping of errors to HTTP statuses.
 */
#include <stdarg.h>
#include <stdio.h>

#include "rb_err.h"

static const char *const rb_err_text[RB_ERR__COUNT] = {
    [RB_OK] = "success",
    [RB_ENOMEM] = "out of memory",
    [RB_EINVAL] = "invalid argument",
    [RB_EIO] = "input/output error",
    [RB_EFORMAT] = "malformed data",
    [RB_ETOOBIG] = "too large",
    [RB_EBUSY] = "busy",
    [RB_ECANCELED] = "canceled",
    [RB_EPROTO] = "protocol error",
    [RB_ENOTFOUND] = "not found",
    [RB_ETIMEDOUT] = "timed out",
    [RB_ECONNECT] = "cannot connect",
    [RB_EAUTH] = "authentication failed",
    [RB_EHTTP] = "http error status",
    [RB_ECLOSED] = "closed",
    [RB_EUNSUPPORTED] = "not supported",
    [RB_EEXIST] = "already exists",
};

const char *rb_strerror(rb_err e)
{
    if ((int)e < 0 || e >= RB_ERR__COUNT || !rb_err_text[e])
        return "unknown error";
    return rb_err_text[e];
}

int rb_err_http_status(rb_err e)
{
    switch (e) {
    case RB_OK:
        return 200;
    case RB_EINVAL:
    case RB_EFORMAT:
        return 400;
    case RB_EAUTH:
        return 401;
    case RB_ENOTFOUND:
        return 404;
    case RB_EEXIST:
        return 409;
    case RB_ETOOBIG:
        return 413;
    case RB_EBUSY:
        return 503;
    case RB_ETIMEDOUT:
        return 504;
    case RB_ECONNECT:
    case RB_EPROTO:
    case RB_EHTTP:
        return 502;
    case RB_EUNSUPPORTED:
        return 501;
    default:
        return 500;
    }
}

rb_err rb_errf(char *err, size_t errlen, rb_err rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}
