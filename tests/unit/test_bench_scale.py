"""scripts/bench_scale.py's reading of where a node's start CPU goes, from the node's own
start-up line (node/start.py) and its healthy line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fedjourney import startup
from fedjourney.node import start

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_scale

HEALTHY = "connected to the researcher at researcher:50051: healthy ({}s of CPU since the " \
          "process began)"


def test_the_bench_reads_back_every_step_the_node_writes() -> None:
    phases = startup.Phases()
    sum(range(200_000))
    phases.mark("data check")
    phases.mark("Fed-BioMed imports")
    steps = bench_scale.start_steps([("node-0", start.started_line(6.2, phases, 50051))])
    assert list(steps) == list(phases.spent)
    for step, seconds in phases.spent.items():
        assert steps[step] == pytest.approx(seconds, abs=0.005)  # printed to 0.01 s


def test_steps_are_averaged_over_the_nodes_and_connecting_is_the_cpu_after_start_up() -> None:
    lines = [("node-0", "start-up took 6.2s, 3.8s of CPU since the process began "
                        "(interpreter and fedjourney 0.50s, Fed-BioMed imports 3.25s); "
                        "connecting to researcher:50051"),
             ("node-1", "start-up took 7.0s, 5.0s of CPU since the process began "
                        "(interpreter and fedjourney 0.70s, Fed-BioMed imports 4.25s); "
                        "connecting to researcher:50051"),
             ("node-0", HEALTHY.format("4.25")), ("node-1", HEALTHY.format("5.45")),
             ("researcher", "all 2 nodes answered")]
    steps = bench_scale.start_steps(lines)
    assert list(steps) == ["interpreter and fedjourney", "Fed-BioMed imports", "connecting"]
    assert steps["interpreter and fedjourney"] == pytest.approx(0.6)
    assert steps["Fed-BioMed imports"] == pytest.approx(3.75)
    assert steps["connecting"] == pytest.approx(0.5)


def test_a_healthy_line_without_a_start_up_line_before_it_counts_nothing() -> None:
    assert bench_scale.start_steps([("node-0", HEALTHY.format("4.25"))]) == {}
