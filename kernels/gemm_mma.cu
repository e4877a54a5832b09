// The projections' GEMM on mma.sync with a cp.async pipeline, batch-invariant by one numeric rule: out (R, N) =
// X (R, K) . W^T, X and W in BF16, FP32 accumulation.
//
// The rule: K's 16-wide steps are cut into S = gemm_k_segments(N, K) segments (shapes.h: by the weight's shape
// alone). An output element is sum = 0; for each segment in order: sum += (the segment's k-steps, in order, each one
// mma_bf16_16816 accumulating into a chain that starts at zero). Nothing in it depends on R, on the other rows or on
// the tile the element falls in, so a row's numbers are the same alone or in any batch; only how the work is cut
// over CTAs changes with R:
//   R <= GEMM_SPLIT_ROWS (decode): one CTA per (64 features, row block, segment) - from 9 rows, two row blocks - so
//     even a 2048-wide weight fills the GPU; each writes its segment's partial to the workspace and the last CTA of a
//     (feature block, row block) to finish (a counter) adds the S partials in segment order and writes the output;
//     the counter is reset for the next launch. A feature block's row blocks are neighbours in the grid (blockIdx.x =
//     feature block x row blocks + row block), so they run together and the second reads the weights from L2: more
//     CTAs, each with a deeper ring, keep more bytes in flight than one CTA of 64 rows could;
//   R > GEMM_SPLIT_ROWS (prefill): one CTA per (64 features, 64 rows) runs every segment in turn, adding each
//     segment's chain to its running sum in the same order.
// The weight is the MMA's first operand (16 features x 16 k) and the tokens its narrow second (8 rows a tile), so a
// decode step of 1-8 rows wastes no weight bandwidth on padding. Each CTA (4 warps, 16 features each) streams its
// weight rows and the rows of X through a ring of gm_stages(NT) shared-memory stages (32 k each) filled by 16-byte
// cp.async copies, the weights with an evict-first L2 policy; tiles are padded to 80-byte rows so that ldmatrix reads
// them without bank conflicts. K not a multiple of 8 or unaligned pointers take element-by-element copies into the
// same stages: the same products in the same order. The last write is out's epilogue (gemm_out.h): stored, added to
// the residual stream, or SwiGLU of interleaved gate/up rows.
#include <stdint.h>

#include "kernels/gemm_out.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/ptx.h"

#define GM_WARPS 4
#define GM_FEATURES (16 * GM_WARPS)   // output columns a CTA computes
#define GM_STAGE_K 32                 // k a pipeline stage holds: two mma k-steps
#define GM_ROW 40                     // a tile row in shared memory: 32 k + 8 of padding (80 bytes)

// The ring's depth for 8 * NT rows: as deep as 46 KB of static shared memory allows (a stage is 5.6 KB of weights and
// 0.6 KB per 8 rows), so that a warp has 2 x (depth - 1) 16-byte copies of weights in flight at each wait: at 2 CTAs
// an SM, 56 KB in flight for 1-8 rows (the bandwidth of HBM over its latency wants about 32 KB an SM).
constexpr int gm_stages(int NT) { return NT <= 1 ? 8 : NT == 2 ? 7 : NT == 4 ? 6 : 4; }

// How a weight type reaches the tensor cores: the seam FP8 weights will come through (kernels.h, gemm_weight). For
// BF16 a stage's weight tile holds the elements as stored (64 rows of 32 k, 16-byte copies of 8 elements) and the
// MMA's A fragment is read from it by ldmatrix as it is.
template <typename WT> struct gm_weight_traits;
template <> struct gm_weight_traits<bf16> {
    static constexpr int per_copy = 8;   // elements of one 16-byte copy
};

// One stage: the CTA's weight rows and up to 8 * NT rows of X, for 32 k.
template <int NT> struct gm_stage {
    bf16 w[GM_FEATURES][GM_ROW];
    bf16 x[8 * NT][GM_ROW];
};

