// kernels/ptx.h under the emulation: mma.m16n8k16's fragments (by hand and through ldmatrix) against a CPU
// product, cp.async's groups and waits, the copy engine's boxes (swizzle modes, edges, mbarrier waits), and the
// planted bugs each must expose: a wrong fragment index, a missing wait, misaligned addresses, a wrong swizzle, bytes
// announced that never come, an unfenced barrier. tests/test_ptx_gpu.cu runs the same checks, less the planted
// bugs, on a device.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tests/ptx_test_kernels.cu"
#include "tests/emu_test_util.h"
#include "tests/test_util.h"

// The largest |D - (A . B + C)| over the tile, with the kernel's fragments by hand or through ldmatrix.
static double mma_error(int via_ldmatrix, int plant) {
    std::vector<bf16> A(256), Bt(128);
    std::vector<float> C(128), ref(128);
    for (int i = 0; i < 256; i++) A[i] = __float2bfloat16((float)((i * 37) % 19 - 9) / 8);
    for (int i = 0; i < 128; i++) Bt[i] = __float2bfloat16((float)((i * 11) % 13 - 6) / 4);
    for (int i = 0; i < 128; i++) C[i] = (float)(i % 7) - 3;
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 8; n++) {
            double s = C[m * 8 + n];
            for (int k = 0; k < 16; k++) s += (double)__bfloat162float(A[m * 16 + k]) * __bfloat162float(Bt[n * 16 + k]);
            ref[m * 8 + n] = (float)s;
        }
    bf16 *dA = device_copy(A), *dB = device_copy(Bt);
    float *dC = device_copy(C), *dD = device_copy(std::vector<float>(128, NAN));
    CHECK(launch_mma_tile(dA, dB, dC, dD, via_ldmatrix, plant) == cudaSuccess, "launch");
    std::vector<float> D = host_copy(dD, 128);
    double worst = 0;
    for (int i = 0; i < 128; i++) worst = std::fmax(worst, std::isnan(D[i]) ? INFINITY : std::fabs(D[i] - ref[i]));
    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dD);
    return worst;
}

static void mma_fragments_follow_the_isa(void) {
    // the inputs are small multiples of 1/32: every product and partial sum is exact in FP32
    CHECK(mma_error(0, 0) == 0, "by hand: error %g", mma_error(0, 0));
    CHECK(mma_error(1, 0) == 0, "through ldmatrix: error %g", mma_error(1, 0));
    CHECK(mma_error(0, 1) > 0.5, "a wrong fragment index passed (error %g)", mma_error(0, 1));
    CHECK(mma_error(1, 1) > 0.5, "a wrong fragment index passed through ldmatrix (error %g)", mma_error(1, 1));
}

static std::vector<int> cp_async_run(int mode) {
    std::vector<int> h(32 * 4);
    for (int i = 0; i < 32 * 4; i++) h[i] = 1000 * (i / 4) + i % 4 + 1;   // slot s: 1000 s + 1, + 2, + 3, + 4
    int4 *src = device_copy(std::vector<int4>((const int4 *)h.data(), (const int4 *)h.data() + 32));
    int *out = device_copy(std::vector<int>(32, 0));
    CHECK(launch_cp_async(src, out, mode) == cudaSuccess, "launch");
    std::vector<int> o = host_copy(out, 32);
    cudaFree(src), cudaFree(out);
    return o;
}

static void cp_async_data_arrives_at_its_wait(void) {
    std::vector<int> o = cp_async_run(0);
    int bad = 0;
    for (int s = 0; s < 32; s++) bad += o[s] != 1000 * s + 1;
    CHECK(bad == 0, "waited for: %d slots wrong", bad);
#ifndef REPRISE_PTX_ON_GPU   // on a device the copies not waited for may or may not have landed
    o = cp_async_run(1);   // planted: no wait
    bad = 0;
    for (int s = 0; s < 32; s++) bad += o[s] != -1;
    CHECK(bad == 0, "no wait: %d slots hold the copy, not the old contents", bad);
    o = cp_async_run(2);   // wait_group 1: the first group (even slots) arrived, the second (odd) not yet
    bad = 0;
    for (int s = 0; s < 32; s++) bad += o[s] != (s % 2 ? -1 : 1000 * s + 1);
    CHECK(bad == 0, "wait_group 1: %d slots wrong", bad);
#endif
    o = cp_async_run(3);   // 8 bytes read: the rest zeros
    bad = 0;
    for (int s = 0; s < 32; s++) bad += o[s] != 0;
    CHECK(bad == 0, "zero fill: %d slots not zero past the bytes read", bad);
}

