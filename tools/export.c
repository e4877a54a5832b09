// Writing the physically duplicated checkpoint of a schedule, for engines without layer schedules.
#include "tools/export.h"
#include "loader/alloc.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include "loader/config.h"
#include "loader/fp8.h"
#include "loader/json_file.h"
#include "loader/quantization.h"
#include "loader/safetensors.h"
#include "loader/weights.h"
#include "tools/common/stats.h"

// "model.layers.<n>.<rest>": returns n and points *rest at the suffix; -1 for any other name.
static int layer_of(const char *name, const char **rest) {
    const char *pre = "model.layers.";
    size_t pl = strlen(pre);
    if (strncmp(name, pre, pl) != 0) return -1;
    char *end;
    long n = strtol(name + pl, &end, 10);
    if (end == name + pl || *end != '.') return -1;
    *rest = end + 1;
    return (int)n;
}

// An FP8 export's projection, quantized a row at a time as --weights fp8 quantizes at load (fp8_quantize_row): its
// codes (d, k), or its scales (d, 1) float32. Made when the writer reaches the tensor, so only one is in memory.
static int quantize_rows(const st_tensor *t, uint8_t *codes, float *scales, rp_err *err) {
    int d = (int)t->shape[0], k = (int)t->shape[1], rc = 0;
    float *row = rp_malloc(sizeof(float) * (size_t)k);
    uint8_t *scratch = codes ? NULL : rp_malloc((size_t)k);
    for (int j = 0; j < d && !rc; j++) {
        float scale;
        tensor_block_to_f32(t, j, 1, 0, k, row);
        if (fp8_quantize_row(row, k, codes ? codes + (size_t)j * k : scratch, &scale, err)) rc = rp_wrap(err, "row %d", j);
        else if (scales) scales[j] = scale;
    }
    free(row);
    free(scratch);
    return rc;
}
static int fill_codes(const void *t, void *dst, rp_err *err) { return quantize_rows(t, dst, NULL, err); }
static int fill_scales(const void *t, void *dst, rp_err *err) { return quantize_rows(t, NULL, dst, err); }

// Whether `rest` (a name after "model.layers.N.") is one of the layer's projections.
static int is_projection(const model_config *c, const char *rest) {
    int64_t shape[2];
    for (int w = 0; w < W_N_LAYER_TENSORS; w++)
        if (!strcmp(rest, layer_tensor_suffix[w])) return layer_tensor_shape(c, (layer_tensor)w, shape) == 2;
    return 0;
}

// The export's tensors in order, each with the source tensor it is unchanged from (same name, same bytes) or NULL.
typedef struct {
    st_out_tensor *t;
    char **names;
    const st_tensor **same;
    int n, cap;
} out_list;

static st_out_tensor *add(out_list *o, const st_tensor *t, char *name) {
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        o->t = rp_realloc(o->t, sizeof *o->t * o->cap);
        o->names = rp_realloc(o->names, sizeof *o->names * o->cap);
        o->same = rp_realloc(o->same, sizeof *o->same * o->cap);
    }
    o->names[o->n] = name;
    o->same[o->n] = strcmp(name, t->name) ? NULL : t;
    st_out_tensor *x = &o->t[o->n++];
    *x = (st_out_tensor){.name = name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data, .nbytes = t->nbytes};
    memcpy(x->shape, t->shape, sizeof t->shape);
    return x;
}

// Non-layer tensors as they are; then each visit's copy of its layer, renamed to the visit's index.
static void list_tensors(const st_archive *a, const model_config *c, const schedule *s, int fp8, out_list *o) {
    for (int i = 0; i < a->n_tensors; i++) {
        const char *rest = NULL;
        if (layer_of(a->tensors[i].name, &rest) < 0) add(o, &a->tensors[i], rp_strdup(a->tensors[i].name));
    }
    for (int v = 0; v < s->n_visits; v++)
        for (int i = 0; i < a->n_tensors; i++) {
            const char *rest = NULL;
            if (layer_of(a->tensors[i].name, &rest) != s->layer[v]) continue;
            const st_tensor *t = &a->tensors[i];
            char *name = rp_malloc(strlen(rest) + 32);
            sprintf(name, "model.layers.%d.%s", v, rest);
            st_out_tensor *x = add(o, t, name);
            if (fp8 && is_projection(c, rest)) {   // codes now, and the scale beside them (compressed-tensors)
                x->dtype = ST_F8_E4M3, x->data = NULL, x->nbytes = (size_t)st_numel(t), x->fill = fill_codes, x->source = t;
                o->same[o->n - 1] = NULL;
                char *sname = rp_malloc(strlen(rest) + 40);
                sprintf(sname, "model.layers.%d.%.*sweight_scale", v, (int)(strlen(rest) - strlen("weight")), rest);
                st_out_tensor *sc = add(o, t, sname);
                *sc = (st_out_tensor){.name = sname, .dtype = ST_F32, .ndim = 2, .shape = {t->shape[0], 1},
                                      .nbytes = sizeof(float) * (size_t)t->shape[0], .fill = fill_scales, .source = t};
                o->same[o->n - 1] = NULL;
            }
        }
}

