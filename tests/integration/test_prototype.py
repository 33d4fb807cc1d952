"""Stage A and the baselines on the real researcher image: `fedjourney prototype` trains the
experiment's own plan with its settings, as the nodes train it, and prints and writes the
table that `fedjourney report` puts beside a run (tests/integration/test_experiments.py
checks that the two agree on a live run)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import load_federation
from fedjourney.features import build
from fedjourney.model import split_order
from tests.conftest import DEFAULT_CONFIG
from tests.unit.test_condition_target import CONDITION, CUTOFF, HYPERTENSION, _expected

SPEC = load_federation(DEFAULT_CONFIG).feature_spec()
CENTRES = {"Massachusetts General Hospital", "CHU de Lyon",
           "University College London Hospital"}


def _config(tmp_path: Path, **training: object) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["training"] = {**raw["training"], **training}
    config = tmp_path / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def test_prototype_prints_and_writes_the_baselines(default_federation: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "baselines.json"
    config = _config(tmp_path, rounds=2, epochs=2)
    assert main(["prototype", "--config", str(config), "--data", str(default_federation),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "round   2/2  loss" in printed and "centralised (pooled)" in printed
    result = json.loads(out.read_text())
    table = result["baselines"]
    assert set(table) == {f"local: {c}" for c in CENTRES} | {"centralised (pooled)"}
    for row in table.values():
        assert set(row) == CENTRES
        for cell in row.values():
            assert 0.0 <= cell["auc"] <= 1.0 and cell["n"] > 5
            assert 0 < cell["positives"] < cell["n"]
    assert result["spec_fingerprint"] == SPEC.fingerprint()
    assert result["settings"]["rounds"] == 2 and result["differences"] == []


def test_the_baselines_follow_the_settings(default_federation: Path, tmp_path: Path) -> None:
    """Width, learning rate, batch size, held-out share and seed reach the baselines, and
    the held-out split is the nodes' (the last floor(N x share) patients in split order)."""
    changed = {"hidden": 8, "learning_rate": 0.01, "batch_size": 8, "held_out_percent": 40,
               "rounds": 2, "epochs": 1, "seed": 7}
    results = {}
    for name, training in (("default", {"rounds": 2, "epochs": 1}), ("changed", changed)):
        out = tmp_path / f"{name}.json"
        (tmp_path / name).mkdir()
        config = _config(tmp_path / name, **training)
        assert main(["prototype", "--config", str(config), "--data", str(default_federation),
                     "--out", str(out)]) == 0
        results[name] = json.loads(out.read_text())
    used = results["changed"]["settings"]
    assert {k: used[k] for k in changed} == changed
    fed = load_federation(DEFAULT_CONFIG)
    for centre in fed.centres:
        ids = build(default_federation / centre.folder_name, SPEC).patient_ids
        n_test = split_order(ids, 40)[1]
        assert n_test == math.floor(len(ids) * 0.4)
        assert results["changed"]["baselines"]["centralised (pooled)"][centre.name]["n"] \
            == n_test
        assert results["default"]["baselines"]["centralised (pooled)"][centre.name]["n"] \
            == math.floor(len(ids) * 0.3)


def test_prototype_runs_a_condition_target(default_federation: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["features"]["target"] = {"condition": HYPERTENSION, "cutoff": "2022-01-01"}
    raw["training"] = {**raw["training"], "rounds": 2, "epochs": 1}
    config = tmp_path / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "baselines.json"
    assert main(["prototype", "--config", str(config), "--data", str(default_federation),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"condition {HYPERTENSION} first diagnosed on or after 2022-01-01" in printed
    assert "patients_excluded" in printed and "held-out patients together" in printed
    result = json.loads(out.read_text())
    assert result["spec_fingerprint"] == CONDITION.fingerprint()
    assert result["spec"]["target"] == {"condition": HYPERTENSION, "cutoff": "2022-01-01"}
    for name, summary in result["centres"].items():
        expected = _expected(default_federation / load_federation(config).centre(
            name).folder_name, HYPERTENSION, CUTOFF, CONDITION.end)
        assert summary["patients"] == len(expected)
        assert np.isclose(summary["positive_rate"], np.mean(list(expected.values())),
                          atol=1e-4)
    # Every centre's held-out patients together (50 a centre leave a handful of positives).
    together = result["held_out_together"]["centralised (pooled)"]
    assert together["n"] == sum(row["n"] for row in
                                result["baselines"]["centralised (pooled)"].values())
