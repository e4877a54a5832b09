// Progress while weights load: a 72B checkpoint takes minutes to read, and a silent command looks hung.
#include "loader/load_progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void load_progress_begin(load_progress *p, const st_archive *a) {
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->t0 = p->last = now_s();
    const char *after = getenv("REPRISE_PROGRESS_S");
    p->after_s = after && *after ? atof(after) : 1.0;
    p->tty = isatty(2);
    for (int i = 0; i < a->n_tensors; i++) p->total_bytes += (double)a->tensors[i].nbytes;
    p->total_tensors = a->n_tensors;
}

// The unit of a load's figures: GiB from 1 GiB of checkpoint, else MiB.
static double unit_of(const load_progress *p, const char **name) {
    int gib = p->total_bytes >= 1024.0 * 1024 * 1024;
    *name = gib ? "GiB" : "MiB";
    return gib ? 1024.0 * 1024 * 1024 : 1024.0 * 1024;
}

static void write_line(load_progress *p, double now) {
    const char *u;
    double unit = unit_of(p, &u), t = now - p->t0, rate = t > 0 ? p->done_bytes / t : 0, left = p->total_bytes - p->done_bytes;
    char eta[32] = "-";
    if (rate > 0 && left > 0) snprintf(eta, sizeof eta, "%.0f s", left / rate);
    fprintf(stderr, "%sreprise: loading weights: %.2f of %.2f %s (%.0f%%), %d of %d tensors, %.2f %s/s, ETA %s%s",
            p->tty ? "\r" : "", p->done_bytes / unit, p->total_bytes / unit, u,
            p->total_bytes > 0 ? 100.0 * p->done_bytes / p->total_bytes : 100.0, p->done_tensors, p->total_tensors,
            rate / unit, u, eta, p->tty ? "\033[K" : "\n");
    p->shown = 1, p->last = now;
}

void load_progress_add(load_progress *p, double bytes, int tensors) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->done_bytes += bytes, p->done_tensors += tensors;
    double now = now_s();
    if (now - p->t0 >= p->after_s && (!p->shown || now - p->last >= (p->tty ? 0.25 : 5.0))) write_line(p, now);
    pthread_mutex_unlock(&p->mu);
}

void load_progress_end(load_progress *p) {
    if (p->shown) {
        const char *u;
        double unit = unit_of(p, &u), t = now_s() - p->t0;
        fprintf(stderr, "%sreprise: loaded %.2f %s, %d tensors, in %.1f s (%.2f %s/s)%s\n", p->tty ? "\r" : "",
                p->done_bytes / unit, u, p->done_tensors, t, t > 0 ? p->done_bytes / t / unit : 0.0, u, p->tty ? "\033[K" : "");
    }
    pthread_mutex_destroy(&p->mu);
}
