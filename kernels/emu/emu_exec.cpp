// CPU emulation of kernel execution: each CUDA thread is a fiber, blocks run one after another.
//
// A block's threads are fibers (ucontext) on the launching OS thread. The scheduler resumes every runnable fiber in
// turn (in index order, or shuffled when REPRISE_EMU_SHUFFLE=seed is set, to expose missing barriers) until it
// finishes or waits at a barrier. __syncthreads() releases when every live thread of the block has arrived at the
// same call; a warp intrinsic releases when every lane of its mask has arrived at the same call, and then hands
// each lane the value it selects. A barrier that cannot complete - a thread that exited or waits elsewhere - is
// reported with the kernel name, block and thread, and aborts, instead of hanging or passing.
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sys/mman.h>
#include <ucontext.h>
#include <vector>

#include "kernels/emu/emu_internal.h"
#include "kernels/ptx.h"   // tma_swizzled_offset

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

namespace emu {

namespace {

enum fiber_state { RUNNABLE, AT_SYNC, AT_WARP, DONE };

struct fiber {
    void *sp;            // saved stack pointer (the hand-rolled switch)
    ucontext_t ctx;      // (the ucontext fallback)
    char *stack;
    thread_coords c;
    int linear;
    fiber_state state;
    const char *file;   // where it waits
    int line;
    unsigned char in[16], out[16];
    void *fake_stack;
    async_state async;   // its cp.async copies not yet waited for
    bool pdl_waited;     // it has run griddepcontrol.wait (pdl_wait)
};

struct warp_wait {
    unsigned mask, arrived;
    warp_op op;
    const char *file;
    int line, arg, width;
    size_t size;
};

struct block_run {
    const char *kernel;
    const kernel_body *body;
    std::vector<fiber> *f;
    int n, live, at_sync, exited;
    std::vector<warp_wait> warps;
    char *smem;
    block_async_state async;   // its mbarriers and bulk copies
    ucontext_t sched;
    void *sched_sp;
    const void *sched_bottom;
    size_t sched_size;
};

thread_local block_run *B;
thread_local fiber *F;
thread_local bool launch_pdl;   // the kernel running on this OS thread was launched with programmatic dependent launch
thread_local std::vector<char *> stack_pool;

#if EMU_ASAN
const size_t STACK_SIZE = 512 * 1024;   // ASan's redzones and fake frames need room
#else
const size_t STACK_SIZE = 128 * 1024;
#endif

unsigned long long shuffle_seed = [] {
    const char *s = getenv("REPRISE_EMU_SHUFFLE");
    return s ? strtoull(s, nullptr, 10) : 0ull;
}();

char *stack_for(int i) {
    while ((int)stack_pool.size() <= i) {
        void *p = mmap(nullptr, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) fatal("cannot map a %zu-byte fiber stack", STACK_SIZE);
        stack_pool.push_back(static_cast<char *>(p));
    }
    return stack_pool[i];
}

// Switching between fibers. On x86-64 a hand-rolled switch saves the callee-saved registers on the old stack and
// swaps stack pointers: no system call, unlike swapcontext (which saves the signal mask each time), so a kernel of
// thousands of threads runs in milliseconds. Elsewhere, ucontext.
#if defined(__x86_64__)
#define EMU_FAST_SWITCH 1
extern "C" void emu_switch_stack(void **save_sp, void *load_sp);
asm(".text\n"
    ".globl emu_switch_stack\n"
    ".type emu_switch_stack,@function\n"
    "emu_switch_stack:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_switch_stack,.-emu_switch_stack\n");
#else
#define EMU_FAST_SWITCH 0
#endif

[[noreturn]] void fault(const fiber *at, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fault(const fiber *at, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        fatal("kernel '%s', block (%u,%u,%u), thread (%u,%u,%u): %s", B->kernel, at->c.block_idx.x, at->c.block_idx.y,
              at->c.block_idx.z, at->c.thread_idx.x, at->c.thread_idx.y, at->c.thread_idx.z, msg);
    fatal("kernel '%s': %s", B->kernel, msg);
}

void to_scheduler() {
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&F->fake_stack, B->sched_bottom, B->sched_size);
#endif
#if EMU_FAST_SWITCH
    emu_switch_stack(&F->sp, B->sched_sp);
#else
    swapcontext(&F->ctx, &B->sched);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(F->fake_stack, &B->sched_bottom, &B->sched_size);
#endif
}

void fiber_main(int index) {
    (void)index;   // F is set by the scheduler before it switches here
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &B->sched_bottom, &B->sched_size);
#endif
    (*B->body)();
    fiber *me = F;
    me->state = DONE;
    B->live--;
    B->exited++;
    if (B->at_sync)
        for (fiber &o : *B->f)
            if (o.state == AT_SYNC)
                fault(me, "exited while %d thread(s) wait at __syncthreads() (%s:%d), thread (%u,%u,%u) among them: the "
                          "barrier is divergent", B->at_sync, o.file, o.line, o.c.thread_idx.x, o.c.thread_idx.y, o.c.thread_idx.z);
    int w = me->linear / 32;
    if (B->warps[w].arrived && (B->warps[w].mask >> (me->linear % 32) & 1))
        fault(me, "exited while lanes of its warp wait for it at a warp intrinsic (%s:%d)", B->warps[w].file, B->warps[w].line);
#if EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, B->sched_bottom, B->sched_size);
#endif
#if EMU_FAST_SWITCH
    void *dead;
    emu_switch_stack(&dead, B->sched_sp);   // never resumed
#else
    setcontext(&B->sched);
#endif
    __builtin_unreachable();
}

[[maybe_unused]] void fiber_trampoline() { fiber_main(0); }

// Kept apart from the loop that calls it: getcontext returns like setjmp, which would clobber loop variables.
__attribute__((noinline)) void init_fiber(fiber *f, int index, ucontext_t *link) {
    f->stack = stack_for(index);
    f->state = RUNNABLE;
    f->file = nullptr;
    f->line = 0;
    f->async.pending.clear();   // copies a thread of the previous block never waited for are gone with it
    f->async.committed = 0;
    f->async.wgmma.clear();
    f->async.wgmma_committed = 0;
    f->async.bulk_committed = 0;
#if EMU_FAST_SWITCH
    // a stack that the first switch "returns" into fiber_trampoline from: six zeroed registers, the trampoline's
    // address, and a null return address for it, keeping the ABI's 16-byte alignment at its entry
    (void)link;
    void **sp = reinterpret_cast<void **>((reinterpret_cast<uintptr_t>(f->stack) + STACK_SIZE) & ~(uintptr_t)15);
    *--sp = nullptr;
    *--sp = reinterpret_cast<void *>(fiber_trampoline);
    for (int r = 0; r < 6; r++) *--sp = nullptr;
    f->sp = sp;
#else
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = STACK_SIZE;
    f->ctx.uc_link = link;
    makecontext(&f->ctx, reinterpret_cast<void (*)()>(fiber_main), 1, index);
#endif
}

void run_block(block_run &b) {
    B = &b;
    std::vector<fiber> &f = *b.f;
    for (int i = 0; i < b.n; i++) init_fiber(&f[i], i, &b.sched);
    std::vector<int> order(b.n);
    for (int i = 0; i < b.n; i++) order[i] = i;
    unsigned long long seed = shuffle_seed;
    std::mt19937_64 rng(seed ^ (0x9e3779b97f4a7c15ull * (f[0].c.block_idx.x + 1)));
    while (b.live > 0) {
        if (seed) std::shuffle(order.begin(), order.end(), rng);
        bool ran = false;
        for (int i : order) {
            if (f[i].state != RUNNABLE) continue;
            F = &f[i];
            ran = true;
#if EMU_ASAN
            void *fake = nullptr;
            __sanitizer_start_switch_fiber(&fake, f[i].stack, STACK_SIZE);
#endif
#if EMU_FAST_SWITCH
            emu_switch_stack(&b.sched_sp, f[i].sp);
#else
            swapcontext(&b.sched, &f[i].ctx);
#endif
#if EMU_ASAN
            __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
        }
        if (!ran) {   // everyone left waits: a barrier that can never complete
            for (int i = 0; i < b.n; i++)
                if (f[i].state == AT_WARP)
                    fault(&f[i], "waits at a warp intrinsic (%s:%d) for lanes 0x%08x of mask 0x%08x that never arrive "
                                 "(they wait at __syncthreads or elsewhere)", f[i].file, f[i].line,
                          b.warps[i / 32].mask & ~b.warps[i / 32].arrived, b.warps[i / 32].mask);
            fault(nullptr, "deadlock: no thread can run");
        }
    }
}

}   // namespace

}   // namespace emu

