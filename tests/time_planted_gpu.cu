// The planted kernels (tests/perf_planted_kernels.cu) timed on a GPU, at the sizes tests/test_emu_perf.cpp predicts
// them at, printed in its line's words so tests/run_gpu.sh can set the two side by side. A GPU build only.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "tests/perf_planted_kernels.cu"

// The median of 21 runs of launch(), in microseconds (CUDA events around each, after one untimed run).
template <typename F> static double median_us(F launch) {
    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    launch();
    std::vector<float> ms;
    for (int r = 0; r < 21; r++) {
        cudaEventRecord(a);
        launch();
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        float t = 0;
        cudaEventElapsedTime(&t, a, b);
        ms.push_back(t);
    }
    cudaEventDestroy(a), cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2] * 1e3;
}

int main() {
    const int big = 1 << 22;   // 16 MiB of floats, as test_emu_perf's ranking
    float *in, *out;
    if (cudaMalloc((void **)&in, sizeof(float) * big) || cudaMalloc((void **)&out, sizeof(float) * big))
        return fprintf(stderr, "time_planted_gpu: no GPU memory: %s\n", cudaGetErrorString(cudaGetLastError())), 1;
    cudaMemset(in, 0, sizeof(float) * big);
    double t[9] = {
        median_us([&] { launch_planted_copy(in, out, big, 0, 132 * 8, 0); }),
        median_us([&] { launch_planted_copy(in, out, big, 1, 132 * 8, 0); }),
        median_us([&] { launch_planted_copy(in, out, big, 0, 1, 0); }),
        median_us([&] { launch_planted_sum((const __nv_bfloat16 *)in, 2 * big, out, 0, 132 * 8, 0); }),
        median_us([&] { launch_planted_sum((const __nv_bfloat16 *)in, 2 * big, out, 1, 132 * 8, 0); }),
        median_us([&] { launch_planted_transpose(in, out, 2048, 0, 0); }),
        median_us([&] { launch_planted_transpose(in, out, 2048, 1, 0); }),
        median_us([&] { launch_planted_async_sum(in, 30, 0, 264, out, 0); }),
        median_us([&] { launch_planted_async_sum(in, 30, 1, 264, out, 0); }),
    };
    if (cudaGetLastError() != cudaSuccess) return fprintf(stderr, "time_planted_gpu: a launch failed\n"), 1;
    printf("  measured: copy %.1f us, strided %.1f us (%.1fx), one CTA %.0f us (%.0fx); sum of bf16 2 bytes at a time "
           "%.1f us (%.1fx 16 bytes at a time); transpose %.1f us vs %.1f us padded (%.1fx); a cp.async ring of 2 stages "
           "%.1f us vs 8 stages %.1f us (%.1fx)\n",
           t[0], t[1], t[1] / t[0], t[2], t[2] / t[0], t[3], t[3] / t[4], t[5], t[6], t[5] / t[6], t[7], t[8], t[7] / t[8]);
    cudaFree(in), cudaFree(out);
    return 0;
}
