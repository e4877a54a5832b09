// `reprise score`: log-probability of each token given the ones before it, and the perplexity.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "loader/json_file.h"
#include "loader/alloc.h"
#include "loader/tokenizer.h"
#include "engine/sampler.h"
#include "tools/cli.h"

static const char *usage =
    "usage: reprise score [-m DIR] (--tokens IDS | -p TEXT | -f FILE) [--schedule S] [--dump-logits FILE] [--json]\n"
    "Runs the tokens through the model in one pass and prints, for each token after the first,\n"
    "`position<TAB>id<TAB>log-probability`, then `perplexity<TAB>value`.\n"
    "  -m DIR              model directory (default: the built-in model)\n"
    "  --tokens IDS        token ids, e.g. 1,403,407 (at least 2)\n"
    "  -p TEXT / -f FILE   text to score, through the tokenizer (BOS added unless --no-special)\n"
    "  --no-special        do not add BOS to the text\n"
    "  --schedule S        layer schedule (default base)\n"
    "  --dump-logits FILE  write the raw logits, float32 little-endian, shape [tokens][vocab]\n"
    "  --json              print {\"tokens\", \"logprobs\", \"perplexity\"} as JSON instead\n"
    "  -c N                context length (default: the number of tokens)\n"
    "  --ubatch N          most rows of one forward step; longer inputs run in chunks (default 512)\n"
    "  --tp N              split the model over N GPUs (tensor parallel; N divides the KV heads; default 1)\n"
    "  --backend B         cpu, cuda, or auto: cuda when built in and a GPU is present (default auto)\n"
    "  -t N                threads (default: all cores)\n"
    "  --kv-dtype T        the CPU backend's KV cache: auto (default: bf16 for a BF16 model, else f32), bf16 or f32\n"
    "  --allow-unused-tensors   run a checkpoint holding tensors the model does not read (else refused)\n";

int cmd_score(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    if (cli_begin(argc, argv, usage, &o, &code)) return code;
    char *tp = path_join(o.model_dir, "tokenizer.json");
    tokenizer *tok = !o.tokens && file_exists(tp) ? tokenizer_load(tp, &err) : NULL;
    int tok_failed = !o.tokens && file_exists(tp) && !tok;
    free(tp);
    int *ids = NULL, n = 0, as_text;
    model m;
    schedule s;
    if (tok_failed || cli_prompt_ids(&o, tok, &ids, &n, &as_text, &err) ||
        (n < 2 && !o.dump_logits && rp_fail(&err, "scoring needs at least 2 tokens, the input has %d", n)) ||
        cli_load_model(&o, o.ctx ? o.ctx : n, PLAN_SCORE_LOGIT_ROWS, &m, &s, &err)) {
        fprintf(stderr, "reprise score: %s\n", err.msg);
        tokenizer_free(tok);
        free(ids);
        return 1;
    }
    tokenizer_free(tok);
    int vocab = m.cfg.vocab_size, rc = 0;
    float *logits = rp_malloc(sizeof(float) * (size_t)n * vocab);
    sequence seq;
    sequence *batch[1] = {&seq};
    const int *feed = ids;
    if (cli_check_tokens(ids, n, vocab, &err) || sequence_init(&seq, &m, &s, o.ctx ? o.ctx : n, &err)) {
        fprintf(stderr, "reprise score: %s\n", err.msg);
        rc = 1;
        goto out_model;
    }
    if (forward(&m, batch, 1, &feed, &n, 1, logits, NULL, &err)) {
        fprintf(stderr, "reprise score: %s\n", err.msg);
        rc = 1;
        goto out_seq;
    }
    double total = 0;
    double *lp = rp_malloc(sizeof(double) * n);
    for (int t = 1; t < n; t++) total += lp[t] = log_prob_of(logits + (size_t)(t - 1) * vocab, vocab, ids[t]);
    double ppl = n > 1 ? exp(-total / (n - 1)) : NAN;
    if (o.json) {
        printf("{\"tokens\": [");
        for (int t = 0; t < n; t++) printf("%s%d", t ? ", " : "", ids[t]);
        printf("], \"logprobs\": [");
        for (int t = 1; t < n; t++) printf("%s%.6f", t > 1 ? ", " : "", lp[t]);
        if (n > 1) printf("], \"perplexity\": %.6f}\n", ppl);
        else printf("], \"perplexity\": null}\n");
    } else {
        for (int t = 1; t < n; t++) printf("%d\t%d\t%.6f\n", t, ids[t], lp[t]);
        if (n > 1) printf("perplexity\t%.6f\n", ppl);
    }
    free(lp);
    if (o.dump_logits) {
        FILE *f = fopen(o.dump_logits, "wb");
        int ok = f && fwrite(logits, sizeof(float) * vocab, (size_t)n, f) == (size_t)n;
        if (f && fclose(f)) ok = 0;
        if (!ok) {
            fprintf(stderr, "reprise score: --dump-logits %s: cannot write\n", o.dump_logits);
            rc = 1;
        }
    }
out_seq:
    sequence_free(&seq, &m);
out_model:
    free(logits);
    schedule_free(&s);
    model_free(&m);
    free(ids);
    return rc;
}
