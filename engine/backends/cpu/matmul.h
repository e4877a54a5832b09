// The CPU backend's matrix multiply: out = x . W^T with W packed once at load into panels of output rows, in the
// dtype it was stored in (F32, BF16 or F16).
#ifndef REPRISE_MATMUL_H
#define REPRISE_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "loader/error.h"
#include "loader/safetensors.h"

#define MATMUL_LANES 16   // output rows per panel: two AVX2 vectors of floats (one AVX-512 vector)

// A weight matrix W (d, k), torch Linear layout, packed for the matmul: panel p holds output rows 16p..16p+15
// interleaved by k, so that the 16 weights of one input column are contiguous (two AVX2 loads).
// Element (j, kk) sits at panels[(j / 16) * k * 16 + kk * 16 + j % 16]; rows past d are zeros.
// The elements keep the checkpoint's dtype: a BF16 model costs its file size in memory, and decode reads half the
// bytes of float32. Every BF16 and F16 value is exactly a float32, so the dtype changes no result. FP8 (E4M3,
// loader/fp8.h) panels hold codes, and each output row its scale: output j is scale[j] x (the chain over the codes'
// values, exact in float32), so the FP8 weight is value(code) x scale - where the GPU applies it too.
// A checkpoint stored in FP8 may scale groups of a row's inputs apart (loader/quantization.h: 128 x 128 blocks):
// then output j is the sum, group by group in order, of scale[j][g] x (the chain over group g's columns), each term
// added with one fused multiply-add; one group (a scale a row) is the case above.
typedef struct {
    void *panels;     // (n_panels, k, 16) elements of dtype
    st_dtype dtype;   // ST_F32, ST_BF16, ST_F16 or ST_F8_E4M3
    float *scales;    // (d, groups) ST_F8_E4M3: each output row's scale for each group of group_k inputs; else NULL
    int group_k;      // the inputs one scale covers (k: one a row)
    int d, k, n_panels;
} packed_matrix;

// Packs row-major w (d, k) of the given dtype (ST_F32, ST_BF16, ST_F16; w need not be aligned, e.g. a tensor in
// the mapped checkpoint). 0, or -1 out of memory.
int matrix_pack(packed_matrix *m, const void *w, st_dtype dtype, int d, int k);
// Packs it as FP8 instead, each row quantized with its own scale (fp8_quantize_row: its largest magnitude / 448, the
// nearest code to each weight / scale). 0, or -1 with an error naming the row (a weight not finite, out of memory).
int matrix_pack_fp8(packed_matrix *m, const void *w, st_dtype dtype, int d, int k, rp_err *err);
// Packs a checkpoint's FP8 codes (d, k) with their scales (d, ceil(k / group_k), copied). -1 with an error naming
// the row and column of a NaN code (S.1111.111: no weight is NaN), or out of memory.
int matrix_pack_fp8_codes(packed_matrix *m, const uint8_t *codes, int d, int k, const float *scales, int group_k, rp_err *err);
// The groups of a row: ceil(k / group_k).
int matrix_groups(const packed_matrix *m);
void matrix_free(packed_matrix *m);
size_t matrix_bytes(const packed_matrix *m);
// The bytes a (d, k) matrix of dtype takes once packed (its rows padded to whole panels).
size_t matrix_packed_bytes(st_dtype dtype, int d, int k);

// Row j of W as float32 (an embedding lookup from a packed table; FP8: value x scale), into out (k).
void matrix_row(const packed_matrix *m, int j, float *out);

// out (n, d) = x (n, k) . W^T. Every output element is one chain of fused multiply-adds over k in order, from 0,
// whatever n is, whichever rows share the call and whichever code path (AVX2, portable) computes it: a
// sequence's logits do not depend on what it is batched with, and duplicated layers give bit-identical results.
void matmul(float *out, const float *x, const packed_matrix *w, int n, int n_threads);

// One of n_parts shares of that product (the panels split evenly), for a parallel region whose threads each take
// theirs: the region's thread t calls it with part t. The bits are matmul's, whatever the split.
void matmul_part(float *out, const float *x, const packed_matrix *w, int n, int part, int n_parts);

// The code paths this CPU can run, best first (avx2, portable): matmul runs the first. For the tests that
// check the paths agree bit for bit, matmul_use_path(i) makes path i the one it runs (not while a matmul runs).
int matmul_path_count(void);
const char *matmul_path_name(int i);
void matmul_use_path(int i);

// The multiply-adds below which a parallel region costs more than it saves (waking the team, the barrier): such
// work runs on the calling thread alone, so a tiny model never wakes, or waits for, a thread.
#define PARALLEL_MIN_WORK 100000

#endif
