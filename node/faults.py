"""The node's own share of its centre's schedule (schedule.py): `slow` and `restart`,
carried out as a training request names its round, or by time.

- slow (factor): the node trains as normal, then holds its reply for (factor - 1) times the
  training's wall time (a node with 1/factor of its CPU); the hold ends if the node stops.
- restart (one round): as the round's request arrives, the node records that it restarted
  for (run, round) in a marker file in its state volume, then exits as a crash would
  (Exit.RESTARTING, telling the researcher nothing); the container's restart policy starts it
  again. The request Fed-BioMed resends to the restarted node finds the marker and is trained
  as normal; another run restarts again. The engine restarts a container at most as often as
  the schedule has restart events (on-failure:N); a node kept for more runs counts the
  restarts it used in its container's life (a flag left as it exits tells a restart from a
  fresh start, which renews them) and skips one the engine would not carry out, saying so.

Only training requests count (not a validation-only request). Fed-BioMed's request names
the rounds completed before it (0 for the first); a schedule counts rounds from 1.

By time, second 0 is the researcher's `run_started` (UTC seconds, in every request's model
arguments; a resumed run keeps its first attempt's): one host's clock in compose, clocks
synchronised by NTP across machines. A slow event holds when the training request arrives
within its seconds. A restart fires from a timer the run's first training request arms (at
once if its second has passed), mid-training or not, with a marker for (run, its second)
as above. A request without `run_started` (another researcher, an older run) gets only the
events by round, and the node says so once.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from fedjourney import contract
from fedjourney.exits import Exit
from fedjourney.records import write_atomically
from fedjourney.schedule import Event, at_time, in_round
from fedjourney.story import Story

MARKERS = Path(contract.OWN_FILES) / "schedule"  # in the node's state volume: kept across restarts
NO_RUN = "no-run"  # a request without a run id (not fedjourney's researcher)
USED = "restarts-used"  # how many engine restarts this container has used
EXITING = "exiting-to-restart"  # left as the node exits for a restart; gone once it is back
OWN = ("slow", "restart")  # the events the node carries out itself


def scheduled_round(requested: object) -> int | None:
    """The schedule's round (from 1) of a request naming Fed-BioMed's round (from 0); None
    for a round that is not a number."""
    return requested + 1 if type(requested) is int and requested >= 0 else None


def marker(folder: Path, run: str | None, round_: int | str) -> Path:
    """The file saying this node restarted for (run, round), or for (run, a restart by
    time) given its label ("s40", labelled()): never only digits, so never a round's. `run`
    is a checked run id (contract.RUN_ID: no separator), as Story.at leaves it."""
    return folder / f"restarted-{run or NO_RUN}-{round_}"


def labelled(event: Event) -> str:
    """A restart by time's part of its marker's name: "s40" for one at second 40."""
    return f"s{event.first}"


def run_started(model_args: object) -> float | None:
    """The run's second 0 (UTC seconds) as the request gives it, or None if it does not
    (or gives something that is not a finite number)."""
    value = model_args.get("run_started") if isinstance(model_args, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        return None
    return float(value)


def mark(path: Path) -> None:
    """Write the marker atomically (a file renamed into place)."""
    write_atomically(path, f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")


def hold_s(factor: float | None, trained_s: float) -> float:
    """How long a slow node holds its reply: (factor - 1) times the training's wall time."""
    return max(0.0, ((factor or 1.0) - 1.0) * trained_s)


def exit_restarting() -> NoReturn:
    """End the process at once, as a crash would: no goodbye to the researcher."""
    logging.shutdown()  # flushes the story's handlers
    os._exit(Exit.RESTARTING)


@dataclass(frozen=True)
class Slow:
    """A training request's slow event, with what tells it and what interrupts its hold."""

    event: Event
    told: Story
    stopping: threading.Event

    def wrap(self, round_: Any) -> Any:
        """Fed-BioMed's Round (or None: no training), its run_model_training holding the
        reply it returns for hold_s(factor, the call's wall time)."""
        train = getattr(round_, "run_model_training", None)
        if train is None:
            return round_

        def run_model_training(*args: Any, **kwargs: Any) -> Any:
            began = time.monotonic()
            reply = train(*args, **kwargs)
            took = time.monotonic() - began
            hold = hold_s(self.event.value, took)
            did = "trained" if getattr(reply, "success", True) else "failed"
            self.told.info(f"{self.event.describe()}, its schedule: {did} in {took:.1f} s, "
                           f"reply held {hold:.1f} s more")
            self.stopping.wait(hold)  # returns at once when the node stops
            return reply

        round_.run_model_training = run_model_training
        return round_


