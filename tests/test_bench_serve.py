#!/usr/bin/env python3
"""reprise bench --serve against a running reprise serve: every request completed, TTFT <= E2EL for each, vLLM's
result keys, schedules interleaved and summarized apart, goodput, chosen percentiles, the jsonl dataset and chat; and
against broken servers (unreachable, errors, a hang, a stream cut short): reported with the cause, never hung.
Timing values are never compared with anything but each other. usage: test_bench_serve.py REPRISE"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish  # noqa: E402
from test_serve import Server  # noqa: E402  (reprise serve on a free port)

REPRISE = sys.argv[1]


def bench(url, *args, timeout=300):
    return subprocess.run([REPRISE, "bench", "--serve", url, *args], capture_output=True, text=True, timeout=timeout)


class Broken(http.server.BaseHTTPRequestHandler):
    """An OpenAI-looking server that fails in one way: 'error' (500s), 'hang' (never answers), 'cut' (the stream stops
    before [DONE] after the first request, which succeeds so that the run starts)."""
    mode = "error"
    served = 0
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            self.reply(200, json.dumps({"object": "list", "data": [{"id": "broken", "object": "model"}]}))
        elif self.path == "/tokenizer_info":
            self.reply(200, json.dumps({"vocab_size": 100}))
        else:
            self.reply(404, "{}")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        cls = type(self)
        cls.served += 1
        if cls.mode == "error":
            self.reply(500, json.dumps({"error": {"message": "the GPU caught fire", "type": "InternalServerError"}}))
        elif cls.mode == "hang":
            time.sleep(30)
        else:
            chunk = 'data: {"choices": [{"index": 0, "text": "x"}]}\n\n'
            body = chunk * 3 + ("data: [DONE]\n\n" if cls.served == 1 else "")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body.encode())
            self.close_connection = True


def broken_server(mode):
    handler = type("Broken_" + mode, (Broken,), {"mode": mode, "served": 0})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "http://127.0.0.1:%d" % srv.server_address[1]


def main():
    probe = bench("http://127.0.0.1:9", "--num-prompts", "1")
    if "built without libcurl" in probe.stderr:
        print("skip: this reprise is built without libcurl (it says so)")
        sys.exit(77)

    s = Server("--parallel", "8")
    url = "http://127.0.0.1:%d" % s.port
    with tempfile.TemporaryDirectory() as d:
        try:
            result = os.path.join(d, "r.json")
            out = bench(url, "--num-prompts", "40", "--random-input-len", "8", "--random-output-len", "12", "--ignore-eos",
                        "--request-rate", "200", "--max-concurrency", "6", "--schedule", "base;rys:2,4",
                        "--metric-percentiles", "50,99", "--save-result", "--result-filename", result)
            check(out.returncode == 0 and "Serving Benchmark Result" in out.stdout, "a run: exit 0, vLLM's table (%s)" % out.stderr[-300:])
            r = json.load(open(result)) if os.path.exists(result) else {}
            keys = {"date", "model_id", "num_prompts", "request_rate", "burstiness", "max_concurrency", "duration", "completed",
                    "failed", "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
                    "output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls",
                    "generated_texts", "errors", "layer_schedules"}
            for m in ("ttft", "tpot", "itl"):
                keys |= {"mean_%s_ms" % m, "median_%s_ms" % m, "std_%s_ms" % m, "p50_%s_ms" % m, "p99_%s_ms" % m}
            check(keys <= set(r), "the result file holds vLLM's keys: missing %s" % sorted(keys - set(r)))
            # each schedule in its own phase: the 40 prompts with base, then the same 40 with rys:2,4
            check(r.get("completed") == 80 and r.get("failed") == 0 and r.get("num_prompts") == 40, "every request completed")
            e2els = r.get("e2els", [])
            check(len(r.get("ttfts", [])) == 80 and all(0 < t <= e for t, e in zip(r["ttfts"], e2els)), "TTFT <= E2EL for each request")
            check(r.get("output_lens") == [12] * 80 and r.get("input_lens") == [8] * 80 and r.get("total_output_tokens") == 960,
                  "--ignore-eos: every request generated its 12 tokens; random prompts of 8 token ids")
            check(all(len(g) <= 11 and all(x >= 0 for x in g) for g in r.get("itls", [])), "ITL: a gap per chunk after the first")
            check(r.get("layer_schedules") == ["base"] * 40 + ["rys:2,4"] * 40 and r.get("schedule_mode") == "phases",
                  "each schedule in its own phase, never sharing a batch step with the other")
            per = r.get("schedules", [])
            check(len(per) == 2 and [p["completed"] for p in per] == [40, 40] and per[0]["mean_tpot_vs_first"] == 1 and
                  per[1]["mean_tpot_vs_first"] > 0, "a summary per schedule, the first the base of the ratios")
            check(len(per) == 2 and abs(per[0]["duration"] + per[1]["duration"] - r["duration"]) < 1e-6 and
                  all(abs(p["output_throughput"] - p["total_output_tokens"] / p["duration"]) < 1e-6 * p["output_throughput"] for p in per),
                  "each schedule's throughput from its own requests over its own phase; the phases make the run")
            check(r.get("mean_ttft_ms", 0) > 0 and r["p99_ttft_ms"] >= r["p50_ttft_ms"] and r["request_goodput"] is None,
                  "figures positive, percentiles ordered, no goodput without --goodput")
            check("| rys:2,4 | 40 | 0 |" in out.stdout and "in its own phase" in out.stdout, "the schedules side by side on stdout, saying how they ran")
            # --interleave-schedules: the old mix, said to be a mix
            out = bench(url, "--num-prompts", "8", "--random-input-len", "8", "--random-output-len", "4", "--ignore-eos",
                        "--max-concurrency", "2", "--schedule", "base;rys:2,4", "--interleave-schedules", "--save-result",
                        "--result-filename", result)
            r = json.load(open(result)) if out.returncode == 0 else {}
            check(r.get("layer_schedules") == ["base", "rys:2,4"] * 4 and r.get("schedule_mode") == "interleaved" and
                  "measures the mix" in out.stdout, "--interleave-schedules: request by request, the table says it measures the mix")
            # --result-dir: made when missing; one that cannot be made is refused before the run
            out = bench(url, "--num-prompts", "2", "--random-input-len", "4", "--random-output-len", "4", "--save-result",
                        "--result-dir", os.path.join(d, "new", "sub"), "--result-filename", "n.json")
            check(out.returncode == 0 and os.path.exists(os.path.join(d, "new", "sub", "n.json")), "a missing --result-dir is made")
            open(os.path.join(d, "file"), "w").close()
            out = bench(url, "--num-prompts", "2", "--random-input-len", "4", "--random-output-len", "4", "--save-result",
                        "--result-dir", os.path.join(d, "file", "sub"))
            check(out.returncode != 0 and "--result-dir" in out.stderr and "Not a directory" in out.stderr and
                  "Serving Benchmark Result" not in out.stdout and "a first request" not in out.stderr,
                  "a --result-dir that cannot be made is refused at start, with the reason: %s" % out.stderr[-200:])

            out = bench(url, "--num-prompts", "6", "--random-input-len", "4", "--random-output-len", "4", "--goodput",
                        "ttft:1e9,tpot:1e9,e2el:1e9", "--percentile-metrics", "ttft,e2el", "--metric-percentiles", "99.9",
                        "--save-result", "--result-dir", d, "--result-filename", "g.json")
            g = json.load(open(os.path.join(d, "g.json"))) if out.returncode == 0 else {}
            check(g.get("request_goodput") == g.get("request_throughput") and "p99.9_e2el_ms" in g and "mean_itl_ms" not in g
                  and "Request goodput (req/s)" in out.stdout, "--goodput met by every request; the chosen metrics and percentiles")
            out = bench(url, "--num-prompts", "4", "--random-input-len", "4", "--random-output-len", "4", "--goodput",
                        "ttft:0.000001", "--save-result", "--result-filename", os.path.join(d, "g2.json"))
            g = json.load(open(os.path.join(d, "g2.json"))) if out.returncode == 0 else {}
            check(g.get("request_goodput") == 0 and g.get("completed") == 4, "--goodput that no request meets: 0")

            jsonl = os.path.join(d, "p.jsonl")
            with open(jsonl, "w") as f:
                f.write('{"prompt": "12+7="}\n\n{"prompt": "3+4=", "output_len": 3}\n')
            for endpoint in ("/v1/completions", "/v1/chat/completions"):
                out = bench(url, "--endpoint", endpoint, "--dataset-name", "jsonl", "--dataset-path", jsonl, "--num-prompts", "5",
                            "--random-output-len", "6", "--ignore-eos", "--save-result", "--result-filename", os.path.join(d, "j.json"))
                j = json.load(open(os.path.join(d, "j.json"))) if out.returncode == 0 else {}
                check(j.get("completed") == 5 and j.get("output_lens") == [6, 3, 6, 3, 6] and "used again" in out.stderr,
                      "jsonl prompts through %s, output_len per line, the lines reused (%s)" % (endpoint, out.stderr[-200:]))

            with open(jsonl, "w") as f:
                f.write('{"prompt": "1+1="}\n{"prompt": 7}\n')
            out = bench(url, "--dataset-name", "jsonl", "--dataset-path", jsonl, "--num-prompts", "2")
            check(out.returncode == 1 and "p.jsonl:2: no \"prompt\"" in out.stderr, "a bad jsonl line named: %s" % out.stderr.strip()[-120:])
            out = bench(url, "--num-prompts", "2", "--random-input-len", "4", "--random-output-len", "4", "--schedule", "base;0-99")
            check(out.returncode == 1 and "first request" in out.stderr and "out of range" in out.stderr,
                  "a schedule the server refuses: its reason, before the run")
            out = bench(url, "--num-prompts", "3", "--random-input-len", "200")
            check(out.returncode == 1 and "maximum context length" in out.stderr, "prompts longer than the context: the server's reason")
            check(s.stop() == 0, "the server exits 0")
        finally:
            s.stop()

        # broken servers: reported, with the cause, in bounded time
        t = time.time()
        out = bench("http://127.0.0.1:9", "--num-prompts", "2", timeout=60)
        check(out.returncode == 1 and "127.0.0.1:9" in out.stderr and "onnect" in out.stderr, "unreachable: %s" % out.stderr.strip()[-120:])
        srv, burl = broken_server("error")
        out = bench(burl, "--num-prompts", "2", "--random-input-len", "4", timeout=60)
        check(out.returncode == 1 and "HTTP 500: the GPU caught fire" in out.stderr, "a server of errors: %s" % out.stderr.strip()[-120:])
        srv.shutdown()
        srv, burl = broken_server("hang")
        out = bench(burl, "--num-prompts", "2", "--random-input-len", "4", "--request-timeout", "1", timeout=60)
        check(out.returncode == 1 and "imed out" in out.stderr, "a server that never answers: %s" % out.stderr.strip()[-120:])
        srv.shutdown()
        srv, burl = broken_server("cut")
        out = bench(burl, "--num-prompts", "4", "--random-input-len", "4", "--save-result", "--result-filename",
                    os.path.join(d, "c.json"), timeout=60)
        c = json.load(open(os.path.join(d, "c.json"))) if out.returncode == 0 else {}
        check(c.get("failed") == 4 and c.get("completed") == 0 and all("before data: [DONE]" in e for e in c.get("errors", [""])),
              "streams cut short: every request failed with the cause, the run completes (%s)" % out.stderr.strip()[-160:])
        srv.shutdown()
        check(time.time() - t < 60, "the broken servers took bounded time")

    for args, words in [(["--request-rate", "-1"], "--request-rate"), (["--dataset-name", "sharegpt"], "random or jsonl"),
                        (["--dataset-name", "jsonl"], "needs --dataset-path"), (["--goodput", "itl:5"], "ttft, tpot or e2el"),
                        (["--percentile-metrics", "foo"], "ttft, tpot, itl, e2el"), (["--num-prompts", "0"], "--num-prompts"),
                        (["--frobnicate", "1"], "unknown option")]:
        out = bench("http://127.0.0.1:9", *args)
        check(out.returncode == 2 and words in out.stderr, "refused: %s: %s" % (" ".join(args), out.stderr.strip()[-100:]))
    out = subprocess.run([REPRISE, "bench", "--serve", "ftp://x"], capture_output=True, text=True)
    check(out.returncode == 2 and "not an http" in out.stderr, "refused: a URL that is not http")

    finish()


if __name__ == "__main__":
    main()
