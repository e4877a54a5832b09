// The CUDA emulation itself (kernels/README.md): kernels, barriers and warp intrinsics, launch errors, memory, graphs,
// cuBLAS GEMM semantics, and NCCL across two emulated devices. Planted bugs must be caught, not pass.
#include <cublas_v2.h>
#include <nccl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/emu/emu_control.h"
#include "tests/emu_test_kernels.cu"
#include "tests/emu_test_util.h"
#include "tests/test_util.h"

#define CUDA_OK(x) CHECK((x) == cudaSuccess, "%s: %s", #x, cudaGetErrorString(cudaGetLastError()))

static void reduction_with_shuffles_and_shared_memory(void) {
    for (int n : {1, 31, 1000, 4099}) {
        std::vector<float> x(n);
        double want = 0;
        for (int i = 0; i < n; i++) want += x[i] = (float)((i * 37) % 11) - 5.0f;
        float *dx = device_copy(x), *dout;
        cudaMalloc((void **)&dout, sizeof(float));
        cudaMemset(dout, 0, sizeof(float));
        CUDA_OK(launch_block_sum(dx, n, dout, 3, 256));
        float got = host_copy(dout, 1)[0];
        CHECK(got == (float)want, "n=%d: sum %g, want %g", n, got, want);
        cudaFree(dx);
        cudaFree(dout);
    }
}

static void warp_intrinsics_follow_cuda_semantics(void) {
    int *d;
    cudaMalloc((void **)&d, 64 * 7 * sizeof(int));
    CUDA_OK(launch_warp_ops(d));
    std::vector<int> o = host_copy(d, 64 * 7);
    unsigned want_ballot = 0;
    for (int l = 0; l < 32; l++) want_ballot |= (l % 3 == 0 ? 1u : 0u) << l;
    for (int t = 0; t < 64; t++) {
        int lane = t % 32, seg = lane & ~15, *r = &o[t * 7];
        int up = lane - 1 < seg ? lane : lane - 1, down = lane + 2 >= seg + 16 ? lane : lane + 2, idx = (seg + 3) * 10;
        CHECK((unsigned)r[0] == want_ballot && r[1] == 1 && r[2] == 1 && r[3] == 0, "thread %d: votes %x %d %d %d", t, r[0], r[1], r[2], r[3]);
        CHECK(r[4] == up && r[5] == down && r[6] == idx, "thread %d: up %d (want %d) down %d (want %d) idx %d (want %d)", t,
              r[4], up, r[5], down, r[6], idx);
    }
    cudaFree(d);
}

static void grid_and_block_in_three_dimensions(void) {
    dim3 grid(3, 2, 2), block(4, 2, 3);
    int total = 3 * 2 * 2 * 4 * 2 * 3, *d;
    cudaMalloc((void **)&d, total * sizeof(int));
    cudaMemset(d, 0xff, total * sizeof(int));
    CUDA_OK(launch_coordinates(d, grid, block));
    std::vector<int> o = host_copy(d, total);
    int bad = 0;
    for (int i = 0; i < total; i++) bad += o[i] != i;
    CHECK(bad == 0, "%d of %d threads wrote the wrong id", bad, total);
    cudaFree(d);
}

static void divergent_barriers_are_reported(void) {
    expect_abort("half a block at __syncthreads", [] {
        int *d;
        cudaMalloc((void **)&d, 32 * sizeof(int));
        launch_divergent_barrier(d);
    }, {"kernel 'divergent_barrier'", "block (0,0,0)", "thread (", "divergent"});
    expect_abort("two different __syncthreads calls", [] {
        int *d;
        cudaMalloc((void **)&d, 32 * sizeof(int));
        launch_two_barriers(d);
    }, {"kernel 'two_barriers'", "another", "divergent"});
    expect_abort("a full-mask shuffle half the warp skips", [] {
        int *d;
        cudaMalloc((void **)&d, 32 * sizeof(int));
        launch_shuffle_missing_lanes(d);
    }, {"kernel 'shuffle_missing_lanes'", "exited"});
}

