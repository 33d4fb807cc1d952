"""Run inside a researcher container: a researcher that tries what a hospital never approved.

  python3 -c "$(cat rogue_researcher.py)" plan   a plan whose source the nodes never approved
  python3 -c "$(cat rogue_researcher.py)" spec   the approved plan, another target (RACE)
  python3 -c "$(cat rogue_researcher.py)" clear  the approved plan in the clear (no secagg)
Prints REFUSED and exits 0 when the nodes refuse; exits 1 when they run it.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from fedjourney import contract, settings

os.environ["FBM_RESEARCHER_COMPONENT_ROOT"] = str(contract.STATE / "researcher")
os.environ["FBM_SERVER_HOST"] = contract.RESEARCHER
from fedbiomed.researcher.config import config

os.environ["FBM_SERVER_HOST"] = "0.0.0.0"
from fedbiomed.researcher.aggregators.fedavg import FedAverage
from fedbiomed.researcher.federated_workflows import Experiment
from fedbiomed.researcher.requests import Requests

from fedjourney.config import load_federation
from fedjourney.planfile import plan_class as load_plan

mode = sys.argv[1]
fed = load_federation(os.environ[settings.CONFIG.env])
spec = fed.feature_spec().to_dict()
plan_class = load_plan(fed.training.plan)
if mode == "plan":  # the approved plan's source with one changed line: another hash
    source = fed.training.plan.path.read_text()
    source = source.replace(f"class {plan_class.__name__}(", "class TamperedPlan(")
    source = source.replace('model_args["hidden"])', 'model_args["hidden"] + 1)')
    assert "TamperedPlan" in source and "+ 1)" in source, "the default plan changed"
    module = Path(tempfile.mkdtemp()) / "tampered.py"
    module.write_text(source)
    sys.path.insert(0, str(module.parent))
    from tampered import TamperedPlan

    plan_class = TamperedPlan
elif mode == "spec":  # train the approved plan on another column of patients.csv
    spec["target"] = {"column": "RACE", "positive": "white"}

requests = Requests(config)
deadline = time.monotonic() + 120
while len(requests.search([fed.training.tag])) < len(fed.centres):
    assert time.monotonic() < deadline, "nodes did not answer"
    time.sleep(1)
exp = Experiment(tags=[fed.training.tag], training_plan_class=plan_class,
                 model_args={"n_features": len(spec["vocabulary"]), "hidden": 32,
                             "spec": spec, "run_id": f"rogue-{mode}", "held_out_percent": 30,
                             "input": fed.training.plan.input},
                 training_args={"epochs": 1, "loader_args": {"batch_size": 16,
                                                             "shuffle": False},
                                "optimizer_args": {"lr": 0.001}, "test_ratio": 0.3},
                 round_limit=1, aggregator=FedAverage(), tensorboard=False,
                 save_breakpoints=False)
try:
    exp.run_once()
except SystemExit as stop:
    print("REFUSED with exit", stop.code)
    sys.exit(0)
print(f"ACCEPTED: the rogue {mode} ran")
sys.exit(1)
