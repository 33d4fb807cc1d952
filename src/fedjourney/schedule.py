"""A centre's timetable of faults (its config's `schedule:`), carried out by the stack itself.

Events, each from round a to round b (inclusive; rounds count from 1), or by time: from
second a to second b of the run (`seconds: [a, b]`, b excluded; a restart at second a):

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

By time, the clock is the run's: second 0 is when the researcher sets up the experiment,
just before round 1 (a resumed run's attempt starts it again). The researcher sends that
instant (UTC, `run_started` in the model arguments) with every request, so the node times
its own events from the same instant: one host's clock in compose, synchronised clocks (NTP)
across Swarm machines or a hospital kit. The researcher cuts and restores links and sets
losses at their seconds, whatever round is running; the node slows a training whose request
arrives within a slow event's seconds, and exits at a restart's second, mid-round or not.
An event by time explains a centre's missed round when it overlaps the round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# What a schedule can hold, as the config names it, with the setting each event needs.
EVENTS = {"down": None, "flaky": "loss_pct", "slow": "factor", "restart": None}
RELAYED = ("down", "flaky")  # carried out by the centre's relay, on the researcher's word
MAX_FACTOR = 100.0
MAX_SECONDS = 7 * 24 * 3600  # the last second a schedule can name: a week-long run
CONTROL_PORT = 50052  # a relay's control port, on its network with the researcher only


@dataclass(frozen=True)
class Event:
    """One event of a centre's schedule, from round `first` to round `last` (inclusive), or
    with `by_time` from second `first` to second `last` of the run (`last` excluded; a
    restart's `first` == `last`, its second); `value` is a flaky event's loss_pct or a slow
    event's factor (None otherwise)."""

    kind: str
    first: int
    last: int
    value: float | None = None
    by_time: bool = False

    def covers(self, round_: int) -> bool:
        """Whether this event (by round) covers round `round_`."""
        return not self.by_time and self.first <= round_ <= self.last

    def active_at(self, second: float) -> bool:
        """Whether this event (by time, not a restart) holds at `second` of the run."""
        return self.by_time and self.first <= second < self.last

    def overlaps(self, begun: float, ended: float) -> bool:
        """Whether this event (by time) touches the span [begun, ended] of the run's
        seconds: a window meeting it, or a restart's second within it."""
        if not self.by_time:
            return False
        if self.first == self.last:
            return begun <= self.first <= ended
        return self.first <= ended and begun < self.last

    def describe(self) -> str:
        """E.g. "down in rounds 3-4", "flaky (loss 20%) in round 2", "slow (x3) in rounds
        2-5", "restart in round 4", "down from 30 s to 90 s", "restart at 40 s"."""
        if self.by_time:
            when = (f"at {self.first} s" if self.first == self.last
                    else f"from {self.first} s to {self.last} s")
        else:
            when = ("in " + (f"round {self.first}" if self.first == self.last
                             else f"rounds {self.first}-{self.last}"))
        how = ""
        if self.kind == "flaky":
            how = f" (loss {self.value:g}%)"
        elif self.kind == "slow":
            how = f" (x{self.value:g})"
        return f"{self.kind}{how} {when}"

    def as_config(self) -> dict[str, object]:
        """The event as a config's schedule lists it."""
        out: dict[str, object] = {"event": self.kind}
        if not self.by_time:
            out["rounds"] = [self.first, self.last]
        else:
            out["seconds"] = self.first if self.first == self.last else [self.first, self.last]
        setting = EVENTS[self.kind]
        if setting is not None:
            out[setting] = self.value
        return out


def in_round(schedule: Iterable[Event], kind: str, round_: int) -> Event | None:
    """The centre's event (by round) of that kind covering `round_`, or None (events of one
    kind never overlap: the config refuses it)."""
    return next((e for e in schedule if e.kind == kind and e.covers(round_)), None)


def at_time(schedule: Iterable[Event], kind: str, second: float) -> Event | None:
    """The centre's event (by time) of that kind holding at `second` of the run, or None;
    a restart, which lasts no time, never holds."""
    return next((e for e in schedule if e.kind == kind and e.active_at(second)), None)


def may_miss(schedule: Iterable[Event], round_: int) -> bool:
    """Whether the schedule's events by round may take the centre out of `round_`: down, or
    restarting."""
    return any(e.kind in ("down", "restart") and e.covers(round_) for e in schedule)


def relayed(schedule: Iterable[Event]) -> bool:
    """Whether the schedule has events its relay carries out (so the relay takes commands)."""
    return any(e.kind in RELAYED for e in schedule)