// Without the barrier the result depends on the order threads run in; shuffled order must expose it.
static void missing_barrier_is_caught_under_shuffled_order(void) {
    const int n = 64;
    std::vector<int> in(n), want(n);
    for (int i = 0; i < n; i++) in[i] = i * 3 + 1;
    for (int i = 0; i < n; i++) want[i] = in[i > 0 ? i - 1 : 0];
    int *din = device_copy(in), *dout;
    cudaMalloc((void **)&dout, n * sizeof(int));
    CUDA_OK(launch_rotate_shared(din, dout, n, 1));
    CHECK(host_copy(dout, n) == want, "with the barrier the shift is wrong");
    CUDA_OK(launch_rotate_shared(din, dout, n, 0));
    CHECK(host_copy(dout, n) == want, "in index order the missing barrier should go unnoticed (that is the point)");
    cudaFree(din);
    cudaFree(dout);
    // in a child with shuffled order: the buggy kernel must disagree somewhere
    expect_abort("missing barrier under shuffled order", [want, in] {
        emu_set_shuffle_seed(12345);
        int *di = device_copy(in), *d;
        cudaMalloc((void **)&d, n * sizeof(int));
        int wrong = 0;
        for (int run = 0; run < 4; run++) {
            launch_rotate_shared(di, d, n, 0);
            wrong += host_copy(d, n) != want;
            launch_rotate_shared(di, d, n, 1);
            if (host_copy(d, n) != want) _exit(3);   // the correct kernel must stay correct in any order
        }
        if (wrong) {
            fprintf(stderr, "missing barrier exposed in %d of 4 shuffled runs\n", wrong);
            abort();
        }
    }, {"missing barrier exposed"});
}

static void launch_errors_are_reported_like_the_runtime(void) {
    float *x;
    cudaMalloc((void **)&x, 64 * sizeof(float));
    cudaGetLastError();
    CHECK(launch_scale_add_config(x, x, 64, dim3(0), 0) == cudaErrorInvalidConfiguration, "empty block");
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration && cudaGetLastError() == cudaSuccess, "last error not reported once");
    CHECK(launch_scale_add_config(x, x, 64, dim3(2048), 0) == cudaErrorInvalidConfiguration, "2048 threads");
    CHECK(launch_scale_add_config(x, x, 64, dim3(32, 32, 2), 0) == cudaErrorInvalidConfiguration, "32x32x2 threads");
    CHECK(launch_scale_add_config(x, x, 64, dim3(64), 64 * 1024) == cudaErrorInvalidValue, "64 KB dynamic shared memory");
    CUDA_OK(cudaFuncSetAttribute(scale_add_fn(), cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024));
    CUDA_OK(launch_scale_add_config(x, x, 64, dim3(64), 64 * 1024));
    CHECK(launch_scale_add_config(x, x, 64, dim3(64), 128 * 1024) == cudaErrorInvalidValue, "past the opted-in size");
    CHECK(strcmp(cudaGetErrorString(cudaErrorInvalidConfiguration), "invalid configuration argument") == 0, "error string");
    cudaGetLastError();
    cudaFree(x);
}

