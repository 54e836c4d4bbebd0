"""Building ``submission.zip`` (code + ONNX weights + fusion file, ``main.py`` at the root) and running one
exactly as the competition's container does: in a fresh folder, ``data/`` beside it, no network."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from camtrap.fileio import atomic_write
from classifier.onnx import export_onnx as export_classifier
from detector.model import export_onnx as export_detector
from fusion import FusionModel

__all__ = ["build_package", "run_submission", "RUNTIME_PACKAGES"]

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("camtrap", "detector", "classifier", "fusion", "submission")
_SKIP = ("camtrap/synth/",)  # not needed at run time
MAIN = '''"""Hakuna submission: python main.py (reads ./data, writes ./submission.csv)."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "code"))

if __name__ == "__main__":  # image-decoding workers are spawned and re-import this file: run only once
    from submission.runner import run_packaged

    sys.exit(run_packaged(HERE))
'''


def _onnx(model: Path, folder: Path, export) -> Path:
    if model.suffix == ".onnx":
        return model
    return export(model, folder / f"{model.stem}.onnx")


def build_package(detector: Path, classifier: Path, fusion: Path, out: Path, *, pipeline: dict | None = None) -> Path:
    """Write the zip; .pt models are exported to ONNX first.  Returns ``out``."""
    FusionModel.load(fusion)  # refuse a broken fusion file now, not in the container
    with tempfile.TemporaryDirectory() as tmp:
        det = _onnx(Path(detector), Path(tmp), export_detector)
        clf = _onnx(Path(classifier), Path(tmp), export_classifier)
        manifest = {"version": "0.1.0", "detector": Path(detector).name, "classifier": Path(classifier).name,
                    "pipeline": pipeline or {}}  # fmt: skip

        def write(f) -> None:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("main.py", MAIN)
                for package in RUNTIME_PACKAGES:
                    for path in sorted((ROOT / package).rglob("*.py")):
                        rel = path.relative_to(ROOT).as_posix()
                        if not rel.startswith(_SKIP):
                            zf.write(path, f"code/{rel}")
                zf.write(det, "assets/detector.onnx")
                zf.write(clf, "assets/classifier.onnx")
                zf.write(fusion, "assets/fusion.json")
                zf.writestr("assets/manifest.json", json.dumps(manifest, indent=1))

        atomic_write(out, write, binary=True)
    log.info("package -> %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out


def _sandbox(cmd: list[str], offline: bool) -> list[str]:
    """Prefix ``cmd`` with a network-less namespace when the system allows it."""
    if not offline:
        return cmd
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n", *cmd]
    log.warning("cannot create a network namespace here (needs root or user namespaces); running with network")
    return cmd


def run_submission(zip_path: Path, data_dir: Path, out_csv: Path, *, offline: bool = True,
                   time_budget_s: float | None = None, python: str = sys.executable) -> Path:
    """Unzip into a fresh folder, link ``data`` to ``data_dir``, run ``python main.py`` there, copy the CSV out."""
    with tempfile.TemporaryDirectory(prefix="hakuna-run-") as tmp:
        work = Path(tmp)
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(work)
        (work / "data").symlink_to(Path(data_dir).resolve(), target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HAKUNA_", "PYTHONPATH"))}
        env["PYTHONNOUSERSITE"] = "1"
        if time_budget_s is not None:
            env["HAKUNA_TIME_BUDGET_S"] = str(time_budget_s)
        proc = subprocess.run(_sandbox([python, "main.py"], offline), cwd=work, env=env, text=True,
                              capture_output=True)  # fmt: skip
        (Path(out_csv).parent).mkdir(parents=True, exist_ok=True)
        log_path = Path(out_csv).with_suffix(".log")
        log_path.write_text(proc.stdout + proc.stderr)
        produced = work / "submission.csv"
        if proc.returncode != 0 or not produced.exists():
            raise RuntimeError(f"main.py failed (exit {proc.returncode}); its log is in {log_path}:\n"
                               f"{(proc.stdout + proc.stderr)[-2000:]}")  # fmt: skip
        shutil.copyfile(produced, out_csv)
    return Path(out_csv)


