"""Testing your own plan the way fedjourney tests itself: fedjourney's pytest plugin
(fedjourney.testing, installed with fedjourney) gives the `federation` fixture, a live stack
of real containers. Run it with the images built:

    .venv/bin/python -m pytest examples/

The hospitals of data/federation.yaml approve mlp, logistic and gru, not this file: the
first run is refused, node by node, until each hospital's administrator approves it.
"""

from pathlib import Path

import pytest

from fedjourney.exits import Exit
from fedjourney.testing import LiveFederation, Start

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).resolve().parents[1] / "data" / "federation.yaml"
MY_PLAN = Path(__file__).with_name("my_plan.py")


@pytest.fixture(scope="module")
def small(federation: Start) -> LiveFederation:
    """The shipped federation, made small and quick: 3 x 40 patients, 3 rounds."""
    return federation(CONFIG, population=40, rounds=3, epochs=2)


def test_a_node_refuses_my_plan_until_its_hospital_approves_it(small: LiveFederation) -> None:
    refused = small.run(plan=MY_PLAN, model_args={"dropout": 0.2})
    assert refused.status == Exit.NOT_READY
    assert len(refused.failures) == 3  # one line per centre, with the command that approves
    assert all("fedjourney approve --centre" in line for line in refused.failures)

    approved = small.approve(MY_PLAN)
    assert approved.returncode == 0, approved.stdout + approved.stderr

    done = small.run(plan=MY_PLAN, model_args={"dropout": 0.2})
    assert done.ok, done.lines[-20:]
    assert done.record is not None and done.record.experiment is not None
    assert done.record.experiment["plan"] == "my_plan.py"
    assert len(done.final_auc) == 3 and all(auc is not None for auc in done.final_auc.values())


def test_an_edited_plan_needs_a_new_approval(small: LiveFederation, tmp_path: Path) -> None:
    assert small.approve(MY_PLAN).returncode == 0  # the original, approved (again)
    edited = tmp_path / MY_PLAN.name
    edited.write_text(MY_PLAN.read_text().replace("nn.Linear(8, 1)", "nn.Linear(8, 1, bias=False)"))
    refused = small.run(plan=edited, model_args={"dropout": 0.2})
    assert refused.status == Exit.NOT_READY and len(refused.failures) == 3
