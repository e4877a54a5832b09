#!/usr/bin/env python3
"""reprise serve against a real running server on loopback: curl, the API's shapes, greedy text and logprobs
against `reprise generate` and `reprise score`, malformed requests, streaming, disconnects, the queue, the API key,
a load run, SIGTERM. usage: test_serve.py REPRISE [--load N] | test_serve.py REPRISE --openai DIR (the openai npm
client's checks alone: a test of their own, skipped where the client is not installed)"""
import http.client
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPRISE = sys.argv[1]
LOAD = int(sys.argv[sys.argv.index("--load") + 1]) if "--load" in sys.argv else 10000
OPENAI_DIR = sys.argv[sys.argv.index("--openai") + 1] if "--openai" in sys.argv else None
DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "default_model")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish, skip  # noqa: E402


class Server:
    """reprise serve on a free port; stderr kept for the test to read."""

    def __init__(self, *args, env=None, first=()):
        env = dict(env or os.environ)
        # under ASan, freed memory waits in a quarantine of up to 256 MiB: kept small, RSS shows what the server holds
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([REPRISE, "serve", *first, "--port", "0", *args], stderr=self.err, stdout=subprocess.DEVNULL,
                                     env=env)
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline and self.proc.poll() is None:
            m = re.search(r"listening on http://[^:]+:(\d+)", self.stderr())
            if m and "ready:" in self.stderr():
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        raise RuntimeError("the server did not start: " + self.stderr())

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def request(self, method, path, body=None, headers=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, raw, dict(r.getheaders())

    def post(self, path, body, **kw):
        status, raw, _ = self.request("POST", path, body, **kw)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def metrics(self):
        _, raw, _ = self.request("GET", "/metrics")
        out = {}
        for line in raw.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def metric(self, prefix):
        return sum(v for k, v in self.metrics().items() if k.startswith(prefix))

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def sse_events(raw):
    """data: payloads of an SSE body, comments skipped."""
    events = []
    for block in raw.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                events.append(line[6:])
    return events


def generate_cli(prompt, n, schedule="base", model=DEFAULT_MODEL):
    out = subprocess.run([REPRISE, "generate", "-m", model, "-p", prompt, "-n", str(n), "--temp", "0", "--schedule", schedule],
                         capture_output=True, text=True, check=True)
    assert out.stdout.endswith("\n")   # generate ends its output with a newline of its own
    return out.stdout[:-1]


def score_cli(tokens, schedule="base"):
    out = subprocess.run([REPRISE, "score", "--tokens", ",".join(map(str, tokens)), "--schedule", schedule, "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["logprobs"]


def write_slow_model(dir):
    """A random Llama (F16, 4 layers of width 256, 4096 positions) on the built-in model's tokenizer: slow enough on
    the CPU that a long generation is still running when a test disconnects or stops the server."""
    dim, hidden, layers, heads, kv, vocab = 256, 768, 4, 4, 2, 16
    hd = dim // heads
    shapes = {"model.embed_tokens.weight": (vocab, dim), "model.norm.weight": (dim,)}
    for l in range(layers):
        p = "model.layers.%d." % l
        shapes.update({p + "input_layernorm.weight": (dim,), p + "post_attention_layernorm.weight": (dim,),
                       p + "self_attn.q_proj.weight": (dim, dim), p + "self_attn.k_proj.weight": (kv * hd, dim),
                       p + "self_attn.v_proj.weight": (kv * hd, dim), p + "self_attn.o_proj.weight": (dim, dim),
                       p + "mlp.gate_proj.weight": (hidden, dim), p + "mlp.up_proj.weight": (hidden, dim),
                       p + "mlp.down_proj.weight": (dim, hidden)})
    header, blobs, off = {}, [], 0
    rng = random.Random(7)
    for name, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        if name.endswith("norm.weight"):
            b = struct.pack("<H", 0x3C00) * n   # 1.0
        else:   # F16 of magnitude 2^-7..2^-6 (embeddings 2^-3..2^-2), random signs and mantissas
            b = bytearray(rng.randbytes(2 * n))
            exp = 12 if "embed" in name else 8
            hi = bytes((x & 0x83) | (exp << 2) for x in range(256))
            b[1::2] = bytes(b[1::2]).translate(hi)
            b = bytes(b)
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(dir, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    cfg = json.load(open(os.path.join(DEFAULT_MODEL, "config.json")))
    cfg.update({"hidden_size": dim, "intermediate_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                "num_key_value_heads": kv, "max_position_embeddings": 4096, "torch_dtype": "float16"})
    json.dump(cfg, open(os.path.join(dir, "config.json"), "w"))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(DEFAULT_MODEL, f)) as src, open(os.path.join(dir, f), "w") as dst:
            dst.write(src.read())


# --- the built-in model -------------------------------------------------------------------------------------------

def test_basics(s):
    out = subprocess.run(["curl", "-sS", "-i", "http://127.0.0.1:%d/health" % s.port], capture_output=True, text=True)
    check(out.returncode == 0 and " 200 " in out.stdout.splitlines()[0], "curl /health: 200: " + out.stdout[:80])
    out = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/v1/completions" % s.port, "-H", "Content-Type: application/json",
                          "-d", json.dumps({"prompt": "99*99=", "max_tokens": 8, "temperature": 0})], capture_output=True, text=True)
    body = json.loads(out.stdout)
    check(body["object"] == "text_completion" and body["choices"][0]["text"] == generate_cli("99*99=", 8),
          "curl completion equals reprise generate: %r" % body)
    check(body["usage"]["prompt_tokens"] > 0 and body["usage"]["total_tokens"] ==
          body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"], "usage adds up")
    out = subprocess.run(["curl", "-sS", "-N", "http://127.0.0.1:%d/v1/completions" % s.port, "-d",
                          json.dumps({"prompt": "12+34=", "max_tokens": 8, "temperature": 0, "stream": True,
                                      "stream_options": {"include_usage": True}})], capture_output=True, text=True)
    ev = sse_events(out.stdout.encode())
    check(ev and ev[-1] == "[DONE]", "curl stream ends with [DONE]")
    chunks = [json.loads(e) for e in ev[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    check(text == generate_cli("12+34=", 8), "streamed text equals reprise generate: %r" % text)
    check(chunks[-1]["choices"] == [] and "usage" in chunks[-1], "include_usage: a last chunk with usage and no choices")
    check(any(c["choices"] and c["choices"][0]["finish_reason"] for c in chunks), "a finish_reason in the stream")

    status, raw, _ = s.request("GET", "/v1/models")
    models = json.loads(raw)
    check(status == 200 and models["data"][0]["id"] == "default_model" and models["data"][0]["max_model_len"] == 64, "/v1/models")

    # the layer schedule of a request, echoed back; mixed schedules in one batch give each its own text
    for sched in ("base", "rys:2,4", "0-3,2-5"):
        st, b = s.post("/v1/completions", {"prompt": "99*99=", "max_tokens": 8, "temperature": 0, "layer_schedule": sched})
        check(st == 200 and b["layer_schedule"] == sched and b["choices"][0]["text"] == generate_cli("99*99=", 8, sched),
              "layer_schedule %s equals reprise generate --schedule: %r" % (sched, b))

    # chat through the template, unknown message keys ignored; the role first in a stream
    st, b = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "12+34=", "name": "x"}], "temperature": 0,
                                            "logprobs": True, "top_logprobs": 2, "max_tokens": 8})
    check(st == 200 and b["object"] == "chat.completion" and b["choices"][0]["message"]["content"] == generate_cli("12+34=", 8),
          "chat reply: %r" % b)
    lp = b["choices"][0]["logprobs"]["content"]
    check(len(lp) >= 1 and len(lp[0]["top_logprobs"]) == 2 and lp[0]["top_logprobs"][0]["token"] == lp[0]["token"],
          "chat logprobs with 2 alternatives, the greedy token first")
    status, raw, hdr = s.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "7+8="}],
                                                                  "temperature": 0, "stream": True})
    ev = sse_events(raw)
    first = json.loads(ev[0])
    check(hdr.get("Content-Type", "").startswith("text/event-stream") and first["object"] == "chat.completion.chunk" and
          first["choices"][0]["delta"].get("role") == "assistant" and ev[-1] == "[DONE]", "chat stream: role first, [DONE] last")
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in ev[:-1])
    check(text == generate_cli("7+8=", 63 - 5), "streamed chat text equals reprise generate: %r" % text)

    # tokenizer endpoints, at the root and under /v1; special-token text maps to its id
    for root in ("", "/v1"):
        st, b = s.post(root + "/tokenize", {"prompt": "<s>12", "add_special_tokens": False})
        check(st == 200 and b["tokens"][0] == 1 and b["count"] == len(b["tokens"]) and b["max_model_len"] == 64, "/tokenize %r" % b)
        st, d = s.post(root + "/detokenize", {"tokens": b["tokens"]})
        check(st == 200 and d["prompt"] == "<s>12", "/detokenize %r" % d)
        status, raw, _ = s.request("GET", root + "/tokenizer_info")
        check(status == 200 and json.loads(raw)["model_max_length"] == 64, "/tokenizer_info")

    # n choices and several prompts: indexes in order; a seeded request's text is reproducible
    st, b = s.post("/v1/completions", {"prompt": ["1+1=", "2+2="], "n": 3, "max_tokens": 6, "temperature": 1.0, "seed": 5})
    check(st == 200 and [c["index"] for c in b["choices"]] == list(range(6)), "n=3 over 2 prompts: 6 choices")
    st, b2 = s.post("/v1/completions", {"prompt": ["1+1=", "2+2="], "n": 3, "max_tokens": 6, "temperature": 1.0, "seed": 5})
    check([c["text"] for c in b["choices"]] == [c["text"] for c in b2["choices"]], "the same seed gives the same texts")
    # stop strings cut the text and hold nothing back
    full = generate_cli("99*99=", 8)
    st, b = s.post("/v1/completions", {"prompt": "99*99=", "max_tokens": 8, "temperature": 0, "stop": full[1:3]})
    check(b["choices"][0]["text"] == full[:1] and b["choices"][0]["finish_reason"] == "stop", "stop string: %r" % b)
    # logit_bias steers greedy decoding
    st, t = s.post("/tokenize", {"prompt": "5", "add_special_tokens": False})
    st, b = s.post("/v1/completions", {"prompt": "99*99=", "max_tokens": 3, "temperature": 0, "ignore_eos": True,
                                       "logit_bias": {str(t["tokens"][0]): 100}})
    check(b["choices"][0]["text"] == "555", "logit_bias +100 forces the token: %r" % b)
    # the penalties, as vLLM's: a request's greedy text equals generate's with the same penalties (whose ids are
    # checked against the definition in test_cli.py), and differs from the text without them
    for pen, flags in (({"repetition_penalty": 5}, ["--repeat-penalty", "5"]),
                       ({"frequency_penalty": 2, "presence_penalty": 0.5}, ["--frequency-penalty", "2", "--presence-penalty", "0.5"])):
        prompt = "7" if "frequency_penalty" in pen else "12+34="
        want = subprocess.run([REPRISE, "generate", "-p", prompt, "-n", "10", "--temp", "0", "--ignore-eos", *flags],
                              capture_output=True, text=True, check=True).stdout[:-1]
        st, b = s.post("/v1/completions", dict({"prompt": prompt, "max_tokens": 10, "temperature": 0, "ignore_eos": True}, **pen))
        check(st == 200 and b["choices"][0]["text"] == want and want != generate_cli(prompt, 10)[:len(want)],
              "penalties %s: %r, generate's %r" % (pen, b.get("choices"), want))


