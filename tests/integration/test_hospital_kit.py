"""A hospital kit on one host: the researcher's kit and two sites' kits as three compose
projects, whose networks reach the researcher only through its gate's published port. The
gate lets through only the sites holding a certificate of the kit's authority: a client
without one, or a site whose kit another authority signed, never reaches the researcher.
The sites pin the researcher's certificate: with the right fingerprint the run finishes;
with a wrong one the node stops (NOT_READY) before Fed-BioMed's client starts, and never
connects.

FEDJOURNEY_KIT_ADDRESS sets the address the sites dial (default host-gateway: the engine's
bridge address, where a published port answers containers of other networks through
Docker's userland proxy); an engine whose firewall drops that traffic needs the host's own
IP address there."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
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
# What stunnel logs (images/gate): at the gate, a client let in and one refused; at a site's
# tunnel, the gate's refusal.
GATE_LETS_IN = "Certificate accepted at depth=0: CN={service}"
GATE_REFUSES_ANONYMOUS = "peer did not return a certificate"
GATE_REFUSES_STRANGER = "Rejected by CERT at depth=0: CN=node-0"
TUNNEL_REFUSED = "alert unknown ca"
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


def _anonymous(host: str, port: int) -> bytes:
    """What a TLS client without a certificate reads at the gate (b"": it hung up)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=30) as raw, \
                ctx.wrap_socket(raw) as tls:
            return tls.recv(64)  # TLS 1.3: the gate's verdict comes after the handshake
    except (ssl.SSLError, OSError):
        return b""


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
    researcher = _kit(config, tmp_path / "researcher" / "docker-compose.yml", "researcher")
    authority = researcher.parent / "credentials"
    # A kit of centre 0 whose certificate another authority signed, which trusts the
    # researcher's gate (its authority's certificate is no secret).
    other = _kit(config, tmp_path / "other" / "docker-compose.yml", "researcher")
    stranger = _kit(config, tmp_path / "stranger" / "docker-compose.yml", "site", "--centre",
                    "0", "--authority", str(other.parent / "credentials"))
    shutil.copy(authority / "ca.pem", stranger.parent / "credentials" / "ca.pem")
    return {"researcher": researcher, "stranger": stranger,
            **{f"site-{i}": _kit(config, tmp_path / f"site-{i}" / "docker-compose.yml",
                                 "site", "--centre", str(i), "--authority", str(authority))
               for i in (0, 1)}}


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
        researcher.wait_until(lambda: researcher.health("researcher") == "healthy", 240,
                              "the researcher")
        # What the researcher reads from its own certificate file and gives the sites out
        # of band.
        own = researcher.exec("researcher", "fedjourney", "kit-fingerprint", "--pem",
                              str(contract.RESEARCHER_CERTIFICATE))
        assert own.returncode == 0, own.stdout + own.stderr
        seen = pinning.normalise(own.stdout.strip())

        # Anyone else who reaches the published port: the gate hangs up, and says why.
        assert _anonymous(get_docker_ip(), port) == b""
        researcher.wait_until(lambda: GATE_REFUSES_ANONYMOUS in researcher.logs("gate"), 60,
                              "the gate's refusal of a client without a certificate")
        # A site whose certificate another authority signed, with the right fingerprint:
        # its tunnel is refused, its node never reaches the researcher.
        with _project(kits["stranger"], f"{PROJECT}stranger") as stranger:
            stranger.compose("up", "-d", env={settings.RESEARCHER_FINGERPRINT.env: seen})
            researcher.wait_until(lambda: GATE_REFUSES_STRANGER in researcher.logs("gate"),
                                  240, "the gate's refusal of the stranger's tunnel")
            stranger.wait_until(lambda: TUNNEL_REFUSED in stranger.logs("tunnel"), 60,
                                "the stranger's tunnel to say it was refused")
            assert "connected to the researcher" not in stranger.logs("node-0")
        assert "node-0" not in researcher.logs("researcher")

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
        # The gate leaves with the researcher: the kit's `docker compose up` returns.
        assert researcher.wait_exit("gate", timeout=60) == 0, researcher.logs("gate")[-2000:]
        assert "the researcher at researcher:50051 has left; stopping" in \
            researcher.logs("gate")
        for i, site in sites.items():
            # The node watches the published port: the researcher gone, it leaves.
            assert site.wait_exit(f"node-{i}", timeout=90) == 0, site.logs(f"node-{i}")[-3000:]
            logs = site.logs(f"node-{i}")
            assert f"the researcher's certificate is the pinned one: sha256 {seen[:16]}" in logs
            assert f"connected to the researcher at researcher:{port}: healthy" in logs
            assert GATE_LETS_IN.format(service=f"node-{i}") in researcher.logs("gate")

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
