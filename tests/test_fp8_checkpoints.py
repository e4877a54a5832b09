"""FP8 checkpoints end to end: every published layout (fp8_fixtures.py) through `score` and `generate` against the
numpy dequantize-then-forward reference, chunking (batch) invariance, `export --weights fp8` read back to the bits of
`--weights fp8`, and the malformed cases refused by name.

usage: test_fp8_checkpoints.py REPRISE [REPRISE_EMU]   (REPRISE_EMU: the CLI on the emulated CUDA backend)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp8_fixtures as F  # noqa: E402
from checks import attempt, check, finish  # noqa: E402

REPRISE = sys.argv[1]
EMU = sys.argv[2] if len(sys.argv) > 2 else None
ARCHS = ("llama", "qwen2", "qwen3", "mistral")
SCHEDULES = {"base": [0, 1, 2, 3], "rys:1,3": [0, 1, 2, 1, 2, 3]}
TMP = tempfile.mkdtemp(prefix="reprise_fp8_")


def run(*args, binary=None):
    return subprocess.run([binary or REPRISE, *args], capture_output=True, text=True, timeout=300)


def tokens_of(arch):
    return json.load(open(os.path.join(F.FIXTURES, arch, "expected.json")))["tokens"]


def score_logits(model, tokens, *extra):
    out = os.path.join(TMP, "logits.f32")
    r = run("score", "-m", model, "--tokens", ",".join(map(str, tokens)), "--dump-logits", out, "-t", "1", *extra)
    assert r.returncode == 0, r.stderr[-400:]
    with open(out, "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, dtype="<f4").reshape(len(tokens), -1), raw


def greedy(c, w, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(np.argmax(F.forward(c, w, ids, range(c["num_hidden_layers"]))[-1])))
    return ids[len(prompt):]


# the reference itself, against the committed PyTorch logits of the fixtures as stored
for arch in ARCHS:
    def reference_matches_torch(arch=arch):
        c, w = F.fixture_weights(arch)
        exp = json.load(open(os.path.join(F.FIXTURES, arch, "expected.json")))
        for name, sched in SCHEDULES.items():
            torch_logits = np.fromfile(os.path.join(F.FIXTURES, arch, exp["logits"][name]), dtype="<f4")
            err = np.abs(F.forward(c, w, exp["tokens"], sched) - torch_logits.reshape(len(exp["tokens"]), -1)).max()
            assert err < 1e-5, "%s: max |numpy - torch| = %g" % (name, err)
    attempt("the numpy reference equals the fixtures' PyTorch logits (%s)" % arch, reference_matches_torch)

# every layout on every architecture: score (two schedules) and generate against the reference
for layout in F.LAYOUTS:
    for arch in ARCHS:
        model = os.path.join(TMP, "%s-%s" % (arch, layout))
        c, w = F.write_fp8_checkpoint(arch, layout, model)
        toks = tokens_of(arch)

        def scores(model=model, c=c, w=w, toks=toks):
            worst = 0.0
            for name, sched in SCHEDULES.items():
                got, _ = score_logits(model, toks, "--schedule", name, "--kv-dtype", "f32")
                err = np.abs(got - F.forward(c, w, toks, sched)).max()
                worst = max(worst, err)
                assert err <= 1e-4, "%s: max |reprise - numpy| = %g" % (name, err)
            print("     %s %s: max |dlogit| %.2g" % (arch, layout, worst))
        attempt("score on %s in %s equals the dequantized reference (max |dlogit| <= 1e-4)" % (arch, layout), scores)

        def generates(model=model, c=c, w=w, toks=toks):
            r = run("generate", "-m", model, "--tokens", ",".join(map(str, toks[:6])), "-n", "6", "--temp", "0",
                    "--kv-dtype", "f32", "-t", "1")
            assert r.returncode == 0, r.stderr[-400:]
            got, want = [int(t) for t in r.stdout.split()], greedy(c, w, toks[:6], 6)
            assert got == want, "reprise %s, numpy %s" % (got, want)
        attempt("generate's greedy ids on %s in %s equal the reference's" % (arch, layout), generates)

# chunking: a prompt in one pass, 5 rows a step, one row a step: the same bits (each output's sums do not depend on
# the other rows of the step: the batch invariance the sweep and the server rely on)
for arch, layout in (("llama", "ct-block"), ("qwen3", "ct-group"), ("qwen2", "ct-channel")):
    def invariant(arch=arch, layout=layout):
        model, toks = os.path.join(TMP, "%s-%s" % (arch, layout)), tokens_of(arch)
        whole = score_logits(model, toks)[1]
        for ub in ("5", "1"):
            assert score_logits(model, toks, "--ubatch", ub)[1] == whole, "--ubatch %s differs" % ub
    attempt("%s in %s: logits bit-identical in one pass, 5 rows and 1 row a step" % (arch, layout), invariant)

# export --weights fp8: the codes and scales of the numpy quantizer, read back to --weights fp8's bits
def export_round_trip():
    src, out, again = os.path.join(F.FIXTURES, "llama"), os.path.join(TMP, "export"), os.path.join(TMP, "export2")
    r = run("export", "-m", src, "--schedule", "rys:1,3", "--weights", "fp8", "-o", out)
    assert r.returncode == 0, r.stderr
    toks = tokens_of("llama")
    a = score_logits(out, toks)[1]
    b = score_logits(src, toks, "--schedule", "rys:1,3", "--weights", "fp8")[1]
    assert a == b, "the export's logits differ from --weights fp8's"
    q = json.load(open(os.path.join(out, "config.json")))["quantization_config"]
    assert q["quant_method"] == "compressed-tensors" and q["format"] == "float-quantized", q
    assert q["config_groups"]["group_0"]["weights"]["strategy"] == "channel", q
    mine, theirs = F.read_model(out), F.read_model(src)
    for v, layer in enumerate(SCHEDULES["rys:1,3"]):
        for p in F.PROJECTIONS:
            dtype, shape, codes = mine["model.layers.%d.%s.weight" % (v, p)]
            sdtype, sshape, scale = mine["model.layers.%d.%s.weight_scale" % (v, p)]
            assert dtype == "F8_E4M3" and sdtype == "F32" and sshape == [shape[0], 1], (dtype, sdtype, sshape)
            sd, _, arr = theirs["model.layers.%d.%s.weight" % (layer, p)]
            want_codes, want_scale = F.quantize(F.value_of(sd, arr).astype(np.float32), (1, 0), "F32")
            assert np.array_equal(codes, want_codes), "layer %d %s: codes differ from numpy's quantizer" % (v, p)
            assert np.array_equal(scale.reshape(-1), want_scale.reshape(-1)), "layer %d %s: scales differ" % (v, p)
    r = run("export", "-m", out, "--schedule", "base", "-o", again)
    assert r.returncode == 0, r.stderr
    assert open(os.path.join(out, "model.safetensors"), "rb").read() == open(os.path.join(again, "model.safetensors"), "rb").read()
    r = run("export", "-m", out, "--schedule", "base", "--weights", "fp8", "-o", again)
    assert r.returncode == 1 and "FP8 already" in r.stderr, r.stderr
attempt("export --weights fp8: numpy's codes and scales, read back to --weights fp8's logits bit for bit, "
        "re-exported unchanged", export_round_trip)

def inspect_says():
    r = run("inspect", "-m", os.path.join(TMP, "mistral-fp8-block"))
    assert r.returncode == 0, r.stderr
    assert "fp8, a scale per 16x48 block" in r.stdout and "weights on a GPU (fp8)" in r.stdout, r.stdout
attempt("inspect names the layout and plans FP8 bytes", inspect_says)

# malformed checkpoints, each refused by `score` with an error that names the tensor or the field
def malformed(name, edit, want):
    model = os.path.join(TMP, "bad-" + name)
    shutil.rmtree(model, ignore_errors=True)
    F.write_fp8_checkpoint("llama", "ct-channel", model)
    tensors = F.read_safetensors(os.path.join(model, "model.safetensors"))
    cfg = json.load(open(os.path.join(model, "config.json")))
    edit(tensors, cfg)
    tensors = {k: v for k, v in tensors.items() if v is not None}
    F.write_safetensors(os.path.join(model, "model.safetensors"), tensors)
    json.dump(cfg, open(os.path.join(model, "config.json"), "w"))
    for cmd in ("score", "generate"):
        r = run(cmd, "-m", model, "--tokens", "1,2,3", *(["-n", "2"] if cmd == "generate" else []))
        check(r.returncode == 1 and all(s in r.stderr for s in want) and "Sanitizer" not in r.stderr,
              "%s: %s refused naming %s (%s)" % (name, cmd, want, r.stderr.strip()[:200]))


Q1 = "model.layers.1.self_attn.q_proj"


def set_scale(value):
    def edit(t, c):
        dtype, shape, arr = t[Q1 + ".weight_scale"]
        f = F.value_of(dtype, arr).astype(np.float32).copy()
        f.reshape(-1)[3] = value
        t[Q1 + ".weight_scale"] = ("F32", shape, f)
    return edit


def scale_shape(t, c):
    dtype, shape, arr = t[Q1 + ".weight_scale"]
    t[Q1 + ".weight_scale"] = (dtype, [shape[0] // 2, 1], arr[:shape[0] // 2])


def nan_code(t, c):
    dtype, shape, arr = t[Q1 + ".weight"]
    a = arr.copy()
    a[2, 5] = 0x7f
    t[Q1 + ".weight"] = (dtype, shape, a)


def e5m2(t, c):
    dtype, shape, arr = t[Q1 + ".weight"]
    t[Q1 + ".weight"] = ("F8_E5M2", shape, arr)


def ct_weights(**fields):
    def edit(t, c):
        c["quantization_config"]["config_groups"]["group_0"]["weights"].update(fields)
    return edit


malformed("missing-scale", lambda t, c: t.__setitem__(Q1 + ".weight_scale", None), [Q1 + ".weight_scale", "missing"])
malformed("scale-shape", scale_shape, [Q1 + ".weight_scale", "shape [32, 1]", "[64, 1]"])
malformed("nan-scale", set_scale(np.nan), [Q1 + ".weight_scale", "[3, 0] is nan"])
malformed("zero-scale", set_scale(0.0), [Q1 + ".weight_scale", "[3, 0] is 0", "finite and positive"])
malformed("negative-scale", set_scale(-0.5), [Q1 + ".weight_scale", "is -0.5"])
malformed("nan-code", nan_code, [Q1 + ".weight", "[2, 5] is the NaN code"])
malformed("e5m2", e5m2, [Q1 + ".weight", "F8_E5M2"])
malformed("no-config", lambda t, c: c.pop("quantization_config"), ["F8_E4M3", "no quantization_config"])
malformed("awq", lambda t, c: c.__setitem__("quantization_config", {"quant_method": "awq", "bits": 4}),
          ["quant_method 'awq' is not read"])
malformed("int4", ct_weights(num_bits=4, type="int"), ["config_groups.group_0.weights", "4-bit int"])
malformed("strategy", ct_weights(strategy="tensor_group"), ["strategy 'tensor_group' is not read"])
malformed("asymmetric", ct_weights(symmetric=False), ["asymmetric"])
malformed("packed", lambda t, c: c["quantization_config"].__setitem__("format", "pack-quantized"),
          ["format 'pack-quantized' is not read"])
malformed("block-size", lambda t, c: c.__setitem__("quantization_config", {"quant_method": "fp8", "weight_block_size": [128]}),
          ["weight_block_size"])

# the emulated CUDA backend (W8A16: the codes widened in the GEMM; a scale a row in the epilogue, or scales along a
# row applied to each group's chain; activations and KV in BF16): every layout against the reference within BF16's
# rounding (2% of the logits' range, as the CUDA backend's BF16 forward against the CPU's), the same greedy ids;
# --tp 2 (two emulated GPUs) where a rank's columns start inside a group of scales (llama's down_proj from column 48
# in groups of 32), and refused by name where that start is not a multiple of 16 (mistral's o_proj from column 24)
if EMU:
    def on_cuda(arch, layout, *extra):
        model, toks = os.path.join(TMP, "%s-%s" % (arch, layout)), tokens_of(arch)
        c, w = F.write_fp8_checkpoint(arch, layout, model)
        out = os.path.join(TMP, "cuda.f32")
        r = run("score", "-m", model, "--tokens", ",".join(map(str, toks)), "--backend", "cuda", "--dump-logits", out, *extra,
                binary=EMU)
        assert r.returncode == 0, r.stderr[-400:]
        got = np.fromfile(out, dtype="<f4").reshape(len(toks), -1)
        ref = F.forward(c, w, toks, SCHEDULES["base"])
        err, tol = np.abs(got - ref).max(), 0.02 * np.abs(ref).max()
        print("     %s %s on cuda%s: max |dlogit| %.3g (max |logit| %.3g)" % (arch, layout, " " + " ".join(extra) if extra else "",
                                                                              err, np.abs(ref).max()))
        assert err <= tol, "max |reprise - numpy| = %g > %g" % (err, tol)
        r = run("generate", "-m", model, "--tokens", ",".join(map(str, toks[:6])), "-n", "4", "--temp", "0",
                "--backend", "cuda", *extra, binary=EMU)
        assert r.returncode == 0, r.stderr[-400:]
        got_ids, want = [int(t) for t in r.stdout.split()], greedy(c, w, toks[:6], 4)
        assert got_ids == want, "greedy: reprise %s, numpy %s" % (got_ids, want)
    for layout in F.LAYOUTS:
        for arch in ARCHS:
            attempt("the emulated CUDA backend runs %s in %s: score within 2%% of the range, greedy ids equal" % (arch, layout),
                    lambda arch=arch, layout=layout: on_cuda(arch, layout))
    for layout in ("ct-group", "ct-block", "fp8-block"):
        attempt("--tp 2 on the emulated CUDA backend runs llama in %s (ranks' columns inside groups of scales)" % layout,
                lambda layout=layout: on_cuda("llama", layout, "--tp", "2"))
    for arch, layout in (("llama", "fp8-block"), ("qwen3", "ct-group")):   # batch invariance with scales along a row
        def invariant_on_cuda(arch=arch, layout=layout):
            model, toks, out = os.path.join(TMP, "%s-%s" % (arch, layout)), tokens_of(arch), os.path.join(TMP, "cuda.f32")
            runs = []
            for extra in ((), ("--ubatch", "5"), ("--ubatch", "1")):
                r = run("score", "-m", model, "--tokens", ",".join(map(str, toks)), "--backend", "cuda", "--dump-logits", out,
                        *extra, binary=EMU)
                assert r.returncode == 0, r.stderr[-400:]
                runs.append(open(out, "rb").read())
            assert runs[1] == runs[0] and runs[2] == runs[0], "the logits differ with the rows a step"
        attempt("%s in %s on the emulated CUDA backend: logits bit-identical in one pass, 5 rows and 1 row a step"
                % (arch, layout), invariant_on_cuda)
    r = run("score", "-m", os.path.join(TMP, "mistral-ct-block"), "--tokens", "1,2,3", "--backend", "cuda", "--tp", "2",
            binary=EMU)
    check(r.returncode == 1 and "--tp 2" in r.stderr and "o_proj" in r.stderr and "multiple of 16" in r.stderr,
          "--tp 2 refuses mistral in ct-block (rank 1's o_proj columns start 24 into a group), naming why (%s)"
          % r.stderr.strip()[-200:])

shutil.rmtree(TMP, ignore_errors=True)
finish()
