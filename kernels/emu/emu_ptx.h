// The emulation's twins of kernels/ptx.h, at the PTX ISA's documented semantics:
// - mma_bf16_16816 and ldmatrix are warp-collective (all 32 lanes arrive, as .sync.aligned requires); each lane
//   leaves its registers in a per-warp buffer, and takes back exactly the elements the documented fragment layout
//   gives it, so a wrong fragment index computes a wrong product here as on a GPU. The hardware's order of the 16
//   products' sum is not documented: here each output sums its products in k order in FP32 (each product exact),
//   then adds C; results match a reference within rounding, not the GPU's bits;
// - cp.async reads its source at issue and writes shared memory only when a cp_async_wait completes its group, so a
//   kernel that reads before its wait sees the old contents, as it may on a GPU; misaligned addresses fault;
// - mbarriers keep their arrivals, expected bytes and phase in a table of the block, and a bulk tensor copy lands
//   (swizzled as its tensor map says) only when a thread waits on its barrier (below); a bulk copy out reads shared
//   memory at the wait that covers its group, through the async proxy's view, which ordinary stores reach only
//   through fence.proxy.async (emu_device.h, async_view).
// Included by kernels/ptx.h where nvcc does not compile it.
#ifndef REPRISE_EMU_PTX_H
#define REPRISE_EMU_PTX_H

#include <cstdint>
#include <cstring>
#include <utility>

namespace emu {
static inline float bf16_bits(uint32_t bits) { return __uint_as_float(bits << 16); }
}   // namespace emu

static inline void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    static thread_local uint32_t A[32][32][4], Bf[32][32][2];   // [warp][lane]: the block's lanes' registers
    int lane = emu::lane_index(), w = emu::warp_index();
    __syncwarp();
    emu::perf_quiet(true);   // the buffers are the emulation's, not the kernel's memory
    for (int i = 0; i < 4; i++) A[w][lane][i] = a[i];
    for (int i = 0; i < 2; i++) Bf[w][lane][i] = b[i];
    emu::perf_quiet(false);
    __syncwarp();
    emu::perf_quiet(true);
    int g = lane / 4, t = lane % 4;
    float out[4];
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        float s = 0;
        for (int k = 0; k < 16; k++) {
            // A (row, k): lane 4 (row % 8) + (k % 8) / 2, register (row >= 8) + 2 (k >= 8), half k % 2
            uint32_t ra = A[w][4 * (row % 8) + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)];
            // B (k, col): lane 4 col + (k % 8) / 2, register k >= 8, half k % 2
            uint32_t rb = Bf[w][4 * col + (k % 8) / 2][k >= 8];
            s += emu::bf16_bits(k % 2 ? ra >> 16 : ra & 0xffff) * emu::bf16_bits(k % 2 ? rb >> 16 : rb & 0xffff);
        }
        out[i] = s + c[i];
    }
    for (int i = 0; i < 4; i++) d[i] = out[i];
    emu::perf_quiet(false);
    if (lane == 0) emu::perf_tensor(2.0 * 16 * 8 * 16);
    __syncwarp();   // the buffers are reused by the warp's next mma
}

// ldmatrix .x1/.x2/.x4 (NUM matrices), without .trans.
template <int NUM> static inline void emu_ldmatrix(uint32_t *r, const void *smem_row) {
    static thread_local const unsigned char *row_of[32][32];   // [warp][lane]: the rows the lanes give
    int lane = emu::lane_index(), w = emu::warp_index();
    if (lane < 8 * NUM && reinterpret_cast<uintptr_t>(smem_row) % 16)
        emu::thread_fault("ldmatrix: row address %p is not 16-byte aligned", smem_row);
    __syncwarp();
    emu::perf_quiet(true);
    row_of[w][lane] = static_cast<const unsigned char *>(smem_row);
    emu::perf_quiet(false);
    __syncwarp();
    emu::perf_quiet(true);
    for (int i = 0; i < NUM; i++) {
        uint16_t e[2];
        memcpy(e, row_of[w][8 * i + lane / 4] + 4 * (lane % 4), 4);
        r[i] = e[0] | (uint32_t)e[1] << 16;
    }
    emu::perf_quiet(false);
    if (lane < 8 * NUM) emu::perf_access(smem_row, 16, false);   // what the hardware reads: each given row
    __syncwarp();   // the buffer is reused next
}
static inline void ldmatrix_x4(uint32_t r[4], const void *smem_row) { emu_ldmatrix<4>(r, smem_row); }
static inline void ldmatrix_x2(uint32_t r[2], const void *smem_row) { emu_ldmatrix<2>(r, smem_row); }

