"""Rendering a synthetic dataset plan into the exact competition layout, plus LILA-style JSON files.

Layout written under ``out``::

    train/train_metadata.csv, train/train_labels.csv
    train/SnapshotSerengeti_S01_v2_0/S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG ...
    test/data/test_metadata.csv, test/data/submission_format.csv, test/data/S5/...   (read-only in a container)
    test/test_labels.csv                                  (the answers, kept outside data/)
    lila/SnapshotSerengeti_synth_v2_1.json                (COCO Camera Traps, sequence-level labels)
    lila/SnapshotSerengetiBboxes_synth.json               (boxes in pixels, COCO [x, y, w, h], + species)
    synth.json                                            (the config that made it)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from camtrap.dataset import season_folder
from camtrap.fileio import atomic_write_csv, atomic_write_json
from camtrap.labels import COLUMNS, EMPTY
from camtrap.synth.draw import render_frame
from camtrap.synth.plan import SequencePlan, SynthConfig, plan_dataset

__all__ = ["SynthOutput", "SynthConfig", "generate"]

log = logging.getLogger(__name__)
_CHUNK = 16  # sequences rendered per task; they share cached site backgrounds
BBOX_CATEGORIES = ({"id": 0, "name": "empty"}, {"id": 1, "name": "animal"}, {"id": 2, "name": "person"},
                   {"id": 3, "name": "group"})  # fmt: skip


@dataclass(frozen=True)
class SynthOutput:
    """Where a generated dataset's parts are."""

    root: Path
    train_metadata: Path
    train_labels: Path
    train_image_root: Path
    test_data: Path
    test_labels: Path
    lila_json: Path
    boxes_json: Path


@dataclass(frozen=True)
class _FrameRecord:
    seq_id: str
    file_name: str
    datetime: str
    frame_num: int
    boxes: tuple[tuple[int, int, int, int, str], ...]  # x, y, w, h in pixels, species


def _image_path(out: Path, plan: SequencePlan, frame: int) -> Path:
    if plan.is_test:
        return out / "test" / "data" / plan.file_name(frame)
    return out / "train" / season_folder(plan.season) / plan.file_name(frame)


def _render_chunk(args: tuple[SynthConfig, list[SequencePlan], Path]) -> list[list[_FrameRecord]]:
    """Render a chunk of sequences sharing one cache of site backgrounds."""
    cfg, plans, out = args
    cache: dict = {}
    return [_render_sequence(cfg, plan, out, cache) for plan in plans]


