// Where the model a command line names lives: a directory as given, a Hugging Face hub name ("Qwen/Qwen2-7B") in the
// local hub cache at a revision, or the built-in model next to the binary, in the install prefix or in the source
// tree. Nothing is ever downloaded.
#ifndef REPRISE_MODEL_LOCATE_H
#define REPRISE_MODEL_LOCATE_H

#include <stddef.h>

#include "loader/error.h"

#define MODEL_PATH_MAX 4096

typedef struct {
    char dir[MODEL_PATH_MAX];   // the directory to read
    char name[512];             // the model's name: the hub name as given, else the directory's last component
    int from_hub;               // found in the Hugging Face cache
} model_location;

// given NULL: the built-in model (builtin_fallback: the path compiled in, tried after the binary's own folders).
// A given path that is a directory is taken as it is; a hub name ORG/NAME that is not one is looked up in the cache
// at revision (NULL: "main"; a branch or tag under refs/, or a commit under snapshots/). A name found nowhere is an
// error naming the folders looked in and the command that downloads it; any other path is passed on unchanged (its
// reader names what is missing).
int model_locate(model_location *loc, const char *given, const char *revision, const char *builtin_fallback, rp_err *err);

// The hub cache this machine's Hugging Face tools use: $HF_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. why (may be NULL) says which.
void hf_hub_cache_dir(char *out, size_t cap, const char **why);

#endif
