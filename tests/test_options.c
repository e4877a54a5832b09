// The options table: defaults, each kind of flag, the errors that name the flag, shared entries, and the help printer's
// columns and wrapping.
#include <unistd.h>

#include "test_util.h"
#include "tools/options.h"

typedef struct {
    int n, on, mode, count, list[4], n_list;
    float temp;
    double rate;
    const char *name, *each[2];
    option_args rest;
} flags;

static int rule_even(void *at, const char *flag, const char *v, rp_err *err) {
    int x;
    if (options_parse_int(flag, v, 0, 100, &x, err)) return -1;
    if (x % 2) return rp_fail(err, "%s %s: not even", flag, v);
    *(int *)at = x;
    return 0;
}

// The table under test, into f; shared, when given, holds one shared flag (--name) read into f as well.
static void table_of(flags *f, option_def t[16], option_def shared[2]) {
    const option_def list[] = {
        OPTIONS_HEADING("group:"),
        {OPT_INT, "-n", "N", &f->n, 1, 10, .def = "5", .help = "a count"},
        {OPT_SWITCH, "--on", NULL, &f->on, .help = "a switch"},
        {OPT_CHOICE, "--mode", "M", &f->mode, .choices = "fast|slow|exact", .def = "slow", .help = "how"},
        {OPT_REAL, "--temp", "T", &f->temp, 0, 2, .def = "0.5", .help = "a real"},
        {OPT_DOUBLE, "--rate", "R", &f->rate, 0, 1e9, .help = "a double"},
        {OPT_REPEAT, "--each", "X", f->each, 0, 2, &f->count, .help = "repeatable, twice at most"},
        {OPT_INTS, "-l", "N,..", f->list, 0, 4, &f->n_list, .def = "7", .help = "a list"},
        {OPT_RULE, "--even", "N", &f->n, .rule = rule_even, .help = "an even number into -n's place"},
        SHARED_FLAG("--name"),
        {OPT_ARGS, "FILE", .at = &f->rest},
        OPTIONS_END,
    };
    memcpy(t, list, sizeof list);
    shared[0] = (option_def){OPT_TEXT, "--name", "S", &f->name, .def = "anon", .help = "a shared text"};
    shared[1] = (option_def)OPTIONS_END;
}

static int parse(flags *f, int argc, const char **argv, rp_err *err, int *help) {
    option_def t[16], shared[2];
    memset(f, 0, sizeof *f);
    table_of(f, t, shared);
    return options_parse(argc, (char **)argv, 0, t, shared, help, err);
}

static void defaults_then_each_kind(void) {
    flags f;
    rp_err err;
    int help;
    CHECK(parse(&f, 0, NULL, &err, &help) == 0, "no flags: %s", err.msg);
    CHECK(f.n == 5 && f.mode == 1 && fabsf(f.temp - 0.5f) < 1e-6 && f.n_list == 1 && f.list[0] == 7 && !strcmp(f.name, "anon") &&
              !f.on && f.rest.n == 0,
          "defaults: n %d mode %d temp %g list %d/%d name %s", f.n, f.mode, f.temp, f.n_list, f.list[0], f.name);
    free(f.rest.items);
    const char *argv[] = {"-n", "3", "--on", "--mode", "exact", "--temp", "2", "--rate", "1e8", "--each", "a", "a.txt",
                          "--each", "b", "-l", "1,2,3", "--name", "x", "b.txt"};
    CHECK(parse(&f, 19, argv, &err, &help) == 0, "%s", err.msg);
    CHECK(f.n == 3 && f.on && f.mode == 2 && f.temp == 2 && f.rate == 1e8 && f.count == 2 && !strcmp(f.each[1], "b") &&
              f.n_list == 3 && f.list[2] == 3 && !strcmp(f.name, "x"),
          "values: n %d on %d mode %d temp %g rate %g count %d list %d", f.n, f.on, f.mode, f.temp, f.rate, f.count, f.n_list);
    CHECK(f.rest.n == 2 && !strcmp(f.rest.items[0], "a.txt") && !strcmp(f.rest.items[1], "b.txt"), "arguments: %d", f.rest.n);
    free(f.rest.items);
    const char *even[] = {"--even", "8", "--help", "--bogus"};
    CHECK(parse(&f, 4, even, &err, &help) == 0 && f.n == 8 && help, "a rule, then --help stops the parse");
    free(f.rest.items);
}

// Each bad command line is refused with a message holding want.
static void refused(int argc, const char **argv, const char *want) {
    flags f;
    rp_err err = {0};
    int help;
    int rc = parse(&f, argc, argv, &err, &help);
    CHECK(rc != 0 && strstr(err.msg, want), "%s ...: rc %d, '%s' (wanted '%s')", argv[0], rc, err.msg, want);
    free(f.rest.items);
}

