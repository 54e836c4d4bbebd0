import os

import pytest

from camtrap.frames import OUTSIDE_ROOT, checked_path, folder_frames, frame_ref
from camtrap.images import Failure, load_frame


@pytest.mark.parametrize("name", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "\\\\server\\x.jpg",
                                  "a\\..\\..\\x.jpg", "", "x\x00.jpg"])  # fmt: skip
def test_names_that_leave_the_root_are_refused(tmp_path, name):
    ref = frame_ref(tmp_path, name)
    assert ref.path is None and ref.failure == OUTSIDE_ROOT and checked_path(ref) is None
    img = load_frame(ref)
    assert img.failure is Failure.OUTSIDE_ROOT and img.detail == ""  # says nothing about the outside


def test_symlinks_out_of_the_root_are_refused_whether_or_not_the_target_exists(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside.jpg").write_bytes(b"\xff\xd8 not really")
    os.symlink(tmp_path / "outside.jpg", root / "sub" / "a.jpg")
    os.symlink(tmp_path / "nothing.jpg", root / "b.jpg")
    os.symlink(root / "sub", root / "inside")  # links that stay inside are fine
    failures = {n: load_frame(frame_ref(root, n)).failure for n in ("sub/a.jpg", "b.jpg", "inside/x.jpg")}
    assert failures == {"sub/a.jpg": Failure.OUTSIDE_ROOT, "b.jpg": Failure.OUTSIDE_ROOT,
                        "inside/x.jpg": Failure.MISSING}  # fmt: skip
    assert checked_path(frame_ref(root, "sub/a.jpg", allow_outside_root=True)) == root / "sub" / "a.jpg"


def test_season_folders_and_listing(tmp_path):
    ref = frame_ref(tmp_path, "S1/B04/x.JPG", "SER_S1#B04#1#1", folder="SnapshotSerengeti_S01_v2_0")
    assert ref.path == tmp_path / "SnapshotSerengeti_S01_v2_0" / "S1" / "B04" / "x.JPG"
    assert checked_path(ref) == ref.path
    (tmp_path / "a").mkdir()
    for name in ("a/1.JPG", "b.png", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [r.file for r in folder_frames(tmp_path)] == ["b.png"]
    assert [r.file for r in folder_frames(tmp_path, recursive=True)] == ["a/1.JPG", "b.png"]
