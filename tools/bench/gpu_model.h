// A predicted time for each kernel launch on a GPU, from what the emulation counted of it (the perf build's counters,
// kernels/emu/perf/) and what ptxas said it needs (kernel_resources.h): launch cost + the largest of its DRAM, L2,
// tensor-core, shared-memory and latency terms. Constants per GPU, fitted to the H200 measurements in
// bench/GPU_NOTES.md.
#ifndef REPRISE_GPU_MODEL_H
#define REPRISE_GPU_MODEL_H

#include "loader/error.h"
#include "tools/bench/kernel_resources.h"

typedef struct {
    const char *name;        // h100, h200
    double dram_bandwidth;   // bytes/s a streaming kernel reaches (a device-to-device copy's read + write)
    double l2_bandwidth;     // bytes/s of sectors served by L2
    double tensor_flops;     // dense BF16 FLOP/s the tensor cores reach
    double clock;            // SM clock, Hz (shared memory: one wavefront per clock per SM)
    double launch;           // seconds a kernel costs however small it is (ramp up, drain, the launch itself)
    double latency;          // seconds of one dependent round trip to memory
    double in_flight;        // independent requests a warp keeps in flight (the latency term divides by it)
    double pdl_launch;       // `launch` for a programmatic dependent launch after a kernel: the launch and ramp-up
                             // overlap that kernel's tail; what remains is the wait for it (not fitted: an assumption
                             // until a GPU measures bench_gpu with REPRISE_PDL=0 and 1)
} gpu_model;

// The model of a GPU by name (h100, h200), or NULL.
const gpu_model *gpu_model_named(const char *name);

// One kernel launch as the perf build counted it (a "counters" line of REPRISE_EMU_PROFILE); counts are of the
// CTAs run (ctas_run of ctas): gpu_predict scales them.
typedef struct {
    char name[160];
    long ctas, ctas_run;
    int threads, smem;
    double load_bytes, store_bytes, wide_bytes, load_requests, load_sectors, store_requests, store_sectors,
        dram_sectors, shared_bytes, shared_requests, shared_wavefronts, shared_ideal, tensor_flops;
    double async_requests;                 // of the load requests, cp.async's (the warp does not wait for them)
    double span_sectors;                   // the counted CTAs' footprint: each allocation's touched span, summed
    double async_threads, async_peak;     // threads that waited for copies, and the sum of their most in flight
    int pdl;                               // a programmatic dependent launch right after a kernel
    double pdl_early;                      // its global accesses made before pdl_wait (a race on a GPU: must be 0)
} launch_counters;

typedef struct {
    launch_counters *l;
    int n;
} launch_list;

// The "counters" lines of a REPRISE_EMU_PROFILE file, in order.
int launch_list_read(launch_list *out, const char *path, rp_err *err);
void launch_list_free(launch_list *l);

typedef struct {
    double seconds;                                        // the prediction
    double launch, dram, l2, tensor, smem, latency;        // its terms (seconds)
    const char *bound;                                     // the largest term: "dram", "l2", "tensor", "smem", "latency"
    double dram_bytes;                                     // compulsory DRAM bytes, scaled to every CTA
    double flops;                                          // tensor FLOPs, scaled
    double in_flight;                                      // a warp's requests in flight at once, on average
    double in_flight_sm_bytes;                             // bytes in flight on each SM the launch occupies
    occupancy occ;
} launch_prediction;

// The time of one launch (k: its ptxas figures, NULL when unknown: 32 registers, no static shared memory assumed).
launch_prediction gpu_predict(const gpu_model *g, const sm_limits *sm, const kernel_resources *k, const launch_counters *c);

#endif
