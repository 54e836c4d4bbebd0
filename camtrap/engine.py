"""The streaming inference engine: every frame decoded once, stages overlapped, memory bounded.

::

    frame source ──► decode (thread pool) ──► detect ──► crop + classify ──► caller (fuse, write, ...)
                     one decode per frame      batches     crops cut from the same decoded pixels

Each frame is decoded once, at the size that serves every stage: the letterboxed detector input is made
from it and the classifier's crops are cut from it (see :class:`DecodePlan`).  Stages run in their own
threads joined by bounded queues (:mod:`camtrap.stream`), so decoding overlaps the models and memory holds a
few batches whatever the run's length.  Outcomes come out in input order, one per frame, so the caller can
group them into sequences, checkpoint them, or stop at a time budget.

Two decoders: ``pil`` (PIL with DCT-scaled JPEG decoding in worker threads, numpy/OpenCV geometry; runs
everywhere, including the offline runner without torch) and ``torch`` (file bytes read in threads, JPEGs
decoded in batches by ``torchvision.io.decode_jpeg`` on the model's device -- nvJPEG on a GPU -- with a
per-image fallback to PIL for what it refuses, letterbox and crops on the device; see
:mod:`camtrap.tensors`).  The stages themselves (a detector, a crop classifier) are passed in: this module
knows their shape (:class:`DetectStage`, :class:`CropStage`), not their packages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from camtrap.batching import batched
from camtrap.devices import DECODERS
from camtrap.frames import FrameRef
from camtrap.geometry import PAD_VALUE, Letterbox, cut_crop, letterbox
from camtrap.images import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, load_frame
from camtrap.results import CropPrediction, Detection, FrameDetections
from camtrap.stream import ordered_map, staged

__all__ = ["DECODERS", "EngineConfig", "DecodePlan", "DecodedFrame", "FrameOutcome", "EngineTimes", "counted",
           "DetectStage", "CropStage", "run", "wanted_detections", "decode_frame", "detect_frames",
           "classify_frames"]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs (what the models need comes from their specs, through the stages)."""

    detector_batch: int = 8
    classifier_batch: int = 64
    workers: int = 2  # decoding (pil) or file-reading (torch) threads
    prefetch: int = 32  # frames decoded ahead at most (bounds memory with the queues)
    queue_batches: int = 2  # batches waiting between two stages
    decoder: str = "auto"  # auto: torch where a stage runs on CUDA, else pil
    read_datetime: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES  # larger files are a failure, never opened

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, not {self.decoder!r}")


@dataclass(frozen=True)
class DecodePlan:
    """What one decode must serve: the detector's letterbox and/or the crops' source resolution.

    JPEGs are decoded at the smallest DCT scale (1/1, 1/2, 1/4, 1/8) whose long side is still at least
    ``max_side``: the detector's input size, or the classifier's ``source_max_side`` (crops keep the
    resolution they were trained at), whichever is larger.
    """

    letterbox: Letterbox | None = None
    crop_side: int | None = None

    @property
    def max_side(self) -> int | None:
        sides = [s for s in (self.letterbox.size if self.letterbox else None, self.crop_side) if s]
        return max(sides) if sides else None

    @property
    def keep_pixels(self) -> bool:
        return self.crop_side is not None


@dataclass
class DecodedFrame:
    """One frame after decoding (mutable: its pixels are dropped once its crops are cut).

    ``pixels`` is the upright RGB frame at the decoded size (H x W x 3 uint8 numpy, or a 3 x H x W uint8
    tensor on the model's device), kept only when crops will be cut from it; ``model_input`` the letterboxed
    detector input in the same form; ``scale`` letterbox pixels per decoded pixel; ``decoded_wh`` the decoded
    size and ``width``/``height`` the full upright size of the original (boxes are normalised to either).
    """

    ref: FrameRef
    pixels: Any = None
    model_input: Any = None
    scale: float = 1.0
    pad: tuple[int, int] = (0, 0)  # letterbox padding left and top, in model-input pixels
    decoded_wh: tuple[int, int] = (0, 0)
    width: int = 0
    height: int = 0
    failure: str | None = None
    datetime: str | None = None
    detections: tuple[Detection, ...] | None = None
    decode_s: float = 0.0  # time spent decoding it (summed into EngineTimes by one thread)

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class FrameOutcome:
    """What the engine found in one frame: its detections (or failure) and its classified crops."""

    frame: FrameDetections
    seq_id: str
    crops: tuple[CropPrediction, ...] = ()


