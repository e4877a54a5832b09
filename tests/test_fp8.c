// FP8 E4M3 (loader/fp8.c) against the format's definition: every code's value from its fields by an independent
// formula, every finite code round-tripped, rounding to the nearest code with ties to even checked against a brute
// search over all codes (at the codes, their midpoints and random values), saturation, NaN and signed zero, and a
// row's quantization. Then --weights fp8 on the CPU backend against a checkpoint of the dequantized weights.
#include <math.h>
#include <stdint.h>

#include "engine/forward.h"
#include "loader/fp8.h"
#include "loader/json_file.h"
#include "loader/weights.h"
#include "tests/test_util.h"

// The value by the OCP definition, written out again: (-1)^s x 2^(1 - 7) x (m / 8) for e = 0, else
// (-1)^s x 2^(e - 7) x (1 + m / 8); S.1111.111 is NaN.
static double spec_value(int code) {
    int s = code >> 7, e = (code >> 3) & 0xf, m = code & 7;
    if (e == 0xf && m == 7) return NAN;
    double v = e == 0 ? pow(2.0, -6) * (m / 8.0) : pow(2.0, e - 7) * (1.0 + m / 8.0);
    return s ? -v : v;
}

// The nearest finite code by brute force: least |x - value|, ties to the code with an even mantissa; beyond 448, 448.
static int brute_nearest(double x) {
    if (fabs(x) >= 448.0) return x < 0 ? 0xfe : 0x7e;
    int best = -1;
    double best_d = INFINITY;
    for (int c = 0; c < 256; c++) {
        double v = spec_value(c);
        if (isnan(v) || (signbit(v) != signbit(x))) continue;
        double d = fabs(x - v);
        if (d < best_d || (d == best_d && (c & 1) == 0)) best = c, best_d = d;
    }
    return best;
}

static void every_code_has_its_value(void) {
    int bad = 0, nans = 0;
    for (int c = 0; c < 256; c++) {
        double want = spec_value(c);
        float got = fp8_e4m3_value((uint8_t)c);
        if (isnan(want)) nans += isnan(got);
        else bad += (double)got != want;
    }
    CHECK(bad == 0 && nans == 2, "%d codes with a wrong value, %d of the 2 NaN codes NaN", bad, nans);
    CHECK(fp8_e4m3_value(0x7e) == 448.0f && fp8_e4m3_value(0x01) == ldexpf(1.0f, -9) && fp8_e4m3_value(0x08) == ldexpf(1.0f, -6),
          "448, the least subnormal 2^-9 and the least normal 2^-6");
}

static void finite_codes_round_trip(void) {
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        if ((c & 0x7f) == 0x7f) continue;
        bad += fp8_e4m3_from_float(fp8_e4m3_value((uint8_t)c)) != c;
    }
    CHECK(bad == 0, "%d finite codes do not come back from their value", bad);
    CHECK(fp8_e4m3_from_float(-0.0f) == 0x80 && fp8_e4m3_from_float(0.0f) == 0x00, "signed zeros");
}

static void rounding_is_to_the_nearest_even(void) {
    int bad = 0, n = 0;
    for (int c = 0; c < 0x7e; c++) {   // each gap between neighbours: its midpoint (a tie) and points either side
        double lo = spec_value(c), hi = spec_value(c + 1), mid = (lo + hi) / 2;
        double pts[] = {mid, nextafter(mid, lo), nextafter(mid, hi), lo + (hi - lo) / 4, hi - (hi - lo) / 4};
        for (int i = 0; i < 5; i++)
            for (int s = 0; s < 2; s++) {
                float x = (float)(s ? -pts[i] : pts[i]);
                bad += fp8_e4m3_from_float(x) != brute_nearest(x), n++;
            }
    }
    uint64_t state = 12345;
    for (int i = 0; i < 200000; i++) {   // random magnitudes over the whole range, and past it
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        float x = ldexpf((float)((state >> 11) & 0xffffff) / 16777216.0f, (int)((state >> 40) % 24) - 14);
        if (state >> 63) x = -x;
        bad += fp8_e4m3_from_float(x) != brute_nearest(x), n++;
    }
    CHECK(bad == 0, "%d of %d values rounded to another code than the nearest (ties to even)", bad, n);
    CHECK(fp8_e4m3_from_float(0.5f * (448.0f + 416.0f)) == 0x7e, "432, between 416 and 448: the tie to 448 (even)");
    CHECK(fp8_e4m3_from_float(ldexpf(1.0f, -10)) == 0x00 && fp8_e4m3_from_float(ldexpf(3.0f, -11)) == 0x01,
          "half the least subnormal rounds to 0 (even), three quarters to it");
}

