// `reprise score`: log-probability of each token given the ones before it, and the perplexity.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/json_file.h"
#include "loader/alloc.h"
#include "loader/tokenizer.h"
#include "engine/sampler.h"
#include "tools/cli.h"
#include "tools/perplexity.h"

static const char *synopsis =
    "usage: reprise score [-m DIR] (--tokens IDS | -p TEXT | -f FILE) [--schedule S] [--dump-logits FILE] [--json]\n"
    "       reprise score --perplexity [-m DIR] (-f FILE | -p TEXT | --tokens IDS) [-c N] [--stride S] [--schedule \"S;S..\"]\n"
    "Runs the tokens through the model in one pass and prints, for each token after the first,\n"
    "`position<TAB>id<TAB>log-probability`, then `perplexity<TAB>value`. With --perplexity: a long text in windows\n"
    "of -c tokens every --stride tokens (the Hugging Face recipe; each token scored once, from its window's tokens\n"
    "before it), each schedule a row: the mean negative log-likelihood a token and the perplexity, with standard\n"
    "errors, and each schedule's difference from the first over the same tokens, with its paired standard error.\n";

int cmd_score(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code, json = 0, perplexity = 0, stride = 0;
    const char *dump_logits = NULL;
    const option_def options[] = {
        SHARED_FLAG("-m"), SHARED_FLAG("--revision"),
        {OPT_SHARED, "--tokens", .help = "token ids, e.g. 1,403,407 (at least 2)"},
        {OPT_SHARED, "-p", .help = "text to score, through the tokenizer (BOS added unless --no-special)"},
        {OPT_SHARED, "-f", .help = "text to score, from a file"},
        {OPT_SHARED, "--no-special", .help = "do not add BOS to the text"},
        {OPT_SHARED, "--schedule", .help = "layer schedule: base, 0-5,3-9, rys:I,J or rys:I,J,K (default base); with "
                                           "--perplexity several, ';'-separated, each a row (\"base;rys:45,52\")"},
        {OPT_TEXT, "--dump-logits", "FILE", &dump_logits, .help = "write the raw logits, float32 little-endian, shape [tokens][vocab]"},
        {OPT_SWITCH, "--json", NULL, &json, .help = "print {\"tokens\", \"logprobs\", \"perplexity\"} as JSON instead"},
        {OPT_SWITCH, "--perplexity", NULL, &perplexity,
         .help = "the text's perplexity in sliding windows, every schedule of --schedule (';'-separated) side by side"},
        {OPT_INT, "--stride", "S", &stride, 1, 1 << 30,
         .help = "--perplexity: tokens between windows' starts (default: the window, -c: windows apart)"},
        {OPT_SHARED, "-c", .help = "context length (default: the number of tokens); --perplexity: the window (default "
                                   "min(max_position_embeddings, 4096), at most the text)"},
        SHARED_FLAG("--ubatch"), SHARED_FLAG("--tp"), SHARED_FLAG("--backend"), SHARED_FLAG("-t"),
        SHARED_FLAG("--kv-dtype"), SHARED_FLAG("--weights"), SHARED_FLAG("--allow-unused-tensors"),
        OPTIONS_END,
    };
    if (cli_begin(argc, argv, synopsis, options, &o, &code)) return code;
    char *tp = path_join(o.model_dir, "tokenizer.json");
    tokenizer *tok = !o.tokens && file_exists(tp) ? tokenizer_load(tp, &err) : NULL;
    int tok_failed = !o.tokens && file_exists(tp) && !tok;
    free(tp);
    int *ids = NULL, n = 0, as_text;
    model m;
    schedule s;
    if (perplexity) {
        int rc = tok_failed || cli_prompt_ids(&o, tok, &ids, &n, &as_text, &err) ? -1 : 0;
        tokenizer_free(tok);
        if (rc) fprintf(stderr, "reprise score: %s\n", err.msg);
        else if (dump_logits) fprintf(stderr, "reprise score: --dump-logits goes without --perplexity\n"), rc = -1;
        else rc = perplexity_command(&o, ids, n, stride, json);
        free(ids);
        return rc < 0 ? 2 : rc;
    }
    if (stride) {
        fprintf(stderr, "reprise score: --stride goes with --perplexity\n");
        tokenizer_free(tok);
        return 2;
    }
    if (tok_failed || cli_prompt_ids(&o, tok, &ids, &n, &as_text, &err) ||
        (n < 2 && !dump_logits && rp_fail(&err, "scoring needs at least 2 tokens, the input has %d", n)) ||
        cli_load_model(&o, o.ctx ? o.ctx : n, PLAN_SCORE_LOGIT_ROWS, &m, &s, NULL, &err)) {
        fprintf(stderr, "reprise score: %s\n", err.msg);
        tokenizer_free(tok);
        free(ids);
        return 1;
    }
    tokenizer_free(tok);
    // The tokens go through in chunks of the plan's logit rows, each chunk's logits used (and dumped) before the next:
    // a 32k-token text of a 152k vocabulary would be 19 GB of logits at once. A row's logits are the same in any chunk.
    int vocab = m.cfg.vocab_size, rc = 0;
    float *logits = rp_malloc(sizeof(float) * (size_t)PLAN_SCORE_LOGIT_ROWS * vocab);
    double *lp = rp_malloc(sizeof(double) * n), total = 0;
    sequence seq;
    sequence *batch[1] = {&seq};
    FILE *dump = NULL;
    if (cli_check_tokens(ids, n, vocab, &err) || sequence_init(&seq, &m, &s, o.ctx ? o.ctx : n, &err)) {
        fprintf(stderr, "reprise score: %s\n", err.msg);
        rc = 1;
        goto out_model;
    }
    if (dump_logits && !(dump = fopen(dump_logits, "wb"))) {
        fprintf(stderr, "reprise score: --dump-logits %s: cannot write: %s\n", dump_logits, strerror(errno));
        rc = 1;
        goto out_seq;
    }
    for (int r0 = 0; r0 < n && !rc; r0 += PLAN_SCORE_LOGIT_ROWS) {
        int rows = n - r0 < PLAN_SCORE_LOGIT_ROWS ? n - r0 : PLAN_SCORE_LOGIT_ROWS;
        const int *feed = ids + r0;
        if (forward(&m, batch, 1, &feed, &rows, 1, logits, NULL, &err)) {
            fprintf(stderr, "reprise score: %s\n", err.msg);
            rc = 1;
            break;
        }
        for (int t = r0; t < r0 + rows && t + 1 < n; t++)   // row t predicts token t + 1
            total += lp[t + 1] = log_prob_of(logits + (size_t)(t - r0) * vocab, vocab, ids[t + 1]);
        if (dump && fwrite(logits, sizeof(float) * vocab, (size_t)rows, dump) != (size_t)rows) {
            fprintf(stderr, "reprise score: --dump-logits %s: cannot write: %s\n", dump_logits, strerror(errno));
            rc = 1;
        }
    }
    if (dump && fclose(dump) && !rc) {
        fprintf(stderr, "reprise score: --dump-logits %s: cannot write: %s\n", dump_logits, strerror(errno));
        rc = 1;
    }
    if (rc) goto out_seq;
    double ppl = n > 1 ? exp(-total / (n - 1)) : NAN;
    if (json) {
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
out_seq:
    sequence_free(&seq, &m);
out_model:
    free(lp);
    free(logits);
    schedule_free(&s);
    model_free(&m);
    free(ids);
    return rc;
}
