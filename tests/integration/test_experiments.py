"""The config's named experiments on real containers: each runs through compose on the kept
nodes and leaves complete results; secure aggregation gives the clear run's model up to its
quantization; a hospital withholds its validation metrics under it unless it sends them in
the clear; DP records its epsilon; a plan no hospital approved is refused, node by node,
until their administrators approve it; a hospital that requires secure aggregation refuses a
run in the clear, at the researcher and at its own node."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from fedjourney import records, settings
from fedjourney.cli import main
from fedjourney.contract import story_log
from fedjourney.exits import Exit
from fedjourney.testing import LiveFederation, Start
from tests.conftest import DEFAULT_CONFIG
from tests.integration.stack import Stack

ROUNDS = 3
EXPERIMENTS = ("secagg", "dp", "fedprox", "scaffold", "one-round", "one-round-secagg",
               "logistic", "gru")
KEEP = {settings.KEEP.env: "1"}
# Settings unlike the defaults in every way the baselines must follow (the held-out share
# is each node's own, not an experiment's: the module's federation holds out HELD_OUT %).
UNLIKE = {"hidden": 8, "learning_rate": 0.01, "batch_size": 8, "rounds": 2, "epochs": 1,
          "seed": 7}
HELD_OUT = 40


def _run(live: LiveFederation, experiment: str, run_id: str = "") -> Path:
    """One experiment on the kept nodes (what `scripts/run --again --experiment` does)."""
    done = live.run(experiment, run_id=run_id or f"itest-exp-{experiment}", timeout=300)
    assert done.ok, "\n".join(done.lines[-40:])
    return done.folder


@pytest.fixture(scope="module")
def live(federation: Start) -> LiveFederation:
    """The small federation's nodes up and kept (fedjourney.testing, the plugin a user's
    own tests get), after the default experiment ran."""
    # One aggregation each, in the clear and masked: their models differ by quantization only.
    live = federation(DEFAULT_CONFIG, population=30, rounds=ROUNDS, epochs=2,
                      held_out_percent=HELD_OUT, experiments={
        "one-round": {"rounds": 1}, "one-round-secagg": {"rounds": 1, "secagg": "lom"},
        "unlike": UNLIKE})
    _run(live, "", "itest-exp-default")
    return live


@pytest.fixture(scope="module")
def kept(live: LiveFederation) -> Stack:
    """The same project, with the tests' own probes."""
    return Stack(live.compose_file, live.project)


@pytest.fixture(scope="module")
def runs(live: LiveFederation) -> dict[str, Path]:
    out = {"default": live.folder / "results" / "itest-exp-default"}
    for name in EXPERIMENTS:
        out[name] = _run(live, name)
    return out


def _run_json(run: Path) -> records.RunRecord:
    return records.read_run(run)


def _rows(run: Path) -> list[records.MetricRow]:
    return records.read_rows(run)


def _final(run: Path) -> dict[str, float | None]:
    return {r.node: r.validation_auc for r in _rows(run) if r.final}


# The shipped config's UCLH keeps the default posture: under secure aggregation its node
# withholds its validation metrics; MGH and Lyon send theirs in the clear.
UCLH = "node-2 University College London Hospital"


def test_each_experiment_finishes_with_complete_results(runs: dict[str, Path]) -> None:
    for name, run in runs.items():
        info = _run_json(run)
        assert info.finished
        assert len(info.round_seconds) == (1 if name.startswith("one-round") else ROUNDS)
        assert info.experiment is not None and info.experiment["name"] == name
        final = _final(run)
        withheld = {UCLH} if "secagg" in name else set()
        assert len(final) == 3, name
        assert {n for n, auc in final.items() if auc is None} == withheld, (name, final)
        assert f"Experiment {name} (" in (run / records.SUMMARY).read_text()
    assert _run_json(runs["fedprox"]).experiment["mu"] == 0.01
    scaffold = _run_json(runs["scaffold"]).experiment
    assert scaffold["aggregator"] == "scaffold"


