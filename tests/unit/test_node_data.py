"""The node's data check: every kind of broken centre is refused with one line naming the
file and the problem, never a patient's identifier or a raw value (that line reaches the
node's logs); a sound centre is recorded with its fingerprint and spec."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from fedjourney.config import load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.features import ConditionTarget, FeatureSpec
from fedjourney.node.data import check_data, recorded
from tests.broken_data import BROKEN, RAW, _edit, _set_cell
from tests.conftest import DEFAULT_CONFIG

FED = load_federation(DEFAULT_CONFIG)
CENTRE = FED.centres[1]
HYPERTENSION = "59621000"
CONDITION = dataclasses.replace(FED.feature_spec(), target=ConditionTarget(
    HYPERTENSION, dt.date(2022, 1, 1)))


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_centre_is_refused_in_one_line_without_identifiers(
        kind: str, default_federation: Path, tmp_path: Path) -> None:
    _refused_in_one_line(default_federation, BROKEN[kind], FED.feature_spec(), tmp_path)


def _refused_in_one_line(generated: Path, broken: tuple[Callable[[Path], None], str],
                         spec: FeatureSpec, tmp_path: Path) -> None:
    """A copy of the centre, broken one way, is refused in one line naming `expected`."""
    folder = tmp_path / CENTRE.folder_name
    shutil.copytree(generated / CENTRE.folder_name, folder)
    ids = pl.read_csv(folder / "patients.csv", infer_schema=False)["Id"].to_list()
    break_it, expected = broken
    break_it(folder)
    with pytest.raises(FedjourneyError) as err:
        check_data(folder, CENTRE, spec, "polars", tmp_path / "own" / "rec.json",
                   tmp_path / "own" / "cache")
    message = str(err.value)
    assert expected in message and "\n" not in message, message
    assert RAW not in message and not [i for i in ids if i in message], message
    assert not (tmp_path / "own" / "rec.json").exists()  # nothing recorded


def _first_row_of(code: str) -> Callable[[list[str]], int]:
    return lambda rows: next(i for i, r in enumerate(rows) if f",{code}," in r)


def _drop_a_diagnosed_patient(folder: Path) -> None:
    """Take one patient conditions.csv says is hypertensive out of patients.csv."""
    diagnosed = set(pl.read_csv(folder / "conditions.csv", infer_schema=False).filter(
        pl.col("CODE") == HYPERTENSION)["PATIENT"].to_list())
    path = folder / "patients.csv"
    rows = path.read_text(encoding="utf-8").split("\n")
    column = rows[0].split(",").index("Id")
    gone = next(i for i, r in enumerate(rows) if r and r.split(",")[column] in diagnosed)
    path.write_text("\n".join([*rows[:gone], *rows[gone + 1:]]), encoding="utf-8")


# A condition target's own ways to break a centre: what its labels are read from.
BROKEN_FOR_CONDITION: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing conditions.csv": (lambda f: (f / "conditions.csv").unlink(),
                               f"conditions.csv: file missing; the target (condition "
                               f"{HYPERTENSION}) needs the centre's conditions"),
    "missing START": (_edit("conditions.csv", lambda r: [r[0].replace("START", "BEGIN"),
                                                         *r[1:]]), "column START missing"),
    "unparseable START": (_edit("conditions.csv", lambda r: _set_cell(
        r, "START", RAW, _first_row_of(HYPERTENSION)(r))),
        f"1 rows of condition {HYPERTENSION} have an unparseable START; expected yyyy-MM-dd"),
    "unparseable BIRTHDATE": (_edit("patients.csv", lambda r: _set_cell(r, "BIRTHDATE", RAW)),
                              "1 rows have an unparseable BIRTHDATE"),
    "unknown patient": (_drop_a_diagnosed_patient,
                        f"1 patients with condition {HYPERTENSION} are not in patients.csv"),
    "no positive": (_edit("conditions.csv", lambda r: [r[0], *(
        x for x in r[1:] if f",{HYPERTENSION}," not in x)]),
        "in one class of the target (condition 59621000 first diagnosed on or after "
        "2022-01-01: none); a model needs both"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_FOR_CONDITION))
def test_a_centre_broken_for_a_condition_target_is_refused_in_one_line(
        kind: str, default_federation: Path, tmp_path: Path) -> None:
    _refused_in_one_line(default_federation, BROKEN_FOR_CONDITION[kind], CONDITION, tmp_path)


def test_a_condition_target_has_its_own_record_and_cache(default_federation: Path,
                                                         tmp_path: Path) -> None:
    folder, cache = default_federation / CENTRE.folder_name, tmp_path / "cache"
    check_data(folder, CENTRE, FED.feature_spec(), "polars", tmp_path / "rec.json", cache)
    record, n_features, hit = check_data(folder, CENTRE, CONDITION, "polars",
                                         tmp_path / "rec.json", cache)
    assert (n_features, hit) == (30, False)  # not the GENDER spec's cache
    assert record.spec_fingerprint == CONDITION.fingerprint() == recorded(
        tmp_path / "rec.json").spec_fingerprint
    everyone = pl.read_csv(folder / "patients.csv", infer_schema=False).height
    assert 0 < record.patients < everyone  # the population at the cutoff
    assert sorted(p.name.split("-")[1] for p in cache.glob("features-*.npz")) == sorted(
        [FED.feature_spec().fingerprint(), CONDITION.fingerprint()])
    assert check_data(folder, CENTRE, CONDITION, "polars", tmp_path / "rec.json", cache)[2]


def test_a_sound_centre_is_recorded_with_its_fingerprint_and_spec(
        default_federation: Path, tmp_path: Path) -> None:
    record, n_features, hit = check_data(default_federation / CENTRE.folder_name, CENTRE,
                                         FED.feature_spec(), "polars", tmp_path / "rec.json",
                                         tmp_path / "cache")
    assert (n_features, hit) == (30, False)
    assert record == recorded(tmp_path / "rec.json")
    assert record.spec_fingerprint == FED.feature_spec().fingerprint()
    assert record.label == "node-1 CHU de Lyon" and record.patients > 40
