"""A classifier of your own classes (outside the 54) through folder mode, fit-fusion on a path,label CSV, and the
refusal of a fusion file fitted for other models."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import hakuna.pipeline as pipeline
from camtrap.labels import COLUMNS
from camtrap.results import Detection
from fusion import FusionMismatchError, FusionModel
from hakuna.bindings import check_fusion, fingerprints, output_columns
from hakuna.cli import main
from tests.conftest import make_random_classifier

CLASSES = ("bicycle", "other:human", "otter")
COLORS = {"otter": (200, 40, 40), "other:human": (40, 200, 40), "bicycle": (40, 40, 200)}


class _FrameBox:
    """Stands in for ``detector.predict.FrameDetector``: one animal box, its crop inside the frame."""

    def __init__(self, detector, threshold=None) -> None:
        self.letterbox, self.device = detector.spec.letterbox, "cpu"

    def __call__(self, batch, frames):
        return [(Detection("animal", 0.9, (0.1, 0.1, 0.8, 0.8)),) for _ in frames]


def _photos(root, per_class=6):
    """Square colour photos per class and a path,label,group_id CSV of their absolute paths."""
    rng = np.random.default_rng(0)
    rows = []
    for label, rgb in COLORS.items():
        for i in range(per_class):
            path = root / label.replace(":", "_") / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            img = np.clip(rng.normal(rgb, 30, (96, 96, 3)), 0, 255).astype(np.uint8)  # square: its crop ~ itself
            Image.fromarray(img).save(path)
            rows.append({"path": str(path.resolve()), "label": label, "group_id": f"{label}{i % 3}"})
    csv = root / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def _card(photos, card):
    """A camera folder of three photos (one of each class), one sequence each (no EXIF; times from mtime)."""
    for k, label in enumerate(CLASSES):
        dst = card / "cam" / f"{k}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((photos / label.replace(":", "_") / "0.jpg").read_bytes())
        t = 1_700_000_000 + 3600 * k
        os.utime(dst, (t, t))


def _folder_run(tmp_path, detector, clf, fusion=None):
    args = ["predict", "--images", str(tmp_path / "card"), "--recursive", "--detector", str(detector),
            "--classifier", str(clf), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]  # fmt: skip
    return main(args + (["--fusion", str(fusion)] if fusion else []))


def test_own_classes_fit_fusion_and_folder_mode(tmp_path, monkeypatch, random_detector, capsys):
    monkeypatch.setattr(pipeline, "FrameDetector", _FrameBox)
    csv = _photos(tmp_path / "photos")
    _card(tmp_path / "photos", tmp_path / "card")
    clf = make_random_classifier(tmp_path, CLASSES)
    assert main(["fit-fusion", "--images-csv", str(csv), "--detector", str(random_detector), "--classifier", str(clf),
                 "--out", str(tmp_path / "fusion.json"), "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    raw = json.loads((tmp_path / "fusion.json").read_text())
    assert raw["classes"] == [*CLASSES, "empty"] and set(raw["fitted_for"]) == {"classifier", "detector"}

    assert _folder_run(tmp_path, random_detector, clf, tmp_path / "fusion.json") == 0
    assert "fusion: fitted on 9 sequences (" in capsys.readouterr().out  # no seq_id: each group_id is one sequence
    seqs = pd.read_csv(tmp_path / "out" / "sequences.csv", keep_default_na=False)
    assert [c for c in seqs.columns if c.startswith("p_")] == [f"p_{c}" for c in (*CLASSES, "empty")]
    assert len(seqs) == 3 and set(";".join(seqs["species"]).split(";")) - {""} <= set(CLASSES)
    images = pd.read_csv(tmp_path / "out" / "images.csv", keep_default_na=False)
    assert set(images["top_class"]) <= set(CLASSES) and (images["top_class"] != "").all()
    site = (tmp_path / "out" / "review" / "data.js").read_text()
    review = json.loads(site[site.index("{"): site.rindex("}") + 1])
    assert set(CLASSES) <= set(review["labels"]) and len(review["sequences"]) == 3

    (tmp_path / "other").mkdir()
    other = make_random_classifier(tmp_path / "other")
    assert _folder_run(tmp_path, random_detector, other, tmp_path / "fusion.json") == 2  # 53 species: refused
    assert "not the classifier's" in capsys.readouterr().err


def test_fusion_for_another_model_is_refused(tmp_path, random_detector):
    from classifier.predict import load as load_classifier
    from detector.model import load as load_detector

    detector = load_detector(random_detector, device="cpu")
    clf = load_classifier(make_random_classifier(tmp_path, CLASSES), device="cpu")
    cols = output_columns(CLASSES)
    assert cols == (*CLASSES, "empty") and output_columns(("zebra", "empty")) == COLUMNS
    mine = fingerprints(detector, clf)
    fusion = FusionModel.default_for(cols)
    assert check_fusion(FusionModel(priors=fusion.priors, classes=cols, fitted_for=mine), detector, clf)
    for role in ("classifier", "detector"):
        stranger = FusionModel(priors=fusion.priors, classes=cols, fitted_for={**mine, role: "0123456789abcdef"})
        with pytest.raises(FusionMismatchError, match=f"another {role}"):
            check_fusion(stranger, detector, clf)


@pytest.mark.slow
def test_classifier_trained_on_own_classes_runs_in_folder_mode(tmp_path, monkeypatch, random_detector):
    """The acceptance path: train on a CSV of absolute paths with classes outside the 54, then folder mode."""
    csv = _photos(tmp_path / "photos")
    _card(tmp_path / "photos", tmp_path / "card")
    clf = tmp_path / "own.pt"
    assert main(["classifier", "train", "--images-csv", str(csv), "--out", str(clf), "--recipe", "fewshot",
                 "--fewshot-backbones", "efficientnet_lite0", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    monkeypatch.setattr(pipeline, "FrameDetector", _FrameBox)
    assert _folder_run(tmp_path, random_detector, clf) == 0
    seqs = pd.read_csv(tmp_path / "out" / "sequences.csv", keep_default_na=False).set_index("files")
    assert [c for c in seqs.columns if c.startswith("p_")] == [f"p_{c}" for c in (*CLASSES, "empty")]
    assert {f: seqs.loc[f"cam/{k}.jpg", "species"] for k, f in enumerate(CLASSES)} == {c: c for c in CLASSES}
    site = (tmp_path / "out" / "review" / "data.js").read_text()
    assert all(f'"{c}"' in site for c in CLASSES)
