// Fuzz target: config.json (mode 0: the input) and generation_config.json (mode 1: the input, beside a valid
// config.json). Loading must fail with a message or give a config whose sizes a model could be built from.
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "loader/config.h"

static const char good[] = "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":4,"
                           "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":96,\"max_position_embeddings\":64}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *dir = fuzz_dir();
    if (data[0] % 2 == 0) {
        fuzz_write("config.json", data + 1, size - 1);
        fuzz_write("generation_config.json", "{}", 2);
    } else {
        fuzz_write("config.json", good, sizeof good - 1);
        fuzz_write("generation_config.json", data + 1, size - 1);
    }
    model_config c;
    rp_err err;
    if (config_load(&c, dir, &err) == 0) {
        if (c.dim < 1 || c.n_layers < 1 || c.n_heads < 1 || c.n_kv_heads < 1 || c.head_dim < 2 || c.vocab_size < 1 ||
            c.n_heads % c.n_kv_heads || c.max_pos < 1 || c.n_eos < 0 || c.n_eos > MAX_EOS_IDS)
            abort();   // accepted, yet no model could be built from it
        for (int i = 0; i < c.n_eos; i++)
            if (c.eos_ids[i] < 0 || c.eos_ids[i] >= c.vocab_size) abort();
        double *inv = malloc(sizeof(double) * (size_t)(c.head_dim / 2));
        config_rope_inv_freq(&c, inv);
        free(inv);
    } else if (!err.msg[0]) abort();   // refused without saying why
    return 0;
}

int fuzz_run_check(long inputs) { return (void)inputs, 0; }
