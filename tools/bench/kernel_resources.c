// ptxas's per-kernel report read back, and the occupancy it allows on an SM.
#include "tools/bench/kernel_resources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/alloc.h"

// "void gemm_bf16_kernel<4, true>(__nv_bfloat16 const*, ...)" or "rmsnorm_kernel(float*, ...)": the name with its
// template arguments.
static void kernel_name(const char *signature, char *out, size_t cap) {
    if (!strncmp(signature, "void ", 5)) signature += 5;
    size_t n = 0;
    int depth = 0;
    for (const char *p = signature; *p && n + 1 < cap; p++) {
        if (*p == '(' && depth == 0) break;
        depth += *p == '<' ? 1 : *p == '>' ? -1 : 0;
        out[n++] = *p;
    }
    out[n] = 0;
}

int kernel_resources_load(kernel_resource_table *t, const char *path, rp_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return rp_fail(err, "%s: cannot read ptxas's report (build the kernel_resources target with nvcc)", path);
    *t = (kernel_resource_table){0};
    char line[4096];
    kernel_resources *cur = NULL;
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        const char *at;
        if ((at = strstr(line, "Compiling entry function '"))) {
            char name[sizeof cur->name];
            at += strlen("Compiling entry function '");
            const char *end = strrchr(at, '\'');
            char *sig = rp_strndup(at, end ? (size_t)(end - at) : strlen(at));
            kernel_name(sig, name, sizeof name);
            free(sig);
            cur = NULL;
            for (int i = 0; i < t->n && !cur; i++)
                if (!strcmp(t->k[i].name, name)) cur = &t->k[i];
            if (!cur) {
                if (t->n == cap) t->k = rp_realloc(t->k, sizeof *t->k * (size_t)(cap = cap ? 2 * cap : 32));
                cur = &t->k[t->n++];
                *cur = (kernel_resources){0};
                snprintf(cur->name, sizeof cur->name, "%s", name);
            }
        } else if (cur && strstr(line, "bytes stack frame")) {
            sscanf(line, " %d bytes stack frame, %d bytes spill stores, %d bytes spill loads", &cur->stack,
                   &cur->spill_stores, &cur->spill_loads);
        } else if (cur && (at = strstr(line, "Used "))) {
            sscanf(at, "Used %d registers", &cur->registers);
            const char *smem = strstr(at, " bytes smem");
            if (smem) {
                const char *p = smem;
                while (p > at && p[-1] >= '0' && p[-1] <= '9') p--;
                cur->smem_static = atoi(p);
            }
        }
    }
    fclose(f);
    if (!t->n) return rp_fail(err, "%s: no kernel in it (not ptxas -v output?)", path);
    return 0;
}

void kernel_resources_free(kernel_resource_table *t) {
    free(t->k);
    *t = (kernel_resource_table){0};
}

const kernel_resources *kernel_resources_find(const kernel_resource_table *t, const char *launch_name) {
    size_t n = strlen(launch_name);
    if (n >= 2 && launch_name[0] == '(' && launch_name[n - 1] == ')') launch_name++, n -= 2;
    for (int i = 0; i < t->n; i++)
        if (strlen(t->k[i].name) == n && !strncmp(t->k[i].name, launch_name, n)) return &t->k[i];
    return NULL;
}

const sm_limits *sm_limits_hopper(void) {
    // the CUDA C++ Programming Guide's compute capability 9.0 table; 228 KB of shared memory per SM, 227 KB per CTA
    static const sm_limits hopper = {.name = "sm_90", .sms = 132, .registers = 65536, .register_unit = 256,
                                     .smem = 228 * 1024, .smem_per_cta_max = 227 * 1024, .smem_reserved = 1024,
                                     .smem_unit = 128, .threads = 2048, .ctas = 32};
    return &hopper;
}

static long round_up(long x, long unit) { return (x + unit - 1) / unit * unit; }

occupancy kernel_occupancy(const sm_limits *sm, const kernel_resources *k, int threads, int dynamic_smem, long ctas) {
    occupancy o = {0};
    int warps = (threads + 31) / 32;
    long regs_per_warp = round_up((long)(k->registers ? k->registers : 1) * 32, sm->register_unit);
    long smem = (long)k->smem_static + dynamic_smem;
    if (threads > 1024 || threads > sm->threads || smem > sm->smem_per_cta_max || regs_per_warp * warps > sm->registers) {
        o.limited_by = threads > 1024 || threads > sm->threads ? "threads" : smem > sm->smem_per_cta_max ? "shared memory" : "registers";
        return o;
    }
    long by_regs = sm->registers / regs_per_warp / warps;
    long by_smem = sm->smem / round_up(smem + sm->smem_reserved, sm->smem_unit);
    long by_threads = sm->threads / (warps * 32);
    long n = sm->ctas;
    o.limited_by = "CTAs";
    if (by_threads < n) n = by_threads, o.limited_by = "threads";
    if (by_smem < n) n = by_smem, o.limited_by = "shared memory";
    if (by_regs < n) n = by_regs, o.limited_by = "registers";
    o.ctas_per_sm = (int)n;
    long resident = n * sm->sms;
    o.waves = (double)((ctas + resident - 1) / resident);
    o.occupancy = (double)(n * warps) / (sm->threads / 32);
    return o;
}
