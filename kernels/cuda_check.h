// CHECK macros for CUDA and cuBLAS calls: a failure is a programming error, printed with the call, file and line.
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

#define CUBLAS_CHECK(call)                                                                                   \
    do {                                                                                                     \
        cublasStatus_t s_ = (call);                                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                   \
            fprintf(stderr, "cuBLAS error: %s at %s:%d: status %d\n", #call, __FILE__, __LINE__, (int)s_);  \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#endif