static void list_free(out_list *o) {
    for (int i = 0; i < o->n; i++) free(o->names[i]);
    free(o->t), free(o->names), free(o->same);
}

// The quantization_config of an FP8 export: compressed-tensors float-quantized, a scale per output channel, weights
// only (the activations stay in 16 bits: W8A16).
static cJSON *fp8_quantization_config(void) {
    cJSON *q = cJSON_CreateObject(), *groups = cJSON_AddObjectToObject(q, "config_groups");
    cJSON *g = cJSON_AddObjectToObject(groups, "group_0"), *targets = cJSON_AddArrayToObject(g, "targets");
    cJSON_AddItemToArray(targets, cJSON_CreateString("Linear"));
    cJSON *w = cJSON_AddObjectToObject(g, "weights");
    cJSON_AddNumberToObject(w, "num_bits", 8);
    cJSON_AddStringToObject(w, "type", "float");
    cJSON_AddBoolToObject(w, "symmetric", 1);
    cJSON_AddBoolToObject(w, "dynamic", 0);
    cJSON_AddStringToObject(w, "strategy", "channel");
    cJSON_AddNullToObject(g, "input_activations");
    cJSON_AddStringToObject(q, "format", "float-quantized");
    cJSON *ignore = cJSON_AddArrayToObject(q, "ignore");
    cJSON_AddItemToArray(ignore, cJSON_CreateString("lm_head"));
    cJSON_AddStringToObject(q, "quant_method", "compressed-tensors");
    cJSON_AddStringToObject(q, "quantization_status", "compressed");
    return q;
}

// config.json with num_hidden_layers replaced; layer_types (one entry per layer) follows the schedule; an FP8
// export's quantization_config.
static int write_config(const char *src_dir, const schedule *s, int fp8, const char *out_dir, rp_err *err) {
    char *src = path_join(src_dir, "config.json"), *dst = path_join(out_dir, "config.json");
    cJSON *root = json_parse_file(src, err);
    int rc = root ? 0 : -1;
    if (root) {
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(root, "num_hidden_layers");
        int n_layers = cJSON_IsNumber(nl) ? nl->valueint : -1;
        for (cJSON *e = root->child; e; e = e->next) {
            if (strcmp(e->string, "layer_types") != 0 || !cJSON_IsArray(e) || cJSON_GetArraySize(e) != n_layers)
                continue;
            cJSON *re = cJSON_CreateArray();
            for (int v = 0; v < s->n_visits; v++)
                cJSON_AddItemToArray(re, cJSON_Duplicate(cJSON_GetArrayItem(e, s->layer[v]), 1));
            cJSON_ReplaceItemViaPointer(root, e, re);
            e = re;
        }
        cJSON_ReplaceItemInObjectCaseSensitive(root, "num_hidden_layers", cJSON_CreateNumber(s->n_visits));
        if (fp8) cJSON_AddItemToObject(root, "quantization_config", fp8_quantization_config());
        char *text = cJSON_Print(root);
        FILE *f = fopen(dst, "w");
        if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) rc = rp_fail(err, "%s: cannot write: %s", dst, strerror(errno));
        if (f && fclose(f)) rc = rp_fail(err, "%s: cannot write: %s", dst, strerror(errno));
        free(text);
        cJSON_Delete(root);
    }
    free(src);
    free(dst);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int export_parse_size(const char *text, double *bytes) {
    char *end;
    double v = strtod(text, &end);
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
                 {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
    if (end == text || !(v > 0)) return -1;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcasecmp(end, units[i].suffix)) return *bytes = v * units[i].scale, 0;
    return -1;
}

