#!/usr/bin/python3
"""Trains reprise's built-in default model: a small Llama that does arithmetic, written in HF format.

Run with Debian's python3-torch on a CPU (about 15 minutes on 2 cores, fixed seed):
    /usr/bin/python3 tools/train_default_model.py [--steps N] [--out tools/default_model]
It writes model.safetensors (F32), config.json, generation_config.json, tokenizer.json (a character-level BPE:
no merges, one token per character), tokenizer_config.json and eval.json (held-out accuracy by digit count).
Training is not part of the build; the outputs are committed.

Task: "A+B=" -> the sum and "A*B=" -> the product, then </s>. Addition uses operands of 1 to 4 digits,
multiplication 1 to 2 digits by 1 to 2 digits. A problem is held out of training when a hash of it is 0 mod 10;
eval.json reports exact-match accuracy on 500 held-out problems per (operation, digit count) bucket.
"""
import argparse
import json
import math
import os
import random
import struct
import time
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

CHARS = list("0123456789+*=")
SPECIALS = ["<unk>", "<s>", "</s>"]
VOCAB = SPECIALS + CHARS
ID = {t: i for i, t in enumerate(VOCAB)}
CFG = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=128, intermediate_size=384,
           num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2, vocab_size=len(VOCAB),
           max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
           hidden_act="silu", bos_token_id=1, eos_token_id=2, torch_dtype="float32")


def held_out(op, a, b):
    return zlib.crc32(f"{a}{op}{b}".encode()) % 10 == 0


def sample_problem(rng, op, da, db):
    lo = lambda d: 0 if d == 1 else 10 ** (d - 1)
    a, b = rng.randint(lo(da), 10 ** da - 1), rng.randint(lo(db), 10 ** db - 1)
    return a, b, (a + b if op == "+" else a * b)


BUCKETS = [("+", d, d) for d in (1, 2, 3, 4)] + [("*", 1, 1), ("*", 2, 1), ("*", 2, 2)]


def training_example(rng):
    op, da, db = rng.choice(BUCKETS)
    if op == "+":
        da, db = rng.randint(1, 4), rng.randint(1, 4)
    elif rng.random() < 0.5:
        da, db = db, da
    while True:
        a, b, c = sample_problem(rng, op, da, db)
        if not held_out(op, a, b):
            return f"{a}{op}{b}=", f"{c}"


def encode(prompt, answer):
    return [ID["<s>"]] + [ID[c] for c in prompt] + [ID[c] for c in answer] + [ID["</s>"]]


