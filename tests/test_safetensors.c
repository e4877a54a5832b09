// Malformed safetensors files, shard indexes and configs are each rejected with their own message, never a crash.
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/forward.h"
#include "engine/model.h"
#include "loader/json_file.h"
#include "loader/safetensors.h"
#include "loader/weights.h"
#include "tests/test_util.h"

static char *tmp;

// Writes 8-byte length (hlen, or strlen(header) when hlen < 0), the header, then `data_len` bytes of data.
static char *write_st(const char *name, long long hlen, const char *header, size_t data_len) {
    char *path = path_join(tmp, name);
    FILE *f = fopen(path, "wb");
    uint64_t n = hlen < 0 ? strlen(header) : (uint64_t)hlen;
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), f);
    fputs(header, f);
    for (size_t i = 0; i < data_len; i++) fputc((int)i, f);
    fclose(f);
    return path;
}

static void expect_rejected(const char *what, const char *path, const char *must_mention) {
    st_archive a;
    rp_err err = {{0}};
    int rc = st_open_file(&a, path, &err);
    CHECK(rc != 0, "%s: accepted", what);
    CHECK(strstr(err.msg, must_mention) != NULL, "%s: message '%s' does not mention '%s'", what, err.msg, must_mention);
    if (rc == 0) st_close(&a);
}

#define T1(dtype, shape, b, e) "{\"w\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}}"

static void valid_file_with_metadata_is_read(void) {
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                    "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}   ";
    char *p = write_st("ok.safetensors", -1, h, 16);
    st_archive a;
    rp_err err;
    CHECK(st_open_file(&a, p, &err) == 0, "%s", err.msg);
    if (a.n_tensors == 2) {
        CHECK(strcmp(a.tensors[0].name, "a") == 0, "sorted by name");
        const st_tensor *b = st_find(&a, "b");
        CHECK(b && b->nbytes == 8 && b->ndim == 1 && b->shape[0] == 2 && b->dtype == ST_F32, "tensor b");
        CHECK(b && ((const unsigned char *)b->data)[0] == 8, "tensor b's data starts at data byte 8");
        st_close(&a);
    } else CHECK(0, "%d tensors", a.n_tensors);
    free(p);
}

static void malformed_files_are_rejected(void) {
    struct {
        const char *what;
        long long hlen;
        const char *header;
        size_t data;
        const char *mention;
    } cases[] = {
        {"header length past EOF", 4096, "{}", 0, "runs past the end"},
        {"huge header length", 1LL << 40, "{}", 0, "exceeds"},
        {"header not JSON", -1, "{\"w\":{\"dtype\":", 0, "malformed JSON"},
        {"header not an object", -1, "[1,2]", 0, "does not start with '{'"},
        {"trailing bytes after the header JSON", -1, "{}xyz", 0, "trailing data"},
        {"unknown dtype", -1, T1("F7", "[2]", 0, 8), 8, "unknown dtype 'F7'"},
        {"dtype not a string", -1, "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"dtype\""},
        {"shape/size mismatch", -1, T1("F32", "[3]", 0, 8), 8, "shape x dtype size is 12 bytes but data_offsets span 8"},
        {"offsets past the end", -1, T1("F32", "[4]", 0, 16), 8, "past the end of the data section"},
        {"offsets end before begin", -1, T1("F32", "[0]", 8, 0), 8, "before begin"},
        {"negative dimension", -1, T1("F32", "[-2]", 0, 8), 8, "shape[0]"},
        {"fractional offset", -1, T1("F32", "[2]", 0.5, 8), 8, "data_offsets"},
        {"shape overflow", -1, T1("F32", "[4294967296,4294967296,4294967296]", 0, 8), 8, "too large"},
        {"too many dimensions", -1, T1("F32", "[1,1,1,1,1,1,1,1,1]", 0, 4), 4, "dimensions"},
        {"missing data_offsets", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets"},
        {"missing shape", -1, "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "\"shape\""},
        {"entry not an object", -1, "{\"w\":3}", 0, "not an object"},
        {"metadata not an object", -1, "{\"__metadata__\":3}", 0, "__metadata__"},
        {"overlapping tensors", -1,
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
         "\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"gap between tensors", -1,
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[8,12]}}", 12, "gap"},
        {"data section longer than the tensors", -1, T1("F32", "[2]", 0, 8), 12, "cover"},
        {"truncated data section", -1, T1("F32", "[4]", 0, 16), 10, "past the end"},
        {"tensor defined twice", -1,
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[4,8]}}", 8, "defined twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.safetensors", i);
        char *p = write_st(name, cases[i].hlen, cases[i].header, cases[i].data);
        expect_rejected(cases[i].what, p, cases[i].mention);
        free(p);
    }
}

