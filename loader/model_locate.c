// Finding a model on disk: a directory, a Hugging Face hub name in the local cache, or the built-in model.
#include "loader/model_locate.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// s into out[cap], cut to fit (callers check lengths that matter first).
static void copy(char *out, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

void hf_hub_cache_dir(char *out, size_t cap, const char **why) {
    const char *v, *from;
    if ((v = getenv("HF_HUB_CACHE")) && *v) copy(out, cap, v), from = "$HF_HUB_CACHE";
    else if ((v = getenv("HF_HOME")) && *v) snprintf(out, cap, "%s/hub", v), from = "$HF_HOME/hub";
    else if ((v = getenv("XDG_CACHE_HOME")) && *v) snprintf(out, cap, "%s/huggingface/hub", v), from = "$XDG_CACHE_HOME/huggingface/hub";
    else snprintf(out, cap, "%s/.cache/huggingface/hub", (v = getenv("HOME")) && *v ? v : "."), from = "the default";
    if (why) *why = from;
}

// ORG/NAME as the hub spells repositories: one '/', letters, digits, '-', '_', '.', neither part starting with '.'.
static int is_hub_name(const char *s) {
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/') || s[0] == '.' || slash[1] == '.' || strlen(s) > 200)
        return 0;
    for (const char *p = s; *p; p++)
        if (p != slash && !isalnum((unsigned char)*p) && !strchr("-_.", *p)) return 0;
    return 1;
}

// The name's last path component (a directory's name), without trailing slashes.
static void last_component(char *out, size_t cap, const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/') start--;
    snprintf(out, cap, "%.*s", (int)(n - start), dir + start);
}

// A revision: a branch or tag (refs/REV holds its commit) or a commit (snapshots/COMMIT). Commits and refs are one
// path component each.
static int hub_snapshot(model_location *loc, const char *repo, const char *given, const char *rev, rp_err *err) {
    if (!*rev || strstr(rev, "..") || strchr(rev, '/'))
        return rp_fail(err, "--revision '%s': a branch, tag or commit (one name)", rev);
    char path[2 * MODEL_PATH_MAX], commit[128] = "";
    snprintf(path, sizeof path, "%s/refs/%s", repo, rev);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(commit, sizeof commit, f)) commit[0] = 0;
        fclose(f);
        commit[strcspn(commit, " \t\r\n")] = 0;
        if (!commit[0] || strchr(commit, '/') || strstr(commit, ".."))
            return rp_fail(err, "%s: not a commit id", path);
    } else {
        copy(commit, sizeof commit, rev);
    }
    snprintf(path, sizeof path, "%s/snapshots/%s", repo, commit);
    if (!is_dir(path))
        return f ? rp_fail(err, "%s at %s: %s/refs/%s names commit %s, whose snapshot %s is missing (an interrupted "
                                "download?)", given, rev, repo, rev, commit, path)
                 : rp_fail(err, "%s: revision '%s' is not in the cache (no %s/refs/%s, no snapshot %s); `huggingface-cli "
                                "download %s --revision %s` fetches it", given, rev, repo, rev, path, given, rev);
    if (strlen(path) >= sizeof loc->dir) return rp_fail(err, "%s: the path is too long", path);
    copy(loc->dir, sizeof loc->dir, path);
    copy(loc->name, sizeof loc->name, given);
    loc->from_hub = 1;
    return 0;
}

// The built-in model: beside the binary (a build folder holding a copy, or a relocated install's bin/), in the
// install prefix's share/reprise, then where the source tree put it.
static int builtin(model_location *loc, const char *fallback, rp_err *err) {
    char exe[MODEL_PATH_MAX], path[MODEL_PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        const char *tries[] = {"%s/default_model", "%s/../share/reprise/default_model"};
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, tries[i], exe);
            char conf[MODEL_PATH_MAX + 96];
            snprintf(conf, sizeof conf, "%s/config.json", path);
            char real[PATH_MAX];
            if (access(conf, R_OK) == 0 && realpath(path, real) && strlen(real) < sizeof loc->dir) {
                copy(loc->dir, sizeof loc->dir, real);
                copy(loc->name, sizeof loc->name, "default_model");
                return 0;
            }
        }
    }
    if (!fallback) return rp_fail(err, "the built-in model is not beside the binary (%s) nor in its install prefix", exe);
    copy(loc->dir, sizeof loc->dir, fallback);
    last_component(loc->name, sizeof loc->name, fallback);
    return 0;
}

int model_locate(model_location *loc, const char *given, const char *revision, const char *builtin_fallback, rp_err *err) {
    memset(loc, 0, sizeof *loc);
    if (!given) return builtin(loc, builtin_fallback, err);
    if (strlen(given) >= sizeof loc->dir) return rp_fail(err, "-m: the path is %zu characters long", strlen(given));
    if (is_dir(given) || !is_hub_name(given)) {
        if (revision) return rp_fail(err, "--revision %s: -m %s is a directory, not a Hugging Face name (ORG/NAME)", revision, given);
        copy(loc->dir, sizeof loc->dir, given);
        last_component(loc->name, sizeof loc->name, given);
        return 0;
    }
    char cache[MODEL_PATH_MAX], repo[MODEL_PATH_MAX + 300];
    const char *why;
    hf_hub_cache_dir(cache, sizeof cache, &why);
    int n = snprintf(repo, sizeof repo, "%s/models--", cache);
    for (const char *p = given; *p && n < (int)sizeof repo - 3; p++)   // ORG/NAME -> models--ORG--NAME
        n += *p == '/' ? snprintf(repo + n, sizeof repo - n, "--") : snprintf(repo + n, sizeof repo - n, "%c", *p);
    if (!is_dir(repo))
        return rp_fail(err, "-m %s: no such directory, and not in the Hugging Face cache (looked for %s; the cache is %s: "
                            "HF_HUB_CACHE or HF_HOME move it). reprise never downloads: `huggingface-cli download %s` "
                            "fetches it", given, repo, why, given);
    return hub_snapshot(loc, repo, given, revision ? revision : "main", err);
}
