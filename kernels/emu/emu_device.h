// CPU emulation of the CUDA device side, for kernel sources compiled by the host C++ compiler (kernels/README.md).
//
// Each CUDA thread runs as a fiber; the threads of a block share one OS thread, so `__shared__` variables become
// function-local `static thread_local` ones: one copy per block in flight, as on a GPU. threadIdx and friends read
// the running fiber's coordinates. __syncthreads() and the warp intrinsics are true barriers (kernels/emu/emu_exec.cpp).
#ifndef REPRISE_EMU_DEVICE_H
#define REPRISE_EMU_DEVICE_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#undef __shared__
#define __shared__ static thread_local
#ifndef __grid_constant__
#define __grid_constant__
#endif
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
#define REPRISE_DYNAMIC_SHARED(type, name) type *name = reinterpret_cast<type *>(emu::dynamic_shared())

namespace emu {

struct thread_coords {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
};

const thread_coords &coords();   // of the CUDA thread running now
void *dynamic_shared();
void syncthreads(const char *file, int line);

// For the perf build's counters (kernels/emu/perf/), which see a kernel's loads and stores through its compiler's
// instrumentation: code that emulates a warp-wide operation thread by thread (WMMA) turns that off around its own
// accesses (perf_quiet) and reports what the hardware would do instead (perf_access: this lane's share; perf_tensor:
// tensor-core FLOPs, once per warp). No-ops in every other build.
void perf_quiet(bool on);
void perf_access(const void *p, size_t bytes, bool write);
void perf_tensor(double flops);
// An asynchronous copy's global read (cp.async: the warp does not wait for it), and a thread's wait for its copies
// with `outstanding` of them still in flight (how deep its pipeline is).
void perf_async_load(const void *p, size_t bytes);
void perf_async_wait(unsigned outstanding);
// The perf_async_loads between perf_bulk(true) and perf_bulk(false) are one request (the rows of one bulk copy).
void perf_bulk(bool open);

// The running CUDA thread's asynchronous copies (cp.async, kernels/emu/emu_ptx.h): each holds the bytes it read at
// issue until a wait completes its group; empty when the thread's block begins.
struct async_copy {
    unsigned char *dst;
    unsigned char data[16];
    int group;   // the commit group it belongs to: `committed` at its issue
};
// A wgmma issued by the thread and not yet waited for: its share of D is computed at the wait that covers its group.
struct wgmma_op {
    float *d;                 // the thread's accumulator registers (n / 2 of them)
    int n;                    // N: the columns of D
    uint64_t desc_a, desc_b;
    bool accumulate;
    int group;
};
struct async_state {
    std::vector<async_copy> pending;
    int committed = 0;   // groups committed so far
    std::vector<wgmma_op> wgmma;
    int wgmma_committed = 0;
    int bulk_committed = 0;   // bulk copy-out groups (the copies themselves: the block's, below)
};
async_state &async_copies();
// Lands, in order, the items `due` picks (through `land`) and keeps the others, in order: the completion of every
// kind of asynchronous operation the twins keep (copies at a wait, wgmma groups, bulk copies on a barrier or out).
template <typename T, typename Due, typename Land> static inline void land_if(std::vector<T> &items, Due due, Land land) {
    size_t keep = 0;
    for (size_t i = 0; i < items.size(); i++) {
        if (due(items[i])) land(items[i]);
        else {
            if (keep != i) items[keep] = std::move(items[i]);
            keep++;
        }
    }
    items.resize(keep);
}
// The running block's mbarriers and bulk tensor copies (TMA, kernels/emu/emu_ptx.h), empty when the block begins.
// An mbarrier's 8 bytes of shared memory hold a tag and its index here. A bulk copy read its box at issue, already
// in the order shared memory will hold it (swizzled); it lands, and completes its bytes on its barrier, when a
// thread waits on that barrier.
struct mbarrier_state {
    unsigned expected, pending;   // arrivals a phase needs, and those still missing
    long tx;                      // bytes the phase still expects
    unsigned phase;               // phases completed (parity: the low bit)
    bool fenced;                  // fence.mbarrier_init seen since its init: the copy engine may use it
};
struct bulk_copy {
    unsigned char *dst;
    std::vector<unsigned char> data;
    uint64_t *bar;
    int thread;   // the block's thread that issued it
};
// A bulk tensor copy out (shared to global memory): it reads its box when its thread's wait_group.read covers its
// group (or when the block ends), through the async proxy's view.
struct tma_map_fields {
    const unsigned char *base;
    uint64_t dim[2], row_bytes;
    unsigned box[2];
    int elem_bytes, swizzle;
};
struct bulk_store {
    tma_map_fields map;
    int col, row, group, thread;
    const unsigned char *src;
};
// What the async proxy (the copy engine, wgmma) sees of a range of shared memory it has read before: its bytes as of
// the last fence.proxy.async of any thread of the block, or as the copy engine itself wrote them. Ordinary stores
// after the last fence are not in it: an async read then gets the old bytes, as a GPU may give it.
struct async_view {
    const unsigned char *at;
    std::vector<unsigned char> bytes;
};
struct block_async_state {
    std::vector<mbarrier_state> bars;
    std::vector<bulk_copy> copies;
    std::vector<bulk_store> stores;
    std::vector<async_view> views;
    std::vector<const unsigned char *> desc_regions;   // wgmma descriptors' bases (below)
    std::vector<std::pair<unsigned, unsigned>> warpgroup_meet;   // per warpgroup: threads arrived, generation
};
// Returns once all 128 threads of the running thread's warpgroup have called it (a .sync.aligned warpgroup
// instruction: wgmma.wait_group); a warpgroup thread that has exited is reported, naming `what`.
void warpgroup_sync(const char *what);
block_async_state &block_async();
// The async proxy's accesses to shared memory (above): a fence (every view refreshed from shared memory), a write by
// the copy engine (shared memory and the views both), and a read (from the view that holds the range; a range read
// the first time gets a view of its bytes now).
void async_proxy_fence();
void async_proxy_write(unsigned char *dst, const unsigned char *src, size_t n);
void async_proxy_read(unsigned char *out, const unsigned char *src, size_t n);
// Lands the running thread's bulk copies out of groups before `group`.
void land_bulk_stores(int group);
// wgmma's matrix descriptors under the emulation: the descriptor's fields as the ISA has them, its 14-bit start
// address counted from a base in shared memory that bits 52-61 name (a block's table), so that a kernel's arithmetic on
// the start field moves it as on a GPU. A descriptor for an address, and the address a descriptor starts at.
uint64_t wgmma_descriptor(const void *smem, unsigned lbo, unsigned sbo, int tma_swizzle_mode);
const unsigned char *wgmma_descriptor_start(uint64_t desc);
// Computes the running thread's share of one wgmma (its operands read through the async proxy's view).
void run_wgmma(const wgmma_op &op);
// Lets the block's other threads run (a thread spinning on an mbarrier).
void yield_thread();
// The running CUDA thread's index in its block (-1 outside a kernel), and its warp and lane.
int current_thread();
static inline int warp_index() { return current_thread() / 32; }
static inline int lane_index() { return current_thread() % 32; }
// A fault of the running CUDA thread (a misaligned address, an instruction misused): reported with the kernel,
// block and thread, and the run aborts, as a GPU's kernel would fail.
[[noreturn]] void thread_fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

enum warp_op { SHFL_IDX, SHFL_XOR, SHFL_DOWN, SHFL_UP, VOTE, SYNCWARP };
// Every lane of `mask` must arrive at the same call; each lane gives `in` and gets back, in `out`, the value of
// the lane the op selects (its own when out of range). VOTE gives back the ballot of the predicates in `out`.
void warp_exchange(warp_op op, unsigned mask, const void *in, void *out, size_t size, int arg, int width,
                   const char *file, int line);
unsigned active_mask();

using kernel_body = std::function<void()>;
cudaError_t launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   kernel_body body, bool pdl = false);
// griddepcontrol.wait and .launch_dependents (kernels/cuda_compat.h's pdl_wait, pdl_launch_dependents): kernels run
// one after another here, so the wait only records that the thread waited (the perf build counts accesses before it).
void grid_dependency_wait();
void launch_dependents();
bool pdl_enabled();   // REPRISE_PDL is not 0 (the emulated GPU is an sm_90)