extern "C" void emu_set_shuffle_seed(unsigned long long seed) { emu::shuffle_seed = seed; }

namespace emu {

perf_hooks *perf = nullptr;

void perf_quiet(bool on) {
    if (perf) perf->quiet(on);
}
void perf_access(const void *p, size_t bytes, bool write) {
    if (perf) perf->access(p, bytes, write, __builtin_return_address(0));
}
void perf_async_load(const void *p, size_t bytes) {
    if (perf) perf->async_load(p, bytes, __builtin_return_address(0));
}
void perf_async_wait(unsigned outstanding) {
    if (perf) perf->async_wait(outstanding);
}
void perf_bulk(bool open) {
    if (perf) perf->bulk(open);
}
void perf_tensor(double flops) {
    if (perf) perf->tensor(flops);
}

int current_thread() { return F && B ? F->linear : -1; }
void threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void thread_fault(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!F || !B) fatal("%s", msg);
    fault(F, "%s", msg);
}
block_async_state &block_async() {
    if (!F || !B) fatal("an mbarrier or bulk copy outside a kernel");
    return B->async;
}

void async_proxy_fence() {
    for (async_view &v : block_async().views) memcpy(v.bytes.data(), v.at, v.bytes.size());
}

void async_proxy_write(unsigned char *dst, const unsigned char *src, size_t n) {
    memcpy(dst, src, n);
    for (async_view &v : block_async().views) {
        const unsigned char *lo = std::max<const unsigned char *>(v.at, dst), *hi = std::min<const unsigned char *>(v.at + v.bytes.size(), dst + n);
        if (lo < hi) memcpy(v.bytes.data() + (lo - v.at), lo, (size_t)(hi - lo));
    }
}

