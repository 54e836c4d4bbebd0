"""The one-stage baseline's blend with the priors (fitted on validation sequences) makes it a fair opponent: an
informative but overconfident classifier, worse than the priors raw, beats them once blended."""

import numpy as np
import pandas as pd

from camtrap.labels import COLUMNS, EMPTY_INDEX
from camtrap.metric import score
from hakuna.baselines import _blended, fit_blend


def _case(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    priors = np.full(len(COLUMNS), 0.01)
    priors[EMPTY_INDEX] = 0.7
    y = (rng.random((n, len(COLUMNS))) < priors).astype(np.int8)
    # right 80% of the time, and always sure of itself: raw, it loses to the priors
    right = rng.random(y.shape) < 0.8
    p = np.where(right, y, 1 - y) * 0.98 + 0.01
    ids = pd.Index([f"SER_S1#A#1#{i}" for i in range(n)], name="seq_id")
    return (pd.DataFrame(p, index=ids, columns=list(COLUMNS)), pd.DataFrame(y, index=ids, columns=list(COLUMNS)),
            tuple(priors))  # fmt: skip


def test_the_blend_fitted_on_validation_beats_the_priors_on_new_sequences():
    raw_val, y_val, priors = _case(0)
    raw_test, y_test, _ = _case(1)
    prior_sub = pd.DataFrame([priors] * len(y_test), index=y_test.index, columns=list(COLUMNS))
    assert score(raw_test, y_test) > score(prior_sub, y_test)  # the raw baseline is the unfair one
    blend = fit_blend(raw_val, y_val, priors)
    assert 0 < blend["empty"] < 1 and 0 < blend["species"] < 1
    assert score(_blended(raw_test, priors, blend), y_test) < score(prior_sub, y_test)