// widen_e4m3x4: every one of the 256 E4M3 codes (the two NaNs aside) becomes the BF16 of its value, exactly - its
// subnormals too (through a BF16 subnormal times 2^120 on the device: what a GPU must not flush) - in the fragment
// order (the lower code in the lower half).
static void e4m3_codes_widen_to_their_bf16_values(void) {
    std::vector<uint32_t> words(64);
    for (int i = 0; i < 256; i++) words[i / 4] |= (uint32_t)i << (8 * (i % 4));
    uint32_t *codes = device_copy(words), *out = device_copy(std::vector<uint32_t>(128, 0));
    CHECK(launch_widen_e4m3(codes, out) == cudaSuccess, "launch");
    std::vector<uint32_t> o = host_copy(out, 128);
    int bad = 0;
    for (int i = 0; i < 256; i++) {
        if ((i & 0x7f) == 0x7f) continue;
        uint32_t half = (o[i / 2] >> (16 * (i % 2))) & 0xffff, bits = half << 16;
        float got;
        memcpy(&got, &bits, 4);
        int e = (i >> 3) & 15, m = i & 7;
        float want = (e ? ldexpf(1.0f + m / 8.0f, e - 7) : ldexpf((float)m, -9)) * (i & 0x80 ? -1.0f : 1.0f);
        if (!(got == want && std::signbit(got) == std::signbit(want))) {
            if (bad++ < 4) fprintf(stderr, "  code 0x%02x: got %g, want %g\n", i, got, want);
        }
    }
    CHECK(bad == 0, "%d of 254 codes widen wrongly", bad);
    cudaFree(codes), cudaFree(out);
}

static void misaligned_addresses_fault(void) {
    int4 *src;
    cudaMalloc((void **)&src, 64);
    expect_abort("cp.async to a 2-byte offset", [src] { launch_misaligned(src, 0); }, {"kernel 'misaligned_kernel'", "cp.async"});
    expect_abort("ldmatrix from a 2-byte offset", [src] { launch_misaligned(src, 1); }, {"kernel 'misaligned_kernel'", "ldmatrix"});
    cudaFree(src);
}

// The copy engine: boxes inside the tensor and over its edges (zeros there) land as the swizzle mode lays them, for
// each mode; read by another mode's pattern, a missing wait, bytes announced that never come, an unfenced barrier
// init, and shapes the engine refuses, each caught.
static void tma_boxes_land_swizzled_at_their_wait(void) {
    const int R = 100, C = 72;   // a 100 x 72 BF16 matrix (144-byte rows)
    std::vector<bf16> src((size_t)R * C);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) src[(size_t)r * C + c] = __float2bfloat16((float)((r * 7 + c) % 256));
    bf16 *dsrc = device_copy(src), *dout;
    cudaMalloc((void **)&dout, 64 * 64 * sizeof(bf16));
    auto load = [&](int col, int row, int rows, int cols, int sw, int read_sw, int plant, std::vector<bf16> *got) {
        cudaError_t e = launch_tma_tile(dsrc, R, C, col, row, rows, cols, sw, read_sw, dout, plant);
        if (e == cudaSuccess) cudaDeviceSynchronize(), *got = host_copy(dout, (size_t)rows * cols);
        return e;
    };
    auto expected = [&](int col, int row, int rows, int cols) {
        std::vector<float> want((size_t)rows * cols);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                int gr = row + r, gc = col + c;
                want[(size_t)r * cols + c] = gr < R && gc < C ? __bfloat162float(src[(size_t)gr * C + gc]) : 0.0f;
            }
        return want;
    };
    auto differing = [](const std::vector<bf16> &got, const std::vector<float> &want) {
        int bad = 0;
        for (size_t i = 0; i < want.size(); i++) bad += __bfloat162float(got[i]) != want[i];
        return bad;
    };
    for (int sw = TMA_SWIZZLE_NONE; sw <= TMA_SWIZZLE_128B; sw++) {
        int cols = sw ? (int)tma_swizzle_span(sw) / 2 : 40, rows = 24;
        for (int edge = 0; edge < 2; edge++) {
            int col = edge ? C - cols / 2 : 8, row = edge ? R - 10 : 5;
            std::vector<bf16> got;
            CHECK(load(col, row, rows, cols, sw, sw, 0, &got) == cudaSuccess, "swizzle %d: launch", sw);
            int bad = differing(got, expected(col, row, rows, cols));
            CHECK(bad == 0, "swizzle mode %d, box %dx%d at (%d, %d)%s: %d elements differ", sw, rows, cols, col, row,
                  edge ? " over the edge" : "", bad);
        }
    }
    std::vector<bf16> got;
