// The perf build's counters on kernels planted with one known inefficiency each (tests/perf_planted_kernels.cu):
// coalescing (sectors a request), access width, shared-memory bank conflicts, compulsory DRAM sectors, and the launch
// lines they come with.
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "kernels/emu/emu_control.h"
#include "kernels/kernels.h"
#include "tests/test_util.h"
extern "C" {
#include "tools/bench/gpu_model.h"
}

cudaError_t launch_planted_copy(const float *in, float *out, int n, int strided, int blocks, cudaStream_t s);
cudaError_t launch_planted_sum(const __nv_bfloat16 *x, int n, float *out, int wide, int blocks, cudaStream_t s);
cudaError_t launch_planted_transpose(const float *in, float *out, int n, int padded, cudaStream_t s);
cudaError_t launch_planted_async_sum(const float *in, int stages_per_cta, int deep, int blocks, float *out, cudaStream_t s);

// The numbers of each "counters" line of the file, in order: {"name": ..., "load_sectors": ...}.
typedef std::map<std::string, double> record;
static std::vector<record> counter_lines(const char *path) {
    std::vector<record> out;
    FILE *f = fopen(path, "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"launch\":\"counters\"")) continue;
        record r;
        const char *name = strstr(line, "\"name\":\"");
        if (name) r["name:" + std::string(name + 8, strchr(name + 8, '"'))] = 1;
        for (const char *p = line; (p = strstr(p, "\":")); p += 2) {
            const char *k = p;
            while (k > line && k[-1] != '"') k--;
            char *end;
            double v = strtod(p + 2, &end);
            if (end != p + 2) r[std::string(k, p)] = v;
        }
        out.push_back(r);
    }
    if (f) fclose(f);
    return out;
}

static std::vector<record> counted(void (*work)()) {
    char path[] = "/tmp/reprise-emu-perf-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    emu_profile_open(path);
    work();
    cudaDeviceSynchronize();
    emu_profile_open(nullptr);
    std::vector<record> r = counter_lines(path);
    unlink(path);
    return r;
}

const int N = 1 << 16;   // floats: 256 KiB
static float *dev_floats(int n) {
    float *d;
    cudaMalloc((void **)&d, sizeof(float) * n);
    cudaMemset(d, 0, sizeof(float) * n);
    return d;
}

static void coalescing_and_compulsory_sectors(void) {
    std::vector<record> r = counted([] {
        float *in = dev_floats(N), *out = dev_floats(N);
        launch_planted_copy(in, out, N, 0, 64, 0);
        launch_planted_copy(in, out, N, 1, 64, 0);
        launch_planted_copy(in, out, N, 0, 1, 0);
        cudaDeviceSynchronize();
        cudaFree(in), cudaFree(out);
    });
    CHECK(r.size() == 3, "%zu counter lines", r.size());
    if (r.size() != 3) return;
    record &c = r[0], &s = r[1], &one = r[2];
    CHECK(c["load_bytes"] == 4.0 * N && c["store_bytes"] == 4.0 * N, "copy: %g bytes loaded, %g stored", c["load_bytes"], c["store_bytes"]);
    CHECK(c["load_requests"] == N / 32 && c["load_sectors"] / c["load_requests"] == 4, "copy: %g sectors a request",
          c["load_sectors"] / c["load_requests"]);
    CHECK(c["dram_sectors"] == 2.0 * N * 4 / 32, "copy: %g compulsory sectors, want %d", c["dram_sectors"], 2 * N * 4 / 32);
    CHECK(s["load_bytes"] == c["load_bytes"] && s["load_sectors"] / s["load_requests"] == 32 &&
              s["store_sectors"] / s["store_requests"] == 32 && s["dram_sectors"] == c["dram_sectors"],
          "strided: %g sectors a request, %g compulsory", s["load_sectors"] / s["load_requests"], s["dram_sectors"]);
    CHECK(one["ctas"] == 1 && one["load_bytes"] == c["load_bytes"] && one["load_sectors"] == c["load_sectors"],
          "one CTA moves what the grid moves");
    CHECK(c["shared_bytes"] == 0 && c["tensor_flops"] == 0 && c["wide_bytes"] == 0, "copy: no shared memory, tensor or wide access");
}