class Faults:
    """The node's slow and restart events, from its centre's schedule."""

    def __init__(self, schedule: Iterable[Event], story: Story, stopping: threading.Event,
                 folder: Path = MARKERS,
                 exit_: Callable[[], object] = exit_restarting,
                 clock: Callable[[], float] = time.time) -> None:
        self.schedule = tuple(schedule)
        self.story = story
        self.stopping = stopping
        self.folder = folder
        self.exit = exit_
        self.clock = clock  # UTC seconds, as the researcher's run_started
        self.budget = sum(e.kind == "restart" for e in self.schedule)  # on-failure:N
        self.used = self._boot() if self.budget else 0
        self.timed = any(e.by_time and e.kind in OWN for e in self.schedule)
        self.armed: set[tuple[str | None, Event]] = set()  # (run, restart by time)
        self.timers: list[threading.Timer] = []  # each armed restart's, in order
        self._unclocked = False  # whether a request without run_started was told
        self._restarting = threading.Lock()  # one restart at a time (a timer's, a request's)

    def _boot(self) -> int:
        """The engine restarts this container has used: kept when it comes back from one
        (the flag is there), 0 on a fresh start (`docker start` renews Docker's count)."""
        flag, used = self.folder / EXITING, self.folder / USED
        try:
            if flag.exists():
                flag.unlink()
                return int(used.read_text(encoding="utf-8").strip() or 0)
            if used.exists():
                used.unlink()
        except (OSError, ValueError):
            pass  # unknown: counted as none used; the engine's own limit still holds
        return 0

    def arrived(self, requested_round: object, model_args: object,
                training: bool) -> Slow | None:
        """As a request is parsed: restart now (the process ends) if its round is a restart
        this node has not done yet for this run; arm the run's restarts by time; then the
        request's slow event (its round's, else the one holding at its arrival), if any."""
        round_ = scheduled_round(requested_round)
        if not training or round_ is None or not self.schedule:
            return None
        run_id = model_args.get("run_id") if isinstance(model_args, dict) else None
        told = self.story.at(run_id, round_)
        checked = (told.extra or {}).get("run")  # the run id as checked for the story
        run = None if checked is None else str(checked)
        restart = in_round(self.schedule, "restart", round_)
        if restart is not None:
            self._restart(restart, told, marker(self.folder, run, round_))
        slow = in_round(self.schedule, "slow", round_)
        if self.timed:
            started = run_started(model_args)
            if started is None:
                if not self._unclocked:
                    self._unclocked = True
                    told.warning("events by time not carried out: the request gave no "
                                 "run_started")
            else:
                self._arm(run, started)
                if slow is None:
                    slow = at_time(self.schedule, "slow", self.clock() - started)
        return None if slow is None else Slow(slow, told, self.stopping)

    def _arm(self, run: str | None, started: float) -> None:
        """Arm, once per (run, event) in this process's life, a timer for each restart by
        time not done yet for the run, at its second (at once if it has passed)."""
        for event in self.schedule:
            if event.kind != "restart" or not event.by_time or (run, event) in self.armed:
                continue
            self.armed.add((run, event))
            path = marker(self.folder, run, labelled(event))
            told = self.story.at(run, None)  # a restart by time belongs to no round
            try:
                done = path.exists()
            except OSError:
                done = False  # the timer's restart tells why it cannot be carried out
            if done:
                told.info(f"{event.describe()}, its schedule: already restarted for it")
                continue
            delay = min(max(0.0, started + event.first - self.clock()), threading.TIMEOUT_MAX)
            timer = threading.Timer(delay, self._fire, (event, told, path))
            timer.daemon = True
            self.timers.append(timer)
            timer.start()

    def _fire(self, event: Event, told: Story, path: Path) -> None:
        """A restart by time's second has come: restart, unless the node is stopping."""
        if not self.stopping.is_set():
            self._restart(event, told, path, then="going on as normal")

    def _restart(self, event: Event, told: Story, path: Path,
                 then: str = "training as normal") -> None:
        """Exit for the restart unless its marker says it was done (`then`: what the node
        does instead)."""
        with self._restarting:
            try:
                if path.exists():
                    told.info(f"{event.describe()}, its schedule: already restarted for it; "
                              f"{then}")
                    return
                if self.used >= self.budget:
                    told.warning(f"{event.describe()}, its schedule: not carried out, this "
                                 f"container used its {self.budget} engine restart(s) in an "
                                 "earlier run (a kept node); `docker compose up` again "
                                 f"renews them; {then}")
                    return
                mark(path)
                self.used += 1
                write_atomically(self.folder / USED, f"{self.used}\n")
                write_atomically(self.folder / EXITING, "\n")
            except OSError as exc:  # without the marker the restarted node would restart again
                told.warning(f"{event.describe()}, its schedule: not carried out, its marker "
                             f"could not be written ({type(exc).__name__})")
                return
            told.info(f"restarting: {event.describe()}, its schedule")
            self.exit()