def test_drafts(s):
    """draft_schedule: self-speculative decoding per request, echoed; greedy text equals reprise generate's (no draft)
    alone and under continuous batching with requests without a draft and with other drafts, streamed or not; the
    metrics count proposed and accepted tokens."""
    d0, a0 = s.metric("reprise:spec_decode_num_draft_tokens_total"), s.metric("reprise:spec_decode_num_accepted_tokens_total")
    want = {sc: generate_cli("12+35=", 30, sc) for sc in ("base", "rys:2,4")}
    st, b = s.post("/v1/completions", {"prompt": "12+35=", "max_tokens": 30, "temperature": 0, "draft_schedule": "0-3,5"})
    check(st == 200 and b.get("draft_schedule") == "0-3,5" and b["choices"][0]["text"] == want["base"],
          "draft_schedule 0-3,5: echoed, the text of reprise generate without a draft: %r" % b)
    st, b = s.post("/v1/completions", {"prompt": "12+35=", "max_tokens": 30, "temperature": 0, "draft_schedule": "none"})
    check(st == 200 and "draft_schedule" not in b and b["choices"][0]["text"] == want["base"], "draft_schedule none: no draft")
    out, bad = {}, []

    def one(i):
        sc, dr, stream = ("base", "rys:2,4")[i % 2], (None, "0-3,5", "0,5", "base", "0-2")[i % 5], i % 3 == 0
        body = {"prompt": "12+35=", "max_tokens": 30, "temperature": 0, "layer_schedule": sc, "stream": stream}
        if dr:
            body["draft_schedule"] = dr
        st, raw, _ = s.request("POST", "/v1/completions", body)
        text = ("".join(json.loads(e)["choices"][0]["text"] for e in sse_events(raw)[:-1] if json.loads(e)["choices"])
                if stream else json.loads(raw)["choices"][0]["text"])
        if st != 200 or text != want[sc]:
            bad.append((sc, dr, stream, st, text))
        out[i] = text

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not bad and len(out) == 30, "30 requests at once, with and without drafts, 4 drafts, 2 schedules, streamed or "
                                      "not: each the text of reprise generate without a draft (%s)" % bad[:3])
    d1, a1 = s.metric("reprise:spec_decode_num_draft_tokens_total"), s.metric("reprise:spec_decode_num_accepted_tokens_total")
    check(d1 > d0 and a0 <= a1 - 1 and a1 - a0 <= d1 - d0, "the metrics count proposals (%g) and accepted ones (%g)" % (d1 - d0, a1 - a0))


