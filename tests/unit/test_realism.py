"""Realism of the builtin engine, calibrated on real Synthea (shared/reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

CENTRES = ("center_0", "center_1", "center_2")


def _read(folder: Path, name: str, columns: list[str] | None = None) -> pl.DataFrame:
    return pl.read_csv(folder / f"{name}.csv", infer_schema=False, columns=columns)


def _bag_of_codes(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """log(1 + count) of each observation code per patient, and GENDER == 'M'."""
    obs = _read(folder, "observations", ["PATIENT", "CODE"])
    counts = obs.group_by("PATIENT", "CODE").len().pivot(on="CODE", index="PATIENT",
                                                         values="len")
    table = _read(folder, "patients", ["Id", "GENDER"]).rename({"Id": "PATIENT"}).join(
        counts, on="PATIENT", how="left").fill_null(0)
    codes = [c for c in table.columns if c not in ("PATIENT", "GENDER")]
    x = np.log1p(table.select(codes).to_numpy().astype(float))
    return x, (table["GENDER"] == "M").to_numpy(), codes


@pytest.mark.parametrize("centre", CENTRES)
def test_sex_is_learnable_but_not_trivial(large_federation: Path, centre: str) -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    assert sklearn
    x, y, _ = _bag_of_codes(large_federation / centre)
    aucs = []
    for split in range(3):
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=split,
                                              stratify=y)
        model = LogisticRegression(max_iter=3000).fit(xtr, ytr)
        aucs.append(roc_auc_score(yte, model.predict_proba(xte)[:, 1]))
    auc = float(np.mean(aucs))
    print(f"{centre}: held-out AUC of bag-of-codes logistic regression = {auc:.3f}")
    assert 0.65 <= auc <= 0.85


@pytest.mark.parametrize("centre", CENTRES)
def test_no_code_gives_the_sex_away(large_federation: Path, centre: str) -> None:
    x, y, codes = _bag_of_codes(large_federation / centre)
    present = x > 0
    for k, code in enumerate(codes):
        in_m, in_f = present[y, k].mean(), present[~y, k].mean()
        # A code every patient of one sex carries (vital signs) is near-universal in the other
        # too: none marks one sex completely...
        if max(in_m, in_f) == 1.0:
            assert min(in_m, in_f) >= 0.9, code
        # ...and no sex-exclusive code covers more than a quarter of that sex.
        if in_m == 0:
            assert in_f < 0.25, code
        if in_f == 0:
            assert in_m < 0.25, code


def test_encounter_rates_and_class_mix(large_federation: Path) -> None:
    for centre in CENTRES:
        folder = large_federation / centre
        enc = _read(folder, "encounters", ["PATIENT", "START", "ENCOUNTERCLASS"])
        born = _read(folder, "patients", ["Id", "BIRTHDATE"]).rename({"Id": "PATIENT"})
        per_year = enc.with_columns(pl.col("START").str.slice(0, 4).cast(pl.Int32).alias("y")
                                    ).group_by("PATIENT", "y").len().join(born, on="PATIENT")
        per_year = per_year.with_columns(
            (pl.col("y") - pl.col("BIRTHDATE").str.slice(0, 4).cast(pl.Int32)).alias("age"))
        assert 2 <= per_year["len"].median() <= 4, centre  # type: ignore[operator]
        young = per_year.filter(pl.col("age") < 65)["len"].mean()
        old = per_year.filter(pl.col("age") >= 65)["len"].mean()
        if per_year.filter(pl.col("age") >= 65).height > 100:
            assert old > young * 1.2, centre  # type: ignore[operator]
        mix = dict(enc["ENCOUNTERCLASS"].value_counts(normalize=True).iter_rows())
        assert 0.3 <= mix["ambulatory"] <= 0.6
        assert 0.14 <= mix["wellness"] <= 0.41
        assert 0.08 <= mix["outpatient"] <= 0.25
        assert 0.01 <= mix["emergency"] <= 0.08 and 0.005 <= mix["inpatient"] <= 0.05


def test_observations_per_encounter_by_class(large_federation: Path) -> None:
    folder = large_federation / "center_0"  # US: the coding habits of Synthea's own output
    obs = _read(folder, "observations", ["ENCOUNTER"]).drop_nulls()
    enc = _read(folder, "encounters", ["Id", "ENCOUNTERCLASS"]).rename({"Id": "ENCOUNTER"})
    per = obs.group_by("ENCOUNTER").len().join(enc, on="ENCOUNTER")
    median = dict(per.group_by("ENCOUNTERCLASS").agg(pl.col("len").median()).iter_rows())
    assert 20 <= median["wellness"] <= 40
    assert median["ambulatory"] <= 6
    assert median["inpatient"] >= 20


def test_distinct_codes_per_cohort(default_federation: Path, large_federation: Path) -> None:
    for root in (default_federation, large_federation):
        for centre in CENTRES:
            codes = _read(root / centre, "observations", ["CODE"])["CODE"].n_unique()
            assert 130 <= codes <= 240, (root.name, centre, codes)


def test_vitals_are_coherent_per_patient_and_by_sex(large_federation: Path) -> None:
    folder = large_federation / "center_0"
    obs = _read(folder, "observations", ["PATIENT", "CODE", "VALUE"]).filter(
        pl.col("CODE").is_in(["8302-2", "39156-5"])).with_columns(pl.col("VALUE").cast(pl.Float64))
    sex = _read(folder, "patients", ["Id", "GENDER"]).rename({"Id": "PATIENT"})
    height = obs.filter(pl.col("CODE") == "8302-2").join(sex, on="PATIENT")
    spread = height.group_by("PATIENT").agg(pl.col("VALUE").std())["VALUE"].drop_nulls()
    assert spread.median() < 1.0  # adults keep their height  # type: ignore[operator]
    by_sex = dict(height.group_by("GENDER").agg(pl.col("VALUE").median()).iter_rows())
    assert by_sex["M"] - by_sex["F"] > 8
    bmi = obs.filter(pl.col("CODE") == "39156-5")["VALUE"]
    assert 22 <= bmi.median() <= 32  # type: ignore[operator]


def test_labs_shift_with_chronic_disease(large_federation: Path) -> None:
    folder = large_federation / "center_0"
    cond = _read(folder, "conditions", ["PATIENT", "CODE"])
    diabetic = set(cond.filter(pl.col("CODE") == "44054006")["PATIENT"])
    obs = _read(folder, "observations", ["PATIENT", "CODE", "VALUE"]).filter(
        pl.col("CODE") == "4548-4").with_columns(pl.col("VALUE").cast(pl.Float64))
    with_d = obs.filter(pl.col("PATIENT").is_in(diabetic))["VALUE"].median()
    without = obs.filter(~pl.col("PATIENT").is_in(diabetic))["VALUE"].median()
    assert with_d > without + 1.0  # type: ignore[operator]


def test_centres_differ_like_real_hospitals(large_federation: Path) -> None:
    def prevalence(centre: str, code: str) -> float:
        cond = _read(large_federation / centre, "conditions", ["PATIENT", "CODE"])
        n = _read(large_federation / centre, "patients", ["Id"]).height
        return cond.filter(pl.col("CODE") == code)["PATIENT"].n_unique() / n

    # Obesity is far commoner in the US centre than in Lyon; France reports labs on serum.
    assert prevalence("center_0", "162864005") > 1.5 * prevalence("center_1", "162864005")
    serum = {c: _read(large_federation / c, "observations", ["CODE"])["CODE"]
             .is_in(["2345-7"]).sum() for c in CENTRES}
    blood = {c: _read(large_federation / c, "observations", ["CODE"])["CODE"]
             .is_in(["2339-0"]).sum() for c in CENTRES}
    assert blood["center_0"] > serum["center_0"] and serum["center_1"] > blood["center_1"]


def test_records_point_to_existing_encounters_and_patients(default_federation: Path) -> None:
    folder = default_federation / "center_1"
    encounters = set(_read(folder, "encounters", ["Id"])["Id"])
    patients = set(_read(folder, "patients", ["Id"])["Id"])
    for name in ("conditions", "observations", "medications", "procedures", "immunizations",
                 "careplans", "allergies", "devices", "supplies", "imaging_studies"):
        frame = _read(folder, name, ["PATIENT", "ENCOUNTER"])
        assert set(frame["ENCOUNTER"].drop_nulls()) <= encounters, name
        assert set(frame["PATIENT"]) <= patients, name


def test_yearly_quality_of_life_rows(default_federation: Path) -> None:
    obs = _read(default_federation / "center_0", "observations", ["PATIENT", "DATE", "CODE"])
    q = obs.filter(pl.col("CODE").is_in(["QALY", "DALY", "QOLS"]))
    per = q.group_by("PATIENT", "CODE").len()
    assert per["len"].max() <= 10 and per["len"].median() >= 9  # type: ignore[operator]
