"""Frozen-prefix caching: when LoRA sits only on the top N layers, run the bottom layers once.

With ``TrainConfig(lora_layers=N)`` the adapters touch only the last N transformer blocks, so
the hidden states entering block ``L - N`` depend on the frozen base alone. They are computed
once per sample (batch of one, so a sample's cache never depends on which batch or shard it was
in) and every later forward — each epoch, each shard, each unlearning method — runs only the
top N blocks from the cache. This is what makes CPU-scale unlearning experiments with a real
135M model feasible; it changes nothing numerically except the batch-of-one bottom pass.

Works with decoder-only HF models whose blocks live in ``<base>.model.layers`` (Llama, Mistral,
Qwen2, SmolLM2 …); other layouts raise a clear error.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

from recaudit.tallrec.encoding import Batch, EncodedSample, collate

ATTR = "_recaudit_frozen_prefix"


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers_owner(model: Any) -> Any:
    """The module that holds the ``layers`` ModuleList (e.g. LlamaModel)."""
    inner = getattr(_base(model), "model", None)
    if inner is None or not hasattr(inner, "layers"):
        raise ValueError(
            f"lora_layers needs a decoder with `.model.layers` blocks; {type(_base(model)).__name__} has none"
        )
    return inner


def num_layers(model: Any) -> int:
    """Number of transformer blocks."""
    return len(decoder_layers_owner(model).layers)


class FrozenPrefix:
    """Caches, per sample, the hidden states entering block ``split`` (bottom blocks are frozen)."""

    def __init__(self, model: Any, split: int):
        n = num_layers(model)
        if not 0 < split < n:
            raise ValueError(f"prefix split must be in (0, {n}), got {split}")
        bad = [name for name, _ in model.named_parameters() if "lora_" in name and _layer_index(name) is not None
               and _layer_index(name) < split]  # fmt: skip
        if bad:
            raise ValueError(f"LoRA parameters below the cached prefix (block < {split}): {bad[:2]}")
        self.split = split
        self._cache: dict[tuple[tuple[int, ...], tuple[int, ...]], Any] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def hidden(self, model: Any, e: EncodedSample) -> Any:
        """Hidden states [prompt+answer, H] entering block ``split`` for one sample (cached)."""
        import torch

        key = (e.prompt_ids, e.answer_ids)
        if key not in self._cache:
            ids = torch.tensor([list(e.prompt_ids) + list(e.answer_ids)], device=_device(model))
            owner = decoder_layers_owner(model)
            captured: list[Any] = []

            def grab(_module: Any, _inputs: Any, output: Any) -> None:
                captured.append(output[0] if isinstance(output, tuple) else output)

            # a hook, not output_hidden_states: HF replaces the last recorded state by the normed one
            handle = owner.layers[self.split - 1].register_forward_hook(grab)
            try:
                with torch.no_grad(), self._only(owner, slice(0, self.split)):
                    model(input_ids=ids, use_cache=False, logits_to_keep=1)
            finally:
                handle.remove()
            self._cache[key] = captured[-1].detach()[0].clone()
        return self._cache[key]

    def embeds(self, model: Any, encoded: Sequence[EncodedSample], p_max: int, t: int, with_answer: bool) -> Any:
        """Cached hidden states laid out like ``encoding.collate``'s batch: [B, t, H], zeros at pads."""
        import torch

        rows = [self.hidden(model, e) for e in encoded]
        out = torch.zeros((len(rows), t, rows[0].shape[-1]), dtype=rows[0].dtype, device=rows[0].device)
        for i, (e, h) in enumerate(zip(encoded, rows)):
            p = len(e.prompt_ids)
            out[i, p_max - p : p_max] = h[:p]
            if with_answer:
                a = len(e.answer_ids)
                out[i, p_max : p_max + a] = h[p : p + a]
        return out

    @contextlib.contextmanager
    def top_only(self, model: Any) -> Iterator[None]:
        """Inside the block the model runs only blocks ``split..L-1`` (fed through ``inputs_embeds``)."""
        with self._only(decoder_layers_owner(model), slice(self.split, None)):
            yield

    @staticmethod
    @contextlib.contextmanager
    def _only(owner: Any, part: slice) -> Iterator[None]:
        import torch

        full = owner.layers
        owner.layers = torch.nn.ModuleList(list(full)[part])
        try:
            yield
        finally:
            owner.layers = full


def enable_prefix_cache(model: Any, n_top: int) -> FrozenPrefix:
    """Attach a frozen-prefix cache to ``model`` for LoRA on its top ``n_top`` blocks; returns it."""
    existing = getattr(model, ATTR, None)
    split = num_layers(model) - n_top
    if existing is not None and existing.split == split:
        return existing
    prefix = FrozenPrefix(model, split)
    setattr(model, ATTR, prefix)
    return prefix


def prefix_of(model: Any) -> FrozenPrefix | None:
    """The model's frozen-prefix cache, if enabled."""
    return getattr(model, ATTR, None)


def _layer_index(name: str) -> int | None:
    parts = name.split(".")
    for a, b in zip(parts, parts[1:]):
        if a == "layers" and b.isdigit():
            return int(b)
    return None


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def model_batch(model: Any, tokenizer: Any, encoded: Sequence[EncodedSample], with_answer: bool = True) -> Batch:
    """A padded batch on the model's device, fed from the frozen-prefix cache when one is enabled."""
    batch = collate(encoded, tokenizer.pad_token_id, with_answer=with_answer, device=_device(model))
    prefix = prefix_of(model)
    if prefix is not None:
        p_max = max(len(e.prompt_ids) for e in encoded)
        batch.inputs_embeds = prefix.embeds(model, encoded, p_max, batch.input_ids.shape[1], with_answer)
        batch.prefix = prefix
    return batch


@contextlib.contextmanager
def prefix_cache_disabled(model: Any) -> Iterator[None]:
    """Inside the block every forward runs the whole model (e.g. to time uncached inference)."""
    prefix = getattr(model, ATTR, None)
    setattr(model, ATTR, None)
    try:
        yield
    finally:
        setattr(model, ATTR, prefix)
