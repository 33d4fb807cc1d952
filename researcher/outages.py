"""The centres' scheduled outages (schedule.py), carried out round by round.

Before each round the researcher cuts the link of each centre scheduled `down` in it, and
restores the links of those whose outage ended, through each centre's relay (link.py's
control port, which only the researcher's side reaches). The cut node misses the round as it
would in a real outage: Fed-BioMed stops waiting for it once it marks it disconnected (10
s), or the round's deadline leaves it out, and `min_nodes` lets the round go on. After a
restore the researcher waits for the node to come back (Fed-BioMed's ping) before the round,
up to the node deadline, so that it rejoins rather than missing one more round by a
reconnect in flight. At the end every cut link is restored: kept nodes serve the next run.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from fedjourney import contract
from fedjourney.config import Centre, Federation
from fedjourney.errors import FedjourneyError
from fedjourney.schedule import CONTROL_PORT, Event, down_in
from fedjourney.story import Story

COMMAND_TIMEOUT_S = 10
PING_PAUSE_S = 1.0


def send(centre: Centre, word: str, timeout: float = COMMAND_TIMEOUT_S) -> None:
    """Send `down` or `up` to the centre's relay; FedjourneyError when it does not answer ok
    within `timeout` (retrying while its name does not resolve or it refuses)."""
    end = time.monotonic() + timeout
    relay = contract.link_service(centre.id)
    last = ""
    while time.monotonic() < end:
        try:
            with socket.create_connection((relay, CONTROL_PORT), 3) as sock:
                sock.sendall(f"{word}\n".encode())
                answer = sock.makefile().readline().strip()
            if answer == f"ok {word}":
                return
            raise FedjourneyError(f"{relay} answered {answer!r} to {word!r}")
        except OSError as exc:
            last = str(exc)
            time.sleep(0.5)
    raise FedjourneyError(f"cannot reach {relay}:{CONTROL_PORT} to bring "
                          f"centre {centre.id}'s link {word} ({last}); see `docker compose "
                          f"logs {relay}`")


class Outages:
    """Which links are cut now, and why each node missed a round it was scheduled out of."""

    def __init__(self, fed: Federation, node_of: Mapping[int, str],
                 command: Callable[[Centre, str], None] = send) -> None:
        self.centres = [c for c in fed.centres if any(e.kind == "down" for e in c.schedule)]
        self.node_of = dict(node_of)  # centre id -> its node's id
        self.command = command
        self.cut: set[int] = set()

    def before(self, round_: int, requests: Any, deadline_s: float, story: Story) -> None:
        """Cut and restore links as round `round_` requires; wait for restored nodes."""
        back: list[Centre] = []
        for centre in self.centres:
            down = down_in(centre.schedule, round_)
            if down and centre.id not in self.cut:
                self.command(centre, "down")
                self.cut.add(centre.id)
                story.info(f"{contract.node_label(centre.id, centre.name)}: link cut "
                                f"({_event(centre.schedule, round_).describe()}, its schedule)")
            elif not down and centre.id in self.cut:
                self.command(centre, "up")
                self.cut.discard(centre.id)
                back.append(centre)
        if back:
            self._wait_back(back, requests, deadline_s, story)

    def annotated(self, dropped: Mapping[str, str], round_: int) -> dict[str, str]:
        """A round's {node id: why dropped}, each scheduled outage's reason added to it."""
        out = dict(dropped)
        for centre in self.centres:
            node = self.node_of.get(centre.id)
            if node in out and down_in(centre.schedule, round_):
                event = _event(centre.schedule, round_)
                out[node] = f"{out[node]}: {event.describe()}, its schedule"
        return out

    def restore_all(self, story: Story) -> None:
        """Bring every cut link up (the end of the run, whatever its outcome)."""
        for centre in self.centres:
            if centre.id in self.cut:
                try:
                    self.command(centre, "up")
                except FedjourneyError as exc:
                    story.warning(str(exc))
                self.cut.discard(centre.id)

    def _wait_back(self, back: list[Centre], requests: Any, deadline_s: float,
                   story: Story) -> None:
        waiting = {self.node_of[c.id]: c for c in back if c.id in self.node_of}
        begun = time.monotonic()
        while waiting and time.monotonic() - begun < deadline_s:
            online = set(requests.ping_nodes())
            for node_id in [n for n in waiting if n in online]:
                centre = waiting.pop(node_id)
                story.info(f"{contract.node_label(centre.id, centre.name)}: link "
                                f"restored, node back after {time.monotonic() - begun:.1f}s")
            if waiting:
                time.sleep(PING_PAUSE_S)
        for centre in waiting.values():
            story.warning(f"{contract.node_label(centre.id, centre.name)}: link "
                               f"restored, node not back after {deadline_s:.0f}s; the round "
                               "goes on without it if min_nodes allows")


def _event(schedule: tuple[Event, ...], round_: int) -> Event:
    return next(e for e in schedule if e.kind == "down" and e.covers(round_))