class Block(nn.Module):
    def __init__(s, c):
        super().__init__()
        d, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        s.hd, s.nh, s.nkv = d // nh, nh, nkv
        s.input_layernorm = nn.Parameter(torch.ones(d))
        s.post_attention_layernorm = nn.Parameter(torch.ones(d))
        s.q_proj, s.k_proj = nn.Linear(d, nh * s.hd, bias=False), nn.Linear(d, nkv * s.hd, bias=False)
        s.v_proj, s.o_proj = nn.Linear(d, nkv * s.hd, bias=False), nn.Linear(nh * s.hd, d, bias=False)
        h = c["intermediate_size"]
        s.gate_proj, s.up_proj, s.down_proj = nn.Linear(d, h, bias=False), nn.Linear(d, h, bias=False), nn.Linear(h, d, bias=False)

    def forward(s, x, cos, sin, eps):
        B, T, _ = x.shape
        h = rmsnorm(x, s.input_layernorm, eps)
        q = s.q_proj(h).view(B, T, s.nh, s.hd).transpose(1, 2)
        k = s.k_proj(h).view(B, T, s.nkv, s.hd).transpose(1, 2)
        v = s.v_proj(h).view(B, T, s.nkv, s.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(s.nh // s.nkv, 1), v.repeat_interleave(s.nh // s.nkv, 1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(s.hd)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        o = att.softmax(-1) @ v
        x = x + s.o_proj(o.transpose(1, 2).reshape(B, T, -1))
        h = rmsnorm(x, s.post_attention_layernorm, eps)
        return x + s.down_proj(F.silu(s.gate_proj(h)) * s.up_proj(h))


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


class Model(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.c = c
        s.embed = nn.Embedding(c["vocab_size"], c["hidden_size"])
        nn.init.normal_(s.embed.weight, std=0.02)
        s.layers = nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        s.norm = nn.Parameter(torch.ones(c["hidden_size"]))
        hd = c["hidden_size"] // c["num_attention_heads"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.arange(c["max_position_embeddings"]).float()[:, None] * inv[None, :]
        s.register_buffer("cos", torch.cat((ang.cos(), ang.cos()), -1), persistent=False)
        s.register_buffer("sin", torch.cat((ang.sin(), ang.sin()), -1), persistent=False)

    def forward(s, ids):
        T = ids.shape[1]
        x = s.embed(ids)
        for layer in s.layers:
            x = layer(x, s.cos[:T], s.sin[:T], s.c["rms_norm_eps"])
        return rmsnorm(x, s.norm, s.c["rms_norm_eps"]) @ s.embed.weight.T

    def state_for_hf(s):
        w = {"model.embed_tokens.weight": s.embed.weight, "model.norm.weight": s.norm}
        for i, l in enumerate(s.layers):
            p = f"model.layers.{i}."
            w[p + "input_layernorm.weight"] = l.input_layernorm
            w[p + "post_attention_layernorm.weight"] = l.post_attention_layernorm
            for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
                w[p + f"self_attn.{n}.weight"] = getattr(l, n).weight
            for n in ("gate_proj", "up_proj", "down_proj"):
                w[p + f"mlp.{n}.weight"] = getattr(l, n).weight
        return {k: v.detach().float().contiguous() for k, v in w.items()}


def batch(rng, n):
    seqs, masks = [], []
    for _ in range(n):
        p, a = training_example(rng)
        ids = encode(p, a)
        seqs.append(ids)
        masks.append([0] * (1 + len(p)) + [1] * (len(a) + 1))   # loss on the answer and </s> only
    T = max(map(len, seqs))
    x = torch.full((n, T), ID["</s>"])
    m = torch.zeros((n, T))
    for i, (s, k) in enumerate(zip(seqs, masks)):
        x[i, :len(s)] = torch.tensor(s)
        m[i, :len(k)] = torch.tensor(k, dtype=torch.float)
    return x, m


@torch.no_grad()
def greedy(model, prompts, max_new=10):
    outs = []
    for p in prompts:
        ids = [ID["<s>"]] + [ID[c] for c in p]
        out = ""
        for _ in range(max_new):
            nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
            if nxt == ID["</s>"]:
                break
            out += VOCAB[nxt] if nxt >= len(SPECIALS) else "?"
            ids.append(nxt)
        outs.append(out)
    return outs


def evaluate(model, per_bucket=500):
    rng = random.Random(7)
    result = {}
    for op, da, db in BUCKETS:
        probs = []
        while len(probs) < per_bucket:
            a, b, c = sample_problem(rng, op, da, db)
            if held_out(op, a, b):
                probs.append((f"{a}{op}{b}=", str(c)))
        got = greedy(model, [p for p, _ in probs])
        acc = sum(g == c for g, (_, c) in zip(got, probs)) / len(probs)
        result[f"{da}-digit {op} {db}-digit"] = round(acc, 4)
    return result


def write_outputs(model, out):
    os.makedirs(out, exist_ok=True)
    tensors = model.state_for_hf()
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        b = tensors[name].numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CFG, f, indent=1)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "do_sample": False}, f, indent=1)
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, t in enumerate(SPECIALS)],
        "normalizer": None, "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                    {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Fuse"},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": False, "ignore_merges": False,
                  "vocab": ID, "merges": []},
    }
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
                   "model_max_length": CFG["max_position_embeddings"],
                   # reprise's `plain` chat template (loader/chat_template.h): each chat line is a problem of its own
                   "chat_template": "{{ bos_token }}{{ messages[-1]['content'] }}"}, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model"))
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    model = Model(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01, betas=(0.9, 0.98))
    t0 = time.time()
    for step in range(args.steps):
        lr = 3e-3 * min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        x, m = batch(rng, args.batch)
        logits = model(x[:, :-1])
        loss = (F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
                * m[:, 1:].reshape(-1)).sum() / m[:, 1:].sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {time.time() - t0:.0f}s", flush=True)
    model.eval()
    acc = evaluate(model)
    print(json.dumps(acc, indent=1))
    write_outputs(model, args.out)
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump({"steps": args.steps, "batch": args.batch, "seed": 0, "train_seconds": round(time.time() - t0),
                   "held_out_exact_match": acc}, f, indent=1)


if __name__ == "__main__":
    main()
