// Kernels that exercise the CUDA emulation (tests/test_cuda_emu.cpp); they compile with nvcc too.
#include "kernels/cuda_compat.h"
#include "kernels/launch.h"

// Sum of x[0..n): a grid-stride loop, a warp reduction with __shfl_xor_sync, then the warps' partial sums through
// shared memory and one more warp reduction; one atomicAdd per block.
__global__ void block_sum(const float *x, int n, float *out) {
    __shared__ float partial[32];
    float v = 0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x / 32) ? partial[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) atomicAdd(out, v);
    }
}

// Planted bug: half the block skips the barrier.
__global__ void divergent_barrier(int *out) {
    if (threadIdx.x < 16) __syncthreads();
    out[threadIdx.x] = 1;
}

// Planted bug: two different __syncthreads() calls meet.
__global__ void two_barriers(int *out) {
    if (threadIdx.x % 2) __syncthreads();
    else __syncthreads();
    out[threadIdx.x] = 1;
}

// Each thread reads its left neighbour's value from shared memory; `with_barrier` 0 plants the missing barrier,
// which threads run in index order never notice (each neighbour has already written).
__global__ void rotate_shared(const int *in, int *out, int with_barrier) {
    REPRISE_DYNAMIC_SHARED(int, s);
    int t = threadIdx.x;
    s[t] = in[t];
    if (with_barrier) __syncthreads();
    out[t] = s[t > 0 ? t - 1 : 0];
}

// Warp intrinsics: ballot, any, all, and shuffles within 16-lane segments.
__global__ void warp_ops(int *out) {
    int lane = threadIdx.x % 32;
    unsigned b = __ballot_sync(0xffffffffu, lane % 3 == 0);
    int any = __any_sync(0xffffffffu, lane == 7), all = __all_sync(0xffffffffu, lane < 32), none = __any_sync(0xffffffffu, 0);
    int up = __shfl_up_sync(0xffffffffu, lane, 1, 16), down = __shfl_down_sync(0xffffffffu, lane, 2, 16);
    int idx = __shfl_sync(0xffffffffu, lane * 10, 3, 16);
    int *o = out + threadIdx.x * 7;
    o[0] = (int)b, o[1] = any, o[2] = all, o[3] = none, o[4] = up, o[5] = down, o[6] = idx;
}

// Planted bug: a full-mask shuffle that half the warp never reaches.
__global__ void shuffle_missing_lanes(int *out) {
    int lane = threadIdx.x % 32;
    if (lane < 16) out[lane] = __shfl_sync(0xffffffffu, lane, 0);
}

// Writes each thread's linear global id, from 3-D grid and block coordinates.
__global__ void coordinates(int *out) {
    int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int per_block = blockDim.x * blockDim.y * blockDim.z;
    out[block * per_block + thread] = block * per_block + thread;
}

// y = a * x + b, with BF16 pairs and __hfma2.
__global__ void axpb_bf16(const __nv_bfloat162 *x, __nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 *y, int n2) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n2) y[i] = __hfma2(a, __ldg(&x[i]), b);
}

// y[i] = x[i] * scale + step: the kernel a graph captures.
__global__ void scale_add(const float *x, float scale, float step, float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * scale + step;
}

