// `reprise generate`: continue a prompt, streaming text (or token ids) to stdout as they come.
#include <stdio.h>
#include <stdlib.h>

#include "tools/session.h"

static const char *synopsis =
    "usage: reprise generate [-m DIR] (-p TEXT | -f FILE | --tokens IDS) [-n N] [--schedule S] [options]\n"
    "Continues the prompt. With -p or -f the text streams to stdout; with --tokens the generated ids are\n"
    "printed, space-separated, on one line. Statistics go to stderr.\n";

static const option_def options[] = {
    SHARED_FLAG("-m"), SHARED_FLAG("--revision"), SHARED_FLAG("-p"), SHARED_FLAG("-f"), SHARED_FLAG("--tokens"), SHARED_FLAG("--no-special"),
    SHARED_FLAG("-n"), SHARED_FLAG("--schedule"), SHARED_FLAG("--draft"), SHARED_FLAG("--draft-tokens"), SHARED_FLAG("-c"), SHARED_FLAG("--ubatch"), SHARED_FLAG("--tp"),
    SHARED_FLAG("--temp"), SHARED_FLAG("--top-k"), SHARED_FLAG("--top-p"), SHARED_FLAG("--min-p"),
    SHARED_FLAG("--seed"), SHARED_FLAG("--repeat-penalty"), SHARED_FLAG("--presence-penalty"),
    SHARED_FLAG("--frequency-penalty"), SHARED_FLAG("--stop"), SHARED_FLAG("--ignore-eos"),
    SHARED_FLAG("--backend"), SHARED_FLAG("-t"), SHARED_FLAG("--kv-dtype"), SHARED_FLAG("--weights"), SHARED_FLAG("--allow-unused-tensors"),
    OPTIONS_END,
};

int cmd_generate(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    if (cli_begin(argc, argv, synopsis, options, &o, &code))
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
        if (s.draft_sched.n_visits)
            fprintf(stderr, "reprise generate: draft of %d visits: %ld steps, %ld tokens proposed, %ld accepted (%.1f%%), "
                            "%.2f tokens a step\n", s.draft_sched.n_visits, st.spec_steps, st.proposed, st.accepted,
                    st.proposed ? 100.0 * st.accepted / st.proposed : 0.0,
                    st.spec_steps ? (double)(st.accepted + st.spec_steps) / st.spec_steps : 0.0);
    } else if (n_new > 0 || rc) {
        fprintf(stderr, "reprise generate: %s\n", err.msg);
        rc = -1;
    }
    free(prompt);
    session_close(&s);
    return rc ? 1 : 0;
}
