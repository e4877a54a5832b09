// The WMMA fragment API (nvcuda::wmma) on the emulation, at its documented semantics: fragments are warp-wide
// tiles whose element-to-thread mapping is unspecified, so each emulated thread holds the whole tile; every call is
// a warp-collective operation, so each one begins with a __syncwarp-style barrier of all 32 lanes (a divergent
// call is reported like a divergent barrier). mma_sync multiplies BF16 or FP16 tiles into an FP32 accumulator,
// summing over k in order, each product exact in float. Only the 16x16x16 shape reprise uses is provided.
#ifndef REPRISE_EMU_WMMA_H
#define REPRISE_EMU_WMMA_H

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulation provides the 16x16x16 shape");
    T x[256];   // the whole tile, row-major: (M, K) for matrix_a, (K, N) for matrix_b, (M, N) for the accumulator
    enum { num_elements = 256 };
};

static inline float wmma_float(__nv_bfloat16 v) { return __bfloat162float(v); }
static inline float wmma_float(__half v) { return __half2float(v); }

// What the hardware reads or writes of a tile for this lane, for the perf build's counters (each emulated lane moves
// the whole tile): the tile's 16 lines of 16 elements in memory (rows, or columns when col_major), two lanes a line.
template <typename T> static inline void wmma_lane_share(const T *p, unsigned ldm, bool write) {
    int lane = emu::lane_index();
    emu::perf_access(p + (size_t)(lane / 2) * ldm + (lane % 2) * 8, 8 * sizeof(T), write);
}

template <typename Use, typename T, typename Layout>
static inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout> &f, const T *p, unsigned ldm) {
    __syncwarp();
    emu::perf_quiet(true);
    // element (r, c) of the tile, r the first index of its row-major storage
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.x[r * 16 + c] = std::is_same<Layout, col_major>::value ? p[c * ldm + r] : p[r * ldm + c];
    emu::perf_quiet(false);
    wmma_lane_share(p, ldm, false);
}

template <typename T> static inline void fill_fragment(fragment<accumulator, 16, 16, 16, T> &f, T v) {
    __syncwarp();
    for (int i = 0; i < 256; i++) f.x[i] = v;
}

template <typename T, typename LA, typename LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, T, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, T, LB> &b, const fragment<accumulator, 16, 16, 16, float> &c) {
    // every lane holds the same tiles: lane 0 multiplies, the warp's lanes take its product from a per-warp buffer
    // (the emulation runs one block at a time per OS thread, so a thread-local buffer per warp is private to it)
    static thread_local float product[32][256];
    float *out = product[emu::warp_index()];
    __syncwarp();
    emu::perf_quiet(true);   // the buffer is the emulation's, not the kernel's shared memory
    if (emu::lane_index() == 0) emu::perf_tensor(2.0 * 16 * 16 * 16);
    if (emu::lane_index() == 0)
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 16; j++) {
                float s = c.x[i * 16 + j];
                for (int k = 0; k < 16; k++) s += wmma_float(a.x[i * 16 + k]) * wmma_float(b.x[k * 16 + j]);
                out[i * 16 + j] = s;
            }
    __syncwarp();
    for (int i = 0; i < 256; i++) d.x[i] = out[i];
    emu::perf_quiet(false);
    __syncwarp();   // the buffer is reused by the warp's next mma_sync
}

static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t layout) {
    __syncwarp();
    emu::perf_quiet(true);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) (layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]) = f.x[r * 16 + c];
    emu::perf_quiet(false);
    wmma_lane_share(p, ldm, true);
}

}   // namespace wmma
}   // namespace nvcuda

#endif