static void access_width(void) {
    std::vector<record> r = counted([] {
        __nv_bfloat16 *x;
        cudaMalloc((void **)&x, 2 * N);
        cudaMemset(x, 0, 2 * N);
        float *out = dev_floats(132 * 256);
        launch_planted_sum(x, N, out, 0, 16, 0);
        launch_planted_sum(x, N, out, 1, 16, 0);
        cudaDeviceSynchronize();
        cudaFree(x), cudaFree(out);
    });
    CHECK(r.size() == 2, "%zu counter lines", r.size());
    if (r.size() != 2) return;
    CHECK(r[0]["load_bytes"] == 2.0 * N && r[1]["load_bytes"] == 2.0 * N, "both read the %d bytes: %g and %g", 2 * N,
          r[0]["load_bytes"], r[1]["load_bytes"]);
    CHECK(r[0]["wide_bytes"] == 0 && r[1]["wide_bytes"] == 2.0 * N, "wide bytes: %g (2-byte loads), %g (16-byte loads)",
          r[0]["wide_bytes"], r[1]["wide_bytes"]);
    CHECK(r[0]["load_requests"] == 8 * r[1]["load_requests"], "8 times the requests 2 bytes at a time: %g vs %g",
          r[0]["load_requests"], r[1]["load_requests"]);
}

static void bank_conflicts(void) {
    const int n = 128;
    std::vector<record> r = counted([] {
        float *in = dev_floats(n * n), *out = dev_floats(n * n);
        launch_planted_transpose(in, out, n, 0, 0);
        launch_planted_transpose(in, out, n, 1, 0);
        launch_planted_transpose(in, out, n, 2, 0);
        cudaDeviceSynchronize();
        cudaFree(in), cudaFree(out);
    });
    CHECK(r.size() == 3, "%zu counter lines", r.size());
    if (r.size() != 3) return;
    // per warp: a conflict-free row write (1 wavefront) and a column read (32 without padding, 1 with)
    double warps = n * n / 32.0;
    CHECK(r[0]["shared_requests"] == 2 * warps && r[0]["shared_wavefronts"] == 33 * warps && r[0]["shared_ideal"] == 2 * warps,
          "unpadded: %g requests, %g wavefronts, %g at best", r[0]["shared_requests"], r[0]["shared_wavefronts"], r[0]["shared_ideal"]);
    CHECK(r[1]["shared_wavefronts"] == 2 * warps && r[1]["shared_ideal"] == 2 * warps, "padded: %g wavefronts, %g at best",
          r[1]["shared_wavefronts"], r[1]["shared_ideal"]);
    // an instruction half the lanes skip is a request of its own; the warp's later instructions stay one request each
    CHECK(r[2]["shared_requests"] == 3 * warps && r[2]["shared_wavefronts"] == 3 * warps && r[2]["load_requests"] == warps &&
              r[2]["store_requests"] == warps,
          "odd lanes' extra store: %g shared requests (want %g), %g wavefronts, %g global loads, %g stores",
          r[2]["shared_requests"], 3 * warps, r[2]["shared_wavefronts"], r[2]["load_requests"], r[2]["store_requests"]);
}

