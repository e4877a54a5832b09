#!/usr/bin/env python3
"""A completion's text is read after its prompt, with real tokenizers (../shared's Llama 2, Mistral, Llama 3 and Qwen):
prompt text + completion text equals the decode of all the ids, through generate, chat, a sweep's replies and every
serve path (plain, streaming, echo, logprobs tokens and text_offset). A SentencePiece decoder strips one leading
space from what it decodes, so a completion decoded alone lost its first space ("The dog" + "was was was").
Each tokenizer runs on a small random model of its vocabulary (tests/sparse_checkpoint.py --random).
usage: test_completion_text.py REPRISE SHARED_DIR"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import sqlite3
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_proc  # noqa: E402
from checks import check, finish  # noqa: E402

REPRISE, SHARED = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = {"llama2_reconstructed": "llama2", "mistral": "mistral", "llama3_1": "llama3", "qwen3": "chatml"}
TOKENIZERS = list(TEMPLATES)
if not all(os.path.exists(os.path.join(SHARED, "tokenizers", t, "tokenizer.json")) for t in TOKENIZERS):
    print("skip: the real tokenizers of %s/tokenizers are absent" % SHARED)
    sys.exit(77)
PROMPT = "The dog"


def make_model(tok, out):
    j = json.load(open(os.path.join(SHARED, "tokenizers", tok, "tokenizer.json")))
    vocab = max(max(j["model"]["vocab"].values()), max([a["id"] for a in j.get("added_tokens", [])] or [0])) + 1
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
           "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": vocab,
           "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
           "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}
    subprocess.run([sys.executable, os.path.join(HERE, "sparse_checkpoint.py"), out, json.dumps(cfg), "--random", "7"], check=True)
    shutil.copy(os.path.join(SHARED, "tokenizers", tok, "tokenizer.json"), out)


def run(*args, stdin=None):
    return subprocess.run([REPRISE, *args], capture_output=True, text=True, input=stdin, check=True).stdout


class Server:
    def __init__(self, model, template):
        self.p, self.port = serve_proc.start(REPRISE, "-m", model, "--parallel", "4", "--chat-template", template)

    def post(self, path, body, stream=False):
        req = urllib.request.Request("http://127.0.0.1:%s%s" % (self.port, path), json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        raw = urllib.request.urlopen(req, timeout=300).read().decode()
        if not stream:
            return json.loads(raw)
        return [json.loads(line[6:]) for line in raw.split("\n") if line.startswith("data: ") and line != "data: [DONE]"]

    def stop(self):
        self.p.terminate()
        self.p.wait(60)


tmp = tempfile.mkdtemp()
try:
    for tok in TOKENIZERS:
        model = os.path.join(tmp, tok)
        make_model(tok, model)
        srv = Server(model, TEMPLATES[tok])
        try:
            def detok(ids):
                return srv.post("/detokenize", {"tokens": ids})["prompt"]
            prompt_ids = [int(x) for x in run("tokenize", "-m", model, "-p", PROMPT).split()]
            # generate: greedy and sampled, text against the decode of the same run's ids
            for sampling in (["--temp", "0"], ["--temp", "1", "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", "5"]):
                text = run("generate", "-m", model, "-p", PROMPT, "-n", "12", "--ignore-eos", *sampling)
                ids = [int(x) for x in run("generate", "-m", model, "--tokens", ",".join(map(str, prompt_ids)), "-n", "12",
                                           "--ignore-eos", *sampling).split()]
                whole, head = detok(prompt_ids + ids), detok(prompt_ids)
                check(whole.startswith(head) and text.rstrip("\n") == whole[len(head):].rstrip("\n"),
                      "%s: generate %s: %r continues %r as the decode of all ids does (%r)" % (tok, " ".join(sampling), text, PROMPT, whole))
            greedy = run("generate", "-m", model, "-p", PROMPT, "-n", "12", "--ignore-eos", "--temp", "0").rstrip("\n")
            # chat, plain template (the line is the prompt, after a BOS these tokenizer files leave unnamed): the
            # reply reads as generate's continuation of the same ids
            reply = run("chat", "-m", model, "--chat-template", "plain", "-n", "12", "--temp", "0", stdin=PROMPT + "\n")
            plain = run("generate", "-m", model, "-p", PROMPT, "--no-special", "-n", "12", "--temp", "0").rstrip("\n")
            check(reply.startswith(plain.split("\n")[0]), "%s: chat's reply %r starts as generate's text %r" % (tok, reply, plain))
            # serve: every token forced to the one that reads " was" after the prompt
            was = srv.post("/tokenize", {"prompt": PROMPT + " was", "add_special_tokens": False})["tokens"][-1]
            body = {"prompt": PROMPT, "max_tokens": 3, "temperature": 0, "ignore_eos": True, "logit_bias": {str(was): 100}}
            r = srv.post("/v1/completions", body)["choices"][0]
            check(r["text"] == " was was was", "%s: completion %r" % (tok, r["text"]))
            r = srv.post("/v1/completions", dict(body, echo=True))["choices"][0]
            check(r["text"] == "The dog was was was", "%s: echo %r" % (tok, r["text"]))
            chunks = srv.post("/v1/completions", dict(body, stream=True), stream=True)
            streamed = "".join(c["choices"][0]["text"] for c in chunks if c.get("choices"))
            check(streamed == " was was was", "%s: streamed %r" % (tok, streamed))
            r = srv.post("/v1/completions", dict(body, logprobs=1))["choices"][0]
            lp = r["logprobs"]
            check(lp["tokens"] == [" was"] * 3 and lp["text_offset"] == [0, 4, 8],
                  "%s: logprobs tokens %r at %r" % (tok, lp["tokens"], lp["text_offset"]))
            r = srv.post("/v1/completions", dict(body, logprobs=1, echo=True))["choices"][0]
            lp, text = r["logprobs"], r["text"]
            # each token that has text starts where its offset says, in the returned text (a BOS has none)
            shown = [(t, o) for t, o in zip(lp["tokens"], lp["text_offset"]) if text.startswith(t.lstrip(" ") if o == 0 else t, o)]
            special = [t for t in lp["tokens"] if re.fullmatch(r"<\|?[a-z_]+\|?>|<s>", t)]
            check(len(shown) + len(special) == len(lp["tokens"]) and lp["text_offset"][-3:] == [7, 11, 15]
                  and lp["text_offset"] == sorted(lp["text_offset"]) and max(lp["text_offset"]) < len(text),
                  "%s: echo logprobs: tokens %r at offsets %r index %r" % (tok, lp["tokens"], lp["text_offset"], text))
            # chat completions on the server: the content is the continuation of the rendered prompt
            m = srv.post("/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 3,
                                                  "temperature": 0, "ignore_eos": True, "logit_bias": {str(was): 100}})
            content = m["choices"][0]["message"]["content"]
            check(content.replace(" was", "") == "" and content.count("was") == 3, "%s: chat completion %r" % (tok, content))
        finally:
            srv.stop()
        # a sweep's reply is the text generate prints (a jsonl probe whose prompt is the text)
        probe = os.path.join(tmp, tok + ".jsonl")
        with open(probe, "w") as f:
            f.write(json.dumps({"id": "1", "prompt": PROMPT, "answer": "x"}) + "\n")
        subprocess.run([REPRISE, "sweep", "-m", model, "--probe", "jsonl:" + probe, "--configs", "base",
                        "--out", os.path.join(tmp, tok + "-sweep")], capture_output=True, text=True)
        rows = sqlite3.connect(os.path.join(tmp, tok + "-sweep", "results.sqlite")).execute("SELECT reply FROM results").fetchall()
        check(len(rows) == 1 and rows[0][0] and (greedy.startswith(rows[0][0]) or rows[0][0].startswith(greedy)),
              "%s: the sweep's reply %r and generate's text %r agree" % (tok, rows and rows[0][0], greedy))
finally:
    shutil.rmtree(tmp)
finish()
