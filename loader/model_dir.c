// A model directory's config, tokenizer and chat template, opened in one place (model_dir.h).
#include "loader/model_dir.h"
#include "loader/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "loader/json_file.h"

int model_dir_open(model_dir *d, const char *path, unsigned need, const char *chat_template, const char *who, rp_err *err) {
    memset(d, 0, sizeof *d);
    d->path = path;
    d->ct.family = CHAT_NONE;
    if (config_load(&d->cfg, path, err)) return -1;
    if ((need & MODEL_DIR_CHAT) && chat_template_load(&d->ct, path, chat_template, err)) return -1;
    char *tp = path_join(path, "tokenizer.json");
    int present = file_exists(tp);
    if (!present && (need & MODEL_DIR_TOKENIZER)) rp_fail(err, "%s has no tokenizer.json, which %s needs", path, who);
    else if (present) d->tok = tokenizer_load(tp, err);
    free(tp);
    if ((need & MODEL_DIR_TOKENIZER || present) && !d->tok) return -1;
    return 0;
}

void model_dir_close(model_dir *d) {
    tokenizer_free(d->tok);
    d->tok = NULL;
}

void model_dir_end_of_turn(const chat_template *ct, const tokenizer *tok, int *id, const char **text) {
    *id = -1, *text = NULL;
    const char *eot = ct->family != CHAT_NONE ? chat_end_of_turn(ct) : NULL;
    if (!eot || !*eot || !tok) return;
    *id = tokenizer_token_id(tok, eot);
    if (*id < 0) *text = eot;
}
