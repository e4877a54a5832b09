// A command's flags as one table (flag, value, kind, range, default, help): one parser and one help printer read it.
#ifndef REPRISE_OPTIONS_H
#define REPRISE_OPTIONS_H

#include "loader/error.h"

typedef enum {
    OPT_END = 0,   // closes a table
    OPT_HEADING,   // a line of help between groups of flags ("search:")
    OPT_SHARED,    // a flag of the shared table (cli.c), named by .flag; a help or value given here replaces its own
    OPT_SWITCH,    // int at: set to 1
    OPT_TEXT,      // const char *at: the value as typed
    OPT_INT,       // int at: a whole number in [lo, hi]
    OPT_REAL,      // float at: a number in [lo, hi]
    OPT_DOUBLE,    // double at: the same
    OPT_CHOICE,    // int at: the index of the value among choices ("grid|halving|beam")
    OPT_REPEAT,    // const char *at[cap]: each value in turn, *count of them (cap = hi)
    OPT_INTS,      // int at[cap]: comma-separated whole numbers in [lo, 1 << 24], *count of them (cap = hi)
    OPT_ARGS,      // option_args at: the arguments that are not flags (without it they are an error)
    OPT_RULE,      // a rule of its own reads the value into at
} option_kind;

typedef struct option_def option_def;
struct option_def {
    option_kind kind;
    const char *flag;     // as typed: "-m", "--top-k", "-pg"; OPT_HEADING: the line
    const char *value;    // the value's name in help ("N", "DIR"); switches have none
    void *at;             // where the value goes (its type is the kind's)
    double lo, hi;        // OPT_INT, OPT_REAL, OPT_DOUBLE: the range; OPT_REPEAT, OPT_INTS: hi is the most values
    int *count;           // OPT_REPEAT, OPT_INTS: how many were given
    const char *choices;  // OPT_CHOICE: the values, '|'-separated
    int (*rule)(void *at, const char *flag, const char *value, rp_err *err);   // OPT_RULE
    const char *def;      // the default as it would be typed: read into at before the command line, said in help
    const char *help;     // one paragraph, wrapped when printed; '\n' starts a new line
};

// A table's entries that need no more than these.
#define SHARED_FLAG(f) {.kind = OPT_SHARED, .flag = (f)}
#define OPTIONS_HEADING(text) {.kind = OPT_HEADING, .flag = (text)}
#define OPTIONS_END {.kind = OPT_END}

typedef struct {
    const char **items;   // into argv
    int n;
} option_args;

// Parses argv[first..] by table (and shared, the table OPT_SHARED entries name): every default first, then each
// flag. *help is set on -h/--help, and parsing stops there. Errors name the flag and what it takes.
int options_parse(int argc, char **argv, int first, const option_def *table, const option_def *shared, int *help,
                  rp_err *err);

// Prints synopsis, then the table's flags, each with its value, help and default, wrapped to the terminal width
// reprise uses (116 columns).
void options_print_help(const char *synopsis, const option_def *table, const option_def *shared);

// A whole number in [lo, hi], all of v ("64x" is an error naming the flag and the range); a real number likewise.
int options_parse_int(const char *flag, const char *v, double lo, double hi, int *out, rp_err *err);
int options_parse_real(const char *flag, const char *v, double lo, double hi, float *out, rp_err *err);
int options_parse_double(const char *flag, const char *v, double lo, double hi, double *out, rp_err *err);
// Comma-separated whole numbers in [lo, 1 << 24] into out[cap]; *count of them.
int options_parse_ints(const char *flag, const char *v, int lo, int cap, int *out, int *count, rp_err *err);

// The entry a table takes for flag ("--temp"), resolving OPT_SHARED; NULL when it takes none.
const option_def *options_find(const option_def *table, const option_def *shared, const char *flag);

#endif
