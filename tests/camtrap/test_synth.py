import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from camtrap.dataset import read_labels, read_test, read_train
from camtrap.lila import read_lila_boxes, read_lila_sequences
from camtrap.synth import SynthConfig, generate
from camtrap.synth.draw import strip_height


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def test_layout_and_round_trip(small_synth):
    out = small_synth
    train = read_train(out.train_metadata, out.train_labels, out.train_image_root)
    test, fmt = read_test(out.test_data)
    test_labels = read_labels(out.test_labels)
    assert len(train.seq_ids) + len(fmt) == 200
    assert list(fmt.index) == list(test_labels.index)
    assert set(test.frames["seq_id"]) == set(fmt.index)
    assert sorted(train.frames["season"].unique()) == [1, 2, 3, 4] and set(test.frames["season"]) == {5}
    # every image the tables name exists, in the competition's per-season folders
    paths = [r.path for r in train.frame_refs() + test.frame_refs()]
    assert all(p.is_file() for p in paths)
    assert "SnapshotSerengeti_S01_v2_0/S1/" in str(paths[0])
    img = cv2.imread(str(paths[0]))
    assert img.shape == (384, 512, 3)
    # black info strip at the bottom
    assert img[-strip_height(384) + 2 :, :, :].mean() < 40


def test_class_balance(small_synth):
    out = small_synth
    labels = np.concatenate([read_labels(out.train_labels).to_numpy(), read_labels(out.test_labels).to_numpy()])
    empty = labels[:, 15].mean()
    assert 0.70 <= empty <= 0.76
    species_per_seq = labels.sum(axis=1) - labels[:, 15]
    assert (species_per_seq == 2).sum() == 2  # 1% of 200
    assert ((labels[:, 15] == 1) == (species_per_seq == 0)).all()
    counts = labels.sum(axis=0)
    assert counts.argmax() == 15  # empty dominates; then the skewed species


def test_boxes_match_labels(small_synth):
    out = small_synth
    boxes = read_lila_boxes(out.boxes_json)
    raw = json.loads(out.boxes_json.read_text())
    assert {c["name"] for c in raw["categories"]} == {"empty", "animal", "person", "group"}
    assert boxes[["x_min_norm", "y_min_norm"]].min().min() >= 0
    assert ((boxes["x_min_norm"] + boxes["width_norm"]) <= 1.0 + 1e-9).all()
    train = read_train(out.train_metadata, out.train_labels, out.train_image_root)
    boxed = set(boxes["file_name"])
    frames = train.frames.merge(train.labels["empty"], left_on="seq_id", right_index=True)
    # no box on any frame of an empty sequence; every animal sequence has a box on some frame
    assert not (frames[frames["empty"] == 1]["file_name"].isin(boxed)).any()
    animal = frames[frames["empty"] == 0]
    assert animal.groupby("seq_id")["file_name"].apply(lambda f: f.isin(boxed).any()).all()


def test_lila_adapter_matches_competition_tables(small_synth):
    out = small_synth
    lila = read_lila_sequences(out.lila_json, out.root)
    train = read_train(out.train_metadata, out.train_labels, out.train_image_root)
    both = lila.labels.loc[train.labels.index]
    assert (both.to_numpy() == train.labels.to_numpy()).all()
    seq_of_file = lila.frames.set_index("file_name")["seq_id"]
    assert seq_of_file.loc[train.frames["file_name"]].tolist() == train.frames["seq_id"].tolist()


def test_same_seed_same_files(tmp_path):
    cfg = SynthConfig(sequences=24, seed=3, size=(256, 192))
    a = _digest(generate(cfg, tmp_path / "a").root)
    b = _digest(generate(cfg, tmp_path / "b", workers=2).root)
    c = _digest(generate(SynthConfig(sequences=24, seed=4, size=(256, 192)), tmp_path / "c").root)
    assert a == b
    assert a != c


def test_day_and_night_frames(small_synth):
    test, _ = read_test(small_synth.test_data)
    train = read_train(small_synth.train_metadata, small_synth.train_labels, small_synth.train_image_root)
    kinds = set()
    for path in [r.path for r in train.frame_refs() + test.frame_refs()][::7]:
        img = cv2.imread(str(path)).astype(int)
        gray = np.abs(img[..., 0] - img[..., 2]).mean() < 3
        kinds.add("night" if gray else "day")
    assert kinds == {"day", "night"}
