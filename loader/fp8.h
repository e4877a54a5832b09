// FP8 E4M3 weights (the OCP 8-bit floating point format, as safetensors' F8_E4M3 stores it): decoding, rounding a
// float to the nearest code, and a weight row's quantization with its own scale.
#ifndef REPRISE_FP8_H
#define REPRISE_FP8_H

#include <stdint.h>

#include "loader/error.h"

// E4M3: a sign, 4 exponent bits (bias 7) and 3 mantissa bits; no infinities; S.1111.111 is NaN, so the largest
// finite magnitude is 1.75 x 2^8 = 448 (S.1111.110); exponent 0 holds the subnormals m x 2^-9.
#define FP8_E4M3_MAX 448.0f

// The value of a code: exact in float (NaN for S.1111.111).
float fp8_e4m3_value(uint8_t code);

// The code nearest to x, ties to the even code (the one whose mantissa's last bit is 0), saturating: a finite x or
// an infinity beyond 448 in magnitude gives +-448 (as a cast with satfinite does); NaN gives 0x7f; -0 gives 0x80.
uint8_t fp8_e4m3_from_float(float x);

// A weight row of k floats as codes and one scale: scale = (the row's largest magnitude) / 448, each code the
// nearest to w[i] / scale, so that w[i] ~ value(code[i]) x scale and the largest weight is exactly +-448 x scale.
// A row of zeros has scale 1 (and zero codes). A weight that is not finite is refused, naming its column.
int fp8_quantize_row(const float *w, int k, uint8_t *codes, float *scale, rp_err *err);
// Its two halves, for a row quantized in pieces (a GPU's share of a row split over tensor-parallel ranks): the row's
// scale (its largest magnitude / 448, 1 for zeros; a weight not finite refused, naming its column), and the codes of
// n weights with a given scale.
int fp8_row_scale(const float *w, int k, float *scale, rp_err *err);
void fp8_encode(const float *w, int n, float scale, uint8_t *codes);

#endif
