// The `reprise` command: one subcommand per use.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    "  score      per-token log-probabilities and perplexity; raw logits on request\n"
    "  export     write the physically duplicated checkpoint of a schedule\n"
    "  serve      an OpenAI-compatible HTTP server, continuous batching, a layer schedule per request\n"
    "  bench      latency and throughput of schedules side by side, beside the roofline (llama-bench's flags)\n"
    "Without -m, a command uses the built-in model (a small Llama trained on arithmetic).\n";

// libgomp's workers spin 300,000 times at every barrier before they sleep (its default when OMP_WAIT_POLICY is
// unset). Alone on a machine that is the fastest wait; beside any other busy process (a second shard of a sweep, the
// server's own HTTP threads, a client) the spinning workers take the cores the others need, and both slow down by
// 10x or more: two sweeps on 2 cores took 337 s together against 18 s alone. 1,000 spins, libgomp's own figure for
// an oversubscribed machine, keeps the single-process speed (decode of the 100M bench model: 33.4 tokens/s either
// way) and took the pair to 30 s. libgomp reads the variable once, when it is loaded, before main: so reprise sets
// it and runs itself again, unless the user chose a policy. Where exec fails, reprise goes on with the default.
static void bound_openmp_spinning(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", "1000", 1) != 0) return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    bound_openmp_spinning(argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {{"inspect", cmd_inspect}, {"generate", cmd_generate}, {"score", cmd_score}, {"export", cmd_export},
                {"tokenize", cmd_tokenize}, {"chat", cmd_chat}, {"sweep", cmd_sweep}, {"serve", cmd_serve}, {"bench", cmd_bench}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].run(argc, argv);
    fprintf(stderr, "reprise: unknown command '%s'\n%s", argv[1], usage);
    return 2;
}
