"""FeatureSpec, the polars and tanat backends, bad centre folders, and Stage A."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import load_federation, parse_federation
from fedjourney.errors import FedjourneyError
from fedjourney.features import (
    ConditionTarget,
    FeatureSet,
    FeatureSpec,
    build,
    load_spec,
    model_input,
    plan_input,
)
from fedjourney.features.spec import AGGREGATIONS, spec_from_dict
from fedjourney.features.vocabulary import code_counts, top_codes
from tests.conftest import DEFAULT_CONFIG

SPEC = load_federation(DEFAULT_CONFIG).feature_spec()


def test_spec_round_trips_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    SPEC.dump(path)
    again = load_spec(path)
    assert again == SPEC and again.fingerprint() == SPEC.fingerprint()
    assert SPEC.shape == (10, 30) and SPEC.feature_names[0] == "CODE_72514-3"


@pytest.mark.parametrize(("change", "message"), [
    ({"vocabulary": []}, "vocabulary is empty"),
    ({"vocabulary": ["1", "1"]}, "lists code '1' twice"),
    ({"bin_days": 0}, "bin_days must be"),
    ({"n_bins": 5000}, "n_bins must be"),
    ({"alignment": "pool"}, "alignment must be one of calendar, patient"),
    ({"values": "mean"}, "values must be one of presence, counts"),
    ({"aggregation": "max"}, "aggregation must be one of"),
    ({"end": "yesterday"}, "end must be a date"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"version": 2}, "spec version 2 is not supported"),
])
def test_spec_validation(change: dict[str, object], message: str) -> None:
    raw = {**SPEC.to_dict(), **change}
    with pytest.raises(FedjourneyError, match=message):
        spec_from_dict(raw)


VARIANTS = [dataclasses.replace(SPEC, alignment=a, values=v)
            for a in ("calendar", "patient") for v in ("counts", "presence")]
BACKENDS = ["polars", pytest.param("tanat", marks=pytest.mark.skipif(
    not importlib.util.find_spec("tanat"), reason="TanaT not installed"))]


def _backends_agree(folder: Path, spec: FeatureSpec) -> FeatureSet:
    """Both backends' X, exactly equal, and so every model input made from it."""
    pytest.importorskip("tanat")
    a, b = build(folder, spec, "polars"), build(folder, spec, "tanat")
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert list(a.patient_ids) == list(b.patient_ids)
    assert (a.events_in_vocabulary, a.events_outside_window) == (b.events_in_vocabulary,
                                                                 b.events_outside_window)
    for aggregation in AGGREGATIONS:
        as_input = dataclasses.replace(spec, aggregation=aggregation)
        assert np.array_equal(model_input(a.X, as_input), model_input(b.X, as_input))
    assert a.X.shape == (len(a.patient_ids), *spec.shape) and a.X.sum() > 0
    return a


@pytest.mark.parametrize("spec", VARIANTS, ids=lambda s: f"{s.alignment}-{s.values}")
def test_backends_agree_on_generated_data(default_federation: Path, spec: FeatureSpec) -> None:
    for centre in ("center_0", "center_1", "center_2"):
        fs = _backends_agree(default_federation / centre, spec)
        if spec.alignment == "calendar":  # the histories start before the grid
            assert fs.events_outside_window > 0


@pytest.mark.parametrize("spec", VARIANTS, ids=lambda s: f"{s.alignment}-{s.values}")
@pytest.mark.parametrize("sample", ["sample_ma10", "sample_ca"])
def test_backends_agree_on_real_synthea(reference: Path, sample: str, spec: FeatureSpec
                                        ) -> None:
    folder = reference / "synthea-samples" / sample
    # The samples end in 2026 and 2022: the calendar grid ends the day after the last event.
    last = pl.scan_csv(folder / "observations.csv", infer_schema=False).select(
        pl.col("DATE").str.slice(0, 10).str.to_date().max()).collect().item()
    fs = _backends_agree(folder, dataclasses.replace(spec, end=last + dt.timedelta(days=1)))
    assert fs.events_outside_window > 0
    if spec.alignment == "patient":
        assert fs.summary()["patients_with_events"] == len(fs.y)


