// A generation session for the command line: model, tokenizer, one sequence, a sampler, and the token loop.
#include "tools/session.h"
#include "loader/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/json_file.h"
#include "tools/text_out.h"
#include "tools/common/stats.h"

int session_load(session *s, const cli_opts *o, rp_err *err) {
    memset(s, 0, sizeof *s);
    s->extra_eos = -1;
    s->dir = o->model_dir;
    if (config_load(&s->cfg, o->model_dir, err)) return -1;
    char *tp = path_join(o->model_dir, "tokenizer.json");
    if (file_exists(tp) && !(s->tok = tokenizer_load(tp, err))) {
        free(tp);
        session_close(s);
        return -1;
    }
    free(tp);
    return 0;
}

int session_start(session *s, const cli_opts *o, int ctx, rp_err *err) {
    if (cli_load_model(o, ctx, 1, &s->m, &s->sched, err)) {
        session_close(s);
        return -1;
    }
    if (sequence_init(&s->seq, &s->m, &s->sched, ctx, err)) {
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
    free(s->cached);
    tokenizer_free(s->tok);
    schedule_free(&s->sched);
    model_free(&s->m);
    memset(s, 0, sizeof *s);
}

int session_need_tokenizer(const session *s, rp_err *err) {
    if (s->tok) return 0;
    return rp_fail(err, "%s has no tokenizer.json: give token ids with --tokens instead of text", s->dir);
}

static int is_eos(const session *s, int id) {
    if (id == s->extra_eos) return 1;
    for (int i = 0; i < s->m.cfg.n_eos; i++)
        if (s->m.cfg.eos_ids[i] == id) return 1;
    return 0;
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
    sequence *batch[1] = {&s->seq};
    const int *feed = prompt + common;
    int n_feed = n - common;
    double t0 = rp_now_s();
    sampler *smp[1] = {&s->smp};
    int next;   // sampled where the backend samples (on the GPU for the CUDA backend)
    if (forward_sample(&s->m, batch, 1, &feed, &n_feed, smp, &next, NULL, err)) return -1;
    if (next < 0) return rp_fail(err, "the logits after the prompt are not finite (NaN or infinity): nothing to sample");
    memcpy(s->cached + common, feed, sizeof(int) * (size_t)n_feed);
    s->n_cached = n;
    st->n_prompt_fed = n_feed;
    st->prefill_s = rp_now_s() - t0;

    text_out out;
    if (as_text) text_out_init(&out, s->tok, prompt, n, s->stops, s->n_stops);
    size_t printed = 0;   // of out.text
    int rc = 0;
    double t1 = rp_now_s();
    for (int i = 0; i < max_new; i++) {
        st->n_generated++;
        int eos = !s->ignore_eos && is_eos(s, next);
        if (!as_text) {
            printf("%s%d", i ? " " : "", next);
            fflush(stdout);
        } else {
            if (eos ? text_out_finish(&out, err) : text_out_push(&out, next, err)) {
                rc = -1;
                break;
            }
            if (out.committed > printed) {
                fwrite(out.text + printed, 1, out.committed - printed, stdout);
                fflush(stdout);
                printed = out.committed;
            }
        }
        if (eos || (as_text && out.stopped) || i + 1 == max_new) break;
        if (kc->n_past + 1 > kc->capacity) {
            st->context_full = 1;
            break;
        }
        int fed = next;
        feed = &fed;
        n_feed = 1;
        if (forward_sample(&s->m, batch, 1, &feed, &n_feed, smp, &next, NULL, err)) {
            rc = -1;
            break;
        }
        if (next < 0) {
            rc = rp_fail(err, "the logits at generated token %d are not finite (NaN or infinity): stopped", i + 2);
            break;
        }
        s->cached[s->n_cached++] = fed;
    }
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
