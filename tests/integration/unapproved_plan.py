"""Run inside a researcher container: send a plan the nodes never approved; expect refusal."""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["FBM_RESEARCHER_COMPONENT_ROOT"] = "/fbm/researcher"
os.environ["FBM_SERVER_HOST"] = "researcher"
from fedbiomed.researcher.config import config

os.environ["FBM_SERVER_HOST"] = "0.0.0.0"
import inspect

from fedbiomed.researcher.aggregators.fedavg import FedAverage
from fedbiomed.researcher.federated_workflows import Experiment
from fedbiomed.researcher.requests import Requests

from fedjourney.config import load_federation
from fedjourney.federated import plan

# The approved plan's source with one changed line: a different hash.
source = inspect.getsource(plan).replace("class FedJourneyPlan(", "class TamperedPlan(")
source = source.replace("lr=optimizer_args[\"lr\"]", "lr=optimizer_args[\"lr\"] * 10")
module = Path(tempfile.mkdtemp()) / "tampered.py"
module.write_text(source)
sys.path.insert(0, str(module.parent))
from tampered import TamperedPlan  # noqa: E402

fed = load_federation(os.environ["FEDJOURNEY_CONFIG"])
requests = Requests(config)
deadline = time.monotonic() + 120
while len(requests.search([fed.training.tag])) < len(fed.centres):
    assert time.monotonic() < deadline, "nodes did not answer"
    time.sleep(1)
spec = fed.feature_spec()
exp = Experiment(tags=[fed.training.tag], training_plan_class=TamperedPlan,
                 model_args={"n_features": len(spec.vocabulary), "hidden": 32,
                             "spec": spec.to_dict(), "run_id": "tampered",
                             "held_out_percent": 30},
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
print("ACCEPTED: the tampered plan ran")
sys.exit(1)