static void saturation_and_nan(void) {
    CHECK(fp8_e4m3_from_float(449.0f) == 0x7e && fp8_e4m3_from_float(464.0f) == 0x7e && fp8_e4m3_from_float(1e30f) == 0x7e &&
              fp8_e4m3_from_float(INFINITY) == 0x7e && fp8_e4m3_from_float(-INFINITY) == 0xfe && fp8_e4m3_from_float(-1e9f) == 0xfe,
          "beyond 448 saturates to +-448, never NaN");
    CHECK(fp8_e4m3_from_float(NAN) == 0x7f, "NaN stays NaN");
}

static void a_row_quantizes_to_its_scale(void) {
    float w[300];
    uint8_t q[300];
    for (int i = 0; i < 300; i++) w[i] = sinf(0.37f * i) * (i % 7 ? 0.02f : 0.5f);
    w[123] = -0.75f;   // the largest magnitude
    float scale;
    rp_err err;
    CHECK(fp8_quantize_row(w, 300, q, &scale, &err) == 0, "%s", err.msg);
    CHECK(scale == 0.75f / 448.0f && q[123] == 0xfe, "scale %g, the largest weight's code 0x%02x", (double)scale, q[123]);
    int bad = 0;
    for (int i = 0; i < 300; i++) bad += q[i] != fp8_e4m3_from_float(w[i] / scale);
    CHECK(bad == 0, "%d codes are not the nearest to weight / scale", bad);
    float zeros[4] = {0, -0.0f, 0, 0};
    CHECK(fp8_quantize_row(zeros, 4, q, &scale, &err) == 0 && scale == 1.0f && (q[0] | (q[1] & 0x7f) | q[2] | q[3]) == 0,
          "a row of zeros: scale 1, zero codes");
    w[7] = NAN;
    CHECK(fp8_quantize_row(w, 300, q, &scale, &err) != 0 && strstr(err.msg, "weight 7"), "a NaN weight refused naming it: %s",
          err.msg);
}

// Every row's logits of a prompt through a model loaded with the given weights format.
static float *prompt_logits(const char *dir, weights_format wf, int *vocab, rp_err *err) {
    static const int prompt[] = {1, 7, 3, 12, 5, 9, 2, 11};
    const int n = (int)(sizeof prompt / sizeof *prompt);
    model m;
    plan_shape shape = {.kv_dtype = KV_DTYPE_F32, .weights = wf};   // one KV dtype whatever the stored weights
    if (model_load_planned(&m, dir, "cpu", 1, &shape, 0, err)) return NULL;
    schedule sched;
    schedule_base(&sched, m.cfg.n_layers);
    sequence seq, *seqs[1] = {&seq};
    float *logits = malloc(sizeof(float) * (size_t)n * m.cfg.vocab_size);
    const int *feed[1] = {prompt};
    int rc = sequence_init(&seq, &m, &sched, n, err) || forward(&m, seqs, 1, feed, &n, 1, logits, NULL, err);
    *vocab = m.cfg.vocab_size * n;
    sequence_free(&seq, &m), schedule_free(&sched), model_free(&m);
    if (rc) free(logits), logits = NULL;
    return logits;
}