static void proxy_read(block_async_state &st, unsigned char *out, const unsigned char *src, size_t n) {
    for (const async_view &v : st.views)
        if (src >= v.at && src + n <= v.at + v.bytes.size()) return (void)memcpy(out, v.bytes.data() + (src - v.at), n);
    st.views.push_back(async_view{src, std::vector<unsigned char>(src, src + n)});
    memcpy(out, src, n);
}

void async_proxy_read(unsigned char *out, const unsigned char *src, size_t n) { proxy_read(block_async(), out, src, n); }

// One bulk store: the box, as the async proxy sees it in shared memory and laid out by the map's swizzle, into the
// in-bounds elements of global memory.
static void land_store(block_async_state &st, const bulk_store &s) {
    const tma_map_fields &m = s.map;
    size_t row_box = (size_t)m.box[0] * m.elem_bytes, bytes = row_box * m.box[1];
    std::vector<unsigned char> box(bytes);
    proxy_read(st, box.data(), s.src, bytes);
    unsigned char *base = const_cast<unsigned char *>(m.base);
    for (unsigned r = 0; r < m.box[1]; r++) {
        long gr = (long)s.row + r;
        if (gr < 0 || gr >= (long)m.dim[1]) continue;
        for (unsigned e = 0; e < m.box[0]; e++) {
            long gc = (long)s.col + e;
            if (gc < 0 || gc >= (long)m.dim[0]) continue;
            for (int k = 0; k < m.elem_bytes; k++) {
                size_t off = r * row_box + (size_t)e * m.elem_bytes + k;
                base[(size_t)gr * m.row_bytes + (size_t)gc * m.elem_bytes + k] = box[tma_swizzled_offset(off, m.swizzle)];
            }
        }
    }
}

void land_bulk_stores(int group) {
    block_async_state &st = block_async();
    int t = current_thread();
    land_if(st.stores, [&](const bulk_store &s) { return s.thread == t && s.group < group; },
            [&](const bulk_store &s) { land_store(st, s); });
}

