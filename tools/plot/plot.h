// PNG pictures with Cairo: a matrix as a heatmap (the sweep's and the profile's), curves against depth, signed bars.
#ifndef REPRISE_PLOT_H
#define REPRISE_PLOT_H

#include "loader/error.h"

typedef enum { PLOT_DIVERGING, PLOT_SEQUENTIAL } plot_scale;

// v (n_rows x n_cols, row-major) drawn cell (r, c) at y = row0 + r, x = col0 + c (the sweep heatmap's geometry: y = i,
// x = j); NAN cells grey. DIVERGING: blue - white - red, symmetric about 0; SEQUENTIAL: white to red, min to max.
// legend (NULL: none): what the colours mean, under the title.
int plot_heatmap(const char *path, const char *title, const double *v, int n_rows, int row0, int n_cols, int col0,
                 const char *x_label, const char *y_label, plot_scale scale, const char *legend, rp_err *err);

// n_series curves y[s][0..n) against x = x0 .. x0 + n - 1, one panel each, titled names[s] (NAN points skipped).
int plot_curves(const char *path, const char *title, const double *const *y, const char *const *names, int n_series,
                int n, int x0, const char *x_label, rp_err *err);

// n_panels panels of signed bars, one above the other: panel p's bars v[p][0..n) at x = 0..n-1 (NAN: no bar),
// coloured blue - white - red and scaled to the panel's largest |v|, the axis labelled x_labels[p] (the sweep's
// skyline: the mean score by block start and by block end).
int plot_signed_bars(const char *path, const char *title, const char *legend, const double *const *v,
                     const char *const *x_labels, int n_panels, int n, rp_err *err);

#endif
