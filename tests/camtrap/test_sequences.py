"""Sequence forming from camera folders and capture times (known answers), EXIF times read from headers."""

import datetime as dt
import os

import pytest
from PIL import ExifTags, Image

from camtrap.fileio import DataError
from camtrap.sequences import (
    TimedImage,
    camera_of,
    capture_time,
    form_sequences,
    parse_exif_time,
    sequences_from_csv,
)

T0 = dt.datetime(2024, 3, 1, 6, 0, 0)


def _im(file, seconds, camera=None):
    time = None if seconds is None else T0 + dt.timedelta(seconds=seconds)
    return TimedImage(file, camera or camera_of(file), time, "exif" if time else "none")


def test_gaps_cameras_bursts_and_untimed():
    images = [_im("a/d1/1.jpg", 0), _im("a/d1/2.jpg", 2), _im("a/d1/3.jpg", 4),  # one burst
              _im("a/d1/4.jpg", 600), _im("a/d1/5.jpg", 602),  # 10 min later: a new one
              _im("a/d1/6.jpg", 600 + 7200),  # 2 h later
              _im("b/d1/1.jpg", 1), _im("b/d1/2.jpg", 61), _im("b/d1/3.jpg", 122),  # 60 s apart: one; 61: new
              _im("b/d1/x.jpg", None)]  # fmt: skip
    seqs, report = form_sequences(images, gap_s=60)
    assert [s.files for s in seqs] == [("a/d1/1.jpg", "a/d1/2.jpg", "a/d1/3.jpg"), ("a/d1/4.jpg", "a/d1/5.jpg"),
                                       ("a/d1/6.jpg",), ("b/d1/1.jpg", "b/d1/2.jpg"), ("b/d1/3.jpg",),
                                       ("b/d1/x.jpg",)]  # fmt: skip
    assert [s.seq_id for s in seqs][:2] == ["a/d1#00001", "a/d1#00002"]
    assert seqs[0].start == T0 and seqs[0].end == T0 + dt.timedelta(seconds=4) and seqs[-1].start is None
    assert report.no_time == ["b/d1/x.jpg"] and report.sequences == 6 and report.time_sources == {"exif": 9, "none": 1}
    assert sorted(f for s in seqs for f in s.files) == sorted(im.file for im in images)


def test_camera_depth_joins_date_folders_and_max_frames_cuts():
    images = [_im("site/cam/day1/a.jpg", 0), _im("site/cam/day2/b.jpg", 30)]
    assert len(form_sequences(images)[0]) == 2  # the folder is the camera
    joined = [TimedImage(i.file, camera_of(i.file, 2), i.time, i.source) for i in images]
    seqs, _ = form_sequences(joined)
    assert [s.camera for s in seqs] == ["site/cam"] and len(seqs[0].files) == 2
    burst = [_im(f"c/{k}.jpg", k) for k in range(7)]
    seqs, report = form_sequences(burst, max_frames=3)
    assert [len(s.files) for s in seqs] == [3, 3, 1] and report.split == [("c#00001", 7)]
    assert "cut" in report.summary()


def test_exif_time_then_mtime(tmp_path):
    img = Image.new("RGB", (32, 24))
    exif = img.getexif()
    exif.get_ifd(ExifTags.IFD.Exif)[0x9003] = "2024:03:01 06:00:02"
    img.save(tmp_path / "e.jpg", exif=exif)
    img.save(tmp_path / "m.jpg")
    os.utime(tmp_path / "m.jpg", (T0.timestamp(), T0.timestamp()))
    assert capture_time(tmp_path / "e.jpg") == (T0 + dt.timedelta(seconds=2), "exif")
    assert capture_time(tmp_path / "m.jpg") == (T0, "mtime")
    assert capture_time(tmp_path / "m.jpg", use_mtime=False) == (None, "none")
    assert parse_exif_time("0000:00:00 00:00:00") is None and parse_exif_time("2024-03-01 06:00:00") == T0


def test_sequences_from_csv(tmp_path):
    images = [_im("a/1.jpg", 5), _im("a/2.jpg", 0), _im("a/3.jpg", 9)]
    (tmp_path / "s.csv").write_text("file,seq_id\na/1.jpg,x\na/2.jpg,x\na/3.jpg,y\n")
    seqs = sequences_from_csv(tmp_path / "s.csv", images)
    assert [(s.seq_id, s.files) for s in seqs] == [("x", ("a/2.jpg", "a/1.jpg")), ("y", ("a/3.jpg",))]
    (tmp_path / "bad.csv").write_text("file,seq_id\na/1.jpg,x\n")
    with pytest.raises(DataError, match="2 image"):
        sequences_from_csv(tmp_path / "bad.csv", images)
