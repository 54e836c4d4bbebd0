"""Ablations (four rows, reproducible) and evaluation on labelled photos, with the session's trained models."""

import json
import shutil

import pandas as pd
import pytest

from camtrap.labels import COLUMNS
from hakuna.ablate import roc_auc, run_ablation
from hakuna.cli import main
from tests.conftest import shared_path

pytestmark = pytest.mark.slow


def test_roc_auc_known_values():
    assert roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5
    assert roc_auc([1, 0, 1, 0], [0.1, 0.9, 0.2, 0.8]) == 0.0


@pytest.fixture(scope="module")
def models(trained_detector, trained_classifier, fitted_fusion, one_stage_classifier, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ablation-models")
    for src, name in ((trained_detector, "detector.pt"), (trained_classifier, "classifier.pt"),
                      (fitted_fusion, "fusion.json"), (one_stage_classifier, "one_stage.pt")):  # fmt: skip
        shutil.copyfile(src, folder / name)
    return folder


def test_ablation_table_and_rerun(pipeline_synth, models, tmp_path):
    first = run_ablation(pipeline_synth.root, models, tmp_path / "a")
    assert [r.name for r in first] == ["one_stage_first_frame", "one_stage_all_frames", "two_stage",
                                       "two_stage_uncalibrated"]  # fmt: skip
    records = json.loads((tmp_path / "a" / "ablation.json").read_text())
    assert len(records) == 4 and {"score", "empty_auc", "images_per_s", "per_class"} <= set(records[0])
    assert all(len(r["per_class"]) == 54 for r in records)
    report = (tmp_path / "a" / "report.md").read_text()
    assert report.count("\n| ") == 5 and "per_class_loss.png" in report and "empty_calibration.png" in report
    assert (tmp_path / "a" / "per_class_loss.png").stat().st_size > 5000
    config = json.loads((tmp_path / "a" / "ablation_config.json").read_text())
    assert set(config["models"]) == {"detector.pt", "classifier.pt", "fusion.json", "one_stage.pt"}
    by_name = {r.name: r for r in first}
    assert by_name["two_stage"].score < by_name["two_stage_uncalibrated"].score
    second = run_ablation(pipeline_synth.root, models, tmp_path / "b")
    for a, b in zip(first, second):
        assert (a.score, a.empty_auc, a.per_class) == (b.score, b.empty_auc, b.per_class)


def test_evaluate_on_real_photos(models, capsys):
    manifest = shared_path("data", "real-dev", "manifest.csv")
    assert main(["evaluate", "--images-csv", str(manifest), "--root", str(manifest.parent / "images"),
                 "--detector", str(models / "detector.pt"), "--classifier", str(models / "classifier.pt"),
                 "--fusion", str(models / "fusion.json"), "--device", "cpu", "--workers", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    # The manifest has no seq_id: its group_id is the sequence (4 groups of 2-4 photos), else each photo its own.
    photos = pd.read_csv(manifest)
    photos = photos[photos["label"].isin(COLUMNS)]
    sequences = photos["group_id"].nunique() + photos["group_id"].isna().sum()
    assert sequences == 121 and first.startswith(f"{sequences} labelled sequences: top-1 ") and "metric" in first
