// The projections' GEMM for prefill on Hopper: warp-specialised, TMA + mbarrier ring feeding wgmma, by gemm_mma.cu's
// numeric rule (K's 16-wide steps cut into gemm_k_segments(N, K) segments; each segment a chain of k-steps in order
// from zero; the chains added in segment order), so a row's bits are the ones it gets alone through mma.sync wherever
// the two instruction families agree - which gemm_wgmma_probe asks the device before the forward lets this kernel run.
//
// A CTA computes 128 rows x BN features: warpgroups 0 and 1 (consumers) 64 rows each, D (64 x BN) = X tile . W
// tile^T by wgmma m64nBNk16 with both operands K-major in shared memory, 128-byte swizzled as the copy engine lays
// them; warpgroup 2's first thread (producer) fills a ring of stages, each 64 k of the X rows and of the weight rows
// (two boxes, one mbarrier counting their bytes). A consumer releases a stage (one arrival per warpgroup on its
// `empty` barrier) once the wgmma group that read it has completed, keeping one group in flight. BN is 128 (6 stages,
// 1 CTA an SM), or 64 (4 stages, 2 CTAs an SM) where 128-wide tiles would leave over half the SMs idle: a short
// prompt or a narrow weight gets twice the CTAs. A stage never crosses a segment's end: the last stage of a segment
// runs only its own k-steps (the box's rest is read but not used), so each segment's chain is exactly gemm_mma.cu's.
// Past R, N and K the copy engine fills zeros. The running sum of the segments stays in registers beside the chain (2 x BN / 2 a thread),
// which is what keeps the tile at 128 x 128.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include <map>
#include <mutex>
#include <vector>

#include "kernels/gemm_out.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/ptx.h"

#define GW_ROWS 128      // rows of X a CTA computes (two consumer warpgroups of 64)
#define GW_K 64          // k a stage holds: one 128-byte swizzle span of BF16
#define GW_THREADS 384   // two consumer warpgroups and the producer's

// A CTA's tile: BN outputs (wgmma's N: 128, or 64 where 128-wide tiles would leave SMs idle), a ring of STAGES
// stages, CTAS resident an SM (the registers and shared memory it is built for).
template <int BN> struct gw_tile;
template <> struct gw_tile<128> {
    static constexpr int stages = 6, ctas = 1;   // 32 KB a stage: 192 KB of the SM's 227
};
template <> struct gw_tile<64> {
    static constexpr int stages = 4, ctas = 2;   // 24 KB a stage: 2 x 96 KB
};

template <int BN> struct gw_stage {
    bf16 x[GW_ROWS * GW_K];   // X rows row0.., k k0.., 128-byte swizzled
    bf16 w[BN * GW_K];        // weight rows f0.., the same k
};
template <int BN> constexpr size_t gw_smem_bytes() {
    return gw_tile<BN>::stages * (sizeof(gw_stage<BN>) + 2 * sizeof(uint64_t)) + 1024;
}

// The k-steps [ks0, ks1) of segment s (of S, per_seg steps each but the last).
__device__ static void gw_segment_steps(int s, int per_seg, int steps, int *ks0, int *ks1) {
    *ks0 = s * per_seg, *ks1 = min(steps, (s + 1) * per_seg);
}

// One k-step of a consumer warpgroup: D (64 x BN) += A (64 x 16) . B (16 x BN).
template <int BN> __device__ static void gw_mma(float *acc, uint64_t da, uint64_t db);
template <> __device__ void gw_mma<128>(float *acc, uint64_t da, uint64_t db) { wgmma_bf16_m64n128k16(acc, da, db, 1); }
template <> __device__ void gw_mma<64>(float *acc, uint64_t da, uint64_t db) { wgmma_bf16_m64n64k16(acc, da, db, 1); }

