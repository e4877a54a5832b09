// Generated text as it becomes final: detokenization, stop strings and their hold-back.
#include "tools/text_out.h"
#include "loader/alloc.h"

#include <stdlib.h>
#include <string.h>

void text_out_init(text_out *t, const tokenizer *tok, const int *prompt, int n_prompt, const char *const *stops, int n_stops) {
    memset(t, 0, sizeof *t);
    detok_stream_init_after(&t->ds, tok, 1, prompt, n_prompt);
    t->stops = stops;
    t->n_stops = n_stops;
    t->text = rp_calloc(1, 1);
}

void text_out_free(text_out *t) {
    detok_stream_free(&t->ds);
    free(t->text);
    memset(t, 0, sizeof *t);
}

static void append(text_out *t, const char *s) {
    size_t n = strlen(s);
    t->text = rp_realloc(t->text, t->len + n + 1);
    memcpy(t->text + t->len, s, n + 1);
    t->len += n;
}

// Where the first stop string starts in the text, or -1; *hold: how many trailing bytes could still begin one.
static long find_stop(const text_out *t, size_t *hold) {
    long first = -1;
    *hold = 0;
    for (int i = 0; i < t->n_stops; i++) {
        size_t l = strlen(t->stops[i]);
        const char *hit = l ? memmem(t->text, t->len, t->stops[i], l) : NULL;
        if (hit && (first < 0 || hit - t->text < first)) first = hit - t->text;
        for (size_t k = l ? l - 1 : 0; k > 0; k--)   // the longest proper prefix of the stop that ends the text
            if (k <= t->len && memcmp(t->text + t->len - k, t->stops[i], k) == 0) {
                if (k > *hold) *hold = k;
                break;
            }
    }
    return first;
}

int text_out_push(text_out *t, int id, rp_err *err) {
    if (t->stopped) return 0;
    char *piece = detok_stream_push(&t->ds, id, err);
    if (!piece) return -1;
    append(t, piece);
    free(piece);
    size_t hold;
    long stop = find_stop(t, &hold);
    if (stop >= 0) {
        t->len = (size_t)stop, t->text[t->len] = 0, t->stopped = 1;
        t->committed = t->len;
    } else if (t->len - hold > t->committed)
        t->committed = t->len - hold;
    return 0;
}

int text_out_finish(text_out *t, rp_err *err) {
    if (t->stopped) return 0;
    char *rest = detok_stream_flush(&t->ds, err);
    if (!rest) return -1;
    append(t, rest);
    free(rest);
    size_t hold;
    long stop = find_stop(t, &hold);   // the flushed tail may complete a stop string
    if (stop >= 0) t->len = (size_t)stop, t->text[t->len] = 0, t->stopped = 1;
    t->committed = t->len;
    return 0;
}
