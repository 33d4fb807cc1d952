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


def test_training_orders_shuffle_each_epoch_from_the_seed_and_round() -> None:
    """Each epoch a new permutation of the training patients; the same seed and round give
    the same ones (the nodes' sampler and the baselines both draw them here)."""
    from itertools import islice

    from fedjourney.model import training_orders

    first = [o.tolist() for o in islice(training_orders(20, 0, 1), 3)]
    assert all(sorted(o) == list(range(20)) for o in first)
    assert first[0] != first[1] != first[2]
    assert [o.tolist() for o in islice(training_orders(20, 0, 1), 3)] == first
    assert next(training_orders(20, 0, 2)).tolist() != first[0]
    assert next(training_orders(20, 1, 1)).tolist() != first[0]
    assert next(training_orders(0, 0, 1)).tolist() == []
