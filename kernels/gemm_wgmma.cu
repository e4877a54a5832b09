// The projections' GEMM for prefill on Hopper: warp-specialised, TMA + mbarrier ring feeding wgmma, by gemm_mma.cu's
// numeric rule (K's 16-wide steps cut into gemm_k_segments(N, K) segments; each segment a chain of k-steps in order
// from zero; the chains added in segment order), so a row's bits are the ones it gets alone through mma.sync wherever
// the two instruction families agree - which gemm_wgmma_probe asks the device before the forward lets this kernel run.
//
// A CTA computes 128 rows x 128 features: warpgroups 0 and 1 (consumers) 64 rows each, D (64 x 128) = X tile . W
// tile^T by wgmma m64n128k16 with both operands K-major in shared memory, 128-byte swizzled as the copy engine lays
// them; warpgroup 2's first thread (producer) fills a ring of GW_STAGES stages, each 64 k of the X rows and of the
// weight rows (2 x 16 KB boxes, one mbarrier counting their bytes). A consumer releases a stage (one arrival per
// warpgroup on its `empty` barrier) once the wgmma group that read it has completed, keeping one group in flight.
// A stage never crosses a segment's end: the last stage of a segment runs only its own k-steps (the box's rest is
// read but not used), so each segment's chain is exactly gemm_mma.cu's. Past R, N and K the copy engine fills zeros.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>
#include <vector>

#include "kernels/gemm_out.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/ptx.h"

#define GW_ROWS 128      // rows of X a CTA computes (two consumer warpgroups of 64)
#define GW_FEATURES 128  // outputs a CTA computes (wgmma's N)
#define GW_K 64          // k a stage holds: one 128-byte swizzle span of BF16
#define GW_STAGES 6      // 32 KB each: 192 KB of the SM's 227
#define GW_THREADS 384   // two consumer warpgroups and the producer's

struct gw_stage {
    bf16 x[GW_ROWS * GW_K];       // X rows row0.., k k0.., 128-byte swizzled
    bf16 w[GW_FEATURES * GW_K];   // weight rows f0.., the same k
};
static const size_t gw_smem_bytes = GW_STAGES * sizeof(gw_stage) + 1024 + 2 * GW_STAGES * sizeof(uint64_t);

// The k-steps [ks0, ks1) of segment s (of S, per_seg steps each but the last).
__device__ static void gw_segment_steps(int s, int per_seg, int steps, int *ks0, int *ks1) {
    *ks0 = s * per_seg, *ks1 = min(steps, (s + 1) * per_seg);
}

__global__ void __launch_bounds__(GW_THREADS, 1)
    gemm_wgmma_kernel(const __grid_constant__ tma_map map_x, const __grid_constant__ tma_map map_w, int R, int N, int K,
                      int S, gemm_out out) {
    REPRISE_DYNAMIC_SHARED(unsigned char, smem_raw);
    // swizzled boxes start at a multiple of 1024 bytes (the pattern's repeat): the ring is aligned by hand
    gw_stage *ring = reinterpret_cast<gw_stage *>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~(uintptr_t)1023);
    uint64_t *full = reinterpret_cast<uint64_t *>(ring + GW_STAGES), *empty = full + GW_STAGES;
    // the warpgroup's index, as one warp-uniform value (a shuffle from lane 0), so that ptxas sees the consumers' wgmma
    // outside a divergent path (else it serialises them)
    const int steps = (K + 15) / 16, per_seg = (steps + S - 1) / S, wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    // rows vary fastest over the grid: the CTAs that share a weight tile run in one wave, so each weight byte comes
    // from DRAM once and X (R x K, a few MB) stays in L2
    const int row0 = blockIdx.x * GW_ROWS, f0 = blockIdx.y * GW_FEATURES;
    if (threadIdx.x == 0) {
        for (int i = 0; i < GW_STAGES; i++) mbar_init(&full[i], 1), mbar_init(&empty[i], 2);
        mbar_init_fence();
    }
    __syncthreads();

    if (wg == 2) {   // the producer: stage after stage, each once both consumers have released it
        if (threadIdx.x != 256) return;
        int it = 0;
        for (int s = 0; s < S; s++) {
            int ks0, ks1;
            gw_segment_steps(s, per_seg, steps, &ks0, &ks1);
            for (int ks = ks0; ks < ks1; ks += GW_K / 16, it++) {
                int slot = it % GW_STAGES;
                mbar_wait(&empty[slot], ((it / GW_STAGES) & 1) ^ 1);   // the first round finds every stage free
                mbar_arrive_expect_tx(&full[slot], (unsigned)sizeof(gw_stage));
                tma_load_2d(ring[slot].x, &map_x, 16 * ks, row0, &full[slot]);
                tma_load_2d(ring[slot].w, &map_w, 16 * ks, f0, &full[slot]);
            }
        }
        return;
    }

    // A consumer warpgroup: rows row0 + 64 wg .. + 63, all 128 features.
    float acc[64], sum[64];