// cp.async: its reads are counted as asynchronous requests, and how many copies a thread has in flight when it waits
// (7 in an 8-stage ring, 1 in a 2-stage one); the model then gives the deep ring the bandwidth the shallow one lacks.
static void async_pipeline_depth(void) {
    const int stages = 32, blocks = 132 * 2;   // 16 KB a warp's stream
    std::vector<record> r = counted([] {
        float *in = dev_floats(blocks * stages * 512), *out = dev_floats(blocks * 128);
        launch_planted_async_sum(in, stages, 0, blocks, out, 0);
        launch_planted_async_sum(in, stages, 1, blocks, out, 0);
        cudaDeviceSynchronize();
        cudaFree(in), cudaFree(out);
    });
    CHECK(r.size() == 2, "%zu counter lines", r.size());
    if (r.size() != 2) return;
    double warps = blocks * 4.0;
    for (int i = 0; i < 2; i++)
        CHECK(r[i]["async_requests"] == warps * stages && r[i]["load_requests"] == warps * stages &&
                  r[i]["wide_bytes"] == 16.0 * 128 * blocks * stages && r[i]["async_threads"] == 128.0 * blocks,
              "%s ring: %g async requests of %g loads (want %g), %g threads waited", i ? "deep" : "shallow",
              r[i]["async_requests"], r[i]["load_requests"], warps * stages, r[i]["async_threads"]);
    CHECK(r[0]["async_peak"] == 1.0 * 128 * blocks && r[1]["async_peak"] == 7.0 * 128 * blocks,
          "copies in flight at a wait: %g and %g a thread (want 1 and 7)", r[0]["async_peak"] / (128 * blocks),
          r[1]["async_peak"] / (128 * blocks));
}

// The copy engine's boxes as the model sees them: the prefill GEMM (kernels/gemm_wgmma.cu) at 128 x 128 x 512 loads
// 8 stages of two 16 KB boxes; each box is one asynchronous request of 512 sectors (not one per row), issued by one
// thread whose waits find up to the ring's 12 boxes in flight; and the wgmma FLOPs are the product's.
static void bulk_copies_are_requests_of_the_copy_engine(void) {
    std::vector<record> r = counted([] {
        const int R = 128, N = 128, K = 512;
        bf16 *x, *w;
        float *out;
        cudaMalloc((void **)&x, (size_t)R * K * sizeof(bf16)), cudaMalloc((void **)&w, (size_t)N * K * sizeof(bf16));
        cudaMalloc((void **)&out, (size_t)R * N * sizeof(float));
        cudaMemset(x, 0, (size_t)R * K * sizeof(bf16)), cudaMemset(w, 0, (size_t)N * K * sizeof(bf16));
        launch_gemm_wgmma(x, gemm_weight_bf16(w), R, N, K, gemm_k_segments(N, K), gemm_store(out), 128, 0);
        cudaDeviceSynchronize();
        cudaFree(x), cudaFree(w), cudaFree(out);
    });
    CHECK(r.size() == 1, "%zu counter lines", r.size());
    if (r.size() != 1) return;
    CHECK(r[0]["async_requests"] == 16 && r[0]["load_requests"] == 16 && r[0]["load_sectors"] == 16 * 512.0,
          "%g async requests of %g loads, %g sectors (want 16 boxes of 512 sectors)", r[0]["async_requests"],
          r[0]["load_requests"], r[0]["load_sectors"]);
    CHECK(r[0]["async_threads"] == 1 && r[0]["async_peak"] >= 10 && r[0]["async_peak"] <= 13,
          "%g threads waited with copies in flight, at most %g boxes (want the producer alone, 10-12 and its next)",
          r[0]["async_threads"], r[0]["async_peak"]);
    CHECK(r[0]["tensor_flops"] == 2.0 * 128 * 128 * 512, "%g tensor FLOPs", r[0]["tensor_flops"]);
    // the footprint: X and W (128 KB each) and the output (64 KB), each sector once
    CHECK(r[0]["span_sectors"] == 10240 && r[0]["dram_sectors"] == 10240, "footprint %g sectors, %g distinct (want 10240)",
          r[0]["span_sectors"], r[0]["dram_sectors"]);
}

// The speed model ranks the planted kernels at sizes past the caches, one CTA in 16 counted: the strided copy, the
// copy in one CTA, 2-byte loads and the unpadded transpose each slower than their twin (by how much, a GPU says:
// tests/run_gpu.sh times them; the ratios predicted are printed).
static launch_list planted_at_size(void (*work)()) {
    char path[] = "/tmp/reprise-emu-rank-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    emu_set_perf_sample(16);
    emu_profile_open(path);
    work();
    cudaDeviceSynchronize();
    emu_profile_open(nullptr);
    emu_set_perf_sample(1);
    launch_list l;
    rp_err err;
    if (launch_list_read(&l, path, &err)) l = launch_list{nullptr, 0};
    unlink(path);
    return l;
}

