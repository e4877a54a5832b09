// The configurations a sweep evaluates: a grid of RYS blocks, explicit schedules, or a file of them; base first.
#ifndef REPRISE_SWEEP_SPACE_H
#define REPRISE_SWEEP_SPACE_H

#include "engine/schedule.h"

typedef struct {
    char *label;       // "base", "rys:I,J", "rys:I,J,K", or the schedule as given
    schedule sched;
    int i, j, k;       // the repeated block I..J-1 run K times; -1 when the config is not of that form
} sweep_config;

typedef struct {
    sweep_config *c;
    int n;
} config_list;

typedef struct {
    const char *i_range, *j_range;   // "A:B", inclusive
    const char *block_sizes;         // "1,2,4": allowed J - I
    int stride;                      // I and J step from the start of their ranges
    int repeat;                      // K of the grid's blocks (0: each block skipped - drafts, --score acceptance)
    const char *configs;             // schedules separated by ';'
    const char *configs_file;        // one schedule per line; '#' starts a comment
    int shard_k, shard_n;            // keep configs whose index (base excluded) is K mod N
} space_opts;

// Builds the list for a model of n_layers layers: base, then the grid (when any grid flag is given, or nothing
// else is), then explicit configs. Duplicates are dropped. Errors name the flag and the token.
int sweep_space_build(config_list *l, int n_layers, const space_opts *o, rp_err *err);
void sweep_space_free(config_list *l);
// Appends the config label, schedule text (unless a config of that label is there); errors are schedule_parse's.
int sweep_space_add(config_list *l, const char *label, const char *text, int n_layers, rp_err *err);

#endif
