"""A hospital on a slow link, on real containers: a centre's relay (link.py) sits between its
node and the researcher, and each of its rounds costs what the link costs on top of the
node's own work: a round trip of latency for each message the node sends, and the model's
bytes each way at the rate.

Two federations of two centres run the same two experiments (the MLP at its default width,
and one wide enough for its bytes to matter): a reference whose centres both use the
engine's network, and one whose centre 1 is on a slow link. What a round spends beyond
training (the researcher's wall time of the round minus the longest training on a node) is
compared between them, round by round, in the same session: the difference is the link's.
The node keeps its posture; the relay holds no capability.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

import pytest
import yaml

from fedjourney.testing import LiveFederation, Start
from tests.conftest import DEFAULT_CONFIG

# Fed-BioMed 6.4.1's gRPC client gives up on TLS handshakes of over a second (it never
# connects at 300 ms one way: docs/deployment.md); 150 ms is a long intercontinental path.
LATENCY_MS = 150
RATE_MBIT = 2.0
WIDE = 1024  # the wide experiment's MLP width: 131 kB of float32 each way
N_FEATURES = 30  # the default feature spec's (K)
ROUNDS = 5
# A node's messages in a round of one epoch: the global model's validation, the epoch's
# training loss (node/rules.py's CoarseMonitor), the reply with its update.
MESSAGES = 3
EXPERIMENTS = {"narrow": {}, "wide": {"hidden": WIDE}}


def _two_centres(folder: Path, link: dict[str, float] | None) -> Path:
    """The default config without centre 2; centre 1 on `link` when one is given."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"] = [c for c in raw["centres"] if c["id"] != 2]
    if link is not None:
        raw["centres"][1]["link"] = link
    config = folder / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def _beyond_training(live: LiveFederation, experiment: str) -> list[float]:
    """Per round from the second (the first also loads the plan and data on each node): the
    researcher's wall time of the round minus the longest training on a node."""
    done = live.run(experiment, run_id=f"itest-link-{experiment}-{live.runs + 1}",
                    timeout=600)
    assert done.ok, "\n".join(done.lines[-30:])
    training: dict[int, list[float]] = {}
    for row in done.rows:
        if not row.final and row.training_seconds is not None:
            training.setdefault(row.round, []).append(row.training_seconds)
    assert done.record is not None
    wall = done.record.round_seconds
    return [wall[r] - max(training[r]) for r in sorted(training) if r > 1]


def _start(federation: Start, folder: Path, link: dict[str, float] | None) -> LiveFederation:
    return federation(_two_centres(folder, link), population=40, rounds=ROUNDS, epochs=1,
                      experiments=EXPERIMENTS)


@pytest.fixture(scope="module")
def reference(federation: Start, tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, list[float]]:
    live = _start(federation, tmp_path_factory.mktemp("reference"), None)
    return {name: _beyond_training(live, name) for name in EXPERIMENTS}


@pytest.fixture(scope="module")
def linked(federation: Start, tmp_path_factory: pytest.TempPathFactory) -> LiveFederation:
    return _start(federation, tmp_path_factory.mktemp("linked"),
                  {"latency_ms": LATENCY_MS, "rate_mbit": RATE_MBIT})


@pytest.fixture(scope="module")
def on_the_link(linked: LiveFederation) -> dict[str, list[float]]:
    return {name: _beyond_training(linked, name) for name in EXPERIMENTS}


def _added(on_link: list[float], reference: list[float]) -> float:
    return statistics.median(on_link) - statistics.median(reference)


def test_a_centres_latency_shows_in_its_round_trip(
        on_the_link: dict[str, list[float]], reference: dict[str, list[float]]) -> None:
    added = _added(on_the_link["narrow"], reference["narrow"])
    # The request down, then each of the node's messages in turn: Fed-BioMed 6.4.1's node
    # sends one at a time and waits for the researcher's answer before the next (its
    # Sender), so each costs a round trip (the last, the reply, is in once it arrives).
    expected = 2 * MESSAGES * LATENCY_MS / 1000
    print(f"narrow MLP, a round beyond training: {_show(on_the_link['narrow'])} s on the "
          f"link, {_show(reference['narrow'])} s without; added {added:.2f} s; "
          f"{MESSAGES} messages at {LATENCY_MS} ms each way: {expected:.2f} s")
    # The narrow model's few kB take ~0.05 s at the rate; the rest is the host's noise.
    assert 0.75 * expected <= added <= expected + 0.5, (on_the_link, reference)


def test_a_centres_rate_shows_in_its_round_by_the_models_bytes(
        on_the_link: dict[str, list[float]], reference: dict[str, list[float]]) -> None:
    # What the wide model adds on the link, beyond what it adds without: the rate's share.
    added = (_added(on_the_link["wide"], reference["wide"])
             - _added(on_the_link["narrow"], reference["narrow"]))
    params = N_FEATURES * WIDE + WIDE + WIDE + 1  # the MLP: K -> hidden -> 1
    narrow = N_FEATURES * 32 + 32 + 32 + 1
    # The global model down, the node's update up, as float32.
    expected = 2 * (params - narrow) * 4 * 8 / (RATE_MBIT * 1e6)
    print(f"wide MLP, a round beyond training: {_show(on_the_link['wide'])} s on the link, "
          f"{_show(reference['wide'])} s without; the rate's share {added:.2f} s, the "
          f"model's {params * 4 / 1e3:.0f} kB each way at {RATE_MBIT:g} Mbit/s: "
          f"{expected:.2f} s")
    assert 0.75 * expected <= added <= 1.5 * expected + 0.5, (on_the_link, reference)


def test_the_relay_holds_no_capability_and_the_node_keeps_its_posture(
        linked: LiveFederation) -> None:
    for service in ("link-1", "node-1"):
        out = subprocess.run(["docker", "inspect", linked.container(service)],
                             check=True, capture_output=True, text=True).stdout
        host = json.loads(out)[0]["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and host["ReadonlyRootfs"]
    logs = linked.logs("link-1")
    wanted = f"{RATE_MBIT:g} Mbit/s, {LATENCY_MS} ms"
    assert logs.count(wanted) >= 2, logs[-2000:]


def _show(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)
