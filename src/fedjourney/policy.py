"""A hospital's data-use policy: what its node accepts beside the approved plan's source.

Plan approval covers the code the researcher sends; everything sent with it (batch size,
held-out share, validation batches, epochs, optimizer, DP, secure-aggregation parties) is
the researcher's choice, and some choices turn a model update or a validation metric into a
patient's record or label (batches of one patient, validation batches of one). Each centre
states its own rules in its config (`policy:`); its node refuses a request outside them
before any data is read (node/component.py), and the researcher checks them first, from
what each node publishes with its dataset record, so that an honest run fails before
round 1 naming the centre and the rule. One function (refusals) decides, for both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from fedjourney.errors import FedjourneyError
from fedjourney.model import held_out_count

DP_STANCES = ("required", "allowed", "refused")
OPTIMIZERS = ("adam", "sgd")  # what the shipped plans read from model_args["optimizer"]
TRAINING_LOSS = ("epoch", "none")


@dataclass(frozen=True)
class Policy:
    """One centre's rules (docs/configuration.md#a-centres-data-use-policy)."""

    # Every training batch averages at least this many patients' gradients: a batch of one
    # gives its patient's row back from the first layer's update.
    min_batch_size: int = 8
    max_epochs: int = 100  # local epochs per round
    max_updates: int = 10000  # local steps per round (num_updates)
    optimizers: tuple[str, ...] = OPTIMIZERS
    # Local DP-SGD: required (a run without it is refused), allowed, or refused.
    dp: str = "allowed"
    # The most epsilon (at `delta`) DP-SGD may spend on this centre's data over every run;
    # None: no budget (dp then cannot be required).
    epsilon_budget: float | None = None
    delta: float = 1e-5
    # Under secure aggregation, the fewest nodes this centre masks its update with: with
    # one other party, the sum minus that party's update is this centre's. None: the
    # federation's size (the host fills it in the node's view).
    secagg_min_parties: int | None = None
    # Training losses reach the researcher as each epoch's mean (or not at all), never per
    # batch: Fed-BioMed sends a batch's loss in the clear, under DP and secagg alike.
    training_loss: str = "epoch"

    def describe(self, held_out_percent: int) -> str:
        """The policy in one line, as the node's story tells it at start-up."""
        budget = ("no budget" if self.epsilon_budget is None
                  else f"budget epsilon {self.epsilon_budget:g} at delta {self.delta:g}")
        parties = ("" if self.secagg_min_parties is None
                   else f", secure aggregation among >= {self.secagg_min_parties} nodes")
        return (f"batches >= {self.min_batch_size} patients, <= {self.max_epochs} epochs or "
                f"{self.max_updates} updates a round, optimizers {', '.join(self.optimizers)}, "
                f"{held_out_percent}% held out and validated as a whole, DP {self.dp} "
                f"({budget}){parties}, training losses "
                f"{'per epoch' if self.training_loss == 'epoch' else 'not sent'}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["optimizers"] = list(self.optimizers)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Policy:
        """The policy a node published (its dataset record); unknown keys ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if "optimizers" in values:
            values["optimizers"] = tuple(values["optimizers"])
        return cls(**values)


def parse_policy(raw: Any, label: str) -> Policy:
    """A centre's `policy:` mapping (absent: the defaults); FedjourneyError with one line
    naming the setting and the fix. Against the federation's size: config._check_policies."""
    if raw is None:
        return Policy()
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{label} must be a mapping of rules, e.g. "
                              "{min_batch_size: 8, dp: allowed}")
    known = {f.name for f in fields(Policy)}
    unknown = sorted(set(raw) - known, key=str)
    if unknown:
        raise FedjourneyError(f"{label}: unknown key {unknown[0]!r}; allowed keys: "
                              f"{', '.join(sorted(known))}")
    values = {**Policy().to_dict(), **raw}
    for key, lo, hi in (("min_batch_size", 1, 100000), ("max_epochs", 1, 1000),
                        ("max_updates", 1, 1000000)):
        _whole(values[key], f"{label}.{key}", lo, hi)
    if values["secagg_min_parties"] is not None:
        _whole(values["secagg_min_parties"], f"{label}.secagg_min_parties", 2, 10000)
    optimizers = values["optimizers"]
    if not isinstance(optimizers, list | tuple) or not optimizers \
            or any(o not in OPTIMIZERS for o in optimizers):
        raise FedjourneyError(f"{label}.optimizers must be a non-empty list of "
                              f"{', '.join(OPTIMIZERS)}, got {optimizers!r}")
    for key, allowed in (("dp", DP_STANCES), ("training_loss", TRAINING_LOSS)):
        if values[key] not in allowed:
            raise FedjourneyError(f"{label}.{key} must be one of {', '.join(allowed)}, got "
                                  f"{values[key]!r}")
    budget = values["epsilon_budget"]
    if budget is not None and (not _is_number(budget) or not 0 < budget <= 1000):
        raise FedjourneyError(f"{label}.epsilon_budget must be a number in (0, 1000], got "
                              f"{budget!r}")
    if not _is_number(values["delta"]) or not 0 < values["delta"] < 1:
        raise FedjourneyError(f"{label}.delta must be a number in (0, 1), got "
                              f"{values['delta']!r}")
    if values["dp"] == "required" and budget is None:
        raise FedjourneyError(f"{label}: dp required needs an epsilon_budget (e.g. 10): "
                              "without one, any amount of noise would do")
    if values["dp"] == "refused" and budget is not None:
        raise FedjourneyError(f"{label}: dp refused spends no epsilon; remove its "
                              "epsilon_budget or allow dp")
    return Policy(**{**values, "optimizers": tuple(dict.fromkeys(optimizers)),
                     "epsilon_budget": None if budget is None else float(budget),
                     "delta": float(values["delta"])})