// The launch wrappers' target: arguments are converted to the kernel's parameter types and captured by value,
// so a launch recorded into a CUDA graph replays with the arguments it was captured with. pdl: a programmatic
// dependent launch (kernels/launch.h's REPRISE_LAUNCH_PDL).
template <typename... P, typename... A>
cudaError_t launch_kernel(const char *name, void (*kernel)(P...), bool pdl, dim3 grid, dim3 block, size_t smem,
                          cudaStream_t stream, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "wrong number of kernel arguments");
    std::tuple<std::decay_t<P>...> captured(static_cast<std::decay_t<P>>(args)...);
    return launch(name, reinterpret_cast<const void *>(kernel), grid, block, smem, stream,
                  [kernel, captured]() { std::apply(kernel, captured); }, pdl);
}

template <typename T>
T shuffle(warp_op op, const char *file, int line, unsigned mask, T var, int arg, int width) {
    static_assert(sizeof(T) <= 16, "shuffle of a value over 16 bytes");
    T out;
    warp_exchange(op, mask, &var, &out, sizeof(T), arg, width, file, line);
    return out;
}
template <typename T> T shfl_sync(const char *f, int l, unsigned m, T v, int src, int w = 32) { return shuffle(SHFL_IDX, f, l, m, v, src, w); }
template <typename T> T shfl_xor_sync(const char *f, int l, unsigned m, T v, int x, int w = 32) { return shuffle(SHFL_XOR, f, l, m, v, x, w); }
template <typename T> T shfl_down_sync(const char *f, int l, unsigned m, T v, unsigned d, int w = 32) { return shuffle(SHFL_DOWN, f, l, m, v, (int)d, w); }
template <typename T> T shfl_up_sync(const char *f, int l, unsigned m, T v, unsigned d, int w = 32) { return shuffle(SHFL_UP, f, l, m, v, (int)d, w); }
inline unsigned ballot_sync(const char *f, int l, unsigned m, int pred) {
    int p = pred != 0;
    unsigned out;
    warp_exchange(VOTE, m, &p, &out, sizeof p, 0, 32, f, l);
    return out;
}
inline void syncwarp(const char *f, int l, unsigned m = 0xffffffffu) {
    int none = 0, out;
    warp_exchange(SYNCWARP, m, &none, &out, sizeof none, 0, 32, f, l);
}

