"""Small file helpers every stage uses: atomic writes and errors that name the file and line at fault."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd

__all__ = ["DataError", "atomic_write", "atomic_write_text", "atomic_write_json", "atomic_write_csv"]


class DataError(ValueError):
    """Malformed input: says which file, which line (1-based, header = line 1) and what is wrong."""

    def __init__(self, path: str | os.PathLike[str], message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], *, binary: bool = False) -> Path:
    """Write a file through ``write(handle)`` into a temporary sibling, fsync it, then rename it into place.

    A reader never sees a half-written file, and a crash leaves either the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 1) -> Path:
    """Atomically write ``obj`` as JSON."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=indent))


def atomic_write_csv(path: str | os.PathLike[str], frame: pd.DataFrame, **to_csv_kwargs: Any) -> Path:
    """Atomically write a DataFrame as CSV (``to_csv_kwargs`` go to :meth:`pandas.DataFrame.to_csv`)."""
    return atomic_write(path, lambda f: frame.to_csv(f, **to_csv_kwargs))
