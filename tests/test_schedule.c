// Schedule syntax: every form, and every error naming its offending token.
#include "engine/schedule.h"
#include "tests/test_util.h"

static void expect(const char *text, int n_layers, const int *want, int n_want) {
    schedule s;
    rp_err err = {{0}};
    int rc = schedule_parse(&s, text, n_layers, &err);
    CHECK(rc == 0, "'%s' rejected: %s", text, err.msg);
    if (rc) return;
    CHECK(s.n_visits == n_want, "'%s': %d visits, want %d", text, s.n_visits, n_want);
    for (int v = 0; v < s.n_visits && v < n_want; v++)
        CHECK(s.layer[v] == want[v], "'%s': visit %d runs layer %d, want %d", text, v, s.layer[v], want[v]);
    schedule_free(&s);
}

static void expect_error(const char *text, int n_layers, const char *must_mention) {
    schedule s;
    rp_err err = {{0}};
    int rc = schedule_parse(&s, text, n_layers, &err);
    CHECK(rc != 0, "'%s' accepted", text);
    CHECK(strstr(err.msg, must_mention) != NULL, "'%s': message '%s' does not mention '%s'", text, err.msg, must_mention);
    CHECK(s.layer == NULL && s.n_visits == 0, "'%s': failed parse left a schedule behind", text);
}

static void forms_parse_to_their_visits(void) {
    expect("base", 4, (int[]){0, 1, 2, 3}, 4);
    expect("0-3", 4, (int[]){0, 1, 2, 3}, 4);
    expect("0-2,1-3", 4, (int[]){0, 1, 2, 1, 2, 3}, 6);
    expect("0-1,1,2-3", 4, (int[]){0, 1, 1, 2, 3}, 5);
    expect("3,2,1,0", 4, (int[]){3, 2, 1, 0}, 4);        // reorder
    expect("0,3", 4, (int[]){0, 3}, 2);                  // skip
    expect("2", 4, (int[]){2}, 1);
    expect("rys:1,3", 4, (int[]){0, 1, 2, 1, 2, 3}, 6);  // 0..J-1 then I..N-1
    expect("rys:0,4", 4, (int[]){0, 1, 2, 3, 0, 1, 2, 3}, 8);
    expect("rys:1,3,3", 4, (int[]){0, 1, 2, 1, 2, 1, 2, 3}, 8);
    expect("rys:1,3,1", 4, (int[]){0, 1, 2, 3}, 4);      // run once in all: base
    expect("rys:2,3,2", 4, (int[]){0, 1, 2, 2, 3}, 5);
    expect("rys:1,3,0", 4, (int[]){0, 3}, 2);            // run 0 times: skipped (a draft)
    expect("rys:0,2,0+3,4,0", 5, (int[]){2, 4}, 2);
    expect("rys:0,1+2,4", 5, (int[]){0, 0, 1, 2, 3, 2, 3, 4}, 8);   // blocks joined by '+'
    expect("rys:0,2,3+2,3", 4, (int[]){0, 1, 0, 1, 0, 1, 2, 2, 3}, 9);   // adjacent blocks, the first run 3 times
}

