"""Local-only and centralised baselines trained the way the nodes train (runs in the images).

What federation buys is judged against one model per centre on its own data and one on all
centres pooled. To compare like with like, each baseline is the experiment's own plan class
(its model, optimizer and loss, initialised through Fed-BioMed's `post_init` with the run's
model and training arguments), trained on the same training patients, in the same batches
(the same seeded order, model.training_orders), for the same budget: `rounds` rounds of
`epochs` epochs (or `num_updates` batches), the optimizer restarting each round as a node's
does. Each is evaluated on every centre's held-out split, the one the nodes validate on.

What it cannot share with a federated run: secure aggregation and DP-SGD are properties of
the federation, so baselines train in the clear (`differences` names them). Runs as
`python -m fedjourney.baselines` in the researcher image (`fedjourney report` and
`fedjourney prototype` start it: host/baselines.py), on data the host regenerated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fedjourney.config import Federation, Training, load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.features import FeatureSpec, build, model_input, plan_input
from fedjourney.model import accuracy, auc, auc_interval, split_order, training_orders
from fedjourney.records import write_atomically

F32 = npt.NDArray[np.float32]
CENTRALISED = "centralised (pooled)"


@dataclass(frozen=True)
class Split:
    """A centre's patients in split order: training patients, then the held-out ones."""

    x_train: F32
    y_train: F32
    x_test: F32
    y_test: F32


def centre_split(folder: Path, spec: FeatureSpec, t: Training, backend: str) -> Split:
    """The centre's tensor as its node builds it for this plan, split as the node splits it
    (node/dataset.py: the last floor(N * held_out_percent / 100) in split order)."""
    features = build(folder, spec, backend)
    x = plan_input(model_input(features.X, spec), spec, t.plan.input)
    order, n_test = split_order(features.patient_ids, t.held_out_percent)
    x, y = x[order], features.y[order]
    n_train = len(order) - n_test
    return Split(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def model_args(fed: Federation, t: Training, x: F32 | None = None, y: F32 | None = None
               ) -> dict[str, Any]:
    """The plan's model arguments, as the researcher sends them (run_id aside), for a model
    trained on (x, y): where the run's come from the nodes, these come from (x, y) as a
    node's from its own patients: `output_bias: prior` the positive rate of y (the
    researcher's is the federation's, from the nodes' records), `input_transform:
    standardize` the mean and std of x (each node's, of its training patients)."""
    from fedjourney.plans.base import input_moments
    from fedjourney.researcher.experiment import model_args as researcher_model_args

    rate = float(y.mean()) if y is not None and len(y) else None
    prior = rate if rate is not None and 0 < rate < 1 else None
    args = researcher_model_args(fed, t, "baselines", prior)
    transform = str(args.get("input_transform") or "")
    if transform.endswith("standardize") and args.get("input_mean") is None and x is not None:
        import torch

        inputs = torch.utils.data.TensorDataset(torch.from_numpy(x))
        args["input_mean"], args["input_std"] = input_moments(inputs, transform)
    return args


def train(fed: Federation, t: Training, x: F32, y: F32, log: Callable[[str], None] | None
          = None) -> Any:
    """The plan's model trained on (x, y) for the experiment's budget; see the module."""
    import torch
    from fedbiomed.common.training_args import TrainingArgs

    from fedjourney.planfile import plan_class
    from fedjourney.researcher.experiment import training_args

    args = training_args(t)
    args.pop("dp_args", None)  # a federation's property: see the module docstring
    if args.get("random_seed") is None:
        args["random_seed"] = t.seed
    cls = plan_class(t.plan)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1, 1)
    given = model_args(fed, t, x, y)
    params = None
    for round_ in range(1, t.rounds + 1):
        # A fresh plan each round, as on a node: seeded init, then the current weights.
        plan = cls()
        plan.post_init(given, TrainingArgs(args, only_required=False), round=round_)
        if params is not None:
            plan.model().load_state_dict(params)
        optimiser = plan.optimizer().optimizer
        plan.model().train()
        steps = 0
        total, seen = 0.0, 0
        for epoch, order in enumerate(training_orders(len(xt), t.seed, round_), start=1):
            for start in range(0, len(order), t.batch_size):
                idx = order[start:start + t.batch_size]
                optimiser.zero_grad()
                loss = plan.training_step(xt[idx], yt[idx])
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                steps += 1
                if t.num_updates and steps >= t.num_updates:
                    break
            done = (steps >= t.num_updates) if t.num_updates else epoch >= t.epochs
            if done or len(xt) == 0:
                break
        params = {k: v.detach().clone() for k, v in plan.model().state_dict().items()}
        if log is not None:
            log(f"  round {round_:>3}/{t.rounds}  loss {total / max(seen, 1):.4f}")
    plan.model().eval()
    return plan.model()