@dataclass
class EngineTimes:
    """Seconds and counts per stage (decode seconds are summed over worker threads)."""

    decode: float = 0.0
    detect: float = 0.0
    classify: float = 0.0
    frames: int = 0
    failed: int = 0
    crops: int = 0
    extra: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)  # (file, reason) of every frame that could not be read


class DetectStage(Protocol):
    """A detector as the engine sees it: letterbox geometry, and boxes for a batch of letterboxed frames."""

    letterbox: Letterbox
    device: str

    def __call__(self, batch: Any, frames: list[DecodedFrame]) -> list[tuple[Detection, ...]]:
        """``batch``: N x H x W x 3 uint8 numpy, or N x 3 x H x W uint8 tensor on ``device``."""


class CropStage(Protocol):
    """A crop classifier as the engine sees it."""

    classes: tuple[str, ...]
    input_hw: tuple[int, int]
    margin: float  # crop margin the classifier was trained with
    source_max_side: int  # frames are decoded at least this large before crops are cut
    threshold: float  # animal detections at or above this confidence are classified
    max_crops_per_frame: int
    device: str

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        """A square uint8 crop -> the model's input size (uint8)."""

    def __call__(self, batch: Any) -> np.ndarray:
        """Probabilities (N x classes) for N x H x W x 3 uint8 numpy or N x 3 x H x W uint8 tensors."""


def wanted_detections(dets: Iterable[Detection] | None, threshold: float, limit: int) -> list[tuple[int, Detection]]:
    """(index, detection) of the animal boxes worth a crop, most confident first."""
    chosen = [(i, d) for i, d in enumerate(dets or ()) if d.is_animal and d.conf >= threshold]
    return sorted(chosen, key=lambda t: -t[1].conf)[:limit]


def decode_frame(ref: FrameRef, plan: DecodePlan, cfg: EngineConfig) -> DecodedFrame:
    """Decode one frame with PIL and letterbox it (the CPU decoder); never raises for a bad file."""
    t0 = time.perf_counter()
    if ref.failure:
        return DecodedFrame(ref, failure=ref.failure)
    img = load_frame(ref, max_side=plan.max_side, read_datetime=cfg.read_datetime, max_pixels=cfg.max_pixels,
                     max_bytes=cfg.max_file_bytes)
    if not img.ok:
        return DecodedFrame(ref, failure=f"{img.failure.value}: {img.detail}".rstrip(": "),
                            decode_s=time.perf_counter() - t0)
    h, w = img.pixels.shape[:2]
    frame = DecodedFrame(ref, img.pixels if plan.keep_pixels else None, decoded_wh=(w, h), width=img.width,
                         height=img.height, datetime=img.datetime)  # fmt: skip
    if plan.letterbox:
        frame.model_input, frame.scale, frame.pad = letterbox(img.pixels, plan.letterbox)
    frame.decode_s = time.perf_counter() - t0
    return frame


def _stack_letterboxed(frames: list[DecodedFrame]) -> np.ndarray:
    """One N x H x W x 3 uint8 batch (frames of other shapes padded grey, right/bottom)."""
    h = max(f.model_input.shape[0] for f in frames)
    w = max(f.model_input.shape[1] for f in frames)
    if all(f.model_input.shape[:2] == (h, w) for f in frames):
        return np.stack([f.model_input for f in frames])
    batch = np.full((len(frames), h, w, 3), PAD_VALUE, np.uint8)
    for i, f in enumerate(frames):
        batch[i, : f.model_input.shape[0], : f.model_input.shape[1]] = f.model_input
    return batch