// --weights fp8 (the CPU backend: each projection quantized per row at load, its scale applied after the row's
// chain) gives, on every fixture, the logits of a checkpoint whose projections hold the dequantized weights (the
// codes' values times their row's scale, in float32) within float rounding - the scale applied after the sum, not
// to each weight - and not the logits of the weights as stored (the quantization changed them).
static void fp8_weights_give_the_dequantized_checkpoint(void) {
    static const char *fixtures[] = {"llama", "qwen2", "qwen3", "mistral"};
    for (int f = 0; f < 4; f++) {
        char dir[512], path[600];
        snprintf(dir, sizeof dir, "%s/%s", FIXTURES_DIR, fixtures[f]);
        rp_err err;
        st_archive a;
        CHECK(st_open_dir(&a, dir, &err) == 0, "%s", err.msg);
        char *tmp = make_temp_dir("fp8");
        size_t len;   // config.json as it is
        snprintf(path, sizeof path, "%s/config.json", dir);
        char *config = read_file_all(path, 1 << 20, "config", &len, &err);
        snprintf(path, sizeof path, "%s/config.json", tmp);
        FILE *cf = fopen(path, "w");
        CHECK(config && cf && fwrite(config, 1, len, cf) == len, "config.json copied");
        if (cf) fclose(cf);
        free(config);
        st_out_tensor *out = calloc((size_t)a.n_tensors, sizeof *out);
        float **owned = calloc((size_t)a.n_tensors, sizeof *owned);
        int quantized = 0;
        for (int i = 0; i < a.n_tensors; i++) {
            const st_tensor *t = &a.tensors[i];
            out[i] = (st_out_tensor){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data, .nbytes = t->nbytes};
            memcpy(out[i].shape, t->shape, sizeof out[i].shape);
            if (t->ndim != 2 || !strstr(t->name, "layers.")) continue;   // embeddings, LM head, norms: as stored
            int d = (int)t->shape[0], k = (int)t->shape[1];
            float *w = owned[i] = malloc(sizeof(float) * (size_t)d * k), scale;
            uint8_t *codes = malloc((size_t)k);
            tensor_to_f32(t, w);
            for (int j = 0; j < d; j++) {
                fp8_quantize_row(w + (size_t)j * k, k, codes, &scale, &err);
                for (int e = 0; e < k; e++) w[(size_t)j * k + e] = fp8_e4m3_value(codes[e]) * scale;
            }
            free(codes);
            out[i].dtype = ST_F32, out[i].data = w, out[i].nbytes = sizeof(float) * (size_t)d * k;
            quantized++;
        }
        snprintf(path, sizeof path, "%s/model.safetensors", tmp);
        CHECK(quantized > 0 && st_write_file(path, out, a.n_tensors, &err) == 0, "%s: the dequantized checkpoint", fixtures[f]);
        int n = 0, n2 = 0, n3 = 0;
        float *got = prompt_logits(dir, WEIGHTS_FP8, &n, &err), *want = prompt_logits(tmp, WEIGHTS_AS_STORED, &n2, &err),
              *stored = prompt_logits(dir, WEIGHTS_AS_STORED, &n3, &err);
        CHECK(got && want && stored && n == n2 && n == n3, "%s: logits (%s)", fixtures[f], err.msg);
        if (got && want && stored) {
            float big = 0, d_ref = 0, d_stored = 0;
            for (int i = 0; i < n; i++)
                big = fmaxf(big, fabsf(want[i])), d_ref = fmaxf(d_ref, fabsf(got[i] - want[i])),
                d_stored = fmaxf(d_stored, fabsf(got[i] - stored[i]));
            fprintf(stderr, "  %s: max |dlogit| %.3g against the dequantized checkpoint, %.3g against the stored weights "
                            "(max |logit| %.3g)\n", fixtures[f], (double)d_ref, (double)d_stored, (double)big);
            CHECK(d_ref <= 1e-4f * big, "%s: --weights fp8 is %g from its dequantized checkpoint", fixtures[f], (double)d_ref);
            CHECK(d_stored > d_ref, "%s: the quantized model gives the stored weights' logits", fixtures[f]);
        }
        free(got), free(want), free(stored);
        for (int i = 0; i < a.n_tensors; i++) free(owned[i]);
        free(owned), free(out), free(tmp);
        st_close(&a);
    }
}

int main(void) {
    RUN(every_code_has_its_value);
    RUN(finite_codes_round_trip);
    RUN(rounding_is_to_the_nearest_even);
    RUN(saturation_and_nan);
    RUN(a_row_quantizes_to_its_scale);
    RUN(fp8_weights_give_the_dequantized_checkpoint);
    return TEST_EXIT();
}