static void the_model_ranks_them(void) {
    const int big = 1 << 22;   // 16 MiB of floats
    launch_list l = planted_at_size([] {
        float *in = dev_floats(big), *out = dev_floats(big);
        launch_planted_copy(in, out, big, 0, 132 * 8, 0);
        launch_planted_copy(in, out, big, 1, 132 * 8, 0);
        launch_planted_copy(in, out, big, 0, 1, 0);
        launch_planted_sum((const __nv_bfloat16 *)in, 2 * big, out, 0, 132 * 8, 0);
        launch_planted_sum((const __nv_bfloat16 *)in, 2 * big, out, 1, 132 * 8, 0);
        launch_planted_transpose(in, out, 2048, 0, 0);
        launch_planted_transpose(in, out, 2048, 1, 0);
        launch_planted_async_sum(in, 30, 0, 264, out, 0);   // 16 MB through 2 and 8 stages
        launch_planted_async_sum(in, 30, 1, 264, out, 0);
        cudaDeviceSynchronize();
        cudaFree(in), cudaFree(out);
    });
    CHECK(l.n == 9, "%d launches counted", l.n);
    if (l.n != 9) return launch_list_free(&l);
    const gpu_model *g = gpu_model_named("h200");
    double t[9];
    const char *bound[9];
    for (int i = 0; i < 9; i++) {
        launch_prediction p = gpu_predict(g, sm_limits_hopper(), nullptr, &l.l[i]);
        t[i] = p.seconds, bound[i] = p.bound;
    }
    printf("  h200, predicted: copy %.1f us (%s), strided %.1f us (%s, %.1fx), one CTA %.0f us (%.0fx); sum of bf16 2 bytes "
           "at a time %.1f us (%.1fx 16 bytes at a time); transpose %.1f us (%s) vs %.1f us padded (%.1fx); a cp.async "
           "ring of 2 stages %.1f us (%s) vs 8 stages %.1f us (%s, %.1fx)\n",
           t[0] * 1e6, bound[0], t[1] * 1e6, bound[1], t[1] / t[0], t[2] * 1e6, t[2] / t[0], t[3] * 1e6, t[3] / t[4],
           t[5] * 1e6, bound[5], t[6] * 1e6, t[5] / t[6], t[7] * 1e6, bound[7], t[8] * 1e6, bound[8], t[7] / t[8]);
    CHECK(!strcmp(bound[0], "dram"), "a coalesced copy of 32 MiB streams at the bandwidth: %s", bound[0]);
    CHECK(t[1] > 1.5 * t[0], "the strided copy is slower: %.1f vs %.1f us", t[1] * 1e6, t[0] * 1e6);
    CHECK(t[2] > 10 * t[0], "one CTA is far slower than 1,056: %.0f vs %.1f us", t[2] * 1e6, t[0] * 1e6);
    CHECK(t[3] >= t[4], "2-byte loads are no faster than 16-byte ones: %.1f vs %.1f us", t[3] * 1e6, t[4] * 1e6);
    CHECK(t[5] > 1.5 * t[6] && !strcmp(bound[5], "smem"), "the unpadded transpose is slower, bound by shared memory: %.1f vs %.1f us (%s)",
          t[5] * 1e6, t[6] * 1e6, bound[5]);
    CHECK(t[7] > 2 * t[8] && !strcmp(bound[8], "dram"), "the deep ring streams at the bandwidth, the shallow one cannot: "
          "%.1f us (%s) vs %.1f us (%s)", t[7] * 1e6, bound[7], t[8] * 1e6, bound[8]);
    launch_list_free(&l);
}

int main(void) {
    RUN(coalescing_and_compulsory_sectors);
    RUN(access_width);
    RUN(bank_conflicts);
    RUN(async_pipeline_depth);
    RUN(bulk_copies_are_requests_of_the_copy_engine);
    RUN(the_model_ranks_them);
    return TEST_EXIT();
}
