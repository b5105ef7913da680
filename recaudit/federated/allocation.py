"""PPLR's flexible allocation: which parameters stay on the client and which cross the wire.

PPLR keeps the layers that see raw user data — the input embeddings, the first and last
transformer blocks and the LM head — on the client, and lets the server hold the rest. In
recaudit's LoRA federation this is a split of the *trainable* (LoRA) parameters:

* client-side ("private") LoRA tensors are trained and kept locally, never sent;
* server-side ("shared") LoRA tensors are sent up, aggregated and broadcast back.

The split is a pure function of parameter names, the number of decoder blocks and an
``AllocationConfig``; ``AllocationConfig(enabled=False)`` shares everything (plain FedAvg).
Without split execution every client runs the whole forward pass (the split concerns what is
exchanged); with it (``recaudit.federated.split``, in-process) the client computes only its
layers and the server the middle blocks. ``base_parameter_split`` reports how many base weights
each side would hold, PPLR's client-memory argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping

import numpy as np

Role = Literal["embeddings", "block", "lm_head", "final_norm", "other"]
Side = Literal["client", "server"]

_BLOCK = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
_EMBEDDINGS = ("embed_tokens", "wte", "wpe", "word_embeddings", "embed_in", "embed_positions")
_LM_HEAD = ("lm_head", "embed_out")
_FINAL_NORM = ("model.norm.", "ln_f.", "final_layer_norm.", "norm_out.")


@dataclass(frozen=True)
class AllocationConfig:
    """Which modules stay on the client: embeddings, the first/last ``k`` blocks, the LM head."""

    enabled: bool = True
    embeddings: bool = True
    first_k: int = 1
    last_k: int = 1
    lm_head: bool = True

    def __post_init__(self) -> None:
        if self.first_k < 0 or self.last_k < 0:
            raise ValueError(f"first_k and last_k must be >= 0, got {self.first_k}, {self.last_k}")

    def client_blocks(self, n_layers: int) -> set[int]:
        """Indices of the decoder blocks kept on the client."""
        if not self.enabled:
            return set()
        return set(range(min(self.first_k, n_layers))) | set(range(max(0, n_layers - self.last_k), n_layers))


@dataclass(frozen=True)
class Allocation:
    """The split of parameter names into client-kept and server-exchanged ones."""

    client: tuple[str, ...]
    server: tuple[str, ...]

    def side(self, name: str) -> Side:
        """Which side ``name`` belongs to."""
        if name in self.client:
            return "client"
        if name in self.server:
            return "server"
        raise KeyError(f"{name!r} is not part of this allocation")


def module_role(name: str) -> tuple[Role, int | None]:
    """The role of a parameter in a decoder LM and, for blocks, the block index."""
    m = _BLOCK.search(name)
    if m:
        return "block", int(m.group(1))
    if any(f"{e}." in name or name.endswith(e) for e in _EMBEDDINGS):
        return "embeddings", None
    if any(f"{h}." in name or name.endswith(h) for h in _LM_HEAD):
        return "lm_head", None
    if any(n in name for n in _FINAL_NORM):
        return "final_norm", None
    return "other", None


def count_blocks(names: Iterable[str]) -> int:
    """Number of decoder blocks seen in ``names`` (largest block index + 1)."""
    idx = [module_role(n)[1] for n in names]
    idx = [i for i in idx if i is not None]
    return max(idx) + 1 if idx else 0


def is_client_side(name: str, n_layers: int, config: AllocationConfig) -> bool:
    """True when the parameter ``name`` stays on the client under ``config``."""
    if not config.enabled:
        return False
    role, block = module_role(name)
    if role == "block":
        return block in config.client_blocks(n_layers)
    if role == "embeddings":
        return config.embeddings
    if role in ("lm_head", "final_norm"):
        # the final norm feeds only the LM head, so it travels with it
        return config.lm_head
    return False


def split_names(names: Iterable[str], n_layers: int | None, config: AllocationConfig) -> Allocation:
    """Split parameter names into (client, server), each sorted; ``n_layers`` inferred if None."""
    names = sorted(set(names))
    if n_layers is None:
        n_layers = count_blocks(names)
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {n_layers}")
    client = tuple(n for n in names if is_client_side(n, n_layers, config))
    kept = set(client)
    return Allocation(client=client, server=tuple(n for n in names if n not in kept))


def array_nbytes(arrays: Mapping[str, object]) -> int:
    """Sum of the raw byte sizes of numpy arrays / torch tensors (payload without framing)."""
    total = 0
    for a in arrays.values():
        if hasattr(a, "element_size") and hasattr(a, "numel"):
            total += int(a.element_size() * a.numel())
        else:
            total += int(np.asarray(a).nbytes)
    return total


def array_numel(arrays: Mapping[str, object]) -> int:
    """Total number of elements of numpy arrays / torch tensors."""
    return int(sum(a.numel() if hasattr(a, "numel") else np.asarray(a).size for a in arrays.values()))


def base_parameter_split(model: object, n_layers: int, config: AllocationConfig) -> dict[str, int]:
    """Unique frozen+trainable parameter counts per side if the model were split PPLR-style.

    Tied weights (e.g. an LM head sharing the embedding matrix) are counted once, on the
    client when either user is client-side.
    """
    seen: dict[int, tuple[int, bool]] = {}
    for name, p in model.named_parameters():  # type: ignore[attr-defined]
        key = p.data_ptr()
        on_client = is_client_side(name, n_layers, config)
        prev = seen.get(key)
        seen[key] = (p.numel(), on_client or (prev[1] if prev else False))
    client = sum(n for n, c in seen.values() if c)
    total = sum(n for n, _ in seen.values())
    return {"client": client, "server": total - client, "total": total}
