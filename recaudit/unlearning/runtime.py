"""Where an unlearning run executes: device resolution (deterministic cuBLAS, TF32) and what it recorded."""

from __future__ import annotations

from typing import Any


def resolve_device(device: str) -> str:
    """"auto" → "cuda" when a GPU is visible, else "cpu"; on CUDA, set up deterministic cuBLAS and TF32.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS starts for ``use_deterministic_algorithms``
    to make matmuls repeatable (APA's shard-exactness check relies on it), so it is set before
    torch is asked about CUDA at all; TF32 keeps float32 training fast on Ampere/Hopper and is
    itself deterministic.
    """
    import os

    if device == "auto" or device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s)")
        torch.set_float32_matmul_precision("high")  # TF32 matmuls (cuBLAS); the CPU path is left as it was
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but torch sees no MPS device")
    return device


def runtime_settings(device: str) -> dict[str, Any]:
    """What decides the numbers beyond the params: device, cuBLAS workspace, matmul precision, attention kernel."""
    import os

    import torch

    out: dict[str, Any] = {"device": device, "torch": torch.__version__}
    if device.startswith("cuda"):
        out.update(
            gpu=torch.cuda.get_device_name(torch.device(device)),
            cublas_workspace_config=os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            float32_matmul_precision=torch.get_float32_matmul_precision(),
            tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
            training_attention="sdpa math kernel (deterministic backward)",
        )
    return out

