"""PPLR's flexible allocation as split execution: the client runs its layers, the server the rest.

The client holds the layers that see raw user data — the token embeddings and the first
``first_k`` decoder blocks (front), the last ``last_k`` blocks, the final norm and the LM head
(tail); the server runs the blocks in between (middle). One training step:

1. client: ``h₁ = front(tokens)`` → sends ``h₁`` with the attention mask and positions;
2. server: ``h₂ = middle(h₁)`` → sends ``h₂``;
3. client: ``loss = tail(h₂)``, backward → sends ``∂loss/∂h₂``; steps its own LoRA;
4. server: backward through the middle → steps the middle LoRA, sends ``∂loss/∂h₁``;
5. client: backward through the front, steps the front LoRA.

Tokens, labels and logits never leave the client; activations and their gradients cross every
step (``SplitChannel`` counts their bytes). What is and is not realised: the split *computation*
is real (the client code path never calls a middle block, the server's never sees token ids or
labels, each side steps its own optimizer), and the gradients equal whole-model training's
(tests). It runs in-process: both sides use the same loaded model object, so the client's
*memory* saving is reported (``allocation.base_parameter_split``), not realised, and the
activation channel is a function call, not a network transport — Flower's Message API is
round-oriented, a per-step RPC would need a second channel. Llama-style decoders only
(``model.model.{embed_tokens, rotary_emb, layers, norm}``, ``lm_head``): SmolLM2 and the tiny test model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from recaudit.federated.allocation import AllocationConfig


@dataclass
class SplitChannel:
    """The client↔server wire of split execution: counts what crosses in each direction."""

    bytes_up: int = 0
    bytes_down: int = 0
    messages: int = 0
    log: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)

    def send(self, direction: str, name: str, tensor: Any) -> Any:
        """Hand ``tensor`` across (detached: no autograd graph crosses) and count its bytes."""
        nbytes = int(tensor.element_size() * tensor.numel())
        if direction == "up":
            self.bytes_up += nbytes
        elif direction == "down":
            self.bytes_down += nbytes
        else:
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        self.messages += 1
        self.log.append((direction, name, tuple(tensor.shape)))
        return tensor.detach().clone()


@dataclass(frozen=True)
class SplitPlan:
    """Block indices per side: client front, server middle, client tail."""

    front: tuple[int, ...]
    middle: tuple[int, ...]
    tail: tuple[int, ...]


def split_plan(n_layers: int, config: AllocationConfig) -> SplitPlan:
    """The blocks each side runs; the client must hold the embeddings and the LM head (they see raw data)."""
    if not (config.enabled and config.embeddings and config.lm_head):
        raise ValueError("split execution needs the embeddings and the LM head on the client "
                         "(alloc_enabled, alloc_embeddings, alloc_lm_head)")
    first, last = min(config.first_k, n_layers), min(config.last_k, n_layers)
    if first + last >= n_layers:
        raise ValueError(f"split execution: first_k={config.first_k} + last_k={config.last_k} leave no block of "
                         f"{n_layers} for the server")
    return SplitPlan(tuple(range(first)), tuple(range(first, n_layers - last)), tuple(range(n_layers - last, n_layers)))


def _inner(model: Any) -> tuple[Any, Any]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    if inner is None or not all(hasattr(inner, a) for a in ("embed_tokens", "rotary_emb", "layers", "norm")):
        raise ValueError("split execution supports Llama-style decoders (model.model.embed_tokens/layers/norm)")
    return base, inner


def _blocks(inner: Any, idx: Sequence[int], h: Any, mask: Any, position_ids: Any, pos_emb: Any) -> Any:
    for i in idx:
        out = inner.layers[i](h, attention_mask=mask, position_ids=position_ids, position_embeddings=pos_emb)
        h = out[0] if isinstance(out, tuple) else out
    return h


def _mask_and_positions(inner: Any, h: Any, attention_mask: Any, position_ids: Any) -> tuple[Any, Any]:
    """What each side derives itself from the mask and positions (no token content)."""
    import torch
    from transformers.masking_utils import create_causal_mask

    cache_position = torch.arange(h.shape[1], device=h.device)
    mask = create_causal_mask(config=inner.config, input_embeds=h, attention_mask=attention_mask,
                              cache_position=cache_position, past_key_values=None, position_ids=position_ids)
    return mask, inner.rotary_emb(h, position_ids)


class SplitClient:
    """The client's side: front (embeddings + first blocks) and tail (last blocks, norm, LM head)."""

    def __init__(self, model: Any, plan: SplitPlan):
        self.base, self.inner = _inner(model)
        self.plan = plan

    def front(self, batch: Any) -> tuple[Any, Any, Any]:
        """``h₁`` and the mask/positions the server needs."""
        if getattr(batch, "prefix", None) is not None:
            raise ValueError("split execution does not support prefix (soft-prompt) batches")
        h = self.inner.embed_tokens(batch.input_ids)
        mask, pos_emb = _mask_and_positions(self.inner, h, batch.attention_mask, batch.position_ids)
        return _blocks(self.inner, self.plan.front, h, mask, batch.position_ids, pos_emb), batch.attention_mask, \
            batch.position_ids

    def tail(self, h2: Any, batch: Any) -> Any:
        """Answer-position logits from the server's output (as ``tallrec.encoding.answer_logits``)."""
        mask, pos_emb = _mask_and_positions(self.inner, h2, batch.attention_mask, batch.position_ids)
        h = self.inner.norm(_blocks(self.inner, self.plan.tail, h2, mask, batch.position_ids, pos_emb))
        keep = int(batch.n_keep) if batch.n_keep is not None else 0
        logits = self.base.lm_head(h[:, -keep:, :] if keep else h)
        n_ans = batch.answer_ids.shape[1]
        return logits[:, :n_ans, :] if logits.shape[1] > n_ans else logits


