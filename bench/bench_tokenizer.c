// Tokenizer benchmark: encode throughput in MB/s on 1 MB of mixed-script text, and the time for 1 MB over the time
// for 256 KB (about 4 when encoding is linear, 16 if it were quadratic). Prints, never asserts.
// usage: bench_tokenizer [tokenizer.json ...]   (default: ../shared's qwen3, llama3 and mistral)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_usage.h"
#include "loader/json_file.h"
#include "loader/tokenizer.h"
#include "tools/common/stats.h"

// 1 MB of text cycling through English prose, code, numbers, Chinese, Russian, Arabic, Hindi and emoji.
static char *mixed_text(size_t size) {
    static const char *parts[] = {
        "The quick brown fox jumps over the lazy dog; it wasn't the first time, and it won't be the last. ",
        "for (int i = 0; i < n; i++) { sum += x[i] * w[i]; }\n",
        "In 2024, 3.14159 x 1,000,000 = 3141590 (approximately). ",
        "人工智能正在改变世界，大型语言模型可以写诗、翻译和编程。",
        "Быстрая коричневая лиса перепрыгивает через ленивую собаку. ",
        "الذكاء الاصطناعي يغير العالم بسرعة كبيرة. ",
        "कृत्रिम बुद्धिमत्ता दुनिया को बदल रही है। ",
        "Emoji: 🦙🚀👩‍💻🇫🇷 ✨ ",
        "\n\n    indented line with   multiple   spaces\t\ttabs\r\n",
    };
    char *t = malloc(size + 256);
    size_t n = 0;
    for (unsigned i = 0; n < size; i++) {
        const char *p = parts[(i * 7) % (sizeof parts / sizeof *parts)];
        size_t l = strlen(p);
        memcpy(t + n, p, l);
        n += l;
    }
    // cut back to a whole character at or below size
    while (n > size) n--;
    while (n && ((unsigned char)t[n] & 0xc0) == 0x80) n--;
    t[n] = 0;
    return t;
}

static double encode_seconds(const tokenizer *t, const char *text, size_t len, int *n_ids) {
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        int *ids;
        rp_err err;
        double t0 = rp_now_s();
        if (tokenizer_encode(t, text, len, 0, &ids, n_ids, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        double dt = rp_now_s() - t0;
        free(ids);
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    const char *defaults[] = {SHARED_DIR "/tokenizers/qwen3/tokenizer.json", SHARED_DIR "/tokenizers/llama3/tokenizer.json",
                              SHARED_DIR "/tokenizers/mistral/tokenizer.json"};
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-')
            return bench_usage(argv[i], "usage: bench_tokenizer [tokenizer.json ...]   (default: ../shared's qwen3, llama3 "
                                        "and mistral tokenizers)\n");
    int n_paths = argc > 1 ? argc - 1 : 3;
    const char **paths = argc > 1 ? (const char **)argv + 1 : defaults;
    char *text = mixed_text(1 << 20);
    size_t len = strlen(text), quarter = len / 4;
    while (quarter && ((unsigned char)text[quarter] & 0xc0) == 0x80) quarter--;
    printf("%-50s %10s %10s %12s %14s\n", "tokenizer", "MB/s", "tokens", "bytes/token", "t(1MB)/t(256KB)");
    for (int i = 0; i < n_paths; i++) {
        if (!file_exists(paths[i])) {
            printf("%-50s skipped: file absent\n", paths[i]);
            continue;
        }
        rp_err err;
        tokenizer *t = tokenizer_load(paths[i], &err);
        if (!t) return fprintf(stderr, "%s\n", err.msg), 1;
        int n_ids, n_q;
        double full = encode_seconds(t, text, len, &n_ids), part = encode_seconds(t, text, quarter, &n_q);
        const char *name = strlen(paths[i]) > 50 ? paths[i] + strlen(paths[i]) - 50 : paths[i];
        printf("%-50s %10.2f %10d %12.2f %14.2f\n", name, len / full / 1e6, n_ids, (double)len / n_ids, full / part);
        tokenizer_free(t);
    }
    free(text);
    return 0;
}
