// A command's flags as one table: the parser and the help printer that read it.
#include "tools/options.h"
#include "loader/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELP_WIDTH 116   // the widest help line
#define LABEL_MAX 22     // a longer label puts its help two spaces after it, the rest at the column

const option_def *options_find(const option_def *table, const option_def *shared, const char *flag) {
    for (const option_def *d = table; d && d->kind != OPT_END; d++) {
        if (d->kind == OPT_HEADING || d->kind == OPT_ARGS || strcmp(d->flag, flag)) continue;
        if (d->kind != OPT_SHARED) return d;
        for (const option_def *s = shared; s && s->kind != OPT_END; s++)
            if (s->kind != OPT_HEADING && !strcmp(s->flag, flag)) return s;
        return NULL;   // a table naming a shared flag that does not exist: refused like any unknown flag
    }
    return NULL;
}

int options_parse_int(const char *flag, const char *v, double lo, double hi, int *out, rp_err *err) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < (long)lo || x > (long)hi)
        return rp_fail(err, "%s: '%s' is not an integer in [%ld, %ld]", flag, v, (long)lo, (long)hi);
    *out = (int)x;
    return 0;
}

int options_parse_double(const char *flag, const char *v, double lo, double hi, double *out, rp_err *err) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return rp_fail(err, "%s: '%s' is not a number in [%g, %g]", flag, v, lo, hi);
    *out = x;
    return 0;
}

int options_parse_real(const char *flag, const char *v, double lo, double hi, float *out, rp_err *err) {
    double x = 0;
    if (options_parse_double(flag, v, lo, hi, &x, err)) return -1;
    *out = (float)x;
    return 0;
}

// "a|b|c" as "a, b or c", for messages.
static void choices_text(const char *choices, char *out, size_t cap) {
    size_t n = 0;
    int parts = 1;
    for (const char *p = choices; *p; p++) parts += *p == '|';
    int k = 0;
    for (const char *p = choices; *p && n + 8 < cap; p++) {
        if (*p != '|') {
            out[n++] = *p;
            continue;
        }
        const char *sep = ++k == parts - 1 ? " or " : ", ";
        n += (size_t)snprintf(out + n, cap - n, "%s", sep);
    }
    out[n < cap ? n : cap - 1] = 0;
}

static int parse_choice(const option_def *d, const char *flag, const char *v, int *out, rp_err *err) {
    size_t len = strlen(v);
    int index = 0;
    for (const char *p = d->choices;; index++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, v, n)) {
            *out = index;
            return 0;
        }
        if (!bar) break;
        p = bar + 1;
    }
    char text[256];
    choices_text(d->choices, text, sizeof text);
    return rp_fail(err, "%s %s: %s", flag, v, text);
}

int options_parse_ints(const char *flag, const char *v, int lo, int cap, int *out, int *count, rp_err *err) {
    int n = 0;
    for (const char *p = v; *p;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < lo || x > (1 << 24) || (*end && *end != ','))
            return rp_fail(err, "%s: '%s' is not a comma-separated list of integers >= %d", flag, v, lo);
        if (n == cap) return rp_fail(err, "%s: at most %d values", flag, cap);
        out[n++] = (int)x;
        p = *end ? end + 1 : end;
    }
    if (!n) return rp_fail(err, "%s: no values", flag);
    *count = n;
    return 0;
}

// One value into d's place; flag is the flag as typed.
static int read_value(const option_def *d, const char *flag, const char *v, rp_err *err) {
    switch (d->kind) {
    case OPT_TEXT: *(const char **)d->at = v; return 0;
    case OPT_INT: return options_parse_int(flag, v, d->lo, d->hi, d->at, err);
    case OPT_REAL: return options_parse_real(flag, v, d->lo, d->hi, d->at, err);
    case OPT_DOUBLE: return options_parse_double(flag, v, d->lo, d->hi, d->at, err);
    case OPT_CHOICE: return parse_choice(d, flag, v, d->at, err);
    case OPT_INTS: return options_parse_ints(flag, v, (int)d->lo, (int)d->hi, d->at, d->count, err);
    case OPT_RULE: return d->rule(d->at, flag, v, err);
    case OPT_REPEAT:
        if (*d->count == (int)d->hi) return rp_fail(err, "%s: at most %d", flag, (int)d->hi);
        ((const char **)d->at)[(*d->count)++] = v;
        return 0;
    default: return rp_fail(err, "%s: takes no value", flag);
    }
}

