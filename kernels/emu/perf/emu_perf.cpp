// The perf build's memory counters: every load and store a kernel makes, seen through the compiler's thread-sanitizer
// instrumentation (kernel sources compiled with -fsanitize=thread -O1 and linked with this file instead of the
// sanitizer's runtime), counted per launch as a GPU's memory system would see them. -O1, not -O0: at -O0 gcc does not
// instrument the load of a small struct passed by value (__bfloat162float(x[i])); at -O1 it does, and a 16-byte load
// stays one access.
//
// An access is global (inside a device allocation), shared (in the block's dynamic shared memory, or in the OS
// thread's static TLS, where the emulation keeps each block's __shared__ arrays) or neither (the CUDA thread's stack,
// the emulation's own structures: not counted). Lanes of a warp run one after another here, so a warp's request is
// rebuilt from its lanes' accesses: the i-th time each lane of a warp runs the same instruction is one request.
// Counted per instruction, not over all of a lane's accesses, so that lanes an instruction leaves out (ldmatrix .x2
// takes 16 lanes' rows, a zero-fill copy reads nothing) do not shift every later access of theirs into another
// instruction's request. Per launch, on one JSON line ("launch":"counters") after the kernel's:
//   global load and store bytes, and the share in 16-byte (or wider) accesses;
//   requests and the 32-byte sectors they touch (sectors per request: 4 when 32 lanes read 4 consecutive bytes each,
//   32 when each lane's 4 bytes sit in another sector);
//   compulsory DRAM sectors: distinct sectors the launch touches (each would come from DRAM once at best), and the
//   footprint: the span each device allocation's touched bytes cover, in sectors, summed ("span_sectors");
//   shared memory requests, the wavefronts they take over 32 banks of 4 bytes (one word read by many lanes is one
//   broadcast) and the fewest they could take (their bytes over 128);
//   tensor-core FLOPs, as the WMMA emulation reports them;
//   asynchronous copies (cp.async, and bulk tensor copies: a box is one request): their global read requests, and each
//   thread's most copies in flight at a wait (summed over the threads that waited, and their number): how deep its
//   pipeline runs.
// REPRISE_EMU_PERF_SAMPLE=k runs about one CTA in k of a grid of 32 k CTAs or more (the first, and others picked by a
// hash of their index, spread over the grid; smaller grids run whole) and says so ("ctas_run", "ctas"); counts are of the CTAs run, so a reader scales them by
// ctas / ctas_run (compulsory sectors every CTA shares, such as an activation row read by all, are then overcounted
// by up to k times their bytes: the reader is told by "sample", and the footprint bounds them).
#include <link.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <array>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kernels/emu/emu_internal.h"

