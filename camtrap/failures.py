"""The one line every frame-reading command ends with when files could not be read, and its exit status."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["failure_line", "failure_status", "report_failures"]


def failure_line(failures: Iterable[tuple[str, str]], total: int, *, what: str = "images") -> str | None:
    """``"3 of 10 images could not be read: a.jpg (missing file), b.jpg (...), c.jpg (...)"``; None when none failed.

    ``failures``: (file, reason) pairs in input order; the first three are named.
    """
    failures = list(failures)
    if not failures:
        return None
    named = ", ".join(f"{f} ({r})" for f, r in failures[:3])
    more = f", and {len(failures) - 3} more" if len(failures) > 3 else ""
    return f"{len(failures)} of {total} {what} could not be read: {named}{more}"


def failure_status(n_failed: int, total: int) -> int:
    """1 when every input failed (nothing worked), else 0."""
    return 1 if total and n_failed >= total else 0


def report_failures(failures: Iterable[tuple[str, str]], total: int, *, what: str = "images") -> int:
    """Print the failure line (if any) and return the exit status."""
    failures = list(failures)
    if line := failure_line(failures, total, what=what):
        print(line)
    return failure_status(len(failures), total)
