// ptxas's report read back (registers, shared memory, stack, spills per kernel), the occupancy it allows on a Hopper
// SM against the CUDA occupancy calculator's arithmetic, and this build's kernels: every one reported, none spilling.
#include <unistd.h>

#include "test_util.h"
#include "tools/bench/kernel_resources.h"

static const char *REPORT =
    "ptxas info    : 0 bytes gmem\n"
    "ptxas info    : Compiling entry function 'void gemm_bf16_kernel<8, false>(__nv_bfloat16 const*, __nv_bfloat16 const*, "
    "int, int, int, gemm_out)' for 'sm_90a'\n"
    "ptxas info    : Function properties for void gemm_bf16_kernel<8, false>(__nv_bfloat16 const*, int, gemm_out)\n"
    "    40 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
    "ptxas info    : Used 128 registers, used 1 barriers, 40 bytes cumulative stack size, 45056 bytes smem\n"
    "ptxas info    : Compiling entry function 'rmsnorm_kernel(float*, float const*, float const*, int, float, __nv_bfloat16*)' "
    "for 'sm_90a'\n"
    "ptxas info    : Function properties for rmsnorm_kernel(float*, float const*, float const*, int, float, __nv_bfloat16*)\n"
    "    0 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
    "ptxas info    : Used 20 registers, used 1 barriers, 128 bytes smem, 400 bytes cmem[0]\n"
    "ptxas info    : Compiling entry function 'rmsnorm_kernel(float*, float const*, float const*, int, float, __nv_bfloat16*)' "
    "for 'sm_90a'\n"
    "ptxas info    : Used 20 registers, used 1 barriers, 128 bytes smem, 400 bytes cmem[0]\n";

static void reads_the_report(void) {
    char path[] = "/tmp/reprise-ptxas-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, REPORT, strlen(REPORT)) == (ssize_t)strlen(REPORT), "write %s", path);
    close(fd);
    kernel_resource_table t;
    rp_err err;
    CHECK(kernel_resources_load(&t, path, &err) == 0, "%s", err.msg);
    unlink(path);
    CHECK(t.n == 2, "%d kernels (one reported twice)", t.n);
    const kernel_resources *g = kernel_resources_find(&t, "(gemm_bf16_kernel<8, false>)");
    CHECK(g && g->registers == 128 && g->smem_static == 45056 && g->stack == 40 && g->spill_stores == 0, "gemm: %s",
          g ? "wrong figures" : "not found");
    const kernel_resources *r = kernel_resources_find(&t, "rmsnorm_kernel");
    CHECK(r && r->registers == 20 && r->smem_static == 128 && r->spill_stores == 8 && r->spill_loads == 4, "rmsnorm");
    CHECK(!kernel_resources_find(&t, "gemm_bf16_kernel<4, false>"), "another instance found");
    kernel_resources_free(&t);
    CHECK(kernel_resources_load(&t, "/nonexistent/report.txt", &err) != 0 && strstr(err.msg, "/nonexistent/report.txt"),
          "a missing report is named: %s", err.msg);
}