namespace emu {
namespace {

struct request {
    bool global, write, async;
    size_t bytes;
    std::vector<uint64_t> units;   // global: sector numbers; shared: 4-byte word numbers (repeats allowed)
};

struct counters {
    unsigned long long load_bytes, store_bytes, wide_bytes, load_requests, store_requests, load_sectors, store_sectors,
        shared_bytes, shared_requests, shared_wavefronts, shared_ideal, async_requests, async_threads, async_peak,
        pdl_early;   // global accesses a thread of a programmatic dependent launch made before its pdl_wait
    double tensor_flops;
};

struct launch_state {
    bool active = false;
    std::string name;
    dim3 grid, block;
    size_t smem = 0;
    unsigned long long ctas = 0, ctas_run = 0;
    counters c{};
    std::unordered_set<uint64_t> sectors;   // distinct global sectors of the launch
    // per device allocation touched: its start, and the first and one past the last byte the counted CTAs touched;
    // summed, an upper bound of what a sampled launch can need from DRAM (dense tiles: the operands' footprint)
    std::vector<std::array<uintptr_t, 3>> spans;
    // the CTA running: each thread's access count per instruction, each warp's requests by (count, instruction)
    std::vector<std::vector<std::pair<const void *, unsigned>>> next_access;
    std::vector<std::unordered_map<uint64_t, request>> warps;
    std::vector<char> quiet;   // per CUDA thread: its accesses are not counted (perf_quiet)
    std::vector<unsigned> async_peak;   // per CUDA thread: the most copies it had in flight at a wait (+1; 0: none)
    std::vector<char> bulk_open;        // per CUDA thread: its async loads now are one bulk copy's rows...
    std::vector<request *> bulk_req;    // ...joining this request (null until the first row)
    uintptr_t lo = 1, hi = 0;   // the device allocation of the last global access
    uintptr_t smem_lo = 0, smem_hi = 0, tls_lo = 0, tls_hi = 0;   // where shared memory is
};

thread_local launch_state L;   // a block runs on one OS thread; a stream's launches run one at a time on it

// The static TLS of every module loaded at start-up (x86-64 keeps it just below the thread pointer), with room for
// alignment: where `static thread_local` (__shared__) variables live.
size_t static_tls_bytes = [] {
    size_t total = 0;
    dl_iterate_phdr([](dl_phdr_info *info, size_t, void *sum) {
        for (int i = 0; i < info->dlpi_phnum; i++)
            if (info->dlpi_phdr[i].p_type == PT_TLS)
                *(size_t *)sum += info->dlpi_phdr[i].p_memsz + info->dlpi_phdr[i].p_align;
        return 0;
    }, &total);
    return total + 64;
}();

// REPRISE_EMU_PERF_SAMPLE_FROM=n samples grids of n CTAs or more instead (checks of per-CTA behaviour at a large
// model's shapes, where the CTAs do alike and a few hundred are too many to emulate whole).
unsigned long long sample_from = [] {
    const char *s = getenv("REPRISE_EMU_PERF_SAMPLE_FROM");
    return s ? strtoull(s, nullptr, 10) : 0;
}();

unsigned long long sample_every = [] {
    const char *s = getenv("REPRISE_EMU_PERF_SAMPLE");
    unsigned long long k = s ? strtoull(s, nullptr, 10) : 1;
    return k ? k : 1;
}();

void launch_begin(const char *name, dim3 grid, dim3 block, size_t smem, const void *smem_buffer) {
    L.active = profile_open();   // counting costs: only while the counters have somewhere to go
    L.name = name;
    L.grid = grid, L.block = block, L.smem = smem;
    L.ctas = (unsigned long long)grid.x * grid.y * grid.z;
    L.ctas_run = 0;
    L.c = counters{};
    L.sectors.clear();
    L.spans.clear();
    L.lo = 1, L.hi = 0;
    L.tls_hi = reinterpret_cast<uintptr_t>(__builtin_thread_pointer());
    L.tls_lo = L.tls_hi - static_tls_bytes;
    L.smem_lo = reinterpret_cast<uintptr_t>(smem_buffer), L.smem_hi = L.smem_lo + smem;
}

// One CTA in k, spread over the grid by a hash of its index (every k-th would always fall on the same row of a 2-D grid,
// and rows every sampled CTA shares would then be scaled as if private), and always the first.
bool run_block(unsigned long long linear_block) {
    // a grid under 32 k CTAs runs whole: it is cheap, and a sample of a few CTAs of uneven work (attention's splits)
    // would be a poor one
    if (sample_every == 1 || linear_block == 0 || L.ctas < (sample_from ? sample_from : 32 * sample_every)) return true;
    uint64_t x = linear_block + 0x9e3779b97f4a7c15ull;   // splitmix64
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return (x ^ (x >> 31)) % sample_every == 0;
}

void block_begin(int threads) {
    L.ctas_run++;
    if (!L.active) return;
    L.next_access.assign(threads, {});
    L.quiet.assign(threads, 0);
    L.async_peak.assign(threads, 0);
    L.bulk_open.assign(threads, 0);
    L.bulk_req.assign(threads, nullptr);
    L.warps.assign((threads + 31) / 32, {});
}

// A shared-memory request's wavefronts: the most distinct words any one bank must deliver.
unsigned long long wavefronts(const std::vector<uint64_t> &words) {
    std::unordered_set<uint64_t> distinct(words.begin(), words.end());
    unsigned per_bank[32] = {0};
    unsigned most = 0;
    for (uint64_t w : distinct) most = std::max(most, ++per_bank[w % 32]);
    return most;
}

void block_end() {
    if (!L.active) return;
    for (auto &warp : L.warps)
        for (auto &kv : warp) {
            request &r = kv.second;
            if (r.global) {
                std::unordered_set<uint64_t> distinct(r.units.begin(), r.units.end());
                (r.write ? L.c.store_requests : L.c.load_requests)++;
                (r.write ? L.c.store_sectors : L.c.load_sectors) += distinct.size();
                if (r.async) L.c.async_requests++;
            } else {
                L.c.shared_requests++;
                L.c.shared_wavefronts += wavefronts(r.units);
                L.c.shared_ideal += (r.bytes + 127) / 128;
            }
        }
    L.warps.clear();
    for (unsigned peak : L.async_peak)
        if (peak) L.c.async_threads++, L.c.async_peak += peak - 1;
}

void launch_end() {
    if (!L.active) return;
    L.active = false;
    const counters &c = L.c;
    unsigned long long span_sectors = 0;
    for (const auto &x : L.spans) span_sectors += (x[2] + 31) / 32 - x[1] / 32;
    char buf[1100];
    snprintf(buf, sizeof buf,
             ",\"grid\":[%u,%u,%u],\"block\":[%u,%u,%u],\"smem\":%zu,\"ctas\":%llu,\"ctas_run\":%llu,\"sample\":%llu,"
             "\"load_bytes\":%llu,\"store_bytes\":%llu,\"wide_bytes\":%llu,\"load_requests\":%llu,\"load_sectors\":%llu,"
             "\"store_requests\":%llu,\"store_sectors\":%llu,\"dram_sectors\":%zu,\"shared_bytes\":%llu,"
             "\"shared_requests\":%llu,\"shared_wavefronts\":%llu,\"shared_ideal\":%llu,\"tensor_flops\":%.0f,"
             "\"async_requests\":%llu,\"async_threads\":%llu,\"async_peak\":%llu,\"span_sectors\":%llu,\"pdl\":%d,"
             "\"pdl_early\":%llu}",
             L.grid.x, L.grid.y, L.grid.z, L.block.x, L.block.y, L.block.z, L.smem, L.ctas, L.ctas_run, sample_every,
             c.load_bytes, c.store_bytes, c.wide_bytes, c.load_requests, c.load_sectors, c.store_requests, c.store_sectors,
             L.sectors.size(), c.shared_bytes, c.shared_requests, c.shared_wavefronts, c.shared_ideal, c.tensor_flops,
             c.async_requests, c.async_threads, c.async_peak, span_sectors, pdl_launch() ? 1 : 0, c.pdl_early);
    std::string name;
    for (char ch : L.name) name += ch == '"' || ch == '\\' ? '_' : ch;
    profile_line("{\"launch\":\"counters\",\"name\":\"" + name + "\"" + buf);
}

// How many times this thread ran instruction pc before (a kernel has few memory instructions: a short list).
unsigned occurrence(std::vector<std::pair<const void *, unsigned>> &seen, const void *pc) {
    for (auto &e : seen)
        if (e.first == pc) return e.second++;
    seen.push_back({pc, 1});
    return 0;
}

// The request an access joins, after counting its bytes; NULL when it is not counted.
request *record(const void *p, size_t bytes, bool write, const void *pc) {
    if (!L.active || !bytes) return nullptr;
    int t = current_thread();
    if (t < 0 || L.quiet[t] || on_thread_stack(p)) return nullptr;   // outside a kernel, quiet, or a local variable
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    bool global = a >= L.lo && a + bytes <= L.hi;
    if (!global && device_allocation(p, &L.lo, &L.hi)) global = a + bytes <= L.hi;
    if (!global && !(a >= L.smem_lo && a < L.smem_hi) && !(a >= L.tls_lo && a < L.tls_hi)) return nullptr;
    bool bulk = L.bulk_open[t];
    request &r = bulk && L.bulk_req[t] ? *L.bulk_req[t]
                                       : L.warps[t / 32][(uint64_t)occurrence(L.next_access[t], pc) * 0x9e3779b97f4a7c15ull ^
                                                         reinterpret_cast<uintptr_t>(pc)];
    if (bulk) L.bulk_req[t] = &r;   // (an unordered_map's elements stay where they are)
    if (r.units.empty()) r.global = global, r.write = write, r.async = false;
    r.bytes += bytes;
    if (global && pdl_unwaited()) L.c.pdl_early++;
    if (global) {
        auto span = std::find_if(L.spans.begin(), L.spans.end(), [](const std::array<uintptr_t, 3> &x) { return x[0] == L.lo; });
        if (span == L.spans.end()) L.spans.push_back({L.lo, a, a + bytes});
        else (*span)[1] = std::min((*span)[1], a), (*span)[2] = std::max((*span)[2], a + bytes);
        for (uint64_t s = a / 32; s <= (a + bytes - 1) / 32; s++) r.units.push_back(s), L.sectors.insert(s);
        (write ? L.c.store_bytes : L.c.load_bytes) += bytes;
        if (bytes >= 16) L.c.wide_bytes += bytes;
    } else {
        for (uint64_t w = a / 4; w <= (a + bytes - 1) / 4; w++) r.units.push_back(w);
        L.c.shared_bytes += bytes;
    }
    return &r;
}

void access(const void *p, size_t bytes, bool write, const void *pc) { record(p, bytes, write, pc); }

// cp.async's read: counted as a load; its request is asynchronous (the warp goes on without it).
void async_load(const void *p, size_t bytes, const void *pc) {
    if (request *r = record(p, bytes, false, pc)) r->async = true;
}

void async_wait(unsigned outstanding) {
    if (!L.active) return;
    int t = current_thread();
    if (t < 0 || L.quiet[t]) return;
    L.async_peak[t] = std::max(L.async_peak[t], outstanding + 1);
}

void bulk(bool open) {
    int t = current_thread();
    if (!L.active || t < 0 || t >= (int)L.bulk_open.size()) return;
    L.bulk_open[t] = open, L.bulk_req[t] = nullptr;
}

void tensor(double flops) {
    if (L.active) L.c.tensor_flops += flops;
}

void quiet(bool on) {   // per CUDA thread: its lanes run one after another, switching at every barrier
    int t = current_thread();
    if (L.active && t >= 0 && t < (int)L.quiet.size()) L.quiet[t] = on;
}

perf_hooks hooks = {launch_begin, run_block, block_begin, block_end, launch_end, access, async_load, async_wait, bulk, tensor, quiet};

// Linked in only by instrumented kernels (they call the __tsan_ functions below): installs the counters.
struct install {
    install() { perf = &hooks; }
} installed;

}   // namespace
}   // namespace emu