def _decoded_batches(frames: Iterable[FrameRef], plan: DecodePlan, cfg: EngineConfig,
                     device: str) -> Iterator[list[DecodedFrame]]:
    if _use_torch(cfg, device):
        from camtrap.tensors import decoded_batches

        yield from decoded_batches(frames, plan, cfg, device)
        return
    stream = ordered_map(lambda r: decode_frame(r, plan, cfg), frames, workers=cfg.workers,
                         lookahead=cfg.prefetch)  # fmt: skip
    yield from batched(stream, cfg.detector_batch)


def _use_torch(cfg: EngineConfig, device: str) -> bool:
    return cfg.decoder == "torch" or (cfg.decoder == "auto" and device.startswith("cuda"))


def detect_frames(frames: list[DecodedFrame], detect: DetectStage) -> None:
    """Run the detector on the readable frames of one batch; sets their ``detections``, drops their input."""
    good = [f for f in frames if f.ok]
    if not good:
        return
    stacked = _stack_letterboxed(good) if isinstance(good[0].model_input, np.ndarray) else _stack_tensors(good)
    for f, dets in zip(good, detect(stacked, good)):
        f.detections = dets
        f.model_input = None


def _detect_batches(batches: Iterator[list[DecodedFrame]], detect: DetectStage | None,
                    given: Mapping[str, FrameDetections] | None, times: EngineTimes) -> Iterator[list[DecodedFrame]]:
    for batch in batches:
        times.decode += sum(f.decode_s for f in batch)
        if detect is not None:
            t0 = time.perf_counter()
            detect_frames(batch, detect)
            times.detect += time.perf_counter() - t0
        elif given is not None:
            for f in (f for f in batch if f.ok):
                known = given.get(f.ref.file)
                f.detections = known.detections if known is not None else ()
        yield batch


def _stack_tensors(frames: list[DecodedFrame]):
    from camtrap.tensors import stack_letterboxed

    return stack_letterboxed([f.model_input for f in frames])


def _outcome(f: DecodedFrame, crops: list[tuple[int, Detection]], probs: np.ndarray) -> FrameOutcome:
    if not f.ok:
        return FrameOutcome(FrameDetections(f.ref.file, None, f.failure), f.ref.seq_id)
    frame = FrameDetections(f.ref.file, tuple(f.detections or ()), None, f.width, f.height, f.datetime)
    preds = tuple(CropPrediction(f.ref.file, i, d, tuple(p.tolist())) for (i, d), p in zip(crops, probs))
    return FrameOutcome(frame, f.ref.seq_id, preds)


def _cut(f: DecodedFrame, wanted: list[tuple[int, Detection]], crop: CropStage) -> list:
    """Crops of ``wanted`` from the frame's decoded pixels, at the classifier's input size."""
    if isinstance(f.pixels, np.ndarray):
        return [crop.prepare(cut_crop(f.pixels, d.bbox_xywh_norm, crop.margin)) for _, d in wanted]
    from camtrap.tensors import cut_crops

    return [cut_crops(f.pixels, [d.bbox_xywh_norm for _, d in wanted], crop.margin, crop.input_hw)]


def _classify(crop: CropStage, pieces: list, n: int, batch_size: int) -> np.ndarray:
    if not n:
        return np.zeros((0, len(crop.classes)), np.float32)
    if isinstance(pieces[0], np.ndarray) and pieces[0].ndim == 3:  # numpy crops, one per detection
        return np.concatenate([crop(np.stack(pieces[k : k + batch_size])) for k in range(0, n, batch_size)])
    from camtrap.tensors import concat

    stacked = concat(pieces)
    return np.concatenate([crop(stacked[k : k + batch_size]) for k in range(0, n, batch_size)])


