// A generation session for the command line: model, tokenizer, one sequence, a sampler, and the token loop.
#include "tools/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader/json_file.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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
    s->cached = malloc(sizeof(int) * (size_t)ctx);
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

// Where the first stop string starts in text, or -1. *hold: how many trailing bytes could still begin one.
static long find_stop(const session *s, const char *text, size_t n, size_t *hold) {
    long first = -1;
    *hold = 0;
    for (int i = 0; i < s->n_stops; i++) {
        const char *hit = memmem(text, n, s->stops[i], strlen(s->stops[i]));
        if (hit && (first < 0 || hit - text < first)) first = hit - text;
        size_t l = strlen(s->stops[i]);
        for (size_t k = l - 1; k > 0; k--)   // longest proper prefix of the stop that ends the text
            if (k <= n && memcmp(text + n - k, s->stops[i], k) == 0) {
                if (k > *hold) *hold = k;
                break;
            }
    }
    return first;
}

static void append(char **dst, size_t *len, const char *s, size_t n) {
    *dst = realloc(*dst, *len + n + 1);
    memcpy(*dst + *len, s, n);
    *len += n;
    (*dst)[*len] = 0;
}

int session_generate(session *s, const int *prompt, int n, int max_new, int as_text, char **reply, gen_stats *st,
                     rp_err *err) {
    memset(st, 0, sizeof *st);
    kv_cache *kc = &s->seq.cache;
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
    double t0 = now_s();
    sampler *smp[1] = {&s->smp};
    int next;   // sampled where the backend samples (on the GPU for the CUDA backend)
    if (forward_sample(&s->m, batch, 1, &feed, &n_feed, smp, &next, NULL, err)) return -1;
    if (next < 0) return rp_fail(err, "the logits after the prompt are not finite (NaN or infinity): nothing to sample");
    memcpy(s->cached + common, feed, sizeof(int) * (size_t)n_feed);
    s->n_cached = n;
    st->n_prompt_fed = n_feed;
    st->prefill_s = now_s() - t0;

    detok_stream ds;
    if (as_text) detok_stream_init(&ds, s->tok, 1);
    char *text = NULL;         // the reply so far, and how much of it is printed
    size_t text_len = 0, printed = 0;
    int rc = 0, stopped = 0;
    double t1 = now_s();
    for (int i = 0; i < max_new && !stopped; i++) {
        st->n_generated++;
        int eos = !s->ignore_eos && is_eos(s, next);
        if (!as_text) {
            printf("%s%d", i ? " " : "", next);
            fflush(stdout);
        } else {
            char *piece = eos ? detok_stream_flush(&ds, err) : detok_stream_push(&ds, next, err);
            if (!piece) {
                rc = -1;
                break;
            }
            append(&text, &text_len, piece, strlen(piece));
            free(piece);
            size_t hold;
            long stop = find_stop(s, text, text_len, &hold);
            size_t upto = stop >= 0 ? (size_t)stop : text_len - hold;
            if (upto > printed) {
                fwrite(text + printed, 1, upto - printed, stdout);
                fflush(stdout);
                printed = upto;
            }
            if (stop >= 0) text_len = (size_t)stop, text[text_len] = 0, stopped = 1;
        }
        if (eos || stopped || i + 1 == max_new) break;
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
        if (!stopped && rc == 0) {   // whatever the stream still held back
            char *rest = detok_stream_flush(&ds, err);
            if (rest) append(&text, &text_len, rest, strlen(rest)), free(rest);
            if (text_len > printed) fwrite(text + printed, 1, text_len - printed, stdout);
        }
        detok_stream_free(&ds);
    }
    fflush(stdout);
    st->decode_s = now_s() - t1;
    if (reply) *reply = text ? text : strdup("");
    else free(text);
    return rc;
}
