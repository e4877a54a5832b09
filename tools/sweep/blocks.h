// Schedules as repeated blocks (rys:I,J,K joined by '+'): the space that beam and surrogate searches explore.
#ifndef REPRISE_SWEEP_BLOCKS_H
#define REPRISE_SWEEP_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#define BLOCKS_MAX 8

// Blocks [i, j) run k times in all (k >= 2; k == 0: skipped, a draft's), ascending and apart (i[t+1] >= j[t]);
// n == 0 is base.
typedef struct {
    int n;
    int i[BLOCKS_MAX], j[BLOCKS_MAX], k[BLOCKS_MAX];
} blocks;

// What a search may propose: at most max_blocks blocks of at most max_passes passes, at most max_visits visits.
typedef struct {
    int n_layers, max_blocks, max_passes, max_visits;
    int skips;   // the blocks are skipped (k = 0), not repeated: drafts for --score acceptance
} block_space;

int blocks_visits(const blocks *b, int n_layers);
int blocks_valid(const blocks *b, const block_space *sp);

// The label a sweep records: "base", "rys:I,J" (k = 2), "rys:I,J,K", blocks joined by '+' ("rys:3,5+7,9,3"), as
// schedule_parse reads it and as the grid writes its configs, so rows of the same config are shared.
void blocks_label(const blocks *b, char *buf, size_t cap);

// Reads a label of that form back; -1 when it is not one (an explicit schedule such as "0-4,2-7").
int blocks_from_label(const char *label, blocks *b);

// The per-layer visit counts (n_layers floats): the surrogate's features.
void blocks_features(const blocks *b, int n_layers, float *out);

// The beam's moves from b, valid in sp: each block grown, shrunk or shifted by one layer at either end, given one
// more pass, and (with room for a block) each partner block added where it lies apart from b's. Writes at most cap
// into out; returns how many (duplicates possible: the caller keeps a set of what it has seen).
int blocks_moves(const blocks *b, const block_space *sp, const blocks *partners, int n_partners, blocks *out, int cap);

// A candidate pool of up to cap configs for the surrogate to rank, deterministic in seed: every single block with
// every pass count first (while they fit), then distinct multi-block configs drawn at random. *out is malloc'd.
int blocks_pool(const block_space *sp, int cap, uint64_t seed, blocks **out);

#endif