def test_secure_aggregation_gives_the_clear_model_up_to_quantization(
        runs: dict[str, Path]) -> None:
    """Masks cancel in the sum: what remains is Fed-BioMed's fixed-point encoding of each
    update over +-clipping_range 3. It truncates to 2^13 levels (up to one level down) and
    decodes with 2^13 - 1 (a bias up to one level up), so one aggregation stays within two
    levels (1.5e-3) per parameter; later rounds train on from that difference."""
    torch = pytest.importorskip("torch")
    level = 2 * 3 / (2 ** 13 - 1)
    for clear_run, masked_run, bound in (("one-round", "one-round-secagg", 2 * level),
                                         ("default", "secagg", None)):
        clear = torch.load(runs[clear_run] / records.MODEL)
        masked = torch.load(runs[masked_run] / records.MODEL)
        worst = max(float((clear[k] - masked[k]).abs().max()) for k in clear)
        print(f"{masked_run}: max |secagg - clear| = {worst:.2e}")
        assert worst > 0  # the run was masked, not silently in the clear
        if bound is not None:
            assert worst <= bound + 1e-7, (masked_run, worst, bound)
    assert _run_json(runs["secagg"]).experiment["secagg"] == "lom"
    auc = {name: sum(v for n, v in _final(runs[name]).items() if n != UCLH) / 2
           for name in ("default", "secagg")}
    assert abs(auc["default"] - auc["secagg"]) < 0.02, auc


def test_a_hospital_withholds_its_validation_metrics_under_secure_aggregation(
        kept: Stack, runs: dict[str, Path]) -> None:
    """UCLH's node sends no validation metric in a masked run (every round and the final
    model), though it trained in every round; in the clear it sends them as before."""
    masked = [r for r in _rows(runs["secagg"]) if r.node == UCLH]
    assert all(r.validation_withheld and r.validation_auc is None and
               r.validation_loss is None for r in masked), masked
    assert all(r.took_part for r in masked if not r.final)
    assert all(r.validation_auc is not None and not r.validation_withheld
               for r in _rows(runs["secagg"]) if r.node != UCLH)
    assert all(r.validation_auc is not None
               for r in _rows(runs["default"]) if r.node == UCLH)
    assert "| node-2 University College London Hospital | withheld |" in \
        (runs["secagg"] / records.SUMMARY).read_text()
    node_story = kept.logs("node-2")
    assert "run=itest-exp-secagg " in node_story
    told = [line for line in node_story.splitlines() if "run=itest-exp-secagg " in line]
    assert any("validation metrics withheld" in line for line in told)
    assert not any("validation on " in line for line in told), told


def test_differential_privacy_records_its_epsilon(runs: dict[str, Path]) -> None:
    privacy = _run_json(runs["dp"]).privacy
    assert isinstance(privacy, dict)
    assert privacy["sigma"] == 1.0 and privacy["clip"] == 1.0 and privacy["delta"] == 1e-5
    per_centre = privacy["epsilon_per_centre"]
    assert len(per_centre) == 3 and all(0 < e < 1000 for e in per_centre.values())
    assert privacy["epsilon"] == max(per_centre.values())
    summary = (runs["dp"] / records.SUMMARY).read_text()
    assert "## Differential privacy" in summary and "RDP (opacus)" in summary
    assert _run_json(runs["default"]).privacy is None


def test_the_shipped_plans_run_and_are_recorded(runs: dict[str, Path]) -> None:
    for plan in ("mlp", "logistic", "gru"):
        run = runs["default" if plan == "mlp" else plan]
        assert _run_json(run).experiment["plan"] == plan
        assert all(auc is not None for auc in _final(run).values()), (plan, _final(run))
    # The GRU reads the bins; the MLP their mean: different models, different metrics.
    assert _final(runs["gru"]) != _final(runs["default"])


MY_PLAN = '''"""A researcher's own plan: a narrow MLP with dropout."""

from typing import Any

import torch.nn as nn

from fedjourney.plans.base import CentrePlan


class MyPlan(CentrePlan):
    def init_model(self, model_args: dict[str, Any]) -> Any:
        return nn.Sequential(nn.Linear(model_args["n_features"], 8), nn.ReLU(),
                             nn.Dropout(model_args["dropout"]), nn.Linear(8, 1), nn.Sigmoid())
'''


def test_baselines_md_is_the_prototype_with_the_runs_settings(live: LiveFederation,
                                                              tmp_path: Path) -> None:
    """`fedjourney report` on a run whose settings are all unlike the defaults gives the
    table `fedjourney prototype` gives for that experiment, trained with those settings,
    on as many held-out patients per centre as the nodes validated on."""
    run = _run(live, "unlike")
    data, cache, proto = tmp_path / "data", tmp_path / "cache.json", tmp_path / "proto.json"
    assert main(["report", str(run), "--config", str(live.config), "--data", str(data),
                 "--baselines", str(cache)]) == 0
    assert main(["prototype", "--config", str(live.config), "--experiment", "unlike",
                 "--data", str(data), "--out", str(proto)]) == 0
    reported, prototyped = json.loads(cache.read_text()), json.loads(proto.read_text())
    for key in ("settings", "baselines", "held_out_together", "differences"):
        assert reported[key] == prototyped[key], key
    assert {k: reported["settings"][k] for k in UNLIKE} == UNLIKE
    assert reported["settings"]["held_out_percent"] == HELD_OUT
    text = (run / records.BASELINES).read_text()
    assert "hidden 8, optimizer adam, learning_rate 0.01, batch_size 8" in text
    held_out = {row.node.split(" ", 1)[1]: row for row in records.read_rows(run) if row.final}
    for centre, cell in reported["baselines"]["centralised (pooled)"].items():
        story = [line for line in live.logs(_node(live, centre)).splitlines()
                 if "itest-exp-unlike" in line and "held out" in line]
        assert story and story[-1].endswith(f"{cell['n']} held out"), (centre, story[-1:])
        assert centre in held_out


