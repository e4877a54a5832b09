// Command-line options shared by the reprise subcommands, parsed one way everywhere.
#ifndef REPRISE_CLI_H
#define REPRISE_CLI_H

#include "loader/model_locate.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "tools/options.h"

// The flags several commands share (cli.c's table says how each is read and what it does); a command's own flags
// live in its own file, in its own table.
typedef struct cli_opts {
    const char *model_dir;   // -m, then the directory it names (model_locate: a hub name's snapshot, the built-in model)
    const char *model_given; // -m as typed (NULL: none)
    const char *revision;    // --revision: of a hub name
    const model_location *where; // where -m was found, and the model's name (the process's one: outlives o's copies)
    const char *schedule;    // --schedule
    const char *draft;       // --draft: a schedule proposing tokens for --schedule to check (NULL: none)
    int draft_tokens;        // --draft-tokens (0: adapted)
    const char *backend;     // --backend
    const char *tokens;      // --tokens
    const char *prompt;      // -p
    const char *file;        // -f
    const char *chat_template; // --chat-template
    const char *system;      // --system
    const char *stops[8];    // --stop (repeatable)
    int n_stops;
    int no_special;          // --no-special
    int n_predict;           // -n (-1: until end-of-sequence or a full context)
    int threads;             // -t
    kv_dtype kv_dtype;       // --kv-dtype (auto, bf16, f32)
    weights_format weights;  // --weights (stored, fp8)
    int ctx;                 // -c (0: not given; see cli_context)
    int ubatch;              // --ubatch: most rows of one forward step (0: PLAN_DEFAULT_UBATCH)
    int tp;                  // --tp: GPUs the model is split over (0: 1)
    int seed_random;         // --seed -1 was given: sampling.seed holds the random seed drawn
    int ignore_eos;          // --ignore-eos
    int allow_unused_tensors; // --allow-unused-tensors: run a checkpoint with tensors the model does not read
    sampler_params sampling; // --temp --top-k --top-p --min-p --seed and the penalties
} cli_opts;

// The model used when -m is not given: the small arithmetic model that ships with reprise.
#ifndef REPRISE_DEFAULT_MODEL
#define REPRISE_DEFAULT_MODEL "tools/default_model"
#endif

// Parses the options of command argv[1]: its table (own flags, and OPT_SHARED entries naming shared ones, which
// are read into o), o's defaults first. Prints --help (synopsis, then the table) or the error itself. Returns -1
// when the command is to exit at once with *exit_code.
int cli_begin(int argc, char **argv, const char *synopsis, const option_def *table, cli_opts *o, int *exit_code);

// The prompt's token ids: --tokens as given, or -p TEXT / -f FILE through the tokenizer (BOS added as its
// post-processor says, unless --no-special). *is_text tells which.
struct tokenizer;
int cli_prompt_ids(const cli_opts *o, const struct tokenizer *tok, int **ids, int *n, int *is_text, rp_err *err);

// Parses "1,2,3" (commas and/or spaces) into a fresh array.
int cli_parse_tokens(const char *text, int **ids, int *n, rp_err *err);

// Checks that every id is below the vocabulary size.
int cli_check_tokens(const int *ids, int n, int vocab, rp_err *err);

// Loads -m with --backend and -t for one sequence of ctx positions (logit_rows rows of logits at a time), planned
// before any weight is read, and parses --schedule against it; with draft (not NULL) and --draft given, parses
// --draft into it and plans its sequence too (draft->n_visits is 0 without --draft).
int cli_load_model(const cli_opts *o, int ctx, int logit_rows, model *m, schedule *s, schedule *draft, rp_err *err);

// Without -c, a context is never sized by max_position_embeddings alone (131072 for Llama 3.1: 16 GiB of KV).
#define CLI_DEFAULT_CONTEXT 4096

// The context length to use: -c; else the prompt + -n when both are known (n_prompt > 0 and -n given), capped at
// max_position_embeddings (the caller's check then names it); else min(max_position_embeddings, 4096), said on
// stderr as "reprise CMD: context of ..." unless cmd is NULL.
int cli_context(const cli_opts *o, const model_config *c, int n_prompt, const char *cmd);

// Splits "a; b;c" (--schedule of bench and score --perplexity) into at most cap schedules' texts, each tidied
// (pointers into *list, which the caller frees). None is an error, printed on stderr after cmd.
int cli_split_schedules(const char *cmd, const char *text, char **list, char **out, int cap, int *n);

int cmd_inspect(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_profile(int argc, char **argv);

#endif
