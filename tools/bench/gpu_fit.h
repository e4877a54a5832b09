// The speed model against a device: kernel times measured by Nsight Compute beside the model's predictions for the
// same kernels at the same shapes, and the model's constants refitted to them (tests/run_gpu.sh, bench_gpu_emu
// --measured).
#ifndef REPRISE_GPU_FIT_H
#define REPRISE_GPU_FIT_H

#include <stdio.h>

#include "loader/error.h"
#include "tools/bench/gpu_model.h"
#include "tools/bench/kernel_resources.h"

// One kernel at one launch shape as the device ran it: the mean of its launches.
typedef struct {
    char name[96];    // the kernel's base name (kernel_base_name)
    long ctas;        // grid x * y * z
    int threads;      // block x * y * z
    int launches;
    double seconds;   // mean time a launch (gpu__time_duration.sum)
} measured_kernel;

typedef struct {
    measured_kernel *k;
    int n;
} measured_list;

// Nsight Compute's per-launch CSV (`ncu --csv --metrics gpu__time_duration.sum`, any units, any other columns and
// lines around it): the columns are found by their header names ("Kernel Name", "Grid Size", "Block Size", "Metric
// Name", "Metric Unit", "Metric Value"). Launches of the same kernel and shape are averaged.
int measured_list_read_ncu(measured_list *out, const char *path, rp_err *err);
void measured_list_free(measured_list *m);

// A kernel's name without return type, namespace, template arguments or parameters, as the emulation's launch lines
// ("(gemm_bf16_kernel<4, false>)") and ncu ("void gemm_bf16_kernel<4, false>(const __nv_bfloat16 *, ...)") both
// reduce to it ("gemm_bf16_kernel").
void kernel_base_name(const char *full, char *out, size_t cap);

// A measured kernel with the emulation's launches of the same kernel and shape.
typedef struct {
    const measured_kernel *measured;
    const launch_counters **counted;   // the counted launches that match it
    int n_counted;
    const kernel_resources *res;       // ptxas's figures, or NULL
} fit_point;

typedef struct {
    fit_point *p;
    int n;
    int unmatched;   // measured kernels the counted launches have no match for
} fit_set;

// Pairs each measured kernel with the counted launches of the same base name, CTAs and threads.
void fit_set_match(fit_set *out, const measured_list *m, const launch_list *counted, const kernel_resource_table *res);
void fit_set_free(fit_set *s);

// The model's mean time for a point's launches.
double fit_point_predict(const fit_point *p, const gpu_model *g);

// The root mean square of log(predicted / measured) over the points.
double fit_rms_log_error(const fit_set *s, const gpu_model *g);

// The constants that fit the points best: launch cost, round-trip latency, DRAM and L2 bandwidth refitted from
// `start` (the others kept: the tensor term needs a prefill to fit) to the least squares of the log errors, by
// coordinate search, each constant kept within a factor of 10 of its start.
gpu_model gpu_model_fit(const fit_set *s, const gpu_model *start);

// The side-by-side table (kernel, shape, predicted with `before` and with `after`, measured, errors), the constants
// before and after, and the line for gpu_model.c.
void fit_report(FILE *to, const fit_set *s, const gpu_model *before, const gpu_model *after);

#endif
