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
