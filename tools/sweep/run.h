// Evaluating a sweep: every config on every probe item, sharing work between configs, results into the database.
#ifndef REPRISE_SWEEP_RUN_H
#define REPRISE_SWEEP_RUN_H

#include <signal.h>

#include "engine/forward.h"
#include "loader/chat_template.h"
#include "loader/tokenizer.h"
#include "tools/sweep/probe.h"
#include "tools/sweep/db.h"
#include "tools/sweep/space.h"

// An item's prompt, tokenized once before the model is loaded (the plan needs the longest): ids, or why it cannot run.
typedef struct {
    int *ids, n;
    char *error;   // NULL, or the reason every config fails this item
} sweep_prompt;

// What one call of sweep_run_all measures: these configs (base among them) with their database ids, on each
// probe's first `items` items (0: all of them). A search's step (a halving rung, a beam's candidates) is one.
typedef struct {
    const config_list *configs;
    const int *config_ids;
    int items;
} sweep_step;

typedef struct {
    model *m;
    tokenizer *tok;
    chat_template ct;          // CHAT_NONE: prompts go in as plain text
    const char *system;        // system prompt for chat models, or NULL
    probe *probes;
    int n_probes;
    config_list *configs;      // the sweep's configs (its space, or a search's candidates)
    int *config_ids;           // database ids, parallel to configs
    sweep_step now;            // what the sweep_run_all in progress measures (set by it alone)
    sweep_db *db;
    int batch;                 // most configs decoded together
    schedule target;           // --score acceptance: the schedule each config drafts for
    int draft_tokens;          // its drafts' K (0: adapted)
    int timed;                 // --timed: a draft's score is measured time (the target alone over it), one at a time
    int naive;                 // one config at a time, nothing shared (the baseline the benchmark compares with)
    int progress;              // 0 quiet, 1 plain lines, 2 a terminal bar
    int ubatch;                // --ubatch
    int plan_visits;           // > 0: plan the KV pool for configs of up to this many visits (a search's configs
                               // are not known when the model is loaded)
    const char *exchange;      // a sharded search (--shard K/N --exchange DIR): each step's configs split over the
    int shard_k, shard_n;      // shards, their rows traded through DIR (exchange.c); NULL: one process does it all
    int step;                  // the search's steps so far (its exchange files are numbered by them)
    double deadline;           // rp_now_s() after which no new item starts (0: none; --budget-hours)
    int timed_out;             // the deadline stopped sweep_run_all before its last item
    int interrupted;           // sweep_stop_requested stopped it
    long rows_at_start;        // rows already in the database when this sweep_run_all began (the rate counts after)
    forward_stats stats;       // layer executions and visits run
    long rows_done, rows_total, items_done, rows_failed;
    int db_failed;             // a database write failed: the sweep stops
    sweep_prompt **prompts;    // [probe][item], by sweep_prepare
    kv_pool pool;              // the KV slots of one item's base and batch, reused by every item
    long pool_slots;
    int pool_ctx;
    long snapshots_on_device;  // items whose base snapshots stayed in the backend's stash (not the host)
} sweep_run;

// Before the model is loaded: tokenizes every item's prompt (r->tok, r->ct, r->probes and r->configs set) and
// gives the run's shape for the memory plan: the longest prompt and reply, the batch's sequences and KV slots, and
// the stash for the base's snapshots on the device (a cut a distinct shared prefix, of the longest prompt's rows).
// A prompt that cannot run is not an error here: it is kept as the reason its rows fail.
void sweep_prepare(sweep_run *r, const model_config *cfg, plan_shape *shape);
void sweep_prompts_free(sweep_run *r);
// After sweep_prepare, before any config runs: names on stderr each item that cannot run (a prompt and reply
// longer than the context, say), whose rows will be failures with that reason. Returns how many.
int sweep_name_unrunnable(const sweep_run *r);

// An item's prompt ids: through r->ct when the model has a chat template (r->system first), else the text with the
// tokenizer's BOS. Only r->tok, r->ct and r->system are read (reprise profile feeds probe items the same way).
int sweep_prompt_ids(const sweep_run *r, const char *text, int **ids, int *n, rp_err *err);

// Set (from a SIGINT handler) to stop a sweep after the item in progress: every finished row is committed, and the
// same command resumes.
extern volatile sig_atomic_t sweep_stop_requested;

// Registers a config in the database (its schedule in range syntax) and returns its id.
int sweep_db_add_config(sweep_db *d, const sweep_config *c, int *id, rp_err *err);

// Evaluates every (config, item) of the step (NULL: r->configs on every item) that has no row yet. Each row is
// committed as its config finishes the item; a row that cannot be evaluated is committed as a failure with its
// reason. Calls sweep_prepare when it was not.
int sweep_run_all(sweep_run *r, const sweep_step *step, rp_err *err);

// Items of probe p that step st measures.
int sweep_step_items(const sweep_run *r, const sweep_step *st, int p);

#endif
