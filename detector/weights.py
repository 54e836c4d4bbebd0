"""Known MegaDetector releases and an explicit, resumable, verified download into a local cache.

Nothing here runs at import and nothing downloads unless ``fetch`` is called (``hakuna weights fetch``).
A partial download is kept as ``<name>.part`` and continued with an HTTP Range request; the finished file
is checked against the expected size and the release's digest (sha256, or MegaDetector's published md5) before
it is moved into place, and again every time ``fetch`` returns it from the cache; a file that does not match is
deleted and reported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detector.model import DetectorSpec

# camtrap.download is imported by fetch() only: the registry ships in the offline package, the downloader does not.
__all__ = ["Release", "REGISTRY", "cache_dir", "fetch", "release_named", "known_releases", "results_threshold"]

log = logging.getLogger(__name__)
_MD = "https://github.com/agentmorris/MegaDetector/releases/download"


@dataclass(frozen=True)
class Release:
    """A published detector: where it lives, how to check it, and how to run it."""

    name: str
    url: str
    spec: DetectorSpec
    fmt: str  # "ultralytics" (runs here) or "yolov5" (listed so the loader can say what to use instead)
    sha256: str | None = None  # None: not recorded here; the first download's digest is printed and pinned
    size: int | None = None
    md5: str | None = None  # MegaDetector's published digest (its known_models table)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _md(name: str, file: str, size: int, fmt: str, typical: float, conservative: float, md5: str,
        stride: int = 32) -> Release:  # fmt: skip
    yolov5 = fmt == "yolov5"  # MegaDetector's YOLOv5 preprocessing: centred padding, bilinear resize
    spec = DetectorSpec(name=name, input_size=size, typical_threshold=typical, conservative_threshold=conservative,
                        stride=stride, head="yolov5" if yolov5 else "ultralytics", centred=yolov5, bilinear=yolov5)
    return Release(name, f"{_MD}/{file}", spec, fmt, md5=md5)


REGISTRY: dict[str, Release] = {
    r.name: r
    for r in (
        _md("mdv1000-larch", "v1000.0/md_v1000.0.0-larch.pt", 640, "ultralytics", 0.3, 0.1,
            "cab94ebd190c2278e12fb70ffd548b6d"),
        _md("mdv1000-sorrel", "v1000.0/md_v1000.0.0-sorrel.pt", 960, "ultralytics", 0.3, 0.1,
            "4339a2c8af7a381f18ded7ac2a4df03e"),
        _md("mdv1000-redwood", "v1000.0/md_v1000.0.0-redwood.pt", 1280, "yolov5", 0.2, 0.05,
            "74474b3aec9cf1a990da38b37ddf9197", stride=64),
        _md("mdv1000-spruce", "v1000.0/md_v1000.0.0-spruce.pt", 640, "yolov5", 0.2, 0.05,
            "1c9d1d2b3ba54931881471fdd508e6f2"),
        _md("mdv5a", "v5.0/md_v5a.0.0.pt", 1280, "yolov5", 0.2, 0.05, "ec1d7603ec8cf642d6e0cd008ba2be8c", stride=64),
        _md("mdv5b", "v5.0/md_v5b.0.0.pt", 1280, "yolov5", 0.2, 0.05, "bc235e73f53c5c95e66ea0d1b2cbf542", stride=64),
    )
}
"""Known releases by short name.  Thresholds: MegaDetector's typical / conservative recommendations."""

# Registry lookups by the released file's stem too (md_v1000.0.0-sorrel.pt -> mdv1000-sorrel).
REGISTRY.update({r.filename.rsplit(".", 1)[0].lower(): r for r in list(REGISTRY.values())})


def known_releases() -> list[str]:
    """The releases' short names, sorted."""
    return sorted({r.name for r in REGISTRY.values()})


def release_named(name: str) -> Release | None:
    """The release a name refers to: a short name (``mdv5a``), a released file (``md_v5a.0.0.pt``, any folder,
    any case) or its stem; None when none matches."""
    stem = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    return REGISTRY.get(stem) or REGISTRY.get(stem.rsplit(".", 1)[0]) if stem else None


def results_threshold(results, source: str | os.PathLike[str], flag: str = "--threshold") -> float:
    """The animal threshold for a results file (:class:`camtrap.mdjson.DetectionResults`): the one it records,
    else the typical threshold of the registry release its ``info.detector`` names (MegaDetector's own files
    record none: ``md_v5a.0.0.pt`` -> 0.2).

    Raises:
        DataError: neither, naming the file, the detector it names, the known releases and ``flag``.
    """
    from camtrap.fileio import DataError

    if results.typical_threshold is not None:
        return results.typical_threshold
    release = release_named(results.detector or "")
    if release is not None:
        log.info("%s: no threshold recorded; %s's typical threshold %.2f (registry release %s)", source,
                 results.detector, release.spec.typical_threshold, release.name)  # fmt: skip
        return release.spec.typical_threshold
    raise DataError(source, f"records no detector threshold and its detector {results.detector!r} is no known "
                            f"release ({', '.join(known_releases())}); pass {flag}")  # fmt: skip


def cache_dir() -> Path:
    """Where fetched weights live: ``$HAKUNA_CACHE`` or ``~/.cache/hakuna/weights``."""
    return Path(os.environ.get("HAKUNA_CACHE", Path.home() / ".cache" / "hakuna")) / "weights"


def fetch(name: str, *, cache: Path | None = None, url: str | None = None,
          progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Make sure release ``name`` is in the cache (downloading if needed) and return its path.

    ``url`` overrides the release's address (a mirror, or a local server in tests); the file must still match
    the release's digest.

    Raises:
        DownloadError: the download failed or does not match the release (the file is deleted).
    """
    from camtrap.download import check_digests, download, sha256_of

    release = REGISTRY.get(name.lower())
    if release is None:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(known_releases())}")
    dest = (cache or cache_dir()) / release.filename
    if dest.exists():
        problem = check_digests(dest, sha256=release.sha256, md5=release.md5)
        if problem is None:
            return dest
        dest.unlink()
        log.warning("the cached %s did not match the release (%s): removed, downloading again", dest, problem)
    path = download(url or release.url, dest, sha256=release.sha256, md5=release.md5, size=release.size,
                    progress=progress, retries=2)  # fmt: skip
    if release.sha256 is None and release.md5 is None:
        log.warning("%s has no recorded sha256; the downloaded file's sha256 is %s", release.name, sha256_of(path))
    return path