#ifndef REPRISE_PTX_ON_GPU   // the planted bugs: on a device a race or a hang, not a check
    CHECK(load(8, 5, 24, 64, TMA_SWIZZLE_128B, TMA_SWIZZLE_64B, 0, &got) == cudaSuccess &&
              differing(got, expected(8, 5, 24, 64)) > 0,
          "a 128-byte swizzled box read by the 64-byte pattern gives the wrong elements");
    CHECK(load(8, 5, 24, 64, TMA_SWIZZLE_128B, TMA_SWIZZLE_128B, 1, &got) == cudaSuccess &&
              differing(got, std::vector<float>(24 * 64, -1.0f)) == 0,
          "without the wait, the tile still holds what it held before the copy");
    expect_abort("expect_tx announcing bytes that never come", [&] { load(8, 5, 24, 64, TMA_SWIZZLE_128B, TMA_SWIZZLE_128B, 2, &got); },
                 {"kernel 'tma_tile_kernel'", "never completes", "16 bytes still expected"});
    expect_abort("a copy on a barrier not fenced after its init", [&] { load(8, 5, 24, 64, TMA_SWIZZLE_128B, TMA_SWIZZLE_128B, 3, &got); },
                 {"kernel 'tma_tile_kernel'", "mbar_init_fence"});
#endif
    tma_map m;
    CHECK(tma_map_2d(&m, dsrc, 2, R, C, C * 2, 24, 40, TMA_SWIZZLE_128B) == cudaErrorInvalidValue &&
              tma_map_2d(&m, dsrc + 1, 2, R, C, C * 2, 24, 64, TMA_SWIZZLE_128B) == cudaErrorInvalidValue &&
              tma_map_2d(&m, dsrc, 2, R, C, C * 2 + 8, 24, 64, TMA_SWIZZLE_128B) == cudaErrorInvalidValue &&
              tma_map_2d(&m, dsrc, 2, R, C, C * 2, 300, 64, TMA_SWIZZLE_128B) == cudaErrorInvalidValue &&
              tma_map_2d(&m, dsrc, 2, R, C, C * 2, 24, 64, TMA_SWIZZLE_128B) == cudaSuccess,
          "tensor maps the copy engine refuses are refused (a row narrower than the swizzle span, a misaligned base or "
          "stride, a box side over 256), and a good one is made");
    cudaFree(dsrc), cudaFree(dout);
}

