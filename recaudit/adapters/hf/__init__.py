"""Any transformers causal LM behind the Adapter protocol, in modules of one job each:

- ``types``: the generation settings requests are grouped by, and what a local model returns;
- ``chat``: chats as prompt text and where an answer's first token is read (TALLRec imports it from here);
- ``decode``: token ids back to text;
- ``fingerprint``: weights digests and the adapter's fingerprint;
- ``load``: reading a folder / GGUF file / LoRA onto a device;
- ``model``: ``HFCausalLM``, the adapter;
- ``engine``: the recaudit decode engine (static KV cache, continuous batching, CUDA graphs), a
  backend fenced off from the rest: it imports only ``types`` and the adapter protocol, and the
  adapter loads it only when ``engine="recaudit"`` runs.

Importing this package loads no torch or transformers.
"""

from __future__ import annotations

from recaudit.adapters.hf.chat import OPTION_CONTEXT_CHARS, option_token_id, prompt_chars, render_chat, render_chats
from recaudit.adapters.hf.decode import StopOnStrings, _fast_decode_mode, decode_many
from recaudit.adapters.hf.fingerprint import file_digest, folder_digest, model_fingerprint, module_digest
from recaudit.adapters.hf.load import Loaded, load_causal_lm, resolve_device_dtype
from recaudit.adapters.hf.model import ENGINES, HFCausalLM
from recaudit.adapters.hf.types import GenSettings, Generated

__all__ = [
    "ENGINES", "HFCausalLM", "GenSettings", "Generated", "OPTION_CONTEXT_CHARS", "option_token_id", "prompt_chars",
    "render_chat", "render_chats", "StopOnStrings", "decode_many", "_fast_decode_mode", "file_digest",
    "folder_digest", "model_fingerprint", "module_digest", "Loaded", "load_causal_lm", "resolve_device_dtype",
]
