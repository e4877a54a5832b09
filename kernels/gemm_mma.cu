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
//
// FP8 weights (W8A16, GEMM_WEIGHT_E4M3): the stages hold the codes (half the bytes of BF16, so more stages in the
// same shared memory), stored in fragment order (kernels.h): each lane reads its A fragment's 4 codes of a row with
// one 32-bit load and widens them in registers (widen_e4m3x4: exact, the column multiplier - the RMSNorm weight the
// BF16 path folds into its weights - folded in with one rounding, as BF16's fold rounds), so shared memory carries
// each code once in and once out, as BF16's elements; the same MMA, the same k-steps in the same order: the rule above
// unchanged. The row's scale multiplies each output's sum in the epilogue.
//
// FP8 with scales along a row (gemm_weight.group_k: a scale per output feature and group of inputs): within a
// segment, each group's k-steps make their own chain (starting at zero), and the segment's term is the groups' chains
// times their scales, summed in order by fused multiply-adds (the CPU's arithmetic: matmul.c, scaled_groups); the
// segments then add up as above. A segment boundary inside a group cuts it in two chains, each times its scale: what
// a row's number is still depends on the weight's shape and groups alone. The scales of a group are loaded as its
// first k-step starts, used after its last. Registers: 4 more a tile, so prefill takes 4 tiles a CTA, not 8.
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
// FP8 stages are 2 KB of codes and X's rows: deeper rings in the same 46 KB, so that as many bytes of weights or more
// are in flight (15 x 2 KB at 1-8 rows against BF16's 7 x 4 KB).
constexpr int gm_stages_e4m3(int NT) { return NT <= 1 ? 16 : NT == 2 ? 13 : NT == 4 ? 10 : 6; }
// The kernel's weight variants: GEMM_WEIGHT_BF16, GEMM_WEIGHT_E4M3 (a scale a row, in the epilogue) and FP8 with
// its scales in groups along K (the same codes and stages).
constexpr int GM_E4M3_GROUPS = 2;
__host__ __device__ constexpr int gm_storage(int WEIGHT) { return WEIGHT == GEMM_WEIGHT_BF16 ? GEMM_WEIGHT_BF16 : GEMM_WEIGHT_E4M3; }
// 4 CTAs an SM (their shared memory allows no more): registers up to 128 a thread. Without it ptxas sizes FP8's
// 4-tile kernel (45 KB of shared memory) for 5 CTAs, 96 registers, and spills.
#define GM_MIN_CTAS 4
#define GM_E4M3_ROW_WORDS 8   // a stage's row of 32 codes; its two 16-byte halves swapped in rows 4-7 of every 8
                              // (gm_e4m3_swizzle), so that a quad's 32-bit reads of 8 rows hit 32 different banks
// Where word w of a stage's row `row` of codes sits.
__device__ static inline int gm_e4m3_swizzle(int row, int w) { return w ^ (4 * ((row >> 2) & 1)); }

// How a weight type reaches the tensor cores (kernels.h, gemm_weight; WEIGHT is a gemm_weight_type, a literal in
// the kernel's name). BF16: a stage's weight tile holds the elements as stored (64 rows of 32 k, 16-byte copies of 8
// elements, rows padded to 80 bytes) and the MMA's A fragment is read from it by ldmatrix as it is. E4M3: 64 rows of
// 32 codes in fragment order (two blocks of 16), widened as the fragments are read.
template <int WEIGHT> struct gm_weight_traits;
template <> struct gm_weight_traits<GEMM_WEIGHT_BF16> {
    using type = bf16;                  // an element in global memory
    static constexpr int per_copy = 8;  // elements of one 16-byte copy
};
template <> struct gm_weight_traits<GEMM_WEIGHT_E4M3> {
    using type = uint8_t;
    static constexpr int per_copy = 16;
};
template <> struct gm_weight_traits<GM_E4M3_GROUPS> : gm_weight_traits<GEMM_WEIGHT_E4M3> {};