// ExLlamaV3's layer_map (inclusive, open ends) and PEFT's layer_replication ([start, end)) give reprise's schedules.
static void foreign_syntaxes_give_the_same_schedules(void) {
    static const char *same[][3] = {
        {"0-51,45-79", "0..51,45..79", "[[0,52],[45,80]]"},   // RYS-XLarge
        {"0-51,45-79", "..51,45..", "[ [0, 52], [45, 80] ]"},
        {"base", "0..79", "[[0,80]]"},
        {"0-9,5,10-79", "0..9,5,10..", "[[0,10],[5,6],[10,80]]"},
        {"rys:45,52,3", "..51,45..51,45..", "[[0,52],[45,52],[45,80]]"},
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        schedule want, got;
        rp_err err;
        CHECK(schedule_parse(&want, same[i][0], 80, &err) == 0, "%s", err.msg);
        for (int k = 1; k < 3; k++) {
            if (schedule_parse(&got, same[i][k], 80, &err)) {
                CHECK(0, "'%s' rejected: %s", same[i][k], err.msg);
                continue;
            }
            CHECK(got.n_visits == want.n_visits && !memcmp(got.layer, want.layer, sizeof(int) * want.n_visits),
                  "'%s' is not the schedule '%s' (%d visits, want %d)", same[i][k], same[i][0], got.n_visits, want.n_visits);
            schedule_free(&got);
        }
        schedule_free(&want);
    }
    expect_error("0..80", 80, "layer 80");
    expect_error("5..3", 80, "runs backwards");
    expect_error("0..x", 80, "'0..x'");
    expect_error("..", 80, "'..'");
    expect_error("[[0,81]]", 80, "ends past the last layer");
    expect_error("[[5,5]]", 80, "is empty");
    expect_error("[[0,52],[45]]", 80, "expected ','");
    expect_error("[[0,52] [45,80]]", 80, "expected ',' or ']'");
    expect_error("[[0,-1]]", 80, "not a non-negative integer");
    expect_error("[]", 80, "no [start, end) pairs");
    expect_error("[[0,52]] x", 80, "after the closing");
    expect_error("[[0,52]", 80, "expected ',' or ']'");
}

static void rys_xlarge_has_87_visits(void) {
    schedule s;
    rp_err err;
    CHECK(schedule_parse(&s, "rys:45,52", 80, &err) == 0, "%s", err.msg);
    CHECK(s.n_visits == 87, "%d visits", s.n_visits);
    CHECK(s.layer[51] == 51 && s.layer[52] == 45 && s.layer[58] == 51 && s.layer[59] == 52 && s.layer[86] == 79,
          "wrong layers around the repeat");
    CHECK(schedule_unique_layers(&s, 80) == 80, "unique layers %d", schedule_unique_layers(&s, 80));
    char buf[64];
    schedule_format(&s, buf, sizeof buf);
    CHECK(strcmp(buf, "0-51,45-79") == 0, "formatted as '%s'", buf);
    schedule_free(&s);
}

static void bad_schedules_name_the_offending_token(void) {
    expect_error("", 4, "empty");
    expect_error("0-4", 4, "'0-4'");               // out of range
    expect_error("0-2,7", 4, "layer 7");
    expect_error("3-1", 4, "'3-1'");               // backwards
    expect_error("0-1,,2", 4, "empty item");
    expect_error("0-1,", 4, "empty item");
    expect_error(",0", 4, "empty item");
    expect_error("a-3", 4, "'a-3'");
    expect_error("0-", 4, "'0-'");
    expect_error("-1", 4, "'-1'");
    expect_error("1.5", 4, "'1.5'");
    expect_error("0 - 3", 4, "'0 - 3'");
    expect_error("99999999999999999999", 4, "'99999999999999999999'");
    expect_error("rys:", 4, "rys:");
    expect_error("rys:1", 4, "rys:I,J");
    expect_error("rys:3,1", 4, "I=3 must be below J=1");
    expect_error("rys:1,5", 4, "J=5");
    expect_error("rys:0,4,0", 4, "no visits");
    expect_error("rys:1,3,-1", 4, "'-1'");
    expect_error("rys:1,3,2,4", 4, "too many");
    expect_error("rys:x,3", 4, "'x'");
    expect_error("rys:1,3,9999999", 4, "visits");
    expect_error("bases", 4, "'bases'");
    expect_error("rys:2,4+1,3", 5, "overlaps or precedes");
    expect_error("rys:1,3+", 5, "empty block");
    expect_error("rys:1,3+2", 5, "rys:I,J");
    expect_error("rys:1,2+3,4,1,1", 5, "too many");
}

int main(void) {
    RUN(forms_parse_to_their_visits);
    RUN(rys_xlarge_has_87_visits);
    RUN(foreign_syntaxes_give_the_same_schedules);
    RUN(bad_schedules_name_the_offending_token);
    return TEST_EXIT();
}
