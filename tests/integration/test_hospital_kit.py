"""A hospital kit on one host: the researcher's kit and two sites' kits as three compose
projects, whose networks reach the researcher only through its published port. The sites
pin the researcher's certificate: with the right fingerprint the run finishes; with a wrong
one the node stops (NOT_READY) before Fed-BioMed's client starts, and never connects.

FEDJOURNEY_KIT_ADDRESS sets the address the sites dial (default host-gateway: the engine's
bridge address, where a published port answers containers of other networks through
Docker's userland proxy); an engine whose firewall drops that traffic needs the host's own
IP address there."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pytest_docker.plugin import get_docker_ip, get_docker_services

from fedjourney import contract, records, settings
from fedjourney.cli import main
from fedjourney.exits import Exit
from fedjourney.host import kit
from fedjourney.node import pinning
from tests.integration.stack import Stack, compose_command, small_federation

PROJECT = f"fjkit{os.getpid()}"
RUN_ID = f"itest-kit-{os.getpid()}"
WRONG = "0" * 64
ADDRESS = settings.KIT_ADDRESS.raw()  # host-gateway unless set


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        port: int = sock.getsockname()[1]
        return port


def _two_centre_federation(folder: Path) -> Path:
    """small_federation's config (2 rounds of 1 epoch) without centre 2."""
    folder.mkdir(parents=True, exist_ok=True)
    config, _ = small_federation(folder, rounds=2, epochs=1)
    raw = yaml.safe_load(config.read_text())
    raw["centres"] = [c for c in raw["centres"] if c["id"] != 2]
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def _kit(config: Path, out: Path, *args: str) -> Path:
    assert main(["compose", "--config", str(config), "--kit", *args, "--write", str(out)]) == 0
    return out


@contextlib.contextmanager
def _project(compose_file: Path, project: str) -> Iterator[Stack]:
    """A compose project that the caller starts, brought down with `down -v` whatever
    happens (the site's required variables must still be set then: compose reads them)."""
    with get_docker_services(compose_command(), str(compose_file), project, [], ["down -v"]):
        yield Stack(compose_file, project)


