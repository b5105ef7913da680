"""The reports of a run so far, rewritten to ``partial_results.json`` after each method (and ``--resume``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from recaudit.tallrec.lora import LoraState, file_sha256, save_lora
from recaudit.unlearning.verify import MethodReport

PARTIAL_RESULTS = "partial_results.json"


def old_salt(path: Path) -> str | None:
    """The erasure salt a stopped run left in its ``partial_results.json`` (for ``--resume``), if any."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("erasure_salt")
    except (OSError, ValueError):
        return None


class SavedReports(list):
    """The reports so far, rewritten to a JSON file after each method, so a run stopped by a time
    limit keeps every method it finished (and ``resume`` can pick them up); also says when each
    method starts and how long it took. The file also holds the SHA-256 of the retrained and
    original adapters and APA's exactness result."""

    def __init__(self, path: Path, data: dict[str, int], params: dict[str, Any], say: Callable[[str], None], t0: float,
                 resume: bool = False, salt: str | None = None):  # fmt: skip
        super().__init__()
        self.salt = salt
        self.erasure: dict[str, Any] = {}
        self.path, self.data, self.params, self.say, self.t0 = path, data, params, say, t0
        self.phase_t0 = time.perf_counter()
        self.phase_seconds: dict[str, float] = {}
        self.adapters: dict[str, str] = {}
        self.exactness: dict[str, Any] = {}
        if resume and path.is_file():
            self._load()

    def _load(self) -> None:
        old = json.loads(self.path.read_text(encoding="utf-8"))
        if old.get("erasure") and not old.get("erasure_salt"):
            raise ValueError(f"cannot resume: the erasure request in {self.path} finished and its salt was dropped; "
                             "run without --resume (or use --keep-artifacts to keep a run resumable)")  # fmt: skip
        strip = lambda p: {k: v for k, v in (p or {}).items() if k != "runtime"}  # noqa: E731
        if old.get("data") != self.data or strip(old.get("params")) != strip(self.params):
            raise ValueError(f"cannot resume: {self.path} was written by a run with other params or data; "
                             "use another workdir or run without resume")  # fmt: skip
        self.extend(MethodReport(**r) for r in old.get("reports", []))
        self.phase_seconds = dict(old.get("phase_seconds", {}))
        self.adapters = dict(old.get("adapters", {}))
        self.exactness = dict(old.get("exactness", {}))
        self.say(f"resuming from {self.path}: {', '.join(r.method for r in self) or 'no method'} finished before")

    def done(self, *methods: str) -> bool:
        """True when every named method already has a report."""
        have = {r.method for r in self}
        return all(m in have for m in methods)

    def drop(self, *methods: str) -> None:
        """Forget the reports of ``methods`` (a method that runs again replaces its half-finished group)."""
        self[:] = [r for r in self if r.method not in methods]

    def saved_adapter(self, name: str, path: Path) -> LoraState | None:
        """The adapter an earlier run saved as ``name``, if its file still has the recorded SHA-256."""
        from recaudit.tallrec.lora import load_lora

        if name in self.adapters and path.is_file() and file_sha256(path) == self.adapters[name]:
            return load_lora(path)
        return None

    def save_adapter(self, name: str, state: LoraState, path: Path) -> None:
        """Save an adapter and record its hash (so a resumed run can trust the file)."""
        save_lora(state, path)
        self.adapters[name] = file_sha256(path)
        self.write()

    def start(self, method: str, what: str) -> None:
        """Say that ``method`` starts (and what it will do); its report line gives the time since."""
        self.phase_t0 = time.perf_counter()
        self.say(f"{method}: {what} (elapsed {self.phase_t0 - self.t0:.0f} s)")

    def append(self, report: MethodReport) -> None:  # type: ignore[override]
        super().append(report)
        now = time.perf_counter()
        self.phase_seconds[report.method] = round(now - self.phase_t0, 1)
        self.say(f"{report.method}: test AUC {report.test.get('auc', float('nan')):.4f}, "
                 f"unlearn {report.unlearn_seconds:.1f} s; method took {now - self.phase_t0:.1f} s (elapsed {now - self.t0:.0f} s)")  # fmt: skip
        self.phase_t0 = now
        self.write()

    def write(self) -> None:
        """Rewrite the file with everything so far."""
        write_json_atomic(self.path, {"data": self.data, "params": self.params,
                                      "elapsed_s": round(time.perf_counter() - self.t0, 1),
                                      "phase_seconds": self.phase_seconds, "adapters": self.adapters,
                                      "exactness": self.exactness, "erasure_salt": self.salt, "erasure": self.erasure,
                                      "reports": [r.to_dict() for r in self]})  # fmt: skip


def write_json_atomic(path: Path, blob: Any) -> None:
    """Write JSON atomically (``recaudit.atomic``), so a reader (or a killed run) never sees half a file."""
    from recaudit.atomic import atomic_text

    with atomic_text(path) as f:
        json.dump(blob, f, indent=1, default=str)

