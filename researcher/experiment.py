"""The tutorial's Stage B on Fed-BioMed's researcher API (checked against 6.4.1): FedAverage
of the MLP, validation of the global model on each node's held-out split."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from fedjourney.config import Federation


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
    (min_nodes). The one private touch of the researcher (the module attribute the
    Experiment instantiates, and Job._policies): tests/integration/fedbiomed_contract.py
    checks both.
    """
    from fedbiomed.researcher.federated_workflows import _experiment
    from fedbiomed.researcher.federated_workflows.jobs import TrainingJob
    from fedbiomed.researcher.requests import StopOnTimeout

    class BoundedTrainingJob(TrainingJob):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._policies = [StopOnTimeout(seconds)]

    _experiment.TrainingJob = BoundedTrainingJob


def build(fed: Federation, run_id: str, metrics: Metrics, strategy: Any) -> Any:
    """The Experiment, saving a breakpoint each round, with `metrics` receiving every scalar
    beside Fed-BioMed's monitor. Breakpoints of an earlier attempt at run_id are removed."""
    import shutil

    from fedbiomed.researcher.aggregators.fedavg import FedAverage
    from fedbiomed.researcher.config import config
    from fedbiomed.researcher.federated_workflows import Experiment

    from fedjourney.plan import FedJourneyPlan

    shutil.rmtree(Path(config.vars["EXPERIMENTS_DIR"]) / run_id, ignore_errors=True)
    t, spec = fed.training, fed.feature_spec()
    exp = Experiment(
        tags=[t.tag],
        training_plan_class=FedJourneyPlan,
        model_args={"n_features": len(spec.vocabulary), "hidden": t.hidden,
                    "spec": spec.to_dict(), "run_id": run_id,
                    "held_out_percent": t.held_out_percent},
        training_args={"epochs": t.epochs,
                       "loader_args": {"batch_size": t.batch_size, "shuffle": False},
                       "optimizer_args": {"lr": t.learning_rate},
                       "test_ratio": t.held_out_percent / 100,
                       "test_on_global_updates": True, "test_on_local_updates": False,
                       "test_batch_size": 0, "log_interval": 1000, "random_seed": 0},
        round_limit=t.rounds,
        aggregator=FedAverage(),
        node_selection_strategy=strategy,
        tensorboard=False,
        save_breakpoints=True,
        experimentation_folder=run_id,
    )
    _tee(exp, metrics)
    return exp


def resume(breakpoint: str, metrics: Metrics) -> Any:
    """The Experiment as Fed-BioMed's breakpoint left it (model, aggregator, strategy,
    replies, round), with `metrics` receiving every scalar from now on."""
    from fedbiomed.researcher.federated_workflows import Experiment

    exp = Experiment.load_breakpoint(breakpoint)
    _tee(exp, metrics)
    return exp


def breakpoint_folder(exp: Any) -> str:
    """The breakpoint Fed-BioMed saved at the end of the experiment's last round."""
    from fedbiomed.researcher.filetools import choose_bkpt_file

    folder, _ = choose_bkpt_file(exp.config.vars["EXPERIMENTS_DIR"],
                                 exp.experimentation_folder(), exp.round_current() - 1)
    return str(folder)


def _tee(exp: Any, metrics: Metrics) -> None:
    monitor = exp.monitor().on_message_handler

    def both(msg: dict[str, Any]) -> None:
        monitor(msg)
        metrics.on_scalar(msg)

    exp.requests.add_monitor_callback(exp.id, both)