static void memory_limits_and_bounds(void) {
    emu_set_device_memory(1, 1 << 20);
    cudaSetDevice(1);
    void *a, *b;
    CUDA_OK(cudaMalloc(&a, 768 << 10));
    CHECK(cudaMalloc(&b, 512 << 10) == cudaErrorMemoryAllocation && b == nullptr, "out of memory not reported");
    CHECK(cudaGetLastError() == cudaErrorMemoryAllocation, "OOM not the last error");
    size_t free_b, total;
    cudaMemGetInfo(&free_b, &total);
    CHECK(total == (1 << 20) && free_b == (256 << 10), "mem info %zu of %zu", free_b, total);
    CUDA_OK(cudaFree(a));
    CUDA_OK(cudaMalloc(&b, 512 << 10));
    std::vector<char> host(600 << 10);
    CHECK(cudaMemcpy(b, host.data(), host.size(), cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "copy past the end accepted");
    CHECK(cudaFree(host.data()) == cudaErrorInvalidValue, "freeing host memory accepted");
    cudaGetLastError();
    cudaFree(b);
    cudaSetDevice(0);
    int count;
    cudaGetDeviceCount(&count);
    CHECK(cudaSetDevice(count) == cudaErrorInvalidDevice, "device %d accepted", count);
    cudaGetLastError();
}

static void bf16_pairs_with_hfma2(void) {
    const int n2 = 100;
    std::vector<__nv_bfloat162> x(n2);
    for (int i = 0; i < n2; i++) x[i] = __floats2bfloat162_rn(i * 0.25f, -i * 0.5f);
    __nv_bfloat162 *dx = device_copy(x), *dy;
    cudaMalloc((void **)&dy, n2 * sizeof(*dy));
    CUDA_OK(launch_axpb_bf16(dx, __floats2bfloat162_rn(2.0f, 3.0f), __floats2bfloat162_rn(1.0f, 1.0f), dy, n2));
    std::vector<__nv_bfloat162> y = host_copy(dy, n2);
    int bad = 0;
    for (int i = 0; i < n2; i++) {
        float2 f = __bfloat1622float2(y[i]), in = __bfloat1622float2(x[i]);
        bad += __bfloat162float(__float2bfloat16(2 * in.x + 1)) != f.x || __bfloat162float(__float2bfloat16(3 * in.y + 1)) != f.y;
    }
    CHECK(bad == 0, "%d of %d bf16 pairs wrong", bad, n2);
    cudaFree(dx);
    cudaFree(dy);
}

// Reference values: the hardware's fast versions differ in the last bits, so a relative tolerance of 1e-6.
static void math_intrinsics_match_libm(void) {
    const int n = 50;
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = -1.5f + i * 0.07f;
    float *dx = device_copy(x), *dout;
    cudaMalloc((void **)&dout, 4 * n * sizeof(float));
    CUDA_OK(launch_math_intrinsics(dx, dout, n));
    std::vector<float> o = host_copy(dout, 4 * n);
    for (int i = 0; i < n; i++) {
        float want[4] = {expf(x[i]), 1.0f / sqrtf(x[i] + 2.0f), x[i] / 3.0f, x[i] < 0 ? 0.0f : x[i] > 1 ? 1.0f : x[i]};
        for (int k = 0; k < 4; k++)
            CHECK(fabsf(o[4 * i + k] - want[k]) <= 1e-6f * fabsf(want[k]) + 1e-7f, "x=%g op %d: %g want %g", x[i], k, o[4 * i + k], want[k]);
    }
    cudaFree(dx), cudaFree(dout);
}

static void graph_replay_reruns_captured_kernels_with_captured_arguments(void) {
    const int n = 300;
    std::vector<float> x(n, 1.0f);
    float *dx = device_copy(x), *dy;
    cudaMalloc((void **)&dy, n * sizeof(float));
    cudaStream_t s;
    cudaStreamCreate(&s);
    cudaGraph_t g;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CUDA_OK(launch_scale_add(dx, 2.0f, 1.0f, dy, n, s));   // y = 2x + 1
    CUDA_OK(launch_scale_add(dy, 3.0f, 0.0f, dx, n, s));   // x = 3y
    CUDA_OK(cudaStreamEndCapture(s, &g));
    CHECK(host_copy(dy, 1)[0] == 0.0f || true, "capture must not run the kernels");
    CHECK(host_copy(dx, 1)[0] == 1.0f, "capture ran the kernels");
    CUDA_OK(cudaGraphInstantiate(&exec, g, 0));
    CUDA_OK(cudaGraphLaunch(exec, s));
    CHECK(host_copy(dx, 1)[0] == 9.0f, "after one replay x = %g, want 9", host_copy(dx, 1)[0]);
    CUDA_OK(cudaGraphLaunch(exec, s));   // replays read the buffers' new contents through the captured pointers
    CHECK(host_copy(dx, 1)[0] == 57.0f, "after two replays x = %g, want 57", host_copy(dx, 1)[0]);
    // an update with the same topology swaps in new arguments
    cudaGraph_t g2;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    launch_scale_add(dx, 1.0f, -7.0f, dy, n, s);
    launch_scale_add(dy, 1.0f, 0.0f, dx, n, s);
    CUDA_OK(cudaStreamEndCapture(s, &g2));
    cudaGraphExecUpdateResultInfo info;
    CUDA_OK(cudaGraphExecUpdate(exec, g2, &info));
    CUDA_OK(cudaGraphLaunch(exec, s));
    CHECK(host_copy(dx, 1)[0] == 50.0f, "after the updated replay x = %g, want 50", host_copy(dx, 1)[0]);
    cudaGraph_t g3;   // a different topology is refused
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    launch_scale_add(dx, 1.0f, 0.0f, dy, n, s);
    cudaStreamEndCapture(s, &g3);
    CHECK(cudaGraphExecUpdate(exec, g3, &info) == cudaErrorGraphExecUpdateFailure &&
              info.result == cudaGraphExecUpdateErrorTopologyChanged, "topology change accepted");
    cudaGetLastError();
    // graph replay equals eager execution
    std::vector<float> eager(n, 1.0f);
    float *ex = device_copy(eager), *ey;
    cudaMalloc((void **)&ey, n * sizeof(float));
    for (int r = 0; r < 3; r++) {
        launch_scale_add(ex, 1.0f, -7.0f, ey, n, s);
        launch_scale_add(ey, 1.0f, 0.0f, ex, n, s);
    }
    cudaMemcpy(dx, eager.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    for (int r = 0; r < 3; r++) cudaGraphLaunch(exec, s);
    CHECK(host_copy(dx, n) == host_copy(ex, n), "graph replay differs from eager execution");
    cudaGraphDestroy(g), cudaGraphDestroy(g2), cudaGraphDestroy(g3), cudaGraphExecDestroy(exec);
    cudaStreamDestroy(s);
    cudaFree(dx), cudaFree(dy), cudaFree(ex), cudaFree(ey);
}

// The launch counters: a line per kernel launch (name, grid, block, shared memory, CTAs), copy (direction, bytes) and
// graph launch (its nodes by kind, whether captured anew, then each node), in issue order; nothing for a capture.
static void launch_counters_say_what_ran(void) {
    char path[] = "/tmp/reprise-emu-profile-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    CHECK(emu_profile_open(path) == 0, "emu_profile_open(%s)", path);
    const int n = 300;
    std::vector<float> h(n, 1.0f);
    float *dx = device_copy(h), *dy;
    cudaMalloc((void **)&dy, n * sizeof(float));
    cudaStream_t s;
    cudaStreamCreate(&s);
    CUDA_OK(launch_scale_add(dx, 2.0f, 1.0f, dy, n, s));
    cudaGraph_t g;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    launch_scale_add(dx, 2.0f, 1.0f, dy, n, s);
    cudaMemcpyAsync(dx, dy, n * sizeof(float), cudaMemcpyDeviceToDevice, s);
    cudaMemsetAsync(dy, 0, 16, s);
    launch_scale_add(dy, 3.0f, 0.0f, dx, n, s);
    CUDA_OK(cudaStreamEndCapture(s, &g));
    CUDA_OK(cudaGraphInstantiate(&exec, g, 0));
    CUDA_OK(cudaGraphLaunch(exec, s));
    CUDA_OK(cudaGraphLaunch(exec, s));
    CUDA_OK(cudaGraphExecUpdate(exec, g, nullptr));
    CUDA_OK(cudaGraphLaunch(exec, s));
    cudaStreamSynchronize(s);
    emu_profile_open(nullptr);
    std::vector<std::string> lines;
    FILE *f = fopen(path, "r");
    char buf[1024];
    while (f && fgets(buf, sizeof buf, f)) lines.push_back(buf);
    if (f) fclose(f);
    unlink(path);
    const char *want[] = {
        "{\"launch\":\"memcpy_h2d\",\"name\":\"memcpy\",\"device\":0,\"bytes\":1200}\n",
        "{\"launch\":\"kernel\",\"name\":\"scale_add\",\"device\":0,\"grid\":[3,1,1],\"block\":[128,1,1],\"smem\":0,"
        "\"ctas\":3,\"threads\":128}\n",
        "{\"launch\":\"graph\",\"graph\":1,\"device\":0,\"new\":true,\"nodes\":4,\"kernel\":2,\"memcpy_h2d\":0,"
        "\"memcpy_d2d\":1,\"memcpy_d2h\":0,\"memset\":1,\"other\":0}\n",
        "{\"launch\":\"kernel\",\"name\":\"scale_add\",\"device\":0,\"grid\":[3,1,1],\"block\":[128,1,1],\"smem\":0,"
        "\"ctas\":3,\"threads\":128,\"graph\":1}\n",
        "{\"launch\":\"memcpy_d2d\",\"name\":\"memcpy\",\"device\":0,\"bytes\":1200,\"graph\":1}\n",
        "{\"launch\":\"memset\",\"name\":\"memset\",\"device\":0,\"bytes\":16,\"graph\":1}\n",
    };
    CHECK(lines.size() == 2 + 3 * 5, "%zu lines", lines.size());
    for (size_t i = 0; i < 6 && i < lines.size(); i++) CHECK(lines[i] == want[i], "line %zu: %s", i, lines[i].c_str());
    CHECK(lines.size() > 12 && lines[7].find("\"graph\":2,\"device\":0,\"new\":false") != std::string::npos, "a replay is not new: %s",
          lines.size() > 7 ? lines[7].c_str() : "");
    CHECK(lines.size() > 12 && lines[12].find("\"graph\":3,\"device\":0,\"new\":true") != std::string::npos, "an update is new: %s",
          lines.size() > 12 ? lines[12].c_str() : "");
    cudaGraphDestroy(g), cudaGraphExecDestroy(exec);
    cudaStreamDestroy(s);
    cudaFree(dx), cudaFree(dy);
}

// Column-major reference: C = alpha op(A) op(B) + beta C.
static float ref_elem(const std::vector<float> &A, const std::vector<float> &B, bool ta, bool tb, int i, int j, int k, int lda, int ldb) {
    float acc = 0;
    for (int p = 0; p < k; p++) acc = fmaf(ta ? A[p + i * lda] : A[i + p * lda], tb ? B[j + p * ldb] : B[p + j * ldb], acc);
    return acc;
}

static void gemm_transposes_and_leading_dimensions_match_cublas(void) {
    cublasHandle_t h;
    cublasCreate(&h);
    const int m = 5, n = 4, k = 3, pad = 2;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? k : m) + pad, ldb = (tb ? n : k) + pad, ldc = m + 1;
            std::vector<float> A(lda * (ta ? m : k)), B(ldb * (tb ? k : n)), C(ldc * n, 0.5f);
            for (size_t i = 0; i < A.size(); i++) A[i] = (float)((i * 7) % 5) - 2;
            for (size_t i = 0; i < B.size(); i++) B[i] = (float)((i * 3) % 7) - 3;
            float *dA = device_copy(A), *dB = device_copy(B), *dC = device_copy(C), alpha = 2.0f, beta = -1.0f;
            CHECK(cublasGemmEx(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, dA,
                               CUDA_R_32F, lda, dB, CUDA_R_32F, ldb, &beta, dC, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS, "gemm %d%d", ta, tb);
            std::vector<float> got = host_copy(dC, C.size());
            int bad = 0;
            for (int j = 0; j < n; j++)
                for (int i = 0; i < ldc; i++) {
                    float want = i < m ? alpha * ref_elem(A, B, ta, tb, i, j, k, lda, ldb) + beta * 0.5f : 0.5f;   // padding untouched
                    bad += got[i + j * ldc] != want;
                }
            CHECK(bad == 0, "transa %d transb %d: %d elements differ", ta, tb, bad);
            cudaFree(dA), cudaFree(dB), cudaFree(dC);
        }
    // a swapped transpose flag reads the same bytes differently, so the answer is wrong, as on a GPU
    const int s = 3;
    std::vector<float> A = {1, 2, 3, 4, 5, 6, 7, 8, 9}, I = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    float *dA = device_copy(A), *dI = device_copy(I), *dC, alpha = 1, beta = 0;
    cudaMalloc((void **)&dC, 9 * sizeof(float));
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, s, s, s, &alpha, dA, CUDA_R_32F, s, dI, CUDA_R_32F, s, &beta, dC, CUDA_R_32F, s, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    std::vector<float> t = host_copy(dC, 9);
    CHECK(t[1] == 4 && t[3] == 2, "A^T . I should be the transpose: got %g %g", t[1], t[3]);
    // invalid leading dimensions are refused
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, s, s, s, &alpha, dA, CUDA_R_32F, s - 1, dI, CUDA_R_32F, s, &beta, dC,
                       CUDA_R_32F, s, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE, "lda < m accepted");
    // BF16 inputs, F32 output, strided batches
    const int batch = 3;
    std::vector<__nv_bfloat16> hb(batch * 4), hx(batch * 2);
    for (int i = 0; i < batch * 4; i++) hb[i] = __float2bfloat16((float)(i % 5));
    for (int i = 0; i < batch * 2; i++) hx[i] = __float2bfloat16((float)(i + 1));
    __nv_bfloat16 *db = device_copy(hb), *dx = device_copy(hx);
    float *dy;
    cudaMalloc((void **)&dy, batch * 2 * sizeof(float));
    CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 2, &alpha, db, CUDA_R_16BF, 2, 4, dx, CUDA_R_16BF, 2, 2,
                                     &beta, dy, CUDA_R_32F, 2, 2, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS, "batched");
    std::vector<float> y = host_copy(dy, batch * 2);
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < 2; i++) {
            float want = 0;
            for (int p = 0; p < 2; p++) want += (float)((b * 4 + i + p * 2) % 5) * (float)(b * 2 + p + 1);
            CHECK(y[b * 2 + i] == want, "batch %d row %d: %g want %g", b, i, y[b * 2 + i], want);
        }
    expect_abort("a GEMM reading past its allocation", [h, dA, dI, dC] {
        float one = 1, zero = 0;
        cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 3, 3, 4, &one, dA, CUDA_R_32F, 3, dI, CUDA_R_32F, 4, &zero, dC, CUDA_R_32F, 3,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }, {"cuBLAS GEMM", "not inside one device allocation"});
    cudaFree(dA), cudaFree(dI), cudaFree(dC), cudaFree(db), cudaFree(dx), cudaFree(dy);
    cublasDestroy(h);
}

