"""The node's data check: every kind of broken centre is refused with one line naming the
file and the problem, never a patient's identifier or a raw value (that line reaches the
node's logs); a sound centre is recorded with its fingerprint and spec."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from fedjourney.config import load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.node.data import check_data, recorded
from tests.conftest import DEFAULT_CONFIG

FED = load_federation(DEFAULT_CONFIG)
CENTRE = FED.centres[1]
RAW = "13/07/2019"  # a raw value planted in a record: it must not be echoed


def _rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def _edit(name: str, change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        path.write_text("\n".join(change(_rows(path))), encoding="utf-8")
    return apply


def _set_cell(rows: list[str], column: str, value: str, row: int = 3) -> list[str]:
    cells = rows[row].split(",")
    cells[rows[0].split(",").index(column)] = value
    return [*rows[:row], ",".join(cells), *rows[row + 1:]]


def _invalid_utf8(folder: Path) -> None:
    with (folder / "observations.csv").open("ab") as fh:
        fh.write(b"\xff\xfe,\xff\n")


def _link_out(folder: Path) -> None:
    (folder / "elsewhere.csv").symlink_to("/etc/passwd")


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing file": (lambda f: (f / "observations.csv").unlink(), "file missing"),
    "missing column": (_edit("observations.csv", lambda r: [r[0].replace("CODE", "KODE"),
                                                            *r[1:]]), "column CODE missing"),
    "unparseable date": (_edit("observations.csv", lambda r: _set_cell(r, "DATE", RAW)),
                         "rows have an unparseable DATE"),
    "invalid utf-8": (_invalid_utf8, "not valid UTF-8"),
    "ragged row": (_edit("observations.csv", lambda r: [*r[:4], r[4] + ",x,y", *r[5:]]),
                   "more fields than the header"),
    "truncated file": (_edit("observations.csv", lambda r: [*r[:-2], r[-2][:20]]),
                       "(a ragged or truncated row)"),
    "empty patients": (_edit("patients.csv", lambda r: [r[0], ""]), "no patients"),
    "one class only": (_edit("patients.csv", lambda r: [r[0], *(
        _set_cell([r[0], x], "GENDER", "F", 1)[1] for x in r[1:] if x)]),
        "one class of the target"),
    "unknown patient": (_edit("patients.csv", lambda r: [r[0], *r[2:]]),
                        "are not in patients.csv"),
    "link out of the centre": (_link_out, "a link pointing out of the centre folder"),
}


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