uint64_t wgmma_descriptor(const void *smem, unsigned lbo, unsigned sbo, int sw) {
    block_async_state &st = block_async();
    const unsigned char *p = static_cast<const unsigned char *>(smem);
    size_t region = 0;
    while (region < st.desc_regions.size() && !(p >= st.desc_regions[region] && p < st.desc_regions[region] + (1 << 18)))
        region++;
    if (region == st.desc_regions.size()) {
        if (region >= 1023) thread_fault("wgmma descriptors over more than 1023 regions of shared memory");
        st.desc_regions.push_back(p);
    }
    uint64_t start = (uint64_t)(p - st.desc_regions[region]);
    if (start % 16 || lbo % 16 || sbo % 16) thread_fault("wgmma descriptor: %p, lbo %u, sbo %u: not multiples of 16 bytes", smem, lbo, sbo);
    return wgmma_desc_fields(start >> 4, lbo, sbo, sw) | (uint64_t)(region + 1) << 52;
}

const unsigned char *wgmma_descriptor_start(uint64_t desc) {
    block_async_state &st = block_async();
    size_t region = (desc >> 52) & 0x3FF;
    if (region == 0 || region > st.desc_regions.size()) thread_fault("wgmma: descriptor 0x%016llx was not made by wgmma_desc", (unsigned long long)desc);
    return st.desc_regions[region - 1] + (desc & 0x3FFF) * 16;
}

// The byte address of element (row, k) of a K-major operand (PTX ISA, "Shared Memory Matrix Layout"), before the
// swizzle: rows in groups of 8 sbo apart; swizzled, each row the span's bytes; unswizzled, 8 x 16-byte core matrices
// lbo apart along k.
static size_t wgmma_operand_offset(int row, int k, unsigned lbo, unsigned sbo, int sw) {
    if (sw) return (size_t)(row / 8) * sbo + (size_t)(row % 8) * tma_swizzle_span(sw) + (size_t)k * 2;
    return (size_t)(row / 8) * sbo + (size_t)(k / 8) * lbo + (size_t)(row % 8) * 16 + (size_t)(k % 8) * 2;
}

void run_wgmma(const wgmma_op &op) {
    const unsigned char *start[2] = {wgmma_descriptor_start(op.desc_a), wgmma_descriptor_start(op.desc_b)};
    unsigned lbo[2] = {(unsigned)((op.desc_a >> 16) & 0x3FFF) * 16, (unsigned)((op.desc_b >> 16) & 0x3FFF) * 16};
    unsigned sbo[2] = {(unsigned)((op.desc_a >> 32) & 0x3FFF) * 16, (unsigned)((op.desc_b >> 32) & 0x3FFF) * 16};
    int rows[2] = {64, op.n}, sw[2] = {wgmma_desc_swizzle(op.desc_a), wgmma_desc_swizzle(op.desc_b)};
    static thread_local std::vector<unsigned char> bytes[2];   // each operand's span, as the async proxy sees it
    size_t phase[2];
    for (int o = 0; o < 2; o++) {
        // the swizzle pattern runs over the address (the descriptor's base offset field taken as 0): the start's
        // place within its repeat comes along
        phase[o] = sw[o] ? (size_t)(reinterpret_cast<uintptr_t>(start[o]) % tma_swizzle_repeat(sw[o])) : 0;
        size_t end = 0;   // one past the operand's last byte (each row's k fall in two 16-byte chunks)
        for (int r = 0; r < rows[o]; r++)
            for (int k = 0; k < 16; k += 8)
                end = std::max(end, tma_swizzled_offset(phase[o] + wgmma_operand_offset(r, k, lbo[o], sbo[o], sw[o]), sw[o]) + 16);
        bytes[o].resize(end);
        async_proxy_read(bytes[o].data(), start[o] - phase[o], end);
    }
    // element (r, k) of operand o
    auto at = [&](int o, int r, int k) {
        uint16_t v;
        memcpy(&v, &bytes[o][tma_swizzled_offset(phase[o] + wgmma_operand_offset(r, k, lbo[o], sbo[o], sw[o]), sw[o])], 2);
        return __uint_as_float((uint32_t)v << 16);
    };
    int t = current_thread() % 128, warp = t / 32, g = (t % 32) / 4, q = t % 4;
    float a[2][16];   // this thread's two rows of A
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 16; k++) a[h][k] = at(0, 16 * warp + g + 8 * h, k);
    for (int j = 0; j < op.n / 8; j++)
        for (int c = 0; c < 2; c++) {
            float b[16];   // column 8 j + 2 q + c of B
            for (int k = 0; k < 16; k++) b[k] = at(1, 8 * j + 2 * q + c, k);
            for (int h = 0; h < 2; h++) {
                float s = 0;
                for (int k = 0; k < 16; k++) s += a[h][k] * b[k];
                float &d = op.d[4 * j + 2 * h + c];
                d = s + (op.accumulate ? d : 0.0f);
            }
        }
}