static void two_device_all_reduce_and_send_recv(void) {
    ncclComm_t comms[2];
    CHECK(ncclCommInitAll(comms, 2, nullptr) == ncclSuccess, "init");
    const int n = 1000;
    float *buf[2], *got[2];
    for (int d = 0; d < 2; d++) {
        cudaSetDevice(d);
        std::vector<float> h(n);
        for (int i = 0; i < n; i++) h[i] = (float)(i * (d + 1));
        buf[d] = device_copy(h);
        cudaMalloc((void **)&got[d], n * sizeof(float));
    }
    // one thread, both devices, inside a group: NCCL runs them concurrently (one host thread per device here)
    CHECK(ncclGroupStart() == ncclSuccess, "group start");
    for (int d = 0; d < 2; d++) ncclAllReduce(buf[d], buf[d], n, ncclFloat32, ncclSum, comms[d], nullptr);
    for (int d = 0; d < 2; d++) ncclSend(buf[d], n, ncclFloat32, 1 - d, comms[d], nullptr);
    for (int d = 0; d < 2; d++) ncclRecv(got[d], n, ncclFloat32, 1 - d, comms[d], nullptr);
    CHECK(ncclGroupEnd() == ncclSuccess, "group end");
    for (int d = 0; d < 2; d++) {
        std::vector<float> r = host_copy(buf[d], n), g = host_copy(got[d], n);
        int bad = 0;
        for (int i = 0; i < n; i++) bad += r[i] != 3.0f * i || g[i] != 3.0f * i;
        CHECK(bad == 0, "device %d: %d wrong elements", d, bad);
    }
    // one host thread per device, no group
    std::thread t1([&] { cudaSetDevice(1); ncclAllReduce(buf[1], got[1], n, ncclFloat32, ncclMax, comms[1], nullptr); });
    ncclAllReduce(buf[0], got[0], n, ncclFloat32, ncclMax, comms[0], nullptr);
    t1.join();
    CHECK(host_copy(got[1], n)[10] == 30.0f, "threaded max");
    CHECK(ncclAllReduce(buf[0], got[0], n, ncclFloat32, ncclSum, nullptr, nullptr) == ncclInvalidArgument, "null comm");
    expect_abort("mismatched counts", [&] {
        ncclGroupStart();
        ncclAllReduce(buf[0], buf[0], n, ncclFloat32, ncclSum, comms[0], nullptr);
        ncclAllReduce(buf[1], buf[1], n / 2, ncclFloat32, ncclSum, comms[1], nullptr);
        ncclGroupEnd();
    }, {"mismatched ncclAllReduce"});
    expect_abort("a collective one rank never joins", [&] {
        ncclAllReduce(buf[0], buf[0], n, ncclFloat32, ncclSum, comms[0], nullptr);   // rank 1 never calls it
    }, {"NCCL deadlock", "rank 0", "ncclAllReduce", "rank 1: not in NCCL"}, "REPRISE_EMU_NCCL_TIMEOUT=1");
    for (int d = 0; d < 2; d++) cudaFree(buf[d]), cudaFree(got[d]), ncclCommDestroy(comms[d]);
    cudaSetDevice(0);
}