template <int BN, int STAGES, int CTAS>
__global__ void __launch_bounds__(GW_THREADS, CTAS)
    gemm_wgmma_kernel(const __grid_constant__ tma_map map_x, const __grid_constant__ tma_map map_w, int R, int N, int K,
                      int S, gemm_out out) {
    constexpr int NACC = BN / 2;   // a consumer thread's accumulators: 64 x BN over 128 threads
    REPRISE_DYNAMIC_SHARED(unsigned char, smem_raw);
    // swizzled boxes start at a multiple of 1024 bytes (the pattern's repeat): the ring is aligned by hand
    gw_stage<BN> *ring = reinterpret_cast<gw_stage<BN> *>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~(uintptr_t)1023);
    uint64_t *full = reinterpret_cast<uint64_t *>(ring + STAGES), *empty = full + STAGES;
    // the warpgroup's index, as one warp-uniform value (a shuffle from lane 0), so that ptxas sees the consumers' wgmma
    // outside a divergent path (else it serialises them)
    const int steps = (K + 15) / 16, per_seg = (steps + S - 1) / S, wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    // rows vary fastest over the grid: the CTAs that share a weight tile run in one wave, so each weight byte comes
    // from DRAM once and X (R x K, a few MB) stays in L2
    const int row0 = blockIdx.x * GW_ROWS, f0 = blockIdx.y * BN;
    if (threadIdx.x == 0) {
        for (int i = 0; i < STAGES; i++) mbar_init(&full[i], 1), mbar_init(&empty[i], 2);
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
                int slot = it % STAGES;
                mbar_wait(&empty[slot], ((it / STAGES) & 1) ^ 1);   // the first round finds every stage free
                mbar_arrive_expect_tx(&full[slot], (unsigned)sizeof(gw_stage<BN>));
                tma_load_2d(ring[slot].x, &map_x, 16 * ks, row0, &full[slot]);
                tma_load_2d(ring[slot].w, &map_w, 16 * ks, f0, &full[slot]);
            }
        }
        return;
    }

    // A consumer warpgroup: rows row0 + 64 wg .. + 63, all BN features.
    float acc[NACC], sum[NACC];
REPRISE_UNROLL
    for (int i = 0; i < NACC; i++) sum[i] = 0.0f;
    int it = 0;
    for (int s = 0; s < S; s++) {
        int ks0, ks1;
        gw_segment_steps(s, per_seg, steps, &ks0, &ks1);
REPRISE_UNROLL
        for (int i = 0; i < NACC; i++) acc[i] = 0.0f;   // the segment's chain starts at zero, as mma.sync's does
        int held = -1;                                   // the stage the group in flight reads
        for (int ks = ks0; ks < ks1; ks += GW_K / 16, it++) {
            int slot = it % STAGES;
            mbar_wait(&full[slot], (it / STAGES) & 1);
            uint64_t da = wgmma_desc(ring[slot].x + 64 * wg * GW_K, 16, 1024, TMA_SWIZZLE_128B);
            uint64_t db = wgmma_desc(ring[slot].w, 16, 1024, TMA_SWIZZLE_128B);
            wgmma_fence();
            if (ks + GW_K / 16 <= ks1) {   // a whole stage: four wgmma that ptxas issues back to back
REPRISE_UNROLL
                for (int h = 0; h < GW_K / 16; h++) gw_mma<BN>(acc, da + 2 * h, db + 2 * h);
            } else {   // a segment's last, partial stage (where the segment's steps are not a multiple of 4)
                for (int h = 0; h < ks1 - ks; h++) gw_mma<BN>(acc, da + 2 * h, db + 2 * h);
            }
            wgmma_commit();
            wgmma_wait<1>();   // the previous stage's group has completed: its stage is free
            if (held >= 0 && threadIdx.x % 128 == 0) mbar_arrive(&empty[held]);
            held = slot;
        }
        wgmma_wait<0>();
        if (held >= 0 && threadIdx.x % 128 == 0) mbar_arrive(&empty[held]);
REPRISE_UNROLL
        for (int i = 0; i < NACC; i++) sum[i] += acc[i];
    }

    // sum[4 j + i] is D(16 w + g + 8 (i / 2), 8 j + 2 t + i % 2) of this warpgroup's 64 x BN (ptx.h's layout):
    // two neighbouring outputs at once where they fall in one segment of `out`; GEMM_SWIGLU's gate columns (j even)
    // meet their up columns (j + 1) in the same thread
    int t = threadIdx.x % 128, warp = t / 32, g = (t % 32) / 4, q = t % 4;
    float scale[2];   // GEMM_SWIGLU: this thread's two rows' (half 0, 1)
