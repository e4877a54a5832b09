// CHECK macros for CUDA runtime and NCCL calls: a failure is a programming error (or a GPU that failed), printed
// with the call, file and line, and the tensor-parallel rank whose thread made it, then the program stops.
#ifndef REPRISE_CUDA_CHECK_H
#define REPRISE_CUDA_CHECK_H

#include <cstdio>
#include <cstdlib>

// The rank whose host thread this is (-1: not a rank thread: a single-GPU run).
inline thread_local int cuda_check_rank = -1;

// Prints the failure (with the rank, on a rank's thread) and stops the program.
[[noreturn]] inline void cuda_check_fail(const char *library, const char *call, const char *file, int line, const char *why) {
    if (cuda_check_rank >= 0) fprintf(stderr, "rank %d: ", cuda_check_rank);
    fprintf(stderr, "%s error: %s at %s:%d: %s\n", library, call, file, line, why);
    abort();
}

#define CUDA_CHECK(call)                                                                              \
    do {                                                                                              \
        cudaError_t e_ = (call);                                                                      \
        if (e_ != cudaSuccess) cuda_check_fail("CUDA", #call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
    } while (0)

#define NCCL_CHECK(call)                                                                              \
    do {                                                                                              \
        ncclResult_t e_ = (call);                                                                     \
        if (e_ != ncclSuccess) cuda_check_fail("NCCL", #call, __FILE__, __LINE__, ncclGetErrorString(e_)); \
    } while (0)

#endif
