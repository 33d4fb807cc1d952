"""A centre's profile (node/profile.py) against a curious researcher: each figure thresholded
on the patients it uses, no small cell recoverable by subtraction, ages coarsened, and empty
or degenerate centres suppressed rather than failing. Small hand-made centres: only the
patients.csv columns the profile reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from fedjourney.config import load_federation
from fedjourney.node.profile import MIN_PATIENTS, profile, suppress
from tests.conftest import DEFAULT_CONFIG

SPEC = load_federation(DEFAULT_CONFIG).feature_spec()
WHEN = SPEC.cutoff or SPEC.end
CODES = len(SPEC.vocabulary)


def _born(age: float) -> str:
    """The birthdate of a patient `age` years old (a month past the birthday) at WHEN."""
    return (WHEN - dt.timedelta(days=round(age * 365.25 + 30))).isoformat()


def _centre(tmp_path: Path, birthdates: list[str], x: np.ndarray | None = None,
            positives: int = 0) -> dict[str, Any]:
    """The profile of a centre of len(birthdates) patients (no code, unless x is given)."""
    n = len(birthdates)
    ids = np.array([f"patient-{i}" for i in range(n)], dtype=np.str_)
    pl.DataFrame({"Id": ids.tolist(), "BIRTHDATE": birthdates},
                 schema={"Id": pl.String, "BIRTHDATE": pl.String}
                 ).write_csv(tmp_path / "patients.csv")
    y = np.zeros(n, dtype=np.float32)
    y[:positives] = 1
    features = np.zeros((n, CODES), dtype=np.float32) if x is None else x
    return profile(features, y, ids, tmp_path, SPEC)


@pytest.mark.parametrize("usable", [0, 1, MIN_PATIENTS - 1])
def test_ages_are_thresholded_on_the_birthdates_used(tmp_path: Path, usable: int) -> None:
    # 20 patients, of whom only `usable` have a parseable birthdate. The old profile counted
    # all 20 against the threshold: with one date it published that patient's age as all
    # three quartiles, with none it raised IndexError (np.quantile of nothing).
    dates = [_born(40 + i) for i in range(usable)] + ["not a date"] * (20 - usable)
    p = _centre(tmp_path, dates)
    assert p["patients"] == 20 and p["age"] is None


def test_a_birthdate_after_the_prediction_date_is_not_an_age(tmp_path: Path) -> None:
    dates = [_born(40 + i) for i in range(MIN_PATIENTS - 1)] + [_born(-1)] * 10
    assert _centre(tmp_path, dates)["age"] is None


def test_enough_birthdates_give_the_quartiles(tmp_path: Path) -> None:
    dates = [_born(40 + i) for i in range(MIN_PATIENTS)] + ["not a date"] * 15
    assert _centre(tmp_path, dates)["age"] == [40, 40, 45]


def test_quartiles_of_a_small_group_are_not_a_patients_age(tmp_path: Path) -> None:
    # With 5 ages, the quartiles are the 2nd, 3rd and 4th patients' exact ages: the old
    # profile published 43, 47 and 52.
    p = _centre(tmp_path, [_born(a) for a in (41, 43, 47, 52, 58)])
    assert p["age"] == [45, 45, 50]
    assert all(a % 5 == 0 for a in p["age"])


def test_very_old_patients_are_top_coded(tmp_path: Path) -> None:
    # The old profile published 93, 95 and 97.
    p = _centre(tmp_path, [_born(a) for a in range(91, 100)])
    assert p["age"] == [90, 90, 90]


def test_a_code_with_a_small_complement_is_suppressed(tmp_path: Path) -> None:
    # 20 patients; the patient count is published, so a prevalence of 0.9 tells that exactly
    # 2 patients lack the code (the old profile published it), and 1.0 that none does.
    x = np.zeros((20, CODES), dtype=np.float32)
    x[:18, 0] = 1  # 2 without: suppressed
    x[:, 1] = 1  # everyone, none without: suppressed
    x[:15, 2] = 1  # 5 without, 15 with: published
    x[:4, 3] = 1  # 4 with: suppressed
    p = _centre(tmp_path, [_born(50)] * 20, x, positives=17)
    prevalence = list(p["code_prevalence"].values())
    assert prevalence[:4] == [None, None, 0.75, None]
    assert p["positives"] is None  # 3 negatives


def test_the_class_balance_is_published_when_both_classes_are_large(tmp_path: Path) -> None:
    assert _centre(tmp_path, [_born(50)] * 20, positives=15)["positives"] == 15
    assert _centre(tmp_path, [_born(50)] * 20, positives=20)["positives"] is None


@pytest.mark.parametrize("n", [0, 1, MIN_PATIENTS - 1])
def test_a_tiny_centre_gives_a_suppressed_profile(tmp_path: Path, n: int) -> None:
    x = np.ones((n, CODES), dtype=np.float32)
    p = _centre(tmp_path, [_born(50)] * n, x, positives=n)
    assert p["patients"] == n and p["positives"] is None and p["age"] is None
    assert list(p["code_prevalence"]) == list(SPEC.vocabulary)
    assert set(p["code_prevalence"].values()) == {None}


def test_a_centre_whose_patients_csv_lacks_them_gives_no_age(tmp_path: Path) -> None:
    ids = np.array([f"other-{i}" for i in range(20)], dtype=np.str_)
    pl.DataFrame({"Id": [f"patient-{i}" for i in range(20)], "BIRTHDATE": [_born(50)] * 20}
                 ).write_csv(tmp_path / "patients.csv")
    p = profile(np.zeros((20, CODES), dtype=np.float32), np.zeros(20, dtype=np.float32),
                ids, tmp_path, SPEC)
    assert p["age"] is None


@pytest.mark.parametrize(("cells", "published"), [
    ([3, 17], [None, None]),  # a binary split: the other side is the total minus 3
    ([17, 3], [None, None]),
    ([0, 20], [None, None]),  # all in one cell
    ([5, 15], [5, 15]),
    ([2, 6, 30], [None, None, 30]),  # the next-smallest goes with the small one
    ([1, 2, 6, 30], [None, None, None, 30]),  # 1 + 2 alone would be a group of 3
    ([5, 6, 30], [5, 6, 30]),
    ([3], [None]),  # nothing left to hide it behind: the total is the cell
    ([], []),
])
def test_complementary_suppression(cells: list[int], published: list[int | None]) -> None:
    out = suppress(cells)
    assert out == published
    hidden = [c for c, v in zip(cells, out, strict=True) if v is None]
    assert not hidden or sum(hidden) >= MIN_PATIENTS or len(hidden) == len(cells)
