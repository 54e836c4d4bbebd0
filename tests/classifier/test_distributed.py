"""Distributed (DDP) classifier training on CPUs with gloo: the balanced sampler split over processes, two processes
learning as well as one, and a killed run resumed."""

import os
import signal
import subprocess
import time

import pytest
import torch

from classifier.distributed import BalancedDistributedSampler, Dist
from tests.classifier.test_training import _csv, wait_for_epoch
from tests.conftest import hakuna_command


def test_sampler_shares_one_draw_between_processes():
    weights = torch.rand(101).numpy()
    one = list(BalancedDistributedSampler(weights, 101, Dist(0, 1), seed=3))
    a, b = BalancedDistributedSampler(weights, 101, Dist(0, 2), 3), BalancedDistributedSampler(weights, 101,
                                                                                                Dist(1, 2), 3)
    assert len(a) == len(b) == 51
    merged = [x for pair in zip(a, b) for x in pair]
    assert merged[:101] == one  # the same draw, dealt out round-robin (one index repeated to even the shares)
    a.set_epoch(1)
    assert list(a) != merged[::2]  # a new draw every epoch
    plain = BalancedDistributedSampler(None, 10, Dist(0, 1), 0)
    assert sorted(plain) == list(range(10))  # no weights: a shuffle of every sample


def _train_args(csv, out, *extra):
    return ["classifier", "train", "--images-csv", str(csv), "--out", str(out), "--recipe", "full", "--input-size",
            "64", "--batch-size", "8", "--lr", "0.002", "--device", "cpu", "--no-progress", *extra]  # fmt: skip


@pytest.mark.slow
def test_two_processes_learn_as_well_as_one(tmp_path):
    from classifier.predict import read_checkpoint
    from hakuna.cli import main

    csv = _csv(tmp_path, n_per_class=60)
    assert main(_train_args(csv, tmp_path / "one.pt", "--epochs", "4")) == 0
    assert main(_train_args(csv, tmp_path / "two.pt", "--epochs", "4", "--nproc-per-node", "2")) == 0
    one, two = read_checkpoint(tmp_path / "one.pt"), read_checkpoint(tmp_path / "two.pt")
    top_one, top_two = one["history"][-1]["val_top1"], two["history"][-1]["val_top1"]
    last = [torch.load(tmp_path / f"{n}.last.pt", weights_only=True)["history"] for n in ("one", "two")]
    final = [h[-1]["val_top1"] for h in last]
    print(f"validation top-1: one process {top_one:.3f} (final {final[0]:.3f}), two {top_two:.3f} ({final[1]:.3f})")
    # Three colours, 36 validation images (one image = 0.028).  Before the batch-norm statistics were recomputed
    # for evaluation (classifier.train.recompute_bn_stats), the final epoch fell to 0.64 (one process) and 0.75
    # (two) on some seeds; now the best epochs of seeds 0-4 are 0.94-1.0 and the final ones 0.89-1.0.
    assert top_one >= 0.9 and top_two >= 0.9 and abs(top_one - top_two) <= 0.1
    assert min(final) >= 0.85
    assert '"processes": 2' in two["spec"] and [len(h) for h in last] == [4, 4]


def _stat(pid: int | str) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        stat = _stat(entry) if entry.isdigit() else None
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_killed_distributed_run_resumes(tmp_path):
    csv = _csv(tmp_path, n_per_class=40)
    out, last = tmp_path / "m.pt", tmp_path / "m.last.pt"
    args = hakuna_command(*_train_args(csv, out, "--epochs", "6", "--nproc-per-node", "2"))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_epoch(last, proc, timeout=300)
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    assert workers and not [w for w in workers if _alive(w)]  # the training processes died with their parent
    state = torch.load(last, weights_only=True)
    done = state["epoch"] + 1
    assert 2 <= done < 6
    before = [h["train_loss"] for h in state["history"]]
    subprocess.run(args + ["--resume"], check=True, capture_output=True)
    after = torch.load(last, weights_only=True)
    assert [h["epoch"] for h in after["history"]] == [1, 2, 3, 4, 5, 6]
    assert [h["train_loss"] for h in after["history"]][:done] == pytest.approx(before)