cudaError_t launch_block_sum(const float *x, int n, float *out, int blocks, int threads) {
    return REPRISE_LAUNCH(block_sum, dim3(blocks), dim3(threads), 0, (cudaStream_t)0, x, n, out);
}
cudaError_t launch_divergent_barrier(int *out) { return REPRISE_LAUNCH(divergent_barrier, dim3(1), dim3(32), 0, (cudaStream_t)0, out); }
cudaError_t launch_two_barriers(int *out) { return REPRISE_LAUNCH(two_barriers, dim3(1), dim3(32), 0, (cudaStream_t)0, out); }
cudaError_t launch_rotate_shared(const int *in, int *out, int n, int with_barrier) {
    return REPRISE_LAUNCH(rotate_shared, dim3(1), dim3(n), n * sizeof(int), (cudaStream_t)0, in, out, with_barrier);
}
cudaError_t launch_warp_ops(int *out) { return REPRISE_LAUNCH(warp_ops, dim3(1), dim3(64), 0, (cudaStream_t)0, out); }
cudaError_t launch_shuffle_missing_lanes(int *out) { return REPRISE_LAUNCH(shuffle_missing_lanes, dim3(1), dim3(32), 0, (cudaStream_t)0, out); }
cudaError_t launch_coordinates(int *out, dim3 grid, dim3 block) { return REPRISE_LAUNCH(coordinates, grid, block, 0, (cudaStream_t)0, out); }
cudaError_t launch_axpb_bf16(const __nv_bfloat162 *x, __nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 *y, int n2) {
    return REPRISE_LAUNCH(axpb_bf16, dim3((n2 + 63) / 64), dim3(64), 0, (cudaStream_t)0, x, a, b, y, n2);
}
cudaError_t launch_scale_add(const float *x, float scale, float step, float *y, int n, cudaStream_t s) {
    return REPRISE_LAUNCH(scale_add, dim3((n + 127) / 128), dim3(128), 0, s, x, scale, step, y, n);
}
cudaError_t launch_scale_add_config(const float *x, float *y, int n, dim3 block, size_t smem) {
    return REPRISE_LAUNCH(scale_add, dim3(1), block, smem, (cudaStream_t)0, x, 1.0f, 0.0f, y, n);
}
const void *scale_add_fn() { return reinterpret_cast<const void *>(scale_add); }

// Planted bugs for the sanitizer build: a 16-byte load from an address that is not 16-byte aligned, and a read
// one element past the end of an allocation.
__global__ void misaligned_load(const char *p, uint4 *out) { *out = *reinterpret_cast<const uint4 *>(p + 4); }
__global__ void read_past_end(const float *x, int n, float *out) { out[threadIdx.x] = x[n + threadIdx.x]; }

cudaError_t launch_misaligned_load(const char *p, uint4 *out) { return REPRISE_LAUNCH(misaligned_load, dim3(1), dim3(1), 0, (cudaStream_t)0, p, out); }
cudaError_t launch_read_past_end(const float *x, int n, float *out) { return REPRISE_LAUNCH(read_past_end, dim3(1), dim3(1), 0, (cudaStream_t)0, x, n, out); }

// The fast-math intrinsics the kernels use: out = {__expf, rsqrtf, __fdividef, __saturatef} of x.
__global__ void math_intrinsics(const float *x, float *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[4 * i] = __expf(x[i]);
        out[4 * i + 1] = rsqrtf(x[i] + 2.0f);
        out[4 * i + 2] = __fdividef(x[i], 3.0f);
        out[4 * i + 3] = __saturatef(x[i]);
    }
}
cudaError_t launch_math_intrinsics(const float *x, float *out, int n) {
    return REPRISE_LAUNCH(math_intrinsics, dim3((n + 31) / 32), dim3(32), 0, (cudaStream_t)0, x, out, n);
}

// Sleeps about ms milliseconds, then writes v: a slow producer, so that work nobody waits for is visibly not done.
__global__ void slow_write(int *out, int v, int ms) {
    for (int t = 0; t < ms; t++) __nanosleep(1000000);
    out[0] = v;
}

__global__ void copy_one(const int *in, int *out) { out[0] = in[0]; }

cudaError_t launch_slow_write(int *out, int v, int ms, cudaStream_t s) { return REPRISE_LAUNCH(slow_write, dim3(1), dim3(1), 0, s, out, v, ms); }
cudaError_t launch_copy_one(const int *in, int *out, cudaStream_t s) { return REPRISE_LAUNCH(copy_one, dim3(1), dim3(1), 0, s, in, out); }
