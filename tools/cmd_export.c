// `reprise export`: write the physically duplicated checkpoint of a schedule.
#include <stdio.h>

#include "tools/export.h"
#include "loader/weights.h"
#include "tools/cli.h"

static const char *synopsis =
    "usage: reprise export [-m DIR] --schedule S [--weights fp8] [--shard-size SIZE] -o OUT\n"
    "Writes OUT's safetensors with one copy of each visited layer (layer v of the output is layer\n"
    "schedule[v] of the input), config.json with num_hidden_layers = visits, and the model's other files.\n"
    "Any engine can run the result; `reprise --schedule base` on it equals `--schedule S` on DIR.\n"
    "The tensors go in shards with model.safetensors.index.json, as Hugging Face writes them; a source shard\n"
    "kept whole (the layers before the schedule's first repeat) is copied whole, sharing its blocks (a reflink)\n"
    "where the filesystem can.\n"
    "The free space is checked before anything is written, and each shard written says so on stderr.\n"
    "With --weights fp8 the projections are written in FP8 E4M3 with a scale per output row (the compressed-\n"
    "tensors layout, as vLLM reads it); reprise reads it back to the bits of --weights fp8 on DIR.\n";

int cmd_export(int argc, char **argv) {
    cli_opts o;
    rp_err err;
    int code;
    const char *out = NULL, *shard_size = "5GB";
    int no_clones = 0;
    const option_def options[] = {
        SHARED_FLAG("-m"), SHARED_FLAG("--revision"),
        {OPT_SHARED, "--schedule", .help = "layer schedule, e.g. rys:3,6 or 0-5,3-9"},
        {OPT_TEXT, "-o", "OUT", &out, .help = "output directory (created if needed; must differ from DIR)"},
        {OPT_SHARED, "--weights",
         .help = "the projections' weights: stored (as DIR holds them) or fp8 (E4M3, a scale per output row, "
                 "compressed-tensors)"},
        {OPT_TEXT, "--shard-size", "SIZE", &shard_size, .def = "5GB",
         .help = "most bytes of tensors a shard holds: 5GB, 500MB, 2GiB, or bytes (a larger tensor is a shard of its own)"},
        {OPT_SWITCH, "--no-clones", NULL, &no_clones,
         .help = "write every shard from its tensors, even those the source holds whole"},
        {OPT_SHARED, "--allow-unused-tensors",
         .help = "export a checkpoint holding tensors the model does not read (they are left out)"},
        OPTIONS_END,
    };
    if (cli_begin(argc, argv, synopsis, options, &o, &code)) return code;
    if (!out) {
        fprintf(stderr, "reprise export: -o OUT is required (see --help)\n");
        return 2;
    }
    export_opts eo = {.weights = o.weights, .no_clones = no_clones};
    if (export_parse_size(shard_size, &eo.shard_bytes)) {
        fprintf(stderr, "reprise export: --shard-size %s: a size such as 5GB, 500MB, 2GiB or a number of bytes\n", shard_size);
        return 2;
    }
    model_config c;
    schedule s;
    st_archive a;
    if (config_load(&c, o.model_dir, &err) || st_open_dir(&a, o.model_dir, &err)) {
        fprintf(stderr, "reprise export: %s\n", err.msg);
        return 1;
    }
    int unused = !o.allow_unused_tensors && weights_refuse_unused(&c, &a, &err);   // they would be left behind
    st_close(&a);
    if (unused || schedule_parse(&s, o.schedule, c.n_layers, &err)) {
        fprintf(stderr, "reprise export: %s\n", err.msg);
        return 1;
    }
    int rc = export_schedule(o.model_dir, &s, &eo, out, &err);
    if (rc) fprintf(stderr, "reprise export: %s\n", err.msg);
    else fprintf(stderr, "reprise export: wrote %s (%d layers from %d)\n", out, s.n_visits, c.n_layers);
    schedule_free(&s);
    return rc ? 1 : 0;
}
