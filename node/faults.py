"""The node's own share of its centre's schedule (schedule.py): `slow` and `restart`,
carried out as a training request names its round.

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
"""

from __future__ import annotations

import logging
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
from fedjourney.schedule import Event, in_round
from fedjourney.story import Story

MARKERS = Path(contract.OWN_FILES) / "schedule"  # in the node's state volume: kept across restarts
NO_RUN = "no-run"  # a request without a run id (not fedjourney's researcher)
USED = "restarts-used"  # how many engine restarts this container has used
EXITING = "exiting-to-restart"  # left as the node exits for a restart; gone once it is back


def scheduled_round(requested: object) -> int | None:
    """The schedule's round (from 1) of a request naming Fed-BioMed's round (from 0); None
    for a round that is not a number."""
    return requested + 1 if type(requested) is int and requested >= 0 else None


def marker(folder: Path, run: str | None, round_: int) -> Path:
    """The file saying this node restarted for (run, round). `run` is a checked run id
    (contract.RUN_ID: no separator), as Story.at leaves it."""
    return folder / f"restarted-{run or NO_RUN}-{round_}"


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
                 exit_: Callable[[], object] = exit_restarting) -> None:
        self.schedule = tuple(schedule)
        self.story = story
        self.stopping = stopping
        self.folder = folder
        self.exit = exit_
        self.budget = sum(e.kind == "restart" for e in self.schedule)  # on-failure:N
        self.used = self._boot() if self.budget else 0

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
        this node has not done yet for this run; else the round's slow event, if any."""
        round_ = scheduled_round(requested_round)
        if not training or round_ is None or not self.schedule:
            return None
        run_id = model_args.get("run_id") if isinstance(model_args, dict) else None
        told = self.story.at(run_id, round_)
        restart = in_round(self.schedule, "restart", round_)
        if restart is not None:
            run = (told.extra or {}).get("run")  # the run id as checked for the story
            self._restart(restart, told, marker(self.folder, None if run is None else str(run),
                                                round_))
        slow = in_round(self.schedule, "slow", round_)
        return None if slow is None else Slow(slow, told, self.stopping)

    def _restart(self, event: Event, told: Story, path: Path) -> None:
        """Exit for the restart unless its marker says it was done."""
        try:
            if path.exists():
                told.info(f"{event.describe()}, its schedule: already restarted for it; "
                          "training as normal")
                return
            if self.used >= self.budget:
                told.warning(f"{event.describe()}, its schedule: not carried out, this "
                             f"container used its {self.budget} engine restart(s) in an "
                             "earlier run (a kept node); `docker compose up` again renews "
                             "them; training as normal")
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