def classify_frames(frames: list[DecodedFrame], crop: CropStage | None, batch_size: int) -> list[FrameOutcome]:
    """Cut each frame's wanted crops from its decoded pixels, classify them (batches pooled across the frames) and
    return the frames' outcomes, in order; the pixels are dropped."""
    wanted = [wanted_detections(f.detections, crop.threshold, crop.max_crops_per_frame) if crop is not None and f.ok
              else [] for f in frames]  # fmt: skip
    pieces = [piece for f, w in zip(frames, wanted) if w for piece in _cut(f, w, crop)]
    n = sum(len(w) for w in wanted)
    probs = _classify(crop, pieces, n, batch_size) if crop is not None else np.zeros((0, 0))
    out, k = [], 0
    for f, w in zip(frames, wanted):
        out.append(_outcome(f, w, probs[k : k + len(w)]))
        k += len(w)
        f.pixels = None
    return out


def _crop_batches(batches: Iterator[list[DecodedFrame]], crop: CropStage | None, cfg: EngineConfig,
                  times: EngineTimes) -> Iterator[list[FrameOutcome]]:
    """Pool frames until their crops fill a classifier batch, then classify and emit their outcomes in order."""
    pending: list[DecodedFrame] = []
    n_crops = 0
    for batch in batches:
        pending += batch
        if crop is not None:
            n_crops += sum(len(wanted_detections(f.detections, crop.threshold, crop.max_crops_per_frame))
                           for f in batch if f.ok)  # fmt: skip
        if crop is None or n_crops >= cfg.classifier_batch:
            t0 = time.perf_counter()
            yield classify_frames(pending, crop, cfg.classifier_batch)
            times.classify += time.perf_counter() - t0
            pending, n_crops = [], 0
    if pending:
        t0 = time.perf_counter()
        yield classify_frames(pending, crop, cfg.classifier_batch)
        times.classify += time.perf_counter() - t0


def run(frames: Iterable[FrameRef], *, detect: DetectStage | None = None, crop: CropStage | None = None,
        detections: Mapping[str, FrameDetections] | None = None, cfg: EngineConfig = EngineConfig(),  # noqa: B008
        times: EngineTimes | None = None) -> Iterator[FrameOutcome]:
    """Stream ``frames`` through decode -> detect -> crop + classify; one :class:`FrameOutcome` per frame, in order.

    Args:
        frames: the frame source (see :mod:`camtrap.frames`); each sequence's frames consecutive.
        detect: the detector stage; None to take boxes from ``detections`` instead (classify-only runs).
        crop: the crop classifier stage; None for detection only (no pixels are kept past the detector).
        detections: known detections by file (used when ``detect`` is None).
        cfg: batch sizes, threads, decoder.
        times: filled with per-stage seconds and counts as the run goes.
    """
    if detect is None and detections is None:
        raise ValueError("the engine needs a detector or known detections")
    times = times if times is not None else EngineTimes()
    plan = DecodePlan(detect.letterbox if detect else None, crop.source_max_side if crop else None)
    device = (detect or crop).device if (detect or crop) else "cpu"
    source = _decoded_batches(frames, plan, cfg, device)
    stages = [lambda b: _detect_batches(b, detect, detections, times), lambda b: _crop_batches(b, crop, cfg, times)]
    batches = staged(source, stages, maxsize=cfg.queue_batches)
    yield from counted((o for outcomes in batches for o in outcomes), times)


def counted(outcomes: Iterable[FrameOutcome], times: EngineTimes) -> Iterator[FrameOutcome]:
    """``outcomes`` passed through, counted into ``times`` (frames, unreadable frames and their reasons, crops):
    the engine's own count, also for outcomes computed elsewhere (a Ray cluster)."""
    for outcome in outcomes:
        times.frames += 1
        times.failed += not outcome.frame.ok
        if not outcome.frame.ok:
            times.failures.append((outcome.frame.file, outcome.frame.failure or "unreadable"))
        times.crops += len(outcome.crops)
        yield outcome
