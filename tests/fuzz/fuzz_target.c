// What the file-reading fuzz targets share: a private temporary directory, and writing an input into it as a file.
#include "fuzz_target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void remove_dir(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

const char *fuzz_dir(void) {
    if (!dir[0]) {
        // $TMPDIR, else /dev/shm (memory: a target writes a file per input), else /tmp
        const char *t = getenv("TMPDIR");
        if (!t || !*t) t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof dir, "%s/reprise-fuzz-XXXXXX", t);
        if (!mkdtemp(dir)) abort();
        atexit(remove_dir);
    }
    return dir;
}

const char *fuzz_write(const char *name, const void *data, size_t size) {
    static char paths[8][512];
    static char names[8][64];
    int slot = 0;
    while (slot < 7 && names[slot][0] && strcmp(names[slot], name)) slot++;
    snprintf(names[slot], sizeof names[slot], "%s", name);
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(paths[slot], "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) abort();
    return paths[slot];
}