// Communicators made as a one-process-per-GPU launcher would: ncclGetUniqueId once, ncclCommInitRank on every
// rank's thread (each waits for the others); then an all-gather in rank order. Two ranks on one device are refused
// as NCCL refuses them; a rank that never joins, or a mismatched all-gather, stops the program with a report.
static void comm_init_rank_and_all_gather(void) {
    ncclUniqueId id;
    CHECK(ncclGetUniqueId(&id) == ncclSuccess, "unique id");
    ncclComm_t comms[2] = {nullptr, nullptr};
    ncclResult_t res[2];
    const int n = 300;
    float *send[2], *recv[2];
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; r++)
        ranks.emplace_back([&, r] {
            cudaSetDevice(r);
            res[r] = ncclCommInitRank(&comms[r], 2, id, r);
            std::vector<float> h(n, (float)(r + 1));
            send[r] = device_copy(h);
            cudaMalloc((void **)&recv[r], 2 * n * sizeof(float));
            ncclAllGather(send[r], recv[r], n, ncclFloat32, comms[r], nullptr);
        });
    for (std::thread &t : ranks) t.join();
    CHECK(res[0] == ncclSuccess && res[1] == ncclSuccess, "ncclCommInitRank: %d %d", res[0], res[1]);
    for (int r = 0; r < 2; r++) {
        std::vector<float> g = host_copy(recv[r], 2 * n);
        CHECK(g[0] == 1 && g[n - 1] == 1 && g[n] == 2 && g[2 * n - 1] == 2, "rank %d: the gather is not in rank order", r);
    }
    ncclUniqueId same;
    ncclGetUniqueId(&same);
    ncclComm_t dup, dup1;
    std::thread other([&] { cudaSetDevice(0), res[1] = ncclCommInitRank(&dup1, 2, same, 1); });
    cudaSetDevice(0);
    res[0] = ncclCommInitRank(&dup, 2, same, 0);
    other.join();
    CHECK(res[0] == ncclInvalidUsage && res[1] == ncclInvalidUsage, "two ranks on device 0: %d %d", res[0], res[1]);
    expect_abort("a rank that never joins", [&] {
        ncclUniqueId lone;
        ncclComm_t c;
        ncclGetUniqueId(&lone);
        ncclCommInitRank(&c, 2, lone, 0);
    }, {"NCCL deadlock", "rank 0 of 2", "ncclCommInitRank"}, "REPRISE_EMU_NCCL_TIMEOUT=1");
    expect_abort("a mismatched all-gather", [&] {
        std::thread t([&] { cudaSetDevice(1), ncclAllGather(send[1], recv[1], n / 2, ncclFloat32, comms[1], nullptr); });
        ncclAllGather(send[0], recv[0], n, ncclFloat32, comms[0], nullptr);
        t.join();
    }, {"mismatched ncclAllGather", "rank 1"});
    for (int r = 0; r < 2; r++) cudaFree(send[r]), cudaFree(recv[r]), ncclCommDestroy(comms[r]);
    cudaSetDevice(0);
}

