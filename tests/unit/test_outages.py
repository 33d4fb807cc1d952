"""The researcher's side of a centre's schedule (researcher/outages.py), its commands to the
relays recorded instead of sent: when each link is cut and restored, made flaky and steady,
how it waits for a restarted node, how a round's missing node is explained, and that nothing
stays cut or lossy after the run; and, for events by time, when the thread following them
sets each relay, against a clock the tests move."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from fedjourney import contract
from fedjourney.config import Centre, parse_federation
from fedjourney.errors import FedjourneyError
from fedjourney.researcher import outages as outages_module
from fedjourney.researcher.outages import Outages
from fedjourney.story import Story
from tests.conftest import DEFAULT_CONFIG, StoryLines

NODES = {0: "NODE_a", 1: "NODE_b", 2: "NODE_c"}


class Requests:
    """Fed-BioMed's requests, as far as a restore uses them: every node answers a ping, or
    `late` only from its `after`-th ping on (never, if None)."""

    def __init__(self, late: str | None = None, after: int | None = 1) -> None:
        self.pings = 0
        self.late, self.after = late, after

    def ping_nodes(self) -> list[str]:
        self.pings += 1
        answering = self.after is not None and self.pings >= self.after
        return [n for n in NODES.values() if n != self.late or answering]


def _story() -> tuple[Story, StoryLines]:
    logger = logging.getLogger("test-outages")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    told = StoryLines()
    logger.addHandler(told)
    return Story(logger, {}), told


DOWN = {1: [{"event": "down", "rounds": [2, 3]}, {"event": "down", "rounds": 5}]}


def _outages(sent: list[tuple[int, str]],
             schedules: dict[int, list[dict[str, Any]]] | None = None,
             rounds: int = 5, failing: tuple[int, str] | None = None,
             **by_time: Any) -> Outages:
    """Outages whose commands are recorded in `sent` (`failing`, a (centre, command), fails
    instead); `by_time` is Outages' started and clock."""
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for centre, schedule in (DOWN if schedules is None else schedules).items():
        raw["centres"][centre]["schedule"] = schedule
    raw["training"].update(rounds=rounds, min_nodes=2)
    fed = parse_federation(raw, DEFAULT_CONFIG)

    def command(centre: Centre, word: str) -> None:
        if (centre.id, word) == failing:
            raise FedjourneyError(f"relay {centre.id} did not answer {word!r}")
        sent.append((centre.id, word))

    return Outages(fed, NODES, command, **by_time)


def test_each_link_is_cut_before_its_outage_and_restored_after() -> None:
    sent: list[tuple[int, str]] = []
    outages, requests = _outages(sent), Requests()
    story = Story(logging.getLogger("test-outages"), {})
    by_round = {}
    for r in range(1, 6):
        before = len(sent)
        outages.before(r, requests, 5, story)
        by_round[r] = sent[before:]
    # Round 1 first sets the relay whole: an earlier attempt of a resumed run may have left
    # it cut.
    assert by_round == {1: [(1, "up")], 2: [(1, "down")], 3: [], 4: [(1, "up")],
                        5: [(1, "down")]}
    assert requests.pings == 1  # after the restore, until the node answered
    outages.restore_all(story)
    assert sent[-1] == (1, "up") and not outages.cut


def test_a_resumed_run_sets_its_relays_whole_unless_scheduled_in_its_first_round() -> None:
    sent: list[tuple[int, str]] = []
    outages = _outages(sent, {1: [{"event": "down", "rounds": [2, 3]},
                                  {"event": "flaky", "rounds": 5, "loss_pct": 5}]})
    story = Story(logging.getLogger("test-outages"), {})
    outages.before(3, Requests(), 5, story)  # resumed at round 3: still down
    assert sent == [(1, "loss off"), (1, "down")]
    outages.before(4, Requests(), 5, story)
    assert sent[2:] == [(1, "up")]


def test_a_scheduled_miss_is_explained_and_others_are_left_as_they_are() -> None:
    outages = _outages([])
    dropped = {"NODE_b": "no reply", "NODE_c": "failed: out of memory"}
    assert outages.annotated(dropped, 2) == {
        "NODE_b": "no reply: down in rounds 2-3, its schedule",
        "NODE_c": "failed: out of memory"}
    assert outages.annotated(dropped, 4) == dropped