// Every default of the table and of the shared flags it names, read as if typed.
static int apply_defaults(const option_def *table, const option_def *shared, rp_err *err) {
    for (const option_def *d = table; d && d->kind != OPT_END; d++) {
        const option_def *r = d->kind == OPT_SHARED ? options_find(table, shared, d->flag) : d;
        const char *def = d->kind == OPT_SHARED && d->def ? d->def : r ? r->def : NULL;
        if (r && def && read_value(r, r->flag, def, err)) return rp_wrap(err, "the default of %s", d->flag);
    }
    return 0;
}

// Flags of llama.cpp and vLLM (and the OpenAI API's names) that mean one of reprise's: taken as that flag wherever
// the command takes it, so a command line typed from habit runs. A command's own flag of the same name wins.
static const struct {
    const char *alias, *flag;
} aliases[] = {
    {"--model", "-m"},          {"--prompt", "-p"},          {"--file", "-f"},
    {"--n-predict", "-n"},      {"--predict", "-n"},         {"--max-tokens", "-n"},
    {"--ctx-size", "-c"},       {"--max-model-len", "-c"},   {"--threads", "-t"},
    {"--temperature", "--temp"}, {"--repetition-penalty", "--repeat-penalty"},
    {"--tensor-parallel-size", "--tp"}, {"-tp", "--tp"},
    {"--ubatch-size", "--ubatch"}, {"-ub", "--ubatch"},
    {"--max-num-seqs", "--parallel"}, {"-np", "--parallel"},
    {"--system-prompt", "--system"}, {"-sys", "--system"},
};

// Familiar flags with no counterpart, answered with what reprise does instead of a bare "unknown option".
static const char *const gpu_layers = "reprise runs every layer on the GPU with --backend cuda (auto picks it when a GPU is "
                                      "present); it has no partial offload";
static const struct {
    const char *flag, *answer;
} answers[] = {
    {"-ngl", gpu_layers}, {"--n-gpu-layers", gpu_layers}, {"--gpu-layers", gpu_layers},
    {"--gpu-memory-utilization", "reprise fits the KV cache to the GPU's free memory by itself; serve's --kv-budget N caps it"},
    {"--quantization", "--weights fp8 quantizes the projections to FP8 at load; an FP8 checkpoint runs as stored"},
    {"--dtype", "the weights run as stored (BF16 on a GPU, stored or float32 on the CPU); --weights fp8 for FP8"},
};

// Edits (insert, delete, replace) from a to b, at most 32 characters of b counted.
static int edit_distance(const char *a, const char *b) {
    int nb = (int)strlen(b), row[34];
    if (nb > 32) nb = 32;
    for (int j = 0; j <= nb; j++) row[j] = j;
    for (int i = 1; a[i - 1]; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= nb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up, row[j] = best;
        }
    }
    return row[nb];
}

// The entry for a flag as typed: the table's own, else an alias's whose flag the table takes.
static const option_def *find_flag(const option_def *table, const option_def *shared, const char *flag) {
    const option_def *d = options_find(table, shared, flag);
    for (size_t i = 0; !d && i < sizeof aliases / sizeof *aliases; i++)
        if (!strcmp(aliases[i].alias, flag)) d = options_find(table, shared, aliases[i].flag);
    return d;
}

// Why flag is refused: an answer for a familiar flag, an alias of a flag this command does not take, or the closest
// flag it does take (a typo: at most 2 edits, fewer than half the flag).
static int unknown_flag(const option_def *table, const option_def *shared, const char *flag, rp_err *err) {
    for (size_t i = 0; i < sizeof answers / sizeof *answers; i++)
        if (!strcmp(answers[i].flag, flag)) return rp_fail(err, "unknown option '%s': %s", flag, answers[i].answer);
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (!strcmp(aliases[i].alias, flag))
            return rp_fail(err, "unknown option '%s': it is reprise's %s, which this command does not take (see --help)", flag,
                           aliases[i].flag);
    const char *best = NULL;
    int best_d = 3;
    for (const option_def *d = table; d->kind != OPT_END; d++) {
        if (d->kind == OPT_HEADING || d->kind == OPT_ARGS || !options_find(table, shared, d->flag)) continue;
        int e = edit_distance(flag, d->flag);
        if (e < best_d && 2 * e < (int)strlen(d->flag)) best = d->flag, best_d = e;
    }
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++) {
        int e = edit_distance(flag, aliases[i].alias);
        if (e < best_d && 2 * e < (int)strlen(aliases[i].alias) && options_find(table, shared, aliases[i].flag))
            best = aliases[i].alias, best_d = e;
    }
    if (best) return rp_fail(err, "unknown option '%s' (did you mean %s?)", flag, best);
    return rp_fail(err, "unknown option '%s' (see --help)", flag);
}

