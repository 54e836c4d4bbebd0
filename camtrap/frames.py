"""The frame source: which frames a command reads, and where each one is on disk.

Every command that reads frames gets them as :class:`FrameRef` values built here, from a dataset part
(:meth:`camtrap.dataset.SequenceSet.frame_refs`), a folder, or a list of names under a root.  A name from a
metadata table is somebody else's data: it must stay inside its data root.  Absolute names and ``..`` are
refused when the reference is made, and symbolic links that lead out of the root when the file is opened;
either way the frame becomes a failure that says only "outside the data folder" (nothing about the path
outside).  ``allow_outside_root`` turns the check off for users who keep images behind links on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["OUTSIDE_ROOT", "IMAGE_EXTENSIONS", "FrameRef", "frame_ref", "checked_path", "list_image_files",
           "folder_frames"]  # fmt: skip

OUTSIDE_ROOT = "outside the data folder"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})


@dataclass(frozen=True)
class FrameRef:
    """One frame to read.

    Attributes:
        file: the frame's name as listed (relative to the data root; what results files call ``file``).
        path: where it is, ``root/file`` (None when the name was refused).
        seq_id: the sequence it belongs to ("" when unknown).
        root: the resolved data root the file must stay in after symbolic links; None: no confinement.
        failure: why the frame cannot be read at all (set when the name was refused).
    """

    file: str
    path: Path | None
    seq_id: str = ""
    root: str | None = None
    failure: str | None = None


def _escapes(name: str) -> bool:
    """True for names that leave their folder lexically: empty, absolute (POSIX or Windows), or with '..'."""
    if not name or "\x00" in name:
        return True
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive or name.startswith(("\\", "/")):
        return True
    return any(part == ".." for part in name.replace("\\", "/").split("/"))


def frame_ref(root: str | os.PathLike[str], name: str, seq_id: str = "", *, folder: str | None = None,
              allow_outside_root: bool = False) -> FrameRef:
    """The reference to ``name`` under ``root`` (optionally under a sub-``folder`` of it, e.g. a season folder)."""
    root = Path(root)
    base = root / folder if folder else root
    if allow_outside_root:
        return FrameRef(name, base / name, seq_id)
    if _escapes(name):
        return FrameRef(name, None, seq_id, None, OUTSIDE_ROOT)
    return FrameRef(name, base / name, seq_id, os.path.realpath(root))


def checked_path(ref: FrameRef) -> Path | None:
    """The path to open for ``ref``: None when it was refused or a symbolic link takes it out of its root."""
    if ref.path is None:
        return None
    if ref.root is None:
        return ref.path
    real = os.path.realpath(ref.path)
    return ref.path if real == ref.root or real.startswith(ref.root.rstrip(os.sep) + os.sep) else None


def list_image_files(root: str | os.PathLike[str], recursive: bool = False) -> list[str]:
    """Names (relative, '/'-separated, sorted) of the image files under ``root``."""
    root = Path(root)
    pattern = "**/*" if recursive else "*"
    paths = sorted(p for p in root.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return [p.relative_to(root).as_posix() for p in paths]


def folder_frames(root: str | os.PathLike[str], names: Iterable[str] | None = None, *, recursive: bool = False,
                  allow_outside_root: bool = False) -> list[FrameRef]:
    """References for ``names`` under ``root`` (default: every image file in it), each its own sequence."""
    names = list_image_files(root, recursive) if names is None else list(names)
    return [frame_ref(root, n, n, allow_outside_root=allow_outside_root) for n in names]
