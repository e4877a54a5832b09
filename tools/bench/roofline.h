// The physical limits of a forward step: the bytes a decode step must read and the FLOPs a prompt token costs, for a
// model, a schedule and a backend's storage, and the datasheet peaks of the GPUs reprise is tuned for.
#ifndef REPRISE_ROOFLINE_H
#define REPRISE_ROOFLINE_H

#include "engine/model.h"
#include "engine/schedule.h"
#include "loader/config.h"

typedef struct {
    const char *name;     // h100, h200, a100
    double bandwidth;     // bytes/s (HBM, datasheet)
    double bf16_flops;    // dense BF16 tensor-core FLOP/s (datasheet)
} gpu_peaks;

// The datasheet peaks of a GPU by name (h100, h200, a100), or NULL.
const gpu_peaks *roofline_gpu(const char *name);

// Bytes per element as a backend holds them: a layer's weights (FP8's scales included), the embedding and LM head's,
// and the KV cache's.
typedef struct {
    double layer, head, kv;
} roofline_bytes;

// Bytes one decode step of `batch` sequences must read: the weights of every visit (a repeated layer's are read
// again: at real sizes a layer does not stay in cache between its visits), the final norm and LM head, and each
// sequence's keys and values of every visit over ctx positions, at b's bytes per element.
double roofline_decode_bytes(const model_config *c, const schedule *s, int batch, double ctx, roofline_bytes b);

// The CUDA backend's: BF16 throughout ({2, 2, 2}), or with FP8 projections a byte a weight and their scales (the
// memory plan's bytes: tp_rank_weight_bytes_fp8), the head and KV still BF16.
roofline_bytes roofline_gpu_bytes(const model_config *c, int fp8);
// As the loaded model's backend holds them (what it allocated, the head at its tensor's dtype): a BF16 model on the
// CPU backend is {2, 2, 2}, an F32 one {4, 4, 4}, a BF16 one with --weights fp8 about {1, 2, 2}.
roofline_bytes roofline_element_bytes(const model *m);

// FLOPs of one prompt token: 2 x the parameters of every visit and of the LM head, plus attention (QK^T and AV)
// over ctx positions in every visit.
double roofline_prefill_flops(const model_config *c, const schedule *s, double ctx);

// The CPU's limits, measured: bytes/s of a multi-threaded read of 256 MiB (larger than the caches; the best of 5),
// and FLOP/s of the CPU backend's own matmul (the best of 3 runs of each of three shapes: a few rows over a wide
// matrix, a projection's, a large square one, as the kernel's speed varies with the shape). Seconds each.
double roofline_cpu_bandwidth(int threads);
double roofline_cpu_matmul_peak(int threads);

#endif
