"""Wrap plain Python functions as an Adapter (planted behaviour in tests, rule-based baselines)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from recaudit.adapters.base import Request, Response


class CallableAdapter:
    """An Adapter over ``generate_fn(request) -> str`` and optionally ``score_fn(request) -> float``."""

    def __init__(
        self,
        generate_fn: Callable[[Request], str] | None = None,
        score_fn: Callable[[Request], float] | None = None,
        name: str = "callable",
        version: str = "0",
        preflight: bool = False,
    ):
        if generate_fn is None and score_fn is None:
            raise ValueError("CallableAdapter needs generate_fn, score_fn or both")
        self._generate_fn = generate_fn
        self._score_fn = score_fn
        self.name = name
        self.version = version
        self.calls = 0  # requests answered; tests assert on it (e.g. cache resume)
        # pre-flight calls nothing by default: an in-process function has no server to be down, and
        # calling it may have side effects (counters, logs); preflight=True opts into one 1-token call
        self.preflight_call = preflight

    @property
    def fingerprint(self) -> dict[str, Any]:
        fn = self._generate_fn or self._score_fn
        return {
            "adapter": "callable",
            "name": self.name,
            "version": self.version,
            "function": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}",
        }

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        """Call the function once per request."""
        if self._generate_fn is None:
            raise NotImplementedError(f"CallableAdapter {self.name!r} has no generate_fn")
        out = []
        for r in requests:
            self.calls += 1
            out.append(Response(text=str(self._generate_fn(r))))
        return out

    def score(self, requests: Sequence[Request]) -> list[float]:
        """Call the scoring function once per request."""
        if self._score_fn is None:
            raise NotImplementedError(f"CallableAdapter {self.name!r} has no score_fn")
        out = []
        for r in requests:
            self.calls += 1
            out.append(float(self._score_fn(r)))
        return out
