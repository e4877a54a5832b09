// Chat templates: each family renders a conversation exactly as its Jinja template does, and is recognised from
// tokenizer_config.json or forced by name.
#include "loader/chat_template.h"
#include "loader/json_file.h"
#include "tests/test_util.h"

static const chat_message conv[] = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello! "}, {"user", " 2+2?"}};

static void expect_render(chat_family f, const char *bos, const char *eos, const chat_message *m, int n, const char *want) {
    chat_template ct = {.family = f};
    snprintf(ct.bos, sizeof ct.bos, "%s", bos);
    snprintf(ct.eos, sizeof ct.eos, "%s", eos);
    char *got = chat_render(&ct, m, n, 1);
    CHECK(strcmp(got, want) == 0, "%s:\n got: '%s'\nwant: '%s'", chat_family_name(f), got, want);
    free(got);
}

static void families_render_like_their_templates(void) {
    expect_render(CHAT_CHATML, "", "<|im_end|>", conv, 4,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
                  "Hello! <|im_end|>\n<|im_start|>user\n 2+2?<|im_end|>\n<|im_start|>assistant\n");
    // Llama 3 trims each message
    expect_render(CHAT_LLAMA3, "<|begin_of_text|>", "<|eot_id|>", conv, 4,
                  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                  "Hello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    // Llama 2: system inside the first [INST], BOS before each user turn, EOS after each answer
    expect_render(CHAT_LLAMA2, "<s>", "</s>", conv, 4,
                  "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] 2+2? [/INST]");
    // Mistral v0.1: one BOS, no system role (put before the first user message), no trimming
    expect_render(CHAT_MISTRAL, "<s>", "</s>", conv, 4, "<s>[INST] Be brief.\n\nHi [/INST]Hello! </s>[INST]  2+2? [/INST]");
    expect_render(CHAT_MISTRAL, "<s>", "</s>", conv + 1, 1, "<s>[INST] Hi [/INST]");
    // plain: BOS and the last message only (a base model's prompts are independent)
    expect_render(CHAT_PLAIN, "<s>", "</s>", conv, 4, "<s> 2+2?");
    expect_render(CHAT_PLAIN, "<s>", "</s>", conv + 1, 1, "<s>Hi");
}

static void templates_are_recognised_or_forced(void) {
    struct {
        const char *dir;
        chat_family want;
    } cases[] = {{"qwen3", CHAT_CHATML}, {"llama3", CHAT_LLAMA3}, {"llama3_1", CHAT_LLAMA3}, {"mistral", CHAT_NONE}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/tokenizers/%s", SHARED_DIR, cases[i].dir);
        if (!file_exists(SHARED_DIR "/tokenizers/qwen3/tokenizer_config.json")) {
            SKIP("%s absent", dir);
            break;
        }
        chat_template ct;
        rp_err err;
        CHECK(chat_template_load(&ct, dir, NULL, &err) == 0, "%s", err.msg);
        CHECK(ct.family == cases[i].want, "%s: recognised as %s", cases[i].dir, chat_family_name(ct.family));
    }
    chat_template ct;
    rp_err err;
    if (file_exists(SHARED_DIR "/tokenizers/llama3/tokenizer_config.json"))
        CHECK(chat_template_load(&ct, SHARED_DIR "/tokenizers/llama3", NULL, &err) == 0 && !strcmp(ct.bos, "<|begin_of_text|>"),
              "llama3 bos '%s'", ct.bos);
    // the built-in model carries the plain template, so `reprise chat` works without -m
    CHECK(chat_template_load(&ct, DEFAULT_MODEL_DIR, NULL, &err) == 0 && ct.family == CHAT_PLAIN && !strcmp(ct.bos, "<s>"),
          "built-in model: %s", chat_family_name(ct.family));
    CHECK(chat_template_load(&ct, "/nonexistent", "plain", &err) == 0 && ct.family == CHAT_PLAIN, "forced plain");
    CHECK(chat_template_load(&ct, "/nonexistent", "llama2", &err) == 0 && ct.family == CHAT_LLAMA2, "forced llama2");
    CHECK(chat_template_load(&ct, "/nonexistent", "alpaca", &err) != 0 && strstr(err.msg, "--chat-template alpaca"),
          "unknown name: '%s'", err.msg);
}

int main(void) {
    RUN(families_render_like_their_templates);
    RUN(templates_are_recognised_or_forced);
    return TEST_EXIT();
}