// FP8's scales along K (GM_E4M3_GROUPS): row_scale (N, count), groups of k inputs, the first boundary at k - shift.
struct gm_groups {
    const float *scale;
    int k, shift, count;
    __device__ bool starts(int ks) const { return (16 * ks + shift) % k == 0; }   // k-step ks opens a group
    __device__ int of(int ks) const { return (16 * ks + shift) / k; }
};

// One stage: the CTA's weight rows and up to 8 * NT rows of X, for 32 k.
template <int NT, int WEIGHT> struct gm_stage;
template <int NT> struct gm_stage<NT, GEMM_WEIGHT_BF16> {
    bf16 w[GM_FEATURES][GM_ROW];
    bf16 x[8 * NT][GM_ROW];
};
template <int NT> struct gm_stage<NT, GEMM_WEIGHT_E4M3> {
    uint32_t w[GM_FEATURES][GM_E4M3_ROW_WORDS];   // 4 codes a word
    bf16 x[8 * NT][GM_ROW];
    uint32_t mult[16];                            // the column multipliers of the stage's two k-steps (when given)
};

// Issues the copies of one stage: k in [k0, k0 + 32) clipped to kend (the segment's end; zeros past it), weight rows
// f0.., X rows row0.., zeros past N, R and K.
// W's rows are ldw elements apart (BF16: K; E4M3: gemm_e4m3_row_codes(K), so a chunk of codes is whole or past the
// segment). fast_w, fast_x: 16-byte copies of W, of X (else element by element).
template <int NT, int WEIGHT>
__device__ static void gm_load_stage(gm_stage<NT, gm_storage(WEIGHT)> &st, const bf16 *X, const typename gm_weight_traits<WEIGHT>::type *W,
                                     const uint32_t *col_mult, int ldw, int R, int N, int K, int f0, int row0, int k0, int kend,
                                     bool fast_w, bool fast_x, uint64_t policy) {
    using WT = typename gm_weight_traits<WEIGHT>::type;
    constexpr int E = gm_weight_traits<WEIGHT>::per_copy, per_w = GM_STAGE_K / E;   // 16-byte chunks of a row's 32 k
    constexpr int per_x = GM_STAGE_K / 8;
    const int chunks_w = GM_FEATURES * per_w, chunks = chunks_w + 8 * NT * per_x;
    const int kend_w = gm_storage(WEIGHT) == GEMM_WEIGHT_E4M3 ? min(kend + 15, ldw) / 16 * 16 : kend;   // (codes past K are zeros)
    if constexpr (gm_storage(WEIGHT) == GEMM_WEIGHT_E4M3)   // FP8's column multipliers, with the codes: 4 copies of 16 bytes
        if (col_mult && threadIdx.x >= 32 * GM_WARPS - 4) {   // (the threads with the fewest chunks below)
            int c = threadIdx.x - (32 * GM_WARPS - 4), step = k0 / 16 + c / 2;
            bool valid = 16 * step < kend_w;
            cp_async_16(&st.mult[4 * c], valid ? col_mult + 8 * (size_t)step + 4 * (c % 2) : col_mult, valid ? 16 : 0);
        }
    for (int c = threadIdx.x; c < chunks; c += 32 * GM_WARPS) {
        if (c < chunks_w) {
            int row = c / per_w, kk = E * (c % per_w), k = k0 + kk, src_row = f0 + row;
            int valid = src_row < N ? min(E, max(0, kend_w - k)) : 0;   // elements of this chunk inside the segment
            int at = kk * (int)sizeof(WT);   // the chunk's bytes in the tile's row (FP8's halves swizzled)
            if (gm_storage(WEIGHT) == GEMM_WEIGHT_E4M3) at = 4 * gm_e4m3_swizzle(row, at / 4);
            WT *dst = reinterpret_cast<WT *>(reinterpret_cast<unsigned char *>(&st.w[row][0]) + at);
            if (fast_w) {
                const WT *src = valid ? W + (size_t)src_row * ldw + k : W;
                if (valid == E) cp_async_16_policy(dst, src, policy);
                else cp_async_16(dst, src, (int)sizeof(WT) * valid);
            } else
                for (int e = 0; e < E; e++) dst[e] = e < valid ? W[(size_t)src_row * ldw + k + e] : WT(0);
        } else {
            int row = (c - chunks_w) / per_x, kk = 8 * ((c - chunks_w) % per_x), k = k0 + kk, src_row = row0 + row;
            int valid = src_row < R ? min(8, max(0, kend - k)) : 0;
            bf16 *dst = &st.x[row][kk];
            if (fast_x) cp_async_16(dst, valid ? X + (size_t)src_row * K + k : X, 2 * valid);
            else
                for (int e = 0; e < 8; e++) dst[e] = e < valid ? X[(size_t)src_row * K + k + e] : __float2bfloat16(0.0f);
        }
    }
}

