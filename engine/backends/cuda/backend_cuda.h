// The CUDA backend: the engine's backend interface on a GPU (or on the CPU through the emulation).
#ifndef REPRISE_BACKEND_CUDA_H
#define REPRISE_BACKEND_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include "engine/backend.h"

// NULL with an error naming the problem when there is no usable CUDA device.
backend *backend_cuda_create(const model_config *cfg, int n_threads, rp_err *err);   // n_threads: unused

// Decode steps replayed from a captured CUDA graph so far (set REPRISE_CUDA_GRAPHS=0 to run every step eagerly),
// graphs captured so far, and graphs held now (at most REPRISE_CUDA_GRAPH_CACHE, default 64).
long backend_cuda_graph_replays(const backend *b);
// Sampled rows whose device candidates could not decide the draw, drawn on the host from their logits instead.
long backend_cuda_host_sampled_rows(const backend *b);
long backend_cuda_graph_captures(const backend *b);
// Device allocations and frees since the first step (the backend's allocations_after_start).
long backend_cuda_allocations_after_start(const backend *b);
long backend_cuda_graphs_cached(const backend *b);
// KV pages free in the arena (rank 0's; every rank has the same), and bytes of KV kv_copy has queued so far.
long backend_cuda_kv_pages_free(const backend *b);
long backend_cuda_kv_bytes_copied(const backend *b);

// The device's memory bandwidth as a device-to-device copy of `bytes` moves it (bytes read plus bytes written per
// second, the median of 9 timed copies after a warm-up); 0 with an error when the copy cannot run.
double backend_cuda_copy_bandwidth(size_t bytes, rp_err *err);

// Seconds one launch of the projections' GEMM takes, out (R, N) = X (R, K) . W^T (the median of 9, after a
// warm-up), by GEMM variant `variant` (-1: the backend's; names from backend_cuda_gemm_variant); 0 with an error.
double backend_cuda_time_gemm(int R, int N, int K, int variant, rp_err *err);
// The name of GEMM variant v, or NULL past the last.
const char *backend_cuda_gemm_variant(int v);
// What the forward's GEMM runs at prefill rows on the current GPU, in words (wgmma, or mma.sync and why); NULL with an
// error where the GPU failed.
const char *backend_cuda_gemm_prefill(rp_err *err);
// One launch of GEMM variant `variant` at that shape, waited for (the emulation's counters see it); 0, or -1 with
// an error.
int backend_cuda_run_gemm(int R, int N, int K, int variant, rp_err *err);
// The weight bytes GEMM variant v reads at (N, K): BF16's 2 a weight; FP8's codes (rows padded to 16) and a float
// scale a row, or a row and 128 inputs.
double backend_cuda_gemm_variant_weight_bytes(int v, int N, int K);

// Seconds one all-reduce of `count` floats among the backend's tensor-parallel ranks takes, as a decode step runs
// it: 20 in a CUDA graph replayed (NCCL), or eagerly (ranks sharing a GPU); rank 0's median of 9, after a warm-up.
// 0 with an error when tp is 1 or count exceeds a step's rows.
double backend_cuda_time_all_reduce(backend *b, size_t count, rp_err *err);

// Starts (on != 0) or stops the profiler's collection (cudaProfilerStart/Stop): a profiler run with
// --profile-from-start off then sees only the region between.
void backend_cuda_profile(int on);

// The name of CUDA device 0 (as cudaGetDeviceProperties gives it), or "" when there is none.
const char *backend_cuda_device_name(void);

#ifdef __cplusplus
}
#endif

#endif
