"""The tutorial's Stage B on Fed-BioMed's researcher API (checked against 6.4.1): FedAverage
of the experiment's training plan (planfile.py), validation of the global model on each
node's held-out split."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fedjourney.config import Federation, Training


class Metrics:
    """Losses and validation metrics as nodes report them (Fed-BioMed's scalar messages),
    by node and round. Round r's validation is of the global model the node received at the
    start of round r; a second validation in the last round is the final model's."""

    def __init__(self) -> None:
        self.round = 0
        self.train_loss: dict[str, dict[int, list[float]]] = defaultdict(
            lambda: defaultdict(list))
        self.validation: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)

    def on_scalar(self, msg: dict[str, Any]) -> None:
        node, metric = str(msg["node_id"]), dict(msg["metric"])
        if msg.get("train"):
            for value in metric.values():
                self.train_loss[node][self.round].append(float(value))
        elif msg.get("test_on_global_updates"):
            r = self.round + 1 if self.round in self.validation[node] else self.round
            self.validation[node][r] = {k: float(v) for k, v in metric.items()}


def bound_rounds(seconds: int) -> None:
    """Leave out of a round the nodes that have not replied within `seconds`.

    Fed-BioMed 6.4.1 waits for every node's training reply without limit: TrainingJob's
    request policies are an empty list, with no setter, and a node that restarted mid-run
    can have its task taken by its old, dead stream. So each TrainingJob the Experiment
    creates gets a StopOnTimeout: at the deadline the round stops waiting and keeps the
    replies it has (DiscardOnTimeout would not: 6.4.1's base policy still waits for
    every request); the node-selection strategy then accepts the round or not
    (min_nodes). The final validation job also gets the last round's secure-aggregation
    arguments. The one private touch of the researcher (the module attribute the
    Experiment instantiates, and Job._policies): tests/integration/fedbiomed_contract.py
    checks both.
    """
    from fedbiomed.researcher.federated_workflows import _experiment
    from fedbiomed.researcher.federated_workflows.jobs import TrainingJob
    from fedbiomed.researcher.requests import StopOnTimeout

    class BoundedTrainingJob(TrainingJob):  # type: ignore[misc]
        secagg_arguments: Any = None  # the last training round's

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # 6.4.1 builds the final validation job without the round's secure-aggregation
            # arguments: a node that requires secagg would refuse it, silently.
            if kwargs.get("do_training", True):
                BoundedTrainingJob.secagg_arguments = kwargs.get("secagg_arguments")
            elif kwargs.get("secagg_arguments") is None:
                kwargs["secagg_arguments"] = BoundedTrainingJob.secagg_arguments
            super().__init__(*args, **kwargs)
            self._policies = [StopOnTimeout(seconds)]

    _experiment.TrainingJob = BoundedTrainingJob


def build(fed: Federation, t: Training, run_id: str, metrics: Metrics, strategy: Any) -> Any:
    """The Experiment `t` describes, saving a breakpoint each round, with `metrics` receiving
    every scalar beside Fed-BioMed's monitor. Breakpoints of an earlier attempt at run_id
    are removed."""
    import shutil

    from fedbiomed.researcher.config import config
    from fedbiomed.researcher.federated_workflows import Experiment

    from fedjourney.planfile import plan_class

    shutil.rmtree(Path(config.vars["EXPERIMENTS_DIR"]) / run_id, ignore_errors=True)
    started = time.time()  # second 0 of the schedules' events by time, for every role
    exp = Experiment(
        tags=[t.tag],
        training_plan_class=plan_class(t.plan),
        model_args=model_args(fed, t, run_id, started=started),
        training_args=training_args(t),
        round_limit=t.rounds,
        aggregator=_aggregator(t),
        node_selection_strategy=strategy,
        secagg=_secagg(t),
        tensorboard=False,
        save_breakpoints=True,
        experimentation_folder=run_id,
    )
    if t.model_args.get("output_bias") == "prior":
        start_at_prior(exp, fed, t, run_id, started)
    tee(exp, metrics)
    return exp


def start_at_prior(exp: Any, fed: Federation, t: Training, run_id: str,
                   started: float | None = None) -> float | None:
    """The experiment's initial model rebuilt with its output unit at the federation's
    positive rate (the config's `output_bias: prior`); that rate, or None when no centre
    states its positives (the plan's own initialisation then).

    The initial model is the researcher's, so this happens here, from the patients and
    positives each node's dataset record already publishes to the researcher (its profile,
    node/profile.py, small cells withheld): nothing new leaves a node. Under DP, that count
    is outside the epsilon, as the whole profile is."""
    from fedjourney.contract import DatasetRecord

    records = [DatasetRecord.from_description(entry["description"])
               for entry in exp.training_data().data().values()]
    prior = class_prior(r.profile for r in records)
    exp.set_model_args(model_args(fed, t, run_id, prior, started), keep_weights=False)
    return prior


