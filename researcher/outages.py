"""The centres' schedules (schedule.py), carried out where the researcher can: round by round,
or at their seconds for events by time.

Before each round the researcher commands each centre's relay (link.py's control port, which
only the researcher's side reaches) as the round requires:

- `down`: it cuts the link of each centre scheduled down in the round, and restores the
  links of those whose outage ended. The cut node misses the round as it would in a real
  outage: Fed-BioMed stops waiting for it once it marks it disconnected (10 s), or the
  round's deadline leaves it out, and `min_nodes` lets the round go on.
- `flaky`: it sets the relay's added loss (`loss PCT`) before the event's first round,
  and takes it away (`loss off`) before the first round after it.

By time, second 0 is the run's `run_started` (the UTC instant the experiment was built, in
the model arguments; a resumed run keeps its first attempt's): a background thread cuts and
restores links, sets and takes away losses at their seconds, whatever round is running (a
window over before the thread starts is skipped). Without `run_started` they are not carried
out (a warning says so).

The node carries out `slow` and `restart` itself; the researcher cannot trigger them, but
after a restart's round (by round) it waits for the node to be back, as after a restore by
round: it pings (Fed-BioMed's ping) before the round, up to the node deadline, so that the
node rejoins rather than missing one more round by a reconnect in flight. By time the same
wait comes before the first round after a link's restore or a restart's second (a second
later, so that the node has surely gone): a round running at that second goes on as it can.
A node missing from a round has the reason of each of its centre's events in that round
added to why it was dropped: those by round covering it, those by time overlapping its
seconds (from its start to its end), and a down or restart by time since which the node has
not yet taken part in a round.
At the end every cut link is restored and every added loss taken away: kept nodes serve
the next run.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from fedjourney import contract
from fedjourney.config import Centre, Federation
from fedjourney.errors import FedjourneyError
from fedjourney.schedule import CONTROL_PORT, RELAYED, Event, at_time, in_round
from fedjourney.story import Story

COMMAND_TIMEOUT_S = 10
PING_PAUSE_S = 1.0
# The order a dropped node's reasons are given in: the likeliest cause first.
REASONS = ("down", "restart", "flaky", "slow")
RESTORED = "link restored"
RESTARTED = "restarted on its schedule"
STOP_TIMEOUT_S = COMMAND_TIMEOUT_S + 2  # how long restore_all waits for the thread to stop
# A restart by time is waited for this long after its second, when its node has surely
# exited (its timer may fire late on a loaded host): before that, a ping could still reach it.
RESTART_SETTLE_S = 1.0
PING_TIMEOUT_S = 8.0  # Fed-BioMed's ping gives a node 5 s (see online())


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


def online(requests: Any, timeout: float = PING_TIMEOUT_S) -> set[str] | None:
    """The nodes answering Fed-BioMed's ping, or None when the ping did not return within
    `timeout`. Fed-BioMed 6.4.1's ping discards a silent node after 5 s but still waits for
    it (its DiscardOnTimeout never ends the wait): a node whose ping was lost as it
    reconnected, neither answering nor marked disconnected, held it for ever. The ping runs
    in its own thread, left behind (daemon) if it never returns."""
    answer: list[set[str] | BaseException] = []

    def ping() -> None:
        try:
            answer.append(set(requests.ping_nodes()))
        except Exception as exc:  # raised in the caller's thread
            answer.append(exc)

    pinging = threading.Thread(target=ping, name="fedjourney-ping", daemon=True)
    pinging.start()
    pinging.join(timeout)
    if not answer:
        return None
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


def loss_command(pct: float) -> str:
    """The relay's command for a flaky event's loss: "loss 20", "loss 12.5", with the
    shortest text that reads back as pct."""
    short = f"{pct:g}"
    return f"loss {short if float(short) == pct else repr(pct)}"


class Outages:
    """The relays' state the researcher has set (cut links, added losses), and why each node
    missed a round its schedule may explain. Events by time are followed by one background
    thread from the first round on; `clock` gives the UTC time (time.time)."""

    def __init__(self, fed: Federation, node_of: Mapping[int, str],
                 command: Callable[[Centre, str], None] = send, started: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.centres = [c for c in fed.centres if c.schedule]
        self.node_of = dict(node_of)  # centre id -> its node's id
        self.command = command
        self.started = started  # the run's second 0 (UTC), None when the experiment gave none
        self.clock = clock
        # The relays' state, shared with the thread: guarded by `lock`, which is held while
        # a command is sent and its state recorded.
        self.lock = threading.Lock()
        self.cut: set[int] = set()
        self.lossy: dict[int, Event] = {}  # centre id -> the flaky event its relay plays now
        self.settled = False  # whether the relays' state is known (set by this run)
        # Centre id -> its relayed kinds by time (each kind of a centre has one clock).
        self.timed = {c.id: {e.kind for e in c.schedule if e.by_time and e.kind in RELAYED}
                      for c in self.centres}
        self.begun: dict[int, float] = {}  # round -> the run's second it began at
        # Centres the thread restored since the last round (by time): waited for, as by round.
        self.restored: list[Centre] = []
        self.restarts_due: set[Event] = set()  # restarts by time already waited for
        # (centre id, down or restart by time) whose node took part in a round begun after it.
        self.rejoined: set[tuple[int, Event]] = set()
        self.round_now: int | None = None  # the round running, for the thread's story lines
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _settle(self, round_: int) -> None:
        """Before this run's first round: a relay an earlier attempt of a resumed run left cut
        or lossy (it died mid-outage) is set whole, unless its schedule wants it so now (by
        time, the thread sets it at once)."""
        self.settled = True
        second = None if self.started is None else self.clock() - self.started
        for centre in self.centres:
            kinds = {e.kind for e in centre.schedule}
            for kind, whole in (("down", "up"), ("flaky", "loss off")):
                if kind not in kinds:
                    continue
                if kind in self.timed[centre.id]:
                    if second is None:  # never carried out, by any attempt
                        continue
                    now = at_time(centre.schedule, kind, second)
                else:
                    now = in_round(centre.schedule, kind, round_)
                if now is None:
                    self.command(centre, whole)

    def _start(self, story: Story) -> None:
        """Follow the events by time from now on, in a thread; or say why they are not."""
        if self.started is None:
            for centre in self.centres:
                events = [e for e in centre.schedule
                          if e.by_time and e.kind in self.timed[centre.id]]
                if events:
                    story.warning(f"{contract.node_label(centre.id, centre.name)}: "
                                  f"{' and '.join(e.describe() for e in events)} not carried "
                                  "out: the experiment gave no run_started (the run's second 0)")
            return
        transitions = self._transitions()
        # What is due already is set here, so that round 1's request finds each relay as
        # the schedule wants it now (a thread could lose that race); the thread does the rest.
        second = self.clock() - self.started
        due = sum(1 for t in transitions if t[0] <= second)
        self._follow(transitions[:due], story)
        transitions = transitions[due:]
        if transitions:
            self.thread = threading.Thread(target=self._follow, args=(transitions, story),
                                           name="fedjourney-schedule", daemon=True)
            self.thread.start()

    def _transitions(self) -> list[tuple[int, int | None, Centre, str]]:
        """(second, that relay's next transition's second or None, centre, kind) for every
        second a centre's relayed events by time start or end, in order."""
        out: list[tuple[int, int | None, Centre, str]] = []
        for centre in self.centres:
            for kind in self.timed[centre.id]:
                seconds = sorted({s for e in centre.schedule if e.kind == kind
                                  for s in (e.first, e.last)})
                following: list[int | None] = [*seconds[1:], None]
                out += [(s, nxt, centre, kind)
                        for s, nxt in zip(seconds, following, strict=True)]
        return sorted(out, key=lambda t: (t[0], t[2].id, RELAYED.index(t[3])))

    def _follow(self, transitions: list[tuple[int, int | None, Centre, str]],
                story: Story) -> None:
        """The thread: set each relay as its events by time want at each of their seconds;
        a transition whose relay's next one is already past is skipped (an outage over before
        it could start costs no command)."""
        assert self.started is not None
        for second, following, centre, kind in transitions:
            if not self._until(self.started + second):
                return
            if following is not None and self.clock() >= self.started + following:
                continue
            with self.lock:
                if self.stop.is_set():
                    return
                self._apply(centre, kind, second, story)

    def _until(self, when: float) -> bool:
        """Wait until the clock reads `when` (again if it was not there yet: the UTC clock
        may be stepped); False when stopped first."""
        while (left := when - self.clock()) > 0:
            if self.stop.wait(left):
                return False
        return not self.stop.is_set()

    def _change(self, centre: Centre, kind: str, want: Event | None
                ) -> tuple[str, str] | None:
        """The command that sets the centre's relay's `kind` (down or flaky) as `want` (the
        event that should hold now, or None) says, and the story's line for it; None when
        the relay is so already (the lock held)."""
        label = contract.node_label(centre.id, centre.name)
        if kind == "down":
            if (want is not None) == (centre.id in self.cut):
                return None
            if want is None:
                return "up", f"{label}: {RESTORED}"
            return "down", f"{label}: link cut ({want.describe()}, its schedule)"
        if want == self.lossy.get(centre.id):
            return None
        if want is None:
            return "loss off", f"{label}: link steady again"
        # 0 cannot come from the config; the relay would refuse it.
        return (loss_command(want.value or 0.0),
                f"{label}: link flaky ({want.describe()}, its schedule)")

    def _record(self, centre: Centre, kind: str, want: Event | None) -> None:
        """The relay's `kind` is now set as `want` says (the lock held)."""
        if kind == "down":
            if want is None:
                self.cut.discard(centre.id)
            else:
                self.cut.add(centre.id)
        elif want is None:
            self.lossy.pop(centre.id, None)
        else:
            self.lossy[centre.id] = want

    def _apply(self, centre: Centre, kind: str, second: int, story: Story) -> None:
        """Set the centre's relay as its `kind` events by time want at `second`, as before()
        does by round (the lock held). A command that fails is a warning; after a failed
        cut or loss the relay counts as cut or lossy, so that its undoing is still sent."""
        now = at_time(centre.schedule, kind, second)
        change = self._change(centre, kind, now)
        if change is None:
            return
        word, line = change
        if word == "up":
            ended = next((e for e in centre.schedule
                          if e.kind == kind and e.by_time and e.last == second), None)
            line += "" if ended is None else f" ({ended.describe()}, its schedule)"
        told = Story(story.logger, {**(story.extra or {}), "round": self.round_now})
        try:
            self.command(centre, word)
        except FedjourneyError as exc:
            told.warning(f"{contract.node_label(centre.id, centre.name)}: {word!r} at "
                         f"{second} s of its schedule failed, the run goes on: {exc}")
            if now is None:
                return  # still cut or lossy, perhaps: restore_all tries again
        else:
            told.info(line)
        self._record(centre, kind, now)
        if word == "up":
            self.restored.append(centre)

    def before(self, round_: int, requests: Any, deadline_s: float, story: Story) -> None:
        """Cut and restore links, set and take away added losses, as round `round_`
        requires (by round; the thread follows those by time, started at the first round);
        then wait for nodes restored or restarted since the last round, by round or by time."""
        self.round_now = round_
        if not self.settled:
            self._settle(round_)
            self._start(story)
        back: list[tuple[Centre, str]] = []
        for centre in self.centres:
            timed = self.timed[centre.id]
            down = in_round(centre.schedule, "down", round_)
            flaky = in_round(centre.schedule, "flaky", round_)
            with self.lock:
                for kind, want in (("down", down), ("flaky", flaky)):
                    # A kind by time is the thread's.
                    change = None if kind in timed else self._change(centre, kind, want)
                    if change is None:
                        continue
                    word, line = change
                    self.command(centre, word)
                    self._record(centre, kind, want)
                    if word == "up":
                        back.append((centre, RESTORED))  # said once the node is back
                    else:
                        story.info(line)
                cut = centre.id in self.cut  # by time too: no node to wait for
                if centre in self.restored:  # by time, since the last round
                    self.restored.remove(centre)
                    if not cut:
                        back.append((centre, RESTORED))
            restarted = in_round(centre.schedule, "restart", round_ - 1) is not None \
                or self._restarted_by_time(centre)
            if restarted and down is None and not cut \
                    and all(c.id != centre.id for c, _ in back):
                back.append((centre, RESTARTED))
        if back:
            self._wait_back(back, requests, deadline_s, story)
        if self.started is not None:
            self.begun[round_] = self.clock() - self.started

    def _restarted_by_time(self, centre: Centre) -> bool:
        """Whether a restart by time of the centre's node has come since the last round (at
        least RESTART_SETTLE_S ago, so that its node has surely gone): wait for it."""
        if self.started is None:
            return False
        second = self.clock() - self.started
        due = {e for e in centre.schedule if e.kind == "restart" and e.by_time
               and e.first + RESTART_SETTLE_S <= second} - self.restarts_due
        self.restarts_due |= due
        return bool(due)

    def annotated(self, dropped: Mapping[str, str], round_: int) -> dict[str, str]:
        """A round's {node id: why dropped}, with the events of the node's centre in that
        round added to each: "no reply: down in rounds 2-3, its schedule"; "no reply: restart
        in round 4 and slow (x3) in rounds 3-5, its schedule"; "no reply: down from 30 s to
        90 s, its schedule". By kind (REASONS), the event by round covering the round, then
        those by time overlapping its seconds, from its start (as before() left it) to now,
        or a down or restart by time that ended before it and since which the node has not
        taken part in a round (it was not back yet)."""
        out = dict(dropped)
        span = None
        if self.started is not None and round_ in self.begun:
            span = (self.begun[round_], self.clock() - self.started)
        for centre in self.centres:
            node = self.node_of.get(centre.id)
            away: set[Event] = set()  # over, and its node not back in a round since
            if span is not None:
                for e in centre.schedule:
                    if not e.by_time or e.kind not in ("down", "restart") or e.last > span[1] \
                            or (centre.id, e) in self.rejoined:
                        continue
                    if node in out:
                        away.add(e)
                    elif e.last <= span[0]:  # it took part in a round begun after the event
                        self.rejoined.add((centre.id, e))
            if node not in out:
                continue
            events: list[Event] = []
            for kind in REASONS:
                if (by_round := in_round(centre.schedule, kind, round_)) is not None:
                    events.append(by_round)
                if span is not None:
                    events += sorted((e for e in centre.schedule if e.kind == kind
                                      and (e.overlaps(*span) or e in away)),
                                     key=lambda e: e.first)
            if events:
                out[node] = (f"{out[node]}: {' and '.join(e.describe() for e in events)}, "
                             "its schedule")
        return out

    def restore_all(self, story: Story) -> None:
        """Stop following the events by time, then bring every cut link up and take every
        added loss away (the end of the run, whatever its outcome); a relay that does not
        answer is a warning."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(STOP_TIMEOUT_S)
        with self.lock:
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
            answered = online(requests) or set()
            for node_id in [n for n in waiting if n in answered]:
                centre, what = waiting.pop(node_id)
                story.info(f"{contract.node_label(centre.id, centre.name)}: {what}, node back "
                           f"after {time.monotonic() - begun:.1f}s")
            if waiting:
                time.sleep(PING_PAUSE_S)
        for centre, what in waiting.values():
            story.warning(f"{contract.node_label(centre.id, centre.name)}: {what}, node not "
                          f"back after {deadline_s:.0f}s; the round goes on without it if "
                          "min_nodes allows")