void yield_thread() {
    if (!F || !B) fatal("a wait outside a kernel");
    to_scheduler();   // still RUNNABLE: the scheduler comes back to it after the others
}

void warpgroup_sync(const char *what) {
    if (!F || !B) fatal("%s outside a kernel", what);
    fiber *me = F;
    size_t wg = (size_t)me->linear / 128;
    int first = (int)wg * 128;
    if (first + 128 > B->n) fault(me, "%s: the block's %d threads leave its warpgroup short of 128", what, B->n);
    std::vector<std::pair<unsigned, unsigned>> &meet = B->async.warpgroup_meet;
    if (meet.size() <= wg) meet.resize(wg + 1, {0u, 0u});
    unsigned generation = meet[wg].second;
    if (++meet[wg].first == 128) {   // the last to arrive lets the others go
        meet[wg].first = 0, meet[wg].second++;
        return;
    }
    while (B->async.warpgroup_meet[wg].second == generation) {
        for (int i = first; i < first + 128; i++)
            if ((*B->f)[i].state == DONE) fault(me, "%s: thread %d of its warpgroup has exited", what, i);
        to_scheduler();
    }
}

async_state &async_copies() {
    if (!F || !B) fatal("cp.async outside a kernel");
    return F->async;
}

bool on_thread_stack(const void *p) {
    return F && (const char *)p >= F->stack && (const char *)p < F->stack + STACK_SIZE;
}

const thread_coords &coords() {
    if (!F) fatal("threadIdx/blockIdx read outside a kernel");
    return F->c;
}

void *dynamic_shared() { return B ? B->smem : nullptr; }

void syncthreads(const char *file, int line) {
    fiber *me = F;
    if (B->exited)
        fault(me, "reached __syncthreads() (%s:%d) after %d thread(s) of its block exited: the barrier is divergent",
              file, line, B->exited);
    me->state = AT_SYNC;
    me->file = file;
    me->line = line;
    if (++B->at_sync < B->live) {
        to_scheduler();
        return;
    }
    // the last to arrive: all must be at the same call
    for (fiber &o : *B->f)
        if (o.state == AT_SYNC && (o.line != line || o.file != file))
            fault(&o, "waits at __syncthreads() (%s:%d) while thread (%u,%u,%u) waits at another (%s:%d): divergent "
                      "barriers", o.file, o.line, me->c.thread_idx.x, me->c.thread_idx.y, me->c.thread_idx.z, file, line);
    for (fiber &o : *B->f)
        if (o.state == AT_SYNC) o.state = RUNNABLE;
    B->at_sync = 0;
}

static int source_lane(warp_op op, int lane, int arg, int width) {
    int base = lane & ~(width - 1);
    switch (op) {
    case SHFL_IDX: return base + (arg & (width - 1));
    case SHFL_XOR: { int s = lane ^ arg; return s >= base + width || s < base ? lane : s; }
    case SHFL_DOWN: { int s = lane + arg; return s >= base + width ? lane : s; }
    case SHFL_UP: { int s = lane - arg; return s < base ? lane : s; }
    default: return lane;
    }
}

