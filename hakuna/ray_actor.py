"""One Ray actor of ``--engine ray``: both models loaded once, the local streaming engine run over shards.

An actor receives a shard -- a list of whole sequences as :class:`camtrap.frames.FrameRef` (a few hundred bytes
a frame) and, for classify-only runs, their known boxes -- and runs :func:`camtrap.engine.run` on it on its own
node: file reads, decode (PIL threads, or nvJPEG batches where the models are on a GPU), detect, crop and
classify.  It returns each frame's outcome as plain JSON (:func:`camtrap.shards.outcome_to_json`: boxes and
probabilities, ~1 KB a crop), so no decoded pixel ever leaves the actor.  ``progress`` answers on its own thread
(a second concurrency group), so the driver's watchdog can see frames finish inside a long shard.
"""

from __future__ import annotations

import dataclasses
import resource
from collections.abc import Mapping

from camtrap.engine import EngineConfig, run
from camtrap.frames import FrameRef
from camtrap.results import FrameDetections
from camtrap.shards import outcome_to_json

__all__ = ["ShardEngine", "REPORT_GROUP"]

REPORT_GROUP = "report"  # the concurrency group of ``ready`` and ``progress`` (never queued behind a shard)


def _rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB."""
    now = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
    return now, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ShardEngine:
    """The engine of one actor (made a Ray actor class by :func:`hakuna.ray_runner.run_on_ray`)."""

    def __init__(self, detector: str | None, classifier: str | None, *, crop_threshold: float, trust: bool,
                 device: str | None, detect_threshold: float | None, engine: EngineConfig,
                 threads: int) -> None:  # fmt: skip
        import torch

        torch.set_num_threads(max(1, threads))
        self.engine = dataclasses.replace(engine, workers=max(1, threads))
        self.detect = self.crop = None
        if detector is not None:
            from detector.model import load
            from detector.predict import FrameDetector

            self.detect = FrameDetector(load(detector, device=device, trust_model=trust), detect_threshold)
        if classifier is not None:
            from classifier.predict import CropClassifier
            from classifier.predict import load as load_classifier

            self.crop = CropClassifier(load_classifier(classifier, device=device, trust_model=trust), crop_threshold)
        self.frames = 0  # frames finished by this process (a restarted actor counts from 0 again)

    def ready(self) -> dict:
        """Where the actor runs (answered once its models are loaded)."""
        import os
        import socket

        return {"pid": os.getpid(), "host": socket.gethostname(), "device": (self.detect or self.crop).device}

    def progress(self) -> dict:
        """Frames finished so far and this process's memory (for the watchdog and the memory report)."""
        now, peak = _rss_mb()
        return {"frames": self.frames, "rss_mb": now, "peak_mb": peak}

    def run_shard(self, refs: list[FrameRef], known: Mapping[str, FrameDetections] | None) -> dict:
        """Every frame's outcome (JSON-ready, in order) and the actor's memory after the shard."""
        outcomes = []
        for outcome in run(refs, detect=self.detect, crop=self.crop, detections=known, cfg=self.engine):
            outcomes.append(outcome_to_json(outcome))
            self.frames += 1
        return {"outcomes": outcomes, **self.progress()}
