"""The metrics and split the prototype and the nodes share."""

from __future__ import annotations

import numpy as np
import pytest

from fedjourney.model import accuracy, auc, held_out, split_order


def test_auc_matches_scikit_learn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = (rng.random(200) < 0.4).astype(np.float32)
    score = np.round(rng.random(200) + 0.3 * y, 1).astype(np.float32)  # many ties
    assert auc(y, score) == pytest.approx(metrics.roc_auc_score(y, score))
    assert np.isnan(auc(np.ones(3, np.float32), np.ones(3, np.float32)))
    assert accuracy(np.array([1, 0], np.float32), np.array([0.9, 0.7], np.float32)) == 0.5


def test_held_out_split_depends_on_ids_not_order() -> None:
    ids = np.array([f"patient-{i}" for i in range(1000)])
    test = held_out(ids)
    assert test.sum() == 300  # floor(N * 0.3), Fed-BioMed's count
    order, n_test = split_order(ids)
    assert n_test == 300 and set(order[-300:]) == set(np.nonzero(test)[0])
    shuffled = np.random.default_rng(0).permutation(len(ids))
    assert (held_out(ids[shuffled]) == test[shuffled]).all()
