"""The pytest plugin's and the notebook's pure parts: a config copied for a live federation
keeps its meaning; the notebook's final AUCs come from the final model's validation."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from fedjourney.config import load_federation
from fedjourney.researcher.experiment import Metrics
from fedjourney.researcher.notebook import Session, final_auc
from fedjourney.testing import Result, prepare
from tests.conftest import DEFAULT_CONFIG

PLAN = '''from typing import Any

import torch.nn as nn

from fedjourney.plans.base import CentrePlan


class P(CentrePlan):
    def init_model(self, model_args: dict[str, Any]) -> Any:
        return nn.Linear(model_args["n_features"], 1)
'''


def test_a_copied_config_keeps_its_relative_plan_files_and_takes_the_changes(
        tmp_path: Path) -> None:
    home = tmp_path / "study"
    (home / "plans").mkdir(parents=True)
    (home / "plans" / "p.py").write_text(PLAN)
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"][0]["approved_plans"] = ["mlp", "plans/p.py"]
    raw["experiments"]["mine"] = {"plan": "plans/p.py"}
    (home / "federation.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    copy, compose = prepare(tmp_path / "live", home / "federation.yaml", population=20,
                            experiments={"quick": {"rounds": 1}}, rounds=2)
    fed = load_federation(copy)
    assert {c.population for c in fed.centres} == {20} and fed.training.rounds == 2
    assert fed.experiment("quick").rounds == 1
    assert fed.experiment("mine").plan.path == home / "plans" / "p.py"
    assert fed.centres[0].approved_plans[1].path == home / "plans" / "p.py"
    text = compose.read_text()
    assert f"{home / 'plans' / 'p.py'}:/etc/fedjourney/plans/p.py:ro" in text
    assert (tmp_path / "live" / "results").is_dir()
    assert (tmp_path / "live" / "roles" / "researcher.yaml").is_file()


def test_a_result_without_a_finished_run_has_no_record_and_names_its_failures() -> None:
    lines = ["2026-12-03T10:00:00.000Z [researcher] run=a round=- | FAILED: node-1 x has not "
             "approved it", "2026-12-03T10:00:01.000Z [researcher] run=a round=- | ok"]
    result = Result("a", 3, Path("/nowhere"), lines)
    assert not result.ok and result.record is None and result.final_auc == {}
    assert result.failures == ["node-1 x has not approved it"]


def test_the_notebooks_final_auc_is_the_final_models_validation() -> None:
    fed = load_federation(DEFAULT_CONFIG)
    session = Session(fed, fed.training, {"n0": "node-0 A", "n1": "node-1 B", "n2": "node-2 C"})
    metrics = Metrics()
    last = fed.training.rounds + 1
    metrics.validation["n0"].update({1: {"auc": 0.1}, last: {"auc": 0.7}})
    metrics.validation["n1"].update({last: {"auc": math.nan}})  # one class held out
    assert final_auc(metrics, session) == {"node-0 A": 0.7, "node-1 B": None, "node-2 C": None}
