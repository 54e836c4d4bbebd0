"""Every frame-reading command ends with one failure line (count, first three files with reasons) and exits non-zero
only when every input failed; CSV paths are relative to --root (or the CSV's folder), absolute ones as given."""

import numpy as np
import pandas as pd
from PIL import Image

from camtrap.failures import failure_line, failure_status
from hakuna.cli import main
from tests.conftest import make_random_classifier


def _photo(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(path)


def test_failure_line_names_the_first_three():
    pairs = [(f"{k}.jpg", "missing file") for k in range(5)]
    assert failure_line(pairs, 9) == ("5 of 9 images could not be read: 0.jpg (missing file), 1.jpg (missing file), "
                                      "2.jpg (missing file), and 2 more")  # fmt: skip
    assert failure_line([], 3) is None and failure_status(3, 3) == 1 and failure_status(2, 3) == 0


def test_detect_some_then_all_unreadable(tmp_path, random_detector, capsys):
    _photo(tmp_path / "imgs" / "good.jpg")
    (tmp_path / "imgs" / "bad.jpg").write_bytes(b"not a jpeg")
    args = ["detect", "--model", str(random_detector), "--images", str(tmp_path / "imgs"), "--device", "cpu",
            "--no-progress", "--out"]  # fmt: skip
    assert main([*args, str(tmp_path / "a.json")]) == 0
    assert "1 of 2 images could not be read: bad.jpg (" in capsys.readouterr().out
    (tmp_path / "imgs" / "good.jpg").write_bytes(b"")
    assert main([*args, str(tmp_path / "b.json")]) == 1
    assert "2 of 2 images could not be read: bad.jpg (" in capsys.readouterr().out


def test_classify_csv_paths_root_and_absolute(tmp_path, capsys):
    clf = make_random_classifier(tmp_path)
    _photo(tmp_path / "photos" / "a.jpg")
    _photo(tmp_path / "elsewhere" / "b.jpg", 1)
    csv = tmp_path / "lists" / "photos.csv"
    csv.parent.mkdir()
    pd.DataFrame({"path": ["a.jpg", str(tmp_path / "elsewhere" / "b.jpg"), "gone.jpg"]}).to_csv(csv, index=False)
    args = ["classify", "--model", str(clf), "--images-csv", str(csv), "--device", "cpu", "--no-progress"]
    assert main([*args, "--root", str(tmp_path / "photos"), "--out", str(tmp_path / "p.csv")]) == 0
    assert "1 of 3 images could not be read: gone.jpg (missing file)" in capsys.readouterr().out
    out = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(out["failure"] == "") == [True, True, False] and out.iloc[2, 2:].eq("").all()  # no NaN written
    assert main([*args, "--out", str(tmp_path / "q.csv")]) == 0  # relative to the CSV's folder: a.jpg is not there
    assert "2 of 3 images could not be read: a.jpg (missing file), gone.jpg (missing file)" in capsys.readouterr().out
    pd.DataFrame({"path": ["a.jpg", "gone.jpg"]}).to_csv(csv, index=False)
    assert main([*args, "--out", str(tmp_path / "r.csv")]) == 1  # every image failed
    assert "2 of 2 images could not be read" in capsys.readouterr().out
