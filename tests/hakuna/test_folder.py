"""Folder mode of ``hakuna predict``: a nested camera/date folder of JPEGs with EXIF times becomes exactly the
expected sequences (bursts 2 s apart; gaps of 10 min and 2 h), every image in one sequence, with
``sequences.csv``, ``images.csv``, ``results.json`` (``seq_id`` per image) and a review site listing every
sequence.  No training: the detector and the classifier have random weights."""

import datetime as dt
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import ExifTags, Image

from camtrap.mdjson import read_results, validate
from hakuna.cli import main
from hakuna.folder import SEQUENCE_COLUMNS
from tests.conftest import make_random_classifier

T0 = dt.datetime(2024, 3, 1, 6, 0, 0)
# camera/date folder -> bursts, each a list of seconds after T0
PLAN = {"cam01/2024-03-01": [[0, 2, 4], [604], [604 + 7200, 604 + 7202]],
        "cam02/2024-03-01": [[1, 3]],
        "cam02/2024-03-02": [[86400]]}  # fmt: skip


def _jpeg(path, when, seed):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    exif = img.getexif()
    exif.get_ifd(ExifTags.IFD.Exif)[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, exif=exif, quality=80)


def make_card(root):
    """The folder and the expected sequences (tuples of files)."""
    expected, k = [], 0
    for folder, bursts in PLAN.items():
        for burst in bursts:
            files = []
            for s in burst:
                k += 1
                name = f"{folder}/IMG_{k:04d}.JPG"
                _jpeg(root / name, T0 + dt.timedelta(seconds=s), k)
                files.append(name)
            expected.append(tuple(files))
    return expected


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return make_random_classifier(tmp_path_factory.mktemp("clf"))


def _predict(card, out, detector, clf, *extra):
    return main(["predict", "--images", str(card), "--recursive", "--detector", str(detector), "--classifier",
                 str(clf), "--out", str(out), "--device", "cpu", "--no-progress", "--workers", "1", *extra])


def test_folder_gives_the_expected_sequences(tmp_path, random_detector, clf, capsys):
    card = tmp_path / "card"
    expected = make_card(card)
    assert _predict(card, tmp_path / "out", random_detector, clf) == 0
    text = capsys.readouterr().out
    assert "fusion: default, not fitted" in text and "9 images in 5 sequences (time from: 9 exif)" in text

    seqs = pd.read_csv(tmp_path / "out" / "sequences.csv", keep_default_na=False)
    assert tuple(seqs.columns[: len(SEQUENCE_COLUMNS)]) == SEQUENCE_COLUMNS
    assert {"p_empty", "p_zebra"} <= set(seqs.columns[len(SEQUENCE_COLUMNS):])  # one column per class
    assert sorted(tuple(f.split(";")) for f in seqs["files"]) == sorted(expected)
    assert list(seqs["n_frames"]) == [len(f.split(";")) for f in seqs["files"]]
    first = seqs[seqs["files"].str.startswith("cam01/2024-03-01/IMG_0001")].iloc[0]
    assert (first["camera"], first["start"], first["end"]) == ("cam01/2024-03-01", "2024-03-01 06:00:00",
                                                               "2024-03-01 06:00:04")  # fmt: skip
    probs = seqs.iloc[:, len(SEQUENCE_COLUMNS):].to_numpy()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1, atol=1e-3)

    images = pd.read_csv(tmp_path / "out" / "images.csv", keep_default_na=False)
    assert list(images.columns) == ["file", "seq_id", "time", "time_source", "failure", "top_class"]
    assert len(images) == 9 and set(images["time_source"]) == {"exif"} and images["file"].is_unique
    results_json = json.loads((tmp_path / "out" / "results.json").read_text())
    assert validate(results_json) == []
    seq_of = dict(zip(images["file"], images["seq_id"]))
    assert {im["file"]: im["seq_id"] for im in results_json["images"]} == seq_of
    assert len(read_results(tmp_path / "out" / "results.json").frames) == 9

    site = (tmp_path / "out" / "review" / "data.js").read_text()
    review = json.loads(site[site.index("{"): site.rindex("}") + 1])
    assert set(review["sequences"]) == set(seqs["seq_id"])  # every sequence, empty ones included


def test_camera_depth_and_gap(tmp_path, random_detector, clf, capsys):
    card = tmp_path / "card"
    make_card(card)
    assert _predict(card, tmp_path / "out", random_detector, clf, "--camera-depth", "1", "--sequence-gap", "100000",
                    "--max-frames", "4", "--no-review") == 0  # fmt: skip
    seqs = pd.read_csv(tmp_path / "out" / "sequences.csv", keep_default_na=False)
    assert list(seqs["camera"]) == ["cam01", "cam01", "cam02"] and list(seqs["n_frames"]) == [4, 2, 3]
    assert "1 burst(s) over --max-frames cut" in capsys.readouterr().out


def test_some_or_all_images_unreadable(tmp_path, random_detector, clf, capsys):
    card = tmp_path / "card"
    make_card(card)
    (card / "cam01/2024-03-01/IMG_0002.JPG").write_bytes(b"not a jpeg")
    assert _predict(card, tmp_path / "out", random_detector, clf, "--no-review") == 0
    out = capsys.readouterr().out
    assert "1 of 9 images could not be read: cam01/2024-03-01/IMG_0002.JPG (" in out
    images = pd.read_csv(tmp_path / "out" / "images.csv", keep_default_na=False).set_index("file")
    assert images.loc["cam01/2024-03-01/IMG_0002.JPG", "failure"] != ""
    for f in card.rglob("*.JPG"):
        f.write_bytes(b"broken")
    assert _predict(card, tmp_path / "out2", random_detector, clf, "--no-review") == 1
    assert "9 of 9 images could not be read" in capsys.readouterr().out


