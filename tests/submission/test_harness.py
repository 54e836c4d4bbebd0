"""The local competition harness fails closed: it refuses to run unconfined unless asked, checks the data folder
afterwards even then, and fails loudly when a run fell back to class priors.  The sandbox itself is tested
with hostile main.py files in test_sandbox.py."""

import json
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from camtrap.labels import COLUMNS
from fusion import FusionModel
from submission.harness import HarnessError, SandboxUnavailable, run_submission
from submission.package import MAIN, write_code


def _data(folder):
    folder.mkdir(parents=True)
    ids = ["SER_S9#A#1#1", "SER_S9#A#1#2"]
    for i in range(len(ids)):
        Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(folder / f"img{i}.jpg")
    pd.DataFrame({"seq_id": ids, "file_name": ["img0.jpg", "img1.jpg"], "datetime": ""}).to_csv(
        folder / "test_metadata.csv", index=False)  # fmt: skip
    fmt = pd.DataFrame(0.0, index=pd.Index(ids, name="seq_id"), columns=list(COLUMNS))
    fmt.to_csv(folder / "submission_format.csv")
    return folder


def _zip(path, main: str, assets: dict | None = None, code: bool = False):
    with zipfile.ZipFile(path, "w") as zf:
        if code:  # the real main.py and runtime code
            assert main == MAIN
            write_code(zf)
        else:
            zf.writestr("main.py", main)
        for name, data in (assets or {}).items():
            zf.writestr(f"assets/{name}", data)
    return path


def test_refuses_to_run_unconfined_unless_asked(tmp_path, monkeypatch):
    data = _data(tmp_path / "data")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no bwrap to be found
    main = "from pathlib import Path; Path('data/evil.txt').write_text('x'); import shutil; " \
           "shutil.copyfile('data/submission_format.csv', 'submission.csv')"  # fmt: skip
    zip_path = _zip(tmp_path / "writer.zip", main)
    with pytest.raises(SandboxUnavailable, match="bwrap.*not on PATH.*--allow-network"):
        run_submission(zip_path, data, tmp_path / "s.csv")
    assert not (data / "evil.txt").exists()  # nothing ran
    with pytest.raises(HarnessError, match="changed the data folder"):  # unconfined, but still checked afterwards
        run_submission(zip_path, data, tmp_path / "s.csv", allow_network=True)


def test_fallback_to_priors_is_a_failure(tmp_path):
    data = _data(tmp_path / "data")
    fusion = tmp_path / "fusion.json"
    FusionModel(animal_threshold=0.2).save(fusion)
    assets = {"detector.onnx": b"not onnx", "classifier.onnx": b"not onnx", "fusion.json": fusion.read_bytes(),
              "manifest.json": json.dumps({"version": "test", "pipeline": {}})}  # fmt: skip
    zip_path = _zip(tmp_path / "broken.zip", MAIN, assets, code=True)
    out = tmp_path / "run" / "submission.csv"
    with pytest.raises(HarnessError, match="the pipeline failed inside the run .*all 2 rows are class priors"):
        run_submission(zip_path, data, out, allow_network=shutil.which("bwrap") is None)
    assert out.exists()  # the priors are still there to look at
