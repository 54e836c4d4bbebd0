"""The offline runner inside ``submission.zip``: reads ``data/``, writes ``submission.csv``, never the network.

Layout of the zip (see :mod:`submission.package`)::

    main.py                      calls run_packaged()
    code/...                     the runtime files only (submission.package.RUNTIME_FILES; no training code)
    assets/detector.onnx, assets/classifier.onnx, assets/fusion.json, assets/manifest.json

It runs with onnxruntime (CUDA provider when there is a GPU, CPU otherwise) and the engine's PIL decoder
(one decode per frame, decoding overlapped with the models), logs progress and per-stage timing, honours
``HAKUNA_TIME_BUDGET_S`` (sequences not reached get the class priors) and, if anything goes wrong after the
data was read, still writes a complete submission of priors rather than nothing.  Beside the CSV it writes
``submission-status.json``: how many rows got the priors and why, so a harness can tell a real run from a
fallback (the competition's container ignores the file).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

__all__ = ["run_packaged", "STATUS_FILE"]

log = logging.getLogger("hakuna.runner")
STATUS_FILE = "submission-status.json"


def _budget() -> float | None:
    raw = os.environ.get("HAKUNA_TIME_BUDGET_S")
    return float(raw) if raw else None


def _write_priors(data_dir: Path, assets: Path, out_csv: Path) -> int:
    import pandas as pd

    from camtrap.fileio import atomic_write_csv
    from fusion import FusionModel

    fmt = pd.read_csv(data_dir / "submission_format.csv", index_col="seq_id")
    priors = FusionModel.load(assets / "fusion.json").priors
    atomic_write_csv(out_csv, pd.DataFrame([priors] * len(fmt), index=fmt.index, columns=fmt.columns))
    return len(fmt)


def _progress(every_s: float = 30.0):
    """A progress callback that logs the sequences done at most every ``every_s`` seconds."""
    state = {"done": 0, "last": time.perf_counter()}

    def advance(n: int) -> None:
        state["done"] += n
        if time.perf_counter() - state["last"] >= every_s:
            state["last"] = time.perf_counter()
            log.info("%d sequences done", state["done"])

    return advance


def _status(out_csv: Path, **fields) -> None:
    from camtrap.fileio import atomic_write_json

    atomic_write_json(out_csv.with_name(STATUS_FILE), fields)


def run_packaged(root: Path, data_dir: Path | None = None, out_csv: Path | None = None) -> int:
    """Run the packaged pipeline; returns the process exit status (0 whenever a submission was written)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    start = time.perf_counter()
    assets = root / "assets"
    data_dir = data_dir or Path(os.environ.get("HAKUNA_DATA", root / "data"))
    out_csv = out_csv or Path.cwd() / "submission.csv"
    manifest = json.loads((assets / "manifest.json").read_text())
    log.info("Hakuna %s: data %s -> %s", manifest.get("version", "?"), data_dir, out_csv)
    try:
        from camtrap.engine import EngineConfig
        from classifier.predict import load as load_classifier
        from detector.model import load as load_detector
        from fusion import FusionModel
        from hakuna.pipeline import PipelineConfig, StageTimes, predict_submission

        detector = load_detector(assets / "detector.onnx")
        classifier = load_classifier(assets / "classifier.onnx")
        fusion = FusionModel.load(assets / "fusion.json")
        log.info("detector on %s, classifier on %s", detector.session.get_providers()[0],
                 classifier.session.get_providers()[0])  # fmt: skip
        settings = dict(manifest.get("pipeline", {}))
        cfg = PipelineConfig(engine=EngineConfig(**settings.pop("engine", {}), decoder="pil"), **settings,
                             time_budget_s=_budget())  # fmt: skip
        times = StageTimes()
        predict_submission(data_dir, detector, classifier, fusion, out_csv, cfg, times=times, progress=_progress())
    except Exception as exc:
        log.exception("the pipeline failed; writing class priors for every sequence so a submission exists")
        rows = _write_priors(data_dir, assets, out_csv)
        _status(out_csv, pipeline_failed=f"{type(exc).__name__}: {exc}", sequences=rows, prior_only=rows,
                prior_budget=0, prior_unlisted=0, prior_unreadable=0)  # fmt: skip
        return 0
    _status(out_csv, pipeline_failed=None, sequences=times.sequences, prior_only=times.prior_only,
            prior_budget=times.prior_budget, prior_unlisted=times.prior_unlisted,
            prior_unreadable=times.prior_unreadable)  # fmt: skip
    log.info("done in %.1f s: %d frames (%d unreadable), %d sequences (%d on priors), %d crops; decode %.1f s, "
             "detect %.1f s, classify %.1f s, fuse %.1f s", time.perf_counter() - start, times.frames, times.failed,
             times.sequences, times.prior_only, times.crops, times.decode, times.detect, times.classify,
             times.fuse)  # fmt: skip
    return 0
