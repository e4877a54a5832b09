// The speed model: a launch's time from its counted traffic and work, per GPU.
#include "tools/bench/gpu_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "loader/alloc.h"
#include "loader/json_file.h"

// Fitted to the H200 (bench/GPU_NOTES.md, "speed model"); the H100 differs in DRAM bandwidth (HBM3 at 3.35 TB/s on
// the datasheet, HBM3e at 4.8 on the H200: the same 0.875 of it reached by a copy) and nothing else: the same SMs,
// clocks, L2 and tensor cores.
static const gpu_model models[] = {
    {"h200", 4.2e12, 10.0e12, 660e12, 1.755e9, 2.3e-6, 0.84e-6, 4.0, 1.0e-6},
    {"h100", 2.93e12, 10.0e12, 660e12, 1.755e9, 2.3e-6, 0.84e-6, 4.0, 1.0e-6},
};

const gpu_model *gpu_model_named(const char *name) {
    for (size_t i = 0; i < sizeof models / sizeof *models; i++)
        if (!strcmp(models[i].name, name)) return &models[i];
    return NULL;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int launch_list_read(launch_list *out, const char *path, rp_err *err) {
    *out = (launch_list){0};
    FILE *f = fopen(path, "r");
    if (!f) return rp_fail(err, "%s: cannot read the launch counters", path);
    char *line = NULL;
    size_t cap = 0;
    int n_cap = 0, rc = 0, lineno = 0;
    while (getline(&line, &cap, f) > 0 && !rc) {
        lineno++;
        if (!strstr(line, "\"launch\":\"counters\"")) continue;
        cJSON *j = cJSON_Parse(line);
        if (!j) {
            rc = rp_fail(err, "%s:%d: not a JSON line", path, lineno);
            break;
        }
        if (out->n == n_cap) out->l = rp_realloc(out->l, sizeof *out->l * (size_t)(n_cap = n_cap ? 2 * n_cap : 64));
        launch_counters *c = &out->l[out->n++];
        memset(c, 0, sizeof *c);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name"), *block = cJSON_GetObjectItemCaseSensitive(j, "block");
        snprintf(c->name, sizeof c->name, "%s", cJSON_IsString(name) ? name->valuestring : "?");
        c->ctas = (long)num(j, "ctas"), c->ctas_run = (long)num(j, "ctas_run"), c->smem = (int)num(j, "smem");
        c->threads = 1;
        for (int d = 0; d < 3 && cJSON_GetArrayItem(block, d); d++) c->threads *= cJSON_GetArrayItem(block, d)->valueint;
        c->load_bytes = num(j, "load_bytes"), c->store_bytes = num(j, "store_bytes"), c->wide_bytes = num(j, "wide_bytes");
        c->load_requests = num(j, "load_requests"), c->load_sectors = num(j, "load_sectors");
        c->store_requests = num(j, "store_requests"), c->store_sectors = num(j, "store_sectors");
        c->dram_sectors = num(j, "dram_sectors"), c->shared_bytes = num(j, "shared_bytes");
        c->shared_requests = num(j, "shared_requests"), c->shared_wavefronts = num(j, "shared_wavefronts");
        c->shared_ideal = num(j, "shared_ideal"), c->tensor_flops = num(j, "tensor_flops");
        c->async_requests = num(j, "async_requests"), c->async_threads = num(j, "async_threads");
        c->async_peak = num(j, "async_peak"), c->span_sectors = num(j, "span_sectors");
        c->pdl = (int)num(j, "pdl"), c->pdl_early = num(j, "pdl_early");
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    if (rc) launch_list_free(out);
    return rc;
}

void launch_list_free(launch_list *l) {
    free(l->l);
    *l = (launch_list){0};
}

// launch + max(dram, l2, tensor, smem, latency), launch being pdl_launch for a programmatic dependent launch after a
// kernel:
//   dram     compulsory bytes (the sample's distinct sectors scaled up, at most the footprint) over the bandwidth the launch can draw: the GPU's, or less when too few warps are
//            resident to keep it busy (Little's law: bytes in flight / latency, each resident warp with its
//            requests in flight, of their mean size, outstanding);
//   l2       every sector requested, over L2's bandwidth (uncoalesced access costs here);
//   tensor   FLOPs over the tensor cores' rate, of the SMs the grid occupies, wave after wave (a grid of 96 CTAs, one
//            an SM, uses 96 of 132 SMs' tensor cores; 133 take two waves);
//   smem     shared-memory wavefronts, one per clock on each SM the launch occupies;
//   latency  each warp's requests, one round trip for each `in_flight` of them, wave after wave.
// A warp's requests in flight: `in_flight` (the GPU's constant) for loads it waits on; for cp.async copies, the most
// its threads had in flight at a wait, on average over them (its pipeline's depth when full, counted).
launch_prediction gpu_predict(const gpu_model *g, const sm_limits *sm, const kernel_resources *k, const launch_counters *c) {
    launch_prediction p = {0};
    kernel_resources assumed = {.registers = 32};
    if (!k) k = &assumed;
    double scale = c->ctas_run > 0 ? (double)c->ctas / c->ctas_run : 1;
    p.occ = kernel_occupancy(sm, k, c->threads, c->smem, c->ctas);
    int warps_per_cta = (c->threads + 31) / 32;
    double resident_ctas = fmin((double)c->ctas, (double)(p.occ.ctas_per_sm > 0 ? p.occ.ctas_per_sm : 1) * sm->sms);
    double resident_warps = resident_ctas * warps_per_cta;
    double requests = (c->load_requests + c->store_requests) * scale;
    double sectors = (c->load_sectors + c->store_sectors) * scale;
    double bytes_per_request = requests > 0 ? sectors * 32 / requests : 128;
    double async = fmin(c->async_requests * scale, requests), depth = g->in_flight;
    if (c->async_threads > 0) depth = fmax(1.0, c->async_peak / c->async_threads);
    double trips = (requests - async) / g->in_flight + async / depth;   // round trips of all warps together
    p.in_flight = trips > 0 ? requests / trips : g->in_flight;
    p.in_flight_sm_bytes = resident_warps / fmin((double)c->ctas, sm->sms) * p.in_flight * bytes_per_request;
    double reachable = fmin(g->dram_bandwidth, resident_warps * p.in_flight * bytes_per_request / g->latency);
    // a sample's distinct sectors scaled up count the tiles CTAs share (a GEMM's X and weight tiles) once per CTA; no
    // launch needs more from DRAM than the spans its counted CTAs touched (L2 taken to hold a wave's shared tiles)
    p.dram_bytes = c->dram_sectors * 32 * scale;
    if (c->span_sectors > 0 && c->span_sectors * 32 < p.dram_bytes) p.dram_bytes = c->span_sectors * 32;
    p.flops = c->tensor_flops * scale;
    p.launch = c->pdl ? fmin(g->pdl_launch, g->launch) : g->launch;
    p.dram = p.dram_bytes / reachable;
    p.l2 = sectors * 32 / g->l2_bandwidth;
    double per_sm = ceil(resident_ctas / sm->sms);   // CTAs sharing an SM's tensor cores in a full wave
    p.tensor = c->ctas > 0 ? p.occ.waves * (p.flops / c->ctas) * per_sm / (g->tensor_flops / sm->sms) : 0;
    p.smem = c->shared_wavefronts * scale / (g->clock * fmin((double)c->ctas, sm->sms));
    double total_warps = (double)c->ctas * warps_per_cta;
    p.latency = p.occ.waves * (trips / total_warps) * g->latency;
    const char *names[] = {"dram", "l2", "tensor", "smem", "latency"};
    double terms[] = {p.dram, p.l2, p.tensor, p.smem, p.latency};
    int top = 0;
    for (int i = 1; i < 5; i++)
        if (terms[i] > terms[top]) top = i;
    p.bound = names[top];
    p.seconds = p.launch + terms[top];
    return p;
}
