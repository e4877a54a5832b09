// `reprise generate`: continue a prompt, streaming text (or token ids) to stdout as they come.
#include <stdio.h>
#include <stdlib.h>

#include "tools/session.h"

static const char *usage =
    "usage: reprise generate [-m DIR] (-p TEXT | -f FILE | --tokens IDS) [-n N] [--schedule S] [options]\n"
    "Continues the prompt. With -p or -f the text streams to stdout; with --tokens the generated ids are\n"
    "printed, space-separated, on one line. Statistics go to stderr.\n"
    "  -m DIR           model directory (default: the built-in model)\n"
    "  -p TEXT          prompt text (BOS added as the tokenizer's post-processor says)\n"
    "  -f FILE          prompt text from a file\n"
    "  --tokens IDS     prompt token ids, e.g. 1,403,407\n"
    "  --no-special     do not add BOS or other template tokens to a text prompt\n"
    "  -n N             tokens to generate (default: until end-of-sequence or the context is full)\n"
    "  --schedule S     layer schedule: base, 0-5,3-9, rys:I,J or rys:I,J,K (default base)\n"
    "  -c N             context length (default: prompt + N with -n, else max_position_embeddings\n"
    "                   up to 4096)\n"
    "  --ubatch N       most rows of one forward step; a longer prompt runs in chunks (default 512)\n"
    "  --tp N           split the model over N GPUs (tensor parallel; N divides the KV heads; default 1)\n"
    "  --temp T         temperature; 0 = greedy (default 0.8)\n"
    "  --top-k K        keep the K most likely tokens; 0 = off (default 40)\n"
    "  --top-p P        keep the smallest set with probability >= P; 1 = off (default 0.95)\n"
    "  --min-p P        drop tokens below P x the top probability; 0 = off (default 0.05)\n"
    "  --seed S         random seed; -1 = a random one, printed on stderr (default 0)\n"
    "  --repeat-penalty R     a token seen in the prompt or the output: its logit divided by R when positive,\n"
    "                   multiplied when not (vLLM's repetition_penalty; 1 = off, the default)\n"
    "  --presence-penalty P   minus P on the logit of a token already generated (-2 to 2; 0 = off, the default)\n"
    "  --frequency-penalty F  minus F times its count in the output so far (-2 to 2; 0 = off, the default)\n"
    "  --stop STRING    stop when the text contains STRING (repeatable; text mode), which is not printed\n"
    "  --ignore-eos     keep going after an end-of-sequence token\n"
    "  --backend B      cpu, cuda, or auto: cuda when built in and a GPU is present (default auto)\n"
    "  -t N             threads (default: all cores; more than the cores are lowered to them, said on stderr)\n"
    "  --kv-dtype T     the CPU backend's KV cache: auto (default: bf16 for a BF16 model, else f32), bf16 or f32\n"
    "  --allow-unused-tensors   run a checkpoint holding tensors the model does not read (layers at or beyond\n"
    "                   num_hidden_layers, names the architecture does not use), which is otherwise refused\n";

int cmd_generate(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    if (cli_begin(argc, argv, usage, &o, &code))
        return code;
    // The model and its tokenizer are loaded first, then the context is sized to the prompt and -n.
    session s;
    if (session_load(&s, &o, 0, &err)) {
        fprintf(stderr, "reprise generate: %s\n", err.msg);
        return 1;
    }
    const model_config *cfg = &s.md.cfg;
    int *prompt = NULL, n_prompt = 0, as_text = 0, ctx = 0;
    int rc = cli_prompt_ids(&o, s.md.tok, &prompt, &n_prompt, &as_text, &err) ? -1 : 0;
    if (!rc) rc = cli_check_tokens(prompt, n_prompt, cfg->vocab_size, &err);
    if (!rc && n_prompt == 0) rc = rp_fail(&err, "the prompt is empty");
    if (!rc) ctx = cli_context(&o, cfg, n_prompt, "generate");
    // The last sampled token is never fed back, so the context must hold the prompt and N - 1 more.
    int until_full = o.n_predict < 0, n_new = until_full ? ctx - n_prompt + 1 : o.n_predict;
    int need = n_prompt + (n_new > 0 ? n_new - 1 : 0);
    if (!rc && until_full && n_prompt > ctx)
        rc = rp_fail(&err, "the prompt has %d tokens, more than the context length %d", n_prompt, ctx);
    else if (!rc && need > ctx)
        rc = rp_fail(&err, "prompt of %d tokens + -n %d needs a context of %d, more than %s %d", n_prompt, o.n_predict,
                     need, o.ctx ? "-c" : config_context_name(cfg), ctx);
    if (!rc && session_start(&s, &o, ctx, &err)) {
        fprintf(stderr, "reprise generate: %s\n", err.msg);
        free(prompt);
        return 1;
    }
    gen_stats st;
    if (!rc && n_new > 0 && session_generate(&s, prompt, n_prompt, n_new, as_text, NULL, &st, &err) == 0) {
        printf("\n");
        if (until_full && st.n_generated == n_new)
            fprintf(stderr, "reprise generate: stopped at the end of the context (%d tokens); -c sets it\n", ctx);
        fprintf(stderr, "reprise generate: %d prompt tokens in %.3f s (%.1f tok/s), %d generated in %.3f s (%.1f tok/s), "
                        "schedule %d visits over %d layers\n",
                n_prompt, st.prefill_s, n_prompt / (st.prefill_s > 0 ? st.prefill_s : 1e-9), st.n_generated,
                st.decode_s, st.n_generated > 1 ? (st.n_generated - 1) / st.decode_s : 0.0, s.sched.n_visits,
                s.m.cfg.n_layers);
    } else if (n_new > 0 || rc) {
        fprintf(stderr, "reprise generate: %s\n", err.msg);
        rc = -1;
    }
    free(prompt);
    session_close(&s);
    return rc ? 1 : 0;
}
