"""Adapter configuration as data: a pydantic discriminated union the audit config embeds.

    adapter:
      kind: hf            # default | hf | openai | callable
      path: ./my-model
      lora: ./my-lora
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

Engine = Literal["generate", "static", "recaudit"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _LocalModelSpec(_Spec):
    @field_validator("batch_size", check_fields=False)
    @classmethod
    def _auto_needs_engine(cls, v: int, info: ValidationInfo) -> int:
        if v == 0 and info.data.get("engine") != "recaudit":
            raise ValueError("batch_size 0 (sized from free GPU memory) needs engine: recaudit; otherwise use >= 1")
        return v


class DefaultSpec(_LocalModelSpec):
    """The embedded SmolLM2-135M-Instruct."""

    kind: Literal["default"] = "default"
    device: str | None = None
    dtype: str | None = None
    threads: int | None = Field(default=None, ge=1)
    engine: Engine = "generate"
    batch_size: int = Field(default=8, ge=0, description="sequences per batch; 0 = from free GPU memory (engine 'recaudit')")


class HFSpec(_LocalModelSpec):
    """A transformers causal LM from a folder or GGUF file, optionally with a LoRA adapter."""

    kind: Literal["hf"]
    path: str
    gguf_file: str | None = None
    lora: str | None = None
    merge_lora: bool = True
    dtype: str | None = None
    device: str | None = None
    threads: int | None = Field(default=None, ge=1)
    engine: Engine = "generate"
    batch_size: int = Field(default=8, ge=0, description="sequences per batch; 0 = from free GPU memory (engine 'recaudit')")
    name: str | None = None


class OpenAISpec(_Spec):
    """An OpenAI-compatible chat endpoint; the key is read from the variable ``api_key_env``."""

    kind: Literal["openai"]
    base_url: str
    model: str
    api_key_env: str | None = None
    max_concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    extra_body: dict[str, Any] | None = None
    # the server family decides each setting's name on the wire; auto reads it from GET /models
    server: Literal["auto", "vllm", "llamacpp", "ollama", "openai"] = "auto"


class CallableSpec(_Spec):
    """Python functions by import path ("package.module:function")."""

    kind: Literal["callable"]
    generate: str | None = None
    score: str | None = None
    name: str = "callable"
    version: str = "0"
    preflight: bool = Field(default=False, description="call the function once before the audit (off: no side effects)")


AdapterSpec = Annotated[Union[DefaultSpec, HFSpec, OpenAISpec, CallableSpec], Field(discriminator="kind")]
_VALIDATOR: TypeAdapter[Any] = TypeAdapter(AdapterSpec)


def parse_adapter_spec(spec: dict[str, Any] | BaseModel) -> Any:
    """Validate a config dict; errors name the offending key."""
    if isinstance(spec, BaseModel):
        return spec
    if not isinstance(spec, dict):
        raise ValueError(f"adapter config must be a mapping, got {type(spec).__name__}")
    try:
        return _VALIDATOR.validate_python(spec)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            # the first location element is the union member's tag ("hf"); a tag error has none
            loc = ".".join(str(p) for p in err["loc"][1:]) if len(err["loc"]) > 1 else "kind"
            problems.append(f"adapter.{loc}: {err['msg']}")
        raise ValueError("invalid adapter config: " + "; ".join(problems)) from None


def import_object(path: str) -> Any:
    """Import "package.module:attribute"."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"callable path must look like 'package.module:function', got {path!r}")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"cannot import module {module!r} for {path!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{path!r} is not callable")
    return obj


def build_adapter(spec: dict[str, Any] | BaseModel) -> Any:
    """An adapter from a config dict (kind: default | hf | openai | callable)."""
    s = parse_adapter_spec(spec)
    if isinstance(s, DefaultSpec):
        from recaudit.adapters.default import default

        return default(device=s.device, dtype=s.dtype, torch_threads=s.threads, batch_size=s.batch_size, engine=s.engine)
    if isinstance(s, HFSpec):
        from recaudit.adapters.hf import HFCausalLM

        return HFCausalLM(
            s.path, gguf_file=s.gguf_file, lora_path=s.lora, merge_lora=s.merge_lora, device=s.device, dtype=s.dtype,
            torch_threads=s.threads, batch_size=s.batch_size, engine=s.engine, name=s.name,
        )
    if isinstance(s, OpenAISpec):
        from recaudit.adapters.openai_compat import OpenAICompatible

        return OpenAICompatible(**s.model_dump(exclude={"kind"}))
    from recaudit.adapters.callable import CallableAdapter

    if not s.generate and not s.score:
        raise ValueError("adapter.generate: a callable adapter needs 'generate', 'score' or both")
    return CallableAdapter(
        generate_fn=import_object(s.generate) if s.generate else None,
        score_fn=import_object(s.score) if s.score else None,
        name=s.name,
        version=s.version,
        preflight=s.preflight,
    )