FLAKY = {0: [{"event": "flaky", "rounds": [2, 3], "loss_pct": 20},
             {"event": "flaky", "rounds": 4, "loss_pct": 12.5},
             {"event": "slow", "rounds": [2, 5], "factor": 3}],
         2: [{"event": "flaky", "rounds": 6, "loss_pct": 100}]}


def test_a_flaky_link_gets_its_loss_when_the_event_starts_and_loses_it_after() -> None:
    sent: list[tuple[int, str]] = []
    outages, requests = _outages(sent, FLAKY, rounds=6), Requests()
    story, told = _story()
    by_round = {}
    for r in range(1, 7):
        before = len(sent)
        outages.before(r, requests, 5, story)
        by_round[r] = sent[before:]
    assert by_round == {1: [(0, "loss off"), (2, "loss off")], 2: [(0, "loss 20")], 3: [],
                        4: [(0, "loss 12.5")],
                        5: [(0, "loss off")], 6: [(2, "loss 100")]}
    assert requests.pings == 0  # a flaky link is not cut: nothing to wait for
    node_a = contract.node_label(0, outages.centres[0].name)
    assert [m for _, m in told.lines if m.startswith(node_a)] == [
        f"{node_a}: link flaky (flaky (loss 20%) in rounds 2-3, its schedule)",
        f"{node_a}: link flaky (flaky (loss 12.5%) in round 4, its schedule)",
        f"{node_a}: link steady again"], told.lines
    outages.restore_all(story)
    assert sent[-1] == (2, "loss off") and not outages.lossy
    outages.restore_all(story)
    assert sent[-1] == (2, "loss off") and len(sent) == 7  # nothing left to restore


def test_every_centre_with_a_schedule_is_followed() -> None:
    outages = _outages([], {0: [{"event": "slow", "rounds": 2, "factor": 2}],
                            2: [{"event": "restart", "rounds": 3}]})
    assert [c.id for c in outages.centres] == [0, 2]


def test_the_run_waits_for_a_node_restarted_on_its_schedule(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages_module, "PING_PAUSE_S", 0.01)
    sent: list[tuple[int, str]] = []
    outages = _outages(sent, {2: [{"event": "restart", "rounds": 2},
                                  {"event": "restart", "rounds": 4}]})
    story, told = _story()
    requests = Requests(late="NODE_c", after=3)
    outages.before(1, requests, 5, story)
    outages.before(2, requests, 5, story)
    assert requests.pings == 0  # the restart itself is the node's
    outages.before(3, requests, 5, story)
    assert requests.pings == 3 and not sent  # pinged until it answered; no command
    label = contract.node_label(2, outages.centres[0].name)
    back = [(level, m) for level, m in told.lines if "restarted" in m]
    assert len(back) == 1 and back[0][0] == "INFO"
    assert back[0][1].startswith(f"{label}: restarted on its schedule, node back after ")
    # Not back within the deadline: a warning, and the round goes on.
    outages.before(5, Requests(late="NODE_c", after=None), 0.05, story)
    level, message = told.lines[-1]
    assert (level, message) == ("WARNING", f"{label}: restarted on its schedule, node not "
                                "back after 0s; the round goes on without it if min_nodes "
                                "allows")


def test_every_event_of_a_missing_nodes_round_is_given_as_a_reason() -> None:
    outages = _outages([], {0: FLAKY[0], 2: [{"event": "restart", "rounds": 3}],
                            1: [{"event": "down", "rounds": 5}]}, rounds=6)
    dropped = {"NODE_a": "no reply", "NODE_b": "no reply", "NODE_c": "late"}
    assert outages.annotated(dropped, 2) == {
        "NODE_a": "no reply: flaky (loss 20%) in rounds 2-3 and slow (x3) in rounds 2-5, "
                  "its schedule",
        "NODE_b": "no reply", "NODE_c": "late"}
    assert outages.annotated(dropped, 3)["NODE_c"] == "late: restart in round 3, its schedule"
    assert outages.annotated(dropped, 5) == {
        "NODE_a": "no reply: slow (x3) in rounds 2-5, its schedule",
        "NODE_b": "no reply: down in round 5, its schedule", "NODE_c": "late"}
    assert outages.annotated(dropped, 6) == dropped


