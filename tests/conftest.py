"""Shared fixtures: offline switches, the real data beside the checkout, tiny and real models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RECAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (MovieLens, FaiRLLM lists); tests that need it skip with a reason when absent."""
    if not (SHARED_DATA / "ml-100k" / "u.data").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set RECAUDIT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory) -> Path:
    """A random-init 2-layer Llama with a byte tokenizer (built in-process, no download)."""
    from recaudit.testing import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def smollm2_adapter():
    """The embedded default (SmolLM2-135M-Instruct GGUF), loaded once per session; slow tests only."""
    from recaudit.adapters import default

    return default()


@pytest.fixture
def one_torch_thread(request):
    """Tiny-model ops are ~100x slower when torch's 2-thread pool waits on a busy shared CPU;
    slow (real-model) tests keep torch's own thread count."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(n if request.node.get_closest_marker("slow") else 1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def fault_server():
    """recaudit's fault-injecting OpenAI-compatible server (tests/fault_server.py), clean plan;
    change faults with ``fault_server.set_plan(...)``; stopped after the test."""
    from fault_server import FaultServer

    with FaultServer() as server:
        yield server
