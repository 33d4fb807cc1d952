"""The results' format (records.py): round trips, runs written before the format was
versioned, and the refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fedjourney import records
from fedjourney.host.compare import load_run
from fedjourney.records import MetricRow, ResultsError, RunRecord

ROW = MetricRow(run_id="r1", round=1, final=False, node="node-0 MGH", train_loss=0.7,
                train_loss_mean=0.8, validation_loss=0.6, validation_auc=0.55,
                validation_accuracy=0.5, samples=35, training_seconds=0.2, node_seconds=0.3,
                round_seconds=1.5, validation_withheld=False, took_part=True)
RECORD = RunRecord(run_id="r1", seconds=12.35, rounds=2, round_seconds={1: 0.5, 2: 0.25},
                   spec_fingerprint="40cc6eaff76f", status=records.FINISHED,
                   experiment={"name": "dp", "dp": "local", "sigma": 1.0},
                   privacy={"epsilon": 1.5, "delta": 1e-5}, resumed_after=[1])

# As the researcher wrote them before run.json had "experiment" or "resumed_after" and the
# rows had "took_part" or "validation_withheld" (commit 66b2d34), byte for byte.
FIRST_RUN_JSON = """{
 "run_id": "old",
 "seconds": 29.1,
 "rounds": 1,
 "round_seconds": {
  "1": 3.2
 },
 "spec_fingerprint": "40cc6eaff76f",
 "status": "finished"
}
"""
FIRST_ROWS = [
    {"node": "node-0 MGH", "node_seconds": 0.3, "final": False, "round": 1,
     "round_seconds": 3.2, "run_id": "old", "samples": 35, "train_loss": 0.7,
     "train_loss_mean": 0.8, "training_seconds": 0.2, "validation_accuracy": 0.5,
     "validation_auc": 0.5, "validation_loss": 0.69},
    {"node": "node-0 MGH", "node_seconds": None, "final": True, "round": 2,
     "round_seconds": None, "run_id": "old", "samples": None, "train_loss": None,
     "train_loss_mean": None, "training_seconds": None, "validation_accuracy": 0.6,
     "validation_auc": 0.7, "validation_loss": 0.6}]


def old_run(folder: Path) -> Path:
    folder.mkdir()
    (folder / records.RUN).write_text(FIRST_RUN_JSON)
    (folder / records.METRICS).write_text(
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in FIRST_ROWS))
    return folder


def test_rows_and_record_round_trip_through_their_files(tmp_path: Path) -> None:
    final = MetricRow(**{**ROW.to_json(), "round": 3, "final": True, "train_loss": None,
                         "validation_auc": float("nan"), "took_part": False})
    records.write_rows(tmp_path, [ROW, final])
    records.write_run(tmp_path, RECORD)
    back = records.read_rows(tmp_path)
    assert back[0] == ROW and back[1].round == 3 and back[1].validation_auc != 0.5
    assert records.read_run(tmp_path) == RECORD
    lines = (tmp_path / records.METRICS).read_text().splitlines()
    assert list(json.loads(lines[0])) == sorted(ROW.to_json())  # keys sorted, as ever
    written = json.loads((tmp_path / records.RUN).read_text())
    assert list(written) == ["format", "run_id", "seconds", "rounds", "round_seconds",
                             "spec_fingerprint", "experiment", "privacy", "resumed_after",
                             "status"]
    assert written["format"] == records.FORMAT_VERSION
    assert written["round_seconds"] == {"1": 0.5, "2": 0.25}  # JSON keys are text


def test_a_run_without_privacy_writes_no_privacy_key(tmp_path: Path) -> None:
    records.write_run(tmp_path, RunRecord(**{**vars(RECORD), "privacy": None}))
    assert "privacy" not in json.loads((tmp_path / records.RUN).read_text())


def test_runs_from_before_the_format_was_versioned_still_load(tmp_path: Path) -> None:
    folder = old_run(tmp_path / "old")
    record = records.read_run(folder)
    assert record == RunRecord(run_id="old", seconds=29.1, rounds=1, round_seconds={1: 3.2},
                               spec_fingerprint="40cc6eaff76f", status="finished")
    assert record.experiment is None and record.resumed_after == [] and record.finished
    rows = records.read_rows(folder)
    assert [(r.round, r.final, r.took_part, r.validation_withheld) for r in rows] == [
        (1, False, False, False), (2, True, False, False)]
    assert [(r.validation_auc_low, r.validation_auc_high, r.validation_n,
             r.validation_positives) for r in rows] == [(None, None, None, None)] * 2
    assert load_run(folder).final["node-0 MGH"].validation_auc == 0.7  # and compare reads it


def test_a_newer_format_is_refused_in_one_line_naming_the_file_and_the_fix(
        tmp_path: Path) -> None:
    records.write_run(tmp_path, RECORD)
    records.write_rows(tmp_path, [ROW])
    data = json.loads((tmp_path / records.RUN).read_text())
    (tmp_path / records.RUN).write_text(json.dumps({**data, "format": 99}))
    for read in (records.read_run, records.read_rows):
        with pytest.raises(ResultsError) as refused:
            read(tmp_path)
        message = str(refused.value)
        assert "\n" not in message and str(tmp_path / records.RUN) in message
        assert "format 99" in message and "update fedjourney" in message


@pytest.mark.parametrize("version", ["1", 0, True, None])
def test_a_format_that_is_no_version_is_refused(tmp_path: Path, version: object) -> None:
    (tmp_path / records.RUN).write_text(json.dumps({**RECORD.to_json(), "format": version}))
    with pytest.raises(ResultsError, match="is not a fedjourney results format"):
        records.read_run(tmp_path)


def test_a_row_missing_a_field_is_refused_naming_it(tmp_path: Path) -> None:
    data = ROW.to_json()
    del data["node"], data["validation_auc"]
    with pytest.raises(ValueError, match=r"^a metrics row lacks node, validation_auc$"):
        MetricRow.from_json(data)
    records.write_rows(tmp_path, [ROW])
    (tmp_path / records.METRICS).write_text(
        (tmp_path / records.METRICS).read_text() + json.dumps(data) + "\n")
    with pytest.raises(ResultsError, match=r"metrics\.jsonl line 2: a metrics row lacks"):
        records.read_rows(tmp_path)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("round", "1", "round is '1', not int"),
    ("round", True, "round is True, not int"),
    ("validation_auc", "0.5", "validation_auc is '0.5', not"),
    ("final", 1, "final is 1, not bool"),
])
def test_a_mistyped_row_is_refused(key: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MetricRow.from_json({**ROW.to_json(), key: value})


def test_a_run_record_missing_a_field_or_with_a_bad_round_is_refused() -> None:
    data = RECORD.to_json()
    with pytest.raises(ValueError, match=r"^a run record lacks status$"):
        RunRecord.from_json({k: v for k, v in data.items() if k != "status"})
    with pytest.raises(ValueError, match="key that is not a round"):
        RunRecord.from_json({**data, "round_seconds": {"first": 1.0}})
    with pytest.raises(ValueError, match="not a number"):
        RunRecord.from_json({**data, "round_seconds": {"1": "fast"}})
    with pytest.raises(ValueError, match="not a JSON object"):
        RunRecord.from_json([])


def test_the_aucs_interval_and_split_size_round_trip(tmp_path: Path) -> None:
    row = replace(ROW, validation_auc_low=0.21, validation_auc_high=0.72, validation_n=15,
                  validation_positives=2)
    undefined = replace(row, validation_auc_low=float("nan"), validation_auc_high=float("nan"))
    records.write_rows(tmp_path, [row, undefined])
    back = records.read_rows(tmp_path)
    assert back[0] == row and back[1].validation_n == 15
    assert back[1].validation_auc_low != back[1].validation_auc_low  # NaN: one class missing
    for key, value in [("validation_n", 15.0), ("validation_positives", "2"),
                       ("validation_auc_low", "0.2")]:
        with pytest.raises(ValueError, match=f"{key} is"):
            MetricRow.from_json({**row.to_json(), key: value})


def test_keys_a_newer_writer_added_are_ignored() -> None:
    assert MetricRow.from_json({**ROW.to_json(), "gpu_seconds": 1.0}) == ROW


def test_fingerprints_round_trip(tmp_path: Path) -> None:
    records.write_fingerprints(tmp_path, {"node-0 MGH": "ab" * 32})
    assert (tmp_path / records.FINGERPRINTS).read_text() == \
        '{\n "node-0 MGH": "' + "ab" * 32 + '"\n}\n'
    assert records.read_fingerprints(tmp_path) == {"node-0 MGH": "ab" * 32}


def test_the_file_names_are_the_researchers_and_the_baselines() -> None:
    assert records.BASELINES not in records.RESEARCHER_FILES
    assert set(records.HEADLINE_FILES) <= records.RESEARCHER_FILES | {records.BASELINES}
    assert len(records.RESEARCHER_FILES) == 9  # tensorboard/ is a folder