extern "C" void emu_set_perf_sample(unsigned long long k) { emu::sample_every = k ? k : 1; }

// The instrumentation's entry points. Reads and writes of 1 to 16 bytes (aligned or not), ranges, and the calls the
// instrumentation makes on function entry and exit and at start-up, which need nothing here.
#define PC __builtin_return_address(0)
extern "C" {
void __tsan_init() {}
void __tsan_func_entry(void *) {}
void __tsan_func_exit() {}
#define EMU_TSAN_SIZE(n)                                                                        \
    void __tsan_read##n(void *p) { emu::access(p, n, false, PC); }                              \
    void __tsan_write##n(void *p) { emu::access(p, n, true, PC); }                              \
    void __tsan_unaligned_read##n(void *p) { emu::access(p, n, false, PC); }                    \
    void __tsan_unaligned_write##n(void *p) { emu::access(p, n, true, PC); }                    \
    void __tsan_volatile_read##n(void *p) { emu::access(p, n, false, PC); }                     \
    void __tsan_volatile_write##n(void *p) { emu::access(p, n, true, PC); }
EMU_TSAN_SIZE(1)
EMU_TSAN_SIZE(2)
EMU_TSAN_SIZE(4)
EMU_TSAN_SIZE(8)
EMU_TSAN_SIZE(16)
void __tsan_read_range(void *p, unsigned long n) { emu::access(p, n, false, PC); }
void __tsan_write_range(void *p, unsigned long n) { emu::access(p, n, true, PC); }
void __tsan_vptr_update(void **, void *) {}
void __tsan_vptr_read(void **) {}
// Atomics (atomicAdd and friends, emu_device.h): done, and counted as an access of their size.
#define EMU_TSAN_ATOMIC(bits, T)                                                                                   \
    T __tsan_atomic##bits##_load(const volatile T *a, int) {                                                      \
        emu::access((const void *)a, sizeof(T), false, PC);                                                       \
        return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                              \
    }                                                                                                              \
    void __tsan_atomic##bits##_store(volatile T *a, T v, int) {                                                   \
        emu::access((const void *)a, sizeof(T), true, PC);                                                        \
        __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                                                 \
    }                                                                                                              \
    T __tsan_atomic##bits##_exchange(volatile T *a, T v, int) {                                                   \
        emu::access((const void *)a, sizeof(T), true, PC);                                                        \
        return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                                       \
    }                                                                                                              \
    T __tsan_atomic##bits##_fetch_add(volatile T *a, T v, int) {                                                  \
        emu::access((const void *)a, sizeof(T), true, PC);                                                        \
        return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                                        \
    }                                                                                                              \
    int __tsan_atomic##bits##_compare_exchange_strong(volatile T *a, T *c, T v, int, int) {                       \
        emu::access((const void *)a, sizeof(T), true, PC);                                                        \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                  \
    }                                                                                                              \
    int __tsan_atomic##bits##_compare_exchange_weak(volatile T *a, T *c, T v, int, int) {                         \
        emu::access((const void *)a, sizeof(T), true, PC);                                                        \
        return __atomic_compare_exchange_n(a, c, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                   \
    }                                                                                                              \
    T __tsan_atomic##bits##_compare_exchange_val(volatile T *a, T c, T v, int, int) {                             \
        emu::access((const void *)a, sizeof(T), true, PC);                                                        \
        __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                        \
        return c;                                                                                                  \
    }
EMU_TSAN_ATOMIC(32, int)
EMU_TSAN_ATOMIC(64, long long)
void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
}
