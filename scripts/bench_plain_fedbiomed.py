"""Reference benchmark: PLAIN Fed-BioMed 6.4.1 driven through its own CLI, on the
fedjourney stack's default workload, for comparison with scripts/bench stack.

Each centre's model input is written once on the host as a CSV (CODE_* columns and a
`target` column). The plain stack, generated into a temporary folder, then has per centre
one container of fedjourney/base-deps (Fed-BioMed installed, no fedjourney code) running
`fedbiomed component create`, `fedbiomed node dataset add --file` (a `csv` dataset) and
`fedbiomed node start`; and one researcher container running a plain script: a standard
TorchTrainingPlan (MLP K->hidden->1, sigmoid, BCE, Adam) on Fed-BioMed's TabularDataset,
FedAverage, waiting for every node first. Training-plan approval is off: the default of a
plain install. One internal network is shared by all.

Measured without polling: `up -d` to the researcher's exit (`docker wait`); node and round
times come afterwards from the logs (docker's timestamps, the researcher's own marks).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fedjourney.config import load_federation
from fedjourney.contract import node_service
from fedjourney.features import build, model_input, plan_input
from fedjourney.generator import generate
from fedjourney.host.logs import compose_command

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "fjplain"
IMAGE = "fedjourney/base-deps:latest"
MARK = "FJPLAIN "  # the researcher's timing lines: MARK + JSON
CONNECTED = "Retrieved server certificate"  # a node's last line before it is connected

NODE_SH = """set -e
fedbiomed component create -c NODE -p /fbm/node -n "$NODE_NAME"
fedbiomed node -p /fbm/node dataset add --file "/in/$NODE_NAME.json"
exec fedbiomed node -p /fbm/node start
"""

RESEARCHER_PY = '''"""Plain Fed-BioMed researcher: FedAverage of an MLP on each node's csv data."""
import json
import os
import sys
import time

S = json.load(open("/in/settings.json"))


