"""LP-FT, the few-shot recipe's optional fine-tuning: layer-wise learning rates, a training loss that falls, the
chosen epochs applied before the checkpoint is written, and the nested ``fewshot-ft`` row of ``classifier cv``."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from camtrap.labels import SPECIES
from classifier.config import ClassifierTrainConfig
from classifier.data import csv_samples
from classifier.finetune import layerwise_groups
from classifier.probe import ProbeClassifier
from hakuna.cli import main
from tests.classifier.test_fewshot import KINDS, LITE0, _csv


def test_layerwise_groups_cover_every_parameter_once():
    model = ProbeClassifier(("efficientnet_lite0",), SPECIES[:3], input_size=224)
    groups = layerwise_groups(model, lr=1e-4, decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    prior = {id(p) for p in model.imagenet.parameters()}  # the ImageNet heads behind the prior stay as they are
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()} - prior
    head, body = groups[0], groups[1:]
    assert head["lr"] == 1e-4 and {id(p) for p in head["params"]} >= {id(model.alpha), id(model.head.weight)}
    rates = [g["lr"] for g in body]
    assert rates == sorted(rates) and rates[-1] == 1e-4 and rates[0] == pytest.approx(1e-4 * 0.5 ** (len(body) - 1))
    assert len(body) > 10  # the blocks themselves, not one container


@pytest.mark.slow
def test_chosen_epochs_are_applied_before_the_checkpoint_is_written(tmp_path, monkeypatch):
    import classifier.finetune as finetune_module
    from classifier.predict import read_checkpoint

    real = finetune_module.choose_epochs
    calls = []

    def one_epoch(*args, **kwargs):
        epochs, oof = real(*args, **kwargs)
        calls.append(epochs)
        return 1, oof

    monkeypatch.setattr(finetune_module, "choose_epochs", one_epoch)
    samples = csv_samples(_csv(tmp_path / "train"))
    cfg = ClassifierTrainConfig(recipe="fewshot", device="cpu",
                                fewshot=dataclasses.replace(LITE0, finetune_epochs=2, finetune_lr=1e-4))  # fmt: skip
    from classifier.train import train

    result = train(samples, tmp_path / "m.pt", cfg, cache_dir=tmp_path / "cache")
    assert calls and 0 <= calls[0] <= 2 and result.spec.training["finetune_epochs"] == 1
    assert result.spec.training["cv_top1"] >= 0.9
    tuned = read_checkpoint(result.model_path)["model"]
    fresh = ProbeClassifier(("efficientnet_lite0",), result.spec.classes, input_size=224, pretrained=True)
    moved = [k for k, v in fresh.state_dict().items() if k.startswith("bodies.") and v.is_floating_point()
             and not torch.equal(v, tuned[k])]  # fmt: skip
    assert len(moved) > 10  # the fine-tuned backbone travels in the checkpoint


@pytest.mark.slow
def test_finetune_lowers_the_training_loss(tmp_path):
    from classifier.fewshot import Setting, embeddings, finetune_model, setting_pixels
    from classifier.probe import fit_head, head_logits, probs_of

    samples = csv_samples(_csv(tmp_path / "train", per_class=4))
    setting = Setting(("efficientnet_lite0",), ("stretch",), 0.0)
    embedded, ok = embeddings(samples, [setting], tmp_path / "cache")
    emb = embedded[setting.key]
    index, targets = np.flatnonzero(ok), samples.targets()

    def loss(logits: np.ndarray) -> float:
        return float(-(targets[index] * np.log(probs_of(logits, multilabel=False).clip(1e-12))).sum(axis=1).mean())

    fit = fit_head(emb, targets, index, l2=100.0)  # a weak head leaves room to learn
    model = fit.load_into(ProbeClassifier(setting.backbones, samples.classes, input_size=224, pretrained=True, views=1))
    cfg = dataclasses.replace(LITE0, finetune_lr=1e-4, finetune_layer_decay=0.9)
    pixels = setting_pixels(samples, setting, tmp_path / "cache")
    after = finetune_model(model, samples, index, setting, pixels, 3, cfg, eval_index=index)
    assert not model.training and loss(after) < 0.8 * loss(head_logits(fit, emb, index))


@pytest.mark.slow
def test_cv_reports_the_nested_fewshot_ft_row(tmp_path, capsys):
    out = tmp_path / "cv.json"
    assert main(["classifier", "cv", "--images-csv", str(_csv(tmp_path / "photos", per_class=4)), "--folds", "3",
                 "--recipes", "fewshot", "fewshot-ft", "--fewshot-backbones", "efficientnet_lite0",
                 "--fewshot-finetune-epochs", "1", "--cache-dir", str(tmp_path / "cache"), "--json", str(out),
                 "--device", "cpu"]) == 0  # fmt: skip
    assert "fewshot-ft" in capsys.readouterr().out
    figures = {r["recipe"]: r for r in json.loads(out.read_text())}
    folds = figures["fewshot-ft"]["notes"]["folds"]
    assert len(folds) == 3 and all(f["finetune_epochs"] in (0, 1) for f in folds)
    assert figures["fewshot-ft"]["top1"] >= 0.8 and set(figures["fewshot-ft"]["per_class_recall"]) == set(KINDS)
