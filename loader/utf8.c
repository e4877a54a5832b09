// UTF-8 helpers: validation, decoding, Rust-style lossy repair, and GPT-2's byte <-> character map.
#include "loader/utf8.h"
#include "loader/alloc.h"

#include <stdlib.h>
#include <string.h>

int utf8_seq_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned char lo = 0x80, hi = 0xbf;   // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c == 0xe0) len = 3, lo = 0xa0;
    else if (c >= 0xe1 && c <= 0xec) len = 3;
    else if (c == 0xed) len = 3, hi = 0x9f;   // no surrogates
    else if (c >= 0xee && c <= 0xef) len = 3;
    else if (c == 0xf0) len = 4, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3) len = 4;
    else if (c == 0xf4) len = 4, hi = 0x8f;
    else return 0;
    if (n < (size_t)len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

size_t utf8_valid_prefix(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int l = utf8_seq_len(p + i, n - i);
        if (!l) return i;
        i += (size_t)l;
    }
    return n;
}

uint32_t utf8_decode(const unsigned char *s, int len) {
    switch (len) {
    case 1: return s[0];
    case 2: return ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
    case 3: return ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
    default: return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) | ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
    }
}

int utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xc0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

// Length of the maximal prefix of s that could begin a valid sequence (at least 1): the unit one U+FFFD replaces.
static size_t invalid_span(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    int len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c == 0xe0) len = 3, lo = 0xa0;
    else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) len = 3;
    else if (c == 0xed) len = 3, hi = 0x9f;
    else if (c == 0xf0) len = 4, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3) len = 4;
    else if (c == 0xf4) len = 4, hi = 0x8f;
    else return 1;
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < (size_t)len && i < n && (s[i] & 0xc0) == 0x80) i++;
    }
    return i;
}

size_t utf8_lossy(const char *s, size_t n, char **out) {
    const unsigned char *p = (const unsigned char *)s;
    char *o = rp_malloc(n * 3 + 1);
    size_t k = 0, i = 0;
    while (i < n) {
        int l = utf8_seq_len(p + i, n - i);
        if (l) {
            memcpy(o + k, p + i, (size_t)l);
            k += (size_t)l;
            i += (size_t)l;
        } else {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
            i += invalid_span(p + i, n - i);
        }
    }
    o[k] = 0;
    *out = o;
    return k;
}

// Bytes that are printable Latin-1 stand for themselves; the other 68 map to U+0100.. in byte order.
static uint32_t to_unicode[256];
static int to_byte[324];

static void init_tables(void) {
    static int ready;   // written once with the same values by any thread that gets here first
    if (ready) return;
    int n = 0;
    for (int i = 0; i < 324; i++) to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        to_unicode[b] = printable ? (uint32_t)b : 256u + (uint32_t)n++;
        to_byte[to_unicode[b]] = b;
    }
    ready = 1;
}

uint32_t byte_to_unicode(unsigned char b) {
    init_tables();
    return to_unicode[b];
}

int unicode_to_byte(uint32_t cp) {
    init_tables();
    return cp < 324 ? to_byte[cp] : -1;
}
