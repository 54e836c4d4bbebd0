"""Detector fixtures: a random-weight tiny YOLO (for plumbing tests) and its builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.model import DetectorSpec, offline_ultralytics, write_spec
from detector.train import architecture


def make_random_detector(folder: Path, input_size: int = 256) -> Path:
    """An untrained yolo11-tiny checkpoint carrying a spec: deterministic boxes, no training time."""
    import torch

    torch.manual_seed(0)
    YOLO = offline_ultralytics()
    model = YOLO(architecture("yolo11-tiny", folder))
    path = folder / "random.pt"
    model.save(path)
    write_spec(path, DetectorSpec(name="random-tiny", input_size=input_size, output_threshold=0.3))
    return path


@pytest.fixture(scope="session")
def random_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_detector(tmp_path_factory.mktemp("random-detector"))
