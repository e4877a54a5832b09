// `reprise chat`: an interactive, streaming, multi-turn conversation through the model's chat template.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader/chat_template.h"
#include "loader/alloc.h"
#include "tools/session.h"

static const char *synopsis =
    "usage: reprise chat [-m DIR] [--system TEXT] [--chat-template NAME] [options]\n"
    "Reads a user message per line from stdin and streams each reply to stdout. The conversation is kept\n"
    "(the KV cache is reused across turns). Lines /reset (start over) and /exit (or end of input) are commands.\n";

static const option_def options[] = {
    SHARED_FLAG("-m"), SHARED_FLAG("--revision"),
    {OPT_SHARED, "--system", .help = "system prompt"},
    {OPT_SHARED, "--chat-template",
     .help = "chatml, llama3, llama2, mistral, or plain (a base model: each line is a prompt of its own, BOS + the "
             "line) (default: recognised from tokenizer_config.json)"},
    {OPT_SHARED, "-n", .help = "most tokens per reply (default: until the end of the turn or a full context)"},
    {OPT_SHARED, "-c", .help = "context length (default: max_position_embeddings, at most 4096)"},
    SHARED_FLAG("--ubatch"), SHARED_FLAG("--tp"),
    {OPT_SHARED, "--stop", .help = "also end a reply at STRING (repeatable)"},
    SHARED_FLAG("--schedule"), SHARED_FLAG("--draft"), SHARED_FLAG("--draft-tokens"),
    SHARED_FLAG("--temp"), SHARED_FLAG("--top-k"), SHARED_FLAG("--top-p"), SHARED_FLAG("--min-p"),
    SHARED_FLAG("--seed"),
    {.kind = OPT_HEADING, .flag = "penalties (over each reply's prompt):"},
    SHARED_FLAG("--repeat-penalty"), SHARED_FLAG("--presence-penalty"), SHARED_FLAG("--frequency-penalty"),
    SHARED_FLAG("--backend"), SHARED_FLAG("-t"), SHARED_FLAG("--kv-dtype"), SHARED_FLAG("--weights"), SHARED_FLAG("--allow-unused-tensors"),
    OPTIONS_END,
};

typedef struct {
    chat_message *m;
    int n, cap;
} conversation;

static void say(conversation *c, const char *role, char *content) {
    if (c->n == c->cap) c->m = rp_realloc(c->m, sizeof *c->m * (size_t)(c->cap = c->cap ? c->cap * 2 : 8));
    c->m[c->n++] = (chat_message){.role = role, .content = content};
}

static void forget(conversation *c, int keep) {
    for (int i = keep; i < c->n; i++) free((char *)c->m[i].content);
    c->n = keep;
}

int cmd_chat(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    if (cli_begin(argc, argv, synopsis, options, &o, &code))
        return code;
    session s;
    if (session_load(&s, &o, MODEL_DIR_CHAT, &err)) {
        fprintf(stderr, "reprise chat: %s\n", err.msg);
        return 2;
    }
    const chat_template ct = s.md.ct;
    if (ct.family == CHAT_NONE) {
        fprintf(stderr, "reprise chat: %s has no chat template reprise recognises; name one with --chat-template "
                        "(chatml, llama3, llama2, mistral, plain)\n", o.model_dir);
        session_close(&s);
        return 2;
    }
    int ctx = cli_context(&o, &s.md.cfg, 0, NULL);   // said below
    if (session_need_tokenizer(&s, &err) || session_start(&s, &o, ctx, &err)) {
        session_close(&s);
        fprintf(stderr, "reprise chat: %s\n", err.msg);
        return 1;
    }
    // the template's end of turn ends a reply, as a token when it is one, else as text
    const char *eot_text;
    model_dir_end_of_turn(&ct, s.md.tok, &s.extra_eos, &eot_text);
    if (eot_text && s.n_stops < MAX_STOPS) s.stops[s.n_stops++] = eot_text;

    if (o.system && ct.family == CHAT_PLAIN)
        fprintf(stderr, "reprise chat: the plain template has no system prompt: --system is not used\n");
    conversation conv = {0};
    if (o.system) say(&conv, "system", rp_strdup(o.system));
    int base_turns = conv.n, rc = 0, tty = isatty(0);
    fprintf(stderr, "reprise chat: %s, template %s, context %d tokens; /reset starts over, /exit ends\n", o.model_dir,
            chat_family_name(ct.family), ctx);
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (tty) fprintf(stderr, "> ");
        ssize_t got = getline(&line, &cap, stdin);
        if (got < 0) break;
        while (got && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (!strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            forget(&conv, base_turns);
            fprintf(stderr, "(conversation reset)\n");
            continue;
        }
        if (!got) continue;
        say(&conv, "user", rp_strdup(line));
        char *text = chat_render(&ct, conv.m, conv.n, 1);
        int *ids, n;
        // the rendered text holds BOS where the template wants it, so the tokenizer's template is not applied
        if (tokenizer_encode(s.md.tok, text, strlen(text), 0, &ids, &n, &err)) {
            fprintf(stderr, "reprise chat: %s\n", err.msg);
            free(text);
            forget(&conv, conv.n - 1);
            continue;
        }
        free(text);
        int room = ctx - n;
        if (room < 1) {
            fprintf(stderr, "reprise chat: the conversation (%d tokens) fills the context of %d; /reset to start over\n", n, ctx);
            free(ids);
            forget(&conv, conv.n - 1);
            continue;
        }
        char *reply = NULL;
        gen_stats st;
        int max_new = o.n_predict >= 0 && o.n_predict < room + 1 ? o.n_predict : room + 1;
        if (session_generate(&s, ids, n, max_new, 1, &reply, &st, &err)) {
            fprintf(stderr, "\nreprise chat: %s\n", err.msg);
            rc = 1;
            free(ids);
            break;
        }
        free(ids);
        printf("\n");
        fflush(stdout);
        if (st.context_full || (max_new == room + 1 && st.n_generated == max_new))
            fprintf(stderr, "(reply stopped: the context of %d tokens is full; /reset to start over)\n", ctx);
        say(&conv, "assistant", reply);
    }
    free(line);
    forget(&conv, 0);
    free(conv.m);
    session_close(&s);
    return rc;
}
