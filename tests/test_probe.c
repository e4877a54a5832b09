// Probe scoring against hand-computed cases: RYS's math partial credit, EQ-Bench parsing and confidence, jsonl matches.
#include "tests/test_util.h"
#include <unistd.h>

#include "tools/sweep/probe.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

static void math_partial_credit(void) {
    CHECK(NEAR(math_score("123", "123"), 1.0), "exact");
    // "90" is right-padded to "900": (1 - 800/900) * (1 - 1/3) = 2/27
    CHECK(NEAR(math_score("100", "90"), 2.0 / 27), "%.9f", math_score("100", "90"));
    CHECK(NEAR(math_score("596252164", "596252000"), 1 - 164.0 / 596252164), "%.12f", math_score("596252164", "596252000"));
    CHECK(NEAR(math_score("5", "50"), 0.5), "5 vs 50: %.9f", math_score("5", "50"));   // 50 vs 50, half for the extra digit
    CHECK(NEAR(math_score("0", "0"), 0.0), "both zero");
    CHECK(NEAR(math_score("7", "007"), 1.0), "leading zeros are not digits of the integer");
    // 20 digits overflow 64-bit integers; the score is still computed (as RYS's Python floats round it)
    CHECK(fabs(math_score("100000000000000000000", "50000000000000000000") - 0.2 * (1 - 1.0 / 21)) < 1e-12, "21 vs 20 digits (5e19 pads to 5e20): %.12f",
          math_score("100000000000000000000", "50000000000000000000"));
    // the best over every run of digits: 12 -> "120" (score 0.650...), 123 -> 1
    CHECK(NEAR(math_reply_score("I think 12, no, 123.", "123"), 1.0), "best run");
    CHECK(NEAR(math_reply_score("about 12", "123"), (1 - 3.0 / 123) * (2.0 / 3)), "%.9f", math_reply_score("about 12", "123"));
    CHECK(NEAR(math_reply_score("no idea", "123"), 0.0), "no digits");
}

static void eq_parse_and_confidence(void) {
    char *emo[4] = {"Anger", "Joy", "Fear", "Calm"};
    double ref[4] = {1, 2, 3, 4}, conf;
    const char *first = "First pass scores:\nAnger: 1\nJoy: 2\nFear: 3\nCalm: 4\n";
    CHECK(NEAR(eq_reply_score(first, emo, ref, &conf), 0.9) && NEAR(conf, 0.8), "first pass only: 0.8 * 1 + 0.2 * 0.5");
    const char *both = "First pass scores:\nAnger: 1\nJoy: 2\nFear: 3\nCalm: 4\nCritique: fine\nRevised scores:\nAnger: 1\nJoy: 2\nFear: 3\nCalm: 4\n";
    CHECK(NEAR(eq_reply_score(both, emo, ref, &conf), 1.0) && NEAR(conf, 1.0), "both sections");
    const char *revised = "Revised scores:\nanger: 2\nJOY: 2\nFear: 3\nCalm: 4\n";   // names match case-insensitively
    CHECK(NEAR(eq_reply_score(revised, emo, ref, &conf), 0.9 * (1 - 1.0 / 40) + 0.1 * 0.5) && NEAR(conf, 0.9), "revised only");
    // four loose numbers: (5,5,5,5) is 10 away from the reference: 0.5 * 0.75 + 0.5 * 0.5
    CHECK(NEAR(eq_reply_score("maybe 5, 5, 5 and 5", emo, ref, &conf), 0.625) && NEAR(conf, 0.5), "four numbers");
    // two numbers: (3,4,5,5), 7 away: confidence 2/8
    CHECK(NEAR(eq_reply_score("3 then 4", emo, ref, &conf), 0.25 * (1 - 7.0 / 40) + 0.75 * 0.5), "two numbers: %.9f",
          eq_reply_score("3 then 4", emo, ref, &conf));
    CHECK(NEAR(eq_reply_score("I cannot say.", emo, ref, &conf), 0.5) && conf == 0, "nothing parses");
    CHECK(NEAR(eq_reply_score("scores 11 and 12", emo, ref, &conf), 0.5), "numbers above 10 do not count");
}

static void jsonl_matching(void) {
    CHECK(jsonl_match(MATCH_EXACT, "  Paris is the capital", "Paris"), "exact: starts with");
    CHECK(!jsonl_match(MATCH_EXACT, "The answer: Paris", "Paris"), "exact: must start with");
    CHECK(jsonl_match(MATCH_NUMERIC, "about 3.50 units", "3.5"), "numeric");
    CHECK(!jsonl_match(MATCH_NUMERIC, "2 and 3.5", "3.5"), "numeric: the first number counts");
    CHECK(jsonl_match(MATCH_NUMERIC, "-4", "-4.0"), "numeric: sign");
    CHECK(jsonl_match(MATCH_REGEX, " Yes!", "^\\s*(yes|Yes)"), "regex");
    CHECK(!jsonl_match(MATCH_REGEX, "no", "^\\s*(yes|Yes)"), "regex: no match");
}

