// Chat templates, rendered natively for the families reprise recognises: ChatML (Qwen), Llama 3, Llama 2, Mistral.
//
// tokenizer_config.json carries a Jinja template. Rather than run Jinja, reprise recognises the family by the
// markers the template writes and renders it the way those templates do (HF's Qwen, Llama-3 and Llama-2-chat
// templates, and Mistral-Instruct v0.1's).
#include "loader/chat_template.h"
#include "loader/alloc.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/json_file.h"

static const char *names[] = {"none", "chatml", "llama3", "llama2", "mistral", "plain"};

const char *chat_family_name(chat_family f) { return names[f]; }

static void token_string(const cJSON *cfg, const char *key, char *out, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");   // AddedToken form
    snprintf(out, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

int chat_template_load(chat_template *ct, const char *dir, const char *forced, rp_err *err) {
    memset(ct, 0, sizeof *ct);
    char *path = path_join(dir, "tokenizer_config.json");
    cJSON *cfg = file_exists(path) ? json_parse_file(path, err) : NULL;
    int rc = 0;
    if (file_exists(path) && !cfg) rc = -1;
    if (cfg) {
        token_string(cfg, "bos_token", ct->bos, sizeof ct->bos);
        token_string(cfg, "eos_token", ct->eos, sizeof ct->eos);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsArray(t)) t = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(t, 0), "template");   // named list
        const char *s = cJSON_IsString(t) ? t->valuestring : "";
        if (strstr(s, "<|im_start|>")) ct->family = CHAT_CHATML;
        else if (strstr(s, "<|start_header_id|>")) ct->family = CHAT_LLAMA3;
        else if (strstr(s, "[INST]") && strstr(s, "<<SYS>>")) ct->family = CHAT_LLAMA2;
        else if (strstr(s, "[INST]")) ct->family = CHAT_MISTRAL;
        else if (!strcmp(s, CHAT_PLAIN_JINJA)) ct->family = CHAT_PLAIN;
    }
    if (!rc && forced) {
        ct->family = CHAT_NONE;
        for (int f = CHAT_CHATML; f <= CHAT_PLAIN; f++)
            if (!strcmp(forced, names[f])) ct->family = (chat_family)f;
        if (ct->family == CHAT_NONE)
            rc = rp_fail(err, "--chat-template %s: unknown template (known: chatml, llama3, llama2, mistral, plain)", forced);
    }
    cJSON_Delete(cfg);
    free(path);
    return rc;
}

typedef struct {
    char *p;
    size_t n, cap;
} text;

static void add(text *t, const char *s) {
    size_t l = strlen(s);
    if (t->n + l + 1 > t->cap) {
        t->cap = (t->n + l + 1) * 2;
        t->p = rp_realloc(t->p, t->cap);
    }
    memcpy(t->p + t->n, s, l + 1);
    t->n += l;
}

// Jinja's `trim`: whitespace off both ends.
static void add_trimmed(text *t, const char *s) {
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\n' || s[l - 1] == '\t' || s[l - 1] == '\r')) l--;
    char *c = rp_strndup(s, l);
    add(t, c);
    free(c);
}

char *chat_render(const chat_template *ct, const chat_message *m, int n, int gen) {
    text t = {0};
    add(&t, "");
    const char *system = n && !strcmp(m[0].role, "system") ? m[0].content : NULL;
    switch (ct->family) {
    case CHAT_CHATML:
        for (int i = 0; i < n; i++) {
            add(&t, "<|im_start|>"), add(&t, m[i].role), add(&t, "\n"), add(&t, m[i].content), add(&t, "<|im_end|>\n");
        }
        if (gen) add(&t, "<|im_start|>assistant\n");
        break;
    case CHAT_LLAMA3:
        add(&t, ct->bos);
        for (int i = 0; i < n; i++) {
            add(&t, "<|start_header_id|>"), add(&t, m[i].role), add(&t, "<|end_header_id|>\n\n");
            add_trimmed(&t, m[i].content), add(&t, "<|eot_id|>");
        }
        if (gen) add(&t, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_LLAMA2:
    case CHAT_MISTRAL: {
        // Llama 2 folds the system prompt into the first user turn inside <<SYS>>; Mistral has no system role,
        // so it is put in front of the first user message.
        int first_user = 1;
        if (ct->family == CHAT_MISTRAL) add(&t, ct->bos);
        for (int i = system ? 1 : 0; i < n; i++) {
            if (!strcmp(m[i].role, "user")) {
                if (ct->family == CHAT_LLAMA2) add(&t, ct->bos);
                add(&t, "[INST] ");
                // Llama 2 strips the whole content, <<SYS>> block included; Mistral strips nothing
                text content = {0};
                add(&content, "");
                if (first_user && system) {
                    if (ct->family == CHAT_LLAMA2) add(&content, "<<SYS>>\n"), add(&content, system), add(&content, "\n<</SYS>>\n\n");
                    else add(&content, system), add(&content, "\n\n");
                }
                add(&content, m[i].content);
                if (ct->family == CHAT_LLAMA2) add_trimmed(&t, content.p);
                else add(&t, content.p);
                free(content.p);
                add(&t, " [/INST]");
                first_user = 0;
            } else {
                if (ct->family == CHAT_LLAMA2) add(&t, " "), add_trimmed(&t, m[i].content), add(&t, " ");
                else add(&t, m[i].content);
                add(&t, ct->eos);
            }
        }
        break;
    }
    case CHAT_PLAIN:
        add(&t, ct->bos);
        if (n) add(&t, m[n - 1].content);
        break;
    case CHAT_NONE:
        for (int i = 0; i < n; i++) add(&t, m[i].content);
        break;
    }
    return t.p;
}

const char *chat_end_of_turn(const chat_template *ct) {
    switch (ct->family) {
    case CHAT_CHATML: return "<|im_end|>";
    case CHAT_LLAMA3: return "<|eot_id|>";
    default: return ct->eos[0] ? ct->eos : "</s>";
    }
}