// The occupancy calculator's arithmetic for sm_90: registers in units of 256 per warp out of 65,536; shared memory
// with 1 KB reserved per CTA, in 128-byte units, out of 228 KB; 2,048 threads and 32 CTAs.
static void occupancy_as_the_calculator_gives_it(void) {
    const sm_limits *sm = sm_limits_hopper();
    kernel_resources gemm = {.registers = 128, .smem_static = 45056};
    occupancy o = kernel_occupancy(sm, &gemm, 256, 0, 132 * 2 * 3 + 1);
    // 128 x 32 = 4,096 registers a warp: 16 warps, 2 CTAs of 8; shared memory would allow 5, threads 8
    CHECK(o.ctas_per_sm == 2 && !strcmp(o.limited_by, "registers") && o.waves == 4 && fabs(o.occupancy - 0.25) < 1e-9,
          "gemm: %d CTAs/SM by %s, %g waves, occupancy %g", o.ctas_per_sm, o.limited_by, o.waves, o.occupancy);
    kernel_resources small = {.registers = 20, .smem_static = 128};
    o = kernel_occupancy(sm, &small, 256, 0, 1);
    // 20 -> 640 = 3 units (768) a warp: 85 warps; threads allow 8 CTAs of 256
    CHECK(o.ctas_per_sm == 8 && !strcmp(o.limited_by, "threads") && o.waves == 1 && o.occupancy == 1, "small: %d by %s",
          o.ctas_per_sm, o.limited_by);
    o = kernel_occupancy(sm, &small, 32, 0, 10000);
    CHECK(o.ctas_per_sm == 32 && !strcmp(o.limited_by, "CTAs") && o.waves == 3, "one warp a CTA: %d by %s, %g waves",
          o.ctas_per_sm, o.limited_by, o.waves);
    o = kernel_occupancy(sm, &small, 128, 100 * 1024, 1);   // 100 KB + 128 + 1 KB reserved: 2 fit in 228 KB
    CHECK(o.ctas_per_sm == 2 && !strcmp(o.limited_by, "shared memory"), "100 KB of shared memory: %d by %s", o.ctas_per_sm,
          o.limited_by);
    o = kernel_occupancy(sm, &small, 128, 228 * 1024, 1);
    CHECK(o.ctas_per_sm == 0 && !strcmp(o.limited_by, "shared memory"), "over 227 KB a CTA cannot run");
    kernel_resources fat = {.registers = 255};
    o = kernel_occupancy(sm, &fat, 1024, 0, 1);
    CHECK(o.ctas_per_sm == 0 && !strcmp(o.limited_by, "registers"), "255 registers x 1,024 threads cannot run");
}

// This build's own report (when nvcc built it): every kernel of kernels/ is in it, and none spills.
static void this_builds_kernels(void) {
#ifdef KERNEL_RESOURCES_PATH
    kernel_resource_table t;
    rp_err err;
    if (kernel_resources_load(&t, KERNEL_RESOURCES_PATH, &err)) {
        SKIP("%s", err.msg);
        return;
    }
    const char *launched[] = {"attention_decode_kernel", "attention_prefill_kernel", "gemm_mma_kernel<1, 8, true, 0>",
                              "gemm_mma_kernel<2, 7, true, 0>", "gemm_mma_kernel<4, 6, true, 0>", "gemm_mma_kernel<8, 4, false, 0>",
                              "gemm_mma_kernel<1, 16, true, 1>", "gemm_mma_kernel<2, 13, true, 1>",
                              "gemm_mma_kernel<4, 10, true, 1>", "gemm_mma_kernel<8, 6, false, 1>", "gemm_wgmma_kernel<128, 6, 1>", "gemm_wgmma_kernel<64, 4, 2>",
                              "to_bf16_kernel", "row_stats_kernel", "sum_buffers_kernel", "embed_kernel",
                              "gemm_bf16_kernel<4, false>", "gemm_bf16_kernel<8, false>", "gemm_bf16_kernel<4, true>",
                              "qkv_rope_kernel", "rmsnorm_kernel", "sample_candidates_kernel", "sample_pick_kernel"};
    for (size_t i = 0; i < sizeof launched / sizeof *launched; i++) {
        const kernel_resources *k = kernel_resources_find(&t, launched[i]);
        CHECK(k && k->registers > 0, "%s: not in %s", launched[i], KERNEL_RESOURCES_PATH);
        if (k) CHECK(k->spill_stores == 0 && k->spill_loads == 0, "%s spills (%d bytes stored, %d loaded)", k->name,
                     k->spill_stores, k->spill_loads);
    }
    kernel_resources_free(&t);
#else
    SKIP("this build has no nvcc: no ptxas report to read");
#endif
}

int main(void) {
    RUN(reads_the_report);
    RUN(occupancy_as_the_calculator_gives_it);
    RUN(this_builds_kernels);
    return TEST_EXIT();
}
