"""A centre's profile in aggregates only, computed on its node and published with its dataset
record: how many patients, the class balance, the age spread and how often each code of the
vocabulary is seen. No patient's identifier or record leaves the node, and no cell of fewer
than MIN_PATIENTS patients either, directly or by subtraction:

- each figure is computed from, and thresholded on, the patients it actually uses: the ages
  on the patients with a usable birthdate, not on all patients;
- the patient count is published (it is the dataset record's too), so a count k is published
  only when its complement n - k also reaches MIN_PATIENTS (`suppress`): "all but 2 have it"
  names a group of 2 as surely as "2 have it";
- ages are quartiles rounded to AGE_STEP years and top-coded at AGE_TOP, so that a quartile
  of a small group is not one patient's exact age;
- an empty or degenerate centre gives the same keys, suppressed (None), never an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fedjourney.features import FeatureSpec
from fedjourney.features.vocabulary import MIN_PATIENTS

AGE_STEP = 5  # years: the 5-year age bands of official statistics
AGE_TOP = 90  # HIPAA Safe Harbor: ages over 89 only as one "90 or older" category


def profile(x: npt.NDArray[np.float32], y: npt.NDArray[np.float32],
            ids: npt.NDArray[np.str_], folder: Path, spec: FeatureSpec) -> dict[str, Any]:
    """{patients, positives, age: [q1, median, q3] at the prediction date (rounded to
    AGE_STEP years, AGE_TOP meaning that age or older), code_prevalence: {code: share of
    patients with it}} — small cells, and the cells that would give them away, as None."""
    n = len(ids)
    codes = len(spec.vocabulary)
    seen = ((x.reshape(n, -1, codes) > 0).any(axis=1).sum(axis=0) if n
            else np.zeros(codes, dtype=np.int64))
    positives = int(y.sum())
    return {
        "patients": n,
        "positives": suppress([positives, n - positives])[0],
        "age": _ages(folder, ids, spec),
        "code_prevalence": {code: _share(int(k), n)
                            for code, k in zip(spec.vocabulary, seen, strict=True)},
    }


def suppress(cells: list[int], threshold: int = MIN_PATIENTS) -> list[int | None]:
    """The cells of a partition whose total is published, those not to publish as None.

    Primary suppression: every cell under `threshold`, an empty one too ("none of them" is as
    telling as "all of them"). Complementary suppression: the total minus the published cells
    gives the sum of the suppressed ones, so while that sum is under `threshold` (one cell
    alone, or small cells adding up to a small group) the smallest published cell is
    suppressed too: the usual rule of official statistics, as it hides the suppressed cells
    behind at least `threshold` patients at the least cost in published figures. A binary
    split with either side under `threshold` therefore publishes neither."""
    out: list[int | None] = [c if c >= threshold else None for c in cells]
    while (any(v is None for v in out) and any(v is not None for v in out)
           and sum(c for c, v in zip(cells, out, strict=True) if v is None) < threshold):
        smallest = min((c, i) for i, (c, v) in enumerate(zip(cells, out, strict=True))
                       if v is not None)
        out[smallest[1]] = None
    return out


def _share(k: int, n: int) -> float | None:
    """k / n, when both the k patients with it and the n - k without it are enough."""
    return round(k / n, 4) if suppress([k, n - k])[0] is not None else None


def _ages(folder: Path, ids: npt.NDArray[np.str_], spec: FeatureSpec) -> list[int] | None:
    """[q1, median, q3] of the ages at the prediction date, coarsened; None unless at least
    MIN_PATIENTS of the patients have a usable birthdate (parseable, not after that date):
    the threshold counts the birthdates used, not the patients."""
    if not len(ids):
        return None
    when = spec.cutoff or spec.end
    born = (pl.scan_csv(folder / "patients.csv", infer_schema=False)
            .select("Id", pl.col("BIRTHDATE").str.to_date(strict=False))
            .filter(pl.col("Id").is_in(ids.tolist()) & (pl.col("BIRTHDATE") <= when))
            .unique("Id", keep="first", maintain_order=True).collect()["BIRTHDATE"])
    if len(born) < MIN_PATIENTS:
        return None
    years = np.array([(when - d).days / 365.25 for d in born.to_list()])
    return [min(AGE_TOP, AGE_STEP * round(float(q) / AGE_STEP))
            for q in np.quantile(years, [0.25, 0.5, 0.75])]
