"""Local DP that learns (issue 18): the simulation's pure parts (pooled moments, variants)
and the privacy cost of the study's shipped `dp` experiment."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fedjourney.config import Privacy, load_federation
from fedjourney.dpsim import (
    DEFAULT_VARIANTS,
    VARIANTS,
    moments,
    pooled_moments,
    spearman,
    with_variant,
)

STUDY = Path(__file__).resolve().parents[2] / "data" / "study.yaml"


def test_pooled_moments_are_those_of_the_centres_together() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.poisson(2.0, size=(n, 4)).astype(np.float32) for n in (30, 7, 51)]
    for transform, f in (("standardize", lambda x: x), ("log1p+standardize", np.log1p)):
        mean, std = pooled_moments([moments(x, transform) for x in parts])
        every = f(np.concatenate(parts).astype(np.float64))
        assert np.allclose(mean, every.mean(axis=0), atol=1e-5)
        assert np.allclose(std, every.std(axis=0), atol=1e-4)


def test_the_studys_dp_experiment_takes_the_remedy() -> None:
    t = load_federation(STUDY).experiment("dp")
    assert t.dp == Privacy(sigma=1.0, clip=5.0)
    assert t.model_args == {"output_bias": "prior", "input_transform": "standardize"}


def test_variants_change_only_what_they_say() -> None:
    t = load_federation(STUDY).experiment("dp")
    assert {"no-dp", "before", "dp"} <= set(DEFAULT_VARIANTS) <= set(VARIANTS)
    assert with_variant(t, VARIANTS["dp"]) == t
    before = with_variant(t, VARIANTS["before"])
    assert (before.dp, before.model_args) == (Privacy(sigma=1.0, clip=1.0), {})
    assert with_variant(t, VARIANTS["no-dp"]).dp is None
    sweep = with_variant(t, VARIANTS["clip0.1+"])
    assert (sweep.dp, sweep.model_args) == (Privacy(sigma=1.0, clip=0.1), t.model_args)
    assert before.rounds == t.rounds and before.epochs == t.epochs


def test_spearman() -> None:
    a = np.array([1, 2, 3, 4], dtype=np.float32)
    assert spearman(a, a * 10) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(spearman(a, np.ones(4, dtype=np.float32)))
