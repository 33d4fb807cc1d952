"""A centre's schedule, carried out by the stack on real containers, one event after another
in one run of 7 rounds (min_nodes 2 of 3):

- rounds 2-3, centre 1 `down`: the researcher cuts its link (its relay) before round 2 and
  restores it before round 4; the node misses exactly those rounds (Fed-BioMed stops
  waiting for it once it sees it disconnected), the others go on, and it rejoins. run.json
  and summary.md say why it missed them.
- round 4, centre 0 `restart`: its node exits as a crash would when round 4's request comes,
  the engine restarts its container once, and it takes part again from round 5.
- round 5, centre 2 `slow` x4: its node holds its reply 3 times its training's wall time.
- round 6, centre 2 `flaky` at 100 % loss: every chunk of its link waits one retransmission
  timeout (0.2 s) more, so each of its round trips costs at least 0.4 s more than in round 7.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fedjourney.records import MetricRow
from fedjourney.testing import LiveFederation, Result, Start
from tests.conftest import DEFAULT_CONFIG

ROUNDS = 7
DOWN = (2, 3)  # centre 1's outage, rounds first to last
RESTART = 4  # centre 0's restart
SLOW, FACTOR = 5, 4  # centre 2's slow round and its factor
FLAKY, CLEAN = 6, 7  # centre 2's flaky round, and the untouched round it is compared with
RTO_S = 0.2  # what a lost chunk costs on a link with no latency (link.py)
DEADLINE_S = 30  # a round leaves a silent node out after this
# Fed-BioMed marks a node whose connection went disconnected after this (its
# FBM_SERVER_NODE_DISCONNECTION_TIMEOUT) and stops waiting for it.
DISCONNECTED_S = 10


@pytest.fixture(scope="module")
def scheduled(federation: Start, tmp_path_factory: pytest.TempPathFactory) -> LiveFederation:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"][1]["schedule"] = [{"event": "down", "rounds": list(DOWN)}]
    raw["centres"][0]["schedule"] = [{"event": "restart", "rounds": RESTART}]
    raw["centres"][2]["schedule"] = [{"event": "slow", "rounds": SLOW, "factor": FACTOR},
                                     {"event": "flaky", "rounds": FLAKY, "loss_pct": 100}]
    config: Path = tmp_path_factory.mktemp("schedule") / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return federation(config, population=40, rounds=ROUNDS, epochs=1, min_nodes=2,
                      round_deadline_s=DEADLINE_S)


@pytest.fixture(scope="module")
def done(scheduled: LiveFederation) -> Result:
    result = scheduled.run(run_id="itest-schedule-1", timeout=600)
    assert result.ok, "\n".join(result.lines[-30:])
    return result


def _took_part(done: Result) -> dict[str, list[int]]:
    took_part: dict[str, list[int]] = {}
    for row in done.rows:
        if not row.final and row.took_part:
            took_part.setdefault(row.node.split()[0], []).append(row.round)
    return took_part


def test_a_down_centre_misses_exactly_its_scheduled_rounds_and_rejoins(done: Result) -> None:
    took_part = _took_part(done)
    outage = range(DOWN[0], DOWN[1] + 1)
    assert took_part["node-1"] == [r for r in range(1, ROUNDS + 1) if r not in outage]
    assert took_part["node-2"] == list(range(1, ROUNDS + 1))
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
    assert set(missed) <= {"node-0", "node-1"}, missed  # node-0 may miss its restart's round
    assert sorted(missed["node-1"]) == [str(r) for r in range(DOWN[0], DOWN[1] + 1)]
    assert all("down in rounds 2-3, its schedule" in why for why in missed["node-1"].values())
    summary = (done.folder / "summary.md").read_text()
    assert "1, 4-7; missed 2-3 (" in summary and "its schedule)" in summary, summary


def test_a_restarted_node_is_restarted_once_by_the_engine_and_takes_part_again(
        scheduled: LiveFederation, done: Result) -> None:
    took_part = _took_part(done)
    assert took_part["node-0"][:RESTART - 1] == list(range(1, RESTART))
    assert took_part["node-0"][-(ROUNDS - RESTART):] == list(range(RESTART + 1, ROUNDS + 1))
    run = json.loads((done.folder / "run.json").read_text())
    missed = {node.split()[0]: why for node, why in run["missed"].items()}
    if "node-0" in missed:  # it was not back before Fed-BioMed gave up on it
        assert list(missed["node-0"]) == [str(RESTART)], missed
        assert f"restart in round {RESTART}, its schedule" in missed["node-0"][str(RESTART)]
    inspect = json.loads(subprocess.run(["docker", "inspect", scheduled.container("node-0")],
                                        check=True, capture_output=True, text=True).stdout)[0]
    assert inspect["RestartCount"] == 1 and inspect["HostConfig"]["CapDrop"] == ["ALL"]
    assert f"restarting: restart in round {RESTART}, its schedule" in scheduled.logs("node-0")
    assert "restarted on its schedule, node back after" in "\n".join(done.lines)


def _row(done: Result, node: str, round_: int) -> MetricRow:
    return next(r for r in done.rows if not r.final and r.round == round_
                and r.node.startswith(node))


def test_a_slow_node_holds_its_reply_for_its_factor(scheduled: LiveFederation,
                                                    done: Result) -> None:
    slow = _row(done, "node-2", SLOW)
    assert slow.training_seconds is not None and done.record is not None
    # Its round lasted at least FACTOR times its training (the hold measures the training's
    # wall time from outside Fed-BioMed's timer, which it can only exceed).
    assert done.record.round_seconds[SLOW] >= FACTOR * slow.training_seconds, \
        (done.record.round_seconds, slow.training_seconds)
    assert f"slow (x{FACTOR}) in round {SLOW}, its schedule: trained in" in \
        scheduled.logs("node-2")


def test_a_flaky_link_costs_its_centre_a_retransmission_timeout_per_chunk(
        done: Result) -> None:
    assert done.record is not None
    wall = done.record.round_seconds

    def beyond(round_: int) -> float:
        return wall[round_] - max(r.training_seconds or 0.0 for r in done.rows
                                  if not r.final and r.round == round_)

    # The request down and the node's three messages up (validation, epoch loss, reply),
    # each a round trip in Fed-BioMed's one-at-a-time sender: at least 2 RTOs each way
    # and back, counted once here to stay clear of how chunks split.
    assert beyond(FLAKY) - beyond(CLEAN) >= 2 * RTO_S, wall
    story = "\n".join(done.lines)
    assert f"link flaky (flaky (loss 100%) in round {FLAKY}, its schedule)" in story, story


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