def test_default_draft():
    """--draft: the server's draft for requests that name none; a request's own (or none) overrides it."""
    s = Server("--draft", "0-3,5", "--draft-tokens", "3", "--parallel", "4")
    try:
        want = generate_cli("99*99=", 20, "rys:2,4")
        st, b = s.post("/v1/completions", {"prompt": "99*99=", "max_tokens": 20, "temperature": 0, "layer_schedule": "rys:2,4"})
        check(st == 200 and b.get("draft_schedule") == "0-3,5" and b["choices"][0]["text"] == want,
              "serve --draft: requests take it, echoed, greedy text unchanged: %r" % b)
        st, b = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "99*99="}], "max_tokens": 12,
                                                "temperature": 0, "draft_schedule": "none"})
        check(st == 200 and "draft_schedule" not in b, "draft_schedule none turns the server's draft off")
        check(s.metric("reprise:spec_decode_num_draft_tokens_total") > 0, "the server's draft proposed")
    finally:
        s.stop()


def test_loglikelihood(s):
    # as lm-evaluation-harness asks: token ids, echo, logprobs, max_tokens 1 (and the old max_tokens 0 form)
    tokens = [1, 5, 6, 7, 11, 8, 9, 12, 4]
    for sched in ("base", "rys:1,3"):
        want = score_cli(tokens, sched)
        for mt in (1, 0):
            st, b = s.post("/v1/completions", {"prompt": tokens, "max_tokens": mt, "echo": True, "logprobs": 1, "temperature": 0,
                                               "layer_schedule": sched})
            lp = b["choices"][0]["logprobs"]
            check(st == 200 and len(lp["token_logprobs"]) == len(tokens) + mt and lp["token_logprobs"][0] is None,
                  "echo: len(prompt)+%d entries, entry 0 null" % mt)
            got = lp["token_logprobs"][1:len(tokens)]
            check(all(abs(a - b) < 1e-5 for a, b in zip(got, want)) and len(got) == len(want),
                  "echo logprobs equal reprise score (%s, max_tokens %d): %r vs %r" % (sched, mt, got, want))
            for i in range(1, len(tokens)):   # the argmax is always in top_logprobs
                top = lp["top_logprobs"][i]
                check(max(top.values()) >= lp["token_logprobs"][i] - 1e-6 and len(top) >= 1, "top_logprobs hold the argmax")


