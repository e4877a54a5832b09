// `reprise generate`: feed token ids, sample new ones, print them on stdout as they come.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tools/cli.h"

static const char *usage =
    "usage: reprise generate -m DIR --tokens IDS [-n N] [--schedule S] [options]\n"
    "Feeds the prompt token ids, then samples N new tokens and prints their ids on stdout, one line,\n"
    "separated by spaces. Statistics go to stderr.\n"
    "  -m DIR           model directory (config.json + safetensors)\n"
    "  --tokens IDS     prompt token ids, e.g. 1,403,407\n"
    "  -n N             tokens to generate (default 128)\n"
    "  --schedule S     layer schedule: base, 0-5,3-9, rys:I,J or rys:I,J,K (default base)\n"
    "  -c N             context length (default: prompt + N, at most max_position_embeddings)\n"
    "  --temp T         temperature; 0 = greedy (default 0.8)\n"
    "  --top-k K        keep the K most likely tokens; 0 = off (default 40)\n"
    "  --top-p P        keep the smallest set with probability >= P; 1 = off (default 0.95)\n"
    "  --min-p P        drop tokens below P x the top probability; 0 = off (default 0.05)\n"
    "  --seed S         random seed (default 0)\n"
    "  --ignore-eos     keep going after an end-of-sequence token\n"
    "  --backend B      cpu (default cpu)\n"
    "  -t N             threads (default: all cores)\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int is_eos(const model_config *c, int id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return 1;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    if (cli_begin(argc, argv, "m schedule backend tokens n t c temp top-k top-p min-p seed ignore-eos", usage, &o, &code)) return code;
    int *prompt = NULL, n_prompt = 0;
    if (cli_prompt_ids(&o, &prompt, &n_prompt, &err)) {
        fprintf(stderr, "reprise generate: %s\n", err.msg);
        return 2;
    }
    model m;
    schedule s;
    if (cli_load_model(&o, &m, &s, &err)) {
        fprintf(stderr, "reprise generate: %s\n", err.msg);
        free(prompt);
        return 1;
    }
    // The last sampled token is never fed back, so the context must hold the prompt and N - 1 more.
    int need = n_prompt + (o.n_predict > 0 ? o.n_predict - 1 : 0);
    int ctx = o.ctx ? o.ctx : (need < m.cfg.max_pos ? need : m.cfg.max_pos);
    sequence seq;
    int rc = cli_check_tokens(prompt, n_prompt, m.cfg.vocab_size, &err);
    if (!rc && need > ctx)
        rc = rp_fail(&err, "prompt of %d tokens + -n %d needs a context of %d, more than %s %d", n_prompt, o.n_predict,
                     need, o.ctx ? "-c" : "max_position_embeddings", ctx);
    if (!rc) rc = sequence_init(&seq, &m, &s, ctx, &err);
    if (rc) {
        fprintf(stderr, "reprise generate: %s\n", err.msg);
        schedule_free(&s);
        model_free(&m);
        free(prompt);
        return 1;
    }

    sampler smp;
    sampler_init(&smp, &o.sampling, m.cfg.vocab_size);
    float *logits = malloc(sizeof(float) * m.cfg.vocab_size);
    sequence *batch[1] = {&seq};
    const int *feed = prompt;
    int n_feed = n_prompt, generated = 0, next = 0;
    double t0 = now_s(), t_prefill = 0;
    while (generated < o.n_predict) {
        if (forward(&m, batch, 1, &feed, &n_feed, 0, logits, NULL, &err)) {
            fprintf(stderr, "\nreprise generate: %s\n", err.msg);
            rc = 1;
            break;
        }
        if (generated == 0) t_prefill = now_s() - t0;
        next = sampler_sample(&smp, logits);
        printf("%s%d", generated ? " " : "", next);
        fflush(stdout);
        generated++;
        if (!o.ignore_eos && is_eos(&m.cfg, next)) break;
        feed = &next;
        n_feed = 1;
    }
    if (generated) printf("\n");
    if (rc) goto out;
    double t_all = now_s() - t0;
    fprintf(stderr, "reprise generate: %d prompt tokens in %.3f s (%.1f tok/s), %d generated in %.3f s (%.1f tok/s), "
                    "schedule %d visits over %d layers\n",
            n_prompt, t_prefill, n_prompt / (t_prefill > 0 ? t_prefill : 1e-9), generated, t_all - t_prefill,
            generated > 1 ? (generated - 1) / (t_all - t_prefill) : 0.0, s.n_visits, m.cfg.n_layers);
out:
    free(logits);
    sampler_free(&smp);
    sequence_free(&seq, &m);
    schedule_free(&s);
    model_free(&m);
    free(prompt);
    return rc;
}
