// Chat templates, rendered natively for the families reprise recognises: ChatML (Qwen), Llama 3, Llama 2, Mistral,
// and `plain` for base models (each user message is a prompt of its own).
#ifndef REPRISE_CHAT_TEMPLATE_H
#define REPRISE_CHAT_TEMPLATE_H

#include "loader/error.h"

typedef enum { CHAT_NONE, CHAT_CHATML, CHAT_LLAMA3, CHAT_LLAMA2, CHAT_MISTRAL, CHAT_PLAIN } chat_family;

// The Jinja text of the `plain` family, as a base model's tokenizer_config.json carries it (the built-in model's
// does): BOS and the last message, nothing else. A base model has no notion of turns, and earlier problems in
// its context only confuse it, so a "conversation" is a series of independent prompts.
#define CHAT_PLAIN_JINJA "{{ bos_token }}{{ messages[-1]['content'] }}"

typedef struct {
    const char *role;      // "system", "user" or "assistant"
    const char *content;
} chat_message;

typedef struct {
    chat_family family;
    char bos[64], eos[64];   // bos_token / eos_token of tokenizer_config.json ("" when none)
} chat_template;

// Reads DIR/tokenizer_config.json and recognises its chat_template; `forced` (a --chat-template NAME, or NULL)
// overrides it. No template, or one reprise does not recognise, gives CHAT_NONE when nothing is forced.
int chat_template_load(chat_template *ct, const char *dir, const char *forced, rp_err *err);

// Names accepted by --chat-template: chatml, llama3, llama2, mistral, plain.
const char *chat_family_name(chat_family f);

// The prompt text for the conversation, ending with the assistant's header when add_generation_prompt.
// It already holds BOS where the family wants it, so encode it without the tokenizer's template.
char *chat_render(const chat_template *ct, const chat_message *msgs, int n, int add_generation_prompt);

// The text that ends an assistant turn ("<|im_end|>", "<|eot_id|>", the eos token): a stop string for chat.
const char *chat_end_of_turn(const chat_template *ct);

#endif