def evaluate(model: Any, x: F32, y: F32) -> dict[str, Any]:
    """AUC (with its 95% interval), accuracy, patients and positives on a held-out split."""
    import torch

    with torch.no_grad():
        score = model(torch.from_numpy(x)).numpy().ravel().astype(np.float32)
    low, high = auc_interval(y, score)
    return {"auc": _round(auc(y, score)), "auc_low": _round(low), "auc_high": _round(high),
            "accuracy": _round(accuracy(y, score)), "n": len(y),
            "positives": int((y > 0.5).sum())}


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def differences(t: Training) -> list[str]:
    """What the baselines cannot share with this experiment's federated run."""
    out = []
    if t.dp:
        out.append("they train without DP-SGD (a federated run's local DP)")
    if t.secagg != "off":
        out.append("secure aggregation has no counterpart in a single model")
    if t.aggregator == "fedprox":
        out.append("FedProx's proximal term pulls towards a global model they do not have")
    if t.aggregator == "scaffold":
        out.append("SCAFFOLD's correction needs other centres: they take plain SGD steps")
    return out


def settings(t: Training) -> dict[str, Any]:
    """The training settings the baselines used (and their cache is keyed by)."""
    return {"plan": t.plan.name, "model_args": dict(t.model_args), "hidden": t.hidden,
            "optimizer": t.optimizer,
            "learning_rate": t.learning_rate, "batch_size": t.batch_size,
            "rounds": t.rounds, "epochs": t.epochs, "num_updates": t.num_updates,
            "held_out_percent": t.held_out_percent, "seed": t.seed}


def baselines(fed: Federation, t: Training, data: Path, backend: str, focus: int | None,
              log: Callable[[str], None]) -> dict[str, Any]:
    """Every baseline model evaluated on every centre's held-out split (see the module)."""
    spec = fed.feature_spec()
    splits = {c.name: centre_split(data / c.folder_name, spec, t, backend)
              for c in fed.centres}
    models: dict[str, Any] = {}
    for centre in fed.centres:
        s = splits[centre.name]
        shown = centre.id == focus
        if shown:
            log(f"Training plan {t.plan.name} on {centre.name} ({len(s.y_train)} patients, "
                f"{t.rounds} rounds x {t.num_updates or t.epochs} "
                f"{'updates' if t.num_updates else 'epochs'}):")
        models[f"local: {centre.name}"] = train(fed, t, s.x_train, s.y_train,
                                               log if shown else None)
    models[CENTRALISED] = train(fed, t, np.concatenate([s.x_train for s in splits.values()]),
                                np.concatenate([s.y_train for s in splits.values()]))
    table = {name: {centre: evaluate(m, s.x_test, s.y_test) for centre, s in splits.items()}
             for name, m in models.items()}
    # A rare target leaves a handful of positives per centre: the pooled held-out patients
    # are the figure that can mean something.
    every_x = np.concatenate([s.x_test for s in splits.values()])
    every_y = np.concatenate([s.y_test for s in splits.values()])
    together = {name: evaluate(m, every_x, every_y) for name, m in models.items()}
    return {"spec_fingerprint": spec.fingerprint(), "backend": backend,
            "settings": settings(t), "differences": differences(t),
            "baselines": table, "held_out_together": together}


def main(argv: Sequence[str] | None = None) -> int:
    """python -m fedjourney.baselines --config VIEW --data DIR --out FILE [--experiment X]"""
    parser = argparse.ArgumentParser(prog="python -m fedjourney.baselines")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--experiment")
    parser.add_argument("--backend", default="polars")
    parser.add_argument("--focus", type=int, help="print this centre's training loss")
    args = parser.parse_args(argv)
    try:
        fed = load_federation(args.config)
        t = fed.experiment(args.experiment)
        result = baselines(fed, t, args.data, args.backend, args.focus,
                           lambda line: print(line, flush=True))
    except FedjourneyError as exc:
        print(f"baselines: {exc}", file=sys.stderr)
        return 2
    write_atomically(args.out, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
