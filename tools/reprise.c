// The `reprise` command: one subcommand per use.
#include <stdio.h>
#include <string.h>

#include "tools/common/cpu_threads.h"
#include "tools/cli.h"

static const char *usage =
    "usage: reprise COMMAND [options]   (reprise COMMAND --help for its options)\n"
    "Runs decoder-only LLMs (Llama, Qwen2, Mistral, Qwen3; HF safetensors) with any layer schedule.\n"
    "commands:\n"
    "  inspect    architecture, tensors, parameters, memory, what a schedule costs\n"
    "  generate   continue a prompt (text or token ids), streaming the output\n"
    "  chat       interactive multi-turn chat through the model's chat template\n"
    "  tokenize   text to token ids\n"
    "  sweep      evaluate many layer schedules on probe sets, with rankings and heatmaps\n"
    "  profile    what each layer and block does to the hidden state: distances, similarity, zones\n"
    "  score      per-token log-probabilities and perplexity; raw logits on request\n"
    "  export     write the physically duplicated checkpoint of a schedule\n"
    "  serve      an OpenAI-compatible HTTP server, continuous batching, a layer schedule per request\n"
    "  bench      latency and throughput of schedules side by side, beside the roofline (llama-bench's flags)\n"
    "Without -m, a command uses the built-in model (a small Llama trained on arithmetic). reprise --version: the\n"
    "version (sweep databases record it).\n";

int main(int argc, char **argv) {
    cpu_threads_bound_spinning(argv);   // before anything else: it may run reprise again
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) return printf("reprise %s\n", REPRISE_VERSION), 0;
    const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {{"inspect", cmd_inspect}, {"generate", cmd_generate}, {"score", cmd_score}, {"export", cmd_export},
                {"tokenize", cmd_tokenize}, {"chat", cmd_chat}, {"sweep", cmd_sweep}, {"profile", cmd_profile}, {"serve", cmd_serve}, {"bench", cmd_bench}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].run(argc, argv);
    fprintf(stderr, "reprise: unknown command '%s'\n%s", argv[1], usage);
    return 2;
}
