// PNG pictures with Cairo: a matrix as a heatmap (the sweep's and the profile's) and curves against depth.
#include "tools/plot/plot.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>

#ifdef REPRISE_HAVE_CAIRO
#include <cairo.h>

// Diverging colour: blue (-1) through white (0) to red (+1).
static void plot_diverging(double t, double *r, double *g, double *b) {
    t = t < -1 ? -1 : t > 1 ? 1 : t;
    if (t >= 0) *r = 1, *g = 1 - 0.8 * t, *b = 1 - 0.85 * t;
    else *r = 1 + 0.85 * t, *g = 1 + 0.7 * t, *b = 1;
}

static void plot_text_at(cairo_t *cr, double x, double y, const char *s, double align_x, double size) {
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align_x * e.width, y + e.height / 2);
    cairo_show_text(cr, s);
}

static cairo_t *canvas(int W, int H, cairo_surface_t **surf) {
    *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(*surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return cr;
}

static int finish(cairo_t *cr, cairo_surface_t *surf, const char *path, rp_err *err) {
    cairo_status_t st = cairo_surface_write_to_png(surf, path);
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return st == CAIRO_STATUS_SUCCESS ? 0 : rp_fail(err, "%s: cannot write the PNG: %s", path, cairo_status_to_string(st));
}

// The colour of v on the scale: t in [-1, 1] (diverging) or [0, 1] (sequential, drawn as the red half).
static void colour(plot_scale scale, double v, double lo, double hi, double *r, double *g, double *b) {
    if (scale == PLOT_DIVERGING) plot_diverging(v / hi, r, g, b);
    else plot_diverging(hi > lo ? (v - lo) / (hi - lo) : 0, r, g, b);
}

int plot_heatmap(const char *path, const char *title, const double *v, int n_rows, int row0, int n_cols, int col0,
                 const char *x_label, const char *y_label, plot_scale scale, const char *legend, rp_err *err) {
    double lo = INFINITY, hi = -INFINITY;
    for (long c = 0; c < (long)n_rows * n_cols; c++)
        if (!isnan(v[c])) lo = fmin(lo, v[c]), hi = fmax(hi, v[c]);
    if (hi < lo) lo = hi = 0;
    if (scale == PLOT_DIVERGING) hi = fmax(fabs(lo), fabs(hi)), lo = -hi;
    if (hi == lo) hi = lo + 1;
    const int W = 900, H = 760, L = 90, R = 150, T = 70, B = 80;
    double cw = (double)(W - L - R) / n_cols, ch = (double)(H - T - B) / n_rows;
    cairo_surface_t *surf;
    cairo_t *cr = canvas(W, H, &surf);
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);   // cells with no value (a sweep's j <= i)
    cairo_rectangle(cr, L, T, W - L - R, H - T - B);
    cairo_fill(cr);
    for (int r = 0; r < n_rows; r++)
        for (int c = 0; c < n_cols; c++) {
            double x = v[(long)r * n_cols + c], cr_, cg, cb;
            if (isnan(x)) continue;
            colour(scale, x, lo, hi, &cr_, &cg, &cb);
            cairo_set_source_rgb(cr, cr_, cg, cb);
            cairo_rectangle(cr, L + c * cw, T + r * ch, cw, ch);
            cairo_fill(cr);
        }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L, T, W - L - R, H - T - B);
    cairo_stroke(cr);
    char buf[64];
    int xstep = n_cols > 20 ? (n_cols + 19) / 20 : 1, ystep = n_rows > 20 ? (n_rows + 19) / 20 : 1;
    for (int c = 0; c < n_cols; c += xstep) {
        snprintf(buf, sizeof buf, "%d", col0 + c);
        plot_text_at(cr, L + (c + 0.5) * cw, H - B + 14, buf, 0.5, 11);
    }
    for (int r = 0; r < n_rows; r += ystep) {
        snprintf(buf, sizeof buf, "%d", row0 + r);
        plot_text_at(cr, L - 8, T + (r + 0.5) * ch, buf, 1, 11);
    }
    plot_text_at(cr, L + (W - L - R) / 2.0, H - B + 40, x_label, 0.5, 13);
    cairo_save(cr);
    cairo_translate(cr, 24, T + (H - T - B) / 2.0);
    cairo_rotate(cr, -M_PI / 2);
    plot_text_at(cr, 0, 0, y_label, 0.5, 13);
    cairo_restore(cr);
    plot_text_at(cr, W / 2.0, 28, title, 0.5, 15);
    if (legend) plot_text_at(cr, W / 2.0, 48, legend, 0.5, 11);
    double bx = W - R + 40, by = T, bh = H - T - B;   // colour bar, hi at the top
    for (int y = 0; y < (int)bh; y++) {
        double r, g, b;
        colour(scale, hi - (hi - lo) * y / bh, lo, hi, &r, &g, &b);
        cairo_set_source_rgb(cr, r, g, b);
        cairo_rectangle(cr, bx, by + y, 24, 1);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, bx, by, 24, bh);
    cairo_stroke(cr);
    for (int t = 0; t <= 4; t++) {
        snprintf(buf, sizeof buf, "%+.3g", hi - (hi - lo) * t / 4.0);
        plot_text_at(cr, bx + 30, by + bh * t / 4.0, buf, 0, 11);
    }
    return finish(cr, surf, path, err);
}

