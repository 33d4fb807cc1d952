"""The centres' schedules (schedule.py), carried out round by round where the researcher can.

Before each round the researcher commands each centre's relay (link.py's control port, which
only the researcher's side reaches) as the round requires:

- `down`: it cuts the link of each centre scheduled down in the round, and restores the
  links of those whose outage ended. The cut node misses the round as it would in a real
  outage: Fed-BioMed stops waiting for it once it marks it disconnected (10 s), or the
  round's deadline leaves it out, and `min_nodes` lets the round go on.
- `flaky`: it sets the relay's added loss (`loss PCT`) before the event's first round,
  and takes it away (`loss off`) before the first round after it.

The node carries out `slow` and `restart` itself; the researcher cannot trigger them, but
after a restart's round it waits for the node to be back, as after a restore: it pings
(Fed-BioMed's ping) before the round, up to the node deadline, so that the node rejoins
rather than missing one more round by a reconnect in flight. A node missing from a round
has the reason of each of its centre's events in that round added to why it was dropped.
At the end every cut link is restored and every added loss taken away: kept nodes serve
the next run.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from fedjourney import contract
from fedjourney.config import Centre, Federation
from fedjourney.errors import FedjourneyError
from fedjourney.schedule import CONTROL_PORT, Event, in_round
from fedjourney.story import Story

COMMAND_TIMEOUT_S = 10
PING_PAUSE_S = 1.0
# The order a dropped node's reasons are given in: the likeliest cause first.
REASONS = ("down", "restart", "flaky", "slow")
RESTORED = "link restored"
RESTARTED = "restarted on its schedule"


def send(centre: Centre, word: str, timeout: float = COMMAND_TIMEOUT_S) -> None:
    """Send a command (`down`, `up`, `loss 20`, `loss off`) to the centre's relay;
    FedjourneyError when it does not answer `ok <command>` within `timeout` (retrying while
    its name does not resolve or it cannot be reached), or answers anything else."""
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
    raise FedjourneyError(f"cannot reach {relay}:{CONTROL_PORT} to send {word!r} for "
                          f"centre {centre.id}'s link ({last}); see `docker compose "
                          f"logs {relay}`")


def loss_command(pct: float) -> str:
    """The relay's command for a flaky event's loss: "loss 20", "loss 12.5", with the
    shortest text that reads back as pct."""
    short = f"{pct:g}"
    return f"loss {short if float(short) == pct else repr(pct)}"


class Outages:
    """The relays' state the researcher has set (cut links, added losses), and why each node
    missed a round its schedule may explain."""

    def __init__(self, fed: Federation, node_of: Mapping[int, str],
                 command: Callable[[Centre, str], None] = send) -> None:
        self.centres = [c for c in fed.centres if c.schedule]
        self.node_of = dict(node_of)  # centre id -> its node's id
        self.command = command
        self.cut: set[int] = set()
        self.lossy: dict[int, Event] = {}  # centre id -> the flaky event its relay plays now
        self.settled = False  # whether the relays' state is known (set by this run)

    def _settle(self, round_: int) -> None:
        """Before this run's first round: a relay an earlier attempt of a resumed run left cut
        or lossy (it died mid-outage) is set whole, unless its schedule wants it so now."""
        self.settled = True
        for centre in self.centres:
            kinds = {e.kind for e in centre.schedule}
            if "down" in kinds and in_round(centre.schedule, "down", round_) is None:
                self.command(centre, "up")
            if "flaky" in kinds and in_round(centre.schedule, "flaky", round_) is None:
                self.command(centre, "loss off")

    def before(self, round_: int, requests: Any, deadline_s: float, story: Story) -> None:
        """Cut and restore links, set and take away added losses, as round `round_`
        requires; then wait for restored and restarted nodes."""
        if not self.settled:
            self._settle(round_)
        back: list[tuple[Centre, str]] = []
        for centre in self.centres:
            label = contract.node_label(centre.id, centre.name)
            down = in_round(centre.schedule, "down", round_)
            if down is not None and centre.id not in self.cut:
                self.command(centre, "down")
                self.cut.add(centre.id)
                story.info(f"{label}: link cut ({down.describe()}, its schedule)")
            elif down is None and centre.id in self.cut:
                self.command(centre, "up")
                self.cut.discard(centre.id)
                back.append((centre, RESTORED))
            flaky = in_round(centre.schedule, "flaky", round_)
            if flaky is not None and self.lossy.get(centre.id) != flaky:
                # It starts (perhaps right after another flaky event, of another loss).
                self.command(centre, loss_command(flaky.value or 0.0))  # 0: the relay refuses
                self.lossy[centre.id] = flaky
                story.info(f"{label}: link flaky ({flaky.describe()}, its schedule)")
            elif flaky is None and centre.id in self.lossy:
                self.command(centre, "loss off")
                del self.lossy[centre.id]
                story.info(f"{label}: link steady again")
            restarted = in_round(centre.schedule, "restart", round_ - 1)
            if restarted is not None and down is None \
                    and all(c.id != centre.id for c, _ in back):
                back.append((centre, RESTARTED))
        if back:
            self._wait_back(back, requests, deadline_s, story)

    def annotated(self, dropped: Mapping[str, str], round_: int) -> dict[str, str]:
        """A round's {node id: why dropped}, with the events of the node's centre in that
        round added to each: "no reply: down in rounds 2-3, its schedule"; "no reply: restart
        in round 4 and slow (x3) in rounds 3-5, its schedule"."""
        out = dict(dropped)
        for centre in self.centres:
            node = self.node_of.get(centre.id)
            if node not in out:
                continue
            events = [e for kind in REASONS
                      if (e := in_round(centre.schedule, kind, round_)) is not None]
            if events:
                out[node] = (f"{out[node]}: {' and '.join(e.describe() for e in events)}, "
                             "its schedule")
        return out

    def restore_all(self, story: Story) -> None:
        """Bring every cut link up and take every added loss away (the end of the run,
        whatever its outcome); a relay that does not answer is a warning."""
        for centre in self.centres:
            for word, was_set in (("up", centre.id in self.cut),
                                  ("loss off", centre.id in self.lossy)):
                if not was_set:
                    continue
                try:
                    self.command(centre, word)
                except FedjourneyError as exc:
                    story.warning(str(exc))
            self.cut.discard(centre.id)
            self.lossy.pop(centre.id, None)

    def _wait_back(self, back: list[tuple[Centre, str]], requests: Any, deadline_s: float,
                   story: Story) -> None:
        """Ping until each node of `back` ({centre, what happened to it}) answers, up to
        deadline_s in all."""
        waiting = {self.node_of[c.id]: (c, what) for c, what in back if c.id in self.node_of}
        begun = time.monotonic()
        while waiting and time.monotonic() - begun < deadline_s:
            online = set(requests.ping_nodes())
            for node_id in [n for n in waiting if n in online]:
                centre, what = waiting.pop(node_id)
                story.info(f"{contract.node_label(centre.id, centre.name)}: {what}, node back "
                           f"after {time.monotonic() - begun:.1f}s")
            if waiting:
                time.sleep(PING_PAUSE_S)
        for centre, what in waiting.values():
            story.warning(f"{contract.node_label(centre.id, centre.name)}: {what}, node not "
                          f"back after {deadline_s:.0f}s; the round goes on without it if "
                          "min_nodes allows")
