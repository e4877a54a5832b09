// What the file-reading fuzz targets share: a private temporary directory, and writing an input into it as a file,
// since the parsers under test read files (a model folder, a probe file, a database) as users give them.
#ifndef REPRISE_FUZZ_TARGET_H
#define REPRISE_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Called by the deterministic driver (driver.c) after its run of `inputs` inputs: 0 when the run did what the target
// expects, else the driver fails. Most targets return 0; serve_request checks that some inputs parsed and some not.
int fuzz_run_check(long inputs);

// The process's own directory under $TMPDIR (made on first use, removed at exit).
const char *fuzz_dir(void);
// Writes data to fuzz_dir()/name and returns the path (valid until the next call with the same name).
const char *fuzz_write(const char *name, const void *data, size_t size);

#endif
