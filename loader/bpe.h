// The BPE model of a tokenizer.json: vocabulary, ranked merges, and the merge loop that turns one word into ids.
#ifndef REPRISE_BPE_H
#define REPRISE_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "loader/error.h"

// Byte-string -> id hash map (open addressing). Keys are copied.
typedef struct {
    size_t cap, n;
    struct str_slot { char *key; uint32_t len; int id; } *slots;
} str_map;

void str_map_init(str_map *m, size_t expected);
void str_map_free(str_map *m);
int str_map_put(str_map *m, const char *key, size_t len, int id);   // -1 if the key is already present
int str_map_get(const str_map *m, const char *key, size_t len);     // -1 if absent

typedef struct {
    str_map vocab;            // token text -> id
    int n_vocab;              // size of id_to_token
    char **id_to_token;       // (n_vocab) NULL for ids the model does not define
    uint32_t *token_len;      // (n_vocab)
    // merges: (left id, right id) -> rank and merged id, open addressing on a 64-bit key
    size_t merge_cap;
    struct merge_slot { uint64_t key; int rank, id; } *merges;
    int unk_id;               // -1 when none
    int byte_fallback, fuse_unk, ignore_merges;
    char *cont_prefix, *end_suffix;   // continuing_subword_prefix, end_of_word_suffix (NULL when unset)
    int byte_ids[256];        // <0xXX> token ids for byte fallback (-1 where absent)
} bpe_model;

// Reads "model" of a tokenizer.json (already parsed by cJSON, passed as void* to keep cJSON out of this header).
int bpe_load(bpe_model *b, const void *model_json, rp_err *err);
void bpe_free(bpe_model *b);

// Encodes one word (a pre-tokenized piece, valid UTF-8), appending ids to *ids (capacity grown as needed).
void bpe_encode_word(const bpe_model *b, const char *word, size_t len, int **ids, int *n, int *cap);

#endif
