"""Small file helpers every stage uses: atomic writes, reads that fail with one line naming the file and line
at fault, and a check that an output can be written before any work starts."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a CSV is read or written, not with this module
    import pandas as pd

__all__ = ["DataError", "atomic_write", "atomic_write_text", "atomic_write_json", "atomic_write_csv", "read_json",
           "loads_strict", "NonStandardNumber", "spreadsheet_safe", "spreadsheet_safe_table",
           "read_csv", "check_writable"]  # fmt: skip


class DataError(ValueError):
    """Malformed input: says which file, which line (1-based, header = line 1) and what is wrong."""

    def __init__(self, path: str | os.PathLike[str], message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back (cheap, and only done when writing).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], *, binary: bool = False,
                 fsync: bool = True) -> Path:
    """Write a file through ``write(handle)`` into a temporary sibling, fsync it, then rename it into place.

    A reader never sees a half-written file, and a crash leaves either the old file or the new one.  The file
    gets the permissions a plain ``open`` would give it (0666 less the umask), not the temporary file's 0600.
    ``fsync=False`` (many small files that can be remade) keeps the rename, so a killed process still leaves no
    half-written file, but not the guarantee across a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
            f.flush()
            if fsync:
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


class NonStandardNumber(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a JSON text: Python's parser accepts them, JSON does not."""


class _Constant(str):
    """Where the parser met ``NaN`` or an infinity (its text), found again by :func:`_constant_path`."""


def _constant_path(value: Any, where: str = "") -> tuple[str, str] | None:
    """(field path, text) of the first :class:`_Constant` in a parsed value, e.g. ``("images[3].conf", "NaN")``."""
    if isinstance(value, _Constant):
        return where or "(top level)", str(value)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _constant_path(item, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}".lstrip("."))
        if found:
            return found
    return None


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN`` and the infinities (:class:`NonStandardNumber`, naming the field), so
    none reaches a field a loader passes on unchecked, or an output written back from it."""
    seen: list[str] = []
    value = json.loads(text, parse_constant=lambda name: seen.append(name) or _Constant(name))
    if seen:  # only then walk the parsed value (a LILA file is gigabytes)
        where, name = _constant_path(value) or ("?", seen[0])
        raise NonStandardNumber(f"{where}: {name} is not a JSON number")
    return value


def spreadsheet_safe(value: object) -> object:
    """A cell a spreadsheet shows as text: strings starting with = + - @ (or tab/CR) get a leading '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def spreadsheet_safe_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :func:`spreadsheet_safe` applied to every cell and column name (class names come from
    people's label files: a class ``=1+1`` was a formula in a CSV header)."""
    return frame.map(spreadsheet_safe).rename(columns=spreadsheet_safe)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; any problem (missing, unreadable, not UTF-8, not JSON) is a :class:`DataError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})") from exc
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        return loads_strict(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from exc
    except NonStandardNumber as exc:
        raise DataError(path, f"not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise DataError(path, "JSON nested too deeply") from exc


def _bad_utf8_line(path: Path) -> tuple[int, str] | None:
    """(line, message) of the first byte sequence that is not UTF-8, or None."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, f"not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} at column {exc.start + 1})"
    return None


def read_csv(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """:func:`pandas.read_csv` where every failure is a one-line :class:`DataError` naming the file (and line)."""
    import pandas as pd

    path = Path(path)
    try:
        return pd.read_csv(path, encoding="utf-8", encoding_errors="strict", **kwargs)
    except UnicodeDecodeError as exc:
        where = _bad_utf8_line(path)
        raise DataError(path, where[1] if where else "not UTF-8 text", line=where[0] if where else None) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(path, "empty file (no header)") from exc
    except pd.errors.ParserError as exc:
        raise DataError(path, f"not a valid CSV table: {str(exc).strip().splitlines()[-1]}") from exc
    except IsADirectoryError as exc:
        raise DataError(path, "is a folder, not a CSV file") from exc
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from exc
    except (ValueError, OverflowError) as exc:  # a dtype that does not fit: callers with dtypes handle this
        raise DataError(path, f"cannot read CSV: {exc}") from exc


def check_writable(path: str | os.PathLike[str], *, what: str = "output") -> Path:
    """Fail now, before hours of work, if ``path`` cannot be written: a folder, a read-only place, a file in the
    way of its parent folder.  Creates the parent folder if needed; leaves no file behind."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, f"the {what} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as exc:
        raise DataError(path, f"cannot write the {what} here: {exc.strerror or exc}") from exc
    os.close(fd)
    os.unlink(tmp)
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(path, f"the {what} exists and is read-only")
    return path