class SplitServer:
    """The server's side: the middle blocks (with this client's copy of their LoRA)."""

    def __init__(self, model: Any, plan: SplitPlan):
        _, self.inner = _inner(model)
        self.plan = plan

    def middle(self, h1: Any, attention_mask: Any, position_ids: Any) -> Any:
        """``h₂ = middle(h₁)``; mask and rotary positions are rebuilt here from what the client sent."""
        mask, pos_emb = _mask_and_positions(self.inner, h1, attention_mask, position_ids)
        return _blocks(self.inner, self.plan.middle, h1, mask, position_ids, pos_emb)


def side_parameters(model: Any, plan: SplitPlan) -> tuple[list, list]:
    """Trainable parameters of (client, server): the middle blocks' LoRA is the server's."""
    import re

    middle = set(plan.middle)
    client, server = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        m = re.search(r"(?:^|\.)layers\.(\d+)\.", name)
        (server if m and int(m.group(1)) in middle else client).append(p)
    return client, server


def split_step(client: SplitClient, server: SplitServer, batch: Any, channel: SplitChannel,
               first_only: bool = False) -> Any:
    """Forward and backward of one batch across the split; grads land on each side's parameters."""
    from recaudit.tallrec.encoding import answer_nll

    h1, mask, pos = client.front(batch)
    x = channel.send("up", "h1", h1).requires_grad_(True)
    channel.send("up", "attention_mask", mask)
    channel.send("up", "position_ids", pos)
    h2 = server.middle(x, mask, pos)
    y = channel.send("down", "h2", h2).requires_grad_(True)
    loss = answer_nll(client.tail(y, batch), batch, first_only=first_only).mean()
    loss.backward()
    h2.backward(channel.send("up", "grad_h2", y.grad))
    h1.backward(channel.send("down", "grad_h1", x.grad))
    return loss.detach()


@dataclass
class SplitTrainOutput:
    """Losses of the split steps, bytes that crossed, seconds."""

    losses: list[float]
    bytes_up: int
    bytes_down: int
    seconds: float


def train_lora_split(model: Any, tokenizer: Any, samples: Sequence[Any], train_config: Any, allocation: AllocationConfig,
                     lr_scale: float = 1.0, channel: SplitChannel | None = None) -> SplitTrainOutput:
    """One client's local training with split execution; each side steps its own AdamW."""
    import numpy as np
    import torch

    from recaudit.tallrec.encoding import collate, encode_samples

    if not samples:
        raise ValueError("samples is empty: nothing to train on")
    _, inner = _inner(model)
    plan = split_plan(len(inner.layers), allocation)
    client, server = SplitClient(model, plan), SplitServer(model, plan)
    client_params, server_params = side_parameters(model, plan)
    lr = train_config.lr * lr_scale
    opts = [torch.optim.AdamW(ps, lr=lr, weight_decay=train_config.weight_decay) for ps in (client_params, server_params)
            if ps]
    channel = channel or SplitChannel()
    encoded = encode_samples(tokenizer, samples, train_config.max_length)
    device = (client_params or server_params)[0].device
    rng = np.random.default_rng(train_config.seed)
    losses: list[float] = []
    t0 = time.perf_counter()
    was_training = model.training
    model.train()
    try:
        for _ in range(train_config.epochs):
            order = rng.permutation(len(encoded))
            for start in range(0, len(order), train_config.batch_size):
                batch = collate([encoded[i] for i in order[start:start + train_config.batch_size]],
                                tokenizer.pad_token_id, device=device)
                for opt in opts:
                    opt.zero_grad(set_to_none=True)
                losses.append(float(split_step(client, server, batch, channel,
                                               first_only=train_config.answer_loss == "first")))
                for opt in opts:
                    opt.step()
    finally:
        model.train(was_training)
    return SplitTrainOutput(losses, channel.bytes_up, channel.bytes_down, time.perf_counter() - t0)
