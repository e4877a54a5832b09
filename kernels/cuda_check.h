// CHECK macros for CUDA runtime and NCCL calls: a failure is a programming error (or a GPU that failed), printed
// with the call, file and line, and the tensor-parallel rank whose thread made it, then the program stops.
#ifndef REPRISE_CUDA_CHECK_H
#define REPRISE_CUDA_CHECK_H

#include <cstdio>
#include <cstdlib>

// The rank whose host thread this is (-1: not a rank thread: a single-GPU run).
inline thread_local int cuda_check_rank = -1;

#define CUDA_CHECK(call)                                                                                        \
    do {                                                                                                        \
        cudaError_t e_ = (call);                                                                                \
        if (e_ != cudaSuccess) {                                                                                \
            if (cuda_check_rank >= 0) fprintf(stderr, "rank %d: ", cuda_check_rank);                            \
            fprintf(stderr, "CUDA error: %s at %s:%d: %s\n", #call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
            abort();                                                                                            \
        }                                                                                                       \
    } while (0)

#define NCCL_CHECK(call)                                                                                        \
    do {                                                                                                        \
        ncclResult_t e_ = (call);                                                                               \
        if (e_ != ncclSuccess) {                                                                                \
            if (cuda_check_rank >= 0) fprintf(stderr, "rank %d: ", cuda_check_rank);                            \
            fprintf(stderr, "NCCL error: %s at %s:%d: %s\n", #call, __FILE__, __LINE__, ncclGetErrorString(e_)); \
            abort();                                                                                            \
        }                                                                                                       \
    } while (0)

#endif
