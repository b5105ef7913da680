"""Name → class registries, so a new check, adapter or attack is one new module."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterable, Mapping, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named registry of classes or factories, filled by decorators at import time."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name`` (names are unique)."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self._entries[name]!r}")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the entry for ``name`` or raise a KeyError listing the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def import_modules(modules: Iterable[str], optional: Mapping[str, str]) -> dict[str, str]:
    """Import each listed module so its registration decorators run. A module that needs a missing
    optional dependency (a key of ``optional``, valued with its pip extra) is skipped; the result
    names each skipped module: ``{module: "the federated extra (flwr is not installed)"}``."""
    missing: dict[str, str] = {}
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            root = (e.name or "").split(".")[0]
            if root not in optional:
                raise
            missing[module] = f"the {optional[root]} extra ({root} is not installed)"
    return missing
