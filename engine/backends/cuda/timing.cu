// The CUDA backend's measurements of its device for bench: copy bandwidth, its GEMM's time, an all-reduce's time.
#include <cuda_profiler_api.h>

#include "engine/backends/cuda/internal.h"

namespace reprise_cuda {

// The median of 9 timings, in seconds, of run() on stream s, after one warm-up; 0 with an error.
template <typename F> double median_seconds(F run, cudaStream_t s, const char *what, rp_err *err) {
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    std::vector<float> ms;
    cudaError_t e = cudaEventCreate(&t0);
    if (e == cudaSuccess) e = cudaEventCreate(&t1);
    for (int i = 0; i < 10 && e == cudaSuccess; i++) {
        float t = 0;
        cudaEventRecord(t0, s);
        e = run();
        cudaEventRecord(t1, s);
        if (e == cudaSuccess) e = cudaEventSynchronize(t1);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&t, t0, t1);
        if (i > 0) ms.push_back(t);
    }
    if (t0) cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    if (e != cudaSuccess || ms.empty()) {
        rp_fail(err, "%s: %s", what, cudaGetErrorString(e));
        cudaGetLastError();
        return 0;
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2] * 1e-3;
}

extern "C" double backend_cuda_copy_bandwidth(size_t bytes, rp_err *err) {
    void *src = nullptr, *dst = nullptr;
    double s = 0;
    if (cudaMalloc(&src, bytes) != cudaSuccess || cudaMalloc(&dst, bytes) != cudaSuccess ||
        cudaMemset(src, 0x5a, bytes) != cudaSuccess)   // not zeros: nothing may shortcut the copy
        rp_fail(err, "copy bandwidth: %s", cudaGetErrorString(cudaGetLastError()));
    else s = median_seconds([&] { return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice); }, 0, "copy bandwidth", err);
    cudaFree(src), cudaFree(dst);
    return s > 0 ? 2.0 * (double)bytes / s : 0;
}

// The GEMM variants bench compares: gemm_bf16.cu's (WMMA, the forward's before issue 29), then the forward's
// (launch_gemm_mma: mma.sync, K segments by shape; wgmma from GEMM_WGMMA_ROWS rows where gemm_wgmma_probe allows),
// then the same with K's segments chosen by the row count (no longer batch-invariant: what invariance costs), then
// mma.sync alone at every row count (wgmma's yardstick).
#define GEMM_MMA_VARIANT GEMM_BF16_VARIANTS
#define GEMM_MMA_BY_ROWS_VARIANT (GEMM_BF16_VARIANTS + 1)
#define GEMM_MMA_ONLY_VARIANT (GEMM_BF16_VARIANTS + 2)
#define GEMM_E4M3_VARIANT (GEMM_BF16_VARIANTS + 3)
#define GEMM_E4M3_GROUPS_VARIANT (GEMM_BF16_VARIANTS + 4)
#define GEMM_E4M3_GROUP_K 128   // the 128x128 blocks DeepSeek-V3 and Qwen3's FP8 checkpoints publish
extern "C" const char *backend_cuda_gemm_variant(int v) {
    if (v == GEMM_MMA_VARIANT)
        return "the forward's: mma.sync with a 4-8-stage cp.async ring (gemm_mma.cu), from 128 rows wgmma + TMA "
               "(gemm_wgmma.cu) where the GPU gives mma.sync's bits; K segments by the weight's shape";
    if (v == GEMM_MMA_BY_ROWS_VARIANT)
        return "the same, K cut by the row count (one segment past 64 rows): not batch-invariant, the yardstick";
    if (v == GEMM_MMA_ONLY_VARIANT) return "mma.sync alone at every row count (no wgmma)";
    if (v == GEMM_E4M3_VARIANT)
        return "FP8 weights (W8A16): the forward's mma.sync kernel on E4M3 codes widened in registers, a scale a row";
    if (v == GEMM_E4M3_GROUPS_VARIANT)
        return "FP8 weights with a scale a row and 128 inputs (128x128 blocks): each group's chain times its scale";
    return v >= 0 && v < GEMM_BF16_VARIANTS ? gemm_bf16_variant_name[v] : nullptr;
}

