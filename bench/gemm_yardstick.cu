// cuBLAS's BF16 GEMM (FP32 accumulation) timed at a shape as the CUDA backend times its own (engine/backends/cuda/
// timing.cu): the yardstick bench_gpu's GEMM table sets beside the forward's GEMM, and the BF16 peak the prefill rows
// are measured against in the same run. Linked into bench_gpu only, never into the forward (cuBLAS picks its kernel
// and K split by shape and version: not batch-invariant). A GPU build only.
#include <algorithm>
#include <cstdio>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

// Seconds of out (R, N) = X (R, K) . W^T through cublasGemmEx (median of 9 after a warm-up, W in as many copies as
// make 512 MiB, used in turn, so that it comes from memory, not L2); 0 with a message in err.
extern "C" double bench_cublas_gemm_seconds(int R, int N, int K, char *err, size_t cap) {
    size_t w_elems = (size_t)N * K, copies = std::min<size_t>(64, std::max<size_t>(1, ((size_t)512 << 20) / (w_elems * 2)));
    __nv_bfloat16 *x = nullptr, *w = nullptr;
    float *out = nullptr;
    cublasHandle_t h = nullptr;
    cudaEvent_t a = nullptr, b = nullptr;
    double seconds = 0;
    const char *failed = nullptr;
    if (cudaMalloc((void **)&x, (size_t)R * K * 2) || cudaMalloc((void **)&w, copies * w_elems * 2) ||
        cudaMalloc((void **)&out, (size_t)R * N * 4) || cudaMemset(x, 0x3c, (size_t)R * K * 2) ||
        cudaMemset(w, 0x3c, copies * w_elems * 2))
        failed = "device memory";
    else if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) failed = "cublasCreate";
    else {
        cudaEventCreate(&a), cudaEventCreate(&b);
        const float one = 1.0f, zero = 0.0f;
        std::vector<float> ms;
        for (int rep = 0; rep < 10 && !failed; rep++) {
            // column-major: out^T (N x R) = W (K x N, ld K)^T . X^T (K x R, ld K)
            const __nv_bfloat16 *wt = w + (rep % copies) * w_elems;
            cudaEventRecord(a);
            if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, R, K, &one, wt, CUDA_R_16BF, K, x, CUDA_R_16BF, K, &zero, out,
                             CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
                failed = "cublasGemmEx";
            cudaEventRecord(b);
            cudaEventSynchronize(b);
            float t = 0;
            cudaEventElapsedTime(&t, a, b);
            if (rep) ms.push_back(t);   // the first is the warm-up
        }
        if (!failed) {
            std::sort(ms.begin(), ms.end());
            seconds = ms[ms.size() / 2] * 1e-3;
        }
    }
    if (failed) snprintf(err, cap, "cuBLAS yardstick at %d x %d x %d: %s failed (%s)", R, N, K, failed, cudaGetErrorString(cudaGetLastError()));
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    if (h) cublasDestroy(h);
    cudaFree(x), cudaFree(w), cudaFree(out);
    return failed ? 0 : seconds;
}
