"""Hakuna on a Ray cluster: the engine's stages as a Ray Data pipeline (``--engine ray``).

::

    frame list ──► decode (CPU tasks) ──► detect (actor pool) ──► crop + classify (actor pool) ──► driver
                   one decode per frame    one model load per actor   crops from the same pixels    shard files

Without a detector (``hakuna classify --detections R.json --engine ray``) the detect stage is left out and each
frame carries its known detections from the results file into the decode task.

The frames are cut into shards of whole sequences (:mod:`camtrap.shards`): a sequence is never split, and each
shard's outcomes are written to its own file as soon as its last frame is done.  A restarted job (``--resume``)
skips the shards already written; the driver then reads every shard back in order and fuses sequences exactly as
the single-machine engine does, so both give the same results file and submission.  Failed tasks are retried and
dead actors restarted by Ray; an unreadable image is still only a failure record.

Every stage runs the single-machine engine's own functions (``decode_frame``, ``detect_frames``,
``classify_frames``), so there is one implementation of each.  Hakuna must be installed on every node (or shipped
with the job's ``runtime_env``), and every node must see the images at the same paths (a shared file system).
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from camtrap.engine import DecodePlan, EngineConfig, FrameOutcome, classify_frames, decode_frame, detect_frames
from camtrap.frames import FrameRef
from camtrap.results import FrameDetections
from camtrap.shards import ShardStore, outcome_from_json, outcome_to_json, shard_frames

__all__ = ["RayConfig", "run_on_ray", "connect"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run."""

    address: str | None = "auto"  # "auto": the cluster this machine belongs to; "HOST:PORT"; None: start a local one
    sequences_per_shard: int = 50
    min_actors: int = 1  # each actor pool autoscales between these
    max_actors: int = 4
    gpus_per_actor: float | None = None  # None: 1 where the cluster has GPUs, else 0
    batch_size: int = 8  # frames per detector batch
    classifier_batch: int = 64
    task_retries: int = 3


def connect(address: str | None) -> None:
    """Join (or, with None, start) a Ray cluster; quiet, no usage reporting."""
    import os

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                 logging_level=logging.WARNING)  # fmt: skip


class _Detect:
    """An actor: the detector loaded once."""

    def __init__(self, path: str, trust: bool, device: str | None, threshold: float | None) -> None:
        from detector.model import load
        from detector.predict import FrameDetector

        self.stage = FrameDetector(load(path, device=device, trust_model=trust), threshold)

    def __call__(self, batch: dict) -> dict:
        frames = [pickle.loads(b) for b in batch["state"]]
        detect_frames(frames, self.stage)
        return {"i": batch["i"], "state": [pickle.dumps(f) for f in frames]}


class _Classify:
    """An actor: the classifier loaded once (None: detection only), crops cut from the decoded pixels."""

    def __init__(self, path: str | None, threshold: float, trust: bool, device: str | None, batch: int) -> None:
        from classifier.predict import CropClassifier, load

        self.stage = CropClassifier(load(path, device=device, trust_model=trust), threshold) if path else None
        self.batch = batch

    def __call__(self, batch: dict) -> dict:
        import json

        frames = [pickle.loads(b) for b in batch["state"]]
        outcomes = classify_frames(frames, self.stage, self.batch)
        return {"i": batch["i"], "outcome": [json.dumps(outcome_to_json(o)) for o in outcomes]}


def _decode(batch: dict, plan: DecodePlan, engine: EngineConfig) -> dict:
    frames = []
    for raw in batch["ref"]:
        ref, known = pickle.loads(raw)  # known: the frame's boxes from a results file, or None (detect them)
        frame = decode_frame(ref, plan, engine)
        if known is not None and frame.ok:
            frame.detections = known
        frames.append(pickle.dumps(frame))
    return {"i": batch["i"], "state": frames}


def _actor_cpus(cluster_cpus: float, max_actors: int) -> float:
    """CPUs each model actor asks for: 1, or less where two full pools would leave no CPU for the decode tasks
    (a pipeline whose actors hold every CPU never decodes: on a 2-CPU machine it would wait forever)."""
    return max(0.1, min(1.0, (cluster_cpus - 1) / (2 * max_actors)))


def _boxes(known: Mapping[str, FrameDetections], file: str) -> tuple:
    frame = known.get(file)
    return tuple(frame.detections or ()) if frame is not None else ()


def _pipeline(refs: list[tuple[int, FrameRef]], plan: DecodePlan, engine: EngineConfig, detector: str | None,
              classifier: str | None, crop_threshold: float, cfg: RayConfig, *, trust: bool, device: str | None,
              detect_threshold: float | None, known: Mapping[str, FrameDetections] | None):  # fmt: skip
    import ray
    import ray.data

    warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    gpus = cfg.gpus_per_actor if cfg.gpus_per_actor is not None else float(ray.cluster_resources().get("GPU", 0) > 0)
    total = float(ray.cluster_resources().get("CPU", 1))
    cpus = _actor_cpus(total, cfg.max_actors)
    retry = {"max_restarts": -1, "max_task_retries": -1}

    def pool() -> ray.data.ActorPoolStrategy:
        return ray.data.ActorPoolStrategy(min_size=cfg.min_actors, max_size=cfg.max_actors)

    items = [{"i": i, "ref": pickle.dumps((r, None if known is None else _boxes(known, r.file)))} for i, r in refs]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(refs) // cfg.batch_size))
    ds = ds.map_batches(_decode, fn_kwargs={"plan": plan, "engine": engine}, batch_size=cfg.batch_size,
                        num_cpus=min(1.0, total / 2), max_retries=cfg.task_retries)  # fmt: skip
    if detector is not None:
        ds = ds.map_batches(_Detect, fn_constructor_kwargs={"path": detector, "trust": trust, "device": device,
                                                            "threshold": detect_threshold},
                            batch_size=cfg.batch_size, compute=pool(), num_gpus=gpus, num_cpus=cpus,
                            **retry)  # fmt: skip
    return ds.map_batches(_Classify, fn_constructor_kwargs={"path": classifier, "threshold": crop_threshold,
                                                           "trust": trust, "device": device,
                                                           "batch": cfg.classifier_batch},
                          batch_size=cfg.batch_size * 4, compute=pool(),
                          num_gpus=gpus if classifier else 0, num_cpus=cpus, **retry)  # fmt: skip


def run_on_ray(frames: list[FrameRef], store: ShardStore, *, detector: str | None, classifier: str | None,
               plan: DecodePlan, crop_threshold: float, cfg: RayConfig = RayConfig(),  # noqa: B008
               engine: EngineConfig = EngineConfig(), trust: bool = False, device: str | None = None,  # noqa: B008
               resume: bool = False, detect_threshold: float | None = None,
               detections: Mapping[str, FrameDetections] | None = None,
               progress: Callable[[int], None] | None = None) -> Iterator[FrameOutcome]:  # fmt: skip
    """Every frame's outcome, in input order, computed on the cluster shard by shard (see the module docstring).

    ``detector`` None: boxes come from ``detections`` (by file; a frame without an entry has none)."""
    if detector is None and detections is None:
        raise ValueError("run_on_ray needs a detector or known detections")
    import json

    shards = shard_frames(frames, cfg.sequences_per_shard)
    store.folder.mkdir(parents=True, exist_ok=True)
    todo = [k for k, shard in enumerate(shards) if not (resume and store.done(k, [r.file for r in shard]))]
    log.info("%d shards of up to %d sequences; %d to compute, %d done already", len(shards), cfg.sequences_per_shard,
             len(todo), len(shards) - len(todo))  # fmt: skip
    if todo:
        connect(cfg.address)
        shard_of, indexed = {}, []
        for k in todo:
            for r in shards[k]:
                shard_of[len(indexed)] = k
                indexed.append((len(indexed), r))
        waiting = {k: [] for k in todo}
        ds = _pipeline(indexed, plan, engine, detector, classifier, crop_threshold, cfg, trust=trust, device=device,
                       detect_threshold=detect_threshold, known=detections)  # fmt: skip
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, raw in zip(batch["i"], batch["outcome"]):
                k = shard_of[int(i)]
                waiting[k].append((int(i), outcome_from_json(json.loads(raw))))
                if len(waiting[k]) == len(shards[k]):
                    store.write(k, [o for _, o in sorted(waiting.pop(k), key=lambda t: t[0])])
                if progress:
                    progress(1)
    for k in range(len(shards)):
        yield from store.read(k)
