// The benches' answer to -h/--help (usage on stdout, exit 0) and to a bad command line (usage on stderr, exit 2).
#ifndef REPRISE_BENCH_USAGE_H
#define REPRISE_BENCH_USAGE_H

#include <stdio.h>
#include <string.h>

// What main returns after a flag it does not take (or a flag with its value missing): arg is the flag as typed.
static inline int bench_usage(const char *arg, const char *usage) {
    int help = !strcmp(arg, "-h") || !strcmp(arg, "--help");
    if (!help) fprintf(stderr, "%s: not a flag of this bench, or its value is missing\n", arg);
    fputs(usage, help ? stdout : stderr);
    return help ? 0 : 2;
}

#endif
