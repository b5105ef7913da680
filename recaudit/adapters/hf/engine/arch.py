"""The model side of the engine: the pieces of a Llama-like causal LM it calls, and its two forward
passes (prefill into cache slots, one decode step for every slot) with attention over grouped KV
heads, mirroring transformers' eager attention (matmul, float32 softmax, matmul)."""

from __future__ import annotations

from typing import Any, Sequence

from recaudit.adapters.base import AdapterError

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


def _rotate_half(x: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(q: Any, k: Any, cos: Any, sin: Any) -> tuple[Any, Any]:
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def grouped_attention(q: Any, k: Any, v: Any, allowed: Any, scaling: float) -> Any:
    """Attention of ``q`` [B, H, Q, d] over grouped ``k``/``v`` [B, Hkv, L, d] without expanding
    the KV heads; ``allowed`` is a boolean mask broadcastable to [B, 1, 1, Q, L]."""
    import torch

    b, h, nq, d = q.shape
    hkv, length = k.shape[1], k.shape[2]
    g = h // hkv
    scores = torch.matmul(q.reshape(b, hkv, g * nq, d), k.transpose(-1, -2)) * scaling
    scores = scores.view(b, hkv, g, nq, length).masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs.view(b, hkv, g * nq, length), v).view(b, h, nq, d)


class Arch:
    """The pieces of a Llama-like causal LM the loop calls; refuses (one line) models it cannot run."""

    def __init__(self, model: Any):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        cfg = base.config
        mtype = getattr(cfg, "model_type", "?")
        if mtype not in SUPPORTED_MODEL_TYPES:
            raise AdapterError(
                f"engine='recaudit' supports {', '.join(SUPPORTED_MODEL_TYPES)} models, not {mtype!r}; use engine='generate'"
            )
        if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True) and mtype == "mistral":
            raise AdapterError("engine='recaudit' does not implement sliding-window attention; use engine='generate'")
        if getattr(cfg, "pretraining_tp", 1) not in (None, 1):
            raise AdapterError("engine='recaudit' does not support pretraining_tp > 1; use engine='generate'")
        dec = base.model
        self.embed = dec.embed_tokens
        self.layers = list(dec.layers)
        self.norm = dec.norm
        self.rotary = dec.rotary_emb
        self.lm_head = base.lm_head
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        attn = self.layers[0].self_attn
        self.scaling = float(getattr(attn, "scaling", self.head_dim**-0.5))
        self.vocab = base.lm_head.out_features

    def project(self, attn: Any, x: Any, heads: int, proj: Any, norm_name: str) -> Any:
        b, t = x.shape[:2]
        y = proj(x).view(b, t, heads, self.head_dim)
        norm = getattr(attn, norm_name, None)  # qwen3 normalises q and k per head
        if norm is not None:
            y = norm(y)
        return y.transpose(1, 2)

    def prefill(self, prompts: Sequence[Sequence[int]], slots: Sequence[int], pad_id: int, device: Any,
                k_cache: list[Any], v_cache: list[Any]) -> Any:
        """Run right-padded prompts, write their K/V into ``slots`` of the caches; return last-token logits."""
        import torch

        a = self
        n, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((n, width), pad_id, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
        ids = ids.to(device)
        lens = torch.tensor([len(p) for p in prompts], device=device)
        slot_t = torch.tensor(list(slots), device=device)
        positions = torch.arange(width, device=device).unsqueeze(0).expand(n, width)
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        h = a.embed(ids)
        cos, sin = a.rotary(h, positions)
        for li, layer in enumerate(a.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = a.project(attn, x, a.n_heads, attn.q_proj, "q_norm")
            k = a.project(attn, x, a.n_kv, attn.k_proj, "k_norm")
            v = attn.v_proj(x).view(n, width, a.n_kv, a.head_dim).transpose(1, 2)
            q, k = _rope(q, k, cos, sin)
            k_cache[li][slot_t, :, :width] = k
            v_cache[li][slot_t, :, :width] = v
            o = grouped_attention(q, k, v, causal, a.scaling)
            h = h + attn.o_proj(o.transpose(1, 2).reshape(n, width, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        last = h[torch.arange(n, device=device), lens - 1]
        return a.lm_head(a.norm(last))

    def decode(self, tok: Any, pos_t: Any, cols: Any, rows: Any, k_cache: list[Any], v_cache: list[Any],
               length: int | None = None) -> Any:
        """One token for every slot from ``tok`` at ``pos_t``; returns logits [S, V].

        ``length`` limits attention to the first cache columns (eager path); the graph path uses all."""
        a = self
        s = tok.shape[0]
        L = length or cols.shape[0]
        pos = pos_t.unsqueeze(1)
        h = a.embed(tok.unsqueeze(1))
        cos, sin = a.rotary(h, pos)
        allowed = (cols[:L].unsqueeze(0) <= pos).view(s, 1, 1, 1, L)
        for li, layer in enumerate(a.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = a.project(attn, x, a.n_heads, attn.q_proj, "q_norm")
            k = a.project(attn, x, a.n_kv, attn.k_proj, "k_norm")
            v = attn.v_proj(x).view(s, 1, a.n_kv, a.head_dim).transpose(1, 2)
            q, k = _rope(q, k, cos, sin)
            k_cache[li][rows, :, pos_t] = k[:, :, 0]
            v_cache[li][rows, :, pos_t] = v[:, :, 0]
            o = grouped_attention(q, k_cache[li][:, :, :L], v_cache[li][:, :, :L], allowed, a.scaling)
            h = h + attn.o_proj(o.transpose(1, 2).reshape(s, 1, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return a.lm_head(a.norm(h[:, 0]))