MALFORMED = [
    (b"{", 400, "not valid JSON"),
    (b"[1,2]", 400, "must be a JSON object"),
    (b"\xff\xfe{}", 400, "not valid UTF-8"),
    (("[" * 70 + "]" * 70).encode(), 400, "nested more than 64"),
    ({"prompt": 5}, 400, "prompt must be"),
    ({"prompt": "a", "max_tokens": "x"}, 400, "max_tokens must be an integer"),
    ({"prompt": "a", "max_tokens": -1}, 400, "max_tokens must be in"),
    ({"prompt": [99]}, 400, "out of vocabulary"),
    ({"prompt": [[1, 2], [3, -1]]}, 400, "out of vocabulary"),
    ({"prompt": [1.5]}, 400, "must be integers"),
    ({"prompt": "a", "logprobs": 21}, 400, "logprobs must be in [0, 20]"),
    ({"prompt": "a", "n": 9}, 400, "n must be in [1, 8]"),
    ({"prompt": "a", "max_tokens": 100}, 400, "maximum context length is 64 tokens"),
    ({"prompt": [1] * 70}, 400, "maximum context length is 64 tokens"),
    ({"prompt": "a", "temperature": -1}, 400, "temperature must be in"),
    ({"prompt": "a", "temperature": "hot"}, 400, "temperature must be a number"),
    ({"prompt": "a", "top_p": 1.5}, 400, "top_p must be in"),
    ({"prompt": "a", "top_k": 0}, 400, "top_k must be"),
    ({"prompt": "a", "min_p": 2}, 400, "min_p must be in"),
    ({"prompt": "a", "seed": "x"}, 400, "seed must be an integer"),
    ({"prompt": "a", "stop": [1]}, 400, "stop must be"),
    ({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]}, 400, "at most 4"),
    ({"prompt": "a", "logit_bias": {"x": 1}}, 400, "is not a token id"),
    ({"prompt": "a", "logit_bias": {"3": 500}}, 400, "[-100, 100]"),
    ({"prompt": "a", "stream": "yes"}, 400, "stream must be true or false"),
    ({"prompt": "a", "echo": 1}, 400, "echo must be true or false"),
    ({"prompt": "a", "layer_schedule": "0-3,x"}, 400, "'x'"),
    ({"prompt": "a", "layer_schedule": "0-9"}, 400, "layer"),
    ({"prompt": "a", "layer_schedule": 7}, 400, "layer_schedule must be a string"),
    ({"prompt": "a", "draft_schedule": "0-3,x"}, 400, "'x'"),
    ({"prompt": "a", "draft_schedule": "0-9"}, 400, "draft_schedule: "),
    ({"prompt": "a", "draft_schedule": 7}, 400, "draft_schedule must be a string"),
    ({"prompt": "a", "model": "gpt-4"}, 404, "The model `gpt-4` does not exist."),
    ({"prompt": []}, 400, "prompt must be"),
    ({}, 400, "prompt is required"),
    ({"prompt": "a", "presence_penalty": 3}, 400, "presence_penalty must be in [-2, 2]"),
    ({"prompt": "a", "frequency_penalty": "x"}, 400, "frequency_penalty must be a number"),
    ({"prompt": "a", "repetition_penalty": 0}, 400, "repetition_penalty must be in"),
    ({"prompt": "a", "best_of": 3}, 400, "best_of is not supported"),
    ({"prompt": "a", "response_format": {"type": "json_object"}}, 400, "response_format is not supported"),
    ({"prompt": "a", "suffix": "b"}, 400, "suffix is not supported"),
    ({"prompt": "a", "tools": [{"type": "function"}]}, 400, "tools is not supported"),
    ({"prompt": "a", "guided_json": {}}, 400, "guided_json is not supported"),
    ({"prompt": "a", "min_tokens": 2}, 400, "min_tokens is not supported"),
]
CHAT_MALFORMED = [
    ({"messages": "hi"}, 400, "messages must be a non-empty list"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "role must be"),
    ({"messages": [{"role": "user", "content": 5}]}, 400, "content must be"),
    ({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}, 400, "top_logprobs needs logprobs"),
    ({"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 21}, 400, "top_logprobs must be in"),
]


def test_malformed(s):
    for body, status, words in [(b, st, w) for b, st, w in MALFORMED]:
        st, b = s.post("/v1/completions", body)
        ok = st == status and isinstance(b, dict) and words in b["error"]["message"] and b["error"]["code"] == status and \
            {"message", "type", "param", "code"} <= set(b["error"])
        check(ok, "malformed %r: %d %r" % (body if len(str(body)) < 80 else str(body)[:80], st, b))
    for body, status, words in CHAT_MALFORMED:
        st, b = s.post("/v1/chat/completions", body)
        check(st == status and words in b["error"]["message"], "malformed chat %r: %d %r" % (body, st, b))
    # a body over 16 MiB: 413, refused from its Content-Length before it is sent, or cut off as it streams in
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (16 * 1024 * 1024 + 10))
    sock.settimeout(30)
    reply = sock.recv(200)
    sock.close()
    check(reply.startswith(b"HTTP/1.1 413"), "a 16 MiB + 10 body announced: 413: %r" % reply[:40])
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
    c.request("POST", "/v1/completions", body=(b" " * (1 << 20) for _ in range(17)), encode_chunked=True)
    r = c.getresponse()
    check(r.status == 413 and b"larger than" in r.read(), "a 17 MiB chunked body: 413, got %d" % r.status)
    c.close()
    # too many headers: refused by the HTTP library, and the server goes on
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(2000)) + b"\r\n")
    sock.settimeout(10)
    try:
        reply = sock.recv(100)
    except (ConnectionError, socket.timeout):
        reply = b""
    sock.close()
    check(not reply.startswith(b"HTTP/1.1 200"), "2000 headers are not answered 200: %r" % reply[:40])
    # unknown routes and methods; unknown fields are ignored (lm-evaluation-harness passes its gen_kwargs through)
    check(s.request("GET", "/nope")[0] == 404, "unknown route: 404")
    check(s.request("GET", "/v1/completions")[0] == 405, "GET /v1/completions: 405")
    st, b = s.post("/v1/completions", {"prompt": "1+1=", "max_tokens": 4, "temperature": 0, "do_sample": False, "until": ["\n"]})
    check(st == 200 and b["choices"][0]["text"] == generate_cli("1+1=", 4), "unknown fields ignored, then a good request is answered")


