#!/usr/bin/env python3
"""Writes a checkpoint whose safetensors header is real and whose data is a sparse hole: `reprise inspect` sees a
72B model in milliseconds and no disk is used. usage: sparse_checkpoint.py OUT_DIR CONFIG_JSON [--random SEED]
CONFIG_JSON is a config.json's text (llama or qwen2 shapes); every tensor is BF16, in one file. With --random, the
data is written: seeded random weights of magnitude 1/32 to 1/4 and norms of 1 (a small model that runs, at any
vocabulary, for tests of what surrounds the numbers: text in and out, the server)."""
import json
import os
import random
import struct
import sys

out, cfg = sys.argv[1], json.loads(sys.argv[2])
seed = int(sys.argv[sys.argv.index("--random") + 1]) if "--random" in sys.argv else None
d, hid, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
hd = cfg.get("head_dim", d // heads)
V, bias = cfg["vocab_size"], cfg.get("model_type") == "qwen2"
shapes = {"model.embed_tokens.weight": [V, d], "model.norm.weight": [d]}
if not cfg.get("tie_word_embeddings", False):
    shapes["lm_head.weight"] = [V, d]
for l in range(L):
    p = "model.layers.%d." % l
    shapes[p + "input_layernorm.weight"] = [d]
    shapes[p + "post_attention_layernorm.weight"] = [d]
    shapes[p + "self_attn.q_proj.weight"] = [heads * hd, d]
    shapes[p + "self_attn.k_proj.weight"] = [kv * hd, d]
    shapes[p + "self_attn.v_proj.weight"] = [kv * hd, d]
    shapes[p + "self_attn.o_proj.weight"] = [d, heads * hd]
    if bias:
        shapes[p + "self_attn.q_proj.bias"] = [heads * hd]
        shapes[p + "self_attn.k_proj.bias"] = [kv * hd]
        shapes[p + "self_attn.v_proj.bias"] = [kv * hd]
    shapes[p + "mlp.gate_proj.weight"] = [hid, d]
    shapes[p + "mlp.up_proj.weight"] = [hid, d]
    shapes[p + "mlp.down_proj.weight"] = [d, hid]
header, at = {}, 0
for name, shape in shapes.items():
    n = 2
    for s in shape:
        n *= s
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [at, at + n]}
    at += n
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
os.makedirs(out, exist_ok=True)


def random_bf16(rng, n):
    """n BF16 values: a random sign and 7 mantissa bits, exponent 122 or 124 (little-endian bytes)."""
    raw, data = rng.randbytes(2 * n), bytearray(2 * n)
    data[0::2] = raw[0::2].translate(bytes(b & 0x7F for b in range(256)))
    data[1::2] = raw[1::2].translate(bytes((b & 0x80) | (0x3D + (b & 1)) for b in range(256)))
    return bytes(data)


with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    if seed is None:
        f.truncate(8 + len(h) + at)   # the data: a hole
    else:
        rng = random.Random(seed)
        for name in shapes:
            n = (header[name]["data_offsets"][1] - header[name]["data_offsets"][0]) // 2
            f.write(b"\x80\x3f" * n if "norm" in name else random_bf16(rng, n))
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(cfg, f)