static void bad_probe_files_are_named(void) {
    char *tmp = make_temp_dir("probe");
    char path[600];
    snprintf(path, sizeof path, "%s/p.jsonl", tmp);
    struct {
        const char *spec_kind, *content, *mention;
    } cases[] = {
        {"jsonl", "{\"prompt\": \"a\", \"answer\": \"b\"}\n{\"prompt\": 3}\n", "line 2"},
        {"jsonl", "{\"prompt\": \"a\", \"answer\": \"b\", \"match\": \"fuzzy\"}\n", "'fuzzy'"},
        {"jsonl", "{\"prompt\": \"a\", \"answer\": \"(\", \"match\": \"regex\"}\n", "not a valid regex"},
        {"jsonl", "{\"prompt\": \"a\"", "malformed JSON"},
        {"mc", "{\"prompt\": \"a\", \"options\": [\"x\", \"y\"], \"answer\": 2}\n", "index"},
        {"math", "{\"0\": {\"question\": \"q\", \"answer\": -1}}", "non-negative integer"},
        {"math", "{\"0\": {\"question\": \"q\", \"answer\": 1e5}}", "no exponent"},
        {"eq", "{\"0\": {\"prompt\": \"p\", \"reference_answer\": {\"emotion1\": \"a\"}}}", "emotion1..4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *f = fopen(path, "w");
        fputs(cases[i].content, f);
        fclose(f);
        char spec[700];
        snprintf(spec, sizeof spec, "%s:%s", cases[i].spec_kind, path);
        probe p;
        rp_err err = {{0}};
        CHECK(probe_load(&p, spec, 0, 0, 0, &err) != 0 && strstr(err.msg, cases[i].mention), "case %zu: '%s' lacks '%s'", i,
              err.msg, cases[i].mention);
    }
    probe p;
    rp_err err;
    CHECK(probe_load(&p, "trivia", 0, 0, 0, &err) != 0 && strstr(err.msg, "unknown kind"), "unknown kind: %s", err.msg);
    CHECK(probe_load(&p, "math", 0, 9, 1, &err) == 0 && p.n_items == 9, "generated math");
    if (p.n_items == 9) {
        CHECK(strstr(p.items[0].prompt, "square root") && strstr(p.items[1].prompt, "cube root"), "kinds of generated questions");
        probe_free(&p);
    }
    remove_tree(tmp);
    free(tmp);
}

// RYS's math_16.json has 28-digit answers: each is kept digit for digit (a JSON number is a double, 15-17 digits):
// the database, results.csv and --score loglik (the answer's tokens) see the true number. Keys named "answer"
// inside questions do not confuse it.
static void math_answers_keep_every_digit(void) {
    char *tmp = make_temp_dir("probe");
    char path[600];
    snprintf(path, sizeof path, "%s/m.json", tmp);
    FILE *f = fopen(path, "w");
    fputs("{\"a\": {\"question\": \"say \\\"answer\\\": 5\", \"answer\": 6201399810632809383082905801},\n"
          " \"b\": {\"answer\" : 12, \"question\": \"{\\\"answer\\\": [1]}\"}}", f);
    fclose(f);
    char spec[700];
    snprintf(spec, sizeof spec, "math:%s", path);
    probe p;
    rp_err err;
    CHECK(probe_load(&p, spec, 0, 0, 0, &err) == 0, "%s", err.msg);
    if (p.n_items == 2) {
        CHECK(!strcmp(p.items[0].answer, "6201399810632809383082905801"), "28 digits became %s", p.items[0].answer);
        CHECK(!strcmp(p.items[1].answer, "12"), "second answer %s", p.items[1].answer);
        CHECK(NEAR(probe_score_reply(&p, &p.items[0], "It is 6201399810632809383082905801."), 1.0), "the exact reply");
        CHECK(probe_score_reply(&p, &p.items[0], "6201399811632809383082905801") < 1.0, "a digit off scores 1");
        probe_free(&p);
    } else CHECK(0, "%d items", p.n_items);
    remove_tree(tmp);
    free(tmp);
}

// arith never asks for 0 (RYS's partial credit scores any reply to an answer of 0 as 0): 3,000 items, each answer
// right for its question and none 0.
static void arith_items_have_scoreable_answers(void) {
    probe p;
    rp_err err;
    CHECK(probe_load(&p, "arith", 3000, 3000, 7, &err) == 0, "%s", err.msg);
    int zero = 0, wrong = 0;
    for (int i = 0; i < p.n_items; i++) {
        unsigned long long a, b, want;
        char op;
        if (sscanf(p.items[i].prompt, "%llu%c%llu=", &a, &op, &b) != 3) {
            wrong++;
            continue;
        }
        want = op == '*' ? a * b : a + b;
        zero += !strcmp(p.items[i].answer, "0");
        wrong += strtoull(p.items[i].answer, NULL, 10) != want;
        if (i < 50) CHECK(NEAR(probe_score_reply(&p, &p.items[i], p.items[i].answer), 1.0), "%s scores its own answer < 1", p.items[i].prompt);
    }
    CHECK(zero == 0 && wrong == 0, "%d answers of 0, %d wrong", zero, wrong);
    probe_free(&p);
}

// BIG-Bench Hard: its task format and a jsonl of the same objects; BBH's answer rule on hand-written replies; the
// log-likelihood view; a seeded subset of a 250-item task.
static void bbh_reads_and_scores_as_bbh_does(void) {
    probe p;
    rp_err err;
    CHECK(probe_load(&p, "bbh:" FIXTURES_DIR "/bbh_mc.json", 0, 0, 0, &err) == 0, "%s", err.msg);
    CHECK(p.n_items == 3 && p.kind == PROBE_BBH, "%d items", p.n_items);
    if (p.n_items == 3) {
        CHECK(!strcmp(p.items[1].id, "1") && !strcmp(p.items[1].answer, "(B)"), "item 1: %s %s", p.items[1].id, p.items[1].answer);
        CHECK(strstr(p.items[0].prompt, "(C) The blue book is the leftmost\nAnswer with the letter"), "the instruction follows the input");
        CHECK(p.items[0].n_options == 3 && p.items[2].n_options == 2 && !strcmp(p.items[2].options[1], "(B)"), "option letters");
        struct { const char *reply; int item, right; } r[] = {
            {"A", 0, 1}, {"(A)", 0, 1}, {"  B.", 1, 1}, {"The answer is (B).", 1, 1}, {"(A) or (B)", 1, 0},
            {"(B), not (A)", 1, 1}, {"b", 1, 0}, {"Both", 1, 0}, {"", 2, 0}, {"A cup is (B) rightmost", 2, 1}};
        for (size_t i = 0; i < sizeof r / sizeof *r; i++)
            CHECK(probe_score_reply(&p, &p.items[r[i].item], r[i].reply) == r[i].right, "'%s' against %s", r[i].reply,
                  p.items[r[i].item].answer);
        CHECK(probe_use_loglik(&p, &err) == 0 && p.kind == PROBE_MC && !strcmp(p.items[1].answer, "1") &&
                  !strncmp(p.name, "loglik:bbh:", 11), "the log-likelihood view is mc over the letters: %s", p.name);
    }
    probe_free(&p);
    CHECK(probe_load(&p, "bbh:" FIXTURES_DIR "/bbh_free.jsonl", 0, 0, 0, &err) == 0 && p.n_items == 2, "%s", err.msg);
    if (p.n_items == 2) {
        CHECK(bbh_match("False", "False") && bbh_match("So the answer is valid.", "valid") && !bbh_match("invalid", "valid") &&
                  !bbh_match("Valid", "valid") && bbh_match("valid\nbecause cats", "valid"), "free-form answers");
        CHECK(strstr(p.items[0].prompt, "Give only the final answer."), "free-form instruction");
        CHECK(probe_use_loglik(&p, &err) == 0 && p.kind == PROBE_BBH && p.loglik, "free-form loglik scores the target's text");
    }
    probe_free(&p);
    const char *task = SHARED_DIR "/probes/bbh/logical_deduction_three_objects.json";
    if (access(task, R_OK)) {
        SKIP("the 250-item subset: %s is absent", task);
        return;
    }
    char spec[600];
    snprintf(spec, sizeof spec, "bbh:%s", task);
    probe a, b, c;
    CHECK(probe_load(&a, spec, 50, 0, 0, &err) == 0 && probe_load(&b, spec, 50, 0, 0, &err) == 0 &&
              probe_load(&c, spec, 50, 0, 1, &err) == 0, "%s", err.msg);
    int same = a.n_items == 50 && b.n_items == 50, other = 0, ordered = 1;
    for (int i = 0; i < a.n_items && i < b.n_items; i++) same &= !strcmp(a.items[i].id, b.items[i].id);
    for (int i = 0; i < a.n_items && i < c.n_items; i++) other += strcmp(a.items[i].id, c.items[i].id) != 0;
    for (int i = 1; i < a.n_items; i++) ordered &= atoi(a.items[i].id) > atoi(a.items[i - 1].id);
    CHECK(same && other > 0 && ordered && atoi(a.items[49].id) > 49, "a seeded subset of 50: the same twice, another seed another, in order, not the first 50");
    probe_free(&a), probe_free(&b), probe_free(&c);
}

int main(void) {
    RUN(math_partial_credit);
    RUN(bbh_reads_and_scores_as_bbh_does);
    RUN(arith_items_have_scoreable_answers);
    RUN(math_answers_keep_every_digit);
    RUN(eq_parse_and_confidence);
    RUN(jsonl_matching);
    RUN(bad_probe_files_are_named);
    return TEST_EXIT();
}
