/*
 * rb_utf8.h - UTF-8 decoding for the JSON writer, the tokenizers and the detokenizer.
 *
 *     int s = rb_utf8_step(p, n);
 *     // s > 0: p starts with a valid character of s bytes
 *     // s == 0: p[0..n) is the valid start of a character that more bytes may complete
 *     // s < 0: the first -s bytes are an invalid sequence (its maximal subpart, as Unicode's
 *     //        "U+FFFD substitution of maximal subparts" counts them)
 *
 * Valid means well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF.
 */
#ifndef RB_UTF8_H
#define RB_UTF8_H

#include <stddef.h>

int rb_utf8_step(const unsigned char *p, size_t n);

/* The length a lead byte announces: 1 for ASCII and for bytes that cannot start a sequence,
 * else 2, 3 or 4. For splitting text already known to be UTF-8 into characters. */
int rb_utf8_lead_len(unsigned char c);

/* Writes code point cp (at most U+10FFFF) as UTF-8 into out; returns the bytes written (1-4). */
size_t rb_utf8_encode(unsigned long cp, char out[4]);

/* The code point at s[*i] (s holds n bytes) and *i moved past it. Lenient, for text already
 * checked or produced as UTF-8: a byte that starts no complete sequence is returned as itself
 * and *i moves by one. */
unsigned long rb_utf8_decode(const char *s, size_t n, size_t *i);

#endif
