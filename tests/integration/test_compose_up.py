"""`docker compose up` is the product: attached, it runs one experiment, returns by itself
with every container stopped and the results on the host, owned by the owner of ./results;
its output is the story; `fedjourney logs` reads that story back from real containers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack import Stack, small_federation

HOST_USER = 4321  # stands for the user who cloned the repository (the tests run as root)


@pytest.fixture(scope="module")
def attached_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, Path]]:
    folder = tmp_path_factory.mktemp("up")
    _, compose_file = small_federation(folder, rounds=4, epochs=1)
    os.chown(folder / "results", HOST_USER, HOST_USER)
    stack = Stack(compose_file, f"fjup{os.getpid()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDJOURNEY_")}
    try:
        # No run id, no keep: exactly what a user types. The deadline is the test's.
        done = subprocess.run([*stack.base, "up"], capture_output=True, text=True,
                              timeout=600, check=False, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield stack, done.stdout + done.stderr, folder / "results"
    finally:
        stack.compose("down", "-v", check=False)


def test_up_returns_by_itself_with_every_container_stopped(
        attached_up: tuple[Stack, str, Path]) -> None:
    stack, _, _ = attached_up
    states = stack.compose("ps", "-a").stdout
    assert "Up " not in states and " running" not in states, states


def test_results_land_on_the_host_owned_by_its_user(attached_up: tuple[Stack, str, Path]
                                                    ) -> None:
    _, _, results = attached_up
    runs = [p for p in results.iterdir()]
    assert len(runs) == 1 and not runs[0].name.startswith("."), runs  # complete, one run
    files = {p.name for p in runs[0].iterdir()}
    assert {"summary.md", "metrics.jsonl", "model.pt", "run.json"} <= files
    for path in [runs[0], *runs[0].rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (HOST_USER, HOST_USER), path


def test_output_is_the_story_not_fedbiomed_chatter(attached_up: tuple[Stack, str, Path]
                                                  ) -> None:
    _, output, _ = attached_up
    for chatter in ("fedbiomed INFO", "fedbiomed WARNING", "Node ID is ->",
                    "save_state method of optimizer", "should not be called"):
        assert chatter not in output, chatter
    for step in ("data checked", "connected to the researcher", "round 4/4 aggregated",
                 "copied to the host", "the researcher has left: the run is over"):
        assert step in output, step


def test_logs_filters_a_node_round_from_real_compose_output(
        attached_up: tuple[Stack, str, Path]) -> None:
    stack, _, results = attached_up
    run_id = next(results.iterdir()).name
    where = ["-f", stack.base[stack.base.index("-f") + 1], "-p", stack.project]

    def logs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([".venv/bin/fedjourney", "logs", *args, *where],
                              capture_output=True, text=True, timeout=60, check=False)

    round2 = logs("node-1", "--run", run_id, "--round", "2")
    assert round2.returncode == 0, round2.stderr
    lines = round2.stdout.splitlines()
    assert lines and all(f"[node-1 CHU de Lyon] run={run_id} round=2 |" in x for x in lines)
    assert any("validation on" in x for x in lines)
    timeline = logs("--timeline", "--run", run_id).stdout.splitlines()
    assert {x.split("[")[1].split(" ")[0].rstrip("]") for x in timeline} >= {
        "node-0", "node-1", "node-2", "researcher"}
    assert [x.split(" ")[0] for x in timeline] == sorted(x.split(" ")[0] for x in timeline)
    nothing = logs("node-1", "--run", "no-such-run")
    assert nothing.returncode == 1 and "no story line matched" in nothing.stderr