// prmt.b32 d, a, b, c (default mode): byte n of d is byte (c's nibble n & 7) of {b, a}, or, where the nibble's bit 3
// is set, that byte's sign bit replicated over 8 bits.
static inline uint32_t emu_prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint64_t both = (uint64_t)b << 32 | a;
    uint32_t d = 0;
    for (int n = 0; n < 4; n++) {
        unsigned nib = sel >> (4 * n) & 15, byte = (unsigned)(both >> (8 * (nib & 7))) & 0xff;
        if (nib & 8) byte = byte & 0x80 ? 0xff : 0;
        d |= byte << (8 * n);
    }
    return d;
}
// fma.rn.bf16x2 lane by lane: each product and sum in float (exact for these: a BF16 times a BF16 has 16 significant
// bits), rounded once to BF16 by the host's round-to-nearest-even (subnormals kept, as PTX's bf16 fma keeps them).
static inline uint32_t emu_fma_bf16x2(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d = 0;
    for (int h = 0; h < 2; h++) {
        float r = fmaf(emu::bf16_bits(a >> (16 * h) & 0xffff), emu::bf16_bits(b >> (16 * h) & 0xffff),
                       emu::bf16_bits(c >> (16 * h) & 0xffff));
        __nv_bfloat16 v = __float2bfloat16(r);
        uint16_t bits;
        memcpy(&bits, &v, 2);
        d |= (uint32_t)bits << (16 * h);
    }
    return d;
}
static inline void widen_e4m3x4(uint32_t codes, uint32_t m01, uint32_t m23, uint32_t out[2]) {
    uint32_t lo = (emu_prmt(codes, 0, E4M3_PAIR_LO) << 4) & E4M3_LANE_MASK, hi = (emu_prmt(codes, 0, E4M3_PAIR_HI) << 4) & E4M3_LANE_MASK;
    out[0] = emu_fma_bf16x2(lo, m01, BF16X2_MINUS_ZERO);
    out[1] = emu_fma_bf16x2(hi, m23, BF16X2_MINUS_ZERO);
}

static inline uint64_t l2_evict_first() { return 1; }   // a cache hint: nothing to emulate

static inline void cp_async_16(void *smem, const void *gmem, int src_bytes) {
    if (reinterpret_cast<uintptr_t>(smem) % 16 || reinterpret_cast<uintptr_t>(gmem) % 16)
        emu::thread_fault("cp.async: %p -> %p is not 16-byte aligned", gmem, smem);
    if (src_bytes < 0 || src_bytes > 16) emu::thread_fault("cp.async: src-size %d outside 0..16", src_bytes);
    emu::async_state &st = emu::async_copies();
    emu::async_copy c;
    c.dst = static_cast<unsigned char *>(smem), c.group = st.committed;
    emu::perf_quiet(true);
    for (int i = 0; i < 16; i++) c.data[i] = i < src_bytes ? static_cast<const unsigned char *>(gmem)[i] : 0;
    st.pending.push_back(c);
    emu::perf_quiet(false);
    if (src_bytes) emu::perf_async_load(gmem, (size_t)src_bytes);
    emu::perf_access(smem, 16, true);
}
static inline void cp_async_16_policy(void *smem, const void *gmem, uint64_t) { cp_async_16(smem, gmem, 16); }
static inline void cp_async_commit() { emu::async_copies().committed++; }
template <int N> static inline void cp_async_wait() {
    emu::async_state &st = emu::async_copies();
    emu::perf_async_wait((unsigned)st.pending.size());
    emu::perf_quiet(true);
    emu::land_if(st.pending, [&](const emu::async_copy &c) { return c.group < st.committed - N; },
                 [](const emu::async_copy &c) { memcpy(c.dst, c.data, 16); });   // complete: now visible
    emu::perf_quiet(false);
}


