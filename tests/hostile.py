"""Hypothesis strategies for the values a careless or hostile file holds where a loader expects a number or a
list: NaN, infinities, negatives, huge values, the wrong type, the wrong length.  ``mutated`` puts one of them
(or several) into a valid JSON object, at any depth, so each loader's schema is probed field by field."""

from __future__ import annotations

import copy
import math

from hypothesis import strategies as st

SPECIAL = [math.nan, math.inf, -math.inf, -1, -1e-9, 0, 0.0, 1e308, -1e308, 10**30, 2**63, "256", "", None, True,
           False, [], {}, [1, 2], [math.nan] * 4, [0.5] * 100, "x" * 300]  # fmt: skip
hostile_values = st.one_of(st.sampled_from(SPECIAL), st.floats(), st.integers(), st.text(max_size=5),
                           st.lists(st.floats(), max_size=5))  # fmt: skip


def _paths(obj, prefix=()):
    """Every key path (dict keys and list indexes) of a JSON value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw, base: dict, max_changes: int = 3):
    """``base`` with 1..max_changes values (fields, list items, whole lists) replaced by hostile ones, or deleted."""
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_changes))):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.integers(0, 9)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(hostile_values))  # never alias (and later edit) SPECIAL
    return obj


def raw_exif(tag: int, kind: int, count: int, value: bytes) -> bytes:
    """An EXIF block with one IFD0 entry written byte by byte (little-endian TIFF), so a tag can hold what PIL's
    writer refuses (an ASCII Orientation, an out-of-range value): ``kind`` 2 is ASCII, 3 SHORT; ``value`` is the
    entry's 4 value bytes."""
    import struct

    entry = struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")[:4]
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)