def _node(live: LiveFederation, centre: str) -> str:
    return next(f"node-{c.id}" for c in live.fed.centres if c.name == centre)


def test_a_plan_no_hospital_approved_is_refused_until_each_approves_it(
        live: LiveFederation, kept: Stack, runs: dict[str, Path], tmp_path: Path) -> None:
    plan = tmp_path / "my_plan.py"
    plan.write_text(MY_PLAN)
    # The researcher mounts my_plan.py now (the compose file is re-rendered); the nodes do not.
    attempt = live.run(plan=plan, model_args={"dropout": 0.1}, run_id="itest-exp-mine-refused")
    assert attempt.status == Exit.NOT_READY
    refused = [line for line in attempt.lines if "has not approved it" in line]
    assert len(refused) == 3, "\n".join(attempt.lines[-40:])
    digests = {m.group(1) for line in refused
               for m in [re.search(r"plan my_plan\.py sha256 ([0-9a-f]{16})", line)] if m}
    assert len(digests) == 1, refused
    for centre, line in enumerate(refused):
        assert line.count("FAILED:") == 1 and f"node-{centre} " in line
        assert f"fedjourney approve --centre {centre} my_plan.py" in line

    # Each hospital's administrator approves it on its running node, by the name the
    # refusal gave (the config names the file).
    approved = live.approve("my_plan.py")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    lines, digest = approved.stdout.splitlines(), digests.pop()
    assert len(lines) == 3 and all(
        f"approved by the node's administrator: sha256 {digest}" in line for line in lines), \
        lines
    for centre in range(3):
        assert "training plan my_plan.py approved by the node's administrator" in \
            kept.exec(f"node-{centre}", "cat", str(story_log("node"))).stdout

    done = live.run(plan=plan, model_args={"dropout": 0.1}, run_id="itest-exp-mine")
    assert done.ok and done.record is not None and done.record.experiment is not None
    assert done.record.experiment["plan"] == "my_plan.py"
    assert done.record.experiment["model_args"] == {"dropout": 0.1}
    assert any("every node approved plan my_plan.py" in line for line in done.lines)


def test_a_hospital_that_requires_secure_aggregation_refuses_a_clear_run(
        live: LiveFederation, kept: Stack, runs: dict[str, Path]) -> None:
    stack = kept
    view = stack.compose_file.parent / "roles" / "node-2.yaml"
    config = yaml.safe_load(view.read_text())
    config["centres"][0]["secure_aggregation"] = "required"
    view.write_text(yaml.safe_dump(config, sort_keys=False))
    stack.compose("up", "-d", "--no-deps", "--force-recreate", "node-2", env=KEEP)
    # (Healthy only once a researcher answers: the runs below wait for it themselves.)
    stack.wait_until(lambda: "secure aggregation required" in stack.logs("node-2"),
                     timeout=120, what="node-2 back, requiring secure aggregation")

    # The researcher reads the stance the node registered and refuses before round 1...
    stack.compose("up", "-d", "--no-deps", "researcher",
                  env={**KEEP, settings.RUN_ID.env: "itest-exp-clear",
                       settings.EXPERIMENT.env: ""})
    assert stack.wait_exit("researcher", timeout=300) == Exit.NOT_READY
    assert "node-2 University College London Hospital requires secure aggregation" in \
        stack.logs("researcher")
    # ...and the node itself refuses a researcher that sends a clear task anyway.
    refused = stack.rogue("clear")
    assert "secure aggregation" in refused + stack.logs("node-2"), refused[-3000:]
    # Under secure aggregation it takes part, its final validation included.
    run = _run(live, "secagg", "itest-exp-secagg-required")
    final = [r for r in _rows(run) if r.node == UCLH and r.final]
    assert final and final[0].validation_withheld
    assert all(r.took_part for r in _rows(run) if r.node == UCLH and not r.final)
