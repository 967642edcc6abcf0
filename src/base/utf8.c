/*
 * utf8.c - UTF-8 decoding (see rb_utf8.h).
 */
#include "rb_utf8.h"

int rb_utf8_step(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    int need;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    else
        return -1;
    /* The second byte's range excludes overlong forms (e0, f0), surrogates (ed) and code
     * points above U+10FFFF (f4). */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n)
            return 0;
        if (p[k] < (k == 1 ? lo : 0x80) || p[k] > (k == 1 ? hi : 0xbf))
            return -k;
    }
    return need;
}

int rb_utf8_lead_len(unsigned char c)
{
    if (c < 0xc0)
        return 1;
    if (c < 0xe0)
        return 2;
    if (c < 0xf0)
        return 3;
    return c < 0xf8 ? 4 : 1;
}
