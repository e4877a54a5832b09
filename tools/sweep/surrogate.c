// A gradient-boosted regression model (libxgboost, as RYS II used) from a config's per-layer visit counts to its score.
//
// Small trees (depth 4), shrinkage 0.1, 200 rounds, squared error: a config space's score is mostly a few
// interacting layer ranges, which shallow trees capture; with a few hundred measured rows more depth overfits.
// One thread, so the same rows give the same model and a resumed search takes the same path.
#include "tools/sweep/surrogate.h"
#include "loader/alloc.h"

#include <math.h>
#include <stdlib.h>

#ifdef REPRISE_HAVE_XGBOOST
#include <xgboost/c_api.h>

struct surrogate {
    BoosterHandle booster;
    int n_features;
};

#define ROUNDS 200

static int xgb_fail(rp_err *err, const char *what) { return rp_fail(err, "libxgboost: %s: %s", what, XGBGetLastError()); }

int surrogate_fit(surrogate **out, const float *x, const float *y, int n, int n_features, rp_err *err) {
    *out = NULL;
    if (n < 2) return rp_fail(err, "the surrogate needs at least 2 measured configs, has %d", n);
    DMatrixHandle d;
    if (XGDMatrixCreateFromMat(x, (bst_ulong)n, (bst_ulong)n_features, NAN, &d)) return xgb_fail(err, "XGDMatrixCreateFromMat");
    surrogate *s = rp_calloc(1, sizeof *s);
    s->n_features = n_features;
    static const char *params[][2] = {{"objective", "reg:squarederror"}, {"max_depth", "4"}, {"eta", "0.1"},
                                      {"nthread", "1"}, {"seed", "0"}, {"tree_method", "exact"}, {"verbosity", "0"}};
    int rc = XGDMatrixSetFloatInfo(d, "label", y, (bst_ulong)n) ? xgb_fail(err, "XGDMatrixSetFloatInfo") : 0;
    if (!rc && XGBoosterCreate(&d, 1, &s->booster)) rc = xgb_fail(err, "XGBoosterCreate");
    for (size_t p = 0; !rc && p < sizeof params / sizeof params[0]; p++)
        if (XGBoosterSetParam(s->booster, params[p][0], params[p][1])) rc = xgb_fail(err, "XGBoosterSetParam");
    for (int it = 0; !rc && it < ROUNDS; it++)
        if (XGBoosterUpdateOneIter(s->booster, it, d)) rc = xgb_fail(err, "XGBoosterUpdateOneIter");
    XGDMatrixFree(d);
    if (rc) surrogate_free(s);
    else *out = s;
    return rc;
}

int surrogate_predict(surrogate *s, const float *x, int n, float *out, rp_err *err) {
    if (n == 0) return 0;
    DMatrixHandle d;
    if (XGDMatrixCreateFromMat(x, (bst_ulong)n, (bst_ulong)s->n_features, NAN, &d)) return xgb_fail(err, "XGDMatrixCreateFromMat");
    bst_ulong len;
    const float *pred;
    int rc = XGBoosterPredict(s->booster, d, 0, 0, 0, &len, &pred) ? xgb_fail(err, "XGBoosterPredict") : 0;
    if (!rc && len != (bst_ulong)n) rc = rp_fail(err, "libxgboost: %lu predictions for %d rows", (unsigned long)len, n);
    for (int i = 0; !rc && i < n; i++) out[i] = pred[i];
    XGDMatrixFree(d);
    return rc;
}

void surrogate_free(surrogate *s) {
    if (!s) return;
    if (s->booster) XGBoosterFree(s->booster);
    free(s);
}

#else

struct surrogate {
    int unused;
};

int surrogate_fit(surrogate **s, const float *x, const float *y, int n, int n_features, rp_err *err) {
    (void)x, (void)y, (void)n, (void)n_features;
    *s = NULL;
    return rp_fail(err, "reprise was built without libxgboost, which --search surrogate needs (apt-get install "
                        "libxgboost-dev, then build again)");
}

int surrogate_predict(surrogate *s, const float *x, int n, float *out, rp_err *err) {
    (void)s, (void)x, (void)n, (void)out;
    return rp_fail(err, "reprise was built without libxgboost");
}

void surrogate_free(surrogate *s) { (void)s; }

#endif
