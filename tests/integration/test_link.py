"""A hospital on a slow link, on real containers: a centre's relay (link.py) sits between its
node and the researcher, and each round of that centre takes what the link costs on top of
the node's own work: twice the one-way latency, or the model's bytes each way at the rate.
The node keeps its posture; the relay holds no capability."""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

import pytest
import yaml

from fedjourney.testing import LiveFederation, Start
from tests.conftest import DEFAULT_CONFIG

LATENCY_MS = 300  # one way: a round trip gains 0.6 s
RATE_MBIT = 2.0
HIDDEN = 1024  # the MLP's width: enough bytes for the rate to show
N_FEATURES = 30  # the default feature spec's (K)


def _two_centres(folder: Path, link: dict[str, float], **training: int) -> Path:
    """The default config without centre 2, centre 1 on `link`."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"] = [c for c in raw["centres"] if c["id"] != 2]
    raw["centres"][1]["link"] = link
    raw["training"].update(training)
    config = folder / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def _beyond_the_node(live: LiveFederation, run_id: str) -> list[float]:
    """Per round, the researcher's wall time of the round minus the slowest node's own time
    (Fed-BioMed's rtime_total): what the network took."""
    done = live.run(run_id=run_id, timeout=600)
    assert done.ok, "\n".join(done.lines[-30:])
    rounds: dict[int, list[float]] = {}
    wall: dict[int, float] = {}
    for row in done.rows:
        if not row.final and row.node_seconds is not None and row.round_seconds is not None:
            rounds.setdefault(row.round, []).append(row.node_seconds)
            wall[row.round] = row.round_seconds
    return [wall[r] - max(node) for r, node in sorted(rounds.items())]


@pytest.fixture(scope="module")
def slow_latency(federation: Start, tmp_path_factory: pytest.TempPathFactory
                 ) -> LiveFederation:
    config = _two_centres(tmp_path_factory.mktemp("latency"), {"latency_ms": LATENCY_MS})
    return federation(config, population=40, rounds=3, epochs=1)


@pytest.fixture(scope="module")
def slow_rate(federation: Start, tmp_path_factory: pytest.TempPathFactory) -> LiveFederation:
    config = _two_centres(tmp_path_factory.mktemp("rate"), {"rate_mbit": RATE_MBIT},
                          hidden=HIDDEN)
    return federation(config, population=40, rounds=3, epochs=1)


def test_a_centres_latency_shows_in_its_round_trip(slow_latency: LiveFederation) -> None:
    extra = _beyond_the_node(slow_latency, "itest-latency")
    expected = 2 * LATENCY_MS / 1000
    print(f"network time a round: {', '.join(f'{x:.2f}' for x in extra)} s; a round trip "
          f"at {LATENCY_MS} ms each way: {expected:.2f} s")
    # Each round crosses the link at least once each way; with nothing else slow, the
    # rest of a round on this host is well under a second.
    assert statistics.median(extra) >= 0.9 * expected, extra
    assert statistics.median(extra) < expected + 3.0, extra


def test_a_centres_rate_shows_in_its_round_by_the_models_bytes(
        slow_rate: LiveFederation) -> None:
    extra = _beyond_the_node(slow_rate, "itest-rate")
    params = N_FEATURES * HIDDEN + HIDDEN + HIDDEN + 1  # the MLP: K -> hidden -> 1
    # The global model down, the node's update up, as float32: at least that many bytes.
    expected = 2 * params * 4 * 8 / (RATE_MBIT * 1e6)
    print(f"network time a round: {', '.join(f'{x:.2f}' for x in extra)} s; the model's "
          f"{params * 4 / 1e3:.0f} kB each way at {RATE_MBIT:g} Mbit/s: {expected:.2f} s")
    assert statistics.median(extra) >= 0.9 * expected, extra
    assert statistics.median(extra) < 3 * expected + 2.0, extra


def test_the_relay_holds_no_capability_and_the_node_keeps_its_posture(
        slow_latency: LiveFederation) -> None:
    for service in ("link-1", "node-1"):
        out = subprocess.run(["docker", "inspect", slow_latency.container(service)],
                             check=True, capture_output=True, text=True).stdout
        host = json.loads(out)[0]["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and host["ReadonlyRootfs"]
    logs = slow_latency.logs("link-1")
    assert "emulating up unlimited, 300 ms; down unlimited, 300 ms" in logs, logs[-2000:]
