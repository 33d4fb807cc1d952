"""Driving a real fedjourney stack from tests: compose files, waits with deadlines, docker."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pytest_docker.plugin import get_docker_services

from fedjourney import settings
from fedjourney.host.logs import compose_command as _compose_command
from fedjourney.testing import Compose, prepare
from fedjourney.testing import write_compose as write_compose
from tests.conftest import DEFAULT_CONFIG

# The Compose generations the tests know, by test id: test_compose_up runs under each one
# installed; every other test under compose_command(). FEDJOURNEY_COMPOSE forces one.
GENERATIONS = {"v2": "docker compose", "1.29": "docker-compose"}


def compose_command() -> str:
    """$FEDJOURNEY_COMPOSE's command when set, else `docker compose` (v2) where present,
    else `docker-compose` (1.29): fedjourney's own detection (host/logs.py)."""
    return " ".join(_compose_command())


def compose_installed(command: str) -> bool:
    """Whether `command version` answers (`docker compose` or `docker-compose`)."""
    words = command.split()
    return shutil.which(words[0]) is not None and subprocess.run(
        [*words, "version"], capture_output=True, check=False).returncode == 0


def small_federation(folder: Path, population: int = 30, rounds: int = 3, epochs: int = 2,
                     **training: object) -> tuple[Path, Path]:
    """A small copy of the default federation and its compose file, in folder; its runs'
    results land in folder/results (fedjourney.testing.prepare)."""
    return prepare(folder, DEFAULT_CONFIG, population, rounds=rounds, epochs=epochs,
                   **training)


@contextlib.contextmanager
def running(folder: Path, project: str, run_id: str, **options: Any) -> Iterator[Stack]:
    """A small federation (small_federation's options) up with `up -d`, then `down -v`."""
    _, compose = small_federation(folder, **options)
    os.environ[settings.RUN_ID.env] = run_id
    with get_docker_services(compose_command(), str(compose), project, ["up -d"],
                             ["down -v"]):
        yield Stack(compose, project)


class Stack(Compose):
    """One compose project of the tests: fedjourney.testing's, with the tests' own waits
    and probes."""

    def health(self, service: str) -> str:
        out = subprocess.run(["docker", "inspect", "--format", "{{json .State.Health}}",
                              self.container(service)], capture_output=True, text=True,
                             check=True).stdout
        state = json.loads(out)
        return str(state["Status"]) if state else "none"

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks of this project still on the engine."""
        label = f"label=com.docker.compose.project={self.project}"
        out = {}
        for kind, cmd in (("containers", ["docker", "ps", "-aq", "--filter", label]),
                          ("volumes", ["docker", "volume", "ls", "-q", "--filter", label]),
                          ("networks", ["docker", "network", "ls", "-q", "--filter", label])):
            out[kind] = subprocess.run(cmd, capture_output=True, text=True,
                                       check=True).stdout.split()
        return out

    def up_fails_before_any_node(self, generator: str, error: str) -> None:
        """`up` stops with `generator`'s one-line error, and no node or researcher runs."""
        up = self.compose("up", "-d", check=False, timeout=300)
        assert up.returncode != 0
        logs = self.logs(generator)
        assert "fedjourney: error: " in logs and error in logs, logs
        # v2 creates every container before it starts any, 1.29 service by service: what
        # both must show is that none of them ever started.
        created = self.compose("ps", "-a", "-q", "node-0", "node-1", "node-2", "researcher",
                               check=False).stdout.split()
        started = [cid for cid in created if not subprocess.run(
            ["docker", "inspect", "--format", "{{.State.StartedAt}}", cid],
            capture_output=True, text=True, check=True).stdout.startswith("0001-01-01")]
        assert started == []

    def kill_after_round(self, service: str, round_: int, rounds: int) -> None:
        """SIGKILL service's container once the researcher has aggregated round_."""
        self.wait_until(lambda: f"round {round_}/{rounds} aggregated" in self.logs("researcher"),
                        timeout=240, what=f"round {round_}")
        subprocess.run(["docker", "kill", self.container(service)], check=True,
                       capture_output=True)

    def signal(self, service: str, sig: str) -> None:
        """Send every process of service's container `sig` (STOP: its connections stay
        open and nothing answers; `docker pause` needs a cgroup freezer this kernel lacks)."""
        done = self.exec(service, "sh", "-c", f'for p in /proc/[0-9]*; do p=${{p#/proc/}}; '
                         f'[ "$p" = $$ ] || kill -{sig} "$p" 2>/dev/null; done; true')
        assert done.returncode == 0, done.stderr

    def rogue(self, mode: str, *args: str, refused: bool = True) -> str:
        """Run rogue_researcher.py's `mode` in a researcher container (the stack's own
        researcher must have left); its output, once the nodes refused (else fail; with
        refused=False, once it ran)."""
        script = Path(__file__).with_name("rogue_researcher.py").read_text()
        done = self.compose("run", "--rm", "--no-deps", "--use-aliases", "-T",
                            "--entrypoint", "python3", "researcher", "-c", script, mode,
                            *args, check=False, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert ("REFUSED" in done.stdout) == refused, done.stdout[-3000:]
        return done.stdout + done.stderr

    def copy_out(self, service: str, path: str, dest: Path) -> None:
        subprocess.run(["docker", "cp", f"{self.container(service)}:{path}", str(dest)],
                       check=True, capture_output=True)


TRACES = """
import pathlib, sys
ids = set(sys.stdin.read().split())
names = {"patients.csv", "observations.csv", "encounters.csv", "conditions.csv"}
for path in sorted(p for p in pathlib.Path("/v").rglob("*") if p.is_file()):
    if sys.argv[1] == "logs" and not path.name.endswith(".log"):
        continue
    text = path.read_bytes().decode("utf-8", "replace")
    if path.name in names or any(i in text for i in ids):
        print(path)
"""


def traces(stack: Stack, volumes: list[str], ids: set[str], only: str = "all") -> list[str]:
    """Files in the volumes named like a patient file or holding a patient id."""
    mounts = [arg for v in volumes for arg in ("-v", f"{stack.project}_{v}:/v/{v}:ro")]
    done = subprocess.run(["docker", "run", "--rm", "-i", *mounts, "--entrypoint", "python3",
                           "fedjourney/base:latest", "-c", TRACES, only],
                          input="\n".join(ids), capture_output=True, text=True, timeout=120,
                          check=True)
    return done.stdout.split()


def volume_digest(volume: str) -> str:
    """sha256 of every file in a volume, by path."""
    done = subprocess.run(["docker", "run", "--rm", "-v", f"{volume}:/data:ro",
                           "--entrypoint", "sh", "fedjourney/base:latest", "-c",
                           "cd /data && find . -type f | sort | xargs sha256sum"],
                          capture_output=True, text=True, check=True)
    return done.stdout
