"""A clinical target: a condition of conditions.csv, predicted at a cutoff date from the
observations recorded before it — labels, exclusions, no leakage, and Stage A."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from fedjourney.config import load_federation, parse_federation
from fedjourney.errors import FedjourneyError
from fedjourney.features import ConditionTarget, build, load_spec, spec_from_dict
from fedjourney.features.vocabulary import code_counts
from tests.conftest import DEFAULT_CONFIG

SPEC = load_federation(DEFAULT_CONFIG).feature_spec()
HYPERTENSION = "59621000"
CUTOFF = dt.date(2022, 1, 1)
CONDITION = dataclasses.replace(SPEC, target=ConditionTarget(HYPERTENSION, CUTOFF))
BACKENDS = ["polars", pytest.param("tanat", marks=pytest.mark.skipif(
    not importlib.util.find_spec("tanat"), reason="TanaT not installed"))]
LEAK = "LEAK-0"  # a fresh observation code, planted where only the outcome could put it


def test_the_default_spec_is_unchanged() -> None:
    # Node caches and recorded results key on this fingerprint: condition targets add keys
    # only to their own specs.
    assert SPEC.to_dict()["target"] == {"column": "GENDER", "positive": "M"}
    # 9e83cae5581d since the shipped configs give the per-bin sequence (for the gru plan);
    # it was 40cc6eaff76f with `aggregation: mean`.
    assert SPEC.fingerprint() == "9e83cae5581d" and SPEC.cutoff is None


def test_a_condition_spec_round_trips_as_it_travels(tmp_path: Path) -> None:
    assert CONDITION.to_dict()["target"] == {"condition": HYPERTENSION, "cutoff": "2022-01-01"}
    # researcher -> node: model_args carry to_dict(), as JSON
    again = spec_from_dict(json.loads(json.dumps(CONDITION.to_dict())))
    assert again == CONDITION and again.fingerprint() == CONDITION.fingerprint()
    CONDITION.dump(tmp_path / "spec.yaml")
    assert load_spec(tmp_path / "spec.yaml") == CONDITION
    assert CONDITION.fingerprint() != SPEC.fingerprint()
    # The calendar grid ends at the cutoff: the prediction is made then.
    assert CONDITION.start == CUTOFF - dt.timedelta(days=SPEC.bin_days * SPEC.n_bins)


def test_the_config_takes_a_condition_target() -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    # Unquoted in YAML: the code reads as a number and the cutoff as a date.
    raw["features"]["target"] = yaml.safe_load("{condition: 59621000, cutoff: 2022-01-01}")
    spec = parse_federation(raw, Path("data/federation.yaml")).feature_spec()
    assert spec == CONDITION


@pytest.mark.parametrize(("target", "message"), [
    ({"condition": HYPERTENSION, "cutoff": "2025-06-01"},
     "invalid feature spec: target.cutoff 2025-06-01 must be before end 2025-01-01 (the "
     "reference date), the outcome being looked for between the two; choose an earlier "
     "cutoff"),
    ({"condition": HYPERTENSION, "cutoff": "2025-01-01"}, "must be before end 2025-01-01"),
    ({"condition": HYPERTENSION, "cutoff": "soon"},
     "features: target.cutoff must be a date YYYY-MM-DD, got 'soon'"),
    ({"condition": HYPERTENSION}, "features: target must be {column: GENDER, positive: M} or "
                                  "{condition: <SNOMED code of conditions.csv>, cutoff: "
                                  "YYYY-MM-DD}"),
    ({"column": "GENDER", "cutoff": "2022-01-01"}, "target must be {column: GENDER"),
    ({"disease": HYPERTENSION, "cutoff": "2022-01-01"}, "target must be {column: GENDER"),
    ({"condition": " ", "cutoff": "2022-01-01"}, "target.condition must be one code"),
    ({"condition": None, "cutoff": "2022-01-01"}, "target.condition must be one code"),
])
def test_a_bad_condition_target_is_refused_in_one_line(target: dict[str, str],
                                                       message: str) -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["features"]["target"] = target
    with pytest.raises(FedjourneyError) as error:
        parse_federation(raw, Path("data/federation.yaml"))
    assert message in str(error.value) and "\n" not in str(error.value)


def _onsets(folder: Path, code: str) -> dict[str, dt.date]:
    """Each patient's first START of `code`, straight from the CSV text."""
    onset: dict[str, dt.date] = {}
    with (folder / "conditions.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["CODE"] == code:
                day = dt.date.fromisoformat(row["START"][:10])
                onset[row["PATIENT"]] = min(day, onset.get(row["PATIENT"], day))
    return onset


def _expected(folder: Path, code: str, cutoff: dt.date, end: dt.date) -> dict[str, float]:
    """{patient: label} of the population at the cutoff, in patients.csv order: alive at
    the cutoff, not diagnosed before it; 1 when first diagnosed in [cutoff, end)."""
    onset = _onsets(folder, code)
    labels = {}
    with (folder / "patients.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            born = dt.date.fromisoformat(row["BIRTHDATE"])
            died = dt.date.fromisoformat(row["DEATHDATE"]) if row["DEATHDATE"] else None
            first = onset.get(row["Id"])
            if born >= cutoff or (died and died < cutoff) or (first and first < cutoff):
                continue
            labels[row["Id"]] = float(first is not None and first < end)
    return labels


@pytest.mark.parametrize("code", [HYPERTENSION, "44054006", "433144002"])
def test_labels_match_conditions_csv(large_federation: Path, code: str) -> None:
    spec = dataclasses.replace(SPEC, target=ConditionTarget(code, CUTOFF))
    for centre in ("center_0", "center_1", "center_2"):
        folder = large_federation / centre
        fs = build(folder, spec)
        expected = _expected(folder, code, CUTOFF, spec.end)
        assert list(fs.patient_ids) == list(expected)  # population, in file order
        assert fs.y.tolist() == list(expected.values())
        assert 0 < fs.y.sum() < len(fs.y)
        # Diagnosed before the cutoff: left out (their record would give the answer away).
        before = {p for p, day in _onsets(folder, code).items() if day < CUTOFF}
        assert before and not before & set(fs.patient_ids)
        assert fs.summary()["patients_excluded"] >= len(before)
        assert fs.X.shape == (len(expected), *spec.shape)


def _plant_leak(folder: Path, onsets: dict[str, dt.date]) -> None:
    """Append LEAK rows to observations.csv for these patients: exactly at the onset
    (midnight), later that day, and a month on — what a diagnosis visit would record."""
    path = folder / "observations.csv"
    header, template = path.read_text(encoding="utf-8").split("\n")[:2]
    columns = header.split(",")
    lines = []
    for patient, day in onsets.items():
        for when in (f"{day}T00:00:00Z", f"{day}T09:30:00Z",
                     f"{day + dt.timedelta(days=30)}T10:00:00Z"):
            cells = template.split(",")
            for column, value in (("PATIENT", patient), ("DATE", when), ("CODE", LEAK),
                                  ("DESCRIPTION", "Label-revealing test code")):
                cells[columns.index(column)] = value
            lines.append(",".join(cells))
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_leakage_a_label_revealing_code_never_reaches_x(default_federation: Path,
                                                           tmp_path: Path,
                                                           backend: str) -> None:
    folder = tmp_path / "centre"
    shutil.copytree(default_federation / "center_0", folder)
    onsets = _onsets(folder, HYPERTENSION)
    recent = sorted(d for d in onsets.values() if d >= dt.date(2020, 1, 1))
    assert len(recent) >= 3, "the centre needs 3 recent diagnoses for this test"
    cutoff = recent[-3]  # one patient is diagnosed exactly on the cutoff day
    on_cutoff = next(p for p, d in onsets.items() if d == cutoff)
    _plant_leak(folder, {p: d for p, d in onsets.items() if d >= cutoff})  # the positives
    spec = dataclasses.replace(SPEC, vocabulary=(*SPEC.vocabulary, LEAK),
                               target=ConditionTarget(HYPERTENSION, cutoff))
    # The planted rows are there for any spec that reads past the cutoff...
    assert build(folder, dataclasses.replace(spec, target=SPEC.target)).X[:, :, -1].sum() > 0
    # ...and never in X for one that predicts at the cutoff, whatever the alignment.
    for alignment in ("calendar", "patient"):
        fs = build(folder, dataclasses.replace(spec, alignment=alignment), backend)
        assert fs.X[:, :, -1].sum() == 0, alignment
        assert fs.y.sum() >= 3 and fs.y[list(fs.patient_ids).index(on_cutoff)] == 1.0
        assert fs.X.sum() > 0
    # Nor can the code be chosen for the vocabulary from the reports before the cutoff.
    assert LEAK in code_counts(folder, min_patients=1)
    assert LEAK not in code_counts(folder, min_patients=1, before=cutoff)