@dataclass(frozen=True)
class Request:
    """What a training request asks of a node beside its plan source (Fed-BioMed's training
    and model arguments, and the secure-aggregation parties)."""

    batch_size: int | None
    epochs: int | None
    num_updates: int | None
    test_ratio: float
    test_batch_size: int | None
    shuffle_testing: bool
    held_out_percent: Any
    optimizer: Any
    dp: dict[str, Any] | None
    secagg_parties: int | None  # nodes masking together; None: in the clear

    @classmethod
    def of(cls, training_args: dict[str, Any], model_args: dict[str, Any],
           secagg_parties: int | None = None) -> Request:
        """The request these arguments make (as the researcher sends them)."""
        loader = training_args.get("loader_args") or {}
        return cls(batch_size=loader.get("batch_size"), epochs=training_args.get("epochs"),
                   num_updates=training_args.get("num_updates"),
                   test_ratio=float(training_args.get("test_ratio") or 0.0),
                   test_batch_size=training_args.get("test_batch_size"),
                   shuffle_testing=bool(training_args.get("shuffle_testing_dataset")),
                   held_out_percent=model_args.get("held_out_percent"),
                   optimizer=model_args.get("optimizer", "adam"),
                   dp=training_args.get("dp_args") or None, secagg_parties=secagg_parties)


def refusals(policy: Policy, held_out_percent: int, request: Request) -> list[str]:
    """Each rule of the centre's the request breaks, one line each naming the rule and what
    it asked; [] when the centre accepts it. `held_out_percent` is the centre's own."""
    out = []
    batch = request.batch_size
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < policy.min_batch_size:
        out.append(f"training batches of {batch} patients, under this centre's minimum of "
                   f"{policy.min_batch_size} (policy.min_batch_size)")
    if request.num_updates:
        if request.num_updates > policy.max_updates:
            out.append(f"{request.num_updates} local updates a round, over this centre's "
                       f"{policy.max_updates} (policy.max_updates)")
    elif isinstance(request.epochs, int) and request.epochs > policy.max_epochs:
        out.append(f"{request.epochs} local epochs a round, over this centre's "
                   f"{policy.max_epochs} (policy.max_epochs)")
    if request.held_out_percent != held_out_percent \
            or not math.isclose(request.test_ratio, held_out_percent / 100, abs_tol=1e-9):
        out.append(f"a held-out split of {request.test_ratio:.0%} (held_out_percent "
                   f"{request.held_out_percent}); this centre holds out its own "
                   f"{held_out_percent}% (training.held_out_percent)")
    if request.test_batch_size not in (None, 0) or request.shuffle_testing:
        out.append("validation in batches or on a reshuffled split; this centre validates "
                   "on its whole held-out split at once (test_batch_size 0, no "
                   "shuffle_testing_dataset)")
    if request.optimizer not in policy.optimizers:
        out.append(f"optimizer {request.optimizer!r}, not one of this centre's "
                   f"{', '.join(policy.optimizers)} (policy.optimizers)")
    dp = request.dp
    if dp is not None and dp.get("type") != "local":
        out.append(f"DP of type {dp.get('type')!r}; this centre accounts local DP-SGD only")
    elif policy.dp == "required" and dp is None:
        out.append("training without DP; this centre requires local DP-SGD (policy.dp)")
    elif policy.dp == "refused" and dp is not None:
        out.append("training with DP-SGD; this centre refuses it (policy.dp)")
    if request.secagg_parties is not None and policy.secagg_min_parties is not None \
            and request.secagg_parties < policy.secagg_min_parties:
        out.append(f"secure aggregation among {request.secagg_parties} nodes; this centre "
                   f"masks with at least {policy.secagg_min_parties} "
                   "(policy.secagg_min_parties)")
    return out


def experiment_refusals(fed: Any, t: Any, stated: Iterable[tuple[str, Policy, int]]
                        ) -> list[str]:
    """What each centre (its name or label, its policy, its held-out percent) refuses of
    experiment `t` of federation `fed` (config.Federation, Training): the requests the
    researcher sends it (researcher/experiment.py), judged as its node will."""
    from fedjourney.researcher.experiment import model_args, training_args

    parties = len(fed.centres) if t.secagg != "off" else None
    request = Request.of(training_args(t), model_args(fed, t, "policy-check"), parties)
    return [f"{who} refuses {why}" for who, policy, held_out in stated
            for why in refusals(policy, held_out, request)]


def training_patients(patients: int, held_out_percent: int) -> int:
    """How many of a centre's patients train (model.split_order holds out the rest)."""
    return patients - held_out_count(patients, held_out_percent)


def dp_steps(n_train: int, batch_size: int, epochs: int, num_updates: int | None
             ) -> tuple[float, int]:
    """(sample rate, steps) of one round of DP-SGD as Fed-BioMed runs it: rate 1 / batches
    per epoch, steps epochs x batches or num_updates."""
    batches = max(1, math.ceil(n_train / batch_size))
    return 1 / batches, num_updates or epochs * batches


def rdp_epsilon(history: Iterable[tuple[float, float, int]], delta: float) -> float:
    """Epsilon at delta after DP-SGD rounds of (sigma, sample rate, steps): opacus' RDP
    accountant, as the node's ledger and the researcher's report both count (0 for none)."""
    rounds = list(history)
    if not rounds:
        return 0.0
    from opacus.accountants import RDPAccountant  # the images; the host's train extra

    accountant = RDPAccountant()
    accountant.history.extend(rounds)
    return float(accountant.get_epsilon(delta=delta))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _whole(value: Any, label: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise FedjourneyError(f"{label} must be a whole number from {lo} to {hi}, got "
                              f"{value!r}")
    return value