// A file an earlier export left in out_dir that this one replaces: model.safetensors, its index, a shard.
static int is_weights_file(const char *n) {
    return !strcmp(n, "model.safetensors") || !strcmp(n, "model.safetensors.index.json") ||
           (!strncmp(n, "model-", 6) && strstr(n, "-of-") && ends_with(n, ".safetensors"));
}

typedef struct {
    int src_file;   // a source shard linked as it is, or -1: written from its tensors
    double bytes;   // tensor bytes
    int n;          // tensors
} shard;

// "4.66 GiB", "181.2 KiB": bytes in the largest binary unit below them.
static char *bytes_text(double b, char out[32]) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, u++;
    snprintf(out, 32, u ? "%.2f %s" : "%.0f %s", b, units[u]);
    return out;
}

static double file_size(const char *path, int *links) {
    struct stat st;
    if (stat(path, &st)) return 0;
    if (links) *links = (int)st.st_nlink;
    return (double)st.st_size;
}

// The index Hugging Face writes beside shards: total tensor bytes and each tensor's file.
static int write_index(const char *out_dir, const out_list *o, const int *shard_of, char names[][64], double total, rp_err *err) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "metadata"), *map = cJSON_AddObjectToObject(root, "weight_map");
    cJSON_AddNumberToObject(meta, "total_size", total);
    for (int i = 0; i < o->n; i++) cJSON_AddStringToObject(map, o->names[i], names[shard_of[i]]);
    char *text = cJSON_Print(root), *path = path_join(out_dir, "model.safetensors.index.json");
    cJSON_Delete(root);
    FILE *f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f)) ok = 0;
    int rc = ok ? 0 : rp_fail(err, "%s: cannot write: %s", path, strerror(errno));
    free(text), free(path);
    return rc;
}

// A copy of src at dst that shares src's blocks where the filesystem can (a reflink: btrfs, XFS, bcachefs; a write
// into either stays apart), else copied in the kernel (copy_file_range; server-side on NFS), else by read and write.
// Not a hard link: a tool that patches a tensor of the export in place would change the source. *shared: reflinked.
static int clone_file(const char *src, const char *dst, int *shared, rp_err *err) {
    int in = open(src, O_RDONLY | O_CLOEXEC), out = in < 0 ? -1 : open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = in < 0 ? rp_fail(err, "%s: cannot open: %s", src, strerror(errno))
             : out < 0 ? rp_fail(err, "%s: cannot create: %s", dst, strerror(errno)) : 0;
    *shared = !rc && ioctl(out, FICLONE, in) == 0;
    for (int kernel = 1; !rc && !*shared;) {
        ssize_t n;
        if (kernel && (n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0)) < 0) {
            if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) break;
            kernel = 0;   // this kernel or filesystem pair cannot: the plain way, from where it stopped
            continue;
        }
        if (!kernel) {
            char buf[1 << 16];
            n = read(in, buf, sizeof buf);
            if (n > 0 && write(out, buf, (size_t)n) != n) n = -1;
        }
        if (n <= 0) {
            if (n < 0) rc = rp_fail(err, "%s: copy failed: %s", dst, strerror(errno));
            break;
        }
    }
    if (out >= 0 && close(out) && !rc) rc = rp_fail(err, "%s: cannot write: %s", dst, strerror(errno));
    if (in >= 0) close(in);
    return rc;
}

// Whether out_dir's filesystem shares a file's blocks with src's (a reflink of src, made and removed): kept shards
// then cost the disk nothing.
static int clones_share(const char *src, const char *out_dir) {
    char *probe = path_join(out_dir, ".reprise-clone-probe");
    int in = open(src, O_RDONLY | O_CLOEXEC), out = in < 0 ? -1 : open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int shared = out >= 0 && ioctl(out, FICLONE, in) == 0;
    if (out >= 0) close(out), unlink(probe);
    if (in >= 0) close(in);
    free(probe);
    return shared;
}