// Issues the copies of one stage: k in [k0, k0 + 32) clipped to kend (the segment's end; zeros past it), weight rows
// f0.., X rows row0.., zeros past N, R and K.
template <int NT>
__device__ static void gm_load_stage(gm_stage<NT> &st, const bf16 *X, const bf16 *W, int R, int N, int K, int f0, int row0,
                                     int k0, int kend, bool fast, uint64_t policy) {
    constexpr int E = gm_weight_traits<bf16>::per_copy, per_row = GM_STAGE_K / E;   // 16-byte chunks of a row's 32 k
    const int chunks_w = GM_FEATURES * per_row, chunks = chunks_w + 8 * NT * per_row;
    for (int c = threadIdx.x; c < chunks; c += 32 * GM_WARPS) {
        bool is_w = c < chunks_w;
        int row = is_w ? c / per_row : (c - chunks_w) / per_row, kk = E * (c % per_row), k = k0 + kk;
        int src_row = is_w ? f0 + row : row0 + row, rows = is_w ? N : R;
        bf16 *dst = is_w ? &st.w[row][kk] : &st.x[row][kk];
        const bf16 *base = is_w ? W : X;
        int valid = src_row < rows ? min(E, max(0, kend - k)) : 0;   // elements of this chunk inside the segment
        if (fast) {
            const bf16 *src = valid ? base + (size_t)src_row * K + k : base;
            if (is_w && valid == 8) cp_async_16_policy(dst, src, policy);
            else cp_async_16(dst, src, 2 * valid);
        } else
            for (int e = 0; e < E; e++) dst[e] = e < valid ? base[(size_t)src_row * K + k + e] : __float2bfloat16(0.0f);
    }
}

// One segment's chain for this warp's 16 features and the CTA's 8 * NT rows: acc = sum over k-steps [ks0, ks1) in
// order, starting from zero.
template <int NT, int STAGES>
__device__ static void gm_segment(float acc[NT][4], gm_stage<NT> *ring, const bf16 *X, const bf16 *W, int R, int N, int K,
                                  int f0, int row0, int ks0, int ks1, bool fast, uint64_t policy) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int j = 0; j < NT; j++)
        for (int i = 0; i < 4; i++) acc[j][i] = 0.0f;
    int kend = min(16 * ks1, K), stages = (ks1 - ks0 + 1) / 2;
    for (int s = 0; s < STAGES - 1; s++) {   // the ring's first stages in flight
        if (s < stages) gm_load_stage<NT>(ring[s], X, W, R, N, K, f0, row0, 16 * (ks0 + 2 * s), kend, fast, policy);
        cp_async_commit();
    }
    for (int s = 0; s < stages; s++) {
        cp_async_wait<STAGES - 2>();   // stage s has arrived (for this thread's copies)...
        __syncthreads();               // ...and everyone's; and stage s - 1 is no longer read: refill it
        int next = s + STAGES - 1;
        if (next < stages)
            gm_load_stage<NT>(ring[next % STAGES], X, W, R, N, K, f0, row0, 16 * (ks0 + 2 * next), kend, fast, policy);
        cp_async_commit();
        gm_stage<NT> &st = ring[s % STAGES];
        for (int h = 0; h < 2 && ks0 + 2 * s + h < ks1; h++) {
            uint32_t a[4];
            ldmatrix_x4(a, &st.w[16 * warp + lane % 16][16 * h + 8 * (lane / 16)]);
REPRISE_UNROLL
            for (int j = 0; j < NT; j++) {
                uint32_t b[2];
                ldmatrix_x2(b, &st.x[8 * j + lane % 8][16 * h + 8 * ((lane / 8) % 2)]);
                mma_bf16_16816(acc[j], a, b, acc[j]);
            }
        }
    }
    cp_async_wait<0>();
    __syncthreads();   // the ring is free for the next segment
}

// acc's element (feature, row) of this lane: feature f0 + 16 warp + g (+ 8), row row0 + 8 j + 2 t (+ 1).
#define GM_FOR_EACH_ELEMENT(body)                                                                                   \
    REPRISE_UNROLL                                                                                                  \
    for (int j = 0; j < NT; j++)                                                                                    \
        REPRISE_UNROLL                                                                                              \
        for (int i = 0; i < 4; i++) {                                                                               \
            int n = f0 + 16 * (threadIdx.x / 32) + (threadIdx.x % 32) / 4 + 8 * (i / 2);                            \
            int r = row0 + 8 * j + 2 * (threadIdx.x % 4) + i % 2;                                                   \
            body                                                                                                    \
        }

