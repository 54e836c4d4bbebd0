"""The offline runner inside ``submission.zip``: reads ``data/``, writes ``submission.csv``, never the network.

Layout of the zip (see :mod:`submission.package`)::

    main.py                      calls run_packaged()
    code/camtrap, code/detector, code/classifier, code/fusion, code/submission
    assets/detector.onnx, assets/classifier.onnx, assets/fusion.json, assets/manifest.json

It runs with onnxruntime (CUDA provider when there is a GPU, CPU otherwise), logs progress and per-stage
timing, honours ``HAKUNA_TIME_BUDGET_S`` (sequences not reached get the class priors) and, if anything
goes wrong after the data was read, still writes a complete submission of priors rather than nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

__all__ = ["run_packaged"]

log = logging.getLogger("hakuna.runner")


def _budget() -> float | None:
    raw = os.environ.get("HAKUNA_TIME_BUDGET_S")
    return float(raw) if raw else None


def _write_priors(data_dir: Path, assets: Path, out_csv: Path) -> None:
    from camtrap.fileio import atomic_write_csv
    from fusion import FusionModel

    fmt = pd.read_csv(data_dir / "submission_format.csv", index_col="seq_id")
    priors = FusionModel.load(assets / "fusion.json").priors
    atomic_write_csv(out_csv, pd.DataFrame([priors] * len(fmt), index=fmt.index, columns=fmt.columns))


def run_packaged(root: Path, data_dir: Path | None = None, out_csv: Path | None = None) -> int:
    """Run the packaged pipeline; returns the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    start = time.perf_counter()
    assets = root / "assets"
    data_dir = data_dir or Path(os.environ.get("HAKUNA_DATA", root / "data"))
    out_csv = out_csv or Path.cwd() / "submission.csv"
    manifest = json.loads((assets / "manifest.json").read_text())
    log.info("Hakuna %s: data %s -> %s", manifest.get("version", "?"), data_dir, out_csv)
    try:
        from classifier.predict import load as load_classifier
        from detector.model import load as load_detector
        from fusion import FusionModel
        from submission.pipeline import PipelineConfig, StageTimes, predict_submission

        detector = load_detector(assets / "detector.onnx")
        classifier = load_classifier(assets / "classifier.onnx")
        fusion = FusionModel.load(assets / "fusion.json")
        log.info("detector on %s, classifier on %s", detector.session.get_providers()[0],
                 classifier.session.get_providers()[0])  # fmt: skip
        cfg = PipelineConfig(**manifest.get("pipeline", {}), time_budget_s=_budget())
        times = StageTimes()
        predict_submission(data_dir, detector, classifier, fusion, out_csv, cfg, times=times,
                           progress=lambda n: log.info("%d more sequences done", n))
    except Exception:
        log.exception("the pipeline failed; writing class priors for every sequence so a submission exists")
        _write_priors(data_dir, assets, out_csv)
        return 0
    log.info("done in %.1f s: %d images (%d unreadable), %d sequences (%d on priors), %d crops; detect %.1f s, "
             "classify %.1f s, fuse %.1f s", time.perf_counter() - start, times.images, times.failed_images,
             times.sequences, times.prior_only, times.crops, times.detect, times.classify, times.fuse)  # fmt: skip
    return 0
