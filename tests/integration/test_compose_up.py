"""`docker compose up` is the product: attached, it runs one experiment, returns by itself
with every container stopped and the results on the host, owned by the owner of ./results;
its output is the story; `fedjourney logs` reads that story back from real containers.

Under both Compose generations: v2 (`docker compose`, what users mostly have) and 1.29
(`docker-compose`, Debian 12's package), each where installed. A missing one is skipped,
except under CI (CI=true), where both must be there (scripts/ensure-docker installs both).
FEDJOURNEY_COMPOSE="docker compose" or "docker-compose" runs this module under that one only."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedjourney import records
from fedjourney.exits import Exit
from fedjourney.settings import COMPOSE
from tests.integration.stack import GENERATIONS, Stack, compose_installed, small_federation

HOST_USER = 4321  # stands for the user who cloned the repository (the tests run as root)
ROOT = Path(__file__).resolve().parents[2]


def generation(command: str) -> None:
    """Skip (or, under CI, fail) when this module should not or cannot run under command."""
    forced = " ".join(os.environ.get(COMPOSE.env, "").split())
    if forced and forced != command:
        pytest.skip(f"{COMPOSE.env}={forced!r}: this run is under that Compose only")
    if not compose_installed(command):
        why = (f"`{command} version` fails: this Compose generation is not installed "
               "(scripts/ensure-docker installs both, as root on Debian/Ubuntu)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI tests both Compose generations, but {why}")
        pytest.skip(why)


@pytest.fixture(scope="module", params=list(GENERATIONS.values()), ids=list(GENERATIONS))
def attached_up(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[Stack, str, Path]]:
    generation(request.param)
    folder = tmp_path_factory.mktemp("up")
    _, compose_file = small_federation(folder, rounds=4, epochs=1)
    os.chown(folder / "results", HOST_USER, HOST_USER)
    stack = Stack(compose_file, f"fjup{os.getpid()}", command=request.param)
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
    assert {records.SUMMARY, records.METRICS, records.MODEL, records.RUN} <= files
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

    def logs(*args: str) -> subprocess.CompletedProcess[str]:  # under the stack's Compose
        return subprocess.run([".venv/bin/fedjourney", "logs", *args, *where],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, COMPOSE.env: stack.command})

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


@pytest.mark.parametrize("command", [*GENERATIONS.values(), "podman-compose"],
                         ids=[*GENERATIONS, "other"])
def test_the_detection_honours_the_forced_compose(command: str) -> None:
    """host/logs.py, the one Compose detection (fedjourney run, logs, the tests), picks the
    Compose that FEDJOURNEY_COMPOSE names, and refuses any other value in one line."""
    if command in GENERATIONS.values():
        generation(command)
    env = {**os.environ, COMPOSE.env: f" {command} "}  # extra blanks are allowed
    python = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", "from fedjourney.host.logs "
                             "import compose_command; print(' '.join(compose_command()))"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    if command in GENERATIONS.values():
        assert (python.returncode, python.stdout.strip()) == (0, command), python.stderr
    else:  # through the command line: one line, REFUSED
        cli = subprocess.run([str(ROOT / ".venv/bin/fedjourney"), "logs"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
        assert cli.returncode == Exit.REFUSED and COMPOSE.env in cli.stderr, cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr
