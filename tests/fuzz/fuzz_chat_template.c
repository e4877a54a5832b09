// Fuzz target: tokenizer_config.json and the chat template renderer. The first byte picks a forced family (or
// none); the rest is tokenizer_config.json. Loading must fail with a message or give a template that renders a
// conversation (system, user, assistant, user) to a string that holds every message's text.
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "loader/chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *forced[] = {NULL, "chatml", "llama3", "llama2", "mistral", "plain"};
    fuzz_write("tokenizer_config.json", data + 1, size - 1);
    chat_template ct;
    rp_err err;
    if (chat_template_load(&ct, fuzz_dir(), forced[data[0] % 6], &err)) return 0;
    chat_message msgs[] = {{"system", "Be brief."}, {"user", "12+35="}, {"assistant", "47"}, {"user", "9*9="}};
    const int starts[] = {3, 0, 0}, counts[] = {1, 2, 4};   // [user], [system, user], the whole conversation
    for (int c = 0; c < 3; c++) {
        char *s = chat_render(&ct, msgs + starts[c], counts[c], 1);
        if (!s || !strstr(s, msgs[starts[c] + counts[c] - 1].content)) abort();   // the last message is always there
        free(s);
    }
    (void)chat_end_of_turn(&ct);
    return 0;
}

int fuzz_run_check(long inputs) { return (void)inputs, 0; }
