// Kernels whose speed on a GPU differs by known factors for one known reason each (tests/test_emu_perf.cpp): the perf
// build's counters must see the reason, and the speed model must rank them and predict the ratios. They compile with
// nvcc too (tests/run_gpu.sh times them on a GPU).
#include "kernels/cuda_compat.h"
#include "kernels/launch.h"
#include "kernels/ptx.h"

// out[i] = in[i], a grid-stride loop: a warp's 32 floats are 128 consecutive bytes, 4 sectors a request. Launched
// as one CTA or as a full grid, the same bytes move; one CTA uses one SM of 132.
__global__ void planted_copy(const float *in, float *out, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = in[i];
}

// The same copy, lanes 32 floats apart: every lane's 4 bytes in a sector of their own, 32 sectors a request, and the
// same bytes moved.
__global__ void planted_copy_strided(const float *in, float *out, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int j = (int)(((long)i * 32) % n + ((long)i * 32) / n);   // a permutation of [0, n) when 32 divides n
        out[j] = in[j];
    }
}

// The sum of n bf16 values per thread's share, read 2 bytes at a time.
__global__ void planted_sum_narrow(const __nv_bfloat16 *x, int n, float *out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, stride = gridDim.x * blockDim.x;
    float s = 0;
    for (int k = i; k < n; k += stride) s += __bfloat162float(x[k]);
    out[i] = s;
}

// The same sum, 8 values (16 bytes) a load.
__global__ void planted_sum_wide(const __nv_bfloat16 *x, int n, float *out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, stride = gridDim.x * blockDim.x;
    float s = 0;
    for (int k = i; k < n / 8; k += stride) {
        uint4 v = reinterpret_cast<const uint4 *>(x)[k];
        const __nv_bfloat16 *h = reinterpret_cast<const __nv_bfloat16 *>(&v);
        for (int e = 0; e < 8; e++) s += __bfloat162float(h[e]);
    }
    out[i] = s;
}

// A 32 x 32 tile transposed through shared memory: written by rows, read by columns. Without padding a column is one
// bank, 32 lanes on it: 32 wavefronts a read; a row of 33 spreads it over every bank.
// ODD_FIRST: odd lanes first store to their row once more, an instruction even lanes skip; the counters must still
// make each later instruction one request of the whole warp.
template <int PAD, bool ODD_FIRST>
__global__ void planted_transpose(const float *in, float *out, int n) {
    __shared__ float tile[32][32 + PAD];
    int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
    if (ODD_FIRST && threadIdx.x % 2) tile[threadIdx.y][threadIdx.x] = 0.0f;
    tile[threadIdx.y][threadIdx.x] = in[(long)y * n + x];
    __syncthreads();
    x = blockIdx.y * 32 + threadIdx.x, y = blockIdx.x * 32 + threadIdx.y;
    out[(long)y * n + x] = tile[threadIdx.x][threadIdx.y];
}

// A sum streamed through a ring of STAGES cp.async stages, 16 bytes a thread a stage (128 threads, 2 KB a stage): a
// thread has STAGES - 1 copies in flight at each wait. With 2 stages the warp waits on every copy almost at once; with
// 8 the same bytes come 7 at a time.
template <int STAGES>
__global__ void planted_async_sum(const float4 *in, int stages_per_cta, float *out) {
    __shared__ __align__(16) float4 ring[STAGES][128];
    const float4 *src = in + (size_t)blockIdx.x * stages_per_cta * 128 + threadIdx.x;
    for (int i = 0; i < STAGES - 1; i++) {
        if (i < stages_per_cta) cp_async_16(&ring[i][threadIdx.x], src + (size_t)i * 128, 16);
        cp_async_commit();
    }
    float s = 0;
    for (int i = 0; i < stages_per_cta; i++) {
        cp_async_wait<STAGES - 2>();   // stage i is here (each thread reads only its own copies: no barrier)
        float4 v = ring[i % STAGES][threadIdx.x];
        s += v.x + v.y + v.z + v.w;
        int next = i + STAGES - 1;   // the slot of stage i - 1, read last iteration by this thread alone
        if (next < stages_per_cta) cp_async_16(&ring[next % STAGES][threadIdx.x], src + (size_t)next * 128, 16);
        cp_async_commit();
    }
    cp_async_wait<0>();
    out[blockIdx.x * 128 + threadIdx.x] = s;
}

cudaError_t launch_planted_async_sum(const float *in, int stages_per_cta, int deep, int blocks, float *out, cudaStream_t s) {
    const float4 *v = reinterpret_cast<const float4 *>(in);
    if (deep) return REPRISE_LAUNCH(planted_async_sum<8>, dim3(blocks), dim3(128), 0, s, v, stages_per_cta, out);
    return REPRISE_LAUNCH(planted_async_sum<2>, dim3(blocks), dim3(128), 0, s, v, stages_per_cta, out);
}

cudaError_t launch_planted_copy(const float *in, float *out, int n, int strided, int blocks, cudaStream_t s) {
    if (strided) return REPRISE_LAUNCH(planted_copy_strided, dim3(blocks), dim3(256), 0, s, in, out, n);
    return REPRISE_LAUNCH(planted_copy, dim3(blocks), dim3(256), 0, s, in, out, n);
}
cudaError_t launch_planted_sum(const __nv_bfloat16 *x, int n, float *out, int wide, int blocks, cudaStream_t s) {
    if (wide) return REPRISE_LAUNCH(planted_sum_wide, dim3(blocks), dim3(256), 0, s, x, n, out);
    return REPRISE_LAUNCH(planted_sum_narrow, dim3(blocks), dim3(256), 0, s, x, n, out);
}
// padded: 0 no padding, 1 padded, 2 padded with the odd lanes' extra store.
cudaError_t launch_planted_transpose(const float *in, float *out, int n, int padded, cudaStream_t s) {
    dim3 grid(n / 32, n / 32), block(32, 32);
    if (padded == 2) return REPRISE_LAUNCH((planted_transpose<1, true>), grid, block, 0, s, in, out, n);
    if (padded) return REPRISE_LAUNCH((planted_transpose<1, false>), grid, block, 0, s, in, out, n);
    return REPRISE_LAUNCH((planted_transpose<0, false>), grid, block, 0, s, in, out, n);
}
