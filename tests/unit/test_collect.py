"""The results collector ends on this run's end-of-run marker, not on one left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedjourney import contract
from fedjourney.researcher import collect


def _mark(source: Path, run_id: str, status: int) -> None:
    tmp = source / f"{contract.RUN_ENDED}.partial"
    tmp.write_text(json.dumps({"run_id": run_id, "status": status}) + "\n")
    tmp.replace(source / contract.RUN_ENDED)


def test_a_marker_left_by_an_earlier_attempt_is_not_this_runs_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "SOURCE", tmp_path)
    _mark(tmp_path, "r1", 2)  # a refused attempt at the same run id, a moment ago
    before = collect._marker_identity()
    assert collect._ended(before, "r1") is None  # however recent it is
    (tmp_path / contract.RUN_ENDED).unlink()  # the resumed researcher starts
    assert collect._ended(before, "r1") is None
    _mark(tmp_path, "r1", 0)  # and ends: a new file
    assert collect._ended(before, "r1") == {"run_id": "r1", "status": 0}
    assert collect._ended(before, "r2") is None  # another run's


def test_without_a_marker_at_start_the_first_one_is_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "SOURCE", tmp_path)
    before = collect._marker_identity()
    assert before is None and collect._ended(before, None) is None
    _mark(tmp_path, "r9", 4)
    assert collect._ended(before, None) == {"run_id": "r9", "status": 4}