int options_parse(int argc, char **argv, int first, const option_def *table, const option_def *shared, int *help,
                  rp_err *err) {
    *help = 0;
    if (apply_defaults(table, shared, err)) return -1;
    option_args *args = NULL;
    for (const option_def *d = table; d->kind != OPT_END; d++)
        if (d->kind == OPT_ARGS) args = d->at;
    if (args) args->items = rp_malloc(sizeof(char *) * (size_t)(argc > 0 ? argc : 1)), args->n = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            *help = 1;
            return 0;
        }
        if (a[0] != '-' || !a[1]) {
            if (!args) return rp_fail(err, "unexpected argument '%s'", a);
            args->items[args->n++] = a;
            continue;
        }
        // --flag=value, as argparse and llama.cpp's long flags take it
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        char flag[64];
        snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        const option_def *d = find_flag(table, shared, flag);
        if (!d) return unknown_flag(table, shared, flag, err);
        if (d->kind == OPT_SWITCH) {
            if (eq) return rp_fail(err, "%s takes no value (given '%s')", flag, eq + 1);
            *(int *)d->at = 1;
            continue;
        }
        if (!eq && i + 1 >= argc) return rp_fail(err, "%s needs a value (see --help)", flag);
        if (read_value(d, flag, eq ? eq + 1 : argv[++i], err)) return -1;
    }
    return 0;
}

// Writes text from the cursor (at column start) to HELP_WIDTH, words wrapped, each further line indented to col. A
// run of blanks between words is kept (aligned sub-lists), except where a line wraps; a line of a sub-list ("eq:FILE
// RYS EQ-Bench ...", its first word and two blanks or more) wraps under its text.
static void print_wrapped(const char *text, int col, int start) {
    int at = start, fresh = 1, hang = col;
    for (const char *p = text; *p;) {
        if (*p == '\n') {
            printf("\n%*s", col, "");
            at = hang = col, fresh = 1, p++;
            continue;
        }
        int gap = (int)strspn(p, " ");
        p += gap;
        if (!*p || *p == '\n') continue;
        size_t n = strcspn(p, " \n");
        if (at == col && fresh && p[n] == ' ' && p[n + 1] == ' ') hang = col + (int)n + (int)strspn(p + n, " ");
        if (!fresh && at + gap + (int)n > HELP_WIDTH) printf("\n%*s", hang, ""), at = hang;
        else if (!fresh) printf("%*s", gap, ""), at += gap;
        printf("%.*s", (int)n, p);
        at += (int)n, p += n, fresh = 0;
    }
    putchar('\n');
}

// "--top-k K", or "--probe KIND[:FILE]": the flag with its value's name.
static int label_of(const option_def *d, const option_def *r, char *out, size_t cap) {
    const char *value = d->value ? d->value : r->value;
    return snprintf(out, cap, "%s%s%s", d->flag, value ? " " : "", value ? value : "");
}

void options_print_help(const char *synopsis, const option_def *table, const option_def *shared) {
    fputs(synopsis, stdout);
    int width = 0;
    char label[128];
    for (const option_def *d = table; d->kind != OPT_END; d++) {
        if (d->kind == OPT_HEADING || d->kind == OPT_ARGS) continue;
        const option_def *r = options_find(table, shared, d->flag);
        int n = r ? label_of(d, r, label, sizeof label) : 0;
        if (n <= LABEL_MAX && n > width) width = n;
    }
    int col = 2 + width + 2;
    for (const option_def *d = table; d->kind != OPT_END; d++) {
        if (d->kind == OPT_ARGS) continue;
        if (d->kind == OPT_HEADING) {
            printf("%s\n", d->flag);
            continue;
        }
        const option_def *r = options_find(table, shared, d->flag);
        if (!r) continue;
        int n = label_of(d, r, label, sizeof label);
        int pad = n <= width ? col - 2 - n : 2;
        printf("  %s%*s", label, pad, "");
        const char *help = d->help ? d->help : r->help ? r->help : "";
        const char *def = d->kind == OPT_SHARED && d->def ? d->def : r->def;
        if (!def) {
            print_wrapped(help, col, 2 + n + pad);
            continue;
        }
        size_t len = strlen(help) + strlen(def) + 16;
        char *text = rp_malloc(len);
        snprintf(text, len, "%s%s(default %s)", help, *help ? " " : "", def);
        print_wrapped(text, col, 2 + n + pad);
        free(text);
    }
}
