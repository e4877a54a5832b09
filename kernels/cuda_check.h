// CHECK macro for CUDA runtime calls: a failure is a programming error, printed with the call, file and line.
#ifndef REPRISE_CUDA_CHECK_H
#define REPRISE_CUDA_CHECK_H

#include <cstdio>
#include <cstdlib>

#define CUDA_CHECK(call)                                                                                     \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) {                                                                             \
            fprintf(stderr, "CUDA error: %s at %s:%d: %s\n", #call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#endif
