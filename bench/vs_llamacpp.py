#!/usr/bin/env python3
"""reprise's CPU backend against llama.cpp on the same random model, the same threads, interleaved runs.

usage: LLAMA_CPP=DIR bench/vs_llamacpp.py [--build DIR] [--work DIR] [-t N] [-p N] [-n N] [--rounds N]

LLAMA_CPP is a llama.cpp source tree built with llama-bench (DIR/build/bin/llama-bench) and holding its gguf-py.
One random Llama (hidden 768, 12 layers, 12 heads, 4 KV heads, FFN 2048, vocabulary 32000: bench_cpu's 100M model)
is written as HF safetensors (BF16, and widened to F32) and as GGUF with llama.cpp's own gguf-py (the same values,
Q and K rows permuted as convert_hf_to_gguf.py does). Each case runs llama-bench (flash attention off) and
`reprise bench --backend cpu` one after the other, --rounds times, and the table shows the medians with ratios.
The 16-visit schedule rys:4,8 (layers 0-7 then 4-11) runs in reprise on the 12-layer weights; llama.cpp gets a
GGUF with those 16 blocks physically duplicated. Needs numpy (Debian: python3-numpy).
"""
import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCHEDULE_16 = "rys:4,8"
LAYERS_16 = list(range(0, 8)) + list(range(4, 12))

HF_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def die(msg):
    sys.exit(f"vs_llamacpp: {msg}")


def read_safetensors(path, np):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        dt = {"BF16": np.uint16, "F32": np.float32}[t["dtype"]]
        out[name] = (t["dtype"], np.frombuffer(data[a:b], dtype=dt).reshape(t["shape"]))
    return out


