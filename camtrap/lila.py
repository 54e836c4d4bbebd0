"""Adapters for LILA's Snapshot Serengeti files (COCO Camera Traps JSON) into the competition's tables.

* ``SnapshotSerengeti_S1-11_v2_1.json`` (or a per-season ``SnapshotSerengetiS01.json``): images with
  ``seq_id``, ``frame_num``, ``datetime``; sequence-level annotations.  -> metadata + labels tables.
* ``SnapshotSerengetiBboxes_*.json``: boxes in pixels, COCO ``[x, y, width, height]``.  -> a box table with
  normalised coordinates.

The all-seasons file is 5.2 GB unzipped; ``json.load`` on it needs more memory than most machines have,
so read the per-season files (a few hundred MB each) and concatenate the tables.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import SequenceSet, check_metadata
from camtrap.fileio import DataError, NonStandardNumber, loads_strict
from camtrap.labels import COLUMNS, EMPTY, column_for_lila

__all__ = ["read_lila_sequences", "read_lila_boxes", "BOX_COLUMNS"]

log = logging.getLogger(__name__)
BOX_COLUMNS = ("file_name", "category", "x_min_norm", "y_min_norm", "width_norm", "height_norm")


def _load(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = loads_strict(f.read())
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from exc
    except NonStandardNumber as exc:
        raise DataError(path, f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(path, f"top level is a {type(data).__name__}, not an object: not a COCO Camera Traps file")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(path, f"no {key!r} list: not a COCO Camera Traps file")
    return data


def _category_columns(path: Path, categories: list[dict]) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for i, cat in enumerate(categories):
        try:
            out[int(cat["id"])] = column_for_lila(str(cat["name"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(path, f"categories[{i}]: {exc}") from exc
    return out


def _images_table(path: Path, images: list[dict]) -> pd.DataFrame:
    try:
        df = pd.DataFrame({
            "seq_id": [im["seq_id"] for im in images],
            "file_name": [im["file_name"] for im in images],
            "datetime": [im.get("datetime") or "" for im in images],
            "image_id": [str(im["id"]) for im in images],
            "frame_num": [im.get("frame_num", 0) for im in images],
        })  # fmt: skip
    except (KeyError, TypeError) as exc:
        bad = next(i for i, im in enumerate(images)
                   if not isinstance(im, dict) or not {"seq_id", "file_name", "id"} <= set(im))  # fmt: skip
        raise DataError(path, f"images[{bad}] is not an object with 'seq_id', 'file_name' and 'id'") from exc
    return df


def read_lila_sequences(json_path: str | os.PathLike[str], image_root: str | os.PathLike[str]) -> SequenceSet:
    """Read a LILA COCO Camera Traps file into a labelled :class:`SequenceSet` (images flat under the root).

    Category names map to columns through :func:`camtrap.labels.column_for_lila`: dropped categories lose
    their annotation; a sequence left with no annotation is dropped (and counted in the log).  A sequence
    with both ``empty`` and a species keeps the species only.
    """
    path = Path(json_path)
    data = _load(path)
    columns = _category_columns(path, data["categories"])
    frames = _images_table(path, data["images"])
    labels = np.zeros((0, len(COLUMNS)), np.int8)
    seq_index: dict[str, int] = {}
    rows: list[np.ndarray] = []
    for i, ann in enumerate(data["annotations"]):
        try:
            col, seq = columns[int(ann["category_id"])], ann["seq_id"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(path, f"annotations[{i}]: bad or unknown category/seq_id ({exc})") from exc
        if col is None:
            continue
        if seq not in seq_index:
            seq_index[seq] = len(rows)
            rows.append(np.zeros(len(COLUMNS), np.int8))
        rows[seq_index[seq]][COLUMNS.index(col)] = 1
    if rows:
        labels = np.stack(rows)
    empty_i = COLUMNS.index(EMPTY)
    has_species = labels.sum(axis=1) - labels[:, empty_i] > 0
    labels[has_species, empty_i] = 0
    table = pd.DataFrame(labels, index=pd.Index(list(seq_index), name="seq_id"), columns=list(COLUMNS))
    dropped = frames.loc[~frames["seq_id"].isin(seq_index), "seq_id"].nunique()
    if dropped:
        log.info("%s: %d sequence(s) have no usable annotation and are left out", path.name, dropped)
    frames = frames[frames["seq_id"].isin(seq_index)]
    table = table[table.index.isin(frames["seq_id"].unique())]
    meta = check_metadata(frames[["seq_id", "file_name", "datetime"]].astype(str).reset_index(drop=True), path,
                          row_name="images")
    return SequenceSet(meta, table, Path(image_root))


def read_lila_boxes(json_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a LILA bounding-box file into a table with :data:`BOX_COLUMNS` (boxes normalised to 0-1).

    Images listed with no box (or only an ``empty`` annotation) appear in no row; use the images table
    for negatives.  A box on an image without ``width``/``height`` is an error naming that image.
    """
    path = Path(json_path)
    data = _load(path)
    names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    if bad := next((i for i, im in enumerate(data["images"]) if not isinstance(im, dict) or "id" not in im), None):
        raise DataError(path, f"images[{bad}] has no 'id'")
    images = {str(im["id"]): im for im in data["images"]}
    rows = []
    for i, ann in enumerate(data["annotations"]):
        if "bbox" not in ann:
            continue
        im = images.get(str(ann.get("image_id")))
        if im is None:
            raise DataError(path, f"annotations[{i}] refers to unknown image {ann.get('image_id')!r}")
        if not im.get("width") or not im.get("height"):
            raise DataError(path, f"image {im['id']!r} has a box but no width/height to normalise it")
        x, y, w, h = (float(v) for v in ann["bbox"])
        iw, ih = float(im["width"]), float(im["height"])
        rows.append((im["file_name"], names.get(int(ann["category_id"]), "animal"), x / iw, y / ih, w / iw, h / ih))
    return pd.DataFrame(rows, columns=list(BOX_COLUMNS))
