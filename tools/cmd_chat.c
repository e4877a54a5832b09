// `reprise chat`: an interactive, streaming, multi-turn conversation through the model's chat template.
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader/chat_template.h"
#include "loader/alloc.h"
#include "loader/json_file.h"
#include "tools/session.h"

static const char *synopsis =
    "usage: reprise chat [-m DIR] [--system TEXT] [--chat-template NAME] [options]\n"
    "Reads user messages from stdin and streams each reply to stdout; the conversation is kept (the KV cache is\n"
    "reused across turns). A line ending with \\ continues the message on the next line, and a paste into a terminal\n"
    "is one message. Ctrl-C stops the reply being written (at the prompt: ends the chat). When the context fills,\n"
    "the oldest turns are dropped. Commands (never sent to the model; //text sends /text): /help, /reset, /save FILE,\n"
    "/load FILE (the conversation as OpenAI-style {\"messages\": [...]} JSON), /quit or /exit.\n";

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

// Removes messages [at, at + n).
static void drop(conversation *c, int at, int n) {
    if (n <= 0) return;   // (an empty conversation has no array to move within)
    for (int i = at; i < at + n; i++) free((char *)c->m[i].content);
    memmove(c->m + at, c->m + at + n, sizeof *c->m * (size_t)(c->n - at - n));
    c->n -= n;
}

static void forget(conversation *c, int keep) { drop(c, keep, c->n - keep); }

static volatile int interrupted;   // SIGINT: the reply in progress stops (session.interrupt)
static void on_sigint(int sig) { (void)sig, interrupted = 1; }

// --- reading a message: a line, lines joined by a trailing backslash, or a bracketed paste -------------------------

#define PASTE_BEGIN "\033[200~"
#define PASTE_END "\033[201~"

typedef struct {
    char *text;
    size_t len, cap;
} buffer;

static void append(buffer *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) b->text = rp_realloc(b->text, b->cap = 2 * (b->len + n + 1));
    memcpy(b->text + b->len, s, n);
    b->text[b->len += n] = 0;
}

// The next message into *msg (rp_malloc'd): -1 at the end of input or on Ctrl-C.
static int read_message(int tty, char **line, size_t *cap, char **msg) {
    buffer b = {0};
    int pasting = 0, more;
    append(&b, "", 0);
    do {
        if (tty) fprintf(stderr, b.len || pasting ? ". " : "> ");
        ssize_t got = getline(line, cap, stdin);
        if (got < 0) {
            free(b.text);
            return -1;
        }
        char *l = *line;
        while (got && (l[got - 1] == '\n' || l[got - 1] == '\r')) l[--got] = 0;
        char *begin = strstr(l, PASTE_BEGIN), *end;
        if (begin) memmove(begin, begin + strlen(PASTE_BEGIN), strlen(begin + strlen(PASTE_BEGIN)) + 1), pasting = 1;
        if ((end = strstr(l, PASTE_END))) memmove(end, end + strlen(PASTE_END), strlen(end + strlen(PASTE_END)) + 1), pasting = 0;
        size_t n = strlen(l);
        more = pasting || (n && l[n - 1] == '\\');
        if (!pasting && n && l[n - 1] == '\\') n--;   // the continuation mark is not part of the message
        if (b.len) append(&b, "\n", 1);
        append(&b, l, n);
    } while (more);
    *msg = b.text;
    return 0;
}

// --- /save and /load ---------------------------------------------------------------------------------------------

static int save_conversation(const conversation *c, const char *path, rp_err *err) {
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "messages");
    for (int i = 0; i < c->n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", c->m[i].role);
        cJSON_AddStringToObject(m, "content", c->m[i].content);
        cJSON_AddItemToArray(list, m);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    FILE *f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f)) ok = 0;
    free(text);
    return ok ? 0 : rp_fail(err, "/save %s: cannot write: %s", path, strerror(errno));
}

static const char *role_of(const char *s) {
    static const char *const roles[] = {"system", "user", "assistant"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, roles[i])) return roles[i];
    return NULL;
}

