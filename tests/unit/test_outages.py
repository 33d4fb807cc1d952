"""The researcher's side of a scheduled outage (researcher/outages.py), its commands to the
relays recorded instead of sent: when each link is cut and restored, how a round's missing
node is explained, and that nothing stays cut after the run."""

from __future__ import annotations

import logging
from typing import Any

import yaml

from fedjourney.config import Centre, parse_federation
from fedjourney.researcher.outages import Outages
from fedjourney.story import Story
from tests.conftest import DEFAULT_CONFIG

NODES = {0: "NODE_a", 1: "NODE_b", 2: "NODE_c"}


class Requests:
    """Fed-BioMed's requests, as far as a restore uses them: every node answers a ping."""

    def __init__(self) -> None:
        self.pings = 0

    def ping_nodes(self) -> list[str]:
        self.pings += 1
        return list(NODES.values())


def _outages(sent: list[tuple[int, str]]) -> Outages:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"][1]["schedule"] = [{"event": "down", "rounds": [2, 3]},
                                     {"event": "down", "rounds": 5}]
    raw["training"].update(rounds=5, min_nodes=2)
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
    assert by_round == {1: [], 2: [(1, "down")], 3: [], 4: [(1, "up")], 5: [(1, "down")]}
    assert requests.pings == 1  # after the restore, until the node answered
    outages.restore_all(story)
    assert sent[-1] == (1, "up") and not outages.cut


def test_a_scheduled_miss_is_explained_and_others_are_left_as_they_are() -> None:
    outages = _outages([])
    dropped = {"NODE_b": "no reply", "NODE_c": "failed: out of memory"}
    assert outages.annotated(dropped, 2) == {
        "NODE_b": "no reply: down in rounds 2-3, its schedule",
        "NODE_c": "failed: out of memory"}
    assert outages.annotated(dropped, 4) == dropped