// In the sanitizer build device memory is host memory under ASan and UBSan: a kernel's misaligned vector load or
// out-of-bounds read stops the test, as it would fault on a GPU.
// Streams run asynchronously, as on a GPU. Planted bugs: a host read of a pinned buffer without waiting for the copy
// that fills it, and a stream that reads what another stream is still writing, without an event between them.
// Each is seen to go wrong, then right once the missing synchronization is added.
static void streams_run_asynchronously_and_order_like_cuda(void) {
    cudaStream_t a, b;
    cudaStreamCreate(&a), cudaStreamCreate(&b);
    int *d, *d2, *pinned;
    cudaMalloc((void **)&d, sizeof(int)), cudaMalloc((void **)&d2, sizeof(int));
    cudaMemset(d, 0, sizeof(int)), cudaMemset(d2, 0, sizeof(int));
    CUDA_OK(cudaMallocHost((void **)&pinned, sizeof(int)));
    *pinned = -1;
    // 1. missing stream synchronize
    CUDA_OK(launch_slow_write(d, 42, 300, a));
    CUDA_OK(cudaMemcpyAsync(pinned, d, sizeof(int), cudaMemcpyDeviceToHost, a));
    int early = *(volatile int *)pinned;
    CUDA_OK(cudaStreamSynchronize(a));
    CHECK(early == -1 && *pinned == 42, "read before the sync: %d (want the stale -1); after: %d (want 42)", early, *pinned);
    // 2. missing cross-stream event wait: b copies d while a is still writing it
    launch_slow_write(d, 7, 300, a);
    launch_copy_one(d, d2, b);
    cudaStreamSynchronize(b);
    int raced = host_copy(d2, 1)[0];   // host_copy (a synchronous cudaMemcpy) waits for every stream first
    CHECK(raced == 42 && host_copy(d, 1)[0] == 7, "without the event b read %d (want the old 42)", raced);
    cudaEvent_t e;
    cudaEventCreate(&e);
    launch_slow_write(d, 9, 300, a);
    CUDA_OK(cudaEventRecord(e, a));
    CUDA_OK(cudaStreamWaitEvent(b, e, 0));
    launch_copy_one(d, d2, b);
    cudaStreamSynchronize(b);
    CHECK(host_copy(d2, 1)[0] == 9, "with the event b read %d (want 9)", host_copy(d2, 1)[0]);
    // 3. cudaEventSynchronize waits for the record; the legacy stream's synchronous copy waits for every stream
    launch_slow_write(d, 11, 200, a);
    cudaEventRecord(e, a);
    CUDA_OK(cudaEventSynchronize(e));
    int v = 0;
    launch_slow_write(d, 12, 200, b);
    CUDA_OK(cudaMemcpy(&v, d, sizeof(int), cudaMemcpyDeviceToHost));
    CHECK(v == 12, "the synchronous copy read %d (want 12)", v);
    cudaEventDestroy(e);
    cudaFreeHost(pinned), cudaFree(d), cudaFree(d2);
    cudaStreamDestroy(a), cudaStreamDestroy(b);
}