// Writes the shards: the planned ones from the list, the kept ones as copies of the source's (reflinked where the
// filesystem can), a line on stderr after each.
static int write_shards(const st_archive *a, const out_list *o, const shard *sh, int n_shards, const int *shard_of,
                        char names[][64], const char *out_dir, double to_write, int quiet, rp_err *err) {
    st_out_tensor *part = rp_malloc(sizeof *part * (size_t)(o->n ? o->n : 1));
    double t0 = rp_now_s(), written = 0;
    int rc = 0;
    for (int k = 0; k < n_shards && !rc; k++) {
        char *path = path_join(out_dir, names[k]);
        const char *how = "written";
        if (sh[k].src_file >= 0) {
            int shared = 0;
            rc = clone_file(a->files[sh[k].src_file].path, path, &shared, err);
            how = shared ? "cloned from the source's (blocks shared)" : "copied whole from the source's";
            if (!shared) written += sh[k].bytes;
        } else {
            int n = 0;
            for (int i = 0; i < o->n; i++)
                if (shard_of[i] == k) part[n++] = o->t[i];
            rc = st_write_file(path, part, n, err);
            written += sh[k].bytes;
        }
        double t = rp_now_s() - t0, rate = t > 0 ? written / t : 0;
        char size[32], done[32], all[32], speed[32], eta[32] = "";
        if (rate > 0 && to_write > written) snprintf(eta, sizeof eta, ", ETA %.0f s", (to_write - written) / rate);
        if (!rc && !quiet)
            fprintf(stderr, "reprise export: %s %s (%s, %d tensors); %s of %s written, %s/s%s\n", names[k], how,
                    bytes_text(sh[k].bytes, size), sh[k].n, bytes_text(written, done), bytes_text(to_write, all),
                    bytes_text(rate, speed), eta);
        free(path);
    }
    free(part);
    return rc;
}

