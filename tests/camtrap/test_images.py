import numpy as np
import pytest
from PIL import Image

from camtrap.images import Failure, load_image
from tests.conftest import shared_path
from tests.hostile import raw_exif


def _quadrants(w=64, h=48) -> np.ndarray:
    """Red top-left quadrant on blue: orientation is checkable."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 2] = 255
    a[: h // 2, : w // 2] = (255, 0, 0)
    return a


def test_bad_files_are_failures(tmp_path):
    assert load_image(tmp_path / "nul\x00.jpg").failure is Failure.MISSING  # a name no file can have
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    Image.fromarray(_quadrants()).save(tmp_path / "good.jpg", quality=95)
    data = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    cases = {"missing.jpg": Failure.MISSING, "zero.jpg": Failure.EMPTY, "text.jpg": Failure.NOT_AN_IMAGE,
             "trunc.jpg": Failure.TRUNCATED}  # fmt: skip
    for name, failure in cases.items():
        got = load_image(tmp_path / name)
        assert not got.ok and got.failure is failure and got.pixels is None, name


@pytest.mark.parametrize("mode", ["CMYK", "L", "RGBA", "P", "I;16"])
def test_modes_become_rgb(tmp_path, mode):
    rgb = Image.fromarray(_quadrants())
    if mode == "I;16":  # a real 16-bit frame spans 0..65535
        img = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    else:
        img = rgb.convert(mode)
    path = tmp_path / ("x.jpg" if mode in ("CMYK", "L") else "x.png")
    img.save(path)
    got = load_image(path)
    assert got.ok and got.pixels.shape == (48, 64, 3) and got.pixels.dtype == np.uint8
    if mode not in ("L", "I;16"):
        assert tuple(got.pixels[5, 5] // 64) == (3, 0, 0)  # still red top-left
    assert got.pixels[5, 5].max() > 60


def test_exif_rotation_applied(tmp_path):
    img = Image.fromarray(_quadrants())
    exif = img.getexif()
    exif[0x0112] = 6  # stored rotated: display needs 90 degrees clockwise
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    got = load_image(tmp_path / "rot.jpg")
    assert (got.width, got.height) == (48, 64) and got.pixels.shape == (64, 48, 3)
    assert got.pixels[5, -5, 0] > 200 and got.pixels[5, -5, 2] < 60  # red moved to the top-right


@pytest.mark.parametrize(("kind", "value"), [(3, b"\x09\x00"), (3, b"\x00\x00"), (3, b"\xff\xff"), (2, b"abc\x00")])
def test_invalid_exif_orientation_is_ignored(tmp_path, kind, value):
    """An Orientation that is not 1..8 (9, 0, 65535, a string) leaves the image as stored: it is loaded, and the
    width and height it reports are those of its pixels (a 9 once swapped them; a string made it a failure)."""
    Image.fromarray(_quadrants()).save(tmp_path / "o.jpg", exif=raw_exif(0x0112, kind, 4 if kind == 2 else 1, value))
    got = load_image(tmp_path / "o.jpg")
    assert got.ok, got.detail
    assert (got.width, got.height) == (64, 48) and got.pixels.shape == (48, 64, 3)


def test_reduced_decode_keeps_full_size(tmp_path):
    Image.fromarray(np.tile(_quadrants(), (10, 10, 1))).save(tmp_path / "big.jpg")  # 640x480
    got = load_image(tmp_path / "big.jpg", max_side=160)
    assert (got.width, got.height) == (640, 480)
    assert got.pixels.shape == (120, 160, 3)


def test_real_dev_awkward_photos():
    root = shared_path("data", "real-dev")
    import csv

    with open(root / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    awkward = [r for r in rows if any(k in r["notes"].lower() for k in ("cmyk", "grayscale", "exif"))]
    assert awkward, "manifest lists the CMYK / grayscale / EXIF-rotated photos"
    for r in awkward:
        got = load_image(root / "images" / r["path"])
        assert got.ok, (r["path"], got.failure, got.detail)
        assert got.pixels.ndim == 3 and got.pixels.shape[2] == 3


def test_files_over_the_size_limit_are_refused_before_opening(tmp_path):
    """A file that starts like a JPEG and goes on (PIL would scan it for markers) is refused from its size."""
    from camtrap.frames import frame_ref
    from camtrap.tensors import _read

    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(50_000_000)  # sparse: 50 MB on paper, nothing on disk
    img = load_image(big, max_bytes=10_000_000)
    assert img.failure is Failure.TOO_LARGE and "50,000,000 bytes is over the file size limit" in img.detail
    read = _read(frame_ref(tmp_path, "big.jpg"), None, 10_000_000)
    assert read.data is None and read.failure.startswith(Failure.TOO_LARGE.value)