# Events by time: a clock the test moves by hand. The thread waits (for real) as long as the
# clock says the next transition is away, and reads the clock again after: each test keeps
# that under a few tens of ms (its clock 0.97 s into a window of 1 s), then moves the clock.

class Clock:
    """A UTC clock that reads `now` until the test moves it."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _eventually(what: Callable[[], bool]) -> None:
    """Wait (up to 2 s) until the schedule's thread has done `what`."""
    end = time.monotonic() + 2
    while not what():
        assert time.monotonic() < end, "the thread did not get there"
        time.sleep(0.005)


def _finished(outages: Outages) -> None:
    """Wait for the thread (if any: what is due at the first round is set before it) to
    have carried out its last transition."""
    if outages.thread is not None:
        outages.thread.join(2)
        assert not outages.thread.is_alive()


def test_an_outage_by_time_over_before_the_run_reaches_it_costs_no_command() -> None:
    sent: list[tuple[int, str]] = []
    clock = Clock()
    outages = _outages(sent, {0: [{"event": "flaky", "seconds": [10, 20], "loss_pct": 20}],
                              1: [{"event": "down", "seconds": [0, 30]},
                                  {"event": "down", "seconds": [40, 60]}]},
                       started=clock() - 100, clock=clock)
    story, told = _story()
    outages.before(3, Requests(), 5, story)  # a resumed run, 100 s in
    _finished(outages)
    assert outages.thread is None  # every transition was due at the first round
    assert sent == [(0, "loss off"), (1, "up")]  # set whole, as by round; nothing after
    assert not outages.cut and not outages.lossy
    assert not [m for _, m in told.lines if "link" in m], told.lines


def test_a_link_down_by_time_is_cut_at_once_and_restored_at_its_end() -> None:
    sent: list[tuple[int, str]] = []
    clock = Clock()
    started = clock() - 0.97
    outages = _outages(sent, {1: [{"event": "down", "seconds": [0, 1]}]},
                       started=started, clock=clock)
    story, told = _story()
    requests = Requests()
    by = []
    command = outages.command
    outages.command = lambda c, w: (by.append(threading.current_thread()), command(c, w))[1]
    outages.before(1, requests, 5, story)
    # Due at the first round, so set by before() itself, not by the thread: round 1's
    # request finds the link cut (no "up" first: it is down now).
    assert sent == [(1, "down")] and outages.cut == {1}
    assert by == [threading.current_thread()]
    outages.before(2, requests, 5, story)  # a round by round leaves it to the thread
    assert sent == [(1, "down")]
    clock.now = started + 1
    _finished(outages)
    assert sent == [(1, "down"), (1, "up")] and not outages.cut
    assert requests.pings == 0  # no waiting back by time
    label = contract.node_label(1, outages.centres[0].name)
    assert [m for _, m in told.lines] == [
        f"{label}: link cut (down from 0 s to 1 s, its schedule)",
        f"{label}: link restored (down from 0 s to 1 s, its schedule)"]
    outages.restore_all(story)
    assert len(sent) == 2  # nothing left to restore


def test_back_to_back_flaky_windows_by_time_change_the_loss_without_a_pause() -> None:
    sent: list[tuple[int, str]] = []
    clock = Clock()
    started = clock() - 0.97
    outages = _outages(sent, {0: [{"event": "flaky", "seconds": [0, 1], "loss_pct": 20},
                                  {"event": "flaky", "seconds": [1, 2], "loss_pct": 50}]},
                       started=started, clock=clock)
    story, told = _story()
    outages.before(1, Requests(), 5, story)
    _eventually(lambda: len(sent) == 1)
    clock.now = started + 1.97
    _eventually(lambda: len(sent) == 2)
    assert outages.lossy[0].value == 50
    clock.now = started + 2
    _finished(outages)
    assert sent == [(0, "loss 20"), (0, "loss 50"), (0, "loss off")]
    label = contract.node_label(0, outages.centres[0].name)
    assert [m for _, m in told.lines] == [
        f"{label}: link flaky (flaky (loss 20%) from 0 s to 1 s, its schedule)",
        f"{label}: link flaky (flaky (loss 50%) from 1 s to 2 s, its schedule)",
        f"{label}: link steady again"]