// The CTA's elements written by out's epilogue (tot: their sums, laid out as acc): stored or added element by
// element - GEMM_ADD with ssq: the new values gathered in `scratch` (the free ring: 8 NT rows of 64 floats), then
// each row's sum of squares over the CTA's 64 features (one ROW_SSQ_BLOCK) by one thread - or, for GEMM_SWIGLU,
// each gate (i = 0, 1: feature g of the warp's 16) with its up (i + 2: feature g + 8, the same rows), both times
// their row's scale, into h.
static_assert(GM_FEATURES == ROW_SSQ_BLOCK, "a CTA's features are one block of a row's sum of squares");
template <int NT>
__device__ static void gm_write(float tot[NT][4], int R, int N, int K, int f0, int row0, const gemm_out &out,
                                float *scratch) {
    if (out.ssq && out.epilogue != GEMM_ADD) {   // each row times its 1 / rms first (the RMSNorm folded in)
        __shared__ float row_scale[8 * NT];   // made once a CTA, a warp a row (every lane reads them all)
        for (int rr = threadIdx.x / 32; rr < 8 * NT; rr += GM_WARPS) {
            float v = row0 + rr < R ? row_inv_rms_warp(out.ssq + (size_t)(row0 + rr) * ((K + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK), K, out.eps) : 0.0f;
            if (threadIdx.x % 32 == 0) row_scale[rr] = v;
        }
        __syncthreads();
REPRISE_UNROLL
        for (int j = 0; j < NT; j++)
REPRISE_UNROLL
            for (int i = 0; i < 4; i++) tot[j][i] *= row_scale[8 * j + 2 * (threadIdx.x % 4) + i % 2];
    }
    if (out.epilogue == GEMM_SWIGLU) {
        GM_FOR_EACH_ELEMENT(if (i < 2 && n < N && r < R) gemm_out_put_swiglu(out, r, n, tot[j][i], tot[j][i + 2]);)
        return;
    }
    bool stats = out.epilogue == GEMM_ADD && out.ssq;
    GM_FOR_EACH_ELEMENT(if (n < N && r < R) {
        float v = gemm_out_put(out, N, r, n, tot[j][i]);
        if (stats) scratch[(r - row0) * GM_FEATURES + n - f0] = v;
    })
    if (!stats) return;
    __syncthreads();
    int blocks = (N + ROW_SSQ_BLOCK - 1) / ROW_SSQ_BLOCK;
    for (int rr = threadIdx.x; rr < 8 * NT && row0 + rr < R; rr += blockDim.x)
        out.ssq[(size_t)(row0 + rr) * blocks + f0 / ROW_SSQ_BLOCK] = row_ssq_block(scratch + rr * GM_FEATURES, min(GM_FEATURES, N - f0));
}

// The decode split's end: this CTA's segment partial into the workspace; the last CTA of the feature block to finish
// adds the S partials in segment order, writes the output and resets the block's counter.
template <int NT>
__device__ static void gm_finish_split(const float acc[NT][4], int R, int N, int K, int S, int f0, int row0, const gemm_out &out,
                                       float *partial, unsigned *count, float *scratch) {
    __shared__ bool last;
    GM_FOR_EACH_ELEMENT(if (n < N && r < R) partial[((size_t)blockIdx.y * R + r) * N + n] = acc[j][i];)
    __threadfence();   // the partial is visible device-wide before the counter says so
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&count[blockIdx.x], 1u) == (unsigned)S - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    float tot[NT][4];
    GM_FOR_EACH_ELEMENT(tot[j][i] = 0.0f; if (n < N && r < R) {
        for (int s = 0; s < S; s++) tot[j][i] += __ldcg(&partial[((size_t)s * R + r) * N + n]);
    })
    gm_write<NT>(tot, R, N, K, f0, row0, out, scratch);
    if (threadIdx.x == 0) count[blockIdx.x] = 0;   // ready for the next launch
}

template <int NT, int STAGES, bool SPLIT>
__global__ void __launch_bounds__(32 * GM_WARPS) gemm_mma_kernel(const bf16 *X, const bf16 *W, int R, int N, int K, int S,
                                                                  gemm_out out, float *partial, unsigned *count) {
    __shared__ __align__(128) gm_stage<NT> ring[STAGES];
    int row_blocks = SPLIT ? (R + 8 * NT - 1) / (8 * NT) : 1, row_block = SPLIT ? blockIdx.x % row_blocks : blockIdx.y;
    int f0 = blockIdx.x / row_blocks * GM_FEATURES, row0 = row_block * 8 * NT;
    int steps = (K + 15) / 16, per_seg = (steps + S - 1) / S;
    int s_first = SPLIT ? blockIdx.y : 0, s_end = SPLIT ? blockIdx.y + 1 : S;
    // Launched early (REPRISE_LAUNCH_PDL): the weights no kernel writes head for L2 while the previous kernel
    // finishes - this CTA's rows, its segments' k range, a 128-byte line a prefetch - then nothing else of global
    // memory before that kernel is done.
    if (K % 64 == 0) {   // a feature block's row blocks share its weights: each prefetches every row_blocks-th row
        int k0 = s_first * per_seg * 16, k1 = min(K, s_end * per_seg * 16), lines = (k1 - k0) / 64;
        for (int i = threadIdx.x; i < GM_FEATURES / row_blocks * lines; i += 32 * GM_WARPS) {
            int f = f0 + row_blocks * (i / lines) + (SPLIT ? row_block : 0);
            if (f < N) prefetch_l2(W + (size_t)f * K + k0 + 64 * (i % lines));
        }
    }
    pdl_wait();
    pdl_launch_dependents();
    bool fast = K % 8 == 0 && (uintptr_t)X % 16 == 0 && (uintptr_t)W % 16 == 0;
    uint64_t policy = l2_evict_first();
    float acc[NT][4], sum[NT][4];
    for (int j = 0; j < NT; j++)
        for (int i = 0; i < 4; i++) sum[j][i] = 0.0f;
    for (int s = s_first; s < s_end; s++) {
        gm_segment<NT, STAGES>(acc, ring, X, W, R, N, K, f0, row0, s * per_seg, min(steps, (s + 1) * per_seg), fast, policy);
        for (int j = 0; j < NT; j++)
            for (int i = 0; i < 4; i++) sum[j][i] += acc[j][i];
    }
    static_assert(sizeof(ring) >= 8 * NT * GM_FEATURES * sizeof(float), "the epilogue's scratch fits the ring");
    float *scratch = reinterpret_cast<float *>(ring);   // free once the segments are done
    if (SPLIT && S > 1) gm_finish_split<NT>(sum, R, N, K, S, f0, row0, out, partial, count, scratch);   // sum: the one segment's chain
    else gm_write<NT>(sum, R, N, K, f0, row0, out, scratch);
}

