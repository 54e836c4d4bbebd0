"""Downloading large files from strangers' servers: resumable, retried, size- and digest-checked.

A partial download is kept as ``<name>.part`` and continued with an HTTP Range request; the finished file is
checked against the expected size and digests (sha256, and md5 where a publisher only gives that) before it
is moved into place, so a file at its final name is always
complete.  Network failures are retried with exponential back-off; a missing file (HTTP 404) is not.  Nothing
here runs at import, and nothing downloads unless a command asks for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

__all__ = ["DownloadError", "NotFound", "download", "sha256_of", "digests_of", "check_digests"]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that failed or did not verify; the message says which and what to do."""


class NotFound(DownloadError):
    """The server says the file is not there (HTTP 404/410): retrying will not help."""


def digests_of(path: Path) -> tuple[str, str]:
    """(sha256, md5) of a file, read once in 1 MiB blocks."""
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - md5 only where the publisher gives nothing else
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    return digests_of(path)[0]


def check_digests(path: Path, *, sha256: str | None = None, md5: str | None = None) -> str | None:
    """None when ``path`` has the given digests (either may be None: not checked), else what differs."""
    if sha256 is None and md5 is None:
        return None
    got_sha, got_md5 = digests_of(path)
    if sha256 is not None and got_sha != sha256.lower():
        return f"sha256 mismatch (got {got_sha}, expected {sha256})"
    if md5 is not None and got_md5 != md5.lower():
        return f"md5 mismatch (got {got_md5}, expected {md5})"
    return None


def _fetch_once(url: str, part: Path, size: int | None, timeout: float,
                progress: Callable[[int, int | None], None] | None) -> int | None:  # fmt: skip
    """Append what the server sends to ``part`` (from where it stops); returns the total size if known."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have >= size:
        return size
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    total = size
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resumed = have and resp.status == 206
            if not resumed:
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None else size
            with open(part, "ab" if resumed else "wb") as f:
                while block := resp.read(_CHUNK):
                    f.write(block)
                    have += len(block)
                    if progress:
                        progress(have, total)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise NotFound(f"{url}: not found on the server (HTTP {exc.code})") from exc
        if exc.code == 416 and have:  # asked for bytes past the end: the part is complete (size unknown here)
            return have
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(f"download of {url} stopped after {have} bytes ({getattr(exc, 'reason', exc)}); run the "
                            f"same command again to resume from {part}") from exc  # fmt: skip
    if total is not None and have < total:  # the server closed the connection early without an error
        raise DownloadError(f"download of {url} stopped after {have} of {total} bytes; run the same command again "
                            f"to resume from {part}")  # fmt: skip
    return total


def download(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None, timeout: float = 60,
             retries: int = 0, backoff_s: float = 1.0, md5: str | None = None,
             progress: Callable[[int, int | None], None] | None = None) -> Path:  # fmt: skip
    """Download ``url`` to ``dest``, resuming ``dest.part`` if present; verify size, sha256 and md5 (those given).

    Network errors are retried ``retries`` times (waiting ``backoff_s``, doubling); a 404 is not.
    ``progress(bytes_done, total_or_None)`` is called as data arrives.  Raises :class:`DownloadError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            total = _fetch_once(url, part, size, timeout, progress)
            break
        except NotFound:
            raise
        except DownloadError as exc:
            if attempt == retries:
                raise
            log.info("%s; retrying in %.1f s", exc, backoff_s * 2**attempt)
            time.sleep(backoff_s * 2**attempt)
    got = part.stat().st_size
    if (size is not None and got != size) or (total is not None and got < total):
        raise DownloadError(f"{url}: got {got} bytes, expected {size or total}; run again to resume")
    if problem := check_digests(part, sha256=sha256, md5=md5):
        part.unlink()
        raise DownloadError(f"{url}: {problem}; the corrupt file was removed")
    os.replace(part, dest)
    return dest
