// A model directory's text side, opened in one place: config.json, tokenizer.json, the chat template, and the rule
// that ends a chat reply.
#ifndef REPRISE_MODEL_DIR_H
#define REPRISE_MODEL_DIR_H

#include "loader/chat_template.h"
#include "loader/config.h"
#include "loader/error.h"
#include "loader/tokenizer.h"

typedef struct {
    const char *path;
    model_config cfg;
    tokenizer *tok;        // NULL where the directory has no tokenizer.json (and none was needed)
    chat_template ct;      // with MODEL_DIR_CHAT; else family CHAT_NONE
} model_dir;

#define MODEL_DIR_TOKENIZER 1u   // a directory without tokenizer.json is refused, naming who needs it
#define MODEL_DIR_CHAT 2u        // the chat template is read (the one `chat_template` names, when not NULL)

// Opens path's config, asked its chat template, then its tokenizer (when present, or required). who: what needs the
// tokenizer, for the error ("a sweep", "the server"). On failure nothing stays open.
int model_dir_open(model_dir *d, const char *path, unsigned need, const char *chat_template, const char *who, rp_err *err);
void model_dir_close(model_dir *d);

// What ends a chat reply: the template's end of turn as a token id when the tokenizer has it as one token (*id;
// *text NULL), else as a stop string (*text; *id -1); both none without a chat template or a tokenizer.
void model_dir_end_of_turn(const chat_template *ct, const tokenizer *tok, int *id, const char **text);

#endif