extern "C" double backend_cuda_gemm_variant_weight_bytes(int v, int N, int K) {
    double codes = (double)N * gemm_e4m3_row_codes(K);
    if (v == GEMM_E4M3_VARIANT) return codes + 4.0 * N;
    if (v == GEMM_E4M3_GROUPS_VARIANT) return codes + 4.0 * N * gemm_e4m3_groups(K, GEMM_E4M3_GROUP_K, 0);
    return 2.0 * N * K;
}

// What the forward's GEMM runs at prefill rows on the current GPU (gemm_wgmma_probe's answer, in words).
extern "C" const char *backend_cuda_gemm_prefill(rp_err *err) {
    int answer;
    cudaError_t e = gemm_wgmma_probe(&answer, 0);
    if (e != cudaSuccess) return rp_fail(err, "gemm probe: %s", cudaGetErrorString(e)), nullptr;
    return gemm_wgmma_probe_name(answer);
}

// A GEMM's buffers on the device: X, `copies` copies of W (used in turn), the output and the mma variant's workspace.
struct gemm_buffers {
    bf16 *x = nullptr, *w = nullptr;   // (w's bytes are the FP8 variant's codes)
    float *out = nullptr, *partial = nullptr, *row_scale = nullptr;
    unsigned *count = nullptr;
    size_t copies = 1;
    int turn = 0, wgmma = 0;   // wgmma: gemm_wgmma_probe's answer on this GPU, asked once, outside the timed launches
    ~gemm_buffers() { cudaFree(x), cudaFree(w), cudaFree(out), cudaFree(partial), cudaFree(count), cudaFree(row_scale); }
    static size_t scales(int N, int K) { return (size_t)N * gemm_e4m3_groups(K, GEMM_E4M3_GROUP_K, 0); }   // enough for both
    bool alloc(int R, int N, int K, size_t n_copies) {
        copies = n_copies;
        size_t w_elems = (size_t)N * K;
        return gemm_wgmma_probe(&wgmma, 0) == cudaSuccess && cudaMalloc((void **)&x, (size_t)R * K * sizeof(bf16)) == cudaSuccess &&
               cudaMalloc((void **)&w, copies * w_elems * sizeof(bf16)) == cudaSuccess &&
               cudaMalloc((void **)&out, (size_t)R * N * sizeof(float)) == cudaSuccess &&
               cudaMalloc((void **)&row_scale, scales(N, K) * sizeof(float)) == cudaSuccess &&
               cudaMemset(row_scale, 0x3c, scales(N, K) * sizeof(float)) == cudaSuccess &&
               cudaMalloc((void **)&partial, gemm_workspace_floats(N, K) * sizeof(float) + 16) == cudaSuccess &&
               cudaMalloc((void **)&count, gemm_workspace_counters(N) * sizeof(unsigned)) == cudaSuccess &&
               cudaMemset(count, 0, gemm_workspace_counters(N) * sizeof(unsigned)) == cudaSuccess &&
               cudaMemset(x, 0x3c, (size_t)R * K * sizeof(bf16)) == cudaSuccess &&   // BF16 0x3c3c: about 0.0115, not zero
               cudaMemset(w, 0x3c, copies * w_elems * sizeof(bf16)) == cudaSuccess;
    }
    cudaError_t launch(int R, int N, int K, int variant) {
        bf16 *wt = w + (turn++ % copies) * (size_t)N * K;
        gemm_out o = gemm_store(out);
        gemm_workspace ws{partial, count, variant == GEMM_MMA_ONLY_VARIANT ? 0 : wgmma};
        if (variant == GEMM_E4M3_VARIANT)   // codes 0x3c (1.5), packed: the copies' first N x K bytes each
            return launch_gemm_mma(x, gemm_weight_e4m3(reinterpret_cast<const uint8_t *>(wt), row_scale), R, N, K, o, ws, 0);
        if (variant == GEMM_E4M3_GROUPS_VARIANT)
            return launch_gemm_mma(x, gemm_weight_e4m3(reinterpret_cast<const uint8_t *>(wt), row_scale, nullptr, GEMM_E4M3_GROUP_K),
                                   R, N, K, o, ws, 0);
        if (variant < 0 || variant == GEMM_MMA_VARIANT || variant == GEMM_MMA_ONLY_VARIANT)   // the forward's GEMM
            return launch_gemm_mma(x, gemm_weight_bf16(wt), R, N, K, o, ws, 0);
        if (variant == GEMM_MMA_BY_ROWS_VARIANT)
            return launch_gemm_mma_segments(x, gemm_weight_bf16(wt), R, N, K, R > GEMM_SPLIT_ROWS ? 1 : gemm_k_segments(N, K), o,
                                            ws, 0);
        return launch_gemm_bf16_variant(x, wt, R, N, K, out, variant, 0);
    }
};