def mark(event, **fields):
    print("FJPLAIN " + json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


# The certificate is created with the component, named after the host nodes dial; the
# server then binds every interface (config values can be overridden by FBM_<SECTION>_<KEY>).
os.environ["FBM_RESEARCHER_COMPONENT_ROOT"] = "/fbm/researcher"
os.environ["FBM_SERVER_HOST"] = "researcher"
from fedbiomed.researcher.config import config  # noqa: E402

os.environ["FBM_SERVER_HOST"] = "0.0.0.0"
import torch  # noqa: E402
from fedbiomed.common.datamanager import DataManager  # noqa: E402
from fedbiomed.common.dataset import TabularDataset  # noqa: E402
from fedbiomed.common.training_plans import TorchTrainingPlan  # noqa: E402
from fedbiomed.researcher.aggregators.fedavg import FedAverage  # noqa: E402
from fedbiomed.researcher.federated_workflows import Experiment  # noqa: E402
from fedbiomed.researcher.requests import Requests  # noqa: E402

mark("imported")


class PlainPlan(TorchTrainingPlan):
    def init_dependencies(self):
        return ["import torch",
                "from fedbiomed.common.datamanager import DataManager",
                "from fedbiomed.common.dataset import TabularDataset"]

    def init_model(self, model_args):
        k, h = len(model_args["features"]), model_args["hidden"]
        return torch.nn.Sequential(torch.nn.Linear(k, h), torch.nn.ReLU(),
                                   torch.nn.Linear(h, 1), torch.nn.Sigmoid())

    def init_optimizer(self, optimizer_args):
        return torch.optim.Adam(self.model().parameters(), lr=optimizer_args["lr"])

    def training_data(self):
        args = self.model_args()
        return DataManager(dataset=TabularDataset(input_columns=args["features"],
                                                  target_columns=args["target"]),
                           shuffle=False)

    def training_step(self, data, target):
        return torch.nn.functional.binary_cross_entropy(self.model()(data.float()),
                                                        target.float())

    def testing_step(self, data, target):
        out, y = self.model()(data.float()), target.float()
        return {"bce": float(torch.nn.functional.binary_cross_entropy(out, y)),
                "accuracy": float(((out >= 0.5) == (y > 0.5)).float().mean())}


requests = Requests(config)
deadline = time.monotonic() + S["node_deadline"]
while len(found := requests.search([S["tag"]])) < S["nodes"]:
    if time.monotonic() > deadline:
        mark("failed", reason=f"only {len(found)} of {S['nodes']} nodes answered")
        sys.exit(2)
    time.sleep(1)
mark("nodes", count=len(found))

exp = Experiment(
    tags=[S["tag"]], training_plan_class=PlainPlan, round_limit=S["rounds"],
    model_args={"features": S["features"], "target": "target", "hidden": S["hidden"]},
    training_args={"epochs": S["epochs"], "optimizer_args": {"lr": S["lr"]},
                   "loader_args": {"batch_size": S["batch_size"], "shuffle": False},
                   "test_ratio": S["test_ratio"], "test_on_global_updates": True,
                   "test_on_local_updates": False, "random_seed": 0},
    aggregator=FedAverage(), tensorboard=False, save_breakpoints=False)
for r in range(1, S["rounds"] + 1):
    begun = time.monotonic()
    exp.run_once(test_after=r == S["rounds"])
    mark("round", round=r, seconds=time.monotonic() - begun)
mark("done")
'''


def prepare(work: Path) -> dict[str, Any]:
    """Each centre's model input as <node>.csv, its dataset spec, the researcher's files."""
    fed = load_federation(ROOT / "data" / "federation.yaml")
    spec, t = fed.feature_spec(), fed.training
    generate(fed, work / "records")
    for c in fed.centres:
        fs = build(work / "records" / c.folder_name, spec)
        table = np.column_stack([plan_input(model_input(fs.X, spec), spec, "vector"), fs.y])
        name = node_service(c.id)
        np.savetxt(work / "in" / f"{name}.csv", table, fmt="%.6f", delimiter=",",
                   header=",".join([*spec.feature_names, "target"]), comments="")
        (work / "in" / f"{name}.json").write_text(json.dumps({
            "path": f"/in/{name}.csv", "data_type": "csv", "name": f"{c.name} journeys",
            "description": f"centre {c.id}: mean event counts per code", "tags": t.tag}))
    settings = {"tag": t.tag, "nodes": len(fed.centres), "features": spec.feature_names,
                "rounds": t.rounds, "epochs": t.epochs, "batch_size": t.batch_size,
                "lr": t.learning_rate, "hidden": t.hidden,
                "test_ratio": t.held_out_percent / 100, "node_deadline": 300}
    (work / "in" / "settings.json").write_text(json.dumps(settings))
    (work / "in" / "researcher.py").write_text(RESEARCHER_PY)
    return settings


def compose_file(nodes: int) -> dict[str, object]:
    common = {"image": IMAGE, "networks": ["fl"], "volumes": ["./in:/in:ro"],
              "restart": "no"}
    services: dict[str, object] = {"researcher": {
        **common, "container_name": f"{PROJECT}-researcher",
        "command": ["python", "/in/researcher.py"]}}
    for i in range(nodes):
        services[node_service(i)] = {
            **common, "container_name": f"{PROJECT}-{node_service(i)}",
            "environment": {"NODE_NAME": node_service(i), "FBM_RESEARCHER_IP": "researcher",
                            "FBM_RESEARCHER_PORT": "50051"},
            "command": ["sh", "-c", NODE_SH.replace("$", "$$")]}  # $$: not for compose
    return {"services": services, "networks": {"fl": {"internal": True}}}


def docker_time(stamp: str) -> float:
    """Epoch seconds of a `docker logs -t` timestamp (nanoseconds cut to microseconds)."""
    m = re.match(r"(\S+?T\d\d:\d\d:\d\d)(\.\d{1,6})?\d*Z", stamp)
    if m is None:
        raise ValueError(stamp)
    return dt.datetime.fromisoformat(m[1] + (m[2] or "") + "+00:00").timestamp()


def logs(container: str, stamps: bool = False) -> list[str]:
    done = subprocess.run(["docker", "logs", *(["-t"] if stamps else []), container],
                          capture_output=True, text=True, errors="replace", check=False)
    return (done.stdout + done.stderr).splitlines()


def attempt(compose: list[str], n: int, nodes: int) -> bool:
    subprocess.run([*compose, "down", "-v"], capture_output=True, check=True)
    started = time.time()
    subprocess.run([*compose, "up", "-d"], capture_output=True, check=True)
    code = int(subprocess.run(["docker", "wait", f"{PROJECT}-researcher"], capture_output=True,
                              text=True, check=True).stdout.strip())
    total = time.time() - started
    marks = [json.loads(line.split(MARK, 1)[1]) for line in logs(f"{PROJECT}-researcher")
             if line.startswith(MARK)]
    at = {m["event"]: m["t"] - started for m in marks}
    if code != 0 or "done" not in at:
        reason = next((m["reason"] for m in marks if m["event"] == "failed"), "see below")
        print(f"[{n}] FAILED: the researcher exited with {code} after {total:.1f} s ({reason})")
        for name in ["researcher", *(node_service(i) for i in range(nodes))]:
            tail = "\n  ".join(logs(f"{PROJECT}-{name}")[-12:])
            print(f"--- {PROJECT}-{name} (last lines)\n  {tail}", file=sys.stderr)
        return False
    connected = []
    for i in range(nodes):
        lines = logs(f"{PROJECT}-{node_service(i)}", stamps=True)
        stamps = [line.split(" ", 1)[0] for line in lines if CONNECTED in line]
        connected.append(docker_time(stamps[0]) - started if stamps else None)
    rounds = [m["seconds"] for m in marks if m["event"] == "round"]
    ready = ("unknown" if None in connected
             else f"{max(c for c in connected if c is not None):.1f} s")
    print(f"[{n}] up -d -> researcher exit: {total:.1f} s (researcher imported at "
          f"{at['imported']:.1f} s, all nodes connected at {ready}, found by search at "
          f"{at['nodes']:.1f} s)")
    print(f"[{n}]   {len(rounds)} rounds: mean {sum(rounds) / len(rounds):.2f} s, "
          f"min {min(rounds):.2f} s, max {max(rounds):.2f} s; per round: "
          + " ".join(f"{s:.2f}" for s in rounds))
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="measure N times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fjplain-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # the containers' user (10001) reads ./in
        (work / "in").mkdir(mode=0o755)
        settings = prepare(work)
        nodes = settings["nodes"]
        (work / "docker-compose.yml").write_text(yaml.safe_dump(compose_file(nodes)))
        compose = [*compose_command(), "-f", str(work / "docker-compose.yml"), "-p", PROJECT]
        print(f"plain Fed-BioMed via its CLI: {nodes} nodes ({IMAGE}), {settings['rounds']} "
              f"rounds, {settings['epochs']} epochs, batch {settings['batch_size']}, Adam lr "
              f"{settings['lr']}, MLP {len(settings['features'])}->{settings['hidden']}->1; "
              "training-plan approval OFF (plain install default)")
        ok = True
        try:
            for n in range(1, args.repeat + 1):
                ok = attempt(compose, n, nodes) and ok
        except subprocess.CalledProcessError as exc:
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
            print(f"FAILED: `{' '.join(exc.cmd)}` exited with {exc.returncode}: "
                  f"{err.strip()[-500:]}")
            ok = False
        finally:
            subprocess.run([*compose, "down", "-v"], capture_output=True, check=False)
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={PROJECT}-"],
                              capture_output=True, text=True, check=False).stdout.split()
        if left:
            print(f"warning: containers left behind: {' '.join(left)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
