// What ptxas says each kernel needs on sm_90a (registers, shared memory, stack, spills), read from the build's
// kernel_resources_sm90a.txt, and what that allows on a GPU: CTAs resident per SM, and waves over its SMs.
#ifndef REPRISE_KERNEL_RESOURCES_H
#define REPRISE_KERNEL_RESOURCES_H

#include "loader/error.h"

typedef struct {
    char name[160];      // as REPRISE_LAUNCH names it: "rmsnorm_kernel", "gemm_bf16_kernel<4, false>"
    int registers;       // per thread
    int smem_static;     // bytes of __shared__ arrays
    int stack;           // bytes of stack frame per thread
    int spill_stores, spill_loads;   // bytes
} kernel_resources;

typedef struct {
    kernel_resources *k;
    int n;
} kernel_resource_table;

// Reads ptxas -v's report (demangled, as the build writes it). A kernel compiled in several files is kept once.
int kernel_resources_load(kernel_resource_table *t, const char *path, rp_err *err);
void kernel_resources_free(kernel_resource_table *t);

// The kernel a launch names ("(gemm_bf16_kernel<4, false>)": the parentheses the launch macro needs are dropped),
// or NULL.
const kernel_resources *kernel_resources_find(const kernel_resource_table *t, const char *launch_name);

// An SM's limits (per SM unless said): what decides how many CTAs of a kernel are resident at once.
typedef struct {
    const char *name;
    int sms;
    int registers;            // 32-bit registers
    int register_unit;        // registers are allocated per warp in units of this many
    int smem;                 // bytes of shared memory a kernel's CTAs may use
    int smem_per_cta_max;     // the most one CTA may have
    int smem_reserved;        // bytes the runtime keeps per CTA
    int smem_unit;            // allocation granularity
    int threads, ctas;        // resident threads, CTAs
} sm_limits;

// H100 SXM and H200: the same SM (sm_90), 132 of them.
const sm_limits *sm_limits_hopper(void);

typedef struct {
    int ctas_per_sm;          // 0: the launch cannot run (too many registers, threads or bytes of shared memory)
    const char *limited_by;   // "registers", "shared memory", "threads", "CTAs"
    double waves;             // CTAs / (CTAs per SM x SMs), rounded up
    double occupancy;         // resident warps over the SM's 64
} occupancy;

// A launch of ctas CTAs of `threads` threads with `dynamic_smem` bytes of dynamic shared memory.
occupancy kernel_occupancy(const sm_limits *sm, const kernel_resources *k, int threads, int dynamic_smem, long ctas);

#endif
