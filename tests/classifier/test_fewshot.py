"""The few-shot recipe on tiny generated photos with known answers: frozen features, a head chosen by group CV,
a calibrated temperature, a checkpoint that runs like any classifier (PyTorch and ONNX)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from camtrap.frames import frame_ref
from camtrap.labels import SPECIES
from classifier.backbones import imagenet_categories
from classifier.config import ClassifierTrainConfig, FewShotConfig
from classifier.data import csv_samples
from classifier.fewshot import calibration_error, fit_temperature, group_folds
from classifier.imagenet_prior import HINTS, hint_matrix
from classifier.predict import classify_paths, load
from classifier.train import train
from hakuna.cli import main

LITE0 = FewShotConfig(backbones=("efficientnet_lite0",), folds=3)
KINDS = {"zebra": ("stripes", (240, 240, 240)), "buffalo": ("disc", (30, 30, 30)), "impala": ("square", (200, 120, 40))}


def _photo(kind: str, rng) -> Image.Image:
    shape, colour = KINDS[kind]
    img = Image.new("RGB", (160, 120), tuple(int(v) for v in rng.integers(90, 140, 3)))
    d = ImageDraw.Draw(img)
    x, y = (int(v) for v in rng.integers(20, 60, 2))
    if shape == "stripes":
        for k in range(0, 70, 10):
            d.rectangle([x + k, y, x + k + 4, y + 50], fill=colour)
    elif shape == "disc":
        d.ellipse([x, y, x + 60, y + 50], fill=colour)
    else:
        d.rectangle([x, y, x + 55, y + 45], fill=colour)
    return img


def _csv(folder, per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in KINDS:
        for i in range(per_class):
            name = f"{kind}_{i}.jpg"
            _photo(kind, rng).save(folder / name)
            rows.append({"path": name, "label": kind, "group_id": f"{kind}-{i // 2}"})
    pd.DataFrame(rows).to_csv(folder / "photos.csv", index=False)
    return folder / "photos.csv"


def test_hints_name_imagenet_classes():
    matrix = hint_matrix(SPECIES, imagenet_categories())
    hinted = {SPECIES[i] for i in np.flatnonzero(matrix.sum(axis=1))}
    assert hinted == set(HINTS) and "giraffe" not in hinted and matrix[SPECIES.index("zebra")].sum() == 1
    with pytest.raises(ValueError, match="not an ImageNet class"):
        hint_matrix(("zebra",), ["tabby"])


def test_group_folds_keep_groups_together():
    groups = [f"g{i // 3}" for i in range(30)]
    folds = group_folds(groups, 4, seed=1)
    assert all(len({f for f, g in zip(folds, groups) if g == gg}) == 1 for gg in set(groups))
    assert set(folds) == {0, 1, 2, 3}


def test_temperature_lowers_log_loss_of_overconfident_logits():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 400)
    logits = rng.normal(0, 1, (1, 400, 5))
    logits[0, np.arange(400), truth] += 1.0
    logits *= 6  # overconfident
    targets = np.eye(5)[truth]
    t = fit_temperature(logits, targets)
    p1 = np.exp(logits[0]) / np.exp(logits[0]).sum(1, keepdims=True)
    pt = np.exp(logits[0] / t) / np.exp(logits[0] / t).sum(1, keepdims=True)
    loss = lambda p: -np.log(p[np.arange(400), truth]).mean()  # noqa: E731
    assert t > 2 and loss(pt) < loss(p1) and calibration_error(pt, targets) < calibration_error(p1, targets)


@pytest.mark.slow
def test_fewshot_recipe_learns_from_a_few_photos(tmp_path):
    csv = _csv(tmp_path / "train")
    cfg = ClassifierTrainConfig(recipe="fewshot", fewshot=LITE0, device="cpu")
    result = train(csv_samples(csv), tmp_path / "m.pt", cfg, cache_dir=tmp_path / "cache")
    spec = result.spec
    assert spec.head == "probe" and spec.backbones == ("efficientnet_lite0",) and spec.temperature > 0
    assert spec.training["recipe"] == "fewshot" and spec.training["cv_top1"] >= 0.9
    assert spec.training["oof_log_loss_calibrated"] <= spec.training["oof_log_loss"] + 1e-9
    held_out = _csv(tmp_path / "new", per_class=3, seed=7)
    names = pd.read_csv(held_out)
    refs = [frame_ref(held_out.parent, p) for p in names["path"]]
    clf = load(result.model_path, device="cpu")
    preds = classify_paths(clf, refs, tta=True)
    got = [spec.classes[int(np.argmax(p.probs))] for p in preds]
    assert got == names["label"].tolist()
    from classifier.onnx import export_onnx

    onnx = load(export_onnx(result.model_path, tmp_path / "m.onnx"), device="cpu")
    onnx_probs = np.array([p.probs for p in classify_paths(onnx, refs, tta=True)])
    assert np.abs(onnx_probs - np.array([p.probs for p in preds])).max() < 1e-3


@pytest.mark.slow
def test_cv_command_prints_table_and_json(tmp_path, capsys):
    csv = _csv(tmp_path / "photos")
    out = tmp_path / "cv.json"
    assert main(["classifier", "cv", "--images-csv", str(csv), "--folds", "3", "--recipes", "linear-probe", "fewshot",
                 "--fewshot-backbones", "efficientnet_lite0", "--cache-dir", str(tmp_path / "cache"), "--json",
                 str(out), "--device", "cpu"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "recipe" in table and "linear-probe" in table and "fewshot" in table
    figures = {r["recipe"]: r for r in json.loads(out.read_text())}
    assert set(figures) == {"linear-probe", "fewshot"}
    assert figures["fewshot"]["top1"] >= 0.8 and 0 < figures["fewshot"]["metric"] < 0.1
    assert set(figures["fewshot"]["per_class_recall"]) == set(KINDS)


def test_a_class_without_a_training_photo_keeps_only_its_prior_and_a_bias():
    from classifier.probe import ProbeFit

    fit = ProbeFit(np.ones((4, 3)), np.array([1.0, 3.0, -5.0]), 0.5, np.zeros(4), np.ones(4))
    moved = fit.with_absent(np.array([True, True, False]), 2.0)
    assert np.all(moved.weight[:, 2] == 0) and moved.bias[2] == 2.0 + 2.0 and np.all(moved.weight[:, :2] == 1)
    assert moved.bias[:2].tolist() == [1.0, 3.0] and moved.alpha == 0.5
    assert fit.with_absent(np.array([True, False, True]), None) is fit
    assert fit.with_absent(np.ones(3, bool), 2.0) is fit


def test_inner_cv_chooses_a_bias_for_classes_missing_from_training_folds():
    from classifier.data import Sample, SampleSet
    from classifier.fewshot import Setting, choose
    from classifier.probe import Embeddings

    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 6)
    groups = ["c3-all" if t == 3 else f"g{i % 6}" for i, t in enumerate(truth)]  # class 3: one group only
    feats = np.eye(4)[truth] * 3 + rng.normal(0, 0.5, (24, 4))
    prior = np.full((24, 4), np.log(0.25))  # no ImageNet hint: a missing class has only its bias
    emb = Embeddings(np.stack([feats, feats]), np.stack([prior, prior]))
    samples = SampleSet(tuple(Sample(None, None, tuple(np.eye(4)[t]), g, str(i))
                              for i, (t, g) in enumerate(zip(truth, groups))), ("a", "b", "c", "d"), False, "test")
    setting = Setting(("efficientnet_lite0",), ("stretch",), 0.1)
    index = np.arange(24)
    chosen, oof = choose(samples, index, FewShotConfig(folds=3), {setting.key: emb}, settings=[setting])
    _, as_fitted = choose(samples, index, FewShotConfig(folds=3, absent_bias=()), {setting.key: emb},
                          settings=[setting])  # fmt: skip
    assert chosen.absent is not None
    p_new = np.exp(oof[0]) / np.exp(oof[0]).sum(1, keepdims=True)
    p_old = np.exp(as_fitted[0]) / np.exp(as_fitted[0]).sum(1, keepdims=True)
    held = truth == 3  # never in the training folds when held out
    assert p_new[held, 3].mean() > 2 * p_old[held, 3].mean()


def test_option_table_compares_the_absent_class_bias():
    from classifier.cv import OPTION_NAMES, option_table

    table = option_table(FewShotConfig())
    assert tuple(table) == OPTION_NAMES and table["default"].absent_bias == FewShotConfig().absent_bias != ()
    assert table["no-absent"].absent_bias == () == table["old"].absent_bias == table["lite0-old"].absent_bias
    assert table["no-absent"].view_sets == table["default"].view_sets
