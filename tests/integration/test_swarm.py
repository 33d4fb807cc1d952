"""The same images on Docker Swarm: `scripts/swarm-run` on a one-host swarm it creates
(init, labels, stack deploy, the run, stack rm, swarm leave) finishes with the results on
this host, the researcher's exit status, and nothing running or attached afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from fedjourney import records, settings
from fedjourney.config import load_federation
from tests.conftest import DEFAULT_CONFIG, ROOT

STACK = f"fjswarm{os.getpid()}"


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _swarm_state() -> str:
    return _docker("info", "--format", "{{.Swarm.LocalNodeState}}")


@pytest.fixture
def run_id() -> Iterator[str]:
    if _swarm_state() == "active":
        pytest.skip("this engine is already in a swarm; the test makes and leaves its own")
    run_id = f"itest-swarm-{os.getpid()}"
    yield run_id
    shutil.rmtree(ROOT / "results" / run_id, ignore_errors=True)
    volumes = _docker("volume", "ls", "-q", "--filter", f"label=com.docker.stack.namespace"
                      f"={STACK}").split()
    if volumes:
        _docker("volume", "rm", *volumes)
    if _swarm_state() == "active":  # the script failed to leave: do not leak it
        _docker("swarm", "leave", "--force")


def test_a_run_on_a_one_host_swarm_finishes_and_leaves_nothing_running(run_id: str) -> None:
    out = subprocess.run([str(ROOT / "scripts" / "swarm-run"), "--stack", STACK],
                         capture_output=True, text=True, timeout=900, cwd=ROOT,
                         env={**os.environ, settings.RUN_ID.env: run_id})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "creating a one-host swarm" in out.stdout
    results = ROOT / "results" / run_id
    assert records.read_run(results).finished
    centres = load_federation(DEFAULT_CONFIG).centres
    fingerprints = records.read_fingerprints(results)
    assert len(fingerprints) == len(centres)
    rows = records.read_rows(results)
    assert {r.node for r in rows if r.final and r.validation_auc is not None} == \
        set(fingerprints)
    # Nothing left running or attached: no swarm, no container, service or network of it.
    assert _swarm_state() == "inactive"
    label = f"label=com.docker.stack.namespace={STACK}"
    assert _docker("ps", "-aq", "--filter", label) == ""
    assert _docker("network", "ls", "-q", "--filter", label) == ""
    # The centres' data stays on its host, as with compose (removed by the fixture).
    volumes = set(_docker("volume", "ls", "-q", "--filter", label).split())
    assert volumes <= {f"{STACK}_{name}" for name in
                       [f"centre-{c.id}-data" for c in centres]
                       + [f"node-{c.id}-state" for c in centres]
                       + ["researcher-state", "results"]}, volumes