// --- mbarriers and the bulk tensor copy engine ---
// A barrier's 8 bytes hold a tag and its index in the block's table (emu::block_async); waiting on anything else
// faults. Copies land, and complete their bytes, when a thread waits on their barrier: a thread that reads the box
// without waiting sees what shared memory held before. A wait that cannot complete (arrivals or bytes that never come)
// faults with the barrier's counts instead of hanging.
namespace emu {
const uint64_t MBAR_TAG = 0x4d424152ull << 32;   // "MBAR"
static inline mbarrier_state &mbar_of(uint64_t *bar, const char *op) {
    if (reinterpret_cast<uintptr_t>(bar) % 8) thread_fault("%s: mbarrier %p is not 8-byte aligned", op, (void *)bar);
    perf_quiet(true);
    uint64_t v = *bar;
    perf_quiet(false);
    block_async_state &st = block_async();
    if ((v & ~0xffffffffull) != MBAR_TAG || (v & 0xffffffffull) >= st.bars.size())
        thread_fault("%s: %p is not an initialised mbarrier (mbar_init)", op, (void *)bar);
    return st.bars[v & 0xffffffffull];
}
static inline void mbar_complete_if_due(mbarrier_state &b) {
    if (b.pending == 0 && b.tx == 0) b.phase++, b.pending = b.expected;
}
static inline void mbar_arrival(uint64_t *bar, long bytes, const char *op) {
    mbarrier_state &b = mbar_of(bar, op);
    if (b.pending == 0) thread_fault("%s: more arrivals than the barrier's %u", op, b.expected);
    b.tx += bytes;
    b.pending--;
    mbar_complete_if_due(b);
}
}   // namespace emu

static inline void mbar_init(uint64_t *bar, unsigned count) {
    if (reinterpret_cast<uintptr_t>(bar) % 8) emu::thread_fault("mbarrier.init: %p is not 8-byte aligned", (void *)bar);
    if (count == 0 || count >= (1u << 20)) emu::thread_fault("mbarrier.init: count %u outside 1 .. 2^20 - 1", count);
    emu::block_async_state &st = emu::block_async();
    st.bars.push_back(emu::mbarrier_state{count, count, 0, 0, false});
    emu::perf_quiet(true);
    *bar = emu::MBAR_TAG | (uint64_t)(st.bars.size() - 1);
    emu::perf_quiet(false);
}
static inline void mbar_init_fence() {
    for (emu::mbarrier_state &b : emu::block_async().bars) b.fenced = true;
}
static inline void mbar_arrive_expect_tx(uint64_t *bar, unsigned bytes) { emu::mbar_arrival(bar, bytes, "mbarrier.arrive.expect_tx"); }
static inline void mbar_arrive(uint64_t *bar) { emu::mbar_arrival(bar, 0, "mbarrier.arrive"); }
static inline void mbar_wait(uint64_t *bar, unsigned parity) {
    {   // a producer's depth: the bulk copies it issued that are still in flight as it waits
        unsigned mine = 0;
        for (const emu::bulk_copy &c : emu::block_async().copies) mine += c.thread == emu::current_thread();
        if (mine) emu::perf_async_wait(mine);
    }
    for (long spins = 0;; spins++) {
        emu::block_async_state &st = emu::block_async();
        emu::mbarrier_state &b = emu::mbar_of(bar, "mbarrier.try_wait");
        emu::perf_quiet(true);   // the copies on this barrier land now
        emu::land_if(st.copies, [&](const emu::bulk_copy &c) { return c.bar == bar; }, [&](const emu::bulk_copy &c) {
            emu::async_proxy_write(c.dst, c.data.data(), c.data.size());
            b.tx -= (long)c.data.size();
        });
        emu::perf_quiet(false);
        emu::mbar_complete_if_due(b);
        if ((b.phase & 1) != (parity & 1)) return;
        if (spins > 10000)
            emu::thread_fault("mbarrier wait (parity %u) never completes: %u of %u arrivals missing, %ld bytes still "
                              "expected (expect_tx announced more than the copies bring, or a thread never arrives)",
                              parity & 1, b.pending, b.expected, b.tx);
        emu::yield_thread();
    }
}
static inline void fence_proxy_async() { emu::async_proxy_fence(); }
static inline void tma_load_2d(void *dst, const tma_map *map, int col, int row, uint64_t *bar) {
    const tma_map &m = *map;
    uintptr_t d = reinterpret_cast<uintptr_t>(dst);
    if (d % tma_swizzle_repeat(m.swizzle))
        emu::thread_fault("cp.async.bulk.tensor: shared address %p is not a multiple of %u bytes (%s)", dst,
                          tma_swizzle_repeat(m.swizzle), m.swizzle ? "the swizzle pattern's repeat" : "128-byte alignment");
    emu::mbarrier_state &b = emu::mbar_of(bar, "cp.async.bulk.tensor");
    if (!b.fenced) emu::thread_fault("cp.async.bulk.tensor: its mbarrier was initialised without mbar_init_fence (the copy engine may not see it)");
    size_t row_box = (size_t)m.box[0] * m.elem_bytes;
    emu::bulk_copy c;
    c.dst = static_cast<unsigned char *>(dst), c.bar = bar, c.thread = emu::current_thread();
    c.data.assign(row_box * m.box[1], 0);
    emu::perf_bulk(true);   // the box's rows are one request of the copy engine
    for (unsigned r = 0; r < m.box[1]; r++) {
        long gr = (long)row + r;
        if (gr < 0 || gr >= (long)m.dim[1]) continue;   // zeros
        const unsigned char *src = m.base + (size_t)gr * m.row_bytes;
        long first = -1, last = -1;
        for (unsigned e = 0; e < m.box[0]; e++) {
            long gc = (long)col + e;
            if (gc < 0 || gc >= (long)m.dim[0]) continue;
            if (first < 0) first = gc;
            last = gc;
            for (int k = 0; k < m.elem_bytes; k++)
                c.data[tma_swizzled_offset(r * row_box + (size_t)e * m.elem_bytes + k, m.swizzle)] = src[(size_t)gc * m.elem_bytes + k];
        }
        if (first >= 0) emu::perf_async_load(src + (size_t)first * m.elem_bytes, (size_t)(last - first + 1) * m.elem_bytes);
    }
    emu::perf_bulk(false);
    emu::block_async().copies.push_back(std::move(c));
}
static inline void tma_store_2d(const tma_map *map, int col, int row, const void *src) {
    if (reinterpret_cast<uintptr_t>(src) % tma_swizzle_repeat(map->swizzle))
        emu::thread_fault("cp.async.bulk.tensor (store): shared address %p is not a multiple of %u bytes", src,
                          tma_swizzle_repeat(map->swizzle));
    emu::block_async().stores.push_back(emu::bulk_store{*map, col, row, emu::async_copies().bulk_committed,
                                                        emu::current_thread(), static_cast<const unsigned char *>(src)});
}
static inline void bulk_commit() { emu::async_copies().bulk_committed++; }
template <int N> static inline void bulk_wait_read() { emu::land_bulk_stores(emu::async_copies().bulk_committed - N); }

