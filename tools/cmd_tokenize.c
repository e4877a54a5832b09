// `reprise tokenize`: text to token ids with a model's tokenizer.json.
#include <stdio.h>
#include <stdlib.h>

#include "loader/json_file.h"
#include "loader/tokenizer.h"
#include "tools/cli.h"

static const char *synopsis =
    "usage: reprise tokenize [-m DIR] (-p TEXT | -f FILE) [--no-special] [--json]\n"
    "Prints the token ids of the text, space-separated (a directory holding only tokenizer.json is enough).\n";

int cmd_tokenize(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code, json = 0;
    const option_def options[] = {
        {OPT_SHARED, "-m", .help = "directory with tokenizer.json, or a Hugging Face name (ORG/NAME) in the local hub cache (default: the built-in model)"},
        SHARED_FLAG("--revision"),
        {OPT_SHARED, "-p", .help = "the text"},
        {OPT_SHARED, "-f", .help = "the text, from a file"},
        {OPT_SHARED, "--no-special", .help = "do not add BOS or other tokens of the post-processor's template"},
        {OPT_SWITCH, "--json", NULL, &json, .help = "print a JSON array"},
        OPTIONS_END,
    };
    if (cli_begin(argc, argv, synopsis, options, &o, &code)) return code;
    char *path = path_join(o.model_dir, "tokenizer.json");
    tokenizer *t = tokenizer_load(path, &err);
    free(path);
    int *ids = NULL, n = 0, as_text;
    if (!t || cli_prompt_ids(&o, t, &ids, &n, &as_text, &err)) {
        fprintf(stderr, "reprise tokenize: %s\n", err.msg);
        tokenizer_free(t);
        return 1;
    }
    if (json) printf("[");
    for (int i = 0; i < n; i++) printf(json ? "%s%d" : "%s%d", i ? (json ? ", " : " ") : "", ids[i]);
    printf(json ? "]\n" : "\n");
    free(ids);
    tokenizer_free(t);
    return 0;
}
