"""One frame source for every command: ``detect``, ``crops``, ``classify`` and ``review`` with ``--metadata`` on
the per-season training layout read every frame (0 missing; the first release's ``detect --metadata`` found 930
of 930 frames "missing file" there and exited 0, and ``review`` read the frames flat under ``--images``)."""

import json

import pandas as pd

from hakuna.cli import main
from tests.conftest import make_random_classifier


def test_every_command_reads_every_frame_of_the_per_season_layout(small_synth, random_detector, tmp_path, capsys):
    train = small_synth.train_metadata.parent
    table = pd.read_csv(small_synth.train_metadata)
    table = table.groupby(table["seq_id"].str.split("#").str[0]).head(6)  # 6 frames of each season: fast
    meta = tmp_path / "train_metadata.csv"
    table.to_csv(meta, index=False)
    n = len(table)
    assert table["seq_id"].str.split("#").str[0].nunique() == 4
    assert (train / "SnapshotSerengeti_S01_v2_0").is_dir() and not (train / "S1").exists()
    results = tmp_path / "train.json"
    assert main(["detect", "--model", str(random_detector), "--metadata", str(meta), "--image-root", str(train),
                 "--out", str(results), "--threshold", "0.001", "--device", "cpu", "--workers", "1",
                 "--no-progress"]) == 0  # fmt: skip
    assert f"{n} images, 0 failed to load" in capsys.readouterr().out
    data = json.loads(results.read_text())
    assert len(data["images"]) == n and not [im for im in data["images"] if im.get("failure")]
    boxes = sum(1 for im in data["images"] for d in im["detections"] if d["conf"] >= 0.001 and d["category"] == "1")
    assert boxes > 0
    assert main(["crops", "--detections", str(results), "--images", str(train), "--metadata", str(meta),
                 "--threshold", "0.001", "--out", str(tmp_path / "crops")]) == 0  # fmt: skip
    crops = int(capsys.readouterr().out.split()[0])
    assert 0 < crops <= boxes  # (at most MAX_CROPS_PER_FRAME per frame: random weights give many boxes)
    preds = tmp_path / "preds.csv"
    assert main(["classify", "--model", str(make_random_classifier(tmp_path)), "--detections", str(results), "--images",
                 str(train), "--metadata", str(meta), "--threshold", "0.001", "--out", str(preds), "--device", "cpu",
                 "--workers", "1", "--no-progress"]) == 0  # fmt: skip
    table = pd.read_csv(preds)
    assert len(table) > 0 and not table.get("failure", pd.Series(dtype=str)).fillna("").astype(bool).any()
    site = tmp_path / "site"
    assert main(["review", "--results", str(results), "--images", str(train), "--metadata", str(meta), "--out",
                 str(site), "--no-progress"]) == 0  # fmt: skip
    review = json.loads((site / "data.js").read_text().removeprefix("window.REVIEW = ").rstrip().rstrip(";"))
    frames = [f for s in review["sequences"].values() for f in s["frames"]]
    assert len(frames) == n and review["failures"] == [] and all(f.get("thumb") for f in frames)
    assert set(review["sequences"]) == set(pd.read_csv(meta)["seq_id"])  # each frame in its sequence (the metadata)
