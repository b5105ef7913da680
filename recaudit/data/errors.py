"""The one error type for malformed input data files."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data file is malformed; the message reads ``file:line: problem`` (``file: problem`` without a line)."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # keep the three fields when pickled across processes (multiprocessing)
        return (type(self), (self.path, self.line, self.problem))