def model_args(fed: Federation, t: Training, run_id: str, prior: float | None = None,
               started: float | None = None) -> dict[str, Any]:
    """What the plan's init_model and the nodes' dataset receive: the config's model_args,
    and fedjourney's own (config.RESERVED_MODEL_ARGS), with `run_started` (UTC seconds,
    the run's second 0 for the schedules' events by time) when `started` is given (a run's
    experiment; a resumed run keeps its first attempt's, from the breakpoint). The config's
    `output_bias: prior`
    becomes the logit of `prior`, the federation's positive rate (build() reads it from the
    nodes' records); without one (the baselines, which see no record) it is left out and
    the plan keeps its own initialisation."""
    spec = fed.feature_spec()
    given = dict(t.model_args)
    if given.get("output_bias") == "prior":
        if prior is None:
            del given["output_bias"]
        else:
            given["output_bias"] = math.log(prior / (1 - prior))
    return {**given,
            "n_features": len(spec.vocabulary), "n_bins": spec.n_bins, "input": t.plan.input,
            "hidden": t.hidden, "spec": spec.to_dict(), "run_id": run_id,
            "held_out_percent": t.held_out_percent, "seed": t.seed,
            "optimizer": t.optimizer,
            **({} if started is None else {"run_started": started})}


def class_prior(profiles: Iterable[Mapping[str, Any]]) -> float | None:
    """The share of positive patients over the centres whose profile (node/profile.py, in
    their dataset records) states it; None when none does."""
    stated = [(int(p["positives"]), int(p["patients"])) for p in profiles
              if p.get("positives") is not None and p.get("patients")]
    positives, patients = sum(k for k, _ in stated), sum(n for _, n in stated)
    return positives / patients if 0 < positives < patients else None


def training_args(t: Training) -> dict[str, Any]:
    """Fed-BioMed's training arguments for the experiment `t`."""
    args: dict[str, Any] = {
        "epochs": t.epochs, "loader_args": {"batch_size": t.batch_size, "shuffle": False},
        "optimizer_args": {"lr": t.learning_rate},
        "test_ratio": t.held_out_percent / 100,
        "test_on_global_updates": True, "test_on_local_updates": False,
        "test_batch_size": 0, "log_interval": 1000,
        # DP-SGD's noise must not be reproducible by whoever knows the seed.
        "random_seed": None if t.dp else t.seed}
    if t.num_updates:
        args["num_updates"] = t.num_updates
    if t.aggregator == "fedprox":
        args["fedprox_mu"] = t.fedprox_mu
    if t.dp:
        # "central" in 6.4.1 noises each node's final weights (and the researcher's own
        # copy of the model at every read): no accountant fits it, so only local DP-SGD.
        args["dp_args"] = {"type": "local", "sigma": t.dp.sigma, "clip": t.dp.clip}
    return args


def _aggregator(t: Training) -> Any:
    if t.aggregator == "scaffold":
        from fedbiomed.researcher.aggregators.scaffold import Scaffold

        return Scaffold(server_lr=1.0)
    from fedbiomed.researcher.aggregators.fedavg import FedAverage

    return FedAverage()  # FedProx is FedAverage of updates trained with a proximal term


def _secagg(t: Training) -> Any:
    if t.secagg == "off":
        return False
    from fedbiomed.common.constants import SecureAggregationSchemes
    from fedbiomed.researcher.secagg import SecureAggregation

    scheme = {"lom": SecureAggregationSchemes.LOM,
              "joye-libert": SecureAggregationSchemes.JOYE_LIBERT}[t.secagg]
    return SecureAggregation(scheme=scheme, clipping_range=t.secagg_clip)


def resume(breakpoint: str, metrics: Metrics) -> Any:
    """The Experiment as Fed-BioMed's breakpoint left it (model, aggregator, strategy,
    replies, round), with `metrics` receiving every scalar from now on."""
    from fedbiomed.researcher.federated_workflows import Experiment

    exp = Experiment.load_breakpoint(breakpoint)
    tee(exp, metrics)
    return exp


def breakpoint_folder(exp: Any) -> str:
    """The breakpoint Fed-BioMed saved at the end of the experiment's last round."""
    from fedbiomed.researcher.filetools import choose_bkpt_file

    folder, _ = choose_bkpt_file(exp.config.vars["EXPERIMENTS_DIR"],
                                 exp.experimentation_folder(), exp.round_current() - 1)
    return str(folder)


def tee(exp: Any, metrics: Metrics) -> None:
    """Every scalar the nodes report reaches `metrics` too, beside Fed-BioMed's monitor."""
    monitor = exp.monitor().on_message_handler

    def both(msg: dict[str, Any]) -> None:
        monitor(msg)
        metrics.on_scalar(msg)

    exp.requests.add_monitor_callback(exp.id, both)