// wgmma: each thread computes its own share of D from shared memory (no registers cross lanes: A and B are both
// read through descriptors), at the wait that covers the op's group, so that D read before its wait holds what it
// held, and operands written by ordinary stores after the last proxy fence are read as they were.
static inline uint64_t wgmma_desc(const void *smem, unsigned lbo, unsigned sbo, tma_swizzle sw) {
    return emu::wgmma_descriptor(smem, lbo, sbo, sw);
}
static inline void wgmma_fence() {}
static inline void wgmma_commit() { emu::async_copies().wgmma_committed++; }
template <int N> static inline void wgmma_wait() {
    emu::async_state &st = emu::async_copies();
    emu::land_if(st.wgmma, [&](const emu::wgmma_op &op) { return op.group < st.wgmma_committed - N; }, emu::run_wgmma);
    // warpgroup-wide, as on a GPU: past the wait, the whole warpgroup's operations have read their shared memory (a
    // thread that releases a stage then speaks for all 128)
    emu::warpgroup_sync("wgmma.wait_group");
}
namespace emu {
template <int N> static inline void wgmma_issue(float *d, uint64_t desc_a, uint64_t desc_b, int accumulate) {
    if ((blockDim.x * blockDim.y * blockDim.z) % 128)
        thread_fault("wgmma: the block's %u threads are not whole warpgroups of 128", blockDim.x * blockDim.y * blockDim.z);
    async_state &st = async_copies();
    st.wgmma.push_back(wgmma_op{d, N, desc_a, desc_b, accumulate != 0, st.wgmma_committed});
    if (current_thread() % 128 == 0) perf_tensor(2.0 * 64 * N * 16);
}
}   // namespace emu
static inline void wgmma_bf16_m64n8k16(float d[4], uint64_t desc_a, uint64_t desc_b, int accumulate) {
    emu::wgmma_issue<8>(d, desc_a, desc_b, accumulate);
}
static inline void wgmma_bf16_m64n64k16(float d[32], uint64_t desc_a, uint64_t desc_b, int accumulate) {
    emu::wgmma_issue<64>(d, desc_a, desc_b, accumulate);
}
static inline void wgmma_bf16_m64n128k16(float d[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
    emu::wgmma_issue<128>(d, desc_a, desc_b, accumulate);
}

#endif