def _render_sequence(cfg: SynthConfig, plan: SequencePlan, out: Path, cache: dict) -> list[_FrameRecord]:
    """Render and write every frame of one sequence; return its metadata and boxes."""
    rng = np.random.default_rng(list(plan.rng_seed))
    records = []
    for i in range(plan.n_frames):
        when = plan.start + dt.timedelta(seconds=i)
        stamp = f"{int(18 + 10 * rng.uniform())}C  {when:%Y-%m-%d %H:%M:%S}  {plan.site.name}"
        poses = [t.pose(i) for t in plan.tracks]
        img, boxes = render_frame(plan.site, cfg.size, poses, wind=plan.winds[i], light=plan.lights[i],
                                  night=plan.night, stamp=stamp, rng=rng, cache=cache)  # fmt: skip
        path = _image_path(out, plan, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {path}")
        path.write_bytes(buf.tobytes())
        kept = tuple((b[0], b[1], b[2] - b[0], b[3] - b[1], p.look.name) for b, p in zip(boxes, poses)
                     if b and min(b[2] - b[0], b[3] - b[1]) >= 3)  # fmt: skip
        records.append(_FrameRecord(plan.seq_id, plan.file_name(i), f"{when:%Y-%m-%d %H:%M:%S}", i + 1, kept))
    return records


def _render_all(cfg: SynthConfig, plans: list[SequencePlan], out: Path, workers: int,
                progress: Callable[[int], None] | None) -> Iterator[list[_FrameRecord]]:
    jobs = [(cfg, plans[i : i + _CHUNK], out) for i in range(0, len(plans), _CHUNK)]
    if workers <= 1:
        results: Iterator[list[list[_FrameRecord]]] = map(_render_chunk, jobs)
        for chunk in results:
            yield from chunk
            if progress:
                progress(len(chunk))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk in pool.map(_render_chunk, jobs):
            yield from chunk
            if progress:
                progress(len(chunk))


def _labels(plans: list[SequencePlan]) -> pd.DataFrame:
    rows = np.zeros((len(plans), len(COLUMNS)), np.int8)
    for i, p in enumerate(plans):
        for name in p.species or (EMPTY,):
            rows[i, COLUMNS.index(name)] = 1
    return pd.DataFrame(rows, index=pd.Index([p.seq_id for p in plans], name="seq_id"), columns=list(COLUMNS))


def _metadata(records: list[_FrameRecord]) -> pd.DataFrame:
    return pd.DataFrame({"seq_id": [r.seq_id for r in records], "file_name": [r.file_name for r in records],
                         "datetime": [r.datetime for r in records]})  # fmt: skip


def _lila_json(cfg: SynthConfig, plans: list[SequencePlan], records: list[_FrameRecord]) -> dict:
    """COCO Camera Traps, as LILA's SnapshotSerengeti_S1-11_v2_1.json: sequence-level annotations per image."""
    cat_ids = {name: i for i, name in enumerate(COLUMNS)}
    by_seq = {p.seq_id: p for p in plans}
    frames_per_seq = pd.Series([r.seq_id for r in records]).value_counts().to_dict()
    images, annotations = [], []
    for r in records:
        plan = by_seq[r.seq_id]
        image_id = r.file_name.rsplit(".", 1)[0]
        images.append({"id": image_id, "file_name": r.file_name, "frame_num": r.frame_num, "seq_id": r.seq_id,
                       "width": cfg.size[0], "height": cfg.size[1], "corrupt": False, "location": plan.site.name,
                       "seq_num_frames": int(frames_per_seq[r.seq_id]), "datetime": r.datetime})  # fmt: skip
        for name in plan.species or (EMPTY,):
            annotations.append({"sequence_level_annotation": True, "id": f"{image_id}#{name}",
                                "category_id": cat_ids[name], "seq_id": r.seq_id, "season": f"SER_S{plan.season}",
                                "image_id": image_id, "location": plan.site.name})  # fmt: skip
    return {"info": {"version": "2.1", "description": f"Hakuna synthetic camera-trap data, seed {cfg.seed}"},
            "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
            "images": images, "annotations": annotations}  # fmt: skip


def _boxes_json(cfg: SynthConfig, records: list[_FrameRecord]) -> dict:
    """LILA bounding-box file (SnapshotSerengetiBboxes_*.json): pixel COCO boxes; empty images get category 0."""
    images, annotations = [], []
    for r in records:
        image_id = r.file_name.rsplit(".", 1)[0]
        images.append({"id": image_id, "file_name": r.file_name, "width": cfg.size[0], "height": cfg.size[1],
                       "seq_id": r.seq_id, "frame_num": r.frame_num})  # fmt: skip
        for k, (x, y, w, h, species) in enumerate(r.boxes):
            annotations.append({"id": f"{image_id}#{k}", "image_id": image_id, "category_id": 1,
                                "bbox": [x, y, w, h], "species": species})  # fmt: skip
        if not r.boxes:
            annotations.append({"id": f"{image_id}#empty", "image_id": image_id, "category_id": 0})
    return {"info": {"version": "1.0", "description": "Hakuna synthetic boxes (x, y, width, height in pixels)"},
            "categories": list(BBOX_CATEGORIES), "images": images, "annotations": annotations}  # fmt: skip


def generate(cfg: SynthConfig, out: str | os.PathLike[str], *, workers: int = 1,
             progress: Callable[[int], None] | None = None) -> SynthOutput:
    """Generate the dataset described by ``cfg`` under ``out``; identical files for identical configs.

    ``progress`` is called with the number of sequences finished, as they finish (for a progress bar).
    """
    out = Path(out)
    plans = plan_dataset(cfg)
    records = [r for seq in _render_all(cfg, plans, out, workers, progress) for r in seq]
    test_ids = {p.seq_id for p in plans if p.is_test}
    is_test = np.array([r.seq_id in test_ids for r in records])
    meta = _metadata(records)
    labels = _labels(plans)
    res = SynthOutput(out, out / "train" / "train_metadata.csv", out / "train" / "train_labels.csv", out / "train",
                      out / "test" / "data", out / "test" / "test_labels.csv",
                      out / "lila" / "SnapshotSerengeti_synth_v2_1.json",
                      out / "lila" / "SnapshotSerengetiBboxes_synth.json")  # fmt: skip
    atomic_write_csv(res.train_metadata, meta.loc[~is_test, ["file_name", "seq_id", "datetime"]], index=False)
    atomic_write_csv(res.train_labels, labels[~labels.index.isin(test_ids)])
    atomic_write_csv(res.test_data / "test_metadata.csv", meta[is_test], index=False)
    test_labels = labels[labels.index.isin(test_ids)]
    atomic_write_csv(res.test_data / "submission_format.csv", test_labels.astype(np.float64) * 0.0)
    atomic_write_csv(res.test_labels, test_labels)
    atomic_write_json(res.lila_json, _lila_json(cfg, plans, records), indent=None)
    atomic_write_json(res.boxes_json, _boxes_json(cfg, records), indent=None)
    atomic_write_json(out / "synth.json", {"generator": "hakuna synth", **dataclasses.asdict(cfg)})
    log.info("wrote %d sequences (%d images) to %s", len(plans), len(records), out)
    return res