# A clinical target: hypertension first diagnosed from 2022-01-01 (features before it).
CONDITION_VARIANTS = [dataclasses.replace(v, target=ConditionTarget("59621000",
                                                                    dt.date(2022, 1, 1)))
                      for v in VARIANTS]


@pytest.mark.parametrize("spec", CONDITION_VARIANTS, ids=lambda s: f"{s.alignment}-{s.values}")
def test_backends_agree_on_a_condition_target(default_federation: Path, spec: FeatureSpec
                                              ) -> None:
    for centre in ("center_0", "center_1", "center_2"):
        fs = _backends_agree(default_federation / centre, spec)
        assert 0 < fs.y.sum() < len(fs.y) and fs.summary()["patients_excluded"] > 0


@pytest.mark.parametrize("spec", CONDITION_VARIANTS, ids=lambda s: f"{s.alignment}-{s.values}")
@pytest.mark.parametrize("sample", ["sample_ma10", "sample_ca"])
def test_backends_agree_on_a_condition_target_in_real_synthea(reference: Path, sample: str,
                                                              spec: FeatureSpec) -> None:
    folder = reference / "synthea-samples" / sample
    last = pl.scan_csv(folder / "observations.csv", infer_schema=False).select(
        pl.col("DATE").str.slice(0, 10).str.to_date().max()).collect().item()
    # Stress (finding), frequent in both samples; predicted two years before their end.
    target = ConditionTarget("73595000", last - dt.timedelta(days=730))
    fs = _backends_agree(folder, dataclasses.replace(spec, end=last + dt.timedelta(days=1),
                                                     target=target))
    assert fs.summary()["patients_excluded"] > 0


def test_backend_is_chosen_in_the_config_and_not_part_of_the_spec() -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert load_federation(DEFAULT_CONFIG).features_backend == "polars"
    raw["features"]["backend"] = "tanat"
    fed = parse_federation(raw, Path("data/federation.yaml"))
    assert fed.features_backend == "tanat" and fed.feature_spec() == SPEC
    assert fed.feature_spec().fingerprint() == SPEC.fingerprint()
    raw["features"]["backend"] = "x"
    with pytest.raises(FedjourneyError) as error:
        parse_federation(raw, Path("data/federation.yaml"))
    assert str(error.value) == ("data/federation.yaml: features.backend: unknown backend 'x'; "
                                "use one of polars, tanat")


def test_counts_and_presence_mean_what_they_say(default_federation: Path) -> None:
    counts = build(default_federation / "center_0", SPEC)
    presence = build(default_federation / "center_0", dataclasses.replace(SPEC,
                                                                          values="presence"))
    assert set(np.unique(presence.X)) <= {0.0, 1.0}
    np.testing.assert_array_equal(presence.X, np.minimum(counts.X, 1))
    assert counts.X.max() > 1
    # The default spec gives the sequence; a vector plan sees its mean over the bins.
    sequence = model_input(counts.X, SPEC)
    assert sequence.shape == (len(counts.y), 10, 30)
    vector = plan_input(sequence, SPEC, "vector")
    np.testing.assert_array_equal(vector, model_input(counts.X, dataclasses.replace(
        SPEC, aggregation="mean")))
    np.testing.assert_array_equal(plan_input(sequence.reshape(len(counts.y), -1), SPEC,
                                             "sequence"), sequence)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_shape_in_every_centre_even_with_missing_codes(default_federation: Path,
                                                            backend: str) -> None:
    # A code no patient has still gets its (zero) column: shapes match by construction.
    spec = dataclasses.replace(SPEC, vocabulary=(*SPEC.vocabulary, "99999-9"))
    for centre in ("center_0", "center_1", "center_2"):
        fs = build(default_federation / centre, spec, backend)
        assert fs.X.shape[1:] == (10, 31) and fs.X[:, :, -1].sum() == 0


