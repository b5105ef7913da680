"""One LoRA adapter per data shard, saved as safetensors; unlearning retrains only affected shards.

Shared by SISA, APA and RecEraser. Shard ``k`` is always trained the same way — one LoRA init
shared by every shard (seeded from ``derive_seed(seed, "init", "shared")``; APA averages A and B
separately, which only makes sense when the shards start from the same A), batch order from
``derive_seed(seed, "order", k)``, samples in their original order — so retraining a shard after
deleting samples is bit-for-bit the adapter one would get by training that shard from scratch
without them (exact unlearning), and untouched shards keep byte-identical files.
``shared_init=False`` restores the old per-shard init (``derive_seed(seed, "init", k)``), kept
only to show what it does to APA(D).

The manifest never holds a plain user id: each sample key is written as a salted SHA-256
(``key_hash``), with the salt kept in memory only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from recaudit.tallrec.config import TrainConfig, derive_seed
from recaudit.tallrec.lora import LoraState, file_sha256, load_lora, lora_state_dict, reset_lora, save_lora
from recaudit.tallrec.prompts import TallRecSample
from recaudit.tallrec.trainer import fit_lora

SampleKey = tuple[str, str, int]
ProgressFn = Callable[[str], None]


def sample_key(s: TallRecSample) -> SampleKey:
    """Identity of a sample within a dataset: (user, target item, timestamp)."""
    return (s.user_id, s.item_id, s.timestamp)


@dataclass
class ShardInfo:
    """Bookkeeping of one shard: its samples' keys, adapter file and hash, training seconds."""

    shard: int
    keys: list[SampleKey]
    path: str
    sha256: str = ""
    seconds: float = 0.0
    final_loss: float = float("nan")


@dataclass
class UnlearnStats:
    """What an unlearning request changed."""

    removed: int
    affected_shards: list[int]
    seconds: float
    per_shard_seconds: dict[int, float] = field(default_factory=dict)


def key_hash(key: SampleKey, salt: str) -> str:
    """Salted SHA-256 of a sample key (what manifests hold instead of the user id)."""
    return hashlib.sha256(("\x1f".join([salt, *map(str, key)])).encode("utf-8")).hexdigest()


def shard_seeds(seed: int, shard: int, shared_init: bool = True) -> tuple[int, int]:
    """(LoRA init seed, data-order seed) of a shard; the init is the same for every shard unless ``shared_init`` is off."""
    init = derive_seed(seed, "init", "shared") if shared_init else derive_seed(seed, "init", shard)
    return init, derive_seed(seed, "order", shard)


def train_shard(model: Any, tokenizer: Any, samples: Sequence[TallRecSample], config: TrainConfig, seed: int, shard: int,
                shared_init: bool = True, valid: Sequence[TallRecSample] = ()) -> tuple[LoraState, float, float]:  # fmt: skip
    """Train shard ``shard``'s adapter from scratch on ``samples``; returns (state, seconds, final loss).

    An empty shard (all its samples forgotten) keeps the untrained init (B = 0: no effect on the base).
    With ``valid`` and ``config.early_stop_patience`` the best step on ``valid`` is kept (``fit_lora``);
    ``valid`` holds no forgotten user, so a retrained shard still equals one trained without them.
    """
    init_seed, order_seed = shard_seeds(seed, shard, shared_init)
    t0 = time.perf_counter()
    reset_lora(model, init_seed)
    final = float("nan")
    if samples:
        final = fit_lora(model, tokenizer, samples, config.replace(seed=order_seed), valid).final_loss
    return lora_state_dict(model), time.perf_counter() - t0, final


class ShardedLora:
    """K shard adapters of one base model, stored under ``workdir`` (``shard_<k>.safetensors``)."""

    def __init__(self, model: Any, tokenizer: Any, config: TrainConfig, workdir: str | Path, seed: int = 0,
                 progress: ProgressFn | None = None, shared_init: bool = True, salt: str | None = None,
                 valid: Sequence[TallRecSample] = ()):  # fmt: skip
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.workdir = Path(workdir)
        self.seed = seed
        self.shared_init = shared_init
        self.valid = list(valid)  # early stopping's validation set (no forgotten user), same for every shard
        self.salt = salt or secrets.token_hex(16)
        self.progress = progress or (lambda msg: None)
        self.shards: list[ShardInfo] = []
        self.samples: dict[SampleKey, TallRecSample] = {}
        self._states: dict[int, LoraState] = {}

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    def fit(self, shard_samples: Sequence[Sequence[TallRecSample]]) -> float:
        """Train every shard from scratch; returns total seconds."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.shards, self._states, self.samples = [], {}, {}
        total = 0.0
        for k, samples in enumerate(shard_samples):
            for s in samples:
                self.samples[sample_key(s)] = s
            info = ShardInfo(k, [sample_key(s) for s in samples], str(self.workdir / f"shard_{k}.safetensors"))
            self.shards.append(info)
            total += self._train_and_save(info)
        self._write_manifest()
        return total

    def shard_samples(self, shard: int) -> list[TallRecSample]:
        """The samples shard ``shard`` currently trains on, in order."""
        return [self.samples[key] for key in self.shards[shard].keys]

    def state(self, shard: int) -> LoraState:
        """Shard adapter tensors (read from its safetensors file once, then kept in memory)."""
        if shard not in self._states:
            self._states[shard] = load_lora(self.shards[shard].path)
        return self._states[shard]

    def unlearn(self, forget: Callable[[TallRecSample], bool]) -> UnlearnStats:
        """Delete every sample for which ``forget`` is true and retrain exactly the shards that held one."""
        t0 = time.perf_counter()
        removed = 0
        affected: list[int] = []
        for info in self.shards:
            keep = [key for key in info.keys if not forget(self.samples[key])]
            if len(keep) != len(info.keys):
                removed += len(info.keys) - len(keep)
                for key in set(info.keys) - set(keep):
                    del self.samples[key]
                info.keys = keep
                affected.append(info.shard)
        per_shard = {}
        for k in affected:
            self.progress(f"retraining shard {k} ({len(self.shards[k].keys)} samples)")
            per_shard[k] = self._train_and_save(self.shards[k])
        self._write_manifest()
        return UnlearnStats(removed, affected, time.perf_counter() - t0, per_shard)

    def _train_and_save(self, info: ShardInfo) -> float:
        self.progress(f"training shard {info.shard} ({len(info.keys)} samples)")
        state, seconds, final = train_shard(
            self.model, self.tokenizer, self.shard_samples(info.shard), self.config, self.seed, info.shard, self.shared_init,
            self.valid,
        )
        save_lora(state, info.path, metadata={"shard": str(info.shard), "n_samples": str(len(info.keys))})
        info.sha256, info.seconds, info.final_loss = file_sha256(info.path), seconds, final
        self._states[info.shard] = state
        return seconds

    def _write_manifest(self) -> None:
        manifest = {
            "seed": self.seed,
            "shared_init": self.shared_init,
            "config": self.config.to_dict(),
            "keys": "salted SHA-256 of (user, item, timestamp); the salt is not stored",
            "shards": [
                {"shard": i.shard, "n_samples": len(i.keys), "file": Path(i.path).name, "sha256": i.sha256,
                 "seconds": i.seconds, "keys": [key_hash(k, self.salt) for k in i.keys]}
                for i in self.shards
            ],
        }  # fmt: skip
        (self.workdir / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