def test_load(s, n_requests, clients=64):
    """n_requests from `clients` concurrent clients: every body complete; greedy text equal to reprise generate;
    the server's memory flat afterwards."""
    prompts = ["%d+%d=" % (a, b) for a, b in [(12, 34), (99, 1), (7, 8), (45, 45), (3, 9), (60, 7)]]
    scheds = ["base", "rys:2,4"]
    expect = {(p, sc): generate_cli(p, 6, sc) for p in prompts for sc in scheds}
    s.post("/v1/completions", {"prompt": "1+1=", "max_tokens": 6})   # warm
    rss0 = s.rss_kib()
    lock = threading.Lock()
    results = {"ok": 0, "bad": [], "next": 0}
    limit = {"n": n_requests}

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=300)
        while True:
            with lock:
                i = results["next"]
                if i >= limit["n"]:
                    break
                results["next"] += 1
            p, sc = prompts[i % len(prompts)], scheds[(i // len(prompts)) % 2]
            stream = i % 5 == 0
            body = {"prompt": p, "max_tokens": 6, "temperature": 0, "layer_schedule": sc, "stream": stream}
            try:
                conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                raw = r.read()
                if stream:
                    ev = sse_events(raw)
                    assert ev[-1] == "[DONE]"
                    text = "".join(json.loads(e)["choices"][0]["text"] for e in ev[:-1])
                else:
                    text = json.loads(raw)["choices"][0]["text"]
                assert r.status == 200 and text == expect[(p, sc)], (r.status, text, expect[(p, sc)])
                with lock:
                    results["ok"] += 1
            except Exception as e:   # noqa: BLE001 (any failure is a lost request)
                with lock:
                    results["bad"].append(repr(e)[:200])
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=300)
        conn.close()

    t0 = time.time()
    rss = [rss0]
    for half in (n_requests // 2, n_requests):   # two rounds: the second must not grow the server's memory
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        limit["n"] = half
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss.append(s.rss_kib())
    dt = time.time() - t0
    print("load: %d requests from %d clients in %.1f s (%.0f/s); RSS %s KiB" % (n_requests, clients, dt, n_requests / dt, rss))
    check(results["ok"] == n_requests and not results["bad"], "load: %d of %d answered; failures: %s" % (results["ok"], n_requests, results["bad"][:3]))
    check(rss[2] - rss[1] < 16 * 1024 and rss[2] - rss[0] < 64 * 1024, "memory flat over the load run: RSS %s KiB" % rss)
    m = s.metrics()
    check(m['reprise:num_requests_running{model_name="default_model"}'] == 0 and m['reprise:kv_cache_used_visit_slots{model_name="default_model"}'] == 0,
          "after the load run nothing runs and no KV is held")


def test_seeded_under_load(s):
    body = {"prompt": "12+34=", "max_tokens": 8, "temperature": 1.0, "seed": 1234}
    alone = s.post("/v1/completions", body)[1]["choices"][0]["text"]
    out = []

    def noise():
        s.post("/v1/completions", {"prompt": "99*99=", "max_tokens": 8, "temperature": 1.0})

    threads = [threading.Thread(target=noise) for _ in range(24)]
    for t in threads:
        t.start()
    for _ in range(4):
        out.append(s.post("/v1/completions", body)[1]["choices"][0]["text"])
    for t in threads:
        t.join()
    check(all(o == alone for o in out), "a seeded request's text is the same alone and under load: %r vs %r" % (alone, out))


# --- the slow model: disconnects, the queue, SIGTERM ---------------------------------------------------------------------

def wait_for(cond, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def open_stream(s, body):
    sock = socket.create_connection(("127.0.0.1", s.port))
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    sock.settimeout(60)
    got = b""
    while b"data: " not in got:
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return sock, got


def test_slow(model_dir):
    s = Server("-m", model_dir, "-c", "4096", "--parallel", "2", "--queue", "1")
    try:
        label = 'model_name="%s"' % os.path.basename(model_dir)
        long_body = {"prompt": [1, 5, 6], "max_tokens": 4000, "ignore_eos": True, "temperature": 0, "stream": True}
        # a client that disconnects mid-stream frees its KV
        sock, got = open_stream(s, long_body)
        check(b"data: " in got, "the stream started")
        check(s.metric("reprise:kv_cache_used_visit_slots") > 0, "a running stream holds KV")
        sock.close()
        check(wait_for(lambda: s.metric("reprise:kv_cache_used_visit_slots") == 0 and
                       s.metrics()['reprise:request_success_total{%s,finished_reason="abort"}' % label] == 1),
              "a disconnect mid-stream aborts the request and frees its KV (seen in /metrics)")
        # the same for a client that gives up waiting on a non-streaming request
        sock = socket.create_connection(("127.0.0.1", s.port))
        data = json.dumps(dict(long_body, stream=False)).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
        check(wait_for(lambda: s.metric("reprise:num_requests_running") == 1), "the non-streaming request runs")
        sock.close()
        check(wait_for(lambda: s.metric("reprise:kv_cache_used_visit_slots") == 0), "a non-streaming client's disconnect frees its KV")
        # a full queue: 503 with Retry-After (2 running, 1 waiting, the next refused)
        socks = [open_stream(s, long_body)[0] for _ in range(2)]
        waiting = socket.create_connection(("127.0.0.1", s.port))
        data = json.dumps(long_body).encode()
        waiting.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
        check(wait_for(lambda: s.metric("reprise:num_requests_waiting") == 1), "a third request waits")
        status, raw, hdr = s.request("POST", "/v1/completions", long_body)
        check(status == 503 and hdr.get("Retry-After") and b"busy" in raw, "a full queue: 503 with Retry-After: %d %r" % (status, raw[:120]))
        st, b = s.post("/v1/completions", {"prompt": ["1", "2"], "max_tokens": 2})   # 2 completions, --queue 1
        check(st == 400 and "--queue 1" in b["error"]["message"], "more completions than the queue ever holds: 400: %r" % b)
        for k in socks + [waiting]:
            k.close()
        check(wait_for(lambda: s.metric("reprise:kv_cache_used_visit_slots") == 0 and s.metric("reprise:num_requests_waiting") == 0),
              "all freed")
        # SIGTERM: the request in flight finishes, new ones are refused, the server exits 0
        result = {}

        def inflight():
            result["r"] = s.post("/v1/completions", {"prompt": [1, 5, 6], "max_tokens": 600, "ignore_eos": True, "temperature": 0})

        t = threading.Thread(target=inflight)
        t.start()
        check(wait_for(lambda: s.metric("reprise:num_requests_running") == 1), "in flight before SIGTERM")
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        try:
            st, b = s.post("/v1/completions", {"prompt": "1", "max_tokens": 2})
        except (ConnectionError, OSError):
            st = 503
        check(st == 503, "after SIGTERM a new request is refused: %s" % st)
        t.join(120)
        st, b = result.get("r", (None, None))
        check(st == 200 and b["usage"]["completion_tokens"] == 600, "the request in flight at SIGTERM completes")
        check(s.proc.wait(60) == 0, "the server exits 0 after SIGTERM")
    finally:
        s.stop()


def test_preemption(model_dir):
    """A KV budget too small for three long requests at once: the latest admitted are preempted as the others' KV
    grows, recompute their tokens when readmitted, and every text equals the request's text alone."""
    s = Server("-m", model_dir, "-c", "4096", "--parallel", "4", "--kv-budget", "1600")   # 4 visits: 400 positions
    try:
        body = {"prompt": [1, 5, 6], "max_tokens": 300, "ignore_eos": True, "temperature": 0}
        alone = s.post("/v1/completions", body)[1]
        seeded = dict(body, temperature=1.0, seed=99)
        alone_seeded = s.post("/v1/completions", seeded)[1]
        out = [None] * 4

        def run(i):
            out[i] = s.post("/v1/completions", body if i % 2 == 0 else seeded)[1]

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(s.metric("reprise:num_preemptions_total") > 0, "requests were preempted (reprise:num_preemptions_total)")
        check(all(o["choices"][0]["text"] == (alone if i % 2 == 0 else alone_seeded)["choices"][0]["text"] and
                  o["usage"]["completion_tokens"] == 300 for i, o in enumerate(out)),
              "preempted requests, greedy and seeded, end with the text they have alone")
        check(s.metric("reprise:kv_cache_used_visit_slots") == 0, "all KV back in the budget")
        st, b = s.post("/v1/completions", dict(body, max_tokens=500))
        check(st == 400 and "KV budget" in b["error"]["message"], "a request that cannot fit the budget alone: 400: %r" % b)
    finally:
        s.stop()


def test_api_key():
    s = Server("--api-key", "sekret")
    try:
        check(s.request("GET", "/health")[0] == 200, "/health needs no key")
        check(s.request("GET", "/v1/models")[0] == 401, "no key: 401")
        check(s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})[0] == 401, "a wrong key: 401")
        check(s.request("GET", "/v1/models", headers={"Authorization": "Bearer sekret"})[0] == 200, "the key: 200")
        check(s.request("GET", "/v1/models", headers={"Authorization": "Bearer sekre"})[0] == 401, "a prefix of the key: 401")
        check(s.request("GET", "/metrics")[0] == 200, "/metrics needs no API key (as vLLM's)")
    finally:
        s.stop()
    s = Server("--api-key", "sekret", "--metrics-key", "scrape")
    try:
        check(s.request("GET", "/metrics")[0] == 401 and
              s.request("GET", "/metrics", headers={"Authorization": "Bearer sekret"})[0] == 401 and
              s.request("GET", "/metrics", headers={"Authorization": "Bearer scrape"})[0] == 200 and
              s.request("GET", "/v1/models", headers={"Authorization": "Bearer scrape"})[0] == 401,
              "--metrics-key: /metrics takes that key alone, and it opens nothing else")
    finally:
        s.stop()
    env = dict(os.environ, REPRISE_API_KEY="fromenv")
    s = Server(env=env)
    try:
        check(s.request("GET", "/v1/models")[0] == 401 and
              s.request("GET", "/v1/models", headers={"Authorization": "Bearer fromenv"})[0] == 200, "REPRISE_API_KEY")
    finally:
        s.stop()


def test_access_log(s):
    """A line on stderr per request: client, "METHOD PATH", status, a generation's schedule and tokens, seconds."""
    st, b = s.post("/v1/completions", {"prompt": "12+34=", "max_tokens": 3, "temperature": 0, "layer_schedule": "0-4,3,5"})
    st2, _ = s.post("/v1/completions", {"prompt": "1+1=", "max_tokens": 2, "stream": True, "layer_schedule": "0-5,5"})
    s.request("GET", "/no/such%01path")   # decoded by the server to a control character
    time.sleep(0.3)
    log = s.stderr()
    want = r'reprise serve: 127\.0\.0\.1 "POST /v1/completions" 200 schedule=0-4,3,5 prompt_tokens=%d completion_tokens=%d ' \
           r'\d+\.\d{3} s' % (b["usage"]["prompt_tokens"], b["usage"]["completion_tokens"])
    check(st == 200 and re.search(want, log), "the access log's line of a completion: %s" % want)
    check(st2 == 200 and re.search(r'"POST /v1/completions" 200 schedule=0-5,5 prompt_tokens=\d+ completion_tokens=\d+ ', log),
          "a streamed completion's line, with its tokens")
    check('"GET /no/such?path" 404 ' in log, "a 404's line, the control character in its path made printable")


def test_quiet_and_hub_name():
    """--quiet: no access log. `serve ORG/NAME` from a Hugging Face cache: /v1/models lists that name, and requests may
    name the model by it, by the model as typed or by the directory it names."""
    with tempfile.TemporaryDirectory() as hub:
        snap = os.path.join(hub, "models--reprise-test--arith", "snapshots", "0123abcd")
        os.makedirs(snap)
        os.makedirs(os.path.join(hub, "models--reprise-test--arith", "refs"))
        with open(os.path.join(hub, "models--reprise-test--arith", "refs", "main"), "w") as f:
            f.write("0123abcd")
        for name in os.listdir(DEFAULT_MODEL):
            os.symlink(os.path.abspath(os.path.join(DEFAULT_MODEL, name)), os.path.join(snap, name))
        # the model first, as `vllm serve MODEL` takes it
        s = Server("--quiet", env=dict(os.environ, HF_HUB_CACHE=hub), first=("reprise-test/arith",))
        try:
            _, raw, _ = s.request("GET", "/v1/models")
            check([m["id"] for m in json.loads(raw)["data"]] == ["reprise-test/arith"], "/v1/models: the hub name: %s" % raw[:200])
            for model in ("reprise-test/arith", snap):
                st, b = s.post("/v1/completions", {"model": model, "prompt": "12+34=", "max_tokens": 3, "temperature": 0})
                check(st == 200 and b["model"] == "reprise-test/arith", "a request naming the model as %s: %d" % (model, st))
            st, b = s.post("/v1/completions", {"model": "arith", "prompt": "1", "max_tokens": 1})
            check(st == 404, "another name: 404 (%d)" % st)
            check('"POST /v1/completions"' not in s.stderr(), "--quiet: no access log")
        finally:
            s.stop()


def test_openai_client(s):
    if not os.path.isdir(os.path.join(OPENAI_DIR, "node_modules", "openai")):
        skip("the openai npm client is not installed (tests/openai_client: npm ci)")
        return
    expect = {"completion": generate_cli("99*99=", 8), "rys": generate_cli("99*99=", 8, "rys:2,4"), "chat": generate_cli("12+34=", 8)}
    out = subprocess.run(["node", os.path.join(OPENAI_DIR, "test_openai.mjs"), "http://127.0.0.1:%d/v1" % s.port, json.dumps(expect)],
                         capture_output=True, text=True, timeout=120)
    print(out.stdout, end="")
    check(out.returncode == 0, "the openai npm client: " + out.stdout[-500:] + out.stderr[-500:])


def test_openmp_spinning(s):
    """With no OpenMP wait policy chosen, reprise runs itself again with libgomp's spinning bounded (tools/reprise.c)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        skip("the spinning check: this environment chose an OpenMP wait policy")
        return
    with open("/proc/%d/environ" % s.proc.pid, "rb") as f:
        env = f.read().split(b"\0")
    check(b"GOMP_SPINCOUNT=1000" in env, "the server runs with GOMP_SPINCOUNT=1000")


def main():
    if OPENAI_DIR:
        s = Server("--parallel", "64")
        try:
            test_openai_client(s)
        finally:
            s.stop()
        finish()
    s = Server("--parallel", "64")
    try:
        test_openmp_spinning(s)
        test_basics(s)
        test_access_log(s)
        test_drafts(s)
        test_loglikelihood(s)
        test_malformed(s)
        test_seeded_under_load(s)
        test_load(s, LOAD)
        # a second server on the same port: refused at once, naming the port and why (errno)
        out = subprocess.run([REPRISE, "serve", "--port", str(s.port)], capture_output=True, text=True, timeout=120)
        check(out.returncode != 0 and "cannot listen on 127.0.0.1:%d: Address already in use" % s.port in out.stderr,
              "a port in use is refused with the reason: %s" % out.stderr.strip()[-200:])
        check(s.stop() == 0, "the server exits 0")
    finally:
        s.stop()
    test_api_key()
    test_quiet_and_hub_name()
    test_default_draft()
    with tempfile.TemporaryDirectory() as d:
        write_slow_model(d)
        test_preemption(d)
        test_slow(d)
    finish()


if __name__ == "__main__":
    main()