// The A fragment of block h of the stage for this lane: BF16 through ldmatrix; E4M3 from the lane's 32-bit words of
// rows g and g + 8 (fragment order), widened with the block's column multipliers (from the stage, when there are).
template <int NT>
__device__ static inline void gm_a_fragment(uint32_t a[4], const gm_stage<NT, GEMM_WEIGHT_BF16> &st, bool, int h) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    ldmatrix_x4(a, &st.w[16 * warp + lane % 16][16 * h + 8 * (lane / 16)]);
}
template <int NT>
__device__ static inline void gm_a_fragment(uint32_t a[4], const gm_stage<NT, GEMM_WEIGHT_E4M3> &st, bool mults, int h) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    uint32_t m01 = BF16X2_2POW120, m23 = BF16X2_2POW120, lo[2], hi[2];
    if (mults) m01 = st.mult[8 * h + 2 * t], m23 = st.mult[8 * h + 2 * t + 1];
    int r = 16 * warp + g;
    widen_e4m3x4(st.w[r][gm_e4m3_swizzle(r, 4 * h + t)], m01, m23, lo);
    widen_e4m3x4(st.w[r + 8][gm_e4m3_swizzle(r + 8, 4 * h + t)], m01, m23, hi);
    a[0] = lo[0], a[1] = hi[0], a[2] = lo[1], a[3] = hi[1];
}

// This lane's two features' scales for group `group` (features f and f + 8 of the warp; 0 past N).
__device__ static inline void gm_group_scales(float sc[2], const gm_groups &gs, int N, int f0, int group) {
    int n = f0 + 16 * (threadIdx.x / 32) + (threadIdx.x % 32) / 4;
    sc[0] = n < N ? __ldg(&gs.scale[(size_t)n * gs.count + group]) : 0.0f;
    sc[1] = n + 8 < N ? __ldg(&gs.scale[(size_t)(n + 8) * gs.count + group]) : 0.0f;
}