REPRISE_UNROLL
    for (int i = 0; i < 64; i++) sum[i] = 0.0f;
    int it = 0;
    for (int s = 0; s < S; s++) {
        int ks0, ks1;
        gw_segment_steps(s, per_seg, steps, &ks0, &ks1);
REPRISE_UNROLL
        for (int i = 0; i < 64; i++) acc[i] = 0.0f;   // the segment's chain starts at zero, as mma.sync's does
        int held = -1;                                 // the stage the group in flight reads
        for (int ks = ks0; ks < ks1; ks += GW_K / 16, it++) {
            int slot = it % GW_STAGES;
            mbar_wait(&full[slot], (it / GW_STAGES) & 1);
            uint64_t da = wgmma_desc(ring[slot].x + 64 * wg * GW_K, 16, 1024, TMA_SWIZZLE_128B);
            uint64_t db = wgmma_desc(ring[slot].w, 16, 1024, TMA_SWIZZLE_128B);
            wgmma_fence();
REPRISE_UNROLL
            for (int h = 0; h < GW_K / 16; h++)
                if (ks + h < ks1) wgmma_bf16_m64n128k16(acc, da + 2 * h, db + 2 * h, 1);
            wgmma_commit();
            wgmma_wait<1>();   // the previous stage's group has completed: its stage is free
            if (held >= 0 && threadIdx.x % 128 == 0) mbar_arrive(&empty[held]);
            held = slot;
        }
        wgmma_wait<0>();
        if (held >= 0 && threadIdx.x % 128 == 0) mbar_arrive(&empty[held]);
REPRISE_UNROLL
        for (int i = 0; i < 64; i++) sum[i] += acc[i];
    }

    // sum[4 j + i] is D(16 w + g + 8 (i / 2), 8 j + 2 t + i % 2) of this warpgroup's 64 x 128 (ptx.h's layout):
    // two neighbouring outputs at once where they fall in one segment of `out`
    int t = threadIdx.x % 128, warp = t / 32, g = (t % 32) / 4, q = t % 4;
REPRISE_UNROLL
    for (int j = 0; j < GW_FEATURES / 8; j++)
REPRISE_UNROLL
        for (int half = 0; half < 2; half++) {
            int r = row0 + 64 * wg + 16 * warp + g + 8 * half, n = f0 + 8 * j + 2 * q;
            if (r >= R || n >= N) continue;
            float v0 = sum[4 * j + 2 * half], v1 = sum[4 * j + 2 * half + 1];
            float *p0 = gemm_out_at(out, N, r, n), *p1 = n + 1 < N ? gemm_out_at(out, N, r, n + 1) : nullptr;
            if (p1 == p0 + 1 && reinterpret_cast<uintptr_t>(p0) % 8 == 0) *reinterpret_cast<float2 *>(p0) = make_float2(v0, v1);
            else {
                *p0 = v0;
                if (p1) *p1 = v1;
            }
        }
}

bool gemm_wgmma_fits(const bf16 *X, gemm_weight W, int K) {
    return W.type == GEMM_WEIGHT_BF16 && K % 8 == 0 && reinterpret_cast<uintptr_t>(X) % 16 == 0 &&
           reinterpret_cast<uintptr_t>(W.data) % 16 == 0;
}

cudaError_t launch_gemm_wgmma(const bf16 *X, gemm_weight Wt, int R, int N, int K, int S, gemm_out out, cudaStream_t s) {
    if (R <= 0 || N <= 0 || K <= 0) return R == 0 ? cudaSuccess : cudaErrorInvalidValue;
    if (Wt.type != GEMM_WEIGHT_BF16) return cudaErrorNotSupported;
    if (!gemm_wgmma_fits(X, Wt, K) || S < 1 || out.n < 1 || out.n > GEMM_OUT_MAX || out.first[0] != 0)
        return cudaErrorInvalidValue;
    for (int i = 1; i < out.n; i++)
        if (out.first[i] <= out.first[i - 1] || out.first[i] >= N) return cudaErrorInvalidValue;
    tma_map mx, mw;
    cudaError_t e = tma_map_2d(&mx, X, 2, R, K, (uint64_t)K * 2, GW_ROWS, GW_K, TMA_SWIZZLE_128B);
    if (e == cudaSuccess) e = tma_map_2d(&mw, Wt.data, 2, N, K, (uint64_t)K * 2, GW_FEATURES, GW_K, TMA_SWIZZLE_128B);
    if (e == cudaSuccess) e = cudaFuncSetAttribute((const void *)gemm_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   (int)gw_smem_bytes);
    if (e != cudaSuccess) return e;
    dim3 grid((R + GW_ROWS - 1) / GW_ROWS, (N + GW_FEATURES - 1) / GW_FEATURES);
    if (grid.y > 65535) return cudaErrorInvalidValue;
    return REPRISE_LAUNCH(gemm_wgmma_kernel, grid, dim3(GW_THREADS), gw_smem_bytes, s, mx, mw, R, N, K, S, out);
}

// 1 where this binary holds wgmma (compiled for sm_90a), 0 where the instructions would trap.
__global__ void gemm_wgmma_compiled_kernel(int *has) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || !defined(__CUDACC__)
    *has = 1;
#else
    *has = 0;
#endif
}

