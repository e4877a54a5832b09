// A model: its config, its mmap'ed checkpoint, and its weights converted once into a backend's layout.
#include "engine/model.h"

#include <stdlib.h>
#include <string.h>

int model_load(model *m, const char *dir, const char *backend_name, int n_threads, rp_err *err) {
    memset(m, 0, sizeof *m);
    if (config_load(&m->cfg, dir, err)) return -1;
    if (st_open_dir(&m->weights, dir, err)) return -1;
    if (strcmp(backend_name, "cpu") == 0) m->be = backend_cpu_create(&m->cfg, n_threads);
    else {
        st_close(&m->weights);
        return rp_fail(err, "--backend %s: unknown backend (available: cpu)", backend_name);
    }
    m->dir = strdup(dir);
    if (m->be->load_weights(m->be, &m->weights, err)) {
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
