"""corrections.csv as training data, with known answers: by default only crops a person confirmed or relabelled
are learned from (the log says what was used and what was not), and corrections added to labelled photos override
a corrected photo's label."""

import logging

import numpy as np
import pandas as pd

from classifier.corrections import learned_classes, with_corrections
from classifier.data import CORRECTION_COLUMNS, correction_samples, csv_samples

BOX = "0.1 0.1 0.3 0.3"
ROWS = [  # crop_id, file, detection_index, bbox, predicted, status, label, seq_id
    ("a#0", "a.jpg", "0", BOX, "zebra", "relabelled", "impala", "s1"),
    ("b#0", "b.jpg", "0", BOX, "zebra", "relabelled", "impala", "s2"),
    ("c#0", "c.jpg", "0", BOX, "zebra", "confirmed", "", "s3"),
    ("d#0", "d.jpg", "0", BOX, "bird", "rejected", "", "s4"),
    ("e#0", "e.jpg", "0", BOX, "zebra", "unreviewed", "", "s5"),
    ("e#1", "e.jpg", "1", BOX, "zebra", "unreviewed", "", "s5"),  # a rock box, in a sequence labelled "lion"
    ("f#0", "f.jpg", "0", BOX, "zebra", "unreviewed", "", "s6"),
    ("seq:s5", "e.jpg", "", "", "zebra", "relabelled", "lion", "s5"),
]


def write_corrections(folder, rows=ROWS):
    path = folder / "corrections.csv"
    pd.DataFrame(rows, columns=list(CORRECTION_COLUMNS)).to_csv(path, index=False)
    return path


def _labels(samples):
    return {s.key: samples.classes[int(np.argmax(s.target))] for s in samples.samples}


def test_only_reviewed_crops_by_default_and_the_log_counts_what_was_used(tmp_path, caplog):
    path = write_corrections(tmp_path)
    with caplog.at_level(logging.INFO, logger="classifier.data"):
        reviewed = correction_samples(path, tmp_path)
    assert _labels(reviewed) == {"a#0": "impala", "b#0": "impala", "c#0": "zebra"}
    line = caplog.records[-1].getMessage()
    assert line.startswith("corrections.csv: 3 crops to learn from (2 relabelled, 1 confirmed); not used: 4 (")
    assert line.endswith("not used: 4 (2 unreviewed in a sequence a person labelled, 1 rejected, 1 unreviewed) "
                         "(--include-unreviewed learns from unreviewed crops too)")  # fmt: skip
    assert "--include-unreviewed" in line
    everything = correction_samples(path, tmp_path, include_unreviewed=True)  # the old behaviour, on request
    assert _labels(everything) == {"a#0": "impala", "b#0": "impala", "c#0": "zebra", "e#0": "lion", "e#1": "lion",
                                   "f#0": "zebra"}  # fmt: skip


def test_corrections_added_to_labelled_photos_override_a_corrected_photo(tmp_path):
    pd.DataFrame({"path": ["a.jpg", "g.jpg", "h.jpg"], "label": ["zebra", "bird", "wildebeest"]}).to_csv(
        tmp_path / "labelled.csv", index=False)
    labelled = csv_samples(tmp_path / "labelled.csv", tmp_path)
    both = with_corrections(labelled, correction_samples(write_corrections(tmp_path), tmp_path))
    assert both.classes == ("bird", "impala", "wildebeest", "zebra")  # "bird" is not a competition column: own classes
    # a.jpg was labelled zebra; its reviewed crop says impala: the crop is learned, the photo's label is not
    assert _labels(both) == {"g.jpg": "bird", "h.jpg": "wildebeest", "a#0": "impala", "b#0": "impala",
                             "c#0": "zebra"}  # fmt: skip
    assert [s.bbox_xywh_norm is None for s in both.samples] == [True, True, False, False, False]
    assert learned_classes(both) == {"bird", "impala", "wildebeest", "zebra"}