static void errors_name_the_flag(void) {
    refused(1, (const char *[]){"--bogus"}, "unknown option '--bogus' (see --help)");
    refused(1, (const char *[]){"-n"}, "-n needs a value");
    refused(2, (const char *[]){"-n", "11"}, "-n: '11' is not an integer in [1, 10]");
    refused(2, (const char *[]){"-n", "4x"}, "-n: '4x' is not an integer");
    refused(2, (const char *[]){"--temp", "nan"}, "--temp: 'nan' is not a number in [0, 2]");
    refused(2, (const char *[]){"--mode", "quick"}, "--mode quick: fast, slow or exact");
    refused(6, (const char *[]){"--each", "a", "--each", "b", "--each", "c"}, "--each: at most 2");
    refused(2, (const char *[]){"-l", "1,,2"}, "-l: '1,,2' is not a comma-separated list");
    refused(2, (const char *[]){"-l", "1,2,3,4,5"}, "-l: at most 4 values");
    refused(2, (const char *[]){"--even", "3"}, "--even 3: not even");
    // without an OPT_ARGS entry, a word that is no flag is an error
    option_def t[] = {OPTIONS_END};
    rp_err err;
    int help;
    CHECK(options_parse(1, (char *[]){"stray"}, 0, t, NULL, &help, &err) != 0 && strstr(err.msg, "unexpected argument 'stray'"),
          "%s", err.msg);
    // a table naming a shared flag that does not exist refuses it like any unknown flag
    option_def naming[] = {SHARED_FLAG("--nowhere"), OPTIONS_END};
    CHECK(options_find(naming, NULL, "--nowhere") == NULL, "an unresolved shared flag is found");
}

// llama.cpp's and vLLM's spellings: an alias runs as the flag it names when the table takes it (the table's own flag
// of that name wins), --flag=value is one argument, and a flag not taken gets the closest one or an answer.
static void aliases_and_equals(void) {
    flags f;
    rp_err err;
    int help;
    const char *argv[] = {"--temperature", "1.5", "--n-predict=4", "--mode=exact", "--each=a", "--on"};
    CHECK(parse(&f, 6, argv, &err, &help) == 0, "%s", err.msg);
    CHECK(f.temp == 1.5f && f.n == 4 && f.mode == 2 && f.count == 1 && !strcmp(f.each[0], "a") && f.on,
          "temp %g n %d mode %d each %d", f.temp, f.n, f.mode, f.count);
    free(f.rest.items);
    refused(1, (const char *[]){"--on=1"}, "--on takes no value (given '1')");
    refused(1, (const char *[]){"-n=4"}, "unknown option '-n=4'");   // short flags take their value apart
    refused(1, (const char *[]){"--temp=x"}, "--temp: 'x' is not a number");
    refused(2, (const char *[]){"--mdoe", "fast"}, "unknown option '--mdoe' (did you mean --mode?)");
    refused(2, (const char *[]){"--temperatur", "1"}, "(did you mean --temperature?)");
    refused(2, (const char *[]){"--threads", "2"}, "it is reprise's -t, which this command does not take");
    refused(2, (const char *[]){"-ngl", "99"}, "no partial offload");
    refused(2, (const char *[]){"--xyz", "1"}, "unknown option '--xyz' (see --help)");
    // a table's own flag of an alias's name is the table's
    int own = 0;
    option_def t[] = {{OPT_INT, "--max-tokens", "N", &own, 0, 99, .help = "own"}, {OPT_INT, "-n", "N", &f.n, 0, 99, .help = "n"}, OPTIONS_END};
    CHECK(options_parse(2, (char *[]){"--max-tokens", "7"}, 0, t, NULL, &help, &err) == 0 && own == 7, "own --max-tokens: %d", own);
}

// The help, as printed, into buf.
static void help_text(char *buf, size_t cap) {
    flags f;
    option_def t[16], shared[2];
    table_of(&f, t, shared);
    t[1].help = "a count, with a help long enough to wrap: " "every word of it must stay inside the width that the "
                "printer keeps, one hundred and sixteen columns, and the lines after the first start under the first";
    fflush(stdout);
    int saved = dup(1);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 1);
    options_print_help("usage: test\n", t, shared);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, cap - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
}

static void help_fits_and_aligns(void) {
    char buf[8192];
    help_text(buf, sizeof buf);
    CHECK(!strncmp(buf, "usage: test\ngroup:\n  -n N", 24), "starts: %.40s", buf);
    int col = -1, lines = 0;
    for (char *line = buf; *line; lines++) {
        char *end = strchr(line, '\n');
        int len = (int)(end ? end - line : (long)strlen(line));
        CHECK(len <= 116, "a line of %d columns: %.*s", len, len, line);
        if (!strncmp(line, "  -", 3)) {   // an option's help starts at the same column as every other's
            char *label_end = strstr(line + 2, "  ");
            int at = (int)(label_end - line);
            while (line[at] == ' ') at++;
            if (col < 0) col = at;
            CHECK(at == col, "help at column %d, not %d: %.*s", at, col, len, line);
        } else if (lines > 1 && line[0] == ' ') {
            int at = (int)strspn(line, " ");
            CHECK(at == col, "a wrapped line at column %d, not %d", at, col);
        }
        line = end ? end + 1 : line + len;
    }
    CHECK(strstr(buf, "a count, with a help") && strstr(buf, "under the first (default 5)\n"), "the default ends the help: %s", buf);
    CHECK(strstr(buf, "--mode M") && strstr(buf, "how (default slow)"), "a choice's default");
    CHECK(strstr(buf, "--name S") && strstr(buf, "a shared text (default anon)"), "a shared flag's help");
    CHECK(!strstr(buf, "FILE"), "arguments are the synopsis's to name");
}

int main(void) {
    RUN(defaults_then_each_kind);
    RUN(errors_name_the_flag);
    RUN(aliases_and_equals);
    RUN(help_fits_and_aligns);
    return TEST_EXIT();
}