static void truncated_files_are_rejected(void) {
    char *p = path_join(tmp, "empty.safetensors");
    fclose(fopen(p, "wb"));
    expect_rejected("empty file", p, "truncated");
    FILE *f = fopen(p, "wb");
    fwrite("\x10\0\0", 1, 3, f);
    fclose(f);
    expect_rejected("3-byte file", p, "truncated");
    expect_rejected("missing file", "/nonexistent/x.safetensors", "cannot open");
    free(p);
}

// Copies the fixture model's config.json and weights into a fresh dir, with edits.
static char *model_dir_with(const char *config_json, int drop_tensor, int reshape_tensor, st_dtype force_dtype) {
    static int n;
    char sub[32];
    snprintf(sub, sizeof sub, "model%d", n++);
    char *dir = path_join(tmp, sub);
    mkdir(dir, 0755);
    st_archive a;
    rp_err err;
    if (st_open_dir(&a, FIXTURES_DIR "/llama", &err)) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        exit(1);
    }
    st_out_tensor *out = calloc((size_t)a.n_tensors, sizeof *out);
    int k = 0;
    for (int i = 0; i < a.n_tensors; i++) {
        const st_tensor *t = &a.tensors[i];
        if (i == drop_tensor) continue;
        out[k] = (st_out_tensor){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data, .nbytes = t->nbytes};
        memcpy(out[k].shape, t->shape, sizeof t->shape);
        if (i == reshape_tensor) out[k].shape[0] /= 2, out[k].shape[1] *= 2;
        if (force_dtype != ST_N_DTYPES) out[k].dtype = force_dtype;   // same element size as the stored BF16
        k++;
    }
    char *p = path_join(dir, "model.safetensors");
    CHECK(st_write_file(p, out, k, &err) == 0, "%s", err.msg);
    free(p);
    free(out);
    st_close(&a);
    p = path_join(dir, "config.json");
    FILE *f = fopen(p, "w");
    fputs(config_json, f);
    fclose(f);
    free(p);
    return dir;
}

static const char *good_config =
    "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":4,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":96,\"rms_norm_eps\":1e-5,"
    "\"rope_theta\":500000.0,\"max_position_embeddings\":64,\"tie_word_embeddings\":false%s}";

static void expect_model_error(const char *what, const char *dir, const char *mention) {
    model m;
    rp_err err = {{0}};
    int rc = model_load(&m, dir, "cpu", 1, &err);
    CHECK(rc != 0, "%s: accepted", what);
    CHECK(strstr(err.msg, mention) != NULL, "%s: message '%s' does not mention '%s'", what, err.msg, mention);
    if (rc == 0) model_free(&m);
}