extern "C" double backend_cuda_time_gemm(int R, int N, int K, int variant, rp_err *err) {
    // as many copies of W as make 512 MiB, used in turn, so that the weights come from memory, not from L2
    size_t w_elems = (size_t)N * K, copies = std::min<size_t>(64, std::max<size_t>(1, ((size_t)512 << 20) / (w_elems * 2)));
    gemm_buffers g;
    if (!g.alloc(R, N, K, copies)) return rp_fail(err, "gemm timing: %s", cudaGetErrorString(cudaGetLastError())), 0;
    return median_seconds([&] { return g.launch(R, N, K, variant); }, 0, "gemm timing", err);
}

extern "C" int backend_cuda_run_gemm(int R, int N, int K, int variant, rp_err *err) {
    gemm_buffers g;
    cudaError_t e = g.alloc(R, N, K, 1) ? g.launch(R, N, K, variant) : cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    return e == cudaSuccess ? 0 : rp_fail(err, "gemm run: %s", cudaGetErrorString(e));
}

extern "C" double backend_cuda_time_all_reduce(backend *base, size_t count, rp_err *err) {
    cuda_backend *b = cb(base);
    if (b->tp <= 1) return rp_fail(err, "all-reduce timing: the model runs on one GPU (--tp 1)"), 0;
    if (count > (size_t)b->ranks[0]->cap_rows * base->cfg->dim)
        return rp_fail(err, "all-reduce timing: %zu floats exceed a step's rows", count), 0;
    const int per_graph = b->share_gpu ? 1 : 20;
    double seconds = 0;
    each(b, [&](rank_state *r) {
        cudaGraphExec_t exec = nullptr;
        if (!b->share_gpu) {   // as a decode step runs it: inside a graph
            cudaGraph_t g;
            CUDA_CHECK(cudaStreamBeginCapture(r->stream, cudaStreamCaptureModeThreadLocal));
            for (int i = 0; i < per_graph; i++) all_reduce(b, r, &rank_state::tmp, 0, count);
            CUDA_CHECK(cudaStreamEndCapture(r->stream, &g));
            CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
            CUDA_CHECK(cudaGraphDestroy(g));
        }
        rp_err mine;
        double t = median_seconds([&] {
                if (exec) return cudaGraphLaunch(exec, r->stream);
                all_reduce(b, r, &rank_state::tmp, 0, count);
                return cudaSuccess;
            }, r->stream, "all-reduce timing", r->rank == 0 ? err : &mine);
        if (r->rank == 0) seconds = t / per_graph;
        if (exec) cudaGraphExecDestroy(exec);
    });
    return seconds;
}

extern "C" const char *backend_cuda_device_name(void) {
    static cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        cudaGetLastError();
        return "";
    }
    return prop.name;
}

extern "C" void backend_cuda_profile(int on) {
    cudaDeviceSynchronize();
    if (on) cudaProfilerStart();
    else cudaProfilerStop();
}

}   // namespace reprise_cuda
