"""Known MegaDetector releases and an explicit, resumable, verified download into a local cache.

Nothing here runs at import and nothing downloads unless ``fetch`` is called (``hakuna weights fetch``).
A partial download is kept as ``<name>.part`` and continued with an HTTP Range request; the finished file
is checked against the expected size and sha256 before it is moved into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detector.model import DetectorSpec

__all__ = ["Release", "REGISTRY", "DownloadError", "cache_dir", "fetch", "download"]

log = logging.getLogger(__name__)
_MD = "https://github.com/agentmorris/MegaDetector/releases/download"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Release:
    """A published detector: where it lives, how to check it, and how to run it."""

    name: str
    url: str
    spec: DetectorSpec
    fmt: str  # "ultralytics" (runs here) or "yolov5" (listed so the loader can say what to use instead)
    sha256: str | None = None  # None: not recorded here; the first download's digest is printed and pinned
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _md(name: str, file: str, size: int, fmt: str, typical: float, conservative: float) -> Release:
    spec = DetectorSpec(name=name, input_size=size, typical_threshold=typical, conservative_threshold=conservative)
    return Release(name, f"{_MD}/{file}", spec, fmt)


REGISTRY: dict[str, Release] = {
    r.name: r
    for r in (
        _md("mdv1000-larch", "v1000.0/md_v1000.0.0-larch.pt", 640, "ultralytics", 0.3, 0.1),
        _md("mdv1000-sorrel", "v1000.0/md_v1000.0.0-sorrel.pt", 960, "ultralytics", 0.3, 0.1),
        _md("mdv1000-redwood", "v1000.0/md_v1000.0.0-redwood.pt", 1280, "yolov5", 0.2, 0.05),
        _md("mdv1000-spruce", "v1000.0/md_v1000.0.0-spruce.pt", 640, "yolov5", 0.2, 0.05),
        _md("mdv5a", "v5.0/md_v5a.0.0.pt", 1280, "yolov5", 0.2, 0.05),
        _md("mdv5b", "v5.0/md_v5b.0.0.pt", 1280, "yolov5", 0.2, 0.05),
    )
}
"""Known releases by short name.  Thresholds: MegaDetector's typical / conservative recommendations."""

# Registry lookups by the released file's stem too (md_v1000.0.0-sorrel.pt -> mdv1000-sorrel).
REGISTRY.update({r.filename.rsplit(".", 1)[0].lower(): r for r in list(REGISTRY.values())})


class DownloadError(RuntimeError):
    """A download that failed or did not verify; the message says which and what to do."""


def cache_dir() -> Path:
    """Where fetched weights live: ``$HAKUNA_CACHE`` or ``~/.cache/hakuna/weights``."""
    return Path(os.environ.get("HAKUNA_CACHE", Path.home() / ".cache" / "hakuna")) / "weights"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None, timeout: float = 60,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` if present; verify size and sha256.

    ``progress(bytes_done, total_or_None)`` is called as data arrives.  Raises :class:`DownloadError`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
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
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(f"download of {url} stopped after {have} bytes ({exc}); run the same command again to "
                            f"resume from {part}") from exc  # fmt: skip
    got = part.stat().st_size
    if (size is not None and got != size) or (total is not None and got < total):
        raise DownloadError(f"{url}: got {got} bytes, expected {size or total}; run again to resume")
    digest = _sha256(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink()
        raise DownloadError(f"{url}: sha256 mismatch (got {digest}, expected {sha256}); the corrupt file was removed")
    os.replace(part, dest)
    if sha256 is None:
        log.warning("%s has no recorded sha256; downloaded file's sha256 is %s", url, digest)
    return dest


def fetch(name: str, *, cache: Path | None = None, url: str | None = None,
          progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Make sure release ``name`` is in the cache (downloading if needed) and return its path.

    ``url`` overrides the release's address (a mirror, or a local server in tests).
    """
    release = REGISTRY.get(name.lower())
    if release is None:
        known = sorted({r.name for r in REGISTRY.values()})
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(known)}")
    dest = (cache or cache_dir()) / release.filename
    if dest.exists() and (release.sha256 is None or _sha256(dest) == release.sha256):
        return dest
    return download(url or release.url, dest, sha256=release.sha256, size=release.size, progress=progress)
