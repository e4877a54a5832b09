// Shared between the emulation's parts: the stream operation queue, kernel execution, and fatal reports.
#ifndef REPRISE_EMU_INTERNAL_H
#define REPRISE_EMU_INTERNAL_H

#include <functional>
#include <string>
#include <vector>

#include "kernels/emu/emu_device.h"

namespace emu {

// One unit of stream work: a kernel, a copy, a GEMM. Recorded into a graph while its stream captures.
struct op {
    enum kind_t { KERNEL, MEMCPY, MEMSET, LIBRARY } kind;
    std::string name;
    const void *fn;                 // the kernel, for cudaGraphExecUpdate's "same function" check
    std::function<void()> run;
    // what the launch counters say of it (emu_profile.cpp)
    dim3 grid = dim3(0), block = dim3(0);   // a kernel's
    size_t smem = 0;                        // a kernel's dynamic shared memory
    size_t bytes = 0;                       // a copy's or a memset's
    int copy_kind = 0;                      // a copy's cudaMemcpyKind
    bool pdl = false;                       // a kernel launched with programmatic dependent launch whose stream's
                                            // previous work is a kernel (the launch it may overlap)
};

// The launch counters (REPRISE_EMU_PROFILE): a line for work issued outside a capture, and for a graph's launch
// with its nodes; fresh: captured or updated since its last launch.
void profile_launch(const op &o, int device);
void profile_graph(const std::vector<op> &ops, bool fresh, int device);

// Runs the op now, or records it when the stream is capturing a graph.
cudaError_t submit(cudaStream_t stream, op o);

void run_kernel(const char *name, dim3 grid, dim3 block, size_t smem, const kernel_body &body, bool pdl);
// The running kernel's programmatic dependent launch: whether it is one, and whether the running CUDA thread has
// not waited for the previous grid yet (an access now would race it on a GPU).
bool pdl_launch();
bool pdl_unwaited();

// The perf build's counters (kernels/emu/perf/emu_perf.cpp installs them): called around each launch and each CTA,
// and for the accesses kernels report themselves (perf_access, perf_tensor, perf_quiet).
struct perf_hooks {
    void (*launch_begin)(const char *name, dim3 grid, dim3 block, size_t smem, const void *smem_buffer);
    bool (*run_block)(unsigned long long linear_block);   // false: this CTA is left out (REPRISE_EMU_PERF_SAMPLE)
    void (*block_begin)(int threads);
    void (*block_end)();
    void (*launch_end)();
    void (*access)(const void *p, size_t bytes, bool write, const void *pc);
    void (*async_load)(const void *p, size_t bytes, const void *pc);   // a cp.async read of global memory
    void (*async_wait)(unsigned outstanding);   // a thread waits with this many of its copies in flight
    void (*bulk)(bool open);   // a bulk tensor copy's rows: async_loads between open and close are one request
    void (*tensor)(double flops);
    void (*quiet)(bool on);
};
extern perf_hooks *perf;

// Whether p is on the running CUDA thread's stack (a local variable).
bool on_thread_stack(const void *p);
// The device allocation holding p, as [*lo, *hi); false when p is in none.
bool device_allocation(const void *p, uintptr_t *lo, uintptr_t *hi);
// One line into the launch counters' file (REPRISE_EMU_PROFILE), when it is open; whether it is.
void profile_line(const std::string &line);
bool profile_open();

// Is [p, p + n) inside one device allocation? (n = 0: is p inside one.)
bool is_device_range(const void *p, size_t n);

// A failure a GPU would turn into a crashed kernel or a sticky error: print where and abort.
[[noreturn]] void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

}   // namespace emu

#endif
