// A Llama-architecture model with random BF16 weights, written in HF format for benchmarks.
#ifndef REPRISE_RANDOM_MODEL_H
#define REPRISE_RANDOM_MODEL_H

typedef struct {
    int dim, hidden, layers, heads, kv_heads, vocab, max_pos;
} random_model_shape;

// ~100M parameters: dim 768, 12 layers, GQA 12:4, vocab 32000, tied embeddings.
#define RANDOM_MODEL_100M ((random_model_shape){768, 2048, 12, 12, 4, 32000, 4096})

// Writes config.json and (when with_weights) model.safetensors into dir; returns 0 or prints why not and returns -1.
int random_model_write(const char *dir, random_model_shape s, int with_weights);
// Removes what random_model_write wrote, and dir.
void random_model_remove(const char *dir);

#endif
