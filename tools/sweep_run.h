// Evaluating a sweep: every config on every probe item, sharing work between configs, results into the database.
#ifndef REPRISE_SWEEP_RUN_H
#define REPRISE_SWEEP_RUN_H

#include "engine/forward.h"
#include "loader/chat_template.h"
#include "loader/tokenizer.h"
#include "tools/probe.h"
#include "tools/sweep_db.h"
#include "tools/sweep_space.h"

typedef struct {
    model *m;
    tokenizer *tok;
    chat_template ct;          // CHAT_NONE: prompts go in as plain text
    const char *system;        // system prompt for chat models, or NULL
    probe *probes;
    int n_probes;
    config_list *configs;
    int *config_ids;           // database ids, parallel to configs
    sweep_db *db;
    int batch;                 // most configs decoded together
    int naive;                 // one config at a time, nothing shared (the baseline the benchmark compares with)
    int progress;              // 0 quiet, 1 plain lines, 2 a terminal bar
    forward_stats stats;       // layer executions and visits run
    long rows_done, rows_total, items_done;
} sweep_run;

// Registers a config in the database (its schedule in range syntax) and returns its id.
int sweep_db_add_config(sweep_db *d, const sweep_config *c, int *id, rp_err *err);

// Evaluates every (config, item) that has no row yet. Each row is committed as its config finishes the item.
int sweep_run_all(sweep_run *r, rp_err *err);

#endif
