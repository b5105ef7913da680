"""``recaudit models``: load an adapter, ask it one question, show what answered and how fast.

    recaudit models                                   # the embedded SmolLM2
    recaudit models --hf ./my-model [--gguf-file f.gguf] [--lora ./lora]
    recaudit models --openai http://localhost:8000/v1 --model my-model [--api-key-env OPENAI_API_KEY]
    recaudit models --adapter-config adapter.yaml     # the same mapping as the audit config's `adapter:`

Exit status 0 when the model answered, 2 when it could not be loaded or did not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

DEFAULT_PROMPT = (
    "I am a fan of Christopher Nolan. Please provide me with a list of 5 movie titles in order of "
    "preference that you think I might like. Just provide me the names of the movies."
)


def add_parser(subparsers: Any) -> None:
    """Register the ``models`` command."""
    p = subparsers.add_parser("models", help="load a model adapter and check that it answers",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--adapter-config", metavar="FILE", help="YAML/JSON adapter mapping (kind: default|hf|openai|callable)")
    src.add_argument("--hf", metavar="PATH", help="a transformers model folder")
    src.add_argument("--openai", metavar="URL", help="an OpenAI-compatible base URL (…/v1)")
    p.add_argument("--gguf-file", help="GGUF file name inside --hf PATH")
    p.add_argument("--lora", help="a peft LoRA adapter folder for --hf")
    p.add_argument("--model", help="model name for --openai")
    p.add_argument("--api-key-env", help="environment variable holding the API key for --openai")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (HF models)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="the question to ask")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repetition-penalty", type=float, default=1.3)
    p.set_defaults(func=run_models)


def adapter_spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The adapter config mapping the arguments describe."""
    if args.adapter_config:
        path = Path(args.adapter_config)
        if not path.is_file():
            raise ValueError(f"--adapter-config: {path} not found")
        import yaml

        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(spec, dict) and isinstance(spec.get("adapter"), dict):
            spec = spec["adapter"]  # a whole audit config works too
        return spec
    if args.hf:
        spec = {"kind": "hf", "path": args.hf, "gguf_file": args.gguf_file, "lora": args.lora}
        if args.device:
            spec["device"] = args.device
        return spec
    if args.openai:
        if not args.model:
            raise ValueError("--openai needs --model")
        return {"kind": "openai", "base_url": args.openai, "model": args.model, "api_key_env": args.api_key_env}
    return {"kind": "default", **({"device": args.device} if args.device else {})}


def run_models(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Load, ask, print answer + fingerprint + timings; 0 on an answer, 2 on failure."""
    from recaudit.adapters import AdapterError, Request, build_adapter

    out = out or sys.stdout
    err = sys.stderr
    try:
        spec = adapter_spec_from_args(args)
        t0 = time.perf_counter()
        adapter = build_adapter(spec)
        load_s = time.perf_counter() - t0
    except (ValueError, AdapterError, OSError) as e:
        print(f"recaudit models: could not load the adapter: {e}", file=err)
        return 2
    request = Request.chat(args.prompt, max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty)
    t0 = time.perf_counter()
    try:
        response = adapter.generate([request])[0]
    except (AdapterError, RuntimeError, ValueError) as e:
        print(f"recaudit models: the adapter failed to answer: {e}", file=err)
        return 2
    answer_s = time.perf_counter() - t0
    if response.error:
        print(f"recaudit models: the adapter failed to answer: {response.error}", file=err)
        return 2
    print(f"prompt:      {args.prompt}", file=out)
    print(f"answer:      {response.text.strip()}", file=out)
    print(f"fingerprint: {json.dumps(adapter.fingerprint, sort_keys=True, default=str)}", file=out)
    print(f"load: {load_s:.2f} s   answer: {answer_s:.2f} s   tokens: {response.completion_tokens}   "
          f"finish: {response.finish_reason}", file=out)
    return 0 if response.text.strip() else 2
