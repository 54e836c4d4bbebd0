import math

import numpy as np
import pandas as pd
import pytest

from camtrap.labels import COLUMNS
from camtrap.metric import SubmissionError, per_class_log_loss, score, validate_submission


def _random(n, seed):
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"SER_S10#A{i:02d}#1#{i}" for i in range(n)], name="seq_id")
    labels = pd.DataFrame((rng.uniform(size=(n, 54)) < 0.1).astype(int), index=ids, columns=list(COLUMNS))
    preds = pd.DataFrame(rng.uniform(size=(n, 54)), index=ids, columns=list(COLUMNS))
    preds.iloc[0, 0], preds.iloc[1, 1] = 0.0, 1.0  # exercise clipping
    return preds, labels


def _reference(preds, labels):
    """Independent: loop over columns and cells in plain Python, sklearn-style clipping."""
    eps = 1e-15
    total = 0.0
    for col in COLUMNS:
        s = 0.0
        for seq in labels.index:
            p = min(max(float(preds.at[seq, col]), eps), 1 - eps)
            y = labels.at[seq, col]
            s += -math.log(p) if y == 1 else -math.log(1 - p)
        total += s / len(labels)
    return total / len(COLUMNS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_matches_independent_computation(seed):
    preds, labels = _random(40, seed)
    shuffled = preds.sample(frac=1.0, random_state=seed)  # row order must not matter
    assert abs(score(shuffled, labels) - _reference(preds, labels)) < 1e-9


def test_known_values():
    ids = pd.Index(["a", "b"], name="seq_id")
    labels = pd.DataFrame(0, index=ids, columns=list(COLUMNS))
    labels["empty"] = 1
    preds = pd.DataFrame(0.0, index=ids, columns=list(COLUMNS))
    preds["empty"] = 1.0
    assert score(preds, labels) == pytest.approx(-math.log(1 - 1e-15), abs=1e-12)
    preds["empty"] = 0.5
    per = per_class_log_loss(preds, labels)
    assert per["empty"] == pytest.approx(math.log(2))
    assert score(preds, labels) == pytest.approx(math.log(2) / 54, rel=1e-9)


def _good():
    preds, labels = _random(5, 9)
    return preds, labels.index


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.drop(index=p.index[0]), r"1 seq_id\(s\) missing: 'SER_S10#A00#1#0'"),
        (lambda p: pd.concat([p, p.iloc[:1].rename(index={p.index[0]: "SER_X"})]),
         r"1 unexpected seq_id\(s\): 'SER_X'"),
        (lambda p: pd.concat([p, p.iloc[:1]]), r"seq_id repeated: 'SER_S10#A00#1#0'"),
        (lambda p: p.drop(columns="zebra"), r"missing \['zebra'\]"),
        (lambda p: p[list(p.columns[::-1])], "out of order; position 1 is 'zorilla'"),
        (lambda p: p.assign(zebra=np.nan), r"NaN in 5 row\(s\)"),
        (lambda p: p.assign(lionmale=1.5), r"outside \[0, 1\].*lionmale=1.5"),
        (lambda p: p.assign(bat=-0.1), r"outside \[0, 1\].*bat=-0.1"),
        (lambda p: p.assign(bat="x"), r"non-numeric values in column\(s\) \['bat'\]"),
    ],
)
def test_refuses_malformed(mutate, message):
    preds, expected = _good()
    validate_submission(preds, expected)
    with pytest.raises(SubmissionError, match=message):
        validate_submission(mutate(preds.copy()), expected)