const char *gemm_wgmma_probe_name(int answer) {
    switch (answer) {
    case GEMM_WGMMA_ON: return "wgmma (its bits equal mma.sync's)";
    case GEMM_WGMMA_NOT_SM90: return "mma.sync (not an sm_90 GPU)";
    case GEMM_WGMMA_NOT_BUILT: return "mma.sync (this binary has no sm_90a code)";
    case GEMM_WGMMA_BITS_DIFFER: return "mma.sync (wgmma's bits differ from mma.sync's: batch invariance keeps mma.sync)";
    case GEMM_WGMMA_REFUSED: return "mma.sync (the wgmma kernel's launch was refused)";
    case GEMM_WGMMA_OFF: return "mma.sync (wgmma turned off: REPRISE_GEMM_WGMMA=0)";
    }
    return "?";
}

// The product of one 128 x 512 X and 128 x 512 W (4 segments) through one kernel or the other, into out.
static cudaError_t gw_probe_product(const bf16 *d, bool wgmma, float *out, std::vector<float> &host, cudaStream_t s) {
    const int R = 128, N = 128, K = 512;
    gemm_weight w = gemm_weight_bf16(d + (size_t)R * K);
    gemm_workspace none = {nullptr, nullptr, 0};   // rows past GEMM_SPLIT_ROWS: mma.sync's tiles, no workspace
    cudaError_t e = wgmma ? launch_gemm_wgmma(d, w, R, N, K, gemm_k_segments(N, K), gemm_out{{out}, {0}, 1}, s)
                          : launch_gemm_mma(d, w, R, N, K, gemm_out{{out}, {0}, 1}, none, s);
    host.resize((size_t)R * N);
    if (e == cudaSuccess) e = cudaMemcpyAsync(host.data(), out, host.size() * sizeof(float), cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    return e;
}

static cudaError_t gw_probe(int *answer, cudaStream_t s) {
    int dev, major = 0;
    *answer = GEMM_WGMMA_NOT_SM90;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e != cudaSuccess || major != 9) return e;   // wgmma is sm_90a's alone

    // Values over eight binades and both signs, so that a k-step summed in another order rounds otherwise somewhere.
    const int R = 128, N = 128, K = 512;
    std::vector<bf16> values((size_t)(R + N) * K);
    uint32_t state = 12345;
    for (bf16 &v : values) {
        state = state * 1664525u + 1013904223u;
        float mant = 1.0f + (float)(state >> 9 & 0x7f) / 128.0f, scale = (float)(1 << (state >> 20 & 7)) / 16.0f;
        v = __float2bfloat16((state >> 31 ? -mant : mant) * scale);
    }
    bf16 *d = nullptr;
    float *out = nullptr;
    int *has = nullptr, has_host = 0;
    std::vector<float> by_mma, by_wgmma;
    e = cudaMalloc((void **)&d, values.size() * sizeof(bf16));
    if (e == cudaSuccess) e = cudaMalloc((void **)&out, (size_t)R * N * sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc((void **)&has, sizeof(int));
    if (e == cudaSuccess) e = cudaMemcpyAsync(d, values.data(), values.size() * sizeof(bf16), cudaMemcpyHostToDevice, s);
    if (e == cudaSuccess) e = gw_probe_product(d, false, out, by_mma, s);
    if (e == cudaSuccess) {
        if (REPRISE_LAUNCH(gemm_wgmma_compiled_kernel, dim3(1), dim3(1), 0, s, has) != cudaSuccess ||
            cudaMemcpyAsync(&has_host, has, sizeof(int), cudaMemcpyDeviceToHost, s) != cudaSuccess ||
            cudaStreamSynchronize(s) != cudaSuccess)
            cudaGetLastError(), has_host = 0;   // no code for this GPU in the binary: no wgmma, nothing broken
        if (!has_host) *answer = GEMM_WGMMA_NOT_BUILT;
        else if (gw_probe_product(d, true, out, by_wgmma, s) != cudaSuccess) cudaGetLastError(), *answer = GEMM_WGMMA_REFUSED;
        else *answer = !memcmp(by_mma.data(), by_wgmma.data(), by_mma.size() * sizeof(float)) ? GEMM_WGMMA_ON : GEMM_WGMMA_BITS_DIFFER;
    }
    cudaFree(d), cudaFree(out), cudaFree(has);
    return e;
}

// Asked once a GPU a process (the answer does not change); REPRISE_GEMM_WGMMA=0 keeps mma.sync without asking.
static std::mutex gw_known_mu;
static std::map<int, int> gw_known;   // device -> answer
cudaError_t gemm_wgmma_probe(int *answer, cudaStream_t s) {
    const char *off = getenv("REPRISE_GEMM_WGMMA");
    if (off && !strcmp(off, "0")) return *answer = GEMM_WGMMA_OFF, cudaSuccess;
    int dev;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    std::lock_guard<std::mutex> g(gw_known_mu);
    auto it = gw_known.find(dev);
    if (it != gw_known.end()) return *answer = it->second, cudaSuccess;
    e = gw_probe(answer, s);
    if (e == cudaSuccess) gw_known[dev] = *answer;
    return e;
}
