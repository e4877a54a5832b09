// A model: its config, its mmap'ed checkpoint, and its weights converted once into a backend's layout.
#include "engine/model.h"
#include "loader/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backends/builtin.h"
#include "engine/tensor_parallel.h"
#include "loader/load_progress.h"
#include "loader/weights.h"

const backend_entry *backend_builtin_find(const char *name) {
    for (const backend_entry *e = backend_builtin; e->name; e++)
        if (strcmp(e->name, name) == 0) return e;
    return NULL;
}

int model_load(model *m, const char *dir, const char *backend_name, int n_threads, rp_err *err) {
    return model_load_planned(m, dir, backend_name, n_threads, NULL, 0, err);
}

int model_load_planned(model *m, const char *dir, const char *backend_name, int n_threads, const plan_shape *shape,
                       int allow_unused_tensors, rp_err *err) {
    memset(m, 0, sizeof *m);
    if (config_load(&m->cfg, dir, err)) return -1;
    if (st_open_dir(&m->weights, dir, err)) return -1;
    if (!allow_unused_tensors && weights_refuse_unused(&m->cfg, &m->weights, err)) {
        rp_wrap(err, "%s", dir);
        st_close(&m->weights);
        return -1;
    }
    plan_shape none = {0};
    memory_plan_compute(&m->cfg, shape ? shape : &none, &m->plan);
    int tp = m->plan.shape.tp;
    if (tp > 1 && (tp_check(&m->cfg, tp, err) || strcmp(backend_name, "cpu") == 0)) {
        if (strcmp(backend_name, "cpu") == 0) rp_fail(err, "--tp %d: tensor parallelism splits the model over GPUs; it needs --backend cuda", tp);
        st_close(&m->weights);
        return -1;
    }
    const backend_entry *cuda = backend_builtin_find("cuda"), *named = NULL;
    if (tp > 1 && !cuda) {   // the user may never have named a backend: say what --tp needs
        rp_fail(err, "--tp %d splits the model over GPUs, and this reprise was built without the CUDA backend (cmake "
                     "-DREPRISE_CUDA=ON, or -DREPRISE_CUDA_EMULATED=ON to run it on the CPU)", tp);
        st_close(&m->weights);
        return -1;
    }
    if (strcmp(backend_name, "auto") == 0) {   // the first that runs here (a GPU where there is one); the CPU cannot split
        rp_err quiet = {.msg = "this reprise was built without the CUDA backend"};
        for (const backend_entry *e = backend_builtin; e->name && !m->be; e++)
            if (tp == 1 || e == cuda) m->be = e->create(&m->cfg, n_threads, tp > 1 ? err : &quiet);
        // which it took and why, as a user of an engine that picks for them wants to know
        if (m->be && strcmp(m->be->name, "cpu") == 0) fprintf(stderr, "reprise: --backend auto: cpu (no GPU backend: %s)\n", quiet.msg);
        else if (m->be) fprintf(stderr, "reprise: --backend auto: %s (the CUDA backend started)\n", m->be->name);
    } else if ((named = backend_builtin_find(backend_name))) m->be = named->create(&m->cfg, n_threads, err);
    else if (strcmp(backend_name, "cuda") == 0)
        rp_fail(err, "--backend cuda: this reprise was built without the CUDA backend (cmake -DREPRISE_CUDA=ON, or "
                     "-DREPRISE_CUDA_EMULATED=ON to run it on the CPU)");
    else rp_fail(err, "--backend %s: unknown backend (cpu, cuda, auto)", backend_name);
    if (!m->be) {
        st_close(&m->weights);
        return -1;
    }
    m->dir = rp_strdup(dir);
    if (m->be->plan && m->be->plan(m->be, &m->plan, err)) {
        rp_wrap(err, "%s", dir);
        model_free(m);
        return -1;
    }
    load_progress progress;
    load_progress_begin(&progress, &m->weights);
    m->be->progress = &progress;
    int failed = m->be->load_weights(m->be, &m->weights, err);
    m->be->progress = NULL;
    load_progress_end(&progress);
    if (failed) {
        rp_wrap(err, "%s", dir);
        model_free(m);
        return -1;
    }
    return 0;
}

void model_free(model *m) {
    if (m->be) m->be->destroy(m->be);
    st_close(&m->weights);
    free(m->dir);
    memset(m, 0, sizeof *m);
}
