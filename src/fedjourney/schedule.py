"""A centre's timetable of faults (its config's `schedule:`), carried out by the stack itself.

Events, each from round a to round b (inclusive; rounds count from 1):

- `down`: the centre's link (link.py's relay, which the deployment puts on its path) is cut
  before round a begins and restored before round b + 1; its node misses those rounds as it
  would an outage (Fed-BioMed stops waiting for it once it sees it disconnected, or the
  round deadline leaves it out; `min_nodes` lets the round go on) and rejoins.
- `flaky` (`loss_pct`): the relay loses that percent of the link's data in both directions
  in those rounds, on top of the link's own loss (link.py's model of what loss costs a TCP
  stream: each lost chunk waits one retransmission timeout more). The node is slower to
  answer, and misses a round only if the round deadline leaves it out.
- `slow` (`factor`): the node's training in those rounds takes `factor` times as long: it
  trains, then holds its reply for (factor - 1) times the training's own wall time, as a
  node with 1/factor of its CPU would (a shared or throttled host).
- `restart` (one round): the node's process exits when round a's request reaches it, as in a
  crash, and the container's restart policy starts it again; it re-checks its data and
  reconnects, and takes part again from the round after (or in round a, if it is back
  before Fed-BioMed gives up on it).

The researcher drives the relay (`down`, `flaky`: it knows the rounds; nothing on the node's
side can touch its own link); the node carries out `slow` and `restart` from its own view of
the config when a training request names the round. The researcher records which rounds
each centre took part in and why it missed the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# What a schedule can hold, as the config names it, with the setting each event needs.
EVENTS = {"down": None, "flaky": "loss_pct", "slow": "factor", "restart": None}
RELAYED = ("down", "flaky")  # carried out by the centre's relay, on the researcher's word
MAX_FACTOR = 100.0
CONTROL_PORT = 50052  # a relay's control port, on its network with the researcher only


@dataclass(frozen=True)
class Event:
    """One event of a centre's schedule, from round `first` to round `last` (inclusive);
    `value` is a flaky event's loss_pct or a slow event's factor (None otherwise)."""

    kind: str
    first: int
    last: int
    value: float | None = None

    def covers(self, round_: int) -> bool:
        return self.first <= round_ <= self.last

    def describe(self) -> str:
        """E.g. "down in rounds 3-4", "flaky (loss 20%) in round 2", "slow (x3) in rounds
        2-5", "restart in round 4"."""
        rounds = (f"round {self.first}" if self.first == self.last
                  else f"rounds {self.first}-{self.last}")
        how = ""
        if self.kind == "flaky":
            how = f" (loss {self.value:g}%)"
        elif self.kind == "slow":
            how = f" (x{self.value:g})"
        return f"{self.kind}{how} in {rounds}"

    def as_config(self) -> dict[str, object]:
        """The event as a config's schedule lists it."""
        out: dict[str, object] = {"event": self.kind, "rounds": [self.first, self.last]}
        setting = EVENTS[self.kind]
        if setting is not None:
            out[setting] = self.value
        return out


def in_round(schedule: Iterable[Event], kind: str, round_: int) -> Event | None:
    """The centre's event of that kind covering `round_`, or None (events of one kind never
    overlap: the config refuses it)."""
    return next((e for e in schedule if e.kind == kind and e.covers(round_)), None)


def may_miss(schedule: Iterable[Event], round_: int) -> bool:
    """Whether the schedule may take the centre out of `round_`: down, or restarting."""
    return any(e.kind in ("down", "restart") and e.covers(round_) for e in schedule)


def relayed(schedule: Iterable[Event]) -> bool:
    """Whether the schedule has events its relay carries out (so the relay takes commands)."""
    return any(e.kind in RELAYED for e in schedule)