void warp_exchange(warp_op op, unsigned mask, const void *in, void *out, size_t size, int arg, int width,
                   const char *file, int line) {
    fiber *me = F;
    int lane = me->linear % 32, w = me->linear / 32, first = w * 32;
    if (!(mask >> lane & 1)) fault(me, "calls a warp intrinsic (%s:%d) with mask 0x%08x that leaves out its own lane %d", file, line, mask, lane);
    if (width < 1 || width > 32 || (width & (width - 1))) fault(me, "warp intrinsic (%s:%d) with width %d, not a power of 2 up to 32", file, line, width);
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1) {
            if (first + l >= B->n) fault(me, "warp intrinsic (%s:%d) mask 0x%08x names lane %d, past the block's last thread", file, line, mask, l);
            if ((*B->f)[first + l].state == DONE) fault(me, "warp intrinsic (%s:%d) waits for lane %d, which has exited", file, line, l);
        }
    warp_wait &ww = B->warps[w];
    if (!ww.arrived) ww = warp_wait{mask, 0, op, file, line, arg, width, size};
    else if (ww.mask != mask || ww.op != op || ww.line != line || ww.file != file)
        fault(me, "lanes of one warp meet at different warp intrinsics or masks (%s:%d mask 0x%08x vs %s:%d mask 0x%08x)",
              file, line, mask, ww.file, ww.line, ww.mask);
    memcpy(me->in, in, size);
    me->file = file;
    me->line = line;
    ww.arrived |= 1u << lane;
    if (ww.arrived != mask) {
        me->state = AT_WARP;
        to_scheduler();
    } else {   // the last lane: compute everyone's result, release them
        unsigned ballot = 0;
        if (op == VOTE)
            for (int l = 0; l < 32; l++)
                if (mask >> l & 1) ballot |= ((*B->f)[first + l].in[0] ? 1u : 0u) << l;
        for (int l = 0; l < 32; l++) {
            if (!(mask >> l & 1)) continue;
            fiber &o = (*B->f)[first + l];
            if (op == VOTE) memcpy(o.out, &ballot, sizeof ballot);
            else if (op != SYNCWARP) {
                int src = source_lane(op, l, ww.arg, ww.width);
                if (!(mask >> src & 1)) fault(&o, "shuffle (%s:%d) reads lane %d, which is not in mask 0x%08x", file, line, src, mask);
                memcpy(o.out, (*B->f)[first + src].in, size);
            }
            if (&o != me) o.state = RUNNABLE;
        }
        ww.arrived = 0;
    }
    if (op != SYNCWARP) memcpy(out, me->out, op == VOTE ? sizeof(unsigned) : size);
}

unsigned active_mask() {
    int w = F->linear / 32;
    unsigned m = 0;
    for (int l = 0; l < 32 && w * 32 + l < B->n; l++)
        if ((*B->f)[w * 32 + l].state != DONE) m |= 1u << l;
    return m;
}

void grid_dependency_wait() {
    if (F) F->pdl_waited = true;
}
void launch_dependents() {}
static int pdl_state = -1;   // REPRISE_PDL, read once (a plain int: racing readers decide the same)
bool pdl_enabled() {
    if (pdl_state < 0) {
        const char *e = getenv("REPRISE_PDL");
        pdl_state = !(e && !strcmp(e, "0"));
    }
    return pdl_state == 1;
}
bool pdl_launch() { return launch_pdl; }
bool pdl_unwaited() { return launch_pdl && F && !F->pdl_waited; }

void run_kernel(const char *name, dim3 grid, dim3 block, size_t smem, const kernel_body &body, bool pdl) {
    launch_pdl = pdl;
    block_run *outer_b = B;   // a kernel launched from inside another is not supported, but keep state sane
    fiber *outer_f = F;
    int n = (int)(block.x * block.y * block.z);
    std::vector<fiber> fibers(n);
    std::vector<char> shared(smem ? smem : 1);
    if (perf) perf->launch_begin(name, grid, block, smem, shared.data());
    unsigned long long linear_block = 0;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++, linear_block++) {
                if (perf && !perf->run_block(linear_block)) continue;
                block_run b{};
                b.kernel = name;
                b.body = &body;
                b.f = &fibers;
                b.n = b.live = n;
                b.warps.assign((n + 31) / 32, warp_wait{});
                b.smem = shared.data();
                int i = 0;
                for (unsigned tz = 0; tz < block.z; tz++)
                    for (unsigned ty = 0; ty < block.y; ty++)
                        for (unsigned tx = 0; tx < block.x; tx++, i++) {
                            fibers[i].c = thread_coords{{tx, ty, tz}, {bx, by, bz}, block, grid};
                            fibers[i].linear = i;
                            fibers[i].pdl_waited = false;
                        }
                if (perf) perf->block_begin(n);
                run_block(b);
                for (const bulk_store &s : b.async.stores) land_store(b.async, s);   // never waited for: done by the kernel's end
                if (perf) perf->block_end();
            }
    if (perf) perf->launch_end();
    launch_pdl = false;
    B = outer_b;
    F = outer_f;
}

}   // namespace emu
