"""A centre's scheduled outage, carried out by the stack on real containers: the researcher
cuts the centre's link (its relay) before the first round of the outage and restores it
before the round after; the node misses exactly those rounds (Fed-BioMed stops waiting for
it once it sees it disconnected), the others go on (min_nodes), and it rejoins. run.json and
summary.md say why it missed them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fedjourney.testing import LiveFederation, Result, Start
from tests.conftest import DEFAULT_CONFIG

ROUNDS = 5
DOWN = (2, 3)  # centre 1's outage, rounds first to last
DEADLINE_S = 30  # a round leaves a silent node out after this
# Fed-BioMed marks a node whose connection went disconnected after this (its
# FBM_SERVER_NODE_DISCONNECTION_TIMEOUT) and stops waiting for it.
DISCONNECTED_S = 10


@pytest.fixture(scope="module")
def scheduled(federation: Start, tmp_path_factory: pytest.TempPathFactory) -> LiveFederation:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"][1]["schedule"] = [{"event": "down", "rounds": list(DOWN)}]
    config: Path = tmp_path_factory.mktemp("schedule") / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return federation(config, population=40, rounds=ROUNDS, epochs=1, min_nodes=2,
                      round_deadline_s=DEADLINE_S)


@pytest.fixture(scope="module")
def done(scheduled: LiveFederation) -> Result:
    result = scheduled.run(run_id="itest-schedule-1", timeout=600)
    assert result.ok, "\n".join(result.lines[-30:])
    return result


def test_a_down_centre_misses_exactly_its_scheduled_rounds_and_rejoins(done: Result) -> None:
    took_part: dict[str, list[int]] = {}
    for row in done.rows:
        if not row.final and row.took_part:
            took_part.setdefault(row.node.split()[0], []).append(row.round)
    outage = range(DOWN[0], DOWN[1] + 1)
    assert took_part["node-1"] == [r for r in range(1, ROUNDS + 1) if r not in outage]
    assert took_part["node-0"] == took_part["node-2"] == list(range(1, ROUNDS + 1))
    story = "\n".join(done.lines)
    assert f"link cut (down in rounds {DOWN[0]}-{DOWN[1]}, its schedule)" in story, story
    assert "link restored, node back after" in story, story
    # The outage's first round waited for the node: the researcher was not told. It stopped
    # once Fed-BioMed marked the node disconnected, before the deadline; the later rounds
    # of the outage need not wait.
    assert done.record is not None
    assert DISCONNECTED_S <= done.record.round_seconds[DOWN[0]] < DEADLINE_S, \
        done.record.round_seconds


def test_run_json_and_the_summary_say_why_it_missed_them(done: Result) -> None:
    run = json.loads((done.folder / "run.json").read_text())
    missed = {node.split()[0]: why for node, why in run["missed"].items()}
    assert set(missed) == {"node-1"}, missed
    assert sorted(missed["node-1"]) == [str(r) for r in range(DOWN[0], DOWN[1] + 1)]
    assert all("down in rounds 2-3, its schedule" in why for why in missed["node-1"].values())
    summary = (done.folder / "summary.md").read_text()
    assert "1, 4-5; missed 2-3 (" in summary and "its schedule)" in summary, summary


def test_the_relay_is_cut_only_from_the_researchers_side(scheduled: LiveFederation,
                                                         done: Result) -> None:
    """The node reaches its relay's control port, and is refused: it cannot restore (or
    cut) its own link. The relay holds no capability."""
    probe = ("import socket; s = socket.create_connection(('researcher', 50052), 5); "
             "s.sendall(b'up\\n'); print(s.makefile().readline().strip())")
    out = scheduled.exec("node-1", "python3", "-c", probe)
    assert out.stdout.startswith("refused: only the upstream's side"), out
    inspect = subprocess.run(["docker", "inspect", scheduled.container("link-1")],
                             check=True, capture_output=True, text=True).stdout
    host = json.loads(inspect)[0]["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
