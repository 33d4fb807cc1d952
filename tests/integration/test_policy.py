"""A hospital whose policy requires DP-SGD within an epsilon budget, on real containers: its
node refuses a run without DP before reading data, charges each DP round to its privacy
ledger (kept in its state volume) before training, and refuses the round that would spend
past the budget, in a later run; the researcher names the centre and the rule. And what a
minimum batch size does not stop, which DP-SGD does: a patient's row read back from one
update."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml

from fedjourney import records
from fedjourney.exits import Exit
from fedjourney.features import build, plan_input
from fedjourney.generator import generate
from fedjourney.node.ledger import Charge, Ledger
from fedjourney.testing import LiveFederation, Start
from tests.conftest import DEFAULT_CONFIG
from tests.integration.stack import Stack

SIGMA, DELTA = 1.0, 1e-5
# One batch holds every training patient (at most ~45 patients at population 30), so each
# round of one epoch is one DP-SGD step at sample rate 1: the budget is known before the data.
TRAINING: dict[str, Any] = {"rounds": 2, "epochs": 1, "batch_size": 64,
                            "dp": {"sigma": SIGMA, "clip": 1.0, "delta": DELTA}}
LYON = "node-1"


def _spent(steps: int) -> float:
    """Epsilon after `steps` full-batch DP-SGD steps, as the node's ledger counts them."""
    ledger = Ledger(Path("/nonexistent/ledger.json"))
    return ledger.epsilon(DELTA, Charge(run_id="x", round=1, sigma=SIGMA, sample_rate=1.0,
                                        steps=steps))


BUDGET = math.ceil(_spent(3) * 1e4) / 1e4  # three rounds fit, a fourth does not


@pytest.fixture(scope="module")
def live(federation: Start, tmp_path_factory: pytest.TempPathFactory) -> LiveFederation:
    """The demo federation, CHU de Lyon requiring DP within the epsilon of three rounds:
    a first two-round run fits, a second one's second round does not."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw.pop("experiments")  # they inherit training's DP, which FedProx and SCAFFOLD refuse
    raw["centres"][1]["policy"] = {"dp": "required", "epsilon_budget": BUDGET,
                                   "delta": DELTA}
    raw["centres"][2]["policy"] = {"dp": "required", "epsilon_budget": 1000, "delta": DELTA}
    config = tmp_path_factory.mktemp("policy") / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return federation(config, population=30, **TRAINING)


def _lyon(live: LiveFederation, run: str) -> list[str]:
    return [line for line in live.logs(LYON).splitlines() if f"run={run} " in line]


def test_a_run_without_dp_is_refused_where_dp_is_required(live: LiveFederation) -> None:
    said = Stack(live.compose_file, live.project).rogue("nodp")
    rule = "training without DP; this centre requires local DP-SGD (policy.dp)"
    assert rule in said
    lines = _lyon(live, "rogue-nodp")
    assert any("REFUSED a request outside this centre's policy" in line and rule in line
               for line in lines)
    assert not any("features" in line or "privacy ledger" in line for line in lines)


def test_the_ledger_charges_each_round_and_the_budget_holds_on_both_sides(
        live: LiveFederation) -> None:
    """Run 1 (two rounds) fits; run 2 would not, and the researcher refuses it before round
    1 from the ledger Lyon's record publishes; a researcher that skips that check gets one
    more round, then Lyon's node refuses the next itself."""
    first = live.run(run_id="itest-policy-1", timeout=300)
    assert first.ok, "\n".join(first.lines[-30:])
    charged = [line for line in _lyon(live, "itest-policy-1") if "privacy ledger" in line]
    assert len(charged) == 2, charged
    assert f"epsilon spent on this centre's data {_spent(2):.2f}" in charged[-1]
    summary = (first.folder / records.SUMMARY).read_text()
    assert (f"; {_spent(2):.3g} spent on its data (delta {DELTA:g}) of its budget "
            f"{BUDGET:g}") in summary

    second = live.run(run_id="itest-policy-2", timeout=300)
    assert second.status == Exit.REFUSED and second.record is None
    told = [line for line in second.lines if "REFUSED: " in line]
    assert len(told) == 1 and "node-1 CHU de Lyon refuses 2 rounds of DP-SGD" in told[0] \
        and f"{_spent(4):.3g} (delta" in told[0] and "(policy.epsilon_budget)" in told[0]
    assert _lyon(live, "itest-policy-2") == []  # refused before any request reached it
    assert not second.folder.exists()

    stack = Stack(live.compose_file, live.project)
    stack.rogue("dp", refused=False)  # the third round fits
    said = stack.rogue("dp")  # the fourth does not
    assert "over its budget" in said and "(policy.epsilon_budget)" in said
    lines = _lyon(live, "rogue-dp")
    assert sum("privacy ledger: round charged" in line for line in lines) == 1
    refused = [line for line in lines if "REFUSED" in line]
    assert len(refused) == 1 and "over its budget" in refused[0], lines[-5:]
    assert not any("features" in line for line in lines[lines.index(refused[0]):])


@pytest.fixture(scope="module")
def rows(live: LiveFederation, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[int, npt.NDArray[np.float32]]:
    """Each centre's patients as its node feeds them to the MLP (the host regenerates the
    nodes' exact files: the generator is deterministic)."""
    out = tmp_path_factory.mktemp("policy-data")
    generate(live.fed, out)
    spec = live.fed.feature_spec()
    return {c.id: plan_input(build(out / c.folder_name, spec).X, spec, "vector")
            for c in live.fed.centres}


def _recovered(said: str, patients: npt.NDArray[np.float32]) -> int:
    """How many patients' rows the attack's candidates hold (each value within 1e-3)."""
    line = next(line for line in said.splitlines() if line.startswith("ROWS "))
    candidates = np.array(json.loads(line.removeprefix("ROWS ")), dtype=np.float64)
    error = np.abs(candidates[:, None, :] - patients[None, :, :]).max(axis=-1)
    return len(set(error.argmin(axis=1)[error.min(axis=1) < 1e-3].tolist()))


def test_a_batch_of_8_still_gives_rows_back_and_dp_sgd_stops_it(
        live: LiveFederation, rows: dict[int, npt.NDArray[np.float32]]) -> None:
    """One SGD step at the policy's smallest batch: a ReLU unit that only one patient of the
    batch activates gives that patient's row, exactly, from its weight and bias updates.
    docs/threat-model.md says so: against a researcher who chooses the model, only DP-SGD
    (dp: required) protects a training patient's record."""
    stack = Stack(live.compose_file, live.project)
    assert _recovered(stack.rogue("rows", "0", "nodp", refused=False), rows[0]) >= 1
    assert _recovered(stack.rogue("rows", "2", "dp", refused=False), rows[2]) == 0