@pytest.fixture
def kits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The researcher's kit and the kits of sites 0 and 1, each in its own folder, and the
    environment every project of this test reads."""
    config = _two_centre_federation(tmp_path / "federation")
    for name in (settings.EXPERIMENT.env, settings.RESUME.env):
        monkeypatch.delenv(name, raising=False)
    # Other integration tests set these for the session's stack: this test's own values.
    monkeypatch.setenv(settings.RUN_ID.env, RUN_ID)
    monkeypatch.setenv(settings.KEEP.env, "0")
    monkeypatch.setenv(settings.NODE_DEADLINE.env, "300")
    monkeypatch.setenv(settings.RESEARCHER_PORT.env, str(_free_port()))
    monkeypatch.setenv(settings.RESEARCHER_ADDRESS.env, ADDRESS)
    # Until the researcher's is known: any value lets compose read the sites' files.
    monkeypatch.setenv(settings.RESEARCHER_FINGERPRINT.env, WRONG)
    return {"researcher": _kit(config, tmp_path / "researcher" / "docker-compose.yml",
                               "researcher"),
            **{f"site-{i}": _kit(config, tmp_path / f"site-{i}" / "docker-compose.yml",
                                 "site", "--centre", str(i)) for i in (0, 1)}}


def test_compose_refuses_a_site_without_its_settings(kits: dict[str, Path]) -> None:
    stack = Stack(kits["site-0"], f"{PROJECT}cfg")
    env = {k: v for k, v in os.environ.items() if k not in (
        settings.RESEARCHER_ADDRESS.env, settings.RESEARCHER_FINGERPRINT.env)}
    done = subprocess.run([*stack.base, "config"], capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    assert done.returncode != 0
    assert kit.ADDRESS_MISSING in done.stdout + done.stderr or \
        kit.FINGERPRINT_MISSING in done.stdout + done.stderr, done.stderr
    env[settings.RESEARCHER_ADDRESS.env] = ADDRESS
    done = subprocess.run([*stack.base, "config"], capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    assert done.returncode != 0 and kit.FINGERPRINT_MISSING in done.stdout + done.stderr


def test_sites_pinning_the_researchers_certificate_finish_a_run(
        kits: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(os.environ[settings.RESEARCHER_PORT.env])
    with contextlib.ExitStack() as projects:
        researcher = projects.enter_context(_project(kits["researcher"], f"{PROJECT}res"))
        researcher.compose("up", "-d")
        # What the sites see on the network, and what the researcher reads from its own
        # certificate file: the two sides of the out-of-band comparison.
        seen = pinning.presented(get_docker_ip(), port, deadline=180)
        assert seen is not None, researcher.logs("researcher")[-3000:]
        shown = subprocess.run([sys.executable, "-m", "fedjourney.cli", "kit-fingerprint",
                                f"{get_docker_ip()}:{port}"], capture_output=True,
                               text=True, timeout=60, check=False)
        assert shown.returncode == 0 and shown.stdout.strip() == seen, shown.stderr
        own = researcher.exec("researcher", "fedjourney", "kit-fingerprint", "--pem",
                              str(contract.RESEARCHER_CERTIFICATE))
        assert own.returncode == 0 and own.stdout.strip() == seen, own.stdout + own.stderr

        # A site pinning another certificate stops before its client starts: NOT_READY.
        with _project(kits["site-0"], f"{PROJECT}wrong") as wrong:
            wrong.compose("up", "-d", env={settings.RESEARCHER_FINGERPRINT.env: WRONG})
            status = wrong.wait_exit("node-0", timeout=300)
            logs = wrong.logs("node-0")
            assert status == Exit.NOT_READY, logs[-3000:]
            assert (f"UNHEALTHY: the researcher at researcher:{port} presents certificate "
                    f"sha256 {seen[:16]}..., not the pinned {WRONG[:16]}...; check "
                    f"{settings.RESEARCHER_FINGERPRINT.env}") in logs, logs[-3000:]
            assert "connected to the researcher" not in logs
            # A malformed fingerprint: one line at start, REFUSED.
            bad = wrong.compose("run", "--rm", "--no-deps", "-T", "-e",
                                f"{settings.RESEARCHER_FINGERPRINT.env}=not-a-fingerprint",
                                "node-0", check=False, timeout=300)
            assert bad.returncode == Exit.REFUSED, bad.stdout[-3000:] + bad.stderr[-3000:]
            assert (f"UNHEALTHY: {settings.RESEARCHER_FINGERPRINT.env}: 'not-a-fingerprint' "
                    "is not a SHA-256 fingerprint") in bad.stdout + bad.stderr
        assert "node-0" not in researcher.logs("researcher")  # it never reached the researcher

        # The two sites with the right fingerprint: the run finishes.
        monkeypatch.setenv(settings.RESEARCHER_FINGERPRINT.env, seen.upper())
        sites = {}
        for i in (0, 1):
            sites[i] = projects.enter_context(_project(kits[f"site-{i}"], f"{PROJECT}site{i}"))
            sites[i].compose("up", "-d")
        status = researcher.wait_exit("researcher", timeout=420)
        assert status == 0, researcher.logs("researcher")[-4000:] + "".join(
            site.logs(f"node-{i}")[-2000:] for i, site in sites.items())
        assert researcher.wait_exit("results", timeout=60) == 0, researcher.logs("results")
        for i, site in sites.items():
            # The node watches the published port: the researcher gone, it leaves.
            assert site.wait_exit(f"node-{i}", timeout=90) == 0, site.logs(f"node-{i}")[-3000:]
            logs = site.logs(f"node-{i}")
            assert f"the researcher's certificate is the pinned one: sha256 {seen[:16]}" in logs
            assert f"connected to the researcher at researcher:{port}: healthy" in logs

    results = kits["researcher"].parent / "results" / RUN_ID
    run = records.read_run(results)
    assert run.finished and run.rounds == 2
    fingerprints = records.read_fingerprints(results)
    assert sorted(fingerprints) == ["node-0 Massachusetts General Hospital",
                                    "node-1 CHU de Lyon"]
    rows = records.read_rows(results)
    assert {r.node for r in rows if r.final and r.validation_auc is not None} == \
        set(fingerprints)
    assert {r.round for r in rows if not r.final} == {1, 2}
