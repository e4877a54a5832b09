// Settings of the CUDA emulation that a real GPU fixes in hardware: memory size and device count.
#ifndef REPRISE_EMU_CONTROL_H
#define REPRISE_EMU_CONTROL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Memory of an emulated device (default 16 GiB, or REPRISE_EMU_DEVICE_MEMORY=BYTES); cudaMalloc past it fails
// with cudaErrorMemoryAllocation.
void emu_set_device_memory(int device, size_t bytes);
// The most device memory allocated at once since the start (or the last reset), and the current total.
size_t emu_device_peak(int device);
size_t emu_device_used(int device);
void emu_reset_peak(int device);
// Number of emulated devices (default 2, or REPRISE_EMU_DEVICES).
void emu_set_device_count(int n);

// Runs the threads of a block in a random order (from this seed) between barriers, to expose missing
// barriers; 0 (the default, or REPRISE_EMU_SHUFFLE) runs them in index order.
void emu_set_shuffle_seed(unsigned long long seed);

// The launch counters: one JSON line per kernel launch, copy, memset, library call and graph launch (with its
// nodes) into path, truncated; NULL stops them. REPRISE_EMU_PROFILE=FILE does the same from the start, appending.
// -1 when path cannot be written.
int emu_profile_open(const char *path);
// The perf build only: runs one CTA in k of every launch (REPRISE_EMU_PERF_SAMPLE=k): counts for the CTAs run, whose
// lines say so, and results that are wrong (the other CTAs never ran).
void emu_set_perf_sample(unsigned long long k);

#ifdef __cplusplus
}
#endif

#endif