// The copy engine out: boxes written with ordinary stores reach global memory, swizzle undone, when each round fences
// the proxy; without the fence the second round's store reads the first round's bytes.
static void tma_store_needs_the_proxy_fence(void) {
    const int rows = 16, cols = 64;
    bf16 *d;
    cudaMalloc((void **)&d, 2 * rows * cols * sizeof(bf16));
    for (int plant = 0; plant < 2; plant++) {
#ifdef REPRISE_PTX_ON_GPU
        if (plant) break;   // on a device, the missing fence is a race
#endif
        cudaMemset(d, 0, 2 * rows * cols * sizeof(bf16));
        CHECK(launch_tma_store(d, rows, cols, plant) == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess, "launch");
        std::vector<bf16> got = host_copy(d, (size_t)2 * rows * cols);
        int wrong = 0, stale = 0;
        for (int round = 0; round < 2; round++)
            for (int e = 0; e < rows * cols; e++) {
                float v = __bfloat162float(got[(size_t)round * rows * cols + e]);
                wrong += v != (float)(e % 128 + 128 * round);
                stale += round == 1 && v == (float)(e % 128);
            }
        if (plant) CHECK(stale == rows * cols, "without the proxy fence the store read the first round's bytes: %d of %d", stale, rows * cols);
        else CHECK(wrong == 0, "with the proxy fence both rounds arrive, swizzle undone: %d elements wrong", wrong);
    }
    cudaFree(d);
}

// wgmma: D = A . B through descriptors, operands from the copy engine (32-byte swizzle) or ordinary stores (core
// matrices), against a CPU product; the planted bugs: a descriptor's wrong swizzle, a missing proxy fence (the old A
// read), D read before its wait.
static void wgmma_reads_its_descriptors(void) {
    std::vector<bf16> A(64 * 16), Bt(8 * 16);
    for (int i = 0; i < 64 * 16; i++) A[i] = __float2bfloat16((float)((i * 37) % 19 - 9) / 8);
    for (int i = 0; i < 8 * 16; i++) Bt[i] = __float2bfloat16((float)((i * 11) % 13 - 6) / 4);
    std::vector<float> ref(64 * 8);
    for (int m = 0; m < 64; m++)
        for (int n = 0; n < 8; n++) {
            double s = 0;
            for (int k = 0; k < 16; k++) s += (double)__bfloat162float(A[m * 16 + k]) * __bfloat162float(Bt[n * 16 + k]);
            ref[m * 8 + n] = (float)s;
        }
    bf16 *dA = device_copy(A), *dB = device_copy(Bt);
    float *dD;
    cudaMalloc((void **)&dD, 64 * 8 * sizeof(float));
    auto run = [&](int mode, float sign) {   // elements of D that differ from sign x the reference
        cudaMemset(dD, 0, 64 * 8 * sizeof(float));
        if (launch_wgmma_tile(dA, dB, dD, mode) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) return -1;
        std::vector<float> got = host_copy(dD, 64 * 8);
        int bad = 0;
        for (int i = 0; i < 64 * 8; i++) bad += got[i] != sign * ref[i];
        return bad;
    };
    // the inputs are multiples of 1/32: every product and partial sum is exact in FP32
    CHECK(run(0, 1) == 0, "operands by the copy engine, 32-byte swizzled: %d elements wrong", run(0, 1));
    CHECK(run(2, 1) == 0, "operands by ordinary stores in core matrices: %d elements wrong", run(2, 1));
#ifndef REPRISE_PTX_ON_GPU   // the planted bugs: on a device, wrong or racy, not a check
    CHECK(run(1, 1) > 0, "a descriptor that says no swizzle over a swizzled tile gave the right product");
    CHECK(run(3, 1) == 0 && run(3, -1) > 0, "without the proxy fence the second round read the first round's A");
    CHECK(run(4, 0) == 0, "D read before its wait holds what it held (zeros)");
#endif
    cudaFree(dA), cudaFree(dB), cudaFree(dD);
}

