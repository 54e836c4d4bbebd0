"""Training or fine-tuning a YOLO detector on boxes in LILA's bounding-box format, offline.

The LILA boxes and the images of a competition-layout dataset become an ultralytics dataset (frames
resized once to the training size, YOLO label files, empty frames kept as negatives), split by season,
and ultralytics trains on it with no hub, no fonts and no plots.  The result is a checkpoint that carries
its preprocessing and thresholds (see :mod:`detector.model`).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import pandas as pd

from camtrap.dataset import SequenceSet, season_split
from camtrap.images import load_frame
from camtrap.lila import read_lila_boxes
from detector.model import DetectorSpec, offline_ultralytics, write_spec

__all__ = ["DetectorTrainConfig", "ARCHITECTURES", "architecture", "prepare_yolo_dataset", "train"]

log = logging.getLogger(__name__)
CLASS_IDS = {"animal": 0, "person": 1, "group": 0, "vehicle": 2}  # LILA bbox category -> YOLO class
# Named scales of ultralytics' YOLO11 architecture (depth, width, max channels).  "tiny" trains on a CPU in
# minutes; n/s/m/l are ultralytics' own (MegaDetector MDv1000-sorrel is an s, -larch an l).
ARCHITECTURES = {"yolo11-tiny": (0.33, 0.125, 256)}


@dataclass(frozen=True)
class DetectorTrainConfig:
    """How to train.  ``architecture`` is an ultralytics model yaml (from scratch) or a .pt (fine-tune)."""

    architecture: str = "yolo11-tiny"  # see ARCHITECTURES; or any ultralytics yaml / .pt
    imgsz: int = 320
    epochs: int = 40
    batch: int = 16
    workers: int = 2
    negatives_per_positive: float = 0.5  # empty training frames kept per frame with boxes (all kept for val)
    device: str = "cpu"
    seed: int = 0
    val_seasons: tuple[int, ...] = ()  # default: the latest season
    patience: int = 100
    optimizer: str = "AdamW"
    lr0: float = 0.003
    warmup_epochs: float = 1.0
    mosaic: float = 0.0  # mosaic slows convergence on small synthetic sets; raise it for real data
    scale_augment: float = 0.3  # random zoom range (ultralytics' default 0.5 shrinks small animals away)
    validate_every_epoch: bool = False  # validation runs after the last epoch either way
    conf_threshold: float = 0.2  # the animal threshold stored with the model (DetectorSpec.typical_threshold)
    conservative_threshold: float = 0.1  # stored too: detections classified in the pipeline


def _yolo_lines(boxes: pd.DataFrame) -> str:
    lines = []
    for b in boxes.itertuples(index=False):
        cx, cy = b.x_min_norm + b.width_norm / 2, b.y_min_norm + b.height_norm / 2
        lines.append(f"{CLASS_IDS.get(b.category, 0)} {cx:.6f} {cy:.6f} {b.width_norm:.6f} {b.height_norm:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def architecture(name: str, folder: Path) -> str:
    """An ultralytics model argument: a generated yaml for our named scales, else ``name`` unchanged."""
    if name not in ARCHITECTURES:
        return name
    from ultralytics.nn.tasks import yaml_model_load
    from ultralytics.utils import YAML

    cfg = yaml_model_load("yolo11.yaml")
    cfg["scales"] = {"t": list(ARCHITECTURES[name])}
    cfg["nc"] = 3  # animal, person, vehicle
    for key in ("scale", "yaml_file"):
        cfg.pop(key, None)
    path = folder / f"{name}.yaml"  # a stem without an n/s/m/l/x scale letter: the single scale is used
    YAML.save(path, cfg)
    return str(path)


def _select_frames(part: SequenceSet, boxed: set[str], negatives_per_positive: float | None, seed: int) -> pd.Series:
    """Frames to use: all with boxes, and a seeded sample of empty ones (all of them when ratio is None)."""
    files = part.frames["file_name"]
    has_box = files.isin(boxed)
    if negatives_per_positive is None:
        return pd.Series(True, index=files.index)
    n_neg = int(round(has_box.sum() * negatives_per_positive))
    negatives = files[~has_box].sample(n=min(n_neg, int((~has_box).sum())), random_state=seed).index
    return has_box | files.index.isin(negatives)


def _write_split(part: SequenceSet, boxes: pd.DataFrame, folder: Path, split: str, imgsz: int,
                 keep: pd.Series) -> int:
    """Resize each kept frame once to ``imgsz`` (long side) and write its label file; returns frames written."""
    by_file = {f: g for f, g in boxes.groupby("file_name")}
    (folder / "images" / split).mkdir(parents=True, exist_ok=True)
    (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
    written = 0
    refs = part.frame_refs()
    for i in keep[keep].index:
        file_name = part.frames["file_name"].iat[i]
        img = load_frame(refs[i], max_side=imgsz)
        if not img.ok:
            log.warning("skipping %s: %s", file_name, img.failure.value)
            continue
        h, w = img.pixels.shape[:2]
        scale = imgsz / max(h, w)
        pixels = cv2.resize(img.pixels, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        stem = file_name.replace("/", "__").rsplit(".", 1)[0]
        cv2.imwrite(str(folder / "images" / split / f"{stem}.jpg"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        label = _yolo_lines(by_file.get(file_name, boxes.iloc[:0]))
        (folder / "labels" / split / f"{stem}.txt").write_text(label)
        written += 1
    return written


def prepare_yolo_dataset(data: SequenceSet, boxes_json: Path, folder: Path, cfg: DetectorTrainConfig) -> Path:
    """Write an ultralytics dataset (season split; empty frames as negatives) and return its data.yaml."""
    boxes = read_lila_boxes(boxes_json)
    train_part, val_part = season_split(data, list(cfg.val_seasons) or None)
    boxed = set(boxes["file_name"])
    keep = _select_frames(train_part, boxed, cfg.negatives_per_positive, cfg.seed)
    n_train = _write_split(train_part, boxes, folder, "train", cfg.imgsz, keep)
    n_val = _write_split(val_part, boxes, folder, "val", cfg.imgsz, _select_frames(val_part, boxed, None, cfg.seed))
    log.info("YOLO dataset: %d training and %d validation frames in %s", n_train, n_val, folder)
    yaml = folder / "data.yaml"
    yaml.write_text(f"path: {folder.resolve()}\ntrain: images/train\nval: images/val\n"
                    "names:\n  0: animal\n  1: person\n  2: vehicle\n")  # fmt: skip
    return yaml


def train(data: SequenceSet, boxes_json: Path, out: Path, cfg: DetectorTrainConfig, *, work_dir: Path) -> Path:
    """Train a detector; writes ``out`` (a .pt checkpoint carrying its :class:`DetectorSpec`)."""
    yaml = prepare_yolo_dataset(data, boxes_json, work_dir / "yolo-data", cfg)
    YOLO = offline_ultralytics()
    model = YOLO(architecture(cfg.architecture, work_dir))
    model.train(data=str(yaml), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch, workers=cfg.workers,
                device=cfg.device, seed=cfg.seed, deterministic=True, plots=False, amp=False, verbose=False,
                project=str(work_dir.resolve()), name="run", exist_ok=True, patience=cfg.patience,
                pretrained=cfg.architecture.endswith(".pt"), val=cfg.validate_every_epoch, optimizer=cfg.optimizer,
                lr0=cfg.lr0, warmup_epochs=cfg.warmup_epochs, mosaic=cfg.mosaic, close_mosaic=0,
                scale=cfg.scale_augment)  # fmt: skip
    best = work_dir / "run" / "weights" / ("best.pt" if cfg.validate_every_epoch else "last.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.pt")
    shutil.copyfile(best, tmp)
    spec = DetectorSpec(name=out.stem, input_size=cfg.imgsz, classes=("animal", "person", "vehicle"),
                        typical_threshold=cfg.conf_threshold,
                        conservative_threshold=cfg.conservative_threshold)  # fmt: skip
    write_spec(tmp, spec)
    os.replace(tmp, out)
    return out
