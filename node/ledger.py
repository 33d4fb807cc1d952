"""The privacy ledger: the epsilon spent on a centre's data by local DP-SGD, over every run.

It lives in the node's state volume and outlives runs, resumes and failed rounds. Before a DP
round touches the data, the node asks `refusal` whether charging the round keeps the total
within the centre's epsilon budget, then records the charge before training, so that a round
that fails half-way still counts. Epsilon is composed with opacus' RDP accountant over
(sigma, sample_rate, steps) per round, as researcher/privacy.py computes it for a run.

A ledger that cannot be read fails closed: treating it as empty would reset the budget.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from fedjourney.errors import FedjourneyError
from fedjourney.policy import rdp_epsilon
from fedjourney.records import write_atomically

VERSION = 1


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Charge:
    """One DP-SGD round on this centre's data: noise multiplier sigma, sample rate
    (1 / batches per epoch) and optimizer steps (epochs * batches, or num_updates)."""

    run_id: str
    round: int
    sigma: float
    sample_rate: float
    steps: int
    at: str = dataclasses.field(default_factory=_now)  # UTC, ISO 8601

    def __post_init__(self) -> None:
        # A charge that lowers the total (negative steps) or breaks the accountant must not
        # get in, from a caller or from a tampered file.
        numbers = (self.sigma, self.sample_rate)
        if (not isinstance(self.run_id, str) or not isinstance(self.at, str)
                or any(isinstance(v, bool) for v in (self.round, self.steps, *numbers))
                or not isinstance(self.round, int) or not isinstance(self.steps, int)
                or not all(isinstance(v, int | float) for v in numbers)
                or not self.sigma >= 0 or not 0 < self.sample_rate <= 1 or self.steps < 1):
            raise ValueError(f"not a DP-SGD round: {self!r}")


class Ledger:
    """The charges recorded in one JSON file ({"version": 1, "charges": [...]})."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def charges(self) -> list[Charge]:
        """Every charge recorded, oldest first; none without a file."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._unreadable(exc.strerror or str(exc)) from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise self._unreadable(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("charges"), list):
            raise self._unreadable("no list of charges")
        if data.get("version") != VERSION:
            raise self._unreadable(f"format {data.get('version')!r}, this fedjourney reads "
                                   f"{VERSION}")
        try:
            return [Charge(**entry) for entry in data["charges"]]
        except (TypeError, ValueError) as exc:  # not a dict, missing or unknown keys, bad values
            raise self._unreadable(f"a charge is invalid: {exc}") from None

    def epsilon(self, delta: float, extra: Charge | None = None) -> float:
        """Epsilon at delta over every charge, and `extra` if given (0.0 with none)."""
        return _epsilon([*self.charges(), *([] if extra is None else [extra])], delta)

    def charge(self, c: Charge) -> None:
        """Record c; on disk when this returns."""
        # charges() raises on a corrupt file: it is never overwritten by a shorter history.
        entries = [dataclasses.asdict(x) for x in [*self.charges(), c]]
        write_atomically(self.path, json.dumps({"version": VERSION, "charges": entries},
                                               indent=2, sort_keys=True) + "\n")
        # write_atomically renames without fsync: the charge must survive a crash of the node
        # or the host between here and training, or the round would go unaccounted.
        for target in (self.path, self.path.parent):
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def refusal(self, budget: float, delta: float, c: Charge) -> str | None:
        """None if charging c keeps the epsilon spent within budget, else why not (one line,
        numbers about privacy only)."""
        charges = self.charges()
        total = _epsilon([*charges, c], delta)
        if total <= budget:
            return None
        runs = len({x.run_id for x in charges})
        # Three digits read best, but must not show a total that looks within the budget.
        shown = next(s for s in (f"{total:.3g}", f"{total:.6g}", repr(total))
                     if float(s) > budget)
        return (f"REFUSED: this round would bring the epsilon spent on this centre's data to "
                f"{shown} (delta {delta:g}), over its budget of {budget:g}; spent so far "
                f"{_epsilon(charges, delta):.3g} in {_count(len(charges), 'round')} of "
                f"{_count(runs, 'run')}")

    def spent(self) -> list[list[float]]:
        """The charges as the node publishes them with its dataset record: [sigma, sample
        rate, steps] per kind of round, steps summed (RDP composes them exactly so), sorted.
        Privacy parameters only: no run id, time or patient."""
        steps: dict[tuple[float, float], int] = {}
        for c in self.charges():
            steps[(c.sigma, c.sample_rate)] = steps.get((c.sigma, c.sample_rate), 0) + c.steps
        return [[sigma, rate, float(n)] for (sigma, rate), n in sorted(steps.items())]

    def _unreadable(self, why: str) -> FedjourneyError:
        return FedjourneyError(
            f"privacy ledger {self.path} is unreadable ({why}): restore it from a backup; "
            "this node refuses DP training until then (deleting it would forget the epsilon "
            "already spent on this centre's data)")


def _epsilon(charges: list[Charge], delta: float) -> float:
    return rdp_epsilon(((c.sigma, c.sample_rate, c.steps) for c in charges), delta)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
