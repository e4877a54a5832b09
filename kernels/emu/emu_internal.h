// Shared between the emulation's parts: the stream operation queue, kernel execution, and fatal reports.
#ifndef REPRISE_EMU_INTERNAL_H
#define REPRISE_EMU_INTERNAL_H

#include <functional>
#include <string>

#include "kernels/emu/emu_device.h"

namespace emu {

// One unit of stream work: a kernel, a copy, a GEMM. Recorded into a graph while its stream captures.
struct op {
    enum kind_t { KERNEL, MEMCPY, MEMSET, LIBRARY } kind;
    std::string name;
    const void *fn;                 // the kernel, for cudaGraphExecUpdate's "same function" check
    std::function<void()> run;
};

// Runs the op now, or records it when the stream is capturing a graph.
cudaError_t submit(cudaStream_t stream, op o);

void run_kernel(const char *name, dim3 grid, dim3 block, size_t smem, const kernel_body &body);

// Is [p, p + n) inside one device allocation? (n = 0: is p inside one.)
bool is_device_range(const void *p, size_t n);

// A failure a GPU would turn into a crashed kernel or a sticky error: print where and abort.
[[noreturn]] void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

}   // namespace emu

#endif
