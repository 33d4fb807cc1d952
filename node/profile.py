"""A centre's profile in aggregates only, computed on its node and published with its dataset
record: how many patients, the class balance, the age spread and how often each code of the
vocabulary is seen. Counts under MIN_PATIENTS are suppressed, as in vocabulary reports; no
patient's identifier or record leaves the node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fedjourney.features import FeatureSpec
from fedjourney.features.vocabulary import MIN_PATIENTS


def profile(x: npt.NDArray[np.float32], y: npt.NDArray[np.float32],
            ids: npt.NDArray[np.str_], folder: Path, spec: FeatureSpec) -> dict[str, Any]:
    """{patients, positives, age: [q1, median, q3] at the prediction date, code_prevalence:
    {code: share of patients with it}} — small cells as None."""
    n = len(ids)
    codes = len(spec.vocabulary)
    seen = (x.reshape(n, -1, codes) > 0).any(axis=1).sum(axis=0) if n else np.zeros(codes)
    positives = int(y.sum())
    return {
        "patients": n,
        "positives": positives if min(positives, n - positives) >= MIN_PATIENTS else None,
        "age": _ages(folder, ids, spec) if n >= MIN_PATIENTS else None,
        "code_prevalence": {code: (round(float(k) / n, 4) if k >= MIN_PATIENTS else None)
                            for code, k in zip(spec.vocabulary, seen, strict=True)},
    }


def _ages(folder: Path, ids: npt.NDArray[np.str_], spec: FeatureSpec) -> list[int]:
    when = spec.cutoff or spec.end
    born = (pl.scan_csv(folder / "patients.csv", infer_schema=False)
            .select("Id", pl.col("BIRTHDATE").str.to_date(strict=False))
            .filter(pl.col("Id").is_in(ids.tolist())).collect()["BIRTHDATE"].drop_nulls())
    years = np.array([(when - d).days / 365.25 for d in born.to_list()])
    return [round(float(q)) for q in np.quantile(years, [0.25, 0.5, 0.75])]