// One segment's chain for this warp's 16 features and the CTA's 8 * NT rows: acc = sum over k-steps [ks0, ks1) in
// order, starting from zero. GM_E4M3_GROUPS: acc = the sum, in order, of each group's chain (from zero) times its
// scale (the first a product, the next fused multiply-adds).
template <int NT, int STAGES, int WEIGHT>
__device__ static void gm_segment(float acc[NT][4], gm_stage<NT, gm_storage(WEIGHT)> *ring, const bf16 *X,
                                  const typename gm_weight_traits<WEIGHT>::type *W, const uint32_t *col_mult, const gm_groups &gs,
                                  int ldw, int R, int N, int K, int f0, int row0, int ks0, int ks1, bool fast_w, bool fast_x,
                                  uint64_t policy) {
    constexpr bool grouped = WEIGHT == GM_E4M3_GROUPS;
    int lane = threadIdx.x % 32;
    float chain[NT][4], sc[2] = {0.0f, 0.0f};   // grouped: the open group's chain and its scales
    bool first = true;
    for (int j = 0; j < NT; j++)
        for (int i = 0; i < 4; i++) acc[j][i] = chain[j][i] = 0.0f;
    if constexpr (grouped)
        if (ks0 < ks1) gm_group_scales(sc, gs, N, f0, gs.of(ks0));
    int kend = min(16 * ks1, K), stages = (ks1 - ks0 + 1) / 2;
    for (int s = 0; s < STAGES - 1; s++) {   // the ring's first stages in flight
        if (s < stages)
            gm_load_stage<NT, WEIGHT>(ring[s], X, W, col_mult, ldw, R, N, K, f0, row0, 16 * (ks0 + 2 * s), kend, fast_w, fast_x,
                                      policy);
        cp_async_commit();
    }
    for (int s = 0; s < stages; s++) {
        cp_async_wait<STAGES - 2>();   // stage s has arrived (for this thread's copies)...
        __syncthreads();               // ...and everyone's; and stage s - 1 is no longer read: refill it
        int next = s + STAGES - 1;
        if (next < stages)
            gm_load_stage<NT, WEIGHT>(ring[next % STAGES], X, W, col_mult, ldw, R, N, K, f0, row0, 16 * (ks0 + 2 * next), kend,
                                      fast_w, fast_x, policy);
        cp_async_commit();
        gm_stage<NT, gm_storage(WEIGHT)> &st = ring[s % STAGES];
        for (int h = 0; h < 2 && ks0 + 2 * s + h < ks1; h++) {
            uint32_t a[4];
            gm_a_fragment<NT>(a, st, col_mult != nullptr, h);
REPRISE_UNROLL
            for (int j = 0; j < NT; j++) {
                uint32_t b[2];
                ldmatrix_x2(b, &st.x[8 * j + lane % 8][16 * h + 8 * ((lane / 8) % 2)]);
                if constexpr (grouped) mma_bf16_16816(chain[j], a, b, chain[j]);
                else mma_bf16_16816(acc[j], a, b, acc[j]);
            }
            if constexpr (grouped) {
                int ks = ks0 + 2 * s + h + 1;   // the next k-step
                if (ks == ks1 || gs.starts(ks)) {   // the group's chain ends here: times its scale, into acc
REPRISE_UNROLL
                    for (int j = 0; j < NT; j++)
REPRISE_UNROLL
                        for (int i = 0; i < 4; i++) {
                            acc[j][i] = first ? chain[j][i] * sc[i / 2] : fmaf(chain[j][i], sc[i / 2], acc[j][i]);
                            chain[j][i] = 0.0f;
                        }
                    first = false;
                    if (ks < ks1) gm_group_scales(sc, gs, N, f0, gs.of(ks));
                }
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
                                const float *row_scale, float *scratch) {
    if (row_scale)   // FP8: each output's sum times its weight row's scale
        GM_FOR_EACH_ELEMENT((void)r; if (n < N) tot[j][i] *= __ldg(&row_scale[n]);)
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
                                       const float *row_scale, float *partial, unsigned *count, float *scratch) {
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
    gm_write<NT>(tot, R, N, K, f0, row0, out, row_scale, scratch);
    if (threadIdx.x == 0) count[blockIdx.x] = 0;   // ready for the next launch
}

template <int NT, int STAGES, bool SPLIT, int WEIGHT>
__global__ void __launch_bounds__(32 * GM_WARPS, GM_MIN_CTAS) gemm_mma_kernel(const bf16 *X, const void *W_data, const float *row_scale,
                                                                  const uint32_t *col_mult, int group_k, int group_shift, int R,
                                                                  int N, int K, int S, gemm_out out, float *partial,
                                                                  unsigned *count) {
    using WT = typename gm_weight_traits<WEIGHT>::type;
    const WT *W = static_cast<const WT *>(W_data);
    const int ldw = gm_storage(WEIGHT) == GEMM_WEIGHT_E4M3 ? gemm_e4m3_row_codes(K) : K;   // W's row pitch, in elements
    __shared__ __align__(128) gm_stage<NT, gm_storage(WEIGHT)> ring[STAGES];
    int row_blocks = SPLIT ? (R + 8 * NT - 1) / (8 * NT) : 1, row_block = SPLIT ? blockIdx.x % row_blocks : blockIdx.y;
    int f0 = blockIdx.x / row_blocks * GM_FEATURES, row0 = row_block * 8 * NT;
    int steps = (K + 15) / 16, per_seg = (steps + S - 1) / S;
    int s_first = SPLIT ? blockIdx.y : 0, s_end = SPLIT ? blockIdx.y + 1 : S;
    // Launched early (REPRISE_LAUNCH_PDL): the weights no kernel writes head for L2 while the previous kernel
    // finishes - this CTA's rows, its segments' k range, a 128-byte line a prefetch - then nothing else of global
    // memory before that kernel is done.
    constexpr int per_line = 128 / sizeof(WT);   // elements of a 128-byte line
    if (ldw % per_line == 0) {   // a feature block's row blocks share its weights: each prefetches every row_blocks-th row
        int k0 = s_first * per_seg * 16, k1 = min(ldw, s_end * per_seg * 16), lines = (k1 - k0) / per_line;
        for (int i = threadIdx.x; i < GM_FEATURES / row_blocks * lines; i += 32 * GM_WARPS) {
            int f = f0 + row_blocks * (i / lines) + (SPLIT ? row_block : 0);
            if (f < N) prefetch_l2(W + (size_t)f * ldw + k0 + per_line * (i % lines));
        }
    }
    pdl_wait();
    pdl_launch_dependents();
    bool fast_x = K % 8 == 0 && (uintptr_t)X % 16 == 0;
    bool fast_w = ldw % gm_weight_traits<WEIGHT>::per_copy == 0 && (uintptr_t)W % 16 == 0;
    uint64_t policy = l2_evict_first();
    gm_groups gs{row_scale, max(group_k, 16), group_shift, gemm_e4m3_groups(K, group_k, group_shift)};
    if (WEIGHT == GM_E4M3_GROUPS) row_scale = nullptr;   // the scales are in the segments' sums, not the epilogue's
    float acc[NT][4], sum[NT][4];
    for (int j = 0; j < NT; j++)
        for (int i = 0; i < 4; i++) sum[j][i] = 0.0f;
    for (int s = s_first; s < s_end; s++) {
        gm_segment<NT, STAGES, WEIGHT>(acc, ring, X, W, col_mult, gs, ldw, R, N, K, f0, row0, s * per_seg,
                                       min(steps, (s + 1) * per_seg), fast_w, fast_x, policy);
        for (int j = 0; j < NT; j++)
            for (int i = 0; i < 4; i++) sum[j][i] += acc[j][i];
    }
    static_assert(sizeof(ring) >= 8 * NT * GM_FEATURES * sizeof(float), "the epilogue's scratch fits the ring");
    float *scratch = reinterpret_cast<float *>(ring);   // free once the segments are done
    if (SPLIT && S > 1) gm_finish_split<NT>(sum, R, N, K, S, f0, row0, out, row_scale, partial, count, scratch);   // sum: the one segment's chain
    else gm_write<NT>(sum, R, N, K, f0, row0, out, row_scale, scratch);
}

// The launch of one instantiation, spelled with literals so that the emulation's launch name is ptxas's (the speed
// model finds the kernel's registers and shared memory by it).
static_assert(gm_stages(1) == 8 && gm_stages(2) == 7 && gm_stages(4) == 6 && gm_stages(8) == 4, "GM_LAUNCH's literals");
static_assert(gm_stages_e4m3(1) == 16 && gm_stages_e4m3(2) == 13 && gm_stages_e4m3(4) == 10 && gm_stages_e4m3(8) == 6,
              "GM_LAUNCH's literals");
static_assert(GEMM_WEIGHT_BF16 == 0 && GEMM_WEIGHT_E4M3 == 1 && GM_E4M3_GROUPS == 2, "GM_LAUNCH's literals");
#define GM_LAUNCH(NT, STAGES, SPLIT, WEIGHT)                                                                             \
    REPRISE_LAUNCH_PDL((gemm_mma_kernel<NT, STAGES, SPLIT, WEIGHT>),                                                       \
                   dim3((N + GM_FEATURES - 1) / GM_FEATURES * (SPLIT ? (R + 8 * NT - 1) / (8 * NT) : 1),                 \
                        SPLIT ? S : (R + 8 * NT - 1) / (8 * NT)), dim3(32 * GM_WARPS),                                 \
                   0, s, X, Wt.data, Wt.row_scale, Wt.col_mult, Wt.group_k, Wt.group_shift, R, N, K, S, out, ws.partial, ws.count)

cudaError_t launch_gemm_mma_segments(const bf16 *X, gemm_weight Wt, int R, int N, int K, int S, gemm_out out,
                                     gemm_workspace ws, cudaStream_t s) {
    if (R <= 0 || N <= 0 || K <= 0) return R == 0 ? cudaSuccess : cudaErrorInvalidValue;
    if (!gemm_out_valid(out, N)) return cudaErrorInvalidValue;
    if (Wt.type != GEMM_WEIGHT_BF16 && Wt.type != GEMM_WEIGHT_E4M3) return cudaErrorNotSupported;
    if (Wt.type == GEMM_WEIGHT_E4M3 && !Wt.row_scale) return cudaErrorInvalidValue;   // FP8 needs its scales
    if (S < 1 || (R <= GEMM_SPLIT_ROWS && S > 1 && gemm_workspace_floats(N, K) < (size_t)S * GEMM_SPLIT_ROWS * N))
        return cudaErrorInvalidValue;   // more segments than the workspace holds partials for
    if (R >= GEMM_WGMMA_ROWS && ws.wgmma == GEMM_WGMMA_ON && gemm_wgmma_fits(X, Wt, K)) {   // (BF16 alone)   // the same rule on Hopper's warpgroup MMA
        if (out.epilogue != GEMM_ADD || !out.ssq) return launch_gemm_wgmma(X, Wt, R, N, K, S, out, 0, s);
        gemm_out add = gemm_add_to(out.p[0]);   // its epilogue keeps no statistics: row_stats makes the same bits
        cudaError_t e = launch_gemm_wgmma(X, Wt, R, N, K, S, add, 0, s);
        return e ? e : launch_row_stats(out.p[0], nullptr, R, N, out.h, out.ssq, s);
    }
    bool e4m3 = Wt.type == GEMM_WEIGHT_E4M3, groups = e4m3 && Wt.group_k > 0;
    if (groups && (Wt.group_k % 16 || Wt.group_shift < 0 || Wt.group_shift >= Wt.group_k || Wt.group_shift % 16))
        return cudaErrorInvalidValue;   // groups' boundaries fall between k-steps
    if (groups) {   // (4 tiles at most: the groups' chains take registers)
        if (R > GEMM_SPLIT_ROWS) return GM_LAUNCH(4, 10, false, 2);
        if (S > 1 && (!ws.partial || !ws.count)) return cudaErrorInvalidValue;
        return R <= 16 ? GM_LAUNCH(1, 16, true, 2) : R <= 32 ? GM_LAUNCH(2, 13, true, 2) : GM_LAUNCH(4, 10, true, 2);
    }
    if (R > GEMM_SPLIT_ROWS) return e4m3 ? GM_LAUNCH(8, 6, false, 1) : GM_LAUNCH(8, 4, false, 0);
    if (S > 1 && (!ws.partial || !ws.count)) return cudaErrorInvalidValue;   // the split needs its workspace
    // 1-8 rows in one CTA of a tile; from 9, two row blocks of 1, 2 or 4 tiles (GEMM_SPLIT_ROW_BLOCKS)
    static_assert(GEMM_SPLIT_ROW_BLOCKS == 2 && GEMM_SPLIT_ROWS == 2 * 32, "two row blocks of at most 4 tiles");
    if (R <= 16) return e4m3 ? GM_LAUNCH(1, 16, true, 1) : GM_LAUNCH(1, 8, true, 0);
    if (R <= 32) return e4m3 ? GM_LAUNCH(2, 13, true, 1) : GM_LAUNCH(2, 7, true, 0);
    return e4m3 ? GM_LAUNCH(4, 10, true, 1) : GM_LAUNCH(4, 6, true, 0);
}

cudaError_t launch_gemm_mma(const bf16 *X, gemm_weight W, int R, int N, int K, gemm_out out, gemm_workspace ws, cudaStream_t s) {
    return launch_gemm_mma_segments(X, W, R, N, K, gemm_k_segments(N, K), out, ws, s);
}
