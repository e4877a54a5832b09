// `reprise tokenize`: text to token ids with a model's tokenizer.json.
#include <stdio.h>
#include <stdlib.h>

#include "loader/json_file.h"
#include "loader/tokenizer.h"
#include "tools/cli.h"

static const char *usage =
    "usage: reprise tokenize [-m DIR] (-p TEXT | -f FILE) [--no-special] [--json]\n"
    "Prints the token ids of the text, space-separated (a directory holding only tokenizer.json is enough).\n"
    "  -m DIR         directory with tokenizer.json (default: the built-in model)\n"
    "  -p TEXT        the text\n"
    "  -f FILE        the text, from a file\n"
    "  --no-special   do not add BOS or other tokens of the post-processor's template\n"
    "  --json         print a JSON array\n";

int cmd_tokenize(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    if (cli_begin(argc, argv, usage, &o, &code)) return code;
    char *path = path_join(o.model_dir, "tokenizer.json");
    tokenizer *t = tokenizer_load(path, &err);
    free(path);
    int *ids = NULL, n = 0, as_text;
    if (!t || cli_prompt_ids(&o, t, &ids, &n, &as_text, &err)) {
        fprintf(stderr, "reprise tokenize: %s\n", err.msg);
        tokenizer_free(t);
        return 1;
    }
    if (o.json) printf("[");
    for (int i = 0; i < n; i++) printf(o.json ? "%s%d" : "%s%d", i ? (o.json ? ", " : " ") : "", ids[i]);
    printf(o.json ? "]\n" : "\n");
    free(ids);
    tokenizer_free(t);
    return 0;
}
