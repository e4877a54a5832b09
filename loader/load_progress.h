// A line on stderr while a model's weights load, once loading has taken a second: bytes and tensors done, rate, ETA.
#ifndef REPRISE_LOAD_PROGRESS_H
#define REPRISE_LOAD_PROGRESS_H

#include <pthread.h>
#include <stddef.h>

#include "loader/safetensors.h"

typedef struct load_progress {
    pthread_mutex_t mu;          // tensor-parallel ranks load at once
    double t0, last, after_s;    // start, last line, seconds before the first ($REPRISE_PROGRESS_S, default 1)
    double total_bytes, done_bytes;
    int total_tensors, done_tensors;
    int shown, tty;              // a line was written; stderr is a terminal (one line rewritten, else a line in 5 s)
} load_progress;

// Totals: every tensor of the archive.
void load_progress_begin(load_progress *p, const st_archive *a);
// bytes of the checkpoint and tensors read (p NULL: nothing); writes the line when it is due.
void load_progress_add(load_progress *p, double bytes, int tensors);
// The last line ("loaded ... in S s") when any was written.
void load_progress_end(load_progress *p);

#endif
