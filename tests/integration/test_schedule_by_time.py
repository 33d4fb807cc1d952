"""A centre's schedule by time, carried out by the stack on real containers in one run of 4
rounds (min_nodes 1 of 3, a 15 s round deadline). Second 0 is when the researcher sets the
experiment up, just before round 1:

- centre 1 `down` from second 0 to 4: the researcher cuts its link before round 1's request
  and restores it at second 4, during round 1. Round 1 waits for it: either its node gets its
  request late, once reconnected, and takes part, or Fed-BioMed marks it disconnected first
  and it misses round 1 with the outage as the reason. Either way the researcher waits for it
  before round 2, and it takes part in rounds 2-4 (nothing here depends on how fast this
  machine trains).
- centre 0 `restart` at second 3: its node exits at second 3 (a timer armed by the run's
  first training request, mid-round or not), the engine restarts its container once, the
  researcher waits for it before round 2 (which begins after second 4), and it takes part
  in rounds 2-4.
- centre 2 `slow` x3 for the whole run: every training request it gets is slowed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fedjourney.testing import LiveFederation, Result, Start
from tests.conftest import DEFAULT_CONFIG

ROUNDS = 4
DOWN = (0, 4)  # centre 1's outage, seconds from to (excluded)
RESTART_S = 3  # centre 0's restart
FACTOR = 3  # centre 2's slow factor, all run long
DEADLINE_S = 15  # a round leaves a silent node out after this


@pytest.fixture(scope="module")
def scheduled(federation: Start, tmp_path_factory: pytest.TempPathFactory) -> LiveFederation:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"][1]["schedule"] = [{"event": "down", "seconds": list(DOWN)}]
    raw["centres"][0]["schedule"] = [{"event": "restart", "seconds": RESTART_S}]
    raw["centres"][2]["schedule"] = [{"event": "slow", "seconds": [0, 3600],
                                      "factor": FACTOR}]
    config: Path = tmp_path_factory.mktemp("schedule-by-time") / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return federation(config, population=40, rounds=ROUNDS, epochs=1, min_nodes=1,
                      round_deadline_s=DEADLINE_S)


@pytest.fixture(scope="module")
def done(scheduled: LiveFederation) -> Result:
    result = scheduled.run(run_id="itest-schedule-by-time-1", timeout=600)
    assert result.ok, "\n".join(result.lines[-30:])
    return result


def _took_part(done: Result, node: str) -> list[int]:
    return [r.round for r in done.rows
            if not r.final and r.took_part and r.node.startswith(node)]


def _missed(done: Result) -> dict[str, dict[str, str]]:
    run = json.loads((done.folder / "run.json").read_text())
    return {node.split()[0]: why for node, why in run.get("missed", {}).items()}


def test_a_centre_down_by_time_is_cut_from_round_1_and_takes_part_once_restored(
        done: Result) -> None:
    assert done.record is not None
    took_part, missed = _took_part(done, "node-1"), _missed(done)
    event = f"down from {DOWN[0]} s to {DOWN[1]} s"
    assert took_part[-(ROUNDS - 1):] == list(range(2, ROUNDS + 1)), (took_part, missed)
    if took_part[0] == 1:  # its request waited for the restore: round 1 lasted that long
        assert done.record.round_seconds[1] >= DOWN[1] - 1, done.record.round_seconds
        assert "node-1" not in missed, missed
    else:
        assert list(missed["node-1"]) == ["1"], missed
        assert f"{event}, its schedule" in missed["node-1"]["1"], missed
    story = "\n".join(done.lines)
    assert f"link cut ({event}, its schedule)" in story, story
    assert f"link restored ({event}, its schedule)" in story, story
    assert "link restored, node back after" in story, story
    assert "node-2" not in missed, missed


def test_a_restart_by_time_is_carried_out_once_and_the_node_takes_part_again(
        scheduled: LiveFederation, done: Result) -> None:
    logs = scheduled.logs("node-0")
    assert logs.count(f"restarting: restart at {RESTART_S} s, its schedule") == 1, logs
    inspect = json.loads(subprocess.run(["docker", "inspect", scheduled.container("node-0")],
                                        check=True, capture_output=True, text=True).stdout)[0]
    assert inspect["RestartCount"] == 1 and inspect["HostConfig"]["CapDrop"] == ["ALL"]
    took_part, missed = _took_part(done, "node-0"), _missed(done)
    assert took_part[-(ROUNDS - 1):] == list(range(2, ROUNDS + 1)), (took_part, missed)
    if took_part[0] != 1:  # its request came after second 3: it died training it
        assert f"restart at {RESTART_S} s, its schedule" in missed["node-0"]["1"], missed
    assert "restarted on its schedule, node back after" in "\n".join(done.lines)


def test_a_slow_window_slows_every_training_request_within_it(scheduled: LiveFederation,
                                                              done: Result) -> None:
    logs = scheduled.logs("node-2")
    held = logs.count(f"slow (x{FACTOR}) from 0 s to 3600 s, its schedule: trained in")
    assert held == len(_took_part(done, "node-2")) == ROUNDS, logs
