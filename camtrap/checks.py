"""Field checks for what is read from files: type, finiteness, range and length, each failure one
:class:`~camtrap.fileio.DataError` naming the file and the field.

A loader declares its schema as a few calls, one per field::

    size = checks.integer(raw, "input_size", source, lo=32, hi=4096)
    mean = checks.numbers(raw, "mean", source, length=3, lo=-10, hi=10)

Booleans are not numbers here (``True`` is not an ``input_size``), NaN and infinities are never in range, and a
value of the wrong type is named with its type rather than passed on to fail later.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from camtrap.fileio import DataError, NonStandardNumber, loads_strict

__all__ = ["MISSING", "parse_json", "field", "number", "integer", "numbers", "text", "texts", "boolean", "mapping",
           "finite_number"]

Source = str | os.PathLike[str]
MISSING: Any = object()


def parse_json(text: str, source: Source, what: str) -> Any:
    """``text`` parsed as JSON; a :class:`DataError` naming ``source`` when it is not (``what``: "the spec")."""
    try:
        return loads_strict(text)
    except NonStandardNumber as exc:
        raise DataError(source, str(exc)) from exc
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        raise DataError(source, f"{what} is not JSON ({str(exc)[:80]})") from exc


def field(raw: Mapping, name: str, source: Source, default: Any = MISSING) -> Any:
    """``raw[name]``, or ``default``; a missing field without a default is an error."""
    if not isinstance(raw, Mapping):
        raise DataError(source, f"expected a JSON object, got {type(raw).__name__}")
    if name in raw:
        return raw[name]
    if default is MISSING:
        raise DataError(source, f"{name}: missing")
    return default


def _where(name: str, index: int | None) -> str:
    return name if index is None else f"{name}[{index}]"


def finite_number(value: Any, name: str, source: Source, *, lo: float | None = None, hi: float | None = None,
                  low_open: bool = False, index: int | None = None) -> float:  # fmt: skip
    """``value`` as a float, finite and within [lo, hi] (``low_open``: above lo)."""
    where = _where(name, index)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(source, f"{where}: expected a number, got {type(value).__name__} {_short(value)}")
    try:
        x = float(value)
    except OverflowError:
        raise DataError(source, f"{where}: {_short(value)} is too large") from None
    if not math.isfinite(x):
        raise DataError(source, f"{where}: {x!r} is not a finite number")
    if (lo is not None and (x < lo or (low_open and x == lo))) or (hi is not None and x > hi):
        low = "" if lo is None else f"{'(' if low_open else '['}{lo:g}"
        raise DataError(source, f"{where}: {x!r} outside {low or '(-inf'}, {'inf)' if hi is None else f'{hi:g}]'}")
    return x


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def number(raw: Mapping, name: str, source: Source, *, lo: float | None = None, hi: float | None = None,
           low_open: bool = False, default: Any = MISSING) -> float:  # fmt: skip
    """The finite number ``raw[name]`` within [lo, hi] (see :func:`finite_number`)."""
    value = field(raw, name, source, default)
    return finite_number(value, name, source, lo=lo, hi=hi, low_open=low_open)


def _integer(value: Any, name: str, source: Source, lo: int | None, hi: int | None, index: int | None = None) -> int:
    where = _where(name, index)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(source, f"{where}: expected an integer, got {type(value).__name__} {_short(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise DataError(source, f"{where}: {_short(value)} outside [{lo}, {hi}]")
    return value


def integer(raw: Mapping, name: str, source: Source, *, lo: int | None = None, hi: int | None = None,
            default: Any = MISSING) -> int:  # fmt: skip
    """The integer ``raw[name]`` within [lo, hi] (a float with an integral value is accepted)."""
    return _integer(field(raw, name, source, default), name, source, lo, hi)


def _sequence(value: Any, name: str, source: Source, length: int | None, min_length: int, max_length: int) -> list:
    if not isinstance(value, list | tuple):
        raise DataError(source, f"{name}: expected a list, got {type(value).__name__} {_short(value)}")
    if length is not None and len(value) != length:
        raise DataError(source, f"{name}: expected {length} values, got {len(value)}")
    if not min_length <= len(value) <= max_length:
        raise DataError(source, f"{name}: expected {min_length}..{max_length} values, got {len(value)}")
    return list(value)


def numbers(raw: Mapping, name: str, source: Source, *, length: int | None = None, lo: float | None = None,
            hi: float | None = None, low_open: bool = False, integral: bool = False, min_length: int = 0,
            max_length: int = 1 << 20, default: Any = MISSING) -> tuple:  # fmt: skip
    """A list of finite numbers (integers with ``integral``) within [lo, hi], ``length`` of them if given."""
    values = _sequence(field(raw, name, source, default), name, source, length, min_length, max_length)
    if integral:
        return tuple(_integer(v, name, source, lo, hi, i) for i, v in enumerate(values))
    return tuple(finite_number(v, name, source, lo=lo, hi=hi, low_open=low_open, index=i) for i, v in enumerate(values))


def text(raw: Mapping, name: str, source: Source, *, choices: tuple[str, ...] | None = None, nonempty: bool = True,
         max_length: int = 10_000, default: Any = MISSING) -> str:  # fmt: skip
    """The string ``raw[name]``, non-empty and one of ``choices`` if given."""
    value = field(raw, name, source, default)
    if not isinstance(value, str):
        raise DataError(source, f"{name}: expected a string, got {type(value).__name__} {_short(value)}")
    if (nonempty and not value) or len(value) > max_length:
        raise DataError(source, f"{name}: {'empty' if not value else f'longer than {max_length} characters'}")
    if choices is not None and value not in choices:
        raise DataError(source, f"{name}: {_short(value)} is not one of {', '.join(choices)}")
    return value


def texts(raw: Mapping, name: str, source: Source, *, min_length: int = 1, max_length: int = 100_000,
          unique: bool = True, default: Any = MISSING) -> tuple[str, ...]:  # fmt: skip
    """A list of non-empty strings (unique with ``unique``), at least ``min_length`` of them."""
    values = _sequence(field(raw, name, source, default), name, source, None, min_length, max_length)
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v:
            raise DataError(source, f"{name}[{i}]: expected a non-empty string, got {_short(v)}")
    if unique and len(set(values)) != len(values):
        seen: set[str] = set()
        dup = next(v for v in values if v in seen or seen.add(v))
        raise DataError(source, f"{name}: {dup!r} appears more than once")
    return tuple(values)


def boolean(raw: Mapping, name: str, source: Source, *, default: Any = MISSING) -> bool:
    """The JSON boolean ``raw[name]`` (not 0/1, not a string)."""
    value = field(raw, name, source, default)
    if not isinstance(value, bool):
        raise DataError(source, f"{name}: expected true or false, got {_short(value)}")
    return value


def mapping(raw: Mapping, name: str, source: Source, *, default: Any = MISSING) -> dict:
    """The JSON object ``raw[name]``."""
    value = field(raw, name, source, default)
    if not isinstance(value, Mapping):
        raise DataError(source, f"{name}: expected an object, got {type(value).__name__}")
    return dict(value)
