// CPU emulation of the cuBLAS subset reprise uses: handles, streams, cublasGemmEx and cublasGemmStridedBatchedEx.
//
// The semantics are cuBLAS's, column-major: C = alpha op(A) op(B) + beta C with op(A) m x k, op(B) k x n; an
// untransposed A is read as A[i + p lda], a transposed one as A[p + i lda]. So a swapped transpose flag or leading
// dimension gives the same wrong answer here as on a GPU. Inputs BF16, F16 or F32; products accumulate in float.
// Operands outside device memory stop the program, as the illegal-address fault they would be on a GPU.
#include <cublas_api.h>

#include "kernels/emu/emu_internal.h"

struct cublasContext {
    cudaStream_t stream;
};

namespace {

float load(const void *p, cudaDataType t, long long i) {
    switch (t) {
    case CUDA_R_32F: return static_cast<const float *>(p)[i];
    case CUDA_R_16F: return __half2float(static_cast<const __half *>(p)[i]);
    default: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    }
}

void store(void *p, cudaDataType t, long long i, float v) {
    switch (t) {
    case CUDA_R_32F: static_cast<float *>(p)[i] = v; break;
    case CUDA_R_16F: static_cast<__half *>(p)[i] = __float2half(v); break;
    default: static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16(v); break;
    }
}

size_t elem_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

// The byte span [first, last] a column-major operand of rows x cols with leading dimension ld touches.
void check_operand(const char *what, const void *p, cudaDataType t, long long rows, long long cols, long long ld) {
    if (rows == 0 || cols == 0) return;
    size_t bytes = (size_t)((cols - 1) * ld + rows) * elem_size(t);
    if (!emu::is_device_range(p, bytes))
        emu::fatal("cuBLAS GEMM: %s (%lld x %lld, ld %lld, %zu bytes from %p) is not inside one device allocation", what,
                   rows, cols, ld, bytes, p);
}

struct gemm {
    cublasOperation_t ta, tb;
    int m, n, k;
    float alpha, beta;
    const void *A, *B;
    void *C;
    cudaDataType at, bt, ct;
    int lda, ldb, ldc;

    void run(long long off_a, long long off_b, long long off_c) const {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0;
                for (int p = 0; p < k; p++) {
                    long long ai = ta == CUBLAS_OP_N ? i + (long long)p * lda : p + (long long)i * lda;
                    long long bi = tb == CUBLAS_OP_N ? p + (long long)j * ldb : j + (long long)p * ldb;
                    acc = fmaf(load(A, at, off_a + ai), load(B, bt, off_b + bi), acc);
                }
                long long ci = off_c + i + (long long)j * ldc;
                float old = beta != 0 ? load(C, ct, ci) : 0;   // beta 0: C is not read, as in cuBLAS
                store(C, ct, ci, alpha * acc + beta * old);
            }
    }
};

cublasStatus_t validate(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, cudaDataType at, int lda,
                        cudaDataType bt, int ldb, cudaDataType ct, int ldc, cublasComputeType_t compute) {
    auto ok_op = [](cublasOperation_t o) { return o == CUBLAS_OP_N || o == CUBLAS_OP_T; };
    if (!ok_op(ta) || !ok_op(tb) || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k) || ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) || ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    auto ok_type = [](cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; };
    if (!ok_type(at) || at != bt || !(ct == at || ct == CUDA_R_32F)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32) return CUBLAS_STATUS_NOT_SUPPORTED;
    return CUBLAS_STATUS_SUCCESS;
}

}   // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
    *h = new cublasContext{nullptr};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void *workspace, size_t bytes) {
    (void)h;
    if (bytes && !emu::is_device_range(workspace, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    (void)h, (void)mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_INVALID_VALUE: return "an unsupported value or parameter was passed to the function";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "unknown cuBLAS status";
    }
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType at, int lda,
                                          long long strideA, const void *B, cudaDataType bt, int ldb, long long strideB,
                                          const void *beta, void *C, cudaDataType ct, int ldc, long long strideC,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    (void)algo;
    cublasStatus_t st = validate(ta, tb, m, n, k, at, lda, bt, ldb, ct, ldc, compute);
    if (st != CUBLAS_STATUS_SUCCESS || batch < 0) return st ? st : CUBLAS_STATUS_INVALID_VALUE;
    gemm g{ta, tb, m, n, k, *static_cast<const float *>(alpha), *static_cast<const float *>(beta), A, B, C, at, bt, ct, lda, ldb, ldc};
    for (int b = 0; b < batch; b++) {   // check every batch's operands now, so a bad stride fails at the call
        check_operand("A", static_cast<const char *>(A) + b * strideA * (long long)elem_size(at), at,
                      ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda);
        check_operand("B", static_cast<const char *>(B) + b * strideB * (long long)elem_size(bt), bt,
                      tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb);
        check_operand("C", static_cast<const char *>(C) + b * strideC * (long long)elem_size(ct), ct, m, n, ldc);
    }
    emu::submit(h->stream, emu::op{emu::op::LIBRARY, "cublasGemmEx", nullptr, [=]() {
                    for (int b = 0; b < batch; b++) g.run(b * strideA, b * strideB, b * strideC);
                }});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                            int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo) {
    return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, at, lda, 0, B, bt, ldb, 0, beta, C, ct, ldc, 0, 1,
                                      compute, algo);
}

}   // extern "C"
