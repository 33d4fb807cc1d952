"""A centre's timetable of faults (its config's `schedule:`), carried out by the stack itself.

`down` from round a to round b: the centre's link (link.py's relay, which the deployment
puts on its path) is cut before round a begins and restored before round b + 1; its node
misses those rounds as it would an outage (Fed-BioMed stops waiting for it once it sees it
disconnected, or the round deadline leaves it out; `min_nodes` lets the round go on) and
rejoins. The researcher drives the relay (it knows
the rounds; nothing on the node's side does), and records which rounds each centre took
part in and why it missed the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EVENTS = ("down",)  # what a schedule can hold, as the config names it
CONTROL_PORT = 50052  # a relay's control port, on its network with the researcher only


@dataclass(frozen=True)
class Event:
    """One event of a centre's schedule, from round `first` to round `last` (inclusive)."""

    kind: str
    first: int
    last: int

    def covers(self, round_: int) -> bool:
        return self.first <= round_ <= self.last

    def describe(self) -> str:
        """E.g. "down in rounds 3-4" or "down in round 2"."""
        rounds = (f"round {self.first}" if self.first == self.last
                  else f"rounds {self.first}-{self.last}")
        return f"{self.kind} in {rounds}"


def down_in(schedule: Iterable[Event], round_: int) -> bool:
    """Whether a centre with this schedule is down in `round_`."""
    return any(e.kind == "down" and e.covers(round_) for e in schedule)
