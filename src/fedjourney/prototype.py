"""Stage A: the tutorial's local prototype, and the baselines federation is judged against.

For one centre: build the tensor, print what the tutorial prints, train the MLP and print
the loss per epoch. Then the question a user has: what does federation buy? Train one model
per centre on its own data and one on all centres pooled; evaluate every model on every
centre's held-out split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fedjourney.config import Centre, Federation
from fedjourney.features import FeatureSet, FeatureSpec, build, model_input, plan_input
from fedjourney.model import accuracy, auc, held_out, make_mlp

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Split:
    x_train: F32
    y_train: F32
    x_test: F32
    y_test: F32


def split(features: FeatureSet, spec: FeatureSpec) -> Split:
    # The tutorial's MLP takes a vector per patient (the mean over bins of a sequence spec).
    x = plan_input(model_input(features.X, spec), spec, "vector")
    test = held_out(features.patient_ids)
    return Split(x[~test], features.y[~test], x[test], features.y[test])


def train(x: F32, y: F32, epochs: int, seed: int, batch_size: int = 16, lr: float = 1e-3,
          log: Any = None) -> Any:
    """The tutorial's training loop: Adam, BCE, mini-batches of 16."""
    import torch

    torch.manual_seed(seed)
    model = make_mlp(x.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCELoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1, 1)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), batch_size):
            idx = order[start:start + batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        if log is not None:
            log(f"  epoch {epoch:>3}/{epochs}  loss {total / max(len(xt), 1):.4f}")
    return model


def evaluate(model: Any, x: F32, y: F32) -> dict[str, float | int]:
    import torch

    with torch.no_grad():
        score = model(torch.from_numpy(x)).numpy().ravel()
    return {"auc": round(auc(y, score), 4), "accuracy": round(accuracy(y, score), 4),
            "n": len(y)}


def run_prototype(fed: Federation, data_dir: Path, focus: Centre, epochs: int, backend: str,
                  out: Path, log: Any = print) -> dict[str, Any]:
    """Stage A end to end; writes the comparison table as JSON to out."""
    spec = fed.feature_spec()
    sets = {c.name: build(data_dir / c.folder_name, spec, backend) for c in fed.centres}
    summary = sets[focus.name].summary()
    log(f"Stage A on {focus.name} ({backend} backend, spec {spec.fingerprint()})")
    log(f"  {'target':<22} {spec.target.describe()}")
    for key in ("shape", "patients", "patients_excluded", "time_bins", "features",
                "sparsity", "non_zero_cells", "patients_with_events", "positive_rate"):
        if key in summary:  # patients_excluded: a condition target's only
            log(f"  {key:<22} {summary[key]}")
    splits = {name: split(fs, spec) for name, fs in sets.items()}
    log(f"Training the MLP ({spec.shape[1]} -> 32 -> 1) on {focus.name}:")
    models = {f"local: {focus.name}": train(splits[focus.name].x_train,
                                            splits[focus.name].y_train, epochs, seed=0,
                                            log=log)}
    for name, s in splits.items():
        if name != focus.name:
            models[f"local: {name}"] = train(s.x_train, s.y_train, epochs, seed=0)
    pooled_x = np.concatenate([s.x_train for s in splits.values()])
    pooled_y = np.concatenate([s.y_train for s in splits.values()])
    models["centralised (pooled)"] = train(pooled_x, pooled_y, epochs, seed=0)
    table = {model_name: {centre: evaluate(model, s.x_test, s.y_test)
                          for centre, s in splits.items()}
             for model_name, model in models.items()}
    # Every centre's held-out patients together: a rare target (a condition's incidence)
    # leaves a handful of positives per centre, too few for a per-centre AUC to mean much.
    every_x = np.concatenate([s.x_test for s in splits.values()])
    every_y = np.concatenate([s.y_test for s in splits.values()])
    together = {model_name: evaluate(model, every_x, every_y)
                for model_name, model in models.items()}
    result = {"spec": spec.to_dict(), "spec_fingerprint": spec.fingerprint(),
              "backend": backend, "epochs": epochs, "held_out_percent": 30,
              "centres": {c.name: sets[c.name].summary() for c in fed.centres},
              "baselines": table, "held_out_together": together}
    log("")
    log(render_table(table))
    log(f"\nAUC on every centre's held-out patients together (n={len(every_y)}, "
        f"{int(every_y.sum())} positive):")
    for model_name, r in together.items():
        log(f"  {model_name:<{max(map(len, together)) + 2}}{r['auc']:.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    log(f"\nwrote {out}")
    return result


def _cell(r: dict[str, float | int]) -> str:
    text = f"AUC {r['auc']:.3f} acc {r['accuracy']:.3f} (n={r['n']})"
    return f"{text:>31}"  # room for n in the thousands: a condition target needs them


def render_table(table: dict[str, dict[str, dict[str, float | int]]]) -> str:
    """Models in rows, held-out centres in columns: AUC / accuracy (n)."""
    centres = list(next(iter(table.values())))
    width = max(len(m) for m in table) + 2
    head = "model".ljust(width) + "".join(f"{c[:29]:>31}" for c in centres)
    lines = [head, "-" * len(head)]
    for model, row in table.items():
        cells = "".join(_cell(r) for r in row.values())
        lines.append(model.ljust(width) + cells)
    return "\n".join(lines)
