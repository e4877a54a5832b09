// `reprise score --perplexity`: a long text's perplexity under each of several schedules, in sliding windows (the
// Hugging Face recipe, as llama-perplexity reports it), with standard errors and each schedule's paired difference.
#ifndef REPRISE_PERPLEXITY_H
#define REPRISE_PERPLEXITY_H

#include "engine/model.h"
#include "engine/schedule.h"
#include "loader/error.h"

typedef struct {
    int window;   // tokens a window holds (its context)
    int stride;   // tokens between windows' starts (<= window)
    int json;     // print JSON instead of the table
} perplexity_opts;

// Scores ids under schedules[0..n_schedules) (names as given, for the table) on m, whose plan holds n_schedules
// sequences of window positions, and prints the table (or JSON) on stdout.
int perplexity_run(model *m, const schedule *schedules, char *const *names, int n_schedules, const int *ids, int n,
                   const perplexity_opts *po, rp_err *err);

#define PERPLEXITY_MAX_SCHEDULES 32

struct cli_opts;
// score --perplexity: o's schedules (';'-separated), its -c (the window; default the model's context, at most the
// text) and stride (0: the window) over ids; loads the model planned for them. Returns the exit code.
int perplexity_command(const struct cli_opts *o, const int *ids, int n, int stride, int json);

#endif