static void bad_configs_and_weights_are_rejected(void) {
    char cfg[2048];
    snprintf(cfg, sizeof cfg, good_config, "");
    char *ok = model_dir_with(cfg, -1, -1, ST_N_DTYPES);
    model m;
    rp_err err;
    CHECK(model_load(&m, ok, "cpu", 1, &err) == 0, "the unedited copy must load: %s", err.msg);
    int n_tensors = m.weights.n_tensors, up1 = -1, q0 = -1;
    for (int i = 0; i < n_tensors; i++) {
        if (strcmp(m.weights.tensors[i].name, "model.layers.1.mlp.up_proj.weight") == 0) up1 = i;
        if (strcmp(m.weights.tensors[i].name, "model.layers.0.self_attn.q_proj.weight") == 0) q0 = i;
    }
    model_free(&m);
    free(ok);

    struct {
        const char *what, *extra, *mention;
    } cfgs[] = {
        {"unknown model_type", ",\"model_type\":\"gpt2\"", "model_type 'gpt2'"},
        {"hidden_size as a string", ",\"hidden_size\":\"64\"", "\"hidden_size\" must be an integer"},
        {"zero heads", ",\"num_attention_heads\":0", "\"num_attention_heads\" = 0 is out of range"},
        {"heads not a multiple of kv heads", ",\"num_key_value_heads\":3", "not a multiple of num_key_value_heads"},
        {"eps out of range", ",\"rms_norm_eps\":-1", "\"rms_norm_eps\""},
        {"tie_word_embeddings as a number", ",\"tie_word_embeddings\":1", "\"tie_word_embeddings\" must be true or false"},
        {"unsupported rope scaling", ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}", "rope_scaling type 'yarn'"},
        {"llama3 rope scaling without its factors", ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}", "rope_scaling"},
        {"unsupported activation", ",\"hidden_act\":\"gelu\"", "hidden_act"},
        {"eos outside the vocabulary", ",\"eos_token_id\":[2,500]", "eos_token_id"},
    };
    // cJSON keeps the first of duplicate keys, so edits go in front of the good config's fields.
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        char c2[2048];
        snprintf(c2, sizeof c2, "{%s,%s", cfgs[i].extra + 1, strchr(cfg, '{') + 1);
        char *dir = model_dir_with(c2, -1, -1, ST_N_DTYPES);
        expect_model_error(cfgs[i].what, dir, cfgs[i].mention);
        free(dir);
    }
    char *dir = model_dir_with("{\"model_type\": \"llama\",", -1, -1, ST_N_DTYPES);
    expect_model_error("config.json not JSON", dir, "malformed JSON");
    free(dir);
    dir = model_dir_with(cfg, up1, -1, ST_N_DTYPES);
    expect_model_error("missing tensor", dir, "tensor 'model.layers.1.mlp.up_proj.weight' is missing");
    free(dir);
    dir = model_dir_with(cfg, -1, q0, ST_N_DTYPES);
    expect_model_error("misshapen tensor", dir, "'model.layers.0.self_attn.q_proj.weight' has shape [32,128]");
    free(dir);
    dir = model_dir_with(cfg, -1, -1, ST_I16);
    expect_model_error("integer weights", dir, "dtype I16");
    free(dir);
    expect_model_error("no model directory", "/nonexistent-model", "config.json");
    // an empty tensor of 8 dimensions of 16 digits (the parser's largest: 2^53 - 1; valid: it holds 0 bytes): its shape
    // is named, and the message's buffer is clamped, never overrun
    char *wide = path_join(tmp, "wide");
    mkdir(wide, 0755);
    char *p = path_join(wide, "config.json");
    FILE *f = fopen(p, "w");
    fprintf(f, good_config, "");
    fclose(f);
    free(p);
    const char *hdr = "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[0,9007199254740991,"
                      "9007199254740991,9007199254740991,9007199254740991,9007199254740991,"
                      "9007199254740991,9007199254740991],\"data_offsets\":[0,0]}}";
    char *st = write_st("wide/model.safetensors", -1, hdr, 0);
    expect_model_error("an 8-dimensional empty tensor", wide, "tensor 'model.embed_tokens.weight' has shape [0,9007199254740991,");
    free(st), free(wide);
}