// wgmma over K = 64: four m64n64k16 steps over 128-byte swizzled tiles, each descriptor advanced by 32 bytes, as a
// GEMM's k loop does, against a CPU product (exact: multiples of 1/8 and 1/4, sums within FP32's integers).
static void wgmma_steps_along_k(void) {
    std::vector<bf16> A(64 * 64), Bt(64 * 64);
    for (int i = 0; i < 64 * 64; i++) A[i] = __float2bfloat16((float)((i * 37) % 17 - 8) / 8);
    for (int i = 0; i < 64 * 64; i++) Bt[i] = __float2bfloat16((float)((i * 11) % 13 - 6) / 4);
    bf16 *dA = device_copy(A), *dB = device_copy(Bt);
    float *dD = device_copy(std::vector<float>(64 * 64, NAN));
    CHECK(launch_wgmma_k64(dA, dB, dD) == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess, "launch");
    std::vector<float> got = host_copy(dD, 64 * 64);
    int bad = 0;
    for (int m = 0; m < 64; m++)
        for (int n = 0; n < 64; n++) {
            double s = 0;
            for (int k = 0; k < 64; k++) s += (double)__bfloat162float(A[m * 64 + k]) * __bfloat162float(Bt[n * 64 + k]);
            bad += got[m * 64 + n] != (float)s;
        }
    CHECK(bad == 0, "K = 64 in four steps of the descriptors: %d of 4096 elements wrong", bad);
    cudaFree(dA), cudaFree(dB), cudaFree(dD);
}

// The question nothing documents: do mma.sync (four m16n8k16 tiles) and wgmma (one m64n8k16) give the same bits for
// the same 16-term sums? Inputs whose sums round. Under the emulation both twins sum in k order (the answer is yes by
// construction: this checks that the two paths map D's elements alike); on a device the count is the answer, printed
// for tests/run_gpu.sh and not asserted.
static void mma_and_wgmma_bits(void) {
    std::vector<bf16> A(64 * 16), Bt(8 * 16);
    for (int i = 0; i < 64 * 16; i++) A[i] = __float2bfloat16(sinf(0.37f * i) * 1.7f);
    for (int i = 0; i < 8 * 16; i++) Bt[i] = __float2bfloat16(cosf(0.11f * i + 0.5f) * 0.9f);
    bf16 *dA = device_copy(A), *dB = device_copy(Bt);
    float *dW, *dM, *dC = device_copy(std::vector<float>(16 * 8, 0.0f));
    cudaMalloc((void **)&dW, 64 * 8 * sizeof(float)), cudaMalloc((void **)&dM, 64 * 8 * sizeof(float));
    bool ok = launch_wgmma_tile(dA, dB, dW, 2) == cudaSuccess;
    for (int s = 0; s < 4; s++) ok = ok && launch_mma_tile(dA + s * 16 * 16, dB, dC, dM + s * 16 * 8, 1, 0) == cudaSuccess;
    ok = ok && cudaDeviceSynchronize() == cudaSuccess;
    std::vector<float> w = host_copy(dW, 64 * 8), m = host_copy(dM, 64 * 8);
    int differ = 0;
    for (int i = 0; i < 64 * 8; i++) differ += memcmp(&w[i], &m[i], sizeof(float)) != 0;
    CHECK(ok, "launches");
    printf("  mma.sync vs wgmma, the same 16-term sums: %d of 512 elements differ in their bits\n", differ);
#ifndef REPRISE_PTX_ON_GPU
    CHECK(differ == 0, "the emulation's mma.sync and wgmma differ in %d elements: their D layouts disagree", differ);
#endif
    cudaFree(dA), cudaFree(dB), cudaFree(dW), cudaFree(dM), cudaFree(dC);
}

int main(void) {
    RUN(mma_fragments_follow_the_isa);
    RUN(cp_async_data_arrives_at_its_wait);
    RUN(e4m3_codes_widen_to_their_bf16_values);
#ifndef REPRISE_PTX_ON_GPU   // a fault ends the device's context
    RUN(misaligned_addresses_fault);
#endif
    RUN(tma_boxes_land_swizzled_at_their_wait);
    RUN(tma_store_needs_the_proxy_fence);
    RUN(wgmma_reads_its_descriptors);
    RUN(wgmma_steps_along_k);
    RUN(mma_and_wgmma_bits);
    return TEST_EXIT();
}
