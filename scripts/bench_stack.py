"""Stack benchmark, measured without disturbing what it measures (no polling: `compose up`
returns by itself, `docker wait`, and the roles' own log timestamps).

1. `docker compose up` (attached), from nothing (`down -v` first: data generation, component
   creation and plan approval included), until it returns with the results on the host;
   when the nodes said they were connected (their story lines' timestamps); per-round wall
   time and the part beyond the nodes' own training (run.json, metrics.jsonl).
2. With the nodes kept up: a second experiment (`up -d --no-deps researcher results`, as
   `scripts/run --again` does) until its results are on the host.
Runs the repository's docker-compose.yml (the default federation) as its own compose
project and removes it afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fedjourney import records, settings
from fedjourney.config import Federation, load_federation, load_raw
from fedjourney.contract import new_run_id
from fedjourney.host.compose import Layout, write
from fedjourney.host.logs import Filters, compose_command, select
from fedjourney.story import StoryRecord

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "fjbench"


def compose(*args: str, env: dict[str, str] | None = None, quiet: bool = True,
            file: Path = ROOT / "docker-compose.yml", project: str = PROJECT
            ) -> subprocess.CompletedProcess[str]:
    """`docker compose -f file -p project args...` (the default federation's by default)."""
    return subprocess.run([*compose_command(), "-f", str(file), "-p", project, *args],
                          capture_output=quiet, text=True, check=True,
                          env={**os.environ, **(env or {})}, timeout=3600)


def host_busy() -> float:
    """CPU seconds the host's cores have been busy so far (not idle, not waiting on I/O)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def settle(at_most_s: float = 30.0, window_s: float = 0.5, busy: float = 0.1) -> float:
    """Seconds waited for the host to go quiet (under `busy` of a core over `window_s`), at
    most `at_most_s`: what ran before (a stack on its way down, Ray's processes ending) must
    not run into the next measurement. Reads /proc/stat twice a window, nothing else."""
    began = time.monotonic()
    while time.monotonic() - began < at_most_s:
        before = host_busy()
        time.sleep(window_s)
        if host_busy() - before < busy * window_s:
            break
    return time.monotonic() - began


def rendered(raw: dict[str, Any], folder: Path) -> tuple[Federation, Path]:
    """A benchmark's own federation: raw written to folder/federation.yaml, its compose file
    and role views beside it, its runs landing in the repository's ./results/."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "federation.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    fed = load_federation(config)
    where = Layout(folder / "docker-compose.yml", roles="./roles",
                   results=str(ROOT / "results"))
    write(fed, load_raw(config), where)
    return fed, where.path


def container(service: str, file: Path = ROOT / "docker-compose.yml",
              project: str = PROJECT) -> str:
    """The id of a service's container, running or exited (-a: the researcher or the
    results collector may have finished before we ask)."""
    return compose("ps", "-a", "-q", service, file=file, project=project).stdout.strip()


def story_lines(file: Path = ROOT / "docker-compose.yml",
                project: str = PROJECT) -> list[StoryRecord]:
    """Every role's story lines in the project's logs, read once."""
    logs = compose("logs", "--no-color", file=file, project=project).stdout.splitlines()
    return list(select(logs, Filters()))


def connected_at(started_wall: float, lines: Iterable[StoryRecord]) -> float | None:
    """Seconds from `up` to the last node's 'connected ... healthy' story line."""
    times = [story_time(r.time) for r in lines if "connected to the researcher" in r.message]
    return max(times) - started_wall if times else None


def story_time(stamp: str) -> float:
    """A story line's UTC timestamp (2026-12-04T17:03:53.123Z) in epoch seconds."""
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.UTC).timestamp()


def rounds_report(run_dir: Path) -> str:
    run = records.read_run(run_dir)
    rows = records.read_rows(run_dir)
    walls, beyond = [], []
    for r, seconds in run.round_seconds.items():
        training = max((row.training_seconds or 0) for row in rows if row.round == r)
        walls.append(seconds)
        beyond.append(seconds - training)
    return (f"{len(walls)} rounds, mean {sum(walls) / len(walls):.2f} s wall, "
            f"{sum(beyond) / len(beyond):.2f} s beyond the nodes' training "
            f"(researcher's own run: {run.seconds:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="measure each step N times")
    args = parser.parse_args()
    (ROOT / "results").mkdir(exist_ok=True)
    for attempt in range(1, args.repeat + 1):
        compose("down", "-v")
        run_id = f"bench-{new_run_id()}"
        wall, started = time.time(), time.monotonic()
        compose("up", env={settings.RUN_ID.env: run_id, settings.KEEP.env: "0"})
        up_s = time.monotonic() - started
        out = ROOT / "results" / run_id
        if not out.is_dir():
            print(f"no results for {run_id}: see `docker compose -p {PROJECT} logs`")
            return 1
        ready = connected_at(wall, story_lines())
        when = f"{ready:.1f} s" if ready is not None else "unknown (no story line)"
        print(f"[{attempt}] docker compose up -> returned with results: {up_s:.1f} s; "
              f"all nodes connected at {when}")
        print(f"[{attempt}]   {rounds_report(out)}")

        # Nodes kept: a second experiment on them.
        compose("down")
        compose("up", "-d", env={settings.RUN_ID.env: f"{run_id}-keep", settings.KEEP.env: "1"})
        subprocess.run(["docker", "wait", container("researcher")], check=True,
                       capture_output=True)
        again = f"{run_id}-again"
        started = time.monotonic()
        compose("up", "-d", "--no-deps", "researcher", "results",
                env={settings.RUN_ID.env: again, settings.KEEP.env: "1"})
        for service in ("researcher", "results"):
            subprocess.run(["docker", "wait", container(service)], check=True,
                           capture_output=True)
        again_s = time.monotonic() - started
        ok = (ROOT / "results" / again).is_dir()
        print(f"[{attempt}] second experiment on kept nodes -> results: {again_s:.1f} s"
              f"{'' if ok else ' (NO RESULTS)'}")
        compose("down", "-v")
    print("targets: up -> results <= 35 s; second experiment <= 15 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