def test_a_command_by_time_that_fails_is_a_warning_and_the_schedule_goes_on() -> None:
    sent: list[tuple[int, str]] = []
    clock = Clock()
    started = clock() - 0.97
    outages = _outages(sent, {1: [{"event": "down", "seconds": [0, 1]}],
                              2: [{"event": "flaky", "seconds": [0, 1], "loss_pct": 5}]},
                       failing=(1, "down"), started=started, clock=clock)
    story, told = _story()
    outages.before(1, Requests(), 5, story)
    _eventually(lambda: bool(sent))
    clock.now = started + 1
    _finished(outages)
    # The relay may have obeyed a cut it did not confirm: it is still told "up" at the end.
    assert sent == [(2, "loss 5"), (1, "up"), (2, "loss off")]
    label = contract.node_label(1, outages.centres[0].name)
    warnings = [m for level, m in told.lines if level == "WARNING"]
    assert warnings == [f"{label}: 'down' at 0 s of its schedule failed, the run goes on: "
                        "relay 1 did not answer 'down'"]
    assert not [m for _, m in told.lines if "link cut" in m]


def test_the_end_of_the_run_stops_the_thread_and_restores_what_it_set() -> None:
    sent: list[tuple[int, str]] = []
    clock = Clock()
    outages = _outages(sent, {1: [{"event": "down", "seconds": [10, 1000]}],
                              2: [{"event": "flaky", "seconds": [5, 2000], "loss_pct": 30}]},
                       started=clock() - 20, clock=clock)
    story, _ = _story()
    outages.before(1, Requests(), 5, story)
    _eventually(lambda: len(sent) == 2)
    assert outages.thread is not None and outages.thread.is_alive()  # waiting for 1000 s
    begun = time.monotonic()
    outages.restore_all(story)
    assert time.monotonic() - begun < 1  # stopped at once, not at its next transition
    assert not outages.thread.is_alive()
    assert sent == [(2, "loss 30"), (1, "down"), (1, "up"), (2, "loss off")]
    assert not outages.cut and not outages.lossy


def test_a_relay_with_an_event_by_round_and_one_by_time_follows_both() -> None:
    sent: list[tuple[int, str]] = []
    clock = Clock()
    outages = _outages(sent, {1: [{"event": "down", "rounds": 2},
                                  {"event": "flaky", "seconds": [0, 1000], "loss_pct": 20}]},
                       started=clock() - 10, clock=clock)
    story, _ = _story()
    requests = Requests()
    outages.before(1, requests, 5, story)
    _eventually(lambda: (1, "loss 20") in sent)
    assert sent == [(1, "up"), (1, "loss 20")]  # no "loss off" first: it is flaky now
    outages.before(2, requests, 5, story)
    outages.before(3, requests, 5, story)
    assert sent[2:] == [(1, "down"), (1, "up")]  # the loss by time stays
    assert requests.pings == 1 and outages.lossy[1].value == 20
    outages.restore_all(story)
    assert sent[4:] == [(1, "loss off")]


def test_a_missed_round_is_explained_by_the_events_by_time_overlapping_it() -> None:
    clock = Clock()
    started = clock() - 50
    outages = _outages([], {0: [{"event": "flaky", "seconds": [0, 40], "loss_pct": 10}],
                            1: [{"event": "down", "seconds": [30, 60]},
                                {"event": "slow", "seconds": [55, 58], "factor": 2}],
                            2: [{"event": "restart", "seconds": 65},
                                {"event": "flaky", "seconds": [100, 200], "loss_pct": 20}]},
                       started=started, clock=clock)
    story, _ = _story()
    try:
        outages.before(1, Requests(), 5, story)  # the round starts at second 50
        clock.now = started + 70  # and ends at 70
        dropped = {"NODE_a": "no reply", "NODE_b": "no reply", "NODE_c": "late"}
        assert outages.annotated(dropped, 1) == {
            "NODE_a": "no reply",  # its flaky link was steady again before the round
            "NODE_b": "no reply: down from 30 s to 60 s and slow (x2) from 55 s to 58 s, "
                      "its schedule",
            "NODE_c": "late: restart at 65 s, its schedule"}  # not flaky: it comes later
        clock.now = started + 55
        assert outages.annotated(dropped, 1)["NODE_c"] == "late"  # the restart is later
        assert outages.annotated(dropped, 2) == dropped  # a round not begun: no span
    finally:
        outages.restore_all(story)


