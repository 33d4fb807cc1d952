"""Local differential privacy on a federation, simulated in one process: what DP-SGD does to
the model, variant by variant, without a stack (scripts/bench_dp.py runs it in the
researcher image, which holds Fed-BioMed and opacus; the host has neither).

Each variant is the config's `dp` experiment with some settings changed (the DP arguments,
the plan's model arguments: plans/base.py). It is trained as the federation trains it:
- each centre's tensor built with the FeatureSpec and split as its node splits it
  (baselines.centre_split: split order, held_out_percent, the plan's input);
- FedAverage over the centres for the experiment's rounds, weighted by training patients
  (Fed-BioMed's sample_size); the initial model the researcher's (the plan's init_model
  through post_init, with the experiment's model and training arguments);
- each centre's round a fresh plan (post_init, the global weights loaded, a fresh
  optimizer), trained by Fed-BioMed's own TorchTrainingPlan.training_routine on a Fed-BioMed
  loader of the training patients (batch_size, the seeded TrainingOrder), so that under DP its
  DPController calls opacus' make_private as on a node: Poisson sampling at rate
  1 / len(loader), per-sample gradients clipped to `clip`, Gaussian noise of std
  sigma * clip per step, the plan's own loss and optimizer;
- the final global model's AUC on every centre's held-out patients (model.auc);
- epsilon per centre as the researcher reports it (researcher/privacy.py: opacus' RDP
  accountant over every round), and its maximum over centres, the run's epsilon.

The plan's model arguments go through the researcher's own code: `output_bias: prior`
becomes the logit of researcher/experiment.class_prior of the centres' profile counts (the
patients and positives each node's record publishes), computed here from the same counts;
`input_transform: standardize` is done by the plan on each node with that node's own
statistics. One comparison row standardises with pooled statistics instead, from each
centre's per-feature sums and sums of squares (pooled_moments: what a node would have to
publish for it; none does today).

    python -m fedjourney.dpsim --config FEDERATION --data DIR --out FILE [--variant NAME]...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fedjourney.config import Federation, Privacy, Training, load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.records import write_atomically

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Variant:
    """The `dp` experiment with these changes: `dp` replaces its DP arguments (None: no DP;
    True: the experiment's own), `model_args` its model arguments (None: its own)."""

    label: str
    dp: dict[str, float] | bool | None = True
    model_args: dict[str, Any] | None = None
    default: bool = True  # in the benchmark's default table


def _dp(sigma: float = 1.0, clip: float = 1.0) -> dict[str, float]:
    return {"sigma": sigma, "clip": clip}


PRIOR = {"output_bias": "prior"}
STD = {"input_transform": "standardize"}  # each centre's own statistics (the plan's)

# The table's rows, in order: the cause (each candidate alone, at the sigma and clip the
# experiment had), then the remedies. "dp" is the experiment as the config ships it.
VARIANTS: dict[str, Variant] = {
    "no-dp": Variant("FedAverage, no DP", dp=None, model_args={}),
    "before": Variant("DP sigma 1 clip 1, no remedy (before)", dp=_dp(), model_args={}),
    "pos-weight": Variant("+ class weight (pos_weight 30)", dp=_dp(),
                          model_args={"pos_weight": 30.0}),
    "clip0.1": Variant("clip 0.1, no remedy", dp=_dp(clip=0.1), model_args={}),
    "clip5": Variant("clip 5, no remedy", dp=_dp(clip=5.0), model_args={}),
    "log1p": Variant("+ log1p input", dp=_dp(), model_args={"input_transform": "log1p"}),
    "prior": Variant("+ output bias at the prior", dp=_dp(), model_args=PRIOR),
    "std": Variant("+ standardised input", dp=_dp(), model_args=STD),
    "prior+std": Variant("+ prior bias + standardised", dp=_dp(), model_args={**PRIOR, **STD}),
    "prior+clip5": Variant("prior bias, clip 5", dp=_dp(clip=5.0), model_args=PRIOR),
    "std+clip5": Variant("standardised, clip 5", dp=_dp(clip=5.0), model_args=STD),
    "dp": Variant("DP as configured"),
    "fed-std": Variant("as configured, federated mean and std", model_args={
        **PRIOR, **STD, "input_stats": "federated"}),
    "clip0.1+": Variant("as configured, clip 0.1", dp=_dp(clip=0.1)),
    "clip0.5+": Variant("as configured, clip 0.5", dp=_dp(clip=0.5)),
    "clip10+": Variant("as configured, clip 10", dp=_dp(clip=10.0)),
    "sigma0.5+": Variant("as configured, sigma 0.5", dp=_dp(0.5, 5.0)),
    "sigma2+": Variant("as configured, sigma 2", dp=_dp(2.0, 5.0)),
    # Not in the default table (about 20 s a seed each on one core):
    "clip2+": Variant("as configured, clip 2", dp=_dp(clip=2.0), default=False),
    "clip20+": Variant("as configured, clip 20", dp=_dp(clip=20.0), default=False),
    "sigma0.7+": Variant("as configured, sigma 0.7", dp=_dp(0.7, 5.0), default=False),
    "centred": Variant("as configured, centred only (federated means)", default=False,
                       model_args={**PRIOR, **STD, "input_stats": "mean"}),
    "log1p+": Variant("as configured, log1p first", default=False,
                      model_args={**PRIOR, "input_transform": "log1p+standardize"}),
    "prior+log1p+clip5": Variant("prior bias + log1p, clip 5", dp=_dp(clip=5.0),
                                 model_args={**PRIOR, "input_transform": "log1p"},
                                 default=False),
    "prior+clip10": Variant("prior bias, clip 10", dp=_dp(clip=10.0), model_args=PRIOR,
                            default=False),
    "clip20": Variant("clip 20, no remedy", dp=_dp(clip=20.0), model_args={},
                      default=False),
}
DEFAULT_VARIANTS = [name for name, v in VARIANTS.items() if v.default]


def with_variant(t: Training, v: Variant) -> Training:
    """The experiment `t` changed as `v` says."""
    dp = t.dp
    if v.dp is None or v.dp is False:
        dp = None
    elif isinstance(v.dp, dict):
        dp = Privacy(sigma=v.dp["sigma"], clip=v.dp["clip"],
                     delta=t.dp.delta if t.dp else Privacy(0, 0).delta)
    model_args = t.model_args if v.model_args is None else v.model_args
    return dataclasses.replace(t, dp=dp, model_args=dict(model_args))


def pooled_moments(parts: Sequence[tuple[int, F64, F64]]) -> tuple[list[float], list[float]]:
    """Per-feature mean and (population) std of the union of several centres' patients, from
    each centre's (patients, sum of x, sum of x squared): aggregates only."""
    n = sum(p[0] for p in parts)
    if n == 0:
        raise ValueError("no patients")
    mean: F64 = np.sum([p[1] for p in parts], axis=0) / n
    var: F64 = np.maximum(np.sum([p[2] for p in parts], axis=0) / n - mean ** 2, 0.0)
    return mean.tolist(), np.sqrt(var).tolist()


def moments(x: F32, transform: str) -> tuple[int, F64, F64]:
    """What a centre would send for the standardisation: its patients, and the sum and sum of
    squares of each feature of its (log1p'd when asked) training input, over patients (and
    time bins for a sequence, as the plan's own statistics)."""
    z = x.astype(np.float64)
    if transform.startswith("log1p"):
        z = np.log1p(z)
    z = z.reshape(-1, z.shape[-1])
    return len(z), z.sum(axis=0), (z ** 2).sum(axis=0)


def prior(splits: dict[str, Any]) -> float | None:
    """The federation's positive rate as the researcher finds it: class_prior of the
    centres' profiles (node/profile.py: patients and positives, small cells withheld)."""
    from fedjourney.features.vocabulary import MIN_PATIENTS
    from fedjourney.researcher.experiment import class_prior

    profiles = []
    for s in splits.values():
        y = np.concatenate([s.y_train, s.y_test])
        positives = int(y.sum())
        profiles.append({"patients": len(y), "positives": positives
                         if min(positives, len(y) - positives) >= MIN_PATIENTS else None})
    return class_prior(profiles)


def resolved(model_args: dict[str, Any], splits: dict[str, Any]) -> dict[str, Any]:
    """model_args as the plan receives them. The simulation's own `input_stats` says whose
    statistics standardise: `local` (default: the plan's own, each centre its training
    patients'), `federated` (pooled over the centres from each one's moments: input_mean
    and input_std given to the plan), `mean` (pooled means, std 1: centring only)."""
    out = dict(model_args)
    stats = out.pop("input_stats", "local")
    transform = out.get("input_transform")
    if transform and transform.endswith("standardize") and stats != "local":
        mean, std = pooled_moments([moments(s.x_train, transform) for s in splits.values()])
        out["input_mean"], out["input_std"] = mean, [1.0] * len(std) if stats == "mean" else std
    return out


def fedavg(fed: Federation, t: Training, splits: dict[str, Any], seed: int,
           log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The experiment's final global model, as each centre applies it (see the module
    docstring)."""
    import torch
    from fedbiomed.common.dataloader import PytorchDataLoader
    from fedbiomed.common.training_args import TrainingArgs

    from fedjourney.node.dataset import TrainingOrder
    from fedjourney.planfile import plan_class
    from fedjourney.researcher.experiment import model_args as researcher_model_args
    from fedjourney.researcher.experiment import training_args

    cls = plan_class(t.plan)
    margs = resolved(researcher_model_args(fed, t, "dpsim", prior(splits)), splits)
    args = training_args(t)
    # DP runs draw their noise unseeded; the simulation seeds the process instead, so that
    # its variants start from the same model and are reproducible.
    torch.manual_seed(seed)

    def plan(round_: int) -> Any:
        p = cls()
        p.post_init(margs, TrainingArgs(args, only_required=False), round=round_)
        return p

    def loader(s: Any, round_: int) -> Any:
        """The centre's training patients as its node's loader gives them."""
        data = torch.utils.data.TensorDataset(torch.from_numpy(s.x_train),
                                              torch.from_numpy(s.y_train).reshape(-1, 1))
        order = TrainingOrder(_Sized(len(s.y_train)), t.seed, round_)  # type: ignore[arg-type]
        return PytorchDataLoader(data, batch_size=t.batch_size, shuffle=False, sampler=order)

    weights = {k: v.detach().clone() for k, v in plan(0).model().state_dict().items()}
    for round_ in range(1, t.rounds + 1):
        updates: list[tuple[int, dict[str, Any]]] = []
        for s in splits.values():
            p = plan(round_)
            p.model().load_state_dict(weights)
            p.set_data_loaders(loader(s, round_), None)
            p.training_routine()
            updates.append((len(s.y_train), p.after_training_params()))
        total = sum(n for n, _ in updates)
        weights = {k: sum(n / total * u[k] for n, u in updates) for k in weights}
        if log is not None:
            log(f"    round {round_}/{t.rounds}")
    models = {}
    for centre, s in splits.items():
        # The final validation: the global model on the node, its loaders set as in training.
        p = plan(t.rounds + 1)
        p.model().load_state_dict(weights)
        p.set_data_loaders(loader(s, t.rounds + 1), None)
        models[centre] = p.model().eval()
    return models


@dataclass(frozen=True)
class _Sized:
    n_train: int


def scores(model: Any, x: F32) -> F32:
    import torch

    with torch.no_grad():
        out: F32 = model(torch.from_numpy(x)).numpy().ravel().astype(np.float32)
    return out


def diagnostics(models: dict[str, Any], splits: dict[str, Any]) -> dict[str, float]:
    """How the model scores the held-out patients, pooled over centres: the rank correlation
    of its score with the patient's record volume (the sum of its inputs: positive when the
    model ranks busier records higher, as counts alone do), and its mean score (the
    positive rate is about 0.03)."""
    x = np.concatenate([s.x_test for s in splits.values()])
    score = np.concatenate([scores(models[c], s.x_test) for c, s in splits.items()])
    volume = x.reshape(len(x), -1).sum(axis=1)
    return {"volume_rho": spearman(score, volume), "mean_score": float(score.mean())}


def spearman(a: F32, b: F32) -> float:
    """Spearman's rank correlation (ties at their mean rank); NaN when one side is constant."""
    from fedjourney.model import _midranks

    ra, rb = _midranks(a.astype(np.float64)), _midranks(b.astype(np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def epsilons(t: Training, splits: dict[str, Any]) -> dict[str, float]:
    """epsilon per centre as the researcher reports it (every round, each centre's size)."""
    from fedjourney.researcher.privacy import epsilon

    if t.dp is None:
        return {}
    return {c: round(epsilon(t.dp, t.batch_size, t.epochs, t.num_updates,
                             [len(s.y_train)] * t.rounds), 3) for c, s in splits.items()}


def simulate(fed: Federation, data: Path, names: Sequence[str], seed: int, backend: str,
             log: Callable[[str], None]) -> dict[str, Any]:
    """Every variant of `names` on data's centres, and the local-only reference."""
    import torch

    from fedjourney.baselines import centre_split
    from fedjourney.baselines import train as train_alone
    from fedjourney.model import auc

    torch.set_num_threads(1)
    t = fed.experiment("dp")
    spec = fed.feature_spec()
    splits = {c.name: centre_split(data / c.folder_name, spec, t, backend)
              for c in fed.centres}
    out: dict[str, Any] = {
        "centres": {c: {"train": len(s.y_train), "held_out": len(s.y_test),
                        "positives": int(s.y_test.sum())} for c, s in splits.items()},
        # The hypothesis' premise: a patient's record volume alone ranks the future cases.
        "volume": {"auc": {c: auc(s.y_test, s.x_test.reshape(len(s.x_test), -1).sum(axis=1))
                           for c, s in splits.items()}},
        "variants": {}}
    for name in names:
        v = VARIANTS[name]
        tv = with_variant(t, v)
        started = time.monotonic()
        models = fedavg(fed, tv, splits, seed)
        eps = epsilons(tv, splits)
        out["variants"][name] = {
            "label": v.label, "dp": dataclasses.asdict(tv.dp) if tv.dp else None,
            "model_args": dict(tv.model_args),
            "auc": {c: auc(s.y_test, scores(models[c], s.x_test)) for c, s in splits.items()},
            **diagnostics(models, splits),
            "epsilon": max(eps.values()) if eps else None, "epsilon_per_centre": eps,
            "seconds": round(time.monotonic() - started, 1)}
        r = out["variants"][name]
        log(f"  {name:<18} mean AUC {np.mean(list(r['auc'].values())):.3f}  epsilon "
            f"{r['epsilon']}  rho(score, volume) {r['volume_rho']:+.2f}  mean score "
            f"{r['mean_score']:.3f}  ({r['seconds']:.0f} s)")
    # The reference: each centre's model on its own patients, without DP, as the baselines
    # train it (the config's training section: the plan and settings of the default run).
    started = time.monotonic()
    local = {}
    for c, s in splits.items():
        model = train_alone(fed, fed.training, s.x_train, s.y_train)
        local[c] = auc(s.y_test, scores(model, s.x_test))
    out["local"] = {"auc": local, "seconds": round(time.monotonic() - started, 1)}
    log(f"  {'local only':<18} mean AUC {np.mean(list(local.values())):.3f}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedjourney.dpsim",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append", choices=list(VARIANTS),
                        help="a variant to run (repeatable; default all)")
    parser.add_argument("--seed", type=int, default=0, help="the simulation's torch seed")
    parser.add_argument("--backend", default="polars")
    args = parser.parse_args(argv)
    try:
        fed = load_federation(args.config)
        result = simulate(fed, args.data, args.variant or DEFAULT_VARIANTS, args.seed,
                          args.backend, lambda line: print(line, flush=True))
    except FedjourneyError as exc:
        print(f"dpsim: {exc}", file=sys.stderr)
        return 2
    write_atomically(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
