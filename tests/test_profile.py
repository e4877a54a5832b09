# reprise profile against numpy: every metric recomputed from the hidden states it dumps, and the states tied to the
# model's real forward (the last one, through the final norm and the tied LM head, gives `reprise score`'s logits).
import csv, json, os, struct, subprocess, sys, tempfile
import numpy as np

BIN = sys.argv[1]
MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "default_model")
T = tempfile.mkdtemp()
fail = 0


def check(name, ok, detail=""):
    global fail
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    fail |= not ok


def metrics(S):
    """S: (tokens, B, dim) float64. The profile's definitions (tools/profile/metrics.h)."""
    n = np.linalg.norm(S, axis=2)                                  # (T, B)
    G = np.einsum("tad,tbd->tab", S, S)
    cos = np.clip(G / (n[:, :, None] * n[:, None, :]), -1, 1)
    ang = (np.arccos(cos) / np.pi).mean(0)
    infl = 1 - cos.mean(0)
    H = S - S.mean(0, keepdims=True)
    CG = np.einsum("tad,tbd->ab", H, H)
    cen = CG / np.sqrt(np.outer(np.diag(CG), np.diag(CG)))
    U = S[:, 1:] - S[:, :-1]
    un = np.linalg.norm(U, axis=2)
    upd = un.mean(0)
    rel = (un / n[:, :-1]).mean(0)
    corr = (np.einsum("tad,tad->ta", U[:, :-1], U[:, 1:]) / (un[:, :-1] * un[:, 1:])).mean(0)
    B = S.shape[1]
    off = cen[~np.eye(B, dtype=bool)].mean()
    best, zone = -np.inf, (0, 0)
    for s in range(1, B - 1):
        for e in range(s + 1, B):
            v = sum((cen[a:b, a:b] - off).sum() for a, b in ((0, s), (s, e), (e, B)))
            if v > best + 1e-12: best, zone = v, (s, e)
    return ang, infl, cen, upd, rel, corr, zone


def compare(name, out, S):
    ang, infl, cen, upd, rel, corr, zone = metrics(S)
    B = S.shape[1]
    worst = 0.0
    with open(os.path.join(out, "blocks.csv")) as f:
        rows = list(csv.DictReader(f))
    check(f"{name}: blocks.csv has every block i < j", len(rows) == B * (B - 1) // 2, str(len(rows)))
    for r in rows:
        i, j = int(r["i"]), int(r["j"])
        for key, ref in (("angular_distance", ang), ("block_influence", infl), ("centred_cosine", cen)):
            worst = max(worst, abs(float(r[key]) - ref[i, j]))
    with open(os.path.join(out, "layers.csv")) as f:
        lrows = list(csv.DictReader(f))
    for r in lrows:
        a = int(r["visit"])
        worst = max(worst, abs(float(r["update_norm"]) - upd[a]) / max(1.0, upd[a]), abs(float(r["relative_update_norm"]) - rel[a]))
        if a + 2 < B: worst = max(worst, abs(float(r["neighbour_update_cosine"]) - corr[a]))
        else: check(f"{name}: the last visit has no neighbour update", r["neighbour_update_cosine"] == "")
    j = json.load(open(os.path.join(out, "profile.json")))
    for key, ref in (("angular_distance", ang), ("block_influence", infl), ("centred_cosine", cen)):
        worst = max(worst, float(np.nanmax(np.abs(np.array(j["matrices"][key], dtype=float) - ref))))
    check(f"{name}: every metric within 1e-6 of numpy's (worst {worst:.2e})", worst < 1e-6)
    got = (j["reasoning_zone"]["start"], j["reasoning_zone"]["end"])
    check(f"{name}: the reasoning zone {got} is numpy's split", got == zone, str(zone))
    check(f"{name}: tokens counted", j["tokens"] == S.shape[0], f'{j["tokens"]} vs {S.shape[0]}')
    for png in ("block_distance.png", "centred_cosine.png", "layers.png"):
        p = os.path.join(out, png)
        if os.path.exists(p): check(f"{name}: {png} is a PNG", open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n")


def load_npy(path):
    return np.load(path).astype(np.float64)


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"]).astype(np.float64)
    return out


# 1. a text prompt on the base schedule; its last states give the model's logits
text = "12+34=46\n7*8=56\n99+1=100\n"
a = os.path.join(T, "a")
subprocess.run([BIN, "profile", "-p", text, "--out", a, "--dump-states", a + ".npy"], check=True, capture_output=True)
S = load_npy(a + ".npy")
check("text prompt: states are [tokens][visits + 1][dim]", S.shape[1:] == (7, 128), str(S.shape))
compare("base", a, S)
subprocess.run([BIN, "score", "-p", text, "--dump-logits", os.path.join(T, "logits.f32")], check=True, capture_output=True)
logits = np.fromfile(os.path.join(T, "logits.f32"), dtype=np.float32).reshape(-1, 16)[1:]   # position 0 is not counted
w = tensors(os.path.join(MODEL, "model.safetensors"))
cfg = json.load(open(os.path.join(MODEL, "config.json")))
x = S[:, -1]
x = x / np.sqrt((x * x).mean(1, keepdims=True) + cfg["rms_norm_eps"]) * w["model.norm.weight"]
mine = x @ w["model.embed_tokens.weight"].T
err = float(np.abs(mine - logits).max() / np.abs(logits).max())
check(f"the last state through the final norm and LM head is reprise score's logits (relative error {err:.1e})",
      logits.shape == mine.shape and err < 1e-4)

# 2. probe items through the chat template, on a schedule with a repeated block: states follow its visits
b = os.path.join(T, "b")
subprocess.run([BIN, "profile", "--probe", "arith", "--items", "6", "--schedule", "rys:1,4", "--ubatch", "5", "--out", b,
                "--dump-states", b + ".npy"], check=True, capture_output=True)
S = load_npy(b + ".npy")
check("rys:1,4: 9 visits, 10 states", S.shape[1] == 10, str(S.shape))
compare("rys:1,4 in chunks of 5 tokens", b, S)
with open(os.path.join(b, "layers.csv")) as f:
    layers = [int(r["layer"]) for r in csv.DictReader(f)]
check("layers.csv names each visit's layer", layers == [0, 1, 2, 3, 1, 2, 3, 4, 5], str(layers))

# 3. chunking does not change the states: the same prompts in one chunk and in chunks of 5 tokens
c = os.path.join(T, "c")
subprocess.run([BIN, "profile", "--probe", "arith", "--items", "6", "--schedule", "rys:1,4", "--out", c,
                "--dump-states", c + ".npy"], check=True, capture_output=True)
check("chunks of 5 tokens give the states of one chunk", np.array_equal(load_npy(c + ".npy"), S))

# 4. errors name their cause
r = subprocess.run([BIN, "profile", "--probe", "arith"], capture_output=True, text=True)
check("no --out", r.returncode == 2 and "--out DIR is required" in r.stderr, r.stderr)
r = subprocess.run([BIN, "profile", "--out", os.path.join(T, "e")], capture_output=True, text=True)
check("no prompts", r.returncode == 2 and "give prompts" in r.stderr, r.stderr)
r = subprocess.run([BIN, "profile", "-p", "1+1=", "--schedule", "rys:4,9", "--out", os.path.join(T, "e")], capture_output=True, text=True)
check("a bad schedule", r.returncode == 1 and "--schedule" in r.stderr and "J=9" in r.stderr, r.stderr)
sys.exit(1 if fail else 0)