def write_safetensors_f32(path, tensors, np):
    header, blobs, at = {}, [], 0
    for name, (dtype, arr) in tensors.items():
        f = widen(dtype, arr, np)
        b = f.tobytes()
        header[name] = {"dtype": "F32", "shape": list(f.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def widen(dtype, arr, np):
    return arr if dtype == "F32" else (arr.astype(np.uint32) << 16).view(np.float32)


def permute(w, n_head):
    # convert_hf_to_gguf.py's LlamaModel.permute: HF's rotate-half rows to GGUF's interleaved pairs
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, cfg, tensors, layers, as_bf16, gguf, np):
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(len(layers))
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if as_bf16 else gguf.LlamaFileType.ALL_F32)
    # a SentencePiece-style vocabulary of the model's size: llama.cpp needs one to load; the benchmark never decodes
    vocab = cfg["vocab_size"]
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    toks += [f"tok{i}" for i in range(vocab - len(toks))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    types += [gguf.TokenType.NORMAL] * (vocab - len(types))
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def put(name, dtype, arr):
        if arr.ndim == 1 or not as_bf16:   # norms stay F32, as convert_hf_to_gguf.py keeps them
            w.add_tensor(name, np.ascontiguousarray(widen(dtype, arr, np)))
        else:
            bits = arr if dtype == "BF16" else (arr.view(np.uint32) >> 16).astype(np.uint16)
            w.add_tensor(name, np.ascontiguousarray(bits), raw_dtype=gguf.GGMLQuantizationType.BF16)

    put("token_embd.weight", *tensors["model.embed_tokens.weight"])
    put("output_norm.weight", *tensors["model.norm.weight"])
    if "lm_head.weight" in tensors:
        put("output.weight", *tensors["lm_head.weight"])
    for b, l in enumerate(layers):
        for hf, gg in HF_TO_GGUF.items():
            dtype, arr = tensors[f"model.layers.{l}.{hf}"]
            if hf.startswith("self_attn.q_proj"):
                arr = permute(arr, cfg["num_attention_heads"])
            elif hf.startswith("self_attn.k_proj"):
                arr = permute(arr, cfg["num_key_value_heads"])
            put(f"blk.{b}.{gg}", dtype, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_json(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        die(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    rows = json.loads(r.stdout)
    return {("pp" if row["n_prompt"] else "tg"): row["avg_ts"] for row in rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="reprise build folder (default ./build)")
    ap.add_argument("--work", default="/tmp/reprise_vs_llamacpp", help="where the models are written")
    ap.add_argument("-t", type=int, default=os.cpu_count(), help="threads for both engines (default: all cores)")
    ap.add_argument("-p", type=int, default=128, help="prompt tokens (default 128)")
    ap.add_argument("-n", type=int, default=64, help="generated tokens (default 64)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs of each engine per case (default 3)")
    a = ap.parse_args()
    llama = os.environ.get("LLAMA_CPP")
    if not llama:
        die("set LLAMA_CPP to a llama.cpp source tree built with llama-bench (see the README)")
    llama_bench = os.path.join(llama, "build", "bin", "llama-bench")
    if not os.access(llama_bench, os.X_OK):
        die(f"{llama_bench}: not found (build it: cmake -B build && cmake --build build --target llama-bench)")
    sys.path.insert(0, os.path.join(llama, "gguf-py"))
    try:
        import numpy as np
        import gguf
    except ImportError as e:
        die(f"{e}: gguf-py needs numpy (Debian: apt-get install python3-numpy; run with /usr/bin/python3)")
    reprise, bench_cpu = os.path.join(a.build, "reprise"), os.path.join(a.build, "bench_cpu")
    for exe in (reprise, bench_cpu):
        if not os.access(exe, os.X_OK):
            die(f"{exe}: not found (build reprise first, or give --build)")

    os.makedirs(a.work, exist_ok=True)
    hf = {"BF16": os.path.join(a.work, "hf_bf16"), "F32": os.path.join(a.work, "hf_f32")}
    if not os.path.exists(os.path.join(hf["BF16"], "model.safetensors")):
        subprocess.run([bench_cpu, "--write-model", hf["BF16"]], check=True)
    cfg = json.load(open(os.path.join(hf["BF16"], "config.json")))
    tensors = read_safetensors(os.path.join(hf["BF16"], "model.safetensors"), np)
    if not os.path.exists(os.path.join(hf["F32"], "model.safetensors")):
        os.makedirs(hf["F32"], exist_ok=True)
        for f in os.listdir(hf["BF16"]):
            if f != "model.safetensors":
                shutil.copy(os.path.join(hf["BF16"], f), hf["F32"])
        write_safetensors_f32(os.path.join(hf["F32"], "model.safetensors"), tensors, np)
    n_layers = cfg["num_hidden_layers"]
    cases = []   # (dtype, schedule label, reprise schedule, gguf path)
    for dtype in ("F32", "BF16"):
        for label, sched, layers in (("base", "base", list(range(n_layers))), (f"{len(LAYERS_16)} visits", SCHEDULE_16, LAYERS_16)):
            path = os.path.join(a.work, f"model_{dtype.lower()}_{len(layers)}.gguf")
            if not os.path.exists(path):
                print(f"writing {path}", file=sys.stderr)
                write_gguf(path, cfg, tensors, layers, dtype == "BF16", gguf, np)
            cases.append((dtype, label, sched, path, len(layers)))

    load = open("/proc/loadavg").read().split()[:3]
    results = {}   # (case index, engine) -> {"pp": [...], "tg": [...]}
    common = ["-p", str(a.p), "-n", str(a.n), "-t", str(a.t), "-r", "1", "-o", "json"]
    for rnd in range(a.rounds):
        for ci, (dtype, label, sched, path, _) in enumerate(cases):
            print(f"round {rnd + 1}/{a.rounds}: {dtype} {label}", file=sys.stderr)
            runs = {
                "llama.cpp": [llama_bench, "-m", path, "-fa", "0"] + common,
                "reprise": [reprise, "bench", "-m", hf[dtype], "--backend", "cpu", "--schedule", sched] + common,
            }
            for engine, cmd in runs.items():
                got = run_json(cmd)
                for test, v in got.items():
                    results.setdefault((ci, engine), {}).setdefault(test, []).append(v)
    load_after = open("/proc/loadavg").read().split()[:3]

    med = lambda ci, e, t: statistics.median(results[(ci, e)][t])
    print(f"\nreprise CPU backend vs llama.cpp: {cfg['hidden_size']} hidden, {n_layers} layers, vocabulary {cfg['vocab_size']}; "
          f"{a.t} threads; pp{a.p} / tg{a.n}; medians of {a.rounds} interleaved runs; load average {' '.join(load)} before, "
          f"{' '.join(load_after)} after\n")
    print(f"| weights | schedule | llama.cpp pp{a.p} | reprise pp{a.p} | ratio | llama.cpp tg{a.n} | reprise tg{a.n} | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for ci, (dtype, label, _, _, _) in enumerate(cases):
        lp, rp, lt, rt = med(ci, "llama.cpp", "pp"), med(ci, "reprise", "pp"), med(ci, "llama.cpp", "tg"), med(ci, "reprise", "tg")
        print(f"| {dtype} | {label} | {lp:.1f} tok/s | {rp:.1f} tok/s | {rp / lp:.2f} | {lt:.1f} tok/s | {rt:.1f} tok/s | {rt / lt:.2f} |")
    print(f"\nrepeated schedule ({len(LAYERS_16)} visits of {n_layers} layers): time per token vs base, "
          f"ideal {len(LAYERS_16) / n_layers:.3f}")
    for dtype in ("F32", "BF16"):
        base, rep = [ci for ci, c in enumerate(cases) if c[0] == dtype]
        for e in ("llama.cpp", "reprise"):
            print(f"  {dtype} {e:9s} prefill {med(base, e, 'pp') / med(rep, e, 'pp'):.3f}  decode {med(base, e, 'tg') / med(rep, e, 'tg'):.3f}")


if __name__ == "__main__":
    main()
