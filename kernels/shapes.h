// Sizes the kernels fix and their callers must allocate by: plain C, so the engine's memory plan reads them too.
#ifndef REPRISE_KERNEL_SHAPES_H
#define REPRISE_KERNEL_SHAPES_H

#include <stddef.h>

// Sampling (sample.cu): the most candidates a sampled row keeps (a larger top-k is clamped; a nucleus past it is
// drawn on the host), and the bytes of one row's candidate record: a header (max logit, softmax sum, not-finite
// flag, count) and (logit, id) pairs.
#define SAMPLE_MAX_K 1024
#define SAMPLE_CANDIDATE_ROW_BYTES(k) (16 + 8 * (size_t)(k))

#endif
