"""Every kind of broken centre on real containers: the node says `UNHEALTHY: <reason>` in one
line and exits 2, the researcher fails within 60 s naming it and its reason, the other
centres' volumes stay byte-identical, and no patient identifier or raw value leaves a node."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from pytest_docker.plugin import get_docker_services

from fedjourney import settings
from fedjourney.config import Centre, load_federation
from fedjourney.contract import node_service
from fedjourney.exits import Exit
from tests.broken_data import BROKEN, RAW
from tests.integration.stack import Stack, compose_command, small_federation, traces, volume_digest

KINDS = sorted(BROKEN)
# Three centres: three kinds a run, and a last run with one broken centre beside two sound.
BATCHES = [KINDS[i:i + 3] for i in range(0, len(KINDS), 3)]
FAIL_WITHIN_S = 60


class Centres:
    """The generated centres' volumes, edited from the host through a never-started
    container that mounts them all."""

    def __init__(self, stack: Stack, centres: list[Centre], scratch: Path) -> None:
        self.stack, self.centres, self.scratch = stack, centres, scratch
        self.holder = f"{stack.project}-holder"
        mounts = [a for c in centres for a in ("-v", f"{self.volume(c)}:/c{c.id}")]
        _docker("create", "--name", self.holder, *mounts, "fedjourney/base:latest")
        for c in centres:
            _docker("cp", f"{self.holder}:/c{c.id}/{c.folder_name}", str(self.pristine(c)))

    def volume(self, centre: Centre) -> str:
        return f"{self.stack.project}_centre-{centre.id}-data"

    def pristine(self, centre: Centre) -> Path:
        return self.scratch / f"pristine-{centre.id}"

    def put(self, centre: Centre, kind: str | None) -> None:
        """The centre's folder in its volume: pristine, or broken the `kind` way."""
        work = self.scratch / f"work-{centre.id}"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(self.pristine(centre), work, symlinks=True)
        if kind:
            BROKEN[kind][0](work)
        _docker("run", "--rm", "--user", "0", "-v", f"{self.volume(centre)}:/c",
                "--entrypoint", "rm", "fedjourney/base:latest", "-rf",
                f"/c/{centre.folder_name}")
        _docker("cp", str(work), f"{self.holder}:/c{centre.id}/{centre.folder_name}")

    def ids(self) -> set[str]:
        return {i for c in self.centres for i in pl.read_csv(
            self.pristine(c) / "patients.csv", infer_schema=False)["Id"].to_list()}

    def close(self) -> None:
        _docker("rm", self.holder)


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def centres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centres]:
    folder = tmp_path_factory.mktemp("broken")
    config, compose = small_federation(folder)
    stack = Stack(compose, f"fjbroken{os.getpid()}")
    fed = load_federation(config)
    generators = " ".join(f"generator-{c.id}" for c in fed.centres)
    with get_docker_services(compose_command(), str(compose), stack.project,
                             [f"up -d {generators}"], ["down -v"]):
        for c in fed.centres:
            assert stack.wait_exit(f"generator-{c.id}", timeout=120) == 0
        held = Centres(stack, list(fed.centres), folder)
        try:
            yield held
        finally:
            held.close()


@pytest.mark.parametrize("batch", BATCHES, ids=["+".join(b) for b in BATCHES])
def test_each_kind_of_broken_data_is_named_within_a_minute(centres: Centres,
                                                           batch: list[str]) -> None:
    stack = centres.stack
    broken = dict(zip(centres.centres, batch, strict=False))
    sound = [c for c in centres.centres if c not in broken]
    for c in centres.centres:
        centres.put(c, broken.get(c))
    before = {c.id: volume_digest(centres.volume(c)) for c in sound}
    nodes = [node_service(c.id) for c in centres.centres]
    started = time.monotonic()
    stack.compose("up", "-d", "--no-deps", "--force-recreate", *nodes, "researcher",
                  env={settings.RUN_ID.env: f"itest-broken-{KINDS.index(batch[0])}",
                       settings.KEEP.env: "0", settings.NODE_DEADLINE.env: "120"})
    status = stack.wait_exit("researcher", timeout=180)
    researcher = stack.logs("researcher")
    assert status == Exit.NOT_READY, researcher[-3000:]
    assert time.monotonic() - started < FAIL_WITHIN_S
    output = researcher
    for c, kind in broken.items():
        node, expected = node_service(c.id), BROKEN[kind][1]
        assert stack.wait_exit(node, timeout=60) == Exit.NOT_READY
        logs = stack.logs(node)
        output += logs
        unhealthy = [line for line in logs.splitlines() if "UNHEALTHY: " in line]
        assert len(unhealthy) == 1 and expected in unhealthy[0], (kind, logs[-2000:])
        assert "Traceback" not in logs, logs[-3000:]
        assert f"{node} ({c.name}) cannot serve: " in researcher and expected in researcher, \
            (kind, researcher[-2000:])
    assert f"see `docker compose logs {' '.join(node_service(c.id) for c in broken)}`" \
        in researcher
    for c in sound:
        assert stack.wait_exit(node_service(c.id), timeout=60) == 0
        output += stack.logs(node_service(c.id))
        assert volume_digest(centres.volume(c)) == before[c.id]

    ids = centres.ids()
    assert RAW not in output and not [i for i in ids if i in output]
    states = [f"{n}-state" for n in nodes]
    assert traces(stack, states, ids | {RAW}, only="logs") == []
    assert traces(stack, ["researcher-state", "results"], ids | {RAW}) == []
