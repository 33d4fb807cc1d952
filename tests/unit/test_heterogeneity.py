"""The centres' profiles (aggregates computed on each node) and the heterogeneity report the
researcher writes from them: sane figures, small cells suppressed, no identifiers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl

from fedjourney.config import load_federation
from fedjourney.contract import DatasetRecord
from fedjourney.node.data import check_data
from fedjourney.researcher.heterogeneity import distances, report
from tests.conftest import DEFAULT_CONFIG

FED = load_federation(DEFAULT_CONFIG)


def _records(default_federation: Path, tmp_path: Path) -> list:  # type: ignore[type-arg]
    return [check_data(default_federation / c.folder_name, c, FED.feature_spec(), "polars",
                       tmp_path / f"rec-{c.id}.json", tmp_path / "cache")[0]
            for c in FED.centres]


def test_a_profile_is_aggregates_only(default_federation: Path, tmp_path: Path) -> None:
    records = _records(default_federation, tmp_path)
    for record, centre in zip(records, FED.centres, strict=True):
        p = record.profile
        patients = pl.read_csv(default_federation / centre.folder_name / "patients.csv",
                               infer_schema=False)
        assert p["patients"] == record.patients
        assert p["positives"] is None or 5 <= p["positives"] <= p["patients"] - 5
        q1, median, q3 = p["age"]  # rounded to 5 years
        assert centre.age_min - 3 <= q1 <= median <= q3 <= centre.age_max + 14
        assert all(a % 5 == 0 for a in p["age"])
        assert set(p["code_prevalence"]) == set(FED.feature_spec().vocabulary)
        shares = [v for v in p["code_prevalence"].values() if v is not None]
        n = p["patients"]
        assert all(5 / n <= v <= 1 - 5 / n for v in shares)  # 5 with it and 5 without
        published = json.dumps(p)
        assert not [i for i in patients["Id"].to_list() if i in published]


def test_small_cells_are_suppressed(default_federation: Path) -> None:
    import numpy as np

    from fedjourney.node.profile import profile

    centre, spec = FED.centres[0], FED.feature_spec()
    ids = pl.read_csv(default_federation / centre.folder_name / "patients.csv",
                      infer_schema=False)["Id"].to_numpy()[:20]
    x = np.zeros((20, len(spec.vocabulary)), dtype=np.float32)
    x[:4, 0] = 1  # 4 patients: suppressed
    x[:5, 1] = 2  # 5 patients: published
    y = np.zeros(20, dtype=np.float32)
    y[:3] = 1  # 3 positives: suppressed
    p = profile(x, y, ids, default_federation / centre.folder_name, spec)
    prevalence = list(p["code_prevalence"].values())
    assert prevalence[0] is None and prevalence[1] == 0.25 and prevalence[2] is None
    assert p["positives"] is None and p["patients"] == 20 and len(p["age"]) == 3


def test_the_report_names_each_centre(default_federation: Path, tmp_path: Path) -> None:
    # How far apart they are: test_distances_use_the_codes_both_centres_published (the
    # default centres' 50 patients leave few codes with 5 patients on each side).
    records = _records(default_federation, tmp_path)
    text = "\n".join(report(records))
    for r in records:
        assert f"| {r.label} | {r.patients} |" in text
    assert report([replace(r, profile={}) for r in records]) == []
    hidden = [replace(r, profile={**r.profile, "code_prevalence": {
        c: None for c in r.profile["code_prevalence"]}}) for r in records]
    assert "none computed, no two centres published a code in common" in "\n".join(
        report(hidden))


def test_distances_use_the_codes_both_centres_published(
        default_federation: Path, tmp_path: Path) -> None:
    # A suppressed share may be near 0 or near 1 (all but a few patients have the code): it
    # is left out of both vectors, not read as 0.
    base = _records(default_federation, tmp_path)[0]

    def centre(i: int, prevalence: dict[str, float | None]) -> DatasetRecord:
        return replace(base, centre_id=i, centre=f"C{i}",
                       profile={**base.profile, "code_prevalence": prevalence})

    a = centre(1, {"x": 0.5, "y": None, "z": 0.2})
    b = centre(2, {"x": 0.5, "y": 0.9, "z": 0.2})
    c = centre(3, {"x": 0.1, "y": 0.9, "z": 0.6})
    d = centre(4, {"x": None, "y": 0.9, "z": None})
    pairs = distances([a, b, c, d])
    assert pairs[(a.label, b.label)] == 0
    assert 0 < pairs[(a.label, c.label)] < 1 and 0 < pairs[(b.label, c.label)] < 1
    assert (a.label, d.label) not in pairs  # nothing published by both
    assert pairs[(b.label, d.label)] == 0 == pairs[(c.label, d.label)]