def test_events_by_time_without_the_runs_start_are_a_warning_and_no_command() -> None:
    sent: list[tuple[int, str]] = []
    outages = _outages(sent, {1: [{"event": "down", "seconds": [0, 1000]},
                                  {"event": "flaky", "seconds": [0, 100], "loss_pct": 20}],
                              2: [{"event": "flaky", "rounds": 2, "loss_pct": 5}]},
                       clock=lambda: pytest.fail("no clock without a start"))
    story, told = _story()
    outages.before(1, Requests(), 5, story)
    outages.before(2, Requests(), 5, story)
    assert outages.thread is None and sent == [(2, "loss off"), (2, "loss 5")]  # by round
    label = contract.node_label(1, outages.centres[0].name)
    assert [(level, m) for level, m in told.lines if level == "WARNING"] == [
        ("WARNING", f"{label}: down from 0 s to 1000 s and flaky (loss 20%) from 0 s to "
                    "100 s not carried out: the experiment gave no run_started (the run's "
                    "second 0)")]
    assert outages.annotated({"NODE_b": "no reply"}, 1) == {"NODE_b": "no reply"}


def test_a_node_back_from_an_event_by_time_is_waited_for_and_explained_until_it_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages_module, "PING_PAUSE_S", 0.0)
    clock = Clock()
    started = clock() - 0.97
    outages = _outages([], {1: [{"event": "down", "seconds": [0, 1]}],
                            2: [{"event": "restart", "seconds": 2}]},
                       started=started, clock=clock)
    story, told = _story()
    try:
        outages.before(1, Requests(), 5, story)  # the link is cut at once
        clock.now = started + 1  # the thread restores it
        _finished(outages)
        assert outages.annotated({"NODE_b": "no reply"}, 1) == {
            "NODE_b": "no reply: down from 0 s to 1 s, its schedule"}
        # Round 2, at second 3.5: the restored node and the node whose restart came at
        # second 2 are waited for (pings until each answers), as after events by round.
        clock.now = started + 3.5
        requests = Requests(late="NODE_c", after=3)
        outages.before(2, requests, 5, story)
        assert requests.pings == 3
        back = [m for _, m in told.lines if "node back" in m]
        assert [m.split(":")[1].split(",")[0].strip() for m in back] == [
            "link restored", "restarted on its schedule"], back
        # Node b was still not back in round 2 (another reason): its outage explains it;
        # once it has taken part in a round begun after the outage, no longer.
        clock.now = started + 4
        assert outages.annotated({"NODE_b": "no reply", "NODE_c": "no reply"}, 2) == {
            "NODE_b": "no reply: down from 0 s to 1 s, its schedule",
            "NODE_c": "no reply: restart at 2 s, its schedule"}
        outages.before(3, Requests(), 5, story)
        assert outages.annotated({}, 3) == {}  # both took part
        outages.before(4, Requests(), 5, story)
        assert outages.annotated({"NODE_b": "no reply"}, 4) == {"NODE_b": "no reply"}
        # The restart is waited for once.
        requests = Requests()
        outages.before(5, requests, 5, story)
        assert requests.pings == 0
    finally:
        outages.restore_all(story)


def test_a_ping_that_never_returns_is_bounded_and_its_errors_reach_the_caller() -> None:
    """Fed-BioMed 6.4.1's ping can wait for ever on a node whose ping was lost as it
    reconnected: online() gives up after its timeout."""
    never = threading.Event()

    class Stuck:
        def ping_nodes(self) -> list[str]:
            never.wait(30)
            return []

    class Failing:
        def ping_nodes(self) -> list[str]:
            raise RuntimeError("no server")

    began = time.monotonic()
    try:
        assert outages_module.online(Stuck(), timeout=0.2) is None
    finally:
        never.set()
    assert time.monotonic() - began < 5
    assert outages_module.online(Requests()) == set(NODES.values())
    with pytest.raises(RuntimeError, match="no server"):
        outages_module.online(Failing())