int plot_curves(const char *path, const char *title, const double *const *y, const char *const *names, int n_series,
                int n, int x0, const char *x_label, rp_err *err) {
    const int W = 900, panel_h = 200, H = 60 + n_series * (panel_h + 50), left = 80, w = W - 120;
    cairo_surface_t *surf;
    cairo_t *cr = canvas(W, H, &surf);
    cairo_set_source_rgb(cr, 0, 0, 0);
    plot_text_at(cr, W / 2.0, 22, title, 0.5, 15);
    char buf[64];
    for (int s = 0; s < n_series; s++) {
        double top = 60 + s * (panel_h + 50), lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n; i++)
            if (!isnan(y[s][i])) lo = fmin(lo, y[s][i]), hi = fmax(hi, y[s][i]);
        if (hi < lo) lo = hi = 0;
        if (hi == lo) hi += 1, lo -= 1;
        double dx = n > 1 ? (double)w / (n - 1) : 0;
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, 1);
        cairo_rectangle(cr, left, top, w, panel_h);
        cairo_stroke(cr);
        plot_text_at(cr, left + w / 2.0, top - 10, names[s], 0.5, 12);
        snprintf(buf, sizeof buf, "%.3g", hi);
        plot_text_at(cr, left - 6, top, buf, 1, 10);
        snprintf(buf, sizeof buf, "%.3g", lo);
        plot_text_at(cr, left - 6, top + panel_h, buf, 1, 10);
        int step = n > 30 ? (n + 29) / 30 : 1;
        for (int i = 0; i < n; i += step) {
            snprintf(buf, sizeof buf, "%d", x0 + i);
            plot_text_at(cr, left + i * dx, top + panel_h + 12, buf, 0.5, 10);
        }
        if (s == n_series - 1) plot_text_at(cr, left + w / 2.0, top + panel_h + 32, x_label, 0.5, 12);
        cairo_set_source_rgb(cr, 0.8, 0.15, 0.1);
        cairo_set_line_width(cr, 2);
        int pen = 0;
        for (int i = 0; i < n; i++) {
            if (isnan(y[s][i])) {
                pen = 0;
                continue;
            }
            double px = left + i * dx, py = top + panel_h * (hi - y[s][i]) / (hi - lo);
            if (pen) cairo_line_to(cr, px, py);
            else cairo_move_to(cr, px, py);
            pen = 1;
        }
        cairo_stroke(cr);
        for (int i = 0; i < n; i++)   // points, so a single value shows
            if (!isnan(y[s][i])) {
                cairo_arc(cr, left + i * dx, top + panel_h * (hi - y[s][i]) / (hi - lo), 3, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    return finish(cr, surf, path, err);
}

int plot_signed_bars(const char *path, const char *title, const char *legend, const double *const *v,
                     const char *const *x_labels, int n_panels, int n, rp_err *err) {
    const int W = 900, panel_h = 290, H = 60 + n_panels * panel_h;
    cairo_surface_t *surf;
    cairo_t *cr = canvas(W, H, &surf);
    cairo_set_source_rgb(cr, 0, 0, 0);
    plot_text_at(cr, W / 2.0, 22, title, 0.5, 15);
    if (legend) plot_text_at(cr, W / 2.0, 42, legend, 0.5, 11);
    for (int panel = 0; panel < n_panels; panel++) {
        const double *s = v[panel];
        double top = 60 + panel * panel_h, h = 220, left = 70, w = W - 110, vmax = 0;
        for (int x = 0; x < n; x++)
            if (!isnan(s[x]) && fabs(s[x]) > vmax) vmax = fabs(s[x]);
        if (vmax == 0) vmax = 1;
        double mid = top + h / 2, bw = w / n;
        for (int x = 0; x < n; x++) {
            if (isnan(s[x])) continue;
            double r, g, b;
            plot_diverging(s[x] / vmax, &r, &g, &b);
            cairo_set_source_rgb(cr, r * 0.9, g * 0.9, b * 0.9);
            cairo_rectangle(cr, left + x * bw + 1, s[x] >= 0 ? mid - s[x] / vmax * h / 2 : mid, bw - 2, fabs(s[x]) / vmax * h / 2);
            cairo_fill(cr);
        }
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, left, mid);
        cairo_line_to(cr, left + w, mid);
        cairo_stroke(cr);
        char buf[64];
        int step = n > 31 ? (n + 28) / 30 : 1;
        for (int x = 0; x < n; x += step) {
            snprintf(buf, sizeof buf, "%d", x);
            plot_text_at(cr, left + (x + 0.5) * bw, top + h + 12, buf, 0.5, 10);
        }
        snprintf(buf, sizeof buf, "%+.3g", vmax);
        plot_text_at(cr, left - 6, top, buf, 1, 10);
        snprintf(buf, sizeof buf, "%+.3g", -vmax);
        plot_text_at(cr, left - 6, top + h, buf, 1, 10);
        plot_text_at(cr, left + w / 2, top + h + 32, x_labels[panel], 0.5, 12);
    }
    return finish(cr, surf, path, err);
}

#else

int plot_signed_bars(const char *path, const char *title, const char *legend, const double *const *v,
                     const char *const *x_labels, int n_panels, int n, rp_err *err) {
    (void)path, (void)title, (void)legend, (void)v, (void)x_labels, (void)n_panels, (void)n, (void)err;
    return 0;
}

int plot_heatmap(const char *path, const char *title, const double *v, int n_rows, int row0, int n_cols, int col0,
                 const char *x_label, const char *y_label, plot_scale scale, const char *legend, rp_err *err) {
    (void)path, (void)title, (void)v, (void)n_rows, (void)row0, (void)n_cols, (void)col0, (void)x_label, (void)y_label;
    (void)scale, (void)legend, (void)err;
    return 0;
}

int plot_curves(const char *path, const char *title, const double *const *y, const char *const *names, int n_series,
                int n, int x0, const char *x_label, rp_err *err) {
    (void)path, (void)title, (void)y, (void)names, (void)n_series, (void)n, (void)x0, (void)x_label, (void)err;
    return 0;
}

#endif