// The launch of one instantiation, spelled with literals so that the emulation's launch name is ptxas's (the speed
// model finds the kernel's registers and shared memory by it).
static_assert(gm_stages(1) == 8 && gm_stages(2) == 7 && gm_stages(4) == 6 && gm_stages(8) == 4, "GM_LAUNCH's literals");
#define GM_LAUNCH(NT, STAGES, SPLIT)                                                                                     \
    REPRISE_LAUNCH_PDL((gemm_mma_kernel<NT, STAGES, SPLIT>),                                                               \
                   dim3((N + GM_FEATURES - 1) / GM_FEATURES * (SPLIT ? (R + 8 * NT - 1) / (8 * NT) : 1),                 \
                        SPLIT ? S : (R + 8 * NT - 1) / (8 * NT)), dim3(32 * GM_WARPS),                                 \
                   0, s, X, W, R, N, K, S, out, ws.partial, ws.count)

cudaError_t launch_gemm_mma_segments(const bf16 *X, gemm_weight Wt, int R, int N, int K, int S, gemm_out out,
                                     gemm_workspace ws, cudaStream_t s) {
    if (R <= 0 || N <= 0 || K <= 0) return R == 0 ? cudaSuccess : cudaErrorInvalidValue;
    if (!gemm_out_valid(out, N)) return cudaErrorInvalidValue;
    if (Wt.type != GEMM_WEIGHT_BF16) return cudaErrorNotSupported;
    if (S < 1 || (R <= GEMM_SPLIT_ROWS && S > 1 && gemm_workspace_floats(N, K) < (size_t)S * GEMM_SPLIT_ROWS * N))
        return cudaErrorInvalidValue;   // more segments than the workspace holds partials for
    if (R >= GEMM_WGMMA_ROWS && ws.wgmma == GEMM_WGMMA_ON && gemm_wgmma_fits(X, Wt, K)) {   // the same rule on Hopper's warpgroup MMA
        if (out.epilogue != GEMM_ADD || !out.ssq) return launch_gemm_wgmma(X, Wt, R, N, K, S, out, 0, s);
        gemm_out add = gemm_add_to(out.p[0]);   // its epilogue keeps no statistics: row_stats makes the same bits
        cudaError_t e = launch_gemm_wgmma(X, Wt, R, N, K, S, add, 0, s);
        return e ? e : launch_row_stats(out.p[0], nullptr, R, N, out.h, out.ssq, s);
    }
    const bf16 *W = static_cast<const bf16 *>(Wt.data);
    if (R > GEMM_SPLIT_ROWS) return GM_LAUNCH(8, 4, false);
    if (S > 1 && (!ws.partial || !ws.count)) return cudaErrorInvalidValue;   // the split needs its workspace
    // 1-8 rows in one CTA of a tile; from 9, two row blocks of 1, 2 or 4 tiles (GEMM_SPLIT_ROW_BLOCKS)
    static_assert(GEMM_SPLIT_ROW_BLOCKS == 2 && GEMM_SPLIT_ROWS == 2 * 32, "two row blocks of at most 4 tiles");
    if (R <= 16) return GM_LAUNCH(1, 8, true);
    if (R <= 32) return GM_LAUNCH(2, 7, true);
    return GM_LAUNCH(4, 6, true);
}

cudaError_t launch_gemm_mma(const bf16 *X, gemm_weight W, int R, int N, int K, gemm_out out, gemm_workspace ws, cudaStream_t s) {
    return launch_gemm_mma_segments(X, W, R, N, K, gemm_k_segments(N, K), out, ws, s);
}