// Sliding-window attention (issue 16): a window below max_position_embeddings caps the context at the window, where
// full attention (what reprise computes) equals it; a longer sequence is refused naming the window. Qwen2's
// use_sliding_window false, a null window, or one past max_position_embeddings change nothing.
static void sliding_window_caps_the_context(void) {
    struct {
        const char *extra;
        int max_pos, window;
    } cases[] = {{",\"sliding_window\":32", 32, 32}, {",\"sliding_window\":32,\"use_sliding_window\":false", 64, 0},
                 {",\"sliding_window\":null", 64, 0}, {",\"sliding_window\":4096", 64, 0}, {"", 64, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char cfg[2048];
        snprintf(cfg, sizeof cfg, good_config, cases[i].extra);
        char *dir = model_dir_with(cfg, -1, -1, ST_N_DTYPES);
        model m;
        rp_err err;
        CHECK(model_load(&m, dir, "cpu", 1, &err) == 0, "%s: %s", cases[i].extra, err.msg);
        CHECK(m.cfg.max_pos == cases[i].max_pos && m.cfg.sliding_window == cases[i].window && m.cfg.declared_max_pos == 64,
              "%s: max_pos %d window %d declared %d", cases[i].extra, m.cfg.max_pos, m.cfg.sliding_window, m.cfg.declared_max_pos);
        schedule s;
        schedule_base(&s, m.cfg.n_layers);
        sequence seq;
        int rc = sequence_init(&seq, &m, &s, 40, &err);
        if (cases[i].window) CHECK(rc != 0 && strstr(err.msg, "sliding_window 32"), "a context of 40: '%s'", rc ? err.msg : "accepted");
        else CHECK(rc == 0, "a context of 40: %s", err.msg);
        if (!rc) sequence_free(&seq, &m);
        schedule_free(&s);
        model_free(&m);
        free(dir);
    }
    char cfg[2048];
    snprintf(cfg, sizeof cfg, good_config, ",\"sliding_window\":\"4096\"");
    char *dir = model_dir_with(cfg, -1, -1, ST_N_DTYPES);
    expect_model_error("sliding_window as a string", dir, "\"sliding_window\" must be an integer");
    free(dir);
}

static void shard_index_errors_are_named(void) {
    char *dir = path_join(tmp, "sharded");
    mkdir(dir, 0755);
    char *p = path_join(dir, "model.safetensors.index.json");
    struct {
        const char *what, *index, *mention;
    } cases[] = {
        {"index not JSON", "{\"weight_map\":", "malformed JSON"},
        {"no weight_map", "{\"metadata\":{}}", "weight_map"},
        {"shard file missing", "{\"weight_map\":{\"w\":\"model-1.safetensors\"}}", "cannot open"},
        {"path in shard name", "{\"weight_map\":{\"w\":\"../x.safetensors\"}}", "not a plain file name"},
        {"tensor absent from its shard", "{\"weight_map\":{\"w\":\"a.safetensors\",\"zz\":\"a.safetensors\"}}", "'zz' is listed"},
    };
    char *a = write_st("sharded/a.safetensors", -1, T1("F32", "[2]", 0, 8), 8);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *f = fopen(p, "w");
        fputs(cases[i].index, f);
        fclose(f);
        st_archive ar;
        rp_err err = {{0}};
        int rc = st_open_dir(&ar, dir, &err);
        CHECK(rc != 0, "%s: accepted", cases[i].what);
        CHECK(strstr(err.msg, cases[i].mention) != NULL, "%s: message '%s' lacks '%s'", cases[i].what, err.msg,
              cases[i].mention);
        if (rc == 0) st_close(&ar);
    }
    free(a);
    free(p);
    free(dir);
}

static void written_file_reads_back(void) {
    float x[3] = {1, 2, 3};
    uint16_t y[2] = {0x3f80, 0xc000};   // bf16 1.0, -2.0
    st_out_tensor t[2] = {{.name = "x", .dtype = ST_F32, .ndim = 1, .shape = {3}, .data = x, .nbytes = 12},
                          {.name = "y\"q", .dtype = ST_BF16, .ndim = 2, .shape = {1, 2}, .data = y, .nbytes = 4}};
    char *p = path_join(tmp, "written.safetensors");
    rp_err err;
    CHECK(st_write_file(p, t, 2, &err) == 0, "%s", err.msg);
    st_archive a;
    CHECK(st_open_file(&a, p, &err) == 0, "%s", err.msg);
    const st_tensor *ty = st_find(&a, "y\"q");
    float f[2] = {0};
    if (ty) tensor_to_f32(ty, f);
    CHECK(ty && f[0] == 1.0f && f[1] == -2.0f, "bf16 read back as %g %g", f[0], f[1]);
    CHECK(f16_to_f32(0x3c00) == 1.0f && f16_to_f32(0xc000) == -2.0f && f16_to_f32(0x0001) == ldexpf(1, -24) &&
          f16_to_f32(0x7bff) == 65504.0f, "f16 conversion");
    st_close(&a);
    free(p);
}

int main(void) {
    tmp = make_temp_dir("st");
    RUN(valid_file_with_metadata_is_read);
    RUN(malformed_files_are_rejected);
    RUN(truncated_files_are_rejected);
    RUN(bad_configs_and_weights_are_rejected);
    RUN(sliding_window_caps_the_context);
    RUN(shard_index_errors_are_named);
    RUN(written_file_reads_back);
    remove_tree(tmp);
    free(tmp);
    return TEST_EXIT();
}
