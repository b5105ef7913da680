"""Client overhead of OpenAICompatible per request, and how its concurrency saturates.

    python benchmarks/endpoint_overhead.py [--n 400] [--latency-ms 20] [--concurrency 1,2,4,8,16,32]

Against a local stub server (http.server, 127.0.0.1) that answers a fixed chat completion:
1. overhead: the same N sequential requests through a bare ``httpx.Client.post`` and through
   ``OpenAICompatible.generate([request])``; the difference per request is what the adapter adds
   (request building, JSON parsing, Response, thread hand-off). Target < 1 ms.
2. saturation: N requests in one ``generate`` call against a server that sleeps
   ``--latency-ms`` per request, for several ``max_concurrency`` values; the ideal is
   concurrency / latency requests per second.
Writes benchmarks/results/endpoint_overhead.json. The server shares the CPU with the client,
so absolute numbers include its cost; the overhead is a difference of two runs on that server.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from generation import machine_info, write_report  # noqa: E402

REPLY = json.dumps({
    "choices": [{"message": {"role": "assistant", "content": "1. Inception\n2. Interstellar\n3. Memento"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 60, "completion_tokens": 12},
}).encode()


def serve(latency_s: float) -> tuple[ThreadingHTTPServer, str]:
    """Start a stub chat-completions server in a daemon thread; return it and its base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers
        # one write per response and no Nagle: otherwise delayed ACKs add ~40 ms per request
        disable_nagle_algorithm = True
        wbufsize = -1

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            if latency_s:
                time.sleep(latency_s)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(REPLY)))
            self.end_headers()
            self.wfile.write(REPLY)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--concurrency", default="1,2,4,8,16,32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "endpoint_overhead.json"))
    args = ap.parse_args()

    import httpx

    from recaudit.adapters import Request
    from recaudit.adapters.openai_compat import OpenAICompatible

    reqs = [Request.chat(f"I am a fan of director {i}. Please provide me with a list of 20 movie titles.",
                         max_new_tokens=200, repetition_penalty=1.3) for i in range(args.n)]
    httpd, url = serve(0.0)
    adapter = OpenAICompatible(url, "stub", max_concurrency=1)
    raw = httpx.Client()
    bodies = [adapter.body(r) for r in reqs]
    for b in bodies[:20]:  # warm-up: connections, imports
        raw.post(url + "/chat/completions", json=b).json()
        adapter.generate([reqs[0]])
    raw_s, ad_s = [], []
    for _ in range(args.repeats):  # interleave, take the best of each (noise on a shared CPU)
        t = time.perf_counter()
        for b in bodies:
            raw.post(url + "/chat/completions", json=b).json()
        raw_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        for r in reqs:
            adapter.generate([r])
        ad_s.append(time.perf_counter() - t)
    overhead = {
        "requests": args.n,
        "raw_httpx_ms_per_request": round(min(raw_s) / args.n * 1e3, 3),
        "adapter_ms_per_request": round(min(ad_s) / args.n * 1e3, 3),
        "adapter_overhead_ms_per_request": round((min(ad_s) - min(raw_s)) / args.n * 1e3, 3),
        "target_ms": 1.0,
    }
    print("overhead", overhead, flush=True)
    adapter.close()
    httpd.shutdown()

    httpd, url = serve(args.latency_ms / 1e3)
    saturation = []
    for c in (int(x) for x in args.concurrency.split(",")):
        with OpenAICompatible(url, "stub", max_concurrency=c) as a:
            a.generate(reqs[:c])  # open the connections
            t = time.perf_counter()
            out = a.generate(reqs)
            secs = time.perf_counter() - t
        assert all(r.error is None for r in out)
        ideal = c / (args.latency_ms / 1e3)
        saturation.append({"max_concurrency": c, "requests_per_s": round(args.n / secs, 1),
                           "ideal_requests_per_s": round(ideal, 1), "efficiency": round(args.n / secs / ideal, 3)})
        print(saturation[-1], flush=True)
    httpd.shutdown()

    report = {"benchmark": "endpoint_overhead", "command": "python " + " ".join(sys.argv),
              "overhead": overhead, "server_latency_ms": args.latency_ms, "saturation": saturation,
              "machine": machine_info()}
    write_report(report, args.out)


if __name__ == "__main__":
    main()
