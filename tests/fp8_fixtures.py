"""FP8 checkpoints as they are published, made from the test fixtures, and an independent numpy reference.

Writes a fixture model (tests/fixtures/<arch>) again with its projections in FP8 E4M3 in one of the published
layouts: compressed-tensors "float-quantized" (strategy tensor, channel, group or block; `weight_scale`) or the
"fp8" layout (`weight_scale` per tensor, or `weight_block_size` blocks with `weight_scale_inv`), with config.json's
quantization_config saying which. The reference dequantizes (code value x scale, float64) and runs the forward in
float64 with numpy, written from the HF modeling semantics (not from reprise's code).

Standalone: python3 tests/fp8_fixtures.py ARCH LAYOUT OUT_DIR writes one checkpoint (ARCH llama, qwen2, qwen3,
mistral; LAYOUT one of LAYOUTS below).
"""
import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")

# layout: (quantization_config, scale tensor's name, (block rows, block cols) with 0 = the whole dimension, scale dtype)
LAYOUTS = {
    "ct-tensor": (dict(quant_method="compressed-tensors", format="float-quantized",
                       config_groups=dict(group_0=dict(targets=["Linear"], weights=dict(
                           num_bits=8, type="float", symmetric=True, dynamic=False, strategy="tensor")))),
                  "weight_scale", (0, 0), "F32"),
    "ct-channel": (dict(quant_method="compressed-tensors", format="float-quantized",
                        config_groups=dict(group_0=dict(targets=["Linear"], weights=dict(
                            num_bits=8, type="float", symmetric=True, dynamic=False, strategy="channel"),
                            input_activations=dict(num_bits=8, type="float", symmetric=True, dynamic=True,
                                                   strategy="token")))),
                   "weight_scale", (1, 0), "BF16"),
    "ct-group": (dict(quant_method="compressed-tensors", format="float-quantized",
                      config_groups=dict(group_0=dict(targets=["Linear"], weights=dict(
                          num_bits=8, type="float", symmetric=True, dynamic=False, strategy="group", group_size=32)))),
                 "weight_scale", (1, 32), "F32"),
    "ct-block": (dict(quant_method="compressed-tensors", format="float-quantized",
                      config_groups=dict(group_0=dict(targets=["Linear"], weights=dict(
                          num_bits=8, type="float", symmetric=True, dynamic=False, strategy="block",
                          block_structure=[32, 32])))),
                 "weight_scale", (32, 32), "BF16"),
    "fp8-tensor": (dict(quant_method="fp8", activation_scheme="static"), "weight_scale", (0, 0), "F32"),
    "fp8-block": (dict(quant_method="fp8", fmt="e4m3", activation_scheme="dynamic", weight_block_size=[16, 48]),
                  "weight_scale_inv", (16, 48), "F32"),
}
PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
               "mlp.up_proj", "mlp.down_proj")
# left in 16 bits by every layout's "ignore" list, as published checkpoints leave some modules
IGNORED = "model.layers.0.mlp.down_proj"

# ---- E4M3 and BF16, from their definitions

def e4m3_values():
    code = np.arange(256)
    sign, e, m = code >> 7, (code >> 3) & 15, code & 7
    mag = np.where(e == 0, m * 2.0 ** -9, (1 + m / 8.0) * 2.0 ** (e - 7.0))
    mag = np.where((e == 15) & (m == 7), np.nan, mag)
    return np.where(sign == 1, -mag, mag)


E4M3 = e4m3_values()


def e4m3_encode(x):
    """The nearest code to each float, ties to the even code, saturating at 448."""
    mags = E4M3[:0x7f]   # 0x00..0x7e, increasing
    a = np.abs(x.astype(np.float64))
    lo = np.clip(np.searchsorted(mags, a, side="right") - 1, 0, 0x7e)
    hi = np.minimum(lo + 1, 0x7e)
    d_lo, d_hi = a - mags[lo], mags[hi] - a
    up = (lo < 0x7e) & ((d_hi < d_lo) | ((d_hi == d_lo) & (lo % 2 == 1)))
    code = np.where(a >= 448.0, 0x7e, np.where(up, hi, lo))
    return (code | np.where(np.signbit(x), 0x80, 0)).astype(np.uint8)


def bf16_bits(x32):
    u = x32.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)

# ---- safetensors

NP_DTYPE = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F8_E4M3": "u1", "F8_E5M2": "u1"}


def read_safetensors(path):
    """name -> (dtype, shape, raw numpy array)"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        out[name] = (h["dtype"], h["shape"], np.frombuffer(data[a:b], dtype=NP_DTYPE[h["dtype"]]).reshape(h["shape"]))
    return out


def read_model(d):
    """Every tensor of a checkpoint directory (one file or shards)."""
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            out.update(read_safetensors(os.path.join(d, f)))
    return out


def write_safetensors(path, tensors):
    """tensors: name -> (dtype, shape, numpy array of NP_DTYPE[dtype])"""
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        dtype, shape, arr = tensors[name]
        b = np.ascontiguousarray(arr).astype(NP_DTYPE[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def value_of(dtype, arr):
    """A tensor's values, float64."""
    if dtype == "BF16":
        return bf16_value(arr).astype(np.float64)
    if dtype == "F8_E4M3":
        return E4M3[arr].astype(np.float64)
    return arr.astype(np.float64)

# ---- quantization into the layouts

