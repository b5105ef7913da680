"""Each client's TALLRec samples on disk: one folder per client, JSONL train/valid/test files.

A federation folder is what a deployment hands its SuperNodes: ``client_<i>/{train,valid,test}.jsonl``
plus ``federation.json`` (partition scheme, per-client counts, genre skew). In a real deployment
each SuperNode holds only its own ``client_<i>`` folder (``--node-config 'data-path=…'``).
Samples are plain JSON (never pickles); titles inside prompts are untrusted text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from recaudit.data.catalog import Catalog, Interactions
from recaudit.federated.partition import ClientPartition, genre_skew

MANIFEST = "federation.json"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class ClientData:
    """One client's samples (``recaudit.tallrec.TallRecSample`` lists)."""

    train: list
    valid: list
    test: list


def client_folder(root: str | Path, partition_id: int) -> Path:
    """``<root>/client_<partition_id>``."""
    return Path(root) / f"client_{int(partition_id)}"


def _write_jsonl(path: Path, samples: Sequence) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for s in samples:
            row = {"user_id": s.user_id, "item_id": s.item_id, "messages": [list(m) for m in s.prompt_messages],
                   "label": int(s.label), "timestamp": int(s.timestamp)}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list:
    from recaudit.tallrec import TallRecSample

    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out.append(TallRecSample(
                    user_id=str(row["user_id"]), item_id=str(row["item_id"]),
                    prompt_messages=tuple((str(r), str(c)) for r, c in row["messages"]),
                    label=int(row["label"]), timestamp=int(row.get("timestamp", 0)),
                ))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}:{lineno}: not a TALLRec sample row ({err})") from None
    return out


def split_per_user(samples: Sequence, valid_frac: float, test_frac: float) -> tuple[list, list, list]:
    """Time split within each user (oldest → train, newest → test), so every user is in train and test."""
    from recaudit.tallrec import split_samples

    by_user: dict[str, list] = {}
    for s in samples:
        by_user.setdefault(s.user_id, []).append(s)
    parts: tuple[list, list, list] = ([], [], [])
    for user_samples in by_user.values():
        for part, chunk in zip(parts, split_samples(user_samples, valid_frac, test_frac, by="time")):
            part.extend(chunk)
    return parts


def write_federation(
    out_dir: str | Path,
    partitions: Sequence[ClientPartition],
    interactions: Interactions,
    catalog: Catalog,
    history_len: int = 10,
    max_per_user: int | None = None,
    valid_frac: float = 0.1,
    test_frac: float = 0.2,
    seed: int = 0,
    scheme: str = "",
) -> Path:
    """Build each client's TALLRec samples from its users and write the federation folder."""
    from recaudit.tallrec import build_samples

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clients = []
    for p in partitions:
        samples = build_samples(interactions.filter_users(p.user_ids), catalog, history_len, seed,
                                max_per_user=max_per_user)
        split = split_per_user(samples, valid_frac, test_frac)
        if not split[0] or not split[2]:
            raise ValueError(f"client {p.client_id} has no train or test samples; use more users or a shorter history")
        folder = client_folder(out, p.client_id)
        folder.mkdir(parents=True, exist_ok=True)
        for name, part in zip(SPLITS, split):
            _write_jsonl(folder / f"{name}.jsonl", part)
        clients.append({"client_id": p.client_id, "n_users": len(p.user_ids), "top_genres": list(p.top_genres),
                        **{f"n_{name}": len(part) for name, part in zip(SPLITS, split)},
                        "pos_rate_test": sum(s.label for s in split[2]) / len(split[2])})
    manifest = {"n_clients": len(partitions), "scheme": scheme, "seed": seed, "history_len": history_len,
                "genre_skew_js": genre_skew(partitions, interactions, catalog), "clients": clients}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def read_manifest(root: str | Path) -> dict:
    """The ``federation.json`` of a federation folder."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a federation folder (write one with write_federation)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_client_data(folder: str | Path) -> ClientData:
    """Read one client's ``train/valid/test.jsonl`` (valid may be empty)."""
    folder = Path(folder)
    if not (folder / "train.jsonl").is_file():
        raise FileNotFoundError(f"{folder}/train.jsonl not found: not a client data folder")
    parts = {name: _read_jsonl(folder / f"{name}.jsonl") if (folder / f"{name}.jsonl").is_file() else []
             for name in SPLITS}
    return ClientData(**parts)
