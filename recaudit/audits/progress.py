"""Progress bars for a run: one overall bar over checks, one transient bar per model call loop."""

from __future__ import annotations

import time
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


class RunProgress:
    """A rich progress display on stderr; ``track`` is the ``CheckContext.progress`` function."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        self._overall: TaskID | None = None

    def __enter__(self) -> "RunProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start_checks(self, total: int) -> None:
        self._overall = self._progress.add_task("checks", total=total)

    def check_done(self) -> None:
        if self._overall is not None:
            self._progress.advance(self._overall)

    def log(self, message: str) -> None:
        """A line above the bars (kept after they finish); silent when progress is disabled."""
        if not self._progress.disable:
            self._progress.console.print(message, highlight=False, markup=False)

    def track(self, iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterator[T]:
        """Yield from ``iterable`` while a bar named ``desc`` advances; the bar goes when done."""
        task = self._progress.add_task(f"  {desc}", total=total)
        started, done = time.perf_counter(), 0
        try:
            for item in iterable:
                yield item
                done += 1
                self._progress.advance(task)
                if not self.console.is_terminal:  # no live bars in a CI log: one line per step instead
                    self.log(f"  {desc}: {done}/{total if total is not None else '?'} ({time.perf_counter() - started:.0f} s)")
        finally:
            self._progress.remove_task(task)
