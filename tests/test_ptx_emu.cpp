// kernels/ptx.h under the emulation: mma.m16n8k16's fragments (by hand and through ldmatrix) against a CPU
// product, cp.async's groups and waits, and the planted bugs each must expose: a wrong fragment index, a missing
// wait, misaligned addresses.
#include <cmath>
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
    o = cp_async_run(1);   // planted: no wait
    bad = 0;
    for (int s = 0; s < 32; s++) bad += o[s] != -1;
    CHECK(bad == 0, "no wait: %d slots hold the copy, not the old contents", bad);
    o = cp_async_run(2);   // wait_group 1: the first group (even slots) arrived, the second (odd) not yet
    bad = 0;
    for (int s = 0; s < 32; s++) bad += o[s] != (s % 2 ? -1 : 1000 * s + 1);
    CHECK(bad == 0, "wait_group 1: %d slots wrong", bad);
    o = cp_async_run(3);   // 8 bytes read: the rest zeros
    bad = 0;
    for (int s = 0; s < 32; s++) bad += o[s] != 0;
    CHECK(bad == 0, "zero fill: %d slots not zero past the bytes read", bad);
}

static void misaligned_addresses_fault(void) {
    int4 *src;
    cudaMalloc((void **)&src, 64);
    expect_abort("cp.async to a 2-byte offset", [src] { launch_misaligned(src, 0); }, {"kernel 'misaligned_kernel'", "cp.async"});
    expect_abort("ldmatrix from a 2-byte offset", [src] { launch_misaligned(src, 1); }, {"kernel 'misaligned_kernel'", "ldmatrix"});
    cudaFree(src);
}

int main(void) {
    RUN(mma_fragments_follow_the_isa);
    RUN(cp_async_data_arrives_at_its_wait);
    RUN(misaligned_addresses_fault);
    return TEST_EXIT();
}