// What CUDA refuses while a stream captures a graph is refused here too, with CUDA's error, and the capture is
// invalidated (cudaStreamEndCapture fails, no graph): allocation (device and pinned), freeing, synchronizing the
// capturing stream, and a synchronous copy on the legacy stream. Relaxed mode allows them; thread-local mode
// ignores other threads, global mode does not.
static void capture_refuses_what_cuda_refuses(void) {
    cudaStream_t s;
    cudaStreamCreate(&s);
    int *d, *spare;
    cudaMalloc((void **)&d, sizeof(int)), cudaMalloc((void **)&spare, sizeof(int));
    int host = 0;
    struct {
        const char *what;
        std::function<cudaError_t()> call;
        cudaError_t want;
    } cases[] = {
        {"cudaMalloc", [] { void *p; return cudaMalloc(&p, 64); }, cudaErrorStreamCaptureUnsupported},
        {"cudaMallocHost", [] { void *p; return cudaMallocHost(&p, 64); }, cudaErrorStreamCaptureUnsupported},
        {"cudaFree", [&] { return cudaFree(spare); }, cudaErrorStreamCaptureUnsupported},
        {"cudaStreamSynchronize", [&] { return cudaStreamSynchronize(s); }, cudaErrorStreamCaptureUnsupported},
        {"cudaMemcpy", [&] { return cudaMemcpy(&host, d, sizeof(int), cudaMemcpyDeviceToHost); }, cudaErrorStreamCaptureImplicit},
    };
    for (auto &c : cases) {
        cudaGraph_t g = (cudaGraph_t)1;
        CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        launch_copy_one(d, d, s);
        cudaError_t got = c.call();
        cudaError_t end = cudaStreamEndCapture(s, &g);
        CHECK(got == c.want && end == cudaErrorStreamCaptureInvalidated && g == nullptr, "%s during capture: %s, then %s",
              c.what, cudaGetErrorName(got), cudaGetErrorName(end));
        cudaGetLastError();
    }
    // relaxed: allowed, the capture stands
    void *p = nullptr;
    cudaGraph_t g = nullptr;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
    CHECK(cudaMalloc(&p, 64) == cudaSuccess, "relaxed capture refused cudaMalloc");
    CUDA_OK(cudaStreamEndCapture(s, &g));
    CHECK(g != nullptr, "relaxed capture lost its graph");
    cudaGraphDestroy(g), cudaFree(p);
    // another thread: ignored by a thread-local capture, fatal to a global one
    for (int global = 0; global < 2; global++) {
        g = (cudaGraph_t)1;
        CUDA_OK(cudaStreamBeginCapture(s, global ? cudaStreamCaptureModeGlobal : cudaStreamCaptureModeThreadLocal));
        cudaError_t other;
        std::thread t([&] { void *q = nullptr; other = cudaMalloc(&q, 64); if (q) cudaFree(q); });
        t.join();
        cudaError_t end = cudaStreamEndCapture(s, &g);
        if (global) CHECK(other == cudaErrorStreamCaptureUnsupported && end == cudaErrorStreamCaptureInvalidated, "global: %s, %s",
                          cudaGetErrorName(other), cudaGetErrorName(end));
        else CHECK(other == cudaSuccess && end == cudaSuccess && g, "thread-local: %s, %s", cudaGetErrorName(other), cudaGetErrorName(end));
        if (g && g != (cudaGraph_t)1) cudaGraphDestroy(g);
        cudaGetLastError();
    }
    cudaFree(d), cudaFree(spare);
    cudaStreamDestroy(s);
}