static int write_weights(const st_archive *a, const model_config *c, const schedule *s, const export_opts *eo,
                         const char *out_dir, rp_err *err) {
    out_list o = {0};
    list_tensors(a, c, s, eo->weights == WEIGHTS_FP8, &o);
    double limit = eo->shard_bytes > 0 ? eo->shard_bytes : EXPORT_SHARD_BYTES, total = 0;
    // a source shard is copied whole when the export keeps every one of its tensors under its name
    int *in_file = rp_calloc((size_t)a->n_files, sizeof(int)), *kept = rp_calloc((size_t)a->n_files, sizeof(int));
    int *link_shard = rp_malloc(sizeof(int) * (size_t)a->n_files), *shard_of = rp_malloc(sizeof(int) * (size_t)(o.n + 1));
    for (int i = 0; i < a->n_tensors; i++) in_file[a->tensors[i].file]++;
    for (int i = 0; i < o.n; i++)
        if (o.same[i]) kept[o.same[i]->file]++;
    shard *sh = rp_malloc(sizeof *sh * (size_t)(a->n_files + o.n + 1));
    int n_shards = 0;
    for (int f = 0; f < a->n_files; f++) {
        link_shard[f] = -1;
        if (!eo->no_clones && in_file[f] && kept[f] == in_file[f])
            sh[link_shard[f] = n_shards++] = (shard){.src_file = f};
    }
    int open = -1;   // the new shard being filled
    for (int i = 0; i < o.n; i++) {
        double b = (double)o.t[i].nbytes;
        total += b;
        int k = o.same[i] ? link_shard[o.same[i]->file] : -1;
        if (k < 0) {
            if (open < 0 || (sh[open].n && sh[open].bytes + b > limit)) sh[open = n_shards++] = (shard){.src_file = -1};
            k = open;
        }
        shard_of[i] = k, sh[k].bytes += b, sh[k].n++;
    }
    char (*names)[64] = rp_malloc(sizeof *names * (size_t)(n_shards ? n_shards : 1));
    for (int k = 0; k < n_shards; k++)
        if (n_shards == 1) snprintf(names[k], sizeof names[k], "model.safetensors");
        else snprintf(names[k], sizeof names[k], "model-%05d-of-%05d.safetensors", k + 1, n_shards);
    // what the disk must take: new shards, and the kept ones unless the filesystem shares their blocks
    int first_kept = -1;
    for (int k = 0; k < n_shards && first_kept < 0; k++)
        if (sh[k].src_file >= 0) first_kept = k;
    int share = first_kept >= 0 && clones_share(a->files[sh[first_kept].src_file].path, out_dir);
    double to_write = 0, linked = 0, freed = 0;
    for (int k = 0; k < n_shards; k++) {
        if (sh[k].src_file >= 0 && share) linked += sh[k].bytes;
        else to_write += sh[k].bytes;
    }
    DIR *d = opendir(out_dir);   // an earlier export's weights: replaced, their space freed (unless linked elsewhere)
    for (struct dirent *e; d && (e = readdir(d));)
        if (is_weights_file(e->d_name)) {
            char *p = path_join(out_dir, e->d_name);
            int links = 1;
            double size = file_size(p, &links);
            if (links == 1) freed += size;
            free(p);
        }
    if (d) closedir(d);
    struct statvfs vfs;
    double avail = statvfs(out_dir, &vfs) ? -1 : (double)vfs.f_bavail * vfs.f_frsize;
    int rc = 0;
    if (avail >= 0 && to_write + (1 << 20) > avail + freed)
    {
        char w[32], l[32], f[32];
        rc = rp_fail(err, "-o %s: the export writes %s (%s more cloned from the source's shards, blocks shared) and its "
                          "filesystem has %s free%s; nothing was written", out_dir, bytes_text(to_write, w), bytes_text(linked, l),
                     bytes_text(avail + freed, f), freed > 0 ? " (counting the earlier export's weights it replaces)" : "");
    }
    d = rc ? NULL : opendir(out_dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (is_weights_file(e->d_name)) {
            char *p = path_join(out_dir, e->d_name);
            if (unlink(p)) rc = rp_fail(err, "%s: cannot replace: %s", p, strerror(errno));
            free(p);
        }
    if (d) closedir(d);
    if (!rc) rc = write_shards(a, &o, sh, n_shards, shard_of, names, out_dir, to_write, eo->quiet, err);
    if (!rc && n_shards > 1) rc = write_index(out_dir, &o, shard_of, names, total, err);
    free(names), free(sh), free(in_file), free(kept), free(link_shard), free(shard_of);
    list_free(&o);
    return rc;
}

int export_schedule(const char *src_dir, const schedule *s, const export_opts *eo, const char *out_dir, rp_err *err) {
    model_config cfg;
    if (config_load(&cfg, src_dir, err)) return -1;
    int fp8 = eo->weights == WEIGHTS_FP8;
    char layout[96];
    quant_describe(&cfg.quant, layout, sizeof layout);
    if (fp8 && cfg.quant.method != QUANT_NONE)
        return rp_fail(err, "--weights fp8: %s is FP8 already (%s); export it without --weights to keep it so", src_dir, layout);
    for (int v = 0; v < s->n_visits; v++)
        if (s->layer[v] >= cfg.n_layers) return rp_fail(err, "schedule visit %d: layer %d out of range", v, s->layer[v]);
    if (mkdir(out_dir, 0755) && errno != EEXIST) return rp_fail(err, "%s: cannot create: %s", out_dir, strerror(errno));
    char rs[PATH_MAX], ro[PATH_MAX];
    if (realpath(src_dir, rs) && realpath(out_dir, ro) && strcmp(rs, ro) == 0)
        return rp_fail(err, "-o %s: the output directory must differ from the model directory", out_dir);
    st_archive a;
    if (st_open_dir(&a, src_dir, err)) return -1;
    int rc = weights_check(&cfg, &a, err) ? -1 : write_weights(&a, &cfg, s, eo, out_dir, err);
    st_close(&a);
    if (rc || write_config(src_dir, s, fp8, out_dir, err)) return -1;

    DIR *d = opendir(src_dir);
    if (!d) return rp_fail(err, "%s: cannot list: %s", src_dir, strerror(errno));
    for (struct dirent *e; !rc && (e = readdir(d));) {
        const char *n = e->d_name;
        if (n[0] == '.' || strcmp(n, "config.json") == 0 || ends_with(n, ".safetensors") ||
            strcmp(n, "model.safetensors.index.json") == 0)
            continue;
        char *src = path_join(src_dir, n), *dst = path_join(out_dir, n);
        int shared;
        if (file_exists(src)) rc = clone_file(src, dst, &shared, err);
        free(src);
        free(dst);
    }
    closedir(d);
    return rc;
}
