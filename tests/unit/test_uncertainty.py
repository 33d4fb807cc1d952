"""The AUC's 95 % interval (model.auc_interval): against a seeded bootstrap, known cases,
the degenerate ones, and the t quantile it is built on."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from fedjourney.model import _t_quantile, auc, auc_interval, informative


def labels(positives: int, negatives: int) -> npt.NDArray[np.float32]:
    return np.r_[np.ones(positives), np.zeros(negatives)].astype(np.float32)


def shifted(seed: int, positives: int, negatives: int, shift: float
            ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Positives' scores N(shift, 1), negatives' N(0, 1): true AUC Phi(shift / sqrt 2)."""
    rng = np.random.default_rng(seed)
    return labels(positives, negatives), np.r_[rng.normal(shift, 1, positives),
                                               rng.normal(0, 1, negatives)].astype(np.float32)


def bootstrap(y: npt.NDArray[np.float32], score: npt.NDArray[np.float32], seed: int,
              times: int = 2000) -> tuple[float, float]:
    """Percentile interval of auc, resampling positives and negatives apart (seeded)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y > 0.5), np.flatnonzero(y <= 0.5)
    values = []
    for _ in range(times):
        pick = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        values.append(auc(y[pick], score[pick]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_interval_agrees_with_a_seeded_bootstrap(seed: int) -> None:
    y, score = shifted(seed, 40, 60, 1.0)
    low, high = auc_interval(y, score)
    boot_low, boot_high = bootstrap(y, score, seed)
    assert low < auc(y, score) < high
    assert low == pytest.approx(boot_low, abs=0.03)
    assert high == pytest.approx(boot_high, abs=0.03)


def test_perfect_separation_of_many_patients_is_near_1_and_informative() -> None:
    y = labels(100, 100)
    score = (y + np.random.default_rng(0).random(200) * 0.5).astype(np.float32)
    low, high = auc_interval(y, score)
    assert auc(y, score) == 1.0 and high == 1.0 and 0.99 < low < 1.0
    assert informative(low, high)
    # Reversed, the model is reliably wrong: below 0.5, which is information too.
    low, high = auc_interval(y, -score)
    assert low == 0.0 and 0.0 < high < 0.01 and informative(low, high)


def test_random_scores_on_15_patients_span_chance() -> None:
    y, score = shifted(7, 2, 13, 0.0)  # the default demo's size: 15 held out, 2 positive
    low, high = auc_interval(y, score)
    assert low < 0.5 < high and not informative(low, high)
    assert high - low > 0.5  # two positives say little


def test_a_chance_level_model_is_called_informative_about_5_percent_of_the_time() -> None:
    """The interval's coverage where it matters most: few positives, no signal."""
    calls = [informative(*auc_interval(*shifted(seed, 3, 12, 0.0))) for seed in range(400)]
    assert 0.0 < sum(calls) / len(calls) <= 0.06


def test_it_holds_the_auc_and_mirrors_when_scores_are_reversed() -> None:
    y, score = shifted(3, 6, 20, 0.5)
    score = np.round(score, 1)  # ties
    low, high = auc_interval(y, score)
    assert low < auc(y, score) < high
    mirrored = auc_interval(y, -score)
    assert mirrored == pytest.approx((1 - high, 1 - low))
    narrow = auc_interval(y, score, level=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_every_score_tied_gives_a_narrow_interval_at_chance() -> None:
    low, high = auc_interval(labels(5, 10), np.full(15, 0.3, dtype=np.float32))
    assert math.isfinite(low) and math.isfinite(high)
    assert low < 0.5 < high and high - low < 0.1 and not informative(low, high)


@pytest.mark.parametrize("rank", ["top", "middle", "bottom"])
def test_one_positive_gives_a_finite_interval_that_spans_chance(rank: str) -> None:
    negatives = np.linspace(0.1, 0.8, 14)
    positive = {"top": 0.9, "middle": 0.45, "bottom": 0.0}[rank]
    y, score = labels(1, 14), np.r_[positive, negatives].astype(np.float32)
    low, high = auc_interval(y, score)
    assert 0.0 <= low <= auc(y, score) <= high <= 1.0
    assert low < 0.5 < high and not informative(low, high)


def test_one_patient_of_each_class_and_small_cases_stay_in_0_1() -> None:
    for y, score in [(labels(1, 1), [0.9, 0.1]), (labels(1, 1), [0.1, 0.9]),
                     (labels(1, 1), [0.5, 0.5]), (labels(2, 1), [0.9, 0.8, 0.1]),
                     (labels(2, 2), [0.9, 0.8, 0.2, 0.1])]:
        low, high = auc_interval(y, np.asarray(score, dtype=np.float32))
        assert 0.0 <= low <= high <= 1.0 and math.isfinite(low) and math.isfinite(high)
        assert low < 0.5 < high  # two to four patients decide nothing


def test_a_missing_class_or_a_broken_score_has_no_interval() -> None:
    for y, score in [(labels(0, 5), np.linspace(0, 1, 5)), (labels(5, 0), np.linspace(0, 1, 5)),
                     (labels(2, 2), np.array([0.1, np.nan, 0.3, 0.4]))]:
        low, high = auc_interval(y, score.astype(np.float32))
        assert math.isnan(low) and math.isnan(high) and not informative(low, high)
    with pytest.raises(ValueError, match="level"):
        auc_interval(labels(2, 2), np.zeros(4, dtype=np.float32), level=95)


def test_informative_means_entirely_on_one_side_of_chance() -> None:
    assert informative(0.51, 0.9) and informative(0.1, 0.49)
    assert not informative(0.4, 0.6) and not informative(0.5, 0.9)


@pytest.mark.parametrize(("p", "df", "table"), [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 3, 3.182), (0.975, 10, 2.228),
    (0.975, 30, 2.042), (0.975, 120, 1.980), (0.975, 1e6, 1.960), (0.95, 5, 2.015),
    (0.995, 4, 4.604)])
def test_the_t_quantile_matches_the_tables(p: float, df: float, table: float) -> None:
    assert _t_quantile(p, df) == pytest.approx(table, rel=2e-3)