#if defined(__SANITIZE_ADDRESS__)   // a test of the sanitizer build only: the optimised build does not run it
static void sanitizers_catch_kernel_memory_bugs(void) {
    expect_abort("misaligned 16-byte load", [] {
        char *p;
        uint4 *o;
        cudaMalloc((void **)&p, 64);
        cudaMalloc((void **)&o, sizeof(uint4));
        launch_misaligned_load(p, o);
    }, {"misaligned"}, nullptr, true);
    expect_abort("read past the end", [] {
        float *x, *o;
        cudaMalloc((void **)&x, 10 * sizeof(float));
        cudaMalloc((void **)&o, sizeof(float));
        launch_read_past_end(x, 10, o);
    }, {"heap-buffer-overflow"}, nullptr, true);
}
#endif

int main(void) {
    RUN(reduction_with_shuffles_and_shared_memory);
    RUN(warp_intrinsics_follow_cuda_semantics);
    RUN(grid_and_block_in_three_dimensions);
    RUN(divergent_barriers_are_reported);
    RUN(missing_barrier_is_caught_under_shuffled_order);
    RUN(launch_errors_are_reported_like_the_runtime);
    RUN(memory_limits_and_bounds);
    RUN(bf16_pairs_with_hfma2);
    RUN(math_intrinsics_match_libm);
    RUN(graph_replay_reruns_captured_kernels_with_captured_arguments);
    RUN(launch_counters_say_what_ran);
    RUN(gemm_transposes_and_leading_dimensions_match_cublas);
    RUN(two_device_all_reduce_and_send_recv);
    RUN(comm_init_rank_and_all_gather);
    RUN(streams_run_asynchronously_and_order_like_cuda);
    RUN(capture_refuses_what_cuda_refuses);
#if defined(__SANITIZE_ADDRESS__)
    RUN(sanitizers_catch_kernel_memory_bugs);
#endif
    return TEST_EXIT();
}
