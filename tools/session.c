// A generation session for the command line: model, tokenizer, one sequence, a sampler, and the token loop.
#include "tools/session.h"
#include "loader/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "loader/json_file.h"
#include "tools/text_out.h"
#include "tools/common/stats.h"

int session_load(session *s, const cli_opts *o, unsigned need, rp_err *err) {
    memset(s, 0, sizeof *s);
    s->extra_eos = -1;
    return model_dir_open(&s->md, o->model_dir, need, o->chat_template, "chat", err);
}

int session_start(session *s, const cli_opts *o, int ctx, rp_err *err) {
    if (cli_load_model(o, ctx, SPEC_MAX_TOKENS + 1, &s->m, &s->sched, &s->draft_sched, err)) {
        session_close(s);
        return -1;
    }
    if (sequence_init(&s->seq, &s->m, &s->sched, ctx, err) ||
        (s->draft_sched.n_visits && spec_draft_init(&s->draft, &s->m, &s->draft_sched, ctx, o->draft_tokens, o->sampling.seed, err))) {
        session_close(s);
        return -1;
    }
    sampler_init(&s->smp, &o->sampling, s->m.cfg.vocab_size);
    s->cached = rp_malloc(sizeof(int) * (size_t)ctx);
    s->ignore_eos = o->ignore_eos;
    for (int i = 0; i < o->n_stops && s->n_stops < MAX_STOPS; i++) s->stops[s->n_stops++] = o->stops[i];
    return 0;
}

void session_close(session *s) {
    if (s->smp.work) {
        sampler_free(&s->smp);
        sequence_free(&s->seq, &s->m);
    }
    spec_draft_free(&s->draft, &s->m);
    if (s->draft_sched.n_visits) schedule_free(&s->draft_sched);
    free(s->cached);
    model_dir_close(&s->md);
    schedule_free(&s->sched);
    model_free(&s->m);
    memset(s, 0, sizeof *s);
}

int session_need_tokenizer(const session *s, rp_err *err) {
    if (s->md.tok) return 0;
    return rp_fail(err, "%s has no tokenizer.json: give token ids with --tokens instead of text", s->md.path);
}

int session_generate(session *s, const int *prompt, int n, int max_new, int as_text, char **reply, gen_stats *st,
                     rp_err *err) {
    memset(st, 0, sizeof *st);
    kv_cache *kc = &s->seq.cache;
    sampler_set_prompt(&s->smp, prompt, n);   // the penalties see this generation's prompt and what it generates
    // reuse what the cache already holds; at least one token is fed, to get fresh logits
    int common = 0;
    while (common < s->n_cached && common < n && s->cached[common] == prompt[common]) common++;
    if (common == n) common = n - 1;
    if (n > kc->capacity)
        return rp_fail(err, "context full: the prompt has %d tokens, the context holds %d (-c)", n, kc->capacity);
    kc->n_past = common;   // positions past this are simply overwritten
    s->n_cached = common;
    gen_seq g;   // its ids are drawn where the backend samples (on the GPU for the CUDA backend)
    gen_begin(&g, &s->seq, &s->smp, prompt + common, n - common, max_new > 0 ? max_new : 1);
    g.ignore_eos = s->ignore_eos, g.extra_eos = s->extra_eos;
    if (s->draft_sched.n_visits) {   // the draft holds what the target holds (or is stale, and proposes nothing)
        spec_draft_rewind(&s->draft, common);
        g.draft = &s->draft;
    }
    long steps0 = s->draft.steps, proposed0 = s->draft.proposed, accepted0 = s->draft.accepted;
    gen_seq *batch[1] = {&g};
    double t0 = rp_now_s();
    if (generate_step(&s->m, batch, 1, NULL, err) < 0) return -1;
    if (g.state == GEN_NOT_FINITE) return rp_fail(err, "the logits after the prompt are not finite (NaN or infinity): nothing to sample");
    memcpy(s->cached + common, prompt + common, sizeof(int) * (size_t)(n - common));
    s->n_cached = n;
    st->n_prompt_fed = n - common;
    st->prefill_s = rp_now_s() - t0;

    text_out out;
    if (as_text) text_out_init(&out, s->md.tok, prompt, n, s->stops, s->n_stops);
    size_t printed = 0;   // of out.text
    int rc = 0;
    double t1 = rp_now_s();
    for (int stop = 0; !stop;) {   // a step's ids (several with a draft), in order
        for (int j = 0; j < g.n_drawn && !stop; j++) {
            int id = g.drawn[j], eos = g.state == GEN_EOS && j == g.n_drawn - 1;
            if (!as_text) {
                printf("%s%d", st->n_generated ? " " : "", id);
                fflush(stdout);
            } else {
                if (eos ? text_out_finish(&out, err) : text_out_push(&out, id, err)) {
                    rc = -1, stop = 1;
                    break;
                }
                if (out.committed > printed) {
                    fwrite(out.text + printed, 1, out.committed - printed, stdout);
                    fflush(stdout);
                    printed = out.committed;
                }
            }
            st->n_generated++;
            if (as_text && out.stopped) stop = 1;
        }
        if (stop) break;
        if (s->interrupt && *s->interrupt) {   // Ctrl-C in chat: the reply so far stands, the cache holds what was fed
            st->interrupted = 1;
            break;
        }
        if (g.state != GEN_RUNNING) {
            st->context_full = g.state == GEN_CONTEXT_FULL;
            break;
        }
        int fed = g.next;   // the step feeds it, and the ids it draws but the last
        if (generate_step(&s->m, batch, 1, NULL, err) < 0) {
            rc = -1;
            break;
        }
        if (g.state == GEN_NOT_FINITE) {
            rc = rp_fail(err, "the logits at generated token %d are not finite (NaN or infinity): stopped", st->n_generated + g.n_drawn + 1);
            break;
        }
        s->cached[s->n_cached++] = fed;
        for (int j = 0; j + 1 < g.n_drawn; j++) s->cached[s->n_cached++] = g.drawn[j];
    }
    st->spec_steps = s->draft.steps - steps0, st->proposed = s->draft.proposed - proposed0;
    st->accepted = s->draft.accepted - accepted0;
    if (as_text) {
        if (rc == 0 && text_out_finish(&out, err) == 0 && out.len > printed)   // whatever the stream still held back
            fwrite(out.text + printed, 1, out.len - printed, stdout);
    }
    fflush(stdout);
    st->decode_s = rp_now_s() - t1;
    if (reply) *reply = as_text ? rp_strdup(out.text) : rp_strdup("");
    if (as_text) text_out_free(&out);
    return rc;
}
