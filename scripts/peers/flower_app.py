"""Flower 1.42 on fedjourney's default workload: a ServerApp and a ClientApp run by Flower's
simulation engine (`flwr.simulation.run_simulation`, Ray backend), for scripts/bench peers.

The data are each centre's tensors as fedjourney's node builds and splits them, written by
scripts/bench_peers.py into one folder: `settings.json` (the training settings of
data/federation.yaml and the centres) and `centre-<i>.npz` per centre (x_train, y_train,
x_test, y_test: the training patients, then the held-out ones, in the node's split order).
Virtual node i (Flower's `partition-id`) holds centre i's file and nothing else.

What is trained is fedjourney's, imported from the repository's src/ (fedjourney.model needs
only numpy; torch is imported inside its functions): the MLP `make_mlp` (K -> hidden -> 1,
ReLU, sigmoid), its initial weights after `torch.manual_seed(seed)`, each epoch's batch
order `training_orders(n_train, seed, round)`, Adam restarted each round (as a node's
fresh plan), BCE, and `auc` on the held-out split. FedAvg weights each centre by its
training patients, as Fed-BioMed's FedAverage does. After each round the aggregated model
is evaluated on every centre's held-out split; the final row is the final model's.

Writes the results as JSON to --out (per round: each centre's AUC, their plain mean, the
round's wall time; epoch timestamps of the process's milestones) and exits 0; exits 1
without it when the simulation failed.

    python scripts/peers/flower_app.py --data DIR --out FILE [--client-cpus N]

Run with the Flower venv's python (flwr[simulation], torch, numpy). FJ_PEERS_DATA, set by
this script before Ray starts, tells the ClientApp where the data are.
"""

from __future__ import annotations

import time

STARTED = time.time()  # before the heavy imports: what they cost is part of the figure

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))  # fedjourney.model; Flower passes sys.path to Ray

import numpy as np  # noqa: E402
import torch  # noqa: E402
from flwr.app import (  # noqa: E402
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from fedjourney.model import auc, make_mlp, training_orders  # noqa: E402

IMPORTED = time.time()
DATA_ENV = "FJ_PEERS_DATA"


def settings() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (Path(os.environ[DATA_ENV]) / "settings.json").read_text(encoding="utf-8"))
    return loaded


def centre_data(context: Context) -> tuple[int, dict[str, np.ndarray]]:
    """This virtual node's centre id and its arrays (its partition-id indexes the centres)."""
    centre = settings()["centres"][int(context.node_config["partition-id"])]
    with np.load(Path(os.environ[DATA_ENV]) / centre["file"]) as npz:
        return int(centre["id"]), {k: npz[k] for k in npz.files}


def model_from(msg: Message) -> torch.nn.Module:
    s = settings()
    model = make_mlp(s["n_features"], s["hidden"])
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    return model


client = ClientApp()


@client.train()
def train(msg: Message, context: Context) -> Message:
    """The global model trained on this centre's training patients for one round."""
    _, data = centre_data(context)
    config = msg.content["config"]
    model = model_from(msg)
    x = torch.from_numpy(data["x_train"])
    y = torch.from_numpy(data["y_train"]).reshape(-1, 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    batch, epochs = int(config["batch-size"]), int(config["epochs"])
    model.train()
    total, seen = 0.0, 0
    orders = training_orders(len(x), int(config["seed"]), int(config["server-round"]))
    for _epoch, order in zip(range(epochs), orders, strict=False):
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            optimiser.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
    metrics = MetricRecord({"train-loss": total / max(seen, 1), "num-examples": len(x)})
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}),
                   reply_to=msg)


@client.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The global model's BCE and AUC on this centre's held-out patients."""
    centre, data = centre_data(context)
    model = model_from(msg)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(data["x_test"]))
    y = data["y_test"].astype(np.float32)
    loss = float(torch.nn.functional.binary_cross_entropy(out, torch.from_numpy(y).reshape(-1, 1)))
    score = out.numpy().ravel().astype(np.float32)
    metrics = MetricRecord({"centre": centre, "auc": auc(y, score), "loss": loss,
                            "num-examples": len(y)})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


def per_centre(replies: list[RecordDict], _weighted_by: str) -> MetricRecord:
    """Each centre's AUC and their plain (unweighted) mean, as fedjourney reports it."""
    out = MetricRecord()
    aucs = []
    for reply in replies:
        m = reply["metrics"]
        out[f"auc-{int(m['centre'])}"] = float(m["auc"])
        aucs.append(float(m["auc"]))
    kept = [a for a in aucs if not math.isnan(a)]
    out["auc-mean"] = sum(kept) / len(kept) if kept else math.nan
    return out


class TimedFedAvg(FedAvg):
    """FedAvg noting when each round's training messages are made (its wall time)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.round_started: list[float] = []

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Any:
        self.round_started.append(time.time())
        return super().configure_train(server_round, arrays, config, grid)


server = ServerApp()
RESULTS: dict[str, Any] = {}


@server.main()
def main(grid: Grid, context: Context) -> None:
    s = settings()
    entered = time.time()
    nodes = len(s["centres"])
    torch.manual_seed(s["seed"])  # the initial model, as Fed-BioMed's seeded plan makes it
    initial = make_mlp(s["n_features"], s["hidden"])
    strategy = TimedFedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=nodes,
                           min_evaluate_nodes=nodes, min_available_nodes=nodes,
                           evaluate_metrics_aggr_fn=per_centre)
    result = strategy.start(
        grid=grid, initial_arrays=ArrayRecord(initial.state_dict()), num_rounds=s["rounds"],
        train_config=ConfigRecord({"lr": s["lr"], "epochs": s["epochs"],
                                   "batch-size": s["batch_size"], "seed": s["seed"]}))
    finished = time.time()
    bounds = [*strategy.round_started, finished]
    rounds = []
    for r in range(1, s["rounds"] + 1):
        m = result.evaluate_metrics_clientapp.get(r)
        by_centre = None if m is None else {
            k.removeprefix("auc-"): v for k, v in m.items() if k not in ("auc-mean",)}
        rounds.append({"round": r, "seconds": bounds[r] - bounds[r - 1], "auc": by_centre,
                       "auc_mean": None if m is None else m["auc-mean"]})
    RESULTS.update(rounds=rounds, final_auc=rounds[-1]["auc"],
                   final_mean_auc=rounds[-1]["auc_mean"],
                   t={"started": STARTED, "imported": IMPORTED, "server_main": entered,
                      "first_round": strategy.round_started[0], "strategy_done": finished})


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="settings.json, centre-*.npz")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON results go")
    parser.add_argument("--client-cpus", type=float, default=None,
                        help="CPUs Ray reserves per ClientApp (default: Flower's, 2)")
    args = parser.parse_args()
    os.environ[DATA_ENV] = str(args.data.resolve())  # inherited by Ray's workers
    nodes = len(settings()["centres"])
    backend = (None if args.client_cpus is None
               else {"client_resources": {"num_cpus": args.client_cpus, "num_gpus": 0.0}})
    run_simulation(server_app=server, client_app=client, num_supernodes=nodes,
                   backend_config=backend)
    if not RESULTS:
        print("flower_app: the simulation ended without results", file=sys.stderr)
        return 1
    RESULTS["t"]["simulation_returned"] = time.time()
    args.out.write_text(json.dumps(RESULTS, indent=1) + "\n", encoding="utf-8")
    print(f"flower_app: final mean AUC {RESULTS['final_mean_auc']:.4f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
