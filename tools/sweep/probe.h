// Probe sets for sweeps: loading or generating items, and scoring replies as RYS does (../shared/probes/README.md).
#ifndef REPRISE_PROBE_H
#define REPRISE_PROBE_H

#include <stddef.h>

#include "loader/error.h"

typedef enum { PROBE_MATH, PROBE_EQ, PROBE_MC, PROBE_JSONL, PROBE_ARITH, PROBE_BBH } probe_kind;
typedef enum { MATCH_EXACT, MATCH_NUMERIC, MATCH_REGEX } match_kind;

typedef struct {
    char *id;
    char *prompt;          // the user's text
    char *answer;          // math/arith: the integer; jsonl: the expected text or pattern; mc: the option index
    match_kind match;      // jsonl
    char **options;        // mc
    int n_options;
    char *emotions[4];     // eq
    double ref[4];         // eq: reference_answer, normalised to sum 10
    int max_new;           // jsonl: the line's own "max_tokens" for its reply (0: the probe's)
} probe_item;

// A probe's key holds its spec whole (a path of up to PATH_MAX and a prefix): a longer one is refused, never cut, so
// two long paths never share a key.
#define PROBE_NAME_MAX 4200

typedef struct {
    probe_kind kind;
    char name[PROBE_NAME_MAX];   // the probe's key in the results: "math", "arith" (generated), or for a file
                                 // KIND:BASENAME@FINGERPRINT of its bytes ("eq:eq_16.json@1a2b3c4d"): the same
                                 // file reached by another path, on another machine, is the same probe
    probe_item *items;
    int n_items;
    int n_available;       // items the file holds (or were generated) before --items kept the first n_items
    int max_new;           // tokens a reply may have (an item's own max_new overrides it)
    int loglik;            // scored by the log-probability of the answer after the prompt, no decoding (--score loglik)
    int acceptance;        // a config is a draft for the target schedule: scored by its speed-up (--score acceptance)
} probe;

// spec: "math[:FILE]", "eq:FILE", "mc:FILE", "jsonl:FILE", "arith", "bbh:FILE" (a spec of up to PROBE_NAME_MAX - 1
// bytes). Without a file, math and arith
// items are generated from seed (n_generate of them). max_items > 0 keeps the first max_items; of a bbh task, a
// subset of max_items drawn with seed (ids stay the examples' indices, so a subset is the same every run).
int probe_load(probe *p, const char *spec, int max_items, int n_generate, unsigned seed, rp_err *err);
void probe_free(probe *p);
// The reply budget of an item: its own, else the probe's.
static inline int probe_item_max_new(const probe *p, const probe_item *it) { return it->max_new > 0 ? it->max_new : p->max_new; }
// --max-tokens N: the reply budget of a probe that generates replies (not mc, not --score loglik); items with their
// own max_tokens keep it.
void probe_set_max_new(probe *p, int max_new);

// Makes p a --score loglik probe: its key becomes "loglik:NAME" (its rows never mix with generated ones). Refused,
// with the reason, for probes without a reference answer text: eq, and jsonl items matched by a regex. mc probes
// score by log-likelihood already and are left as they are.
int probe_use_loglik(probe *p, rp_err *err);

// What the probe's rows mean, as text for the sweep database: its items (ids, prompts, answers, options,
// references), how many, its kind, scoring and reply length, fingerprinted ("12 items, fingerprint 0123abcd...").
void probe_describe(const probe *p, char *out, size_t cap);

// Makes p a --score acceptance probe: each config drafts for `target` (K ids a step, 0: adapted) while the target
// decodes the item's greedy reply, scored by the speed-up per token in visits (timed: in measured time); its key
// becomes "accept[TARGET,K]:NAME" ("accept[TARGET,K,timed]:NAME"): rows of another target, K or measure never mix.
// Refused for mc probes (no reply is decoded).
int probe_use_acceptance(probe *p, const char *target, int k, int timed, rp_err *err);

// Score of a generated reply to item (not for mc), in [0, 1].
double probe_score_reply(const probe *p, const probe_item *it, const char *reply);

// RYS's math partial credit for one estimate (both decimal digit strings).
double math_score(const char *actual, const char *estimate);
// The best math_score over every maximal run of digits in the reply; 0 when there is none.
double math_reply_score(const char *reply, const char *answer);
// RYS's EQ-Bench score of a reply: parsed scores, parse confidence, and the confidence-weighted result.
double eq_reply_score(const char *reply, char *const *emotions, const double *ref, double *confidence);
// Does the reply match the jsonl answer?
int jsonl_match(match_kind m, const char *reply, const char *answer);
// BIG-Bench Hard's scoring: a target "(X)" matches the first "(X)" in the reply (or a reply that is the bare letter);
// a free-form target matches the reply's final answer (after "the answer is", else its first line), stripped.
int bbh_match(const char *reply, const char *target);

#endif
