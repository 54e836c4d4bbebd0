"""Loading camera-trap images so that a bad file is a recorded failure, never the end of a run.

``load_image`` handles missing, zero-byte, truncated and non-image files (a failure with a reason), and
CMYK, grayscale, palette, RGBA, 16-bit and EXIF-rotated images (converted to upright 8-bit RGB).  JPEGs
can be decoded at reduced size (DCT scaling) when the caller needs fewer pixels than the file holds.

Small files can hold huge images (a 20 KB 1-bit PNG of 13000 x 13000 pixels decodes to 500 MB of RGB), so
the pixel count is read from the header and checked against ``max_pixels`` before anything is decoded.  Large
files can stall a decoder (an 8 GB file that starts with a JPEG marker keeps PIL scanning for markers for many
minutes), so the file size is checked against ``max_bytes`` before the file is opened.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from camtrap.frames import FrameRef, checked_path

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_FILE_BYTES", "Failure", "file_too_large", "allow_pixels", "LoadedImage",
           "load_image", "load_frame", "exif_datetime"]

log = logging.getLogger(__name__)
_EXIF_DATETIME_ORIGINAL = 0x9003
DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width x height) decoded by default: 100 MP, 16x a 2048x1536 camera-trap frame."""
DEFAULT_MAX_FILE_BYTES = 100_000_000
"""Largest image file opened by default: 100 MB, about 50x a camera-trap JPEG."""


class Failure(str, enum.Enum):
    """Why an image could not be used (the value is what results files record)."""

    MISSING = "missing file"
    EMPTY = "zero-byte file"
    NOT_AN_IMAGE = "not an image"
    TRUNCATED = "truncated or corrupt image"
    UNSUPPORTED = "unsupported image format"
    TOO_LARGE = "image too large"
    OUTSIDE_ROOT = "outside the data folder"


@dataclass(frozen=True)
class LoadedImage:
    """An upright 8-bit RGB image (``pixels``, H x W x 3) or a failure.

    ``width``/``height`` are the full upright size even when ``pixels`` was decoded at reduced size, so
    normalised boxes from either agree.
    """

    path: Path
    pixels: np.ndarray | None
    width: int
    height: int
    failure: Failure | None = None
    detail: str = ""
    datetime: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: CMYK via PIL's conversion, 16-bit scaled down, alpha dropped."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        return Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def exif_datetime(img: Image.Image) -> str | None:
    """EXIF DateTimeOriginal (or DateTime) of an open image; None when absent or unreadable."""
    try:
        exif = img.getexif()
        value = exif.get_ifd(ExifTags.IFD.Exif).get(_EXIF_DATETIME_ORIGINAL) or exif.get(0x0132)
    except Exception:  # noqa: BLE001 - EXIF blocks are often malformed; the date is optional
        return None
    return str(value).strip() if value else None


def _orientation(img: Image.Image) -> int:
    """EXIF Orientation 1..8; 1 (as is) for anything else, as ``ImageOps.exif_transpose`` leaves such images
    unrotated (a value of 9, a string or a list must not swap the reported width and height)."""
    value = img.getexif().get(0x0112, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def allow_pixels(max_pixels: int | None) -> None:
    """Let PIL open images up to ``max_pixels`` (ours is then the guard that fires): PIL refuses more than twice
    its ``MAX_IMAGE_PIXELS`` (179 MP) by itself, which made ``--max-pixels`` above that a promise not kept.  PIL's
    limit is only ever raised, to what the caller asked for."""
    if max_pixels is not None and Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def file_too_large(size: int, max_bytes: int | None) -> str | None:
    """The failure detail for a file of ``size`` bytes over ``max_bytes`` (None: within the limit, or no limit)."""
    if max_bytes is None or size <= max_bytes:
        return None
    return f"{size:,} bytes is over the file size limit of {max_bytes:,}"


def _fail(path: Path, failure: Failure, detail: str = "") -> LoadedImage:
    log.debug("cannot load %s: %s %s", path, failure.value, detail)
    return LoadedImage(path, None, 0, 0, failure, detail)


def load_image(
    path: str | os.PathLike[str], *, max_side: int | None = None, read_datetime: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS, max_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
) -> LoadedImage:
    """Load ``path`` as upright RGB; never raises for a bad file.

    Args:
        path: image file.
        max_side: if given, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as its longer side stays
            at least this large (faster; the caller resizes further).
        read_datetime: also read EXIF DateTimeOriginal.
        max_pixels: refuse (as a failure) images with more pixels than this, judged from the header before
            decoding; None: no limit of ours (PIL's own decompression-bomb limit still applies).
        max_bytes: refuse (as a failure) files larger than this, before opening them; None: no limit.
    """
    path = Path(path)
    allow_pixels(max_pixels)
    try:
        size = path.stat().st_size
        if size == 0:
            return _fail(path, Failure.EMPTY)
        if too_large := file_too_large(size, max_bytes):
            return _fail(path, Failure.TOO_LARGE, too_large)
    except FileNotFoundError:
        return _fail(path, Failure.MISSING)
    except (OSError, ValueError) as exc:  # ValueError: a name no file can have (a NUL byte in a CSV's path)
        return _fail(path, Failure.MISSING, str(exc))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is the guard
            with Image.open(path) as img:
                if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
                    return _fail(path, Failure.TOO_LARGE, f"{img.size[0]} x {img.size[1]} pixels is over the limit "
                                 f"of {max_pixels:,}")
                stamp = exif_datetime(img) if read_datetime else None
                orientation = _orientation(img)
                full_w, full_h = img.size if orientation < 5 else img.size[::-1]
                ratio = max_side / max(img.size) if max_side else 1.0
                if ratio < 1.0 and img.format == "JPEG":
                    img.draft(None, (math.ceil(img.size[0] * ratio), math.ceil(img.size[1] * ratio)))
                img.load()
                upright = (ImageOps.exif_transpose(img) or img) if orientation in range(2, 9) else img  # no copy
                pixels = np.asarray(_to_rgb(upright))
    except UnidentifiedImageError as exc:
        return _fail(path, Failure.NOT_AN_IMAGE, str(exc))
    except ImportError:
        # a library that patches PIL.Image.open (ultralytics does) tried an optional decoder plugin for a file PIL
        # could not identify: what matters is PIL's answer, not the plugin's name.
        return _fail(path, Failure.NOT_AN_IMAGE, f"cannot identify image file {str(path)!r}")
    except Image.DecompressionBombError as exc:
        return _fail(path, Failure.TOO_LARGE, str(exc))
    except (OSError, SyntaxError, ValueError) as exc:
        kind = Failure.TRUNCATED if "truncat" in str(exc).lower() or isinstance(exc, OSError) else Failure.UNSUPPORTED
        return _fail(path, kind, str(exc))
    except Exception as exc:  # noqa: BLE001 - the contract: a bad file is a failure record, never an exception
        log.warning("unexpected error decoding %s: %r", path, exc)
        return _fail(path, Failure.UNSUPPORTED, repr(exc))
    return LoadedImage(path, np.ascontiguousarray(pixels), int(full_w), int(full_h), None, "", stamp)


def load_frame(ref: FrameRef, **kwargs) -> LoadedImage:
    """:func:`load_image` for a frame reference: a name that leaves its data root is a failure, never opened."""
    path = checked_path(ref)
    if path is None:
        return LoadedImage(Path(ref.file), None, 0, 0, Failure.OUTSIDE_ROOT)
    return load_image(path, **kwargs)
