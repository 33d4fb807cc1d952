"""The researcher's side of a centre's schedule (researcher/outages.py), its commands to the
relays recorded instead of sent: when each link is cut and restored, made flaky and steady,
how it waits for a restarted node, how a round's missing node is explained, and that nothing
stays cut or lossy after the run."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import yaml

from fedjourney import contract
from fedjourney.config import Centre, parse_federation
from fedjourney.researcher import outages as outages_module
from fedjourney.researcher.outages import Outages
from fedjourney.story import Story
from tests.conftest import DEFAULT_CONFIG

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


class _Told(logging.Handler):
    """A story's lines, as (level name, message)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


def _story() -> tuple[Story, _Told]:
    logger = logging.getLogger("test-outages")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    told = _Told()
    logger.addHandler(told)
    return Story(logger, {}), told


DOWN = {1: [{"event": "down", "rounds": [2, 3]}, {"event": "down", "rounds": 5}]}


def _outages(sent: list[tuple[int, str]],
             schedules: dict[int, list[dict[str, Any]]] | None = None,
             rounds: int = 5) -> Outages:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for centre, schedule in (DOWN if schedules is None else schedules).items():
        raw["centres"][centre]["schedule"] = schedule
    raw["training"].update(rounds=rounds, min_nodes=2)
    fed = parse_federation(raw, DEFAULT_CONFIG)

    def command(centre: Centre, word: str) -> None:
        sent.append((centre.id, word))

    return Outages(fed, NODES, command)


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
