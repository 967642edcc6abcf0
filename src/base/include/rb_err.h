/*
 * rb_err.h - the one error type of the project.
 *
 *     rb_err rc = some_call(...);
 *     if (rc) { rb_log(RB_LOG_ERROR, "x", "cannot y: %s", rb_strerror(rc)); goto out; }
 *
 * Values are appended, never renumbered. User-facing detail travels in an optional
 * caller-supplied buffer (char *err, size_t errlen) next to the code.
 */
#ifndef RB_ERR_H
#define RB_ERR_H

#include <stddef.h>

typedef enum rb_err {
    RB_OK = 0,
    RB_ENOMEM,       /* allocation failed */
    RB_EINVAL,       /* bad argument or input */
    RB_EIO,          /* read/write/socket failure */
    RB_EFORMAT,      /* malformed file or message */
    RB_ETOOBIG,      /* over a configured limit */
    RB_EBUSY,        /* queue full, slots busy */
    RB_ECANCELED,    /* caller or peer cancelled */
    RB_EPROTO,       /* peer broke the protocol (e.g. stream closed without [DONE]) */
    RB_ENOTFOUND,    /* no such thing */
    RB_ETIMEDOUT,    /* deadline or idle timeout passed */
    RB_ECONNECT,     /* could not connect */
    RB_EAUTH,        /* missing or wrong credentials */
    RB_EHTTP,        /* peer answered with an HTTP error status */
    RB_ECLOSED,      /* channel or stream closed */
    RB_EUNSUPPORTED, /* valid but not supported here */
    RB_EEXIST,       /* already exists */
    RB_ERR__COUNT
} rb_err;

/* Short lower-case description; never NULL. */
const char *rb_strerror(rb_err e);

/* HTTP status that best represents e (RB_OK -> 200). */
int rb_err_http_status(rb_err e);

/* Formats into err (if non-NULL, errlen > 0) and returns rc; for one-line error returns. */
rb_err rb_errf(char *err, size_t errlen, rb_err rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