def grid(shape, block):
    rows = -(-shape[0] // block[0]) if block[0] else 1
    cols = -(-shape[1] // block[1]) if block[1] else 1
    return rows, cols


def expand(scale_grid, shape, block):
    """A scale for every weight."""
    r = np.arange(shape[0]) // block[0] if block[0] else np.zeros(shape[0], int)
    c = np.arange(shape[1]) // block[1] if block[1] else np.zeros(shape[1], int)
    return scale_grid[np.ix_(r, c)]


def quantize(w32, block, scale_dtype):
    """Codes and the scale grid (as stored): each block's scale is its largest magnitude / 448 (float32, then the
    scale dtype's rounding), each code the nearest to weight / scale in float32."""
    rows, cols = grid(w32.shape, block)
    amax = np.zeros((rows, cols), np.float32)
    full = expand(np.arange(rows * cols).reshape(rows, cols), w32.shape, block)
    np.maximum.at(amax.reshape(-1), full.reshape(-1), np.abs(w32).reshape(-1))
    scale = np.where(amax > 0, amax / np.float32(448.0), np.float32(1.0)).astype(np.float32)
    stored = bf16_bits(scale) if scale_dtype == "BF16" else scale
    scale_used = bf16_value(stored) if scale_dtype == "BF16" else scale
    codes = e4m3_encode((w32 / expand(scale_used, w32.shape, block)).astype(np.float32))
    return codes, stored


def write_fp8_checkpoint(arch, layout, out_dir):
    """Writes the fixture `arch` in `layout` to out_dir; returns (config, the reference's float64 weights)."""
    qc, scale_name, block, scale_dtype = LAYOUTS[layout]
    src = os.path.join(FIXTURES, arch)
    cfg = json.load(open(os.path.join(src, "config.json")))
    tensors, weights = {}, {}
    for name, (dtype, shape, arr) in read_model(src).items():
        base = name[:-len(".weight")] if name.endswith(".weight") else None
        if base and base.split(".", 3)[-1] in PROJECTIONS and base != IGNORED:
            w32 = value_of(dtype, arr).astype(np.float32)
            codes, stored = quantize(w32, block, scale_dtype)
            tensors[name] = ("F8_E4M3", shape, codes)
            rows, cols = grid(shape, block)
            sshape = [] if layout == "fp8-tensor" else [rows] if cols == 1 and layout == "ct-tensor" else [rows, cols]
            tensors[base + "." + scale_name] = (scale_dtype, sshape, stored.reshape(sshape))
            weights[name] = E4M3[codes].astype(np.float64) * expand(value_of(scale_dtype, stored).reshape(rows, cols), shape, block)
        else:
            tensors[name] = (dtype, shape, arr)
            weights[name] = value_of(dtype, arr)
    qc = json.loads(json.dumps(qc))
    if qc["quant_method"] == "fp8":
        qc["modules_to_not_convert"] = [IGNORED, "lm_head"]
    else:
        qc["ignore"] = [IGNORED, "lm_head"]
    cfg["quantization_config"] = qc
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    json.dump(cfg, open(os.path.join(out_dir, "config.json"), "w"), indent=1)
    return cfg, weights


def fixture_weights(arch):
    """The fixture as stored, float64: config and weights."""
    src = os.path.join(FIXTURES, arch)
    return (json.load(open(os.path.join(src, "config.json"))),
            {n: value_of(d, a) for n, (d, s, a) in read_model(src).items()})

# ---- the reference forward, float64, the whole sequence at once with a causal mask

def rope_inv_freq(c, hd):
    inv = 1.0 / (c["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    rs = c.get("rope_scaling")
    if rs:
        factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        inv = np.where(wavelen > old / lo, inv / factor,
                       np.where(wavelen < old / hi, inv, (1 - smooth) * inv / factor + smooth * inv))
    return inv


def rmsnorm(x, w, eps):
    return w * x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)


def forward(c, w, tokens, schedule):
    """Logits (tokens, vocab) of the layers applied in schedule order."""
    d, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps, T, mt = c.get("head_dim") or d // nh, c["rms_norm_eps"], len(tokens), c["model_type"]
    ang = np.arange(T)[:, None] * rope_inv_freq(c, hd)[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(t):   # (T, heads, hd): pairs (i, i + hd/2) rotated
        a, b = t[..., :hd // 2], t[..., hd // 2:]
        return np.concatenate((a * cos[:, None] - b * sin[:, None], b * cos[:, None] + a * sin[:, None]), -1)

    causal = np.triu(np.full((T, T), -np.inf), 1)
    x = w["model.embed_tokens.weight"][tokens]
    for l in schedule:
        p = "model.layers.%d." % l
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)
        q, k, v = (h @ w[p + "self_attn.%s_proj.weight" % n].T for n in "qkv")
        if mt == "qwen2":
            q, k, v = (t + w[p + "self_attn.%s_proj.bias" % n] for t, n in zip((q, k, v), "qkv"))
        q, k, v = q.reshape(T, nh, hd), k.reshape(T, nkv, hd), v.reshape(T, nkv, hd)
        if mt == "qwen3":
            q, k = rmsnorm(q, w[p + "self_attn.q_norm.weight"], eps), rmsnorm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q), rope(k)
        k, v = np.repeat(k, nh // nkv, axis=1), np.repeat(v, nh // nkv, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd) + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        o = np.einsum("hts,shd->thd", s / s.sum(-1, keepdims=True), v).reshape(T, nh * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        g, u = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    head = w["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else w["lm_head.weight"]
    return rmsnorm(x, w["model.norm.weight"], eps) @ head.T


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in LAYOUTS:
        sys.exit("usage: fp8_fixtures.py ARCH LAYOUT OUT_DIR (LAYOUT: %s)" % ", ".join(LAYOUTS))
    write_fp8_checkpoint(sys.argv[1], sys.argv[2], sys.argv[3])
