"""Training mechanics on tiny data: kill -9 then --resume continues; unreadable images are skipped and counted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from classifier.data import csv_samples
from classifier.train import ClassifierTrainConfig, recompute_bn_stats, split_groups, train


def _csv(tmp_path, n_per_class=12, bad=()):
    rng = np.random.default_rng(0)
    rows = []
    colours = {"zebra": (230, 230, 230), "buffalo": (20, 20, 20), "impala": (170, 100, 50)}
    for label, colour in colours.items():
        for i in range(n_per_class):
            img = np.clip(np.array(colour) + rng.normal(0, 20, (48, 48, 3)), 0, 255).astype(np.uint8)
            name = f"{label}_{i}.jpg"
            Image.fromarray(img).save(tmp_path / name)
            rows.append({"path": name, "label": label, "group_id": f"{label}-{i // 3}"})
    for name in bad:
        (tmp_path / name).write_bytes(b"" if "zero" in name else b"junk")
        rows.append({"path": name, "label": "zebra", "group_id": name})
    pd.DataFrame(rows).to_csv(tmp_path / "images.csv", index=False)
    return tmp_path / "images.csv"


def test_csv_training_skips_bad_images(tmp_path, caplog):
    csv = _csv(tmp_path, bad=("zero.jpg", "junk.jpg", "missing.jpg"))
    (tmp_path / "missing.jpg").unlink()
    samples = csv_samples(csv)
    cfg = ClassifierTrainConfig(input_size=32, epochs=2, batch_size=8, pretrained=False, device="cpu", lr=0.01)
    result = train(samples, tmp_path / "m.pt", cfg, cache_dir=tmp_path / "cache")
    assert result.spec.training["unreadable"] == 3
    assert "3 of 39 training images could not be read" in caplog.text
    assert len(result.history) == 2 and result.spec.classes[0] == "aardvark"


def test_batch_norm_statistics_are_recomputed_from_the_images():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4, momentum=0.01), torch.nn.Dropout())
    images = [(torch.randn(3, 5, 5) * 3 + 2, None) for _ in range(10)]
    rng = torch.get_rng_state()
    assert recompute_bn_stats(model, images, torch.device("cpu"), 4) == 8  # two whole batches of 4
    with torch.no_grad():
        features = model[0](torch.stack([x for x, _ in images[:8]]))
    assert torch.allclose(model[1].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.01 and model.training and torch.equal(torch.get_rng_state(), rng)
    assert recompute_bn_stats(torch.nn.Linear(2, 2), images, torch.device("cpu"), 4) == 0  # no batch norm


def test_group_split_keeps_groups_together():
    groups = [f"g{i // 3}" for i in range(30)]
    mask = split_groups(groups, ClassifierTrainConfig())
    for g in set(groups):
        assert len({m for m, gg in zip(mask, groups) if gg == g}) == 1
    assert 0 < mask.sum() < 30
    seasons = ["S1", "S2", "S10", "S2"]
    assert split_groups(seasons, ClassifierTrainConfig()).tolist() == [False, False, True, False]


SCRIPT = """
import sys
from pathlib import Path
from classifier.data import csv_samples
from classifier.train import ClassifierTrainConfig, train
cfg = ClassifierTrainConfig(input_size=32, epochs=6, batch_size=4, pretrained=False, device="cpu", lr=0.01)
r = train(csv_samples(Path(sys.argv[1])), Path(sys.argv[2]), cfg, cache_dir=Path(sys.argv[3]), resume=len(sys.argv) > 4)
print("EPOCHS", [h["epoch"] for h in r.history])
"""


def wait_for_epoch(last: Path, proc: subprocess.Popen, *, timeout: float) -> None:
    """Until the resumable checkpoint ``last`` holds a finished epoch (or ``proc`` ends, or time runs out)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=True)["epoch"] >= 1:
            return
        time.sleep(0.1)


def test_kill_9_then_resume_continues(tmp_path):
    csv = _csv(tmp_path, n_per_class=40)
    out, cache = tmp_path / "m.pt", tmp_path / "cache"
    last = tmp_path / "m.last.pt"
    args = [sys.executable, "-c", SCRIPT, str(csv), str(out), str(cache)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wait_for_epoch(last, proc, timeout=240)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = torch.load(last, weights_only=True)
    done = state["epoch"] + 1
    assert 2 <= done < 6, "killed mid-training, after at least two epochs"
    before = [h["train_loss"] for h in state["history"]]
    run = subprocess.run(args + ["--resume"], capture_output=True, text=True, check=True)
    assert "EPOCHS [1, 2, 3, 4, 5, 6]" in run.stdout
    after = torch.load(last, weights_only=True)
    assert [h["train_loss"] for h in after["history"]][:done] == pytest.approx(before)  # kept, not retrained
    assert after["epoch"] == 5