REPRISE_UNROLL
    for (int half = 0; half < 2; half++) {
        int r = row0 + 64 * wg + 16 * warp + g + 8 * half;
        scale[half] = out.epilogue != GEMM_ADD && r < R ? gemm_out_row_scale(out, K, r) : 0.0f;
    }
REPRISE_UNROLL
    for (int j = 0; j < BN / 8; j++)
REPRISE_UNROLL
        for (int half = 0; half < 2; half++) {
            int r = row0 + 64 * wg + 16 * warp + g + 8 * half, n = f0 + 8 * j + 2 * q;
            if (r >= R || n >= N) continue;
            float v0 = sum[4 * j + 2 * half], v1 = sum[4 * j + 2 * half + 1];
            if (out.epilogue == GEMM_SWIGLU) {
                if (j % 2 == 0) {
                    float c = scale[half];
                    gemm_out_put_swiglu(out, r, n, v0 * c, sum[4 * (j + 1) + 2 * half] * c);
                    gemm_out_put_swiglu(out, r, n + 1, v1 * c, sum[4 * (j + 1) + 2 * half + 1] * c);
                }
                continue;
            }
            if (out.ssq && out.epilogue == GEMM_STORE) v0 *= scale[half], v1 *= scale[half];   // the RMSNorm folded in
            if (out.epilogue == GEMM_ADD) {
                gemm_out_put(out, N, r, n, v0);
                if (n + 1 < N) gemm_out_put(out, N, r, n + 1, v1);
                continue;
            }
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

// The launch of one instantiation, spelled with literals so that the emulation's launch name is ptxas's (the speed
// model finds the kernel's registers and shared memory by it); the dynamic shared memory allowed first.
static_assert(gw_tile<128>::stages == 6 && gw_tile<128>::ctas == 1 && gw_tile<64>::stages == 4 && gw_tile<64>::ctas == 2,
              "GW_LAUNCH's literals");
#define GW_LAUNCH(BN, STAGES, CTAS)                                                                                  \
    (cudaFuncSetAttribute((const void *)gemm_wgmma_kernel<BN, STAGES, CTAS>, cudaFuncAttributeMaxDynamicSharedMemorySize, \
                          (int)gw_smem_bytes<BN>()) != cudaSuccess                                                      \
         ? cudaGetLastError()                                                                                         \
         : REPRISE_LAUNCH((gemm_wgmma_kernel<BN, STAGES, CTAS>), grid, dim3(GW_THREADS), gw_smem_bytes<BN>(), s, mx, mw, R, \
                          N, K, S, out))

cudaError_t launch_gemm_wgmma(const bf16 *X, gemm_weight Wt, int R, int N, int K, int S, gemm_out out, int tile, cudaStream_t s) {
    if (R <= 0 || N <= 0 || K <= 0) return R == 0 ? cudaSuccess : cudaErrorInvalidValue;
    if (Wt.type != GEMM_WEIGHT_BF16) return cudaErrorNotSupported;
    if (out.epilogue == GEMM_ADD && out.ssq) return cudaErrorNotSupported;   // launch_gemm_mma adds row_stats' launch
    if (!gemm_wgmma_fits(X, Wt, K) || S < 1 || !gemm_out_valid(out, N) || (tile != 0 && tile != 64 && tile != 128))
        return cudaErrorInvalidValue;
    // 128-wide tiles, or 64-wide where 128 would leave more than half the GPU's SMs idle (a short prompt, a narrow
    // weight): below that, twice the CTAs of half the width finish no sooner (two share an SM's tensor cores) and
    // read twice the X tiles through L2
    int dev, sms = 132;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        return cudaGetLastError();
    long row_blocks = (R + GW_ROWS - 1) / GW_ROWS;
    int BN = tile ? tile : 2 * row_blocks * ((N + 127) / 128) > sms ? 128 : 64;
    tma_map mx, mw;
    cudaError_t e = tma_map_2d(&mx, X, 2, R, K, (uint64_t)K * 2, GW_ROWS, GW_K, TMA_SWIZZLE_128B);
    if (e == cudaSuccess) e = tma_map_2d(&mw, Wt.data, 2, N, K, (uint64_t)K * 2, BN, GW_K, TMA_SWIZZLE_128B);
    if (e != cudaSuccess) return e;
    dim3 grid((unsigned)row_blocks, (N + BN - 1) / BN);
    if (grid.y > 65535) return cudaErrorInvalidValue;
    return BN == 128 ? GW_LAUNCH(128, 6, 1) : GW_LAUNCH(64, 4, 2);
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

// Waits for the stream. On a GPU, a kernel that has not finished in a minute (the probe takes milliseconds) is a
// kernel that hangs on this GPU: said, with the way around it, instead of waiting for ever.
static cudaError_t gw_wait(cudaStream_t s, const char *what) {
#ifdef __CUDACC__
    cudaEvent_t ev;
    cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(ev, s);
    for (int ms = 0; e == cudaSuccess; ms++) {
        cudaError_t q = cudaEventQuery(ev);
        if (q != cudaErrorNotReady) {
            e = q;
            break;
        }
        if (ms >= 60000) {
            fprintf(stderr, "reprise: %s has not finished in 60 s: its kernel hangs on this GPU; run with "
                            "REPRISE_GEMM_WGMMA=0 (prefill on mma.sync) and report it\n", what);
            return cudaErrorLaunchTimeout;
        }
        usleep(1000);
    }
    cudaEventDestroy(ev);
    return e;
#else
    (void)what;
    return cudaStreamSynchronize(s);   // the emulation reports a kernel that cannot finish itself
#endif
}

// The product of one 128 x 512 X and 128 x 512 W (4 segments) into out: through mma.sync (tile 0), or through the
// wgmma kernel's 64- or 128-wide tiles.
static cudaError_t gw_probe_product(const bf16 *d, int tile, float *out, std::vector<float> &host, cudaStream_t s) {
    const int R = 128, N = 128, K = 512;
    gemm_weight w = gemm_weight_bf16(d + (size_t)R * K);
    gemm_workspace none = {nullptr, nullptr, 0};   // rows past GEMM_SPLIT_ROWS: mma.sync's tiles, no workspace
    cudaError_t e = tile ? launch_gemm_wgmma(d, w, R, N, K, gemm_k_segments(N, K), gemm_store(out), tile, s)
                         : launch_gemm_mma(d, w, R, N, K, gemm_store(out), none, s);
    host.resize((size_t)R * N);
    if (e == cudaSuccess) e = cudaMemcpyAsync(host.data(), out, host.size() * sizeof(float), cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = gw_wait(s, tile ? "the wgmma GEMM's probe" : "the mma.sync GEMM's probe");
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
    std::vector<float> by_mma, by_wgmma[2];
    e = cudaMalloc((void **)&d, values.size() * sizeof(bf16));
    if (e == cudaSuccess) e = cudaMalloc((void **)&out, (size_t)R * N * sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc((void **)&has, sizeof(int));
    if (e == cudaSuccess) e = cudaMemcpyAsync(d, values.data(), values.size() * sizeof(bf16), cudaMemcpyHostToDevice, s);
    if (e == cudaSuccess) e = gw_probe_product(d, 0, out, by_mma, s);
    if (e == cudaSuccess) {
        if (REPRISE_LAUNCH(gemm_wgmma_compiled_kernel, dim3(1), dim3(1), 0, s, has) != cudaSuccess ||
            cudaMemcpyAsync(&has_host, has, sizeof(int), cudaMemcpyDeviceToHost, s) != cudaSuccess ||
            cudaStreamSynchronize(s) != cudaSuccess)
            cudaGetLastError(), has_host = 0;   // no code for this GPU in the binary: no wgmma, nothing broken
        if (!has_host) *answer = GEMM_WGMMA_NOT_BUILT;
        else if (gw_probe_product(d, 128, out, by_wgmma[0], s) != cudaSuccess || gw_probe_product(d, 64, out, by_wgmma[1], s) != cudaSuccess)
            cudaGetLastError(), *answer = GEMM_WGMMA_REFUSED;
        else {
            bool same = true;
            for (const std::vector<float> &v : by_wgmma) same = same && !memcmp(by_mma.data(), v.data(), v.size() * sizeof(float));
            *answer = same ? GEMM_WGMMA_ON : GEMM_WGMMA_BITS_DIFFER;
        }
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
