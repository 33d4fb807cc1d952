"""Run inside a researcher container: a researcher that tries what a hospital never approved.

  python3 -c "$(cat rogue_researcher.py)" plan   a plan whose source the nodes never approved
  python3 -c "$(cat rogue_researcher.py)" spec   the approved plan, another target (RACE)
  python3 -c "$(cat rogue_researcher.py)" clear  the approved plan in the clear (no secagg)
and, with the approved plan and otherwise the config's settings, what a centre's data-use
policy refuses (fedjourney/policy.py):
  batch1         batches of one patient, one SGD step (gives a patient's row back)
  pervalidation  validation batches of one patient (give each held-out label back)
  testratio      a held-out split of 90 % instead of the centre's own
  nodp           no DP-SGD (for a centre that requires it)
  parties        secure aggregation among two nodes only
  runid          a run id with a newline (it would forge a line of the node's story)
  dp             one round with the config's DP-SGD, without the researcher's budget check
                 (prints RAN and exits 0 when the nodes train it)
Prints REFUSED and exits 0 when the nodes refuse; exits 1 when they run it. And one attack
the policy allows, to measure what it gives:
  rows CENTRE dp|nodp   one SGD step on that centre's node alone, at the policy's smallest
                        batch (8), with the config's DP-SGD or without: each hidden unit's
                        weight update over its bias update, a candidate patient row (exact
                        for a unit only one patient of the batch activates; 256 units). Prints
                        ROWS <json list of rows> and exits 0.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

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
from fedjourney.researcher import experiment

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
while len(found := requests.search([fed.training.tag])) < len(fed.centres):
    assert time.monotonic() < deadline, "nodes did not answer"
    time.sleep(1)
t = fed.training
model_args = {**experiment.model_args(fed, t, f"rogue-{mode}"), "spec": spec}
training_args = {**experiment.training_args(t), "epochs": 1}
training_args.pop("dp_args", None)
more: dict[str, object] = {}
if mode == "batch1":
    training_args.update(loader_args={"batch_size": 1, "shuffle": False}, num_updates=1)
    model_args["optimizer"] = "sgd"
elif mode == "pervalidation":
    training_args["test_batch_size"] = 1
elif mode == "testratio":
    training_args["test_ratio"] = 0.9
    model_args["held_out_percent"] = 90
elif mode == "parties":
    from fedbiomed.common.constants import SecureAggregationSchemes
    from fedbiomed.researcher.secagg import SecureAggregation

    more = {"nodes": sorted(found)[:2],
            "secagg": SecureAggregation(scheme=SecureAggregationSchemes.LOM)}
elif mode == "dp":
    training_args["dp_args"] = experiment.training_args(t)["dp_args"]
elif mode == "runid":
    model_args["run_id"] = "rogue-runid\n2026-01-01T00:00:00.000Z [node-0] run=- round=- | FORGED"
elif mode == "rows":
    centre, dp = int(sys.argv[2]), sys.argv[3] == "dp"
    training_args.update(loader_args={"batch_size": 8, "shuffle": False}, num_updates=1,
                         optimizer_args={"lr": 1.0})
    if dp:
        training_args["dp_args"] = experiment.training_args(t)["dp_args"]
    # A wide layer: more units that only one patient of the batch activates (at width 32,
    # one random start in five gives no row back; at 256, none did in 600 here).
    model_args.update(optimizer="sgd", hidden=256)
    torch.manual_seed(0)
    more = {"nodes": [node for node, datasets in found.items() if contract.DatasetRecord
                      .from_description(datasets[0]["description"]).centre_id == centre]}
exp = Experiment(tags=[fed.training.tag], training_plan_class=plan_class,
                 model_args=model_args, training_args=training_args,
                 round_limit=1, aggregator=FedAverage(), tensorboard=False,
                 save_breakpoints=False, **more)
if mode == "rows":  # FedAverage of one node: its own update
    import json

    before = {k: v.clone() for k, v in exp.training_plan().model().state_dict().items()}
    exp.run_once()
    after = exp.training_plan().model().state_dict()
    weight, bias = after["0.weight"] - before["0.weight"], after["0.bias"] - before["0.bias"]
    rows = [(weight[j] / bias[j]).tolist() for j in range(len(bias)) if abs(bias[j]) > 1e-12]
    print("ROWS " + json.dumps(rows))
    sys.exit(0)
try:
    exp.run_once()
except SystemExit as stop:
    print("REFUSED with exit", stop.code)
    sys.exit(0)
if mode == "dp":
    print("RAN: the nodes trained a round of DP-SGD")
    sys.exit(0)
print(f"ACCEPTED: the rogue {mode} ran")
sys.exit(1)