// Replaces *c with the file's messages, checked first (a bad file leaves the conversation as it was).
static int load_conversation(conversation *c, const char *path, rp_err *err) {
    size_t len;
    char *text = read_file_all(path, 64u << 20, "conversation", &len, err);
    if (!text) return rp_wrap(err, "/load");
    cJSON *root = cJSON_ParseWithLength(text, len), *list = cJSON_GetObjectItemCaseSensitive(root, "messages");
    free(text);
    int rc = 0, i = 0;
    if (!root) rc = rp_fail(err, "/load %s: not JSON", path);
    else if (!cJSON_IsArray(list)) rc = rp_fail(err, "/load %s: no \"messages\" array", path);
    cJSON *m, *items = rc ? NULL : list;
    cJSON_ArrayForEach(m, items) {
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || !role_of(role->valuestring) || !cJSON_IsString(content)) {
            rc = rp_fail(err, "/load %s: message %d: a \"role\" (system, user or assistant) and a string \"content\"", path, i);
            break;
        }
        i++;
    }
    if (!rc) {
        forget(c, 0);
        cJSON_ArrayForEach(m, list)
            say(c, role_of(cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring),
                rp_strdup(cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring));
    }
    cJSON_Delete(root);
    return rc;
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
    // the reply's room: what -n asks (at most half the context), else a quarter of the context; older turns go first
    int reserve = o.n_predict > 0 ? (o.n_predict < ctx / 2 ? o.n_predict : ctx / 2) : ctx / 4;
    fprintf(stderr, "reprise chat: %s, template %s, context %d tokens; /help lists the commands\n", o.model_dir,
            chat_family_name(ct.family), ctx);
    struct sigaction sa = {.sa_handler = on_sigint}, old_sa;   // no SA_RESTART: Ctrl-C at the prompt ends the read
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    s.interrupt = &interrupted;
    if (tty) fputs("\033[?2004h", stderr);   // bracketed paste: a pasted block arrives marked, as one message
    char *line = NULL, *msg = NULL;
    size_t cap = 0;
    for (;; free(msg), msg = NULL) {
        interrupted = 0;
        if (read_message(tty, &line, &cap, &msg)) break;
        if (msg[0] == '/' && msg[1] != '/') {   // a command
            char *arg = msg + strcspn(msg, " \t");
            if (*arg) *arg++ = 0;
            arg += strspn(arg, " \t");
            if (!strcmp(msg, "/quit") || !strcmp(msg, "/exit")) break;
            if (!strcmp(msg, "/help"))
                fprintf(stderr, "/reset: start over (the system prompt kept); /save FILE, /load FILE: the conversation as "
                                "JSON; /quit or /exit: end. A line ending with \\ continues; //text sends /text; Ctrl-C "
                                "stops a reply.\n");
            else if (!strcmp(msg, "/reset")) forget(&conv, base_turns), fprintf(stderr, "(conversation reset)\n");
            else if ((!strcmp(msg, "/save") || !strcmp(msg, "/load")) && !*arg) fprintf(stderr, "%s needs a FILE\n", msg);
            else if (!strcmp(msg, "/save")) {
                if (save_conversation(&conv, arg, &err)) fprintf(stderr, "reprise chat: %s\n", err.msg);
                else fprintf(stderr, "(saved %d messages to %s)\n", conv.n, arg);
            } else if (!strcmp(msg, "/load")) {
                if (load_conversation(&conv, arg, &err)) fprintf(stderr, "reprise chat: %s\n", err.msg);
                else {
                    for (base_turns = 0; base_turns < conv.n && !strcmp(conv.m[base_turns].role, "system");) base_turns++;
                    fprintf(stderr, "(loaded %d messages from %s)\n", conv.n, arg);
                }
            } else fprintf(stderr, "unknown command %s (/help lists them; //text sends /text)\n", msg);
            continue;
        }
        if (!msg[0]) continue;
        say(&conv, "user", rp_strdup(msg[0] == '/' ? msg + 1 : msg));
        int *ids = NULL, n = 0, dropped = 0;
        for (;;) {   // render; while the reply has no room, drop the oldest turn (a user message and its reply)
            char *text = chat_render(&ct, conv.m, conv.n, 1);
            // the rendered text holds BOS where the template wants it, so the tokenizer's template is not applied
            int failed = tokenizer_encode(s.md.tok, text, strlen(text), 0, &ids, &n, &err);
            free(text);
            if (failed || n + reserve <= ctx || conv.n - base_turns <= 1) break;
            free(ids), ids = NULL;
            int turn = conv.n - base_turns > 2 && !strcmp(conv.m[base_turns + 1].role, "assistant") ? 2 : 1;
            drop(&conv, base_turns, turn);
            dropped += turn;
        }
        if (!ids) {
            fprintf(stderr, "reprise chat: %s\n", err.msg);
            forget(&conv, conv.n - 1);
            continue;
        }
        if (dropped)
            fprintf(stderr, "(the context of %d tokens was full: the oldest %d message(s) were dropped)\n", ctx, dropped);
        int room = ctx - n;
        if (room < 1) {
            fprintf(stderr, "reprise chat: this message (%d tokens with the system prompt) fills the context of %d on its own\n",
                    n, ctx);
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
        if (st.interrupted) fprintf(stderr, "(reply stopped: Ctrl-C)\n");
        else if (st.context_full || (max_new == room + 1 && st.n_generated == max_new))
            fprintf(stderr, "(reply stopped: the context of %d tokens is full; older turns go next time)\n", ctx);
        say(&conv, "assistant", reply);
    }
    if (tty) fputs("\033[?2004l", stderr);
    sigaction(SIGINT, &old_sa, NULL);
    free(msg);
    free(line);
    forget(&conv, 0);
    free(conv.m);
    session_close(&s);
    return rc;
}