// __syncwarp() and __syncwarp(mask): the call site is bound first, the optional mask after.
struct syncwarp_call {
    const char *file;
    int line;
    void operator()(unsigned mask = 0xffffffffu) const { syncwarp(file, line, mask); }
};

}   // namespace emu

#define threadIdx (emu::coords().thread_idx)
#define blockIdx (emu::coords().block_idx)
#define blockDim (emu::coords().block_dim)
#define gridDim (emu::coords().grid_dim)
#define warpSize 32
#define __syncthreads() emu::syncthreads(__FILE__, __LINE__)
#define __shfl_sync(...) emu::shfl_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) emu::shfl_xor_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) emu::shfl_down_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) emu::shfl_up_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, pred) emu::ballot_sync(__FILE__, __LINE__, (mask), (pred))
#define __any_sync(mask, pred) (emu::ballot_sync(__FILE__, __LINE__, (mask), (pred)) != 0u)
#define __all_sync(mask, pred) (emu::ballot_sync(__FILE__, __LINE__, (mask), (pred)) == (unsigned)(mask))
#define __syncwarp(...) emu::syncwarp_call{__FILE__, __LINE__}(__VA_ARGS__)
#define __activemask() emu::active_mask()

// ---- loads, math and bit intrinsics the kernels use ----
template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcg(const T *p) { return *p; }   // (bypassing L1: one memory here)
// Blocks run one after another on an OS thread, or on several: a real fence (out of line: the perf build's
// instrumentation refuses fences in the kernels it compiles).
namespace emu {
void threadfence();
}
static inline void __threadfence() { emu::threadfence(); }
// glibc declares __expf and __logf but does not export them: macros, defined after <cmath> declared them.
#define __expf(x) expf(x)
#define __logf(x) logf(x)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }   // one rounding, as the GPU
static inline float __saturatef(float x) { return x < 0 ? 0 : x > 1 ? 1 : x; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

// half2 / bfloat162 fused multiply-add, which the host headers do not define: computed in float, rounded once,
// as the hardware's single-rounding FMA does.
static inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 c) {
    float2 x = __bfloat1622float2(a), y = __bfloat1622float2(b), z = __bfloat1622float2(c);
    return __floats2bfloat162_rn(fmaf(x.x, y.x, z.x), fmaf(x.y, y.y, z.y));
}
static inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
    float2 x = __half22float2(a), y = __half22float2(b), z = __half22float2(c);
    return __floats2half2_rn(fmaf(x.x, y.x, z.x), fmaf(x.y, y.y, z.y));
}

// The thread sleeps about ns nanoseconds (the hardware's is approximate too): slow producers in the tests.
static inline void __nanosleep(unsigned ns) { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); }

// ---- atomics (blocks may one day run on several OS threads, so these are real atomics) ----
static inline int atomicAdd(int *a, int v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
static inline unsigned atomicAdd(unsigned *a, unsigned v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
static inline unsigned long long atomicAdd(unsigned long long *a, unsigned long long v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
static inline float atomicAdd(float *a, float v) {
    unsigned *u = reinterpret_cast<unsigned *>(a), old = __atomic_load_n(u, __ATOMIC_RELAXED), want;
    do want = __float_as_uint(__uint_as_float(old) + v);
    while (!__atomic_compare_exchange_n(u, &old, want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return __uint_as_float(old);
}
static inline int atomicMax(int *a, int v) {
    int old = __atomic_load_n(a, __ATOMIC_RELAXED);
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}
static inline int atomicMin(int *a, int v) {
    int old = __atomic_load_n(a, __ATOMIC_RELAXED);
    while (old > v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}
static inline int atomicCAS(int *a, int cmp, int v) { __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED); return cmp; }
static inline unsigned atomicCAS(unsigned *a, unsigned cmp, unsigned v) { __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED); return cmp; }
static inline int atomicExch(int *a, int v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }
static inline unsigned atomicExch(unsigned *a, unsigned v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }
static inline float atomicExch(float *a, float v) { return __uint_as_float(__atomic_exchange_n(reinterpret_cast<unsigned *>(a), __float_as_uint(v), __ATOMIC_RELAXED)); }

#include "kernels/emu/emu_wmma.h"

#endif