def _review(out):
    site = (out / "review" / "data.js").read_text()
    return json.loads(site[site.index("{"): site.rindex("}") + 1])


def test_unreadable_sequences_get_no_call(tmp_path, random_detector, clf, capsys):
    """A sequence whose only frame is a truncated JPEG or a zero-byte file has no species, no empty call and no
    probabilities (never the first class alphabetically); it is counted apart in the summary and shown as
    unreadable in the review.  A sequence with one broken frame is judged on its readable frames."""
    card = tmp_path / "card"
    make_card(card)
    whole = (card / "cam01/2024-03-01/IMG_0004.JPG").read_bytes()
    (card / "cam03").mkdir()
    (card / "cam03/cut.JPG").write_bytes(whole[:300])  # truncated: its own camera, its own sequence
    (card / "cam04").mkdir()
    (card / "cam04/zero.JPG").write_bytes(b"")
    when = dt.datetime(2024, 3, 5, 12, 0, 0).timestamp()
    os.utime(card / "cam04/zero.JPG", (when, when))  # no EXIF: dated by its mtime
    ref = tmp_path / "ref"
    shutil.copytree(card, ref)
    (card / "cam01/2024-03-01/IMG_0002.JPG").write_bytes(b"not a jpeg")  # one of a 3-frame burst ...
    when = (T0 + dt.timedelta(seconds=2)).timestamp()
    os.utime(card / "cam01/2024-03-01/IMG_0002.JPG", (when, when))  # ... kept in it by its mtime (no EXIF left)
    (ref / "cam01/2024-03-01/IMG_0002.JPG").unlink()
    assert _predict(card, tmp_path / "out", random_detector, clf) == 0
    summary = capsys.readouterr().out
    seqs = pd.read_csv(tmp_path / "out" / "sequences.csv", keep_default_na=False).set_index("camera")
    bad = seqs.loc[["cam03", "cam04"]]
    assert list(bad["status"]) == ["unreadable"] * 2 and list(bad["failed_frames"]) == [1, 1]
    assert (bad[["species", "confidence", "empty"]] == "").all().all()
    assert (bad.filter(like="p_") == "").all().all()  # blank cells, not a made-up uniform
    assert f"of {len(seqs)} sequences with an animal, 2 unreadable (no frame could be read)" in summary
    assert f"outputs in {tmp_path / 'out'}/: sequences.csv, images.csv, results.json, review/index.html" in summary
    burst = seqs[seqs["files"].str.contains("IMG_0002")].iloc[0]
    assert (burst["status"], burst["failed_frames"], burst["n_frames"]) == ("ok", 1, 3)

    assert _predict(ref, tmp_path / "ref-out", random_detector, clf, "--no-review") == 0
    alone = pd.read_csv(tmp_path / "ref-out" / "sequences.csv", keep_default_na=False)
    alone = alone[alone["files"].str.contains("IMG_0001")].iloc[0]
    p = [c for c in seqs.columns if c.startswith("p_")]
    assert np.allclose(burst[p].astype(float), alone[p].astype(float), atol=1e-6)  # the readable frames decide

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert validate(results) == []
    failed = {im["file"]: im for im in results["images"] if "failure" in im}
    assert set(failed) == {"cam03/cut.JPG", "cam04/zero.JPG", "cam01/2024-03-01/IMG_0002.JPG"}
    assert all(im.get("detections") is None for im in failed.values())

    review = _review(tmp_path / "out")
    for seq_id in bad["seq_id"]:
        s = review["sequences"][seq_id]
        assert s["unreadable"] and s["called"] == [] and not s["empty"] and s["fused"] == []
    images = pd.read_csv(tmp_path / "out" / "images.csv", keep_default_na=False).set_index("file")
    zero = images.loc["cam04/zero.JPG"]
    assert (zero["time"], zero["time_source"]) == ("2024-03-05 12:00:00", "mtime")
    assert review["sequences"][bad.loc["cam04", "seq_id"]]["date"] == "2024-03-05 12:00:00 (mtime)"
    first = review["sequences"][seqs[seqs.index.str.startswith("cam02")].iloc[0]["seq_id"]]
    assert first["date"].endswith(" (exif)")


def test_a_classifier_of_whole_photos_used_on_crops_is_said(tmp_path, random_detector, clf, caplog):
    """Folder mode classifies square crops of detector boxes: a classifier whose spec says it learnt whole photos
    (a path,label CSV: resize stretch) runs with a warning saying so; one trained on crops runs without."""
    import logging

    import torch

    ckpt = torch.load(clf, weights_only=True)
    spec = {**json.loads(ckpt["spec"]), "resize": "stretch", "training": {"source": "csv:labelled.csv"}}
    torch.save({**ckpt, "spec": json.dumps(spec)}, tmp_path / "photos.pt")
    card = tmp_path / "card"
    make_card(card)
    with caplog.at_level(logging.WARNING):
        assert _predict(card, tmp_path / "a", random_detector, clf, "--no-review") == 0
        assert "trained on whole photos" not in caplog.text
        assert _predict(card, tmp_path / "b", random_detector, tmp_path / "photos.pt", "--no-review") == 0
    assert caplog.text.count("trained on whole photos (source csv:labelled.csv, resize stretch) and is used here on "
                             "square crops of detector boxes") == 1
