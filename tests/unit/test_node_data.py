"""The node's data check: every kind of broken centre is refused with one line naming the
file and the problem, never a patient's identifier or a raw value (that line reaches the
node's logs); a sound centre is recorded with its fingerprint and spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from fedjourney.config import load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.node.data import check_data, recorded
from tests.broken_data import BROKEN, RAW
from tests.conftest import DEFAULT_CONFIG

FED = load_federation(DEFAULT_CONFIG)
CENTRE = FED.centres[1]


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_centre_is_refused_in_one_line_without_identifiers(
        kind: str, default_federation: Path, tmp_path: Path) -> None:
    folder = tmp_path / CENTRE.folder_name
    shutil.copytree(default_federation / CENTRE.folder_name, folder)
    ids = pl.read_csv(folder / "patients.csv", infer_schema=False)["Id"].to_list()
    break_it, expected = BROKEN[kind]
    break_it(folder)
    with pytest.raises(FedjourneyError) as err:
        check_data(folder, CENTRE, FED.feature_spec(), "polars", tmp_path / "own" / "rec.json",
                   tmp_path / "own" / "cache")
    message = str(err.value)
    assert expected in message and "\n" not in message, message
    assert RAW not in message and not [i for i in ids if i in message], message
    assert not (tmp_path / "own" / "rec.json").exists()  # nothing recorded


def test_a_sound_centre_is_recorded_with_its_fingerprint_and_spec(
        default_federation: Path, tmp_path: Path) -> None:
    record, n_features, hit = check_data(default_federation / CENTRE.folder_name, CENTRE,
                                         FED.feature_spec(), "polars", tmp_path / "rec.json",
                                         tmp_path / "cache")
    assert (n_features, hit) == (30, False)
    assert record == recorded(tmp_path / "rec.json")
    assert record.spec_fingerprint == FED.feature_spec().fingerprint()
    assert record.label == "node-1 CHU de Lyon" and record.patients > 40
