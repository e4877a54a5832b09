// A gradient-boosted regression model (libxgboost) from a config's per-layer visit counts to its score.
#ifndef REPRISE_SWEEP_SURROGATE_H
#define REPRISE_SWEEP_SURROGATE_H

#include "loader/error.h"

typedef struct surrogate surrogate;

// Fits boosted trees to n rows of x (n x n_features, row-major) against y. Deterministic: one thread, fixed seed.
// Fails with a clear message when reprise was built without libxgboost.
int surrogate_fit(surrogate **s, const float *x, const float *y, int n, int n_features, rp_err *err);
// Predictions for n rows of x into out.
int surrogate_predict(surrogate *s, const float *x, int n, float *out, rp_err *err);
void surrogate_free(surrogate *s);

#endif