def _copy(default_federation: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "centre"
    shutil.copytree(default_federation / "center_2", folder)
    return folder


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_file_is_named(default_federation: Path, tmp_path: Path, backend: str) -> None:
    folder = _copy(default_federation, tmp_path)
    (folder / "observations.csv").unlink()
    with pytest.raises(FedjourneyError, match=r"observations\.csv: file missing"):
        build(folder, SPEC, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_column_is_named(default_federation: Path, tmp_path: Path, backend: str) -> None:
    folder = _copy(default_federation, tmp_path)
    path = folder / "patients.csv"
    path.write_text(path.read_text().replace("GENDER", "SEX", 1))
    with pytest.raises(FedjourneyError, match=r"patients\.csv: column GENDER missing"):
        build(folder, SPEC, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unparseable_date_is_named(default_federation: Path, tmp_path: Path,
                                   backend: str) -> None:
    folder = _copy(default_federation, tmp_path)
    path = folder / "observations.csv"
    lines = path.read_text().split("\n")
    cells = lines[5].split(",")
    cells[2] = "13/07/2019"
    lines[5] = ",".join(cells)
    path.write_text("\n".join(lines))
    with pytest.raises(FedjourneyError, match=r"rows have an unparseable DATE; expected") as e:
        build(folder, SPEC, backend)
    assert "13/07/2019" not in str(e.value)  # no raw value of a record in a node's logs


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_observations_gives_zero_rows(default_federation: Path, tmp_path: Path,
                                            backend: str) -> None:
    folder = _copy(default_federation, tmp_path)
    path = folder / "observations.csv"
    path.write_text(path.read_text().split("\n")[0] + "\n")  # header only
    fs = build(folder, SPEC, backend)
    assert fs.X.shape == (len(fs.y), 10, 30) and fs.X.sum() == 0
    assert fs.summary()["patients_with_events"] == 0
    path.write_text("")
    with pytest.raises(FedjourneyError, match="empty file, no CSV header"):
        build(folder, SPEC, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_codes_outside_vocabulary_are_left_out(default_federation: Path, backend: str) -> None:
    fs = build(default_federation / "center_0", SPEC, backend)
    summary = fs.summary()
    codes = pl.read_csv(default_federation / "center_0" / "observations.csv",
                        infer_schema=False, columns=["CODE"])["CODE"]
    assert summary["events_in_vocabulary"] == codes.is_in(list(SPEC.vocabulary)).sum()
    assert summary["events_in_vocabulary"] < codes.len()
    assert fs.X.sum() == summary["events_in_vocabulary"] - summary["events_outside_window"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_patient_in_observations_is_an_error(default_federation: Path,
                                                     tmp_path: Path, backend: str) -> None:
    folder = _copy(default_federation, tmp_path)
    path = folder / "patients.csv"
    lines = path.read_text().split("\n")
    path.write_text("\n".join([lines[0], *lines[2:]]))
    with pytest.raises(FedjourneyError, match=r"1 patients \(\d+ rows\) are not in patients") as e:
        build(folder, SPEC, backend)
    removed = lines[1].split(",")[lines[0].split(",").index("Id")]
    assert removed not in str(e.value)  # no patient id in a node's logs


def test_empty_patient_id_is_an_error(default_federation: Path, tmp_path: Path) -> None:
    # "" is the tanat backend's anchor id: no patient may have it.
    folder = _copy(default_federation, tmp_path)
    path = folder / "patients.csv"
    header, first, *rest = path.read_text().split("\n")
    cells = first.split(",")
    cells[header.split(",").index("Id")] = '""'
    path.write_text("\n".join([header, ",".join(cells), *rest]))
    with pytest.raises(FedjourneyError, match=r"Id must be unique and non-empty"):
        build(folder, SPEC)


def test_vocabulary_from_aggregates_reproduces_the_config(default_federation: Path) -> None:
    reports = [code_counts(default_federation / f"center_{i}") for i in range(3)]
    assert all(min(c["patients"] for c in r.values()) >= 5 for r in reports)
    assert top_codes(reports, 30) == list(SPEC.vocabulary)


def test_features_command_saves_the_arrays(default_federation: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.npz"
    assert main(["features", str(default_federation / "center_1"), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.split("saved")[0])
    saved = np.load(out)
    assert saved["X"].shape == tuple(summary["shape"]) and saved["X"].shape[1:] == (10, 30)
    assert saved["y"].shape == saved["patient_ids"].shape
    assert list(saved["feature_names"]) == SPEC.feature_names
