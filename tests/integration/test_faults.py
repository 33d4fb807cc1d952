"""Faults: a node dying, a node hanging, an invalid config; k-of-n rounds, rejoin, resume.
(Broken data: test_broken_data.py.)"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack import Stack, running, small_federation


@pytest.fixture
def long_stack(tmp_path: Path) -> Iterator[Stack]:
    with running(tmp_path, f"fjdeath{os.getpid()}", "itest-death", rounds=60,
                 epochs=1) as stack:
        yield stack


def test_node_dying_mid_run_fails_the_run_naming_it(long_stack: Stack) -> None:
    stack = long_stack
    stack.kill_after_round("node-1", 2, 60)
    killed = time.monotonic()
    status = stack.wait_exit("researcher", timeout=180)
    assert status == 3
    assert time.monotonic() - killed < 90
    logs = stack.logs("researcher")
    assert "FAILED: round" in logs and "node-1 CHU de Lyon: DISCONNECTED" in logs, logs[-3000:]


def test_an_invalid_config_stops_its_generator_before_any_node_starts(tmp_path: Path
                                                                     ) -> None:
    """The host refuses to render an invalid config (unit-tested); a role view edited by
    hand is the generator's to refuse, and then nothing else starts."""
    import yaml

    _, compose = small_federation(tmp_path)
    view_path = tmp_path / "roles" / "generator-1.yaml"
    view = yaml.safe_load(view_path.read_text())
    view["centres"][0]["age_range"] = "85-40"  # inverted
    view_path.write_text(yaml.safe_dump(view))
    stack = Stack(compose, f"fjbadcfg{os.getpid()}")
    try:
        stack.up_fails_before_any_node("generator-1", "is inverted")
    finally:
        stack.compose("down", "-v", check=False)


@pytest.fixture
def k_of_n_stack(tmp_path: Path) -> Iterator[Stack]:
    with running(tmp_path, f"fjkofn{os.getpid()}", "itest-kofn", rounds=60, epochs=10,
                 min_nodes=2, round_deadline_s=30) as stack:
        yield stack


def test_with_min_nodes_a_lost_node_is_dropped_then_rejoins(k_of_n_stack: Stack) -> None:
    """min_nodes 2 of 3: node-1 killed mid-run, the run goes on without it; restarted on
    its state volume, it takes part again; sample-weighted FedAverage over those present."""
    stack = k_of_n_stack
    stack.kill_after_round("node-1", 2, 60)
    stack.wait_until(lambda: "without node-1 CHU de Lyon" in stack.logs("researcher"),
                     timeout=90, what="a round without node-1")
    stack.compose("start", "node-1")
    assert stack.wait_exit("researcher", timeout=600) == 0, stack.logs("researcher")[-3000:]
    assert stack.wait_exit("results", timeout=60) == 0
    run = stack.compose_file.parent / "results" / "itest-kofn"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lyon = {r["round"]: r["took_part"] for r in rows if r["node"] == "node-1 CHU de Lyon"}
    others = [r["took_part"] for r in rows if r["node"] != "node-1 CHU de Lyon"
              and not r["final"]]
    assert all(others)
    assert lyon[1] and lyon[2] and lyon[60], lyon  # before, and back at the end
    missed = [r for r, took in lyon.items() if not took and r <= 60]
    assert missed and min(missed) >= 3, lyon
    summary = (run / "summary.md").read_text()
    assert "- node-1 CHU de Lyon: 1-" in summary and "- node-0 Massachusetts General " \
        "Hospital: 1-60" in summary
