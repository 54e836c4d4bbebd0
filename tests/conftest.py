"""Shared fixtures: small synthetic datasets (made once per session) and the optional ../shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from camtrap.synth import SynthConfig, generate

SHARED = Path(os.environ.get("HAKUNA_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test (with the reason) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (set HAKUNA_SHARED to the shared/ folder to run this test)")
    return path


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory: pytest.TempPathFactory):
    """200 sequences at 512x384, seed 0 (the issue's acceptance dataset)."""
    out = tmp_path_factory.mktemp("synth-small")
    return generate(SynthConfig(sequences=200, seed=0, size=(512, 384)), out, workers=2)


@pytest.fixture(scope="session")
def pipeline_synth(tmp_path_factory: pytest.TempPathFactory):
    """The dataset the trained-model tests share: 400 sequences at 512x384, seed 11."""
    out = tmp_path_factory.mktemp("synth-pipeline")
    return generate(SynthConfig(sequences=400, seed=11, size=(512, 384)), out, workers=2)


@pytest.fixture(scope="session")
def trained_detector(pipeline_synth, tmp_path_factory: pytest.TempPathFactory):
    """A yolo11-tiny trained by `hakuna detector train` on ``pipeline_synth`` (a few CPU minutes, once)."""
    from submission.cli import main

    folder = tmp_path_factory.mktemp("detector")
    model = folder / "detector.pt"
    assert main(["detector", "train", "--data", str(pipeline_synth.root), "--out", str(model),
                 "--epochs", str(DETECTOR_TEST_EPOCHS), "--imgsz", "256", "--device", "cpu"]) == 0  # fmt: skip
    return model


DETECTOR_TEST_EPOCHS = 40
