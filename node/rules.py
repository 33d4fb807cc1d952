"""This hospital's data-use policy (fedjourney.policy), judged by its node on each training
or validation request as Fed-BioMed parses it, before any record is read; and the privacy
ledger (node/ledger.py) charged for each round of DP-SGD before it trains.

component.RunningNode calls judge(); a request it refuses gets Fed-BioMed's error reply,
whose one line the researcher shows, and the node's story says the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedjourney.contract import DatasetRecord, check_run_id
from fedjourney.errors import FedjourneyError
from fedjourney.node.ledger import Charge, Ledger
from fedjourney.policy import Policy, Request, dp_steps, refusals, training_patients
from fedjourney.story import Story


class Rules:
    """The centre's policy, its own held-out share and its ledger, with its current
    dataset record (for the number of training patients DP-SGD samples from)."""

    def __init__(self, label: str, policy: Policy, held_out_percent: int, ledger: Ledger,
                 record: Callable[[], DatasetRecord]) -> None:
        self.label = label  # the node's, as results name it: 'node-1 CHU de Lyon'
        self.policy = policy
        self.held_out_percent = held_out_percent
        self.ledger = ledger
        self._record = record

    def judge(self, training_args: dict[str, Any], model_args: dict[str, Any],
              secagg_parties: int | None, training: bool, run_id: str, round_: int,
              story: Story) -> list[str]:
        """Why this request is refused ([] when accepted). A training round under DP-SGD
        is charged to the ledger here, before it reads anything: a round that fails later
        has still been charged (the ledger errs on the side of the patients)."""
        try:  # it names the run's folders, and a newline in it would forge a story line
            check_run_id(model_args.get("run_id"))  # type: ignore[arg-type]
        except ValueError as exc:
            return [str(exc)]
        request = Request.of(training_args, model_args, secagg_parties)
        reasons = refusals(self.policy, self.held_out_percent, request)
        if reasons or not training:
            return reasons
        n_train = training_patients(self._record().patients, self.held_out_percent)
        if 0 < n_train < self.policy.min_batch_size:  # 0: broken data, refused on reading
            return [f"training on this centre's {n_train} training patients, fewer than its "
                    f"minimum batch of {self.policy.min_batch_size} (policy.min_batch_size)"]
        if request.dp is None:
            return []
        rate, steps = dp_steps(n_train, int(request.batch_size or 1), int(request.epochs or 1),
                               request.num_updates)
        charge = Charge(run_id=run_id, round=round_, sigma=float(request.dp["sigma"]),
                        sample_rate=rate, steps=steps)
        try:
            if self.policy.epsilon_budget is not None:
                over = self.ledger.refusal(self.policy.epsilon_budget, self.policy.delta,
                                           charge)
                if over:
                    return [f"{over.removeprefix('REFUSED: ')} (policy.epsilon_budget)"]
            self.ledger.charge(charge)
            spent = self.ledger.epsilon(self.policy.delta)
        except FedjourneyError as exc:  # an unreadable ledger: no DP round is accounted
            return [f"the privacy ledger cannot be read ({exc})"]
        budget = self.policy.epsilon_budget
        story.info(f"privacy ledger: round charged (sigma {charge.sigma:g}, {steps} steps at "
                   f"rate {rate:.3f}); epsilon spent on this centre's data {spent:.2f} "
                   f"(delta {self.policy.delta:g})"
                   + (f" of its budget {budget:g}" if budget is not None else ""))
        return []


def published(ledger: Ledger) -> list[list[float]]:
    """The ledger as the node's dataset record publishes it (Ledger.spent); [] when it
    cannot be read (the node then refuses DP rounds itself: judge)."""
    try:
        return ledger.spent()
    except FedjourneyError:
        return []


def parties(secagg_arguments: Any, researcher_id: str) -> int | None:
    """How many nodes a request's secure aggregation masks among (None in the clear)."""
    if not secagg_arguments:
        return None
    listed = secagg_arguments.get("parties") if isinstance(secagg_arguments, dict) else None
    return len({str(p) for p in listed or []} - {str(researcher_id)})


class CoarseMonitor:
    """Fed-BioMed's history monitor as this centre lets it report (policy.training_loss):
    each epoch's mean training loss (over the whole round under num_updates), or none;
    validation only as one value over the whole held-out split. Fed-BioMed itself sends the
    loss of the first and last batch of every epoch, in the clear, under DP and secure
    aggregation alike. The node sets log_interval 1 so that every batch's loss reaches
    this monitor, which sends only their mean."""

    def __init__(self, monitor: Any, training_loss: str) -> None:
        self._monitor = monitor
        self._mode = training_loss
        self._sum = 0.0
        self._samples = 0

    def __getattr__(self, name: str) -> Any:  # everything else is the monitor's
        return getattr(self._monitor, name)

    def add_scalar(self, metric: dict[str, Any], iteration: int, epoch: int | None,
                   total_samples: int, batch_samples: int, num_batches: int,
                   num_samples_trained: int | None = None, train: bool = False,
                   **kwargs: Any) -> None:
        if not train:
            if num_batches > 1:  # a value per validation batch: refused upstream anyway
                return
            self._monitor.add_scalar(metric=metric, iteration=iteration, epoch=epoch,
                                     total_samples=total_samples, batch_samples=batch_samples,
                                     num_batches=num_batches,
                                     num_samples_trained=num_samples_trained, **kwargs)
            return
        if self._mode == "none" or not metric:
            return
        loss = float(next(iter(metric.values())))
        self._sum += loss * batch_samples
        self._samples += batch_samples
        if iteration < num_batches:
            return
        mean, self._sum, samples, self._samples = self._sum / self._samples, 0.0, \
            self._samples, 0
        self._monitor.add_scalar(metric={next(iter(metric)): mean}, iteration=iteration,
                                 epoch=epoch, total_samples=total_samples,
                                 batch_samples=samples, num_batches=num_batches,
                                 num_samples_trained=num_samples_trained, train=True,
                                 **kwargs)
