// FP8 E4M3 (fp8.h): a code's value by its fields, and rounding by comparing with the two neighbouring codes, so the
// encoder needs no bit tricks to be right on subnormals, ties and saturation.
#include "loader/fp8.h"

#include <math.h>

float fp8_e4m3_value(uint8_t code) {
    int sign = code >> 7, e = (code >> 3) & 15, m = code & 7;
    if (e == 15 && m == 7) return NAN;
    float mag = e == 0 ? ldexpf((float)m, -9) : ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return sign ? -mag : mag;
}

uint8_t fp8_e4m3_from_float(float x) {
    if (isnan(x)) return 0x7f;
    uint8_t sign = signbit(x) ? 0x80 : 0;
    float a = fabsf(x);
    if (a >= FP8_E4M3_MAX) return sign | 0x7e;   // saturate (an infinity too)
    // the magnitude codes 0x00..0x7e increase with their value: find the last one not above a
    int lo = 0, hi = 0x7e;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (fp8_e4m3_value((uint8_t)mid) <= a) lo = mid;
        else hi = mid - 1;
    }
    if (lo == 0x7e) return sign | 0x7e;
    float below = fp8_e4m3_value((uint8_t)lo), above = fp8_e4m3_value((uint8_t)(lo + 1));
    // both differences are exact in float (a and the codes lie within a few binades of each other)
    float d_below = a - below, d_above = above - a;
    int code = d_below < d_above ? lo : d_above < d_below ? lo + 1 : (lo % 2 == 0 ? lo : lo + 1);
    return sign | (uint8_t)code;
}

int fp8_row_scale(const float *w, int k, float *scale, rp_err *err) {
    float amax = 0.0f;
    for (int i = 0; i < k; i++) {
        if (!isfinite(w[i])) return rp_fail(err, "weight %d of the row is %g: FP8 needs finite weights", i, (double)w[i]);
        if (fabsf(w[i]) > amax) amax = fabsf(w[i]);
    }
    *scale = amax > 0.0f ? amax / FP8_E4M3_MAX : 1.0f;
    return 0;
}

void fp8_encode(const float *w, int n, float scale, uint8_t *codes) {
    for (int i = 0; i < n; i++) codes[i] = fp8_e4m3_from_float(w[i] / scale);
}

int fp8_quantize_row(const float *w, int k, uint8_t *codes, float *scale, rp_err *err) {
    if (fp8_row_scale(w, k, scale, err)) return -1;
    fp8_encode(w, k, *scale, codes);
    return 0;
}
