"""A hospital kit: one site's compose file, the researcher's, and the certificate pinning
its node does (node/pinning.py). No Docker; the TLS servers here are on loopback."""

from __future__ import annotations

import hashlib
import importlib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedjourney import contract, settings
from fedjourney.cli import main
from fedjourney.config import Federation, load_federation
from fedjourney.host import compose, credentials, kit
from fedjourney.node import pinning
from tests.conftest import DEFAULT_CONFIG, imported_centre

# A certificate made for the test with `openssl req -x509 -newkey ec ... -subj
# /CN=researcher/O=fedjourney-test`, and what `openssl x509 -fingerprint -sha256` says of it.
CERTIFICATE = """\
-----BEGIN CERTIFICATE-----
MIIBtDCCAVugAwIBAgIUVGuF3rnemxoBCJs//NjXiyLHnQkwCgYIKoZIzj0EAwIw
LzETMBEGA1UEAwwKcmVzZWFyY2hlcjEYMBYGA1UECgwPZmVkam91cm5leS10ZXN0
MCAXDTI2MTEyODE0MjY1OFoYDzIxMjYxMTA0MTQyNjU4WjAvMRMwEQYDVQQDDApy
ZXNlYXJjaGVyMRgwFgYDVQQKDA9mZWRqb3VybmV5LXRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAARd2qMsghh4a7nwhwPpuF1eX0psjaxByn6Ue8IoWVXHAhqQ
LCp0dHuoIO5X62h5eCzYrITgfom+2fJz9Vww3gSeo1MwUTAdBgNVHQ4EFgQUTVV6
IuWtzumaGuAGJiCwBq88cYAwHwYDVR0jBBgwFoAUTVV6IuWtzumaGuAGJiCwBq88
cYAwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAlhI4NHycVc+VI
5hSvlZtxhTi2jpVBMKIF7HDLdE7vIwIgT1RqkYp7KCYsJ8lnl3nXUVkPDRmfVUrz
UhUmVoOXG5I=
-----END CERTIFICATE-----
"""
OPENSSL_SAYS = ("86:80:CF:14:AE:B3:2E:C6:19:F5:54:84:60:22:77:F8:90:C8:90:7C:A1:48:A5:B8:"
                "BE:54:1F:B6:59:78:4B:BA")
REQUIRED = re.compile(r"\$\{(?P<name>\w+):\?(?P<message>[^}]*)\}")


def _required(value: str) -> str:
    """The variable a `${NAME:?message}` value requires."""
    found = REQUIRED.fullmatch(value)
    assert found is not None, value
    return found["name"]


def _two_centres(path: Path) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"] = [c for c in raw["centres"] if c["id"] != 2]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def fed() -> Federation:
    return load_federation(DEFAULT_CONFIG)


def _site(fed: Federation, centre_id: int) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(kit.site(fed, fed.centre(str(centre_id))))
    return parsed


# ---- the site's compose file -------------------------------------------------------------
@pytest.mark.parametrize("centre_id", [0, 1, 2])
def test_a_site_runs_only_its_centre(fed: Federation, centre_id: int) -> None:
    site = _site(fed, centre_id)
    node, generator = f"node-{centre_id}", f"generator-{centre_id}"
    assert set(site["services"]) == {generator, node, "tunnel"}
    assert set(site["volumes"]) == {f"centre-{centre_id}-data", f"node-{centre_id}-state"}
    assert set(site["networks"]) == {f"centre-{centre_id}", "uplink"}
    text = kit.site(fed, fed.centre(str(centre_id)))
    for other in (c.id for c in fed.centres if c.id != centre_id):
        for name in (f"centre-{other}", f"node-{other}", f"generator-{other}"):
            assert name not in text, name
    mounts = [v for s in site["services"].values() for v in s["volumes"]]
    assert {m.split(":")[0] for m in mounts if m.startswith("./")} == {
        f"./roles/{generator}.yaml", f"./roles/{node}.yaml", "./credentials/ca.pem",
        "./credentials/cert.pem", "./credentials/key.pem"}
    assert f"centre-{centre_id}-data:/data:ro" in site["services"][node]["volumes"]
    assert f"centre-{centre_id}-data:/data" in site["services"][generator]["volumes"]
    assert site["services"][node]["depends_on"] == {
        generator: {"condition": "service_completed_successfully"}}
    assert site["services"][generator]["network_mode"] == "none"


def test_the_sites_node_dials_the_researchers_name_through_its_tunnel(fed: Federation) -> None:
    services = _site(fed, 1)["services"]
    node, tunnel = services["node-1"], services["tunnel"]
    assert "extra_hosts" not in node and node["networks"] == ["centre-1"]
    # The tunnel answers as `researcher`, the name the researcher's certificate holds...
    assert tunnel["networks"]["centre-1"] == {"aliases": [contract.RESEARCHER]}
    # ...and dials the gate's name, which its certificate holds, at the address given.
    [host] = tunnel["extra_hosts"]
    name, _, address = host.partition(":")
    assert name == credentials.GATE_NAME
    assert _required(address) == settings.RESEARCHER_ADDRESS.env
    port = "${FEDJOURNEY_RESEARCHER_PORT:-50051}"
    assert tunnel["command"] == ["fedjourney-gate", "client", port, f"{name}:{port}"]
    assert tunnel["image"] == "fedjourney/gate:latest" and "environment" not in tunnel
    assert tunnel["cap_drop"] == ["ALL"] and tunnel["read_only"] and "user" not in tunnel
    assert all(v.endswith(":ro") for v in tunnel["volumes"])
    env = node["environment"]
    assert _required(env[settings.RESEARCHER_FINGERPRINT.env]) == \
        settings.RESEARCHER_FINGERPRINT.env
    assert settings.RESEARCHER_ADDRESS.env not in env  # the tunnel's, not the node's
    assert env[settings.RESEARCHER_PORT.env] == port
    assert env[settings.CENTRE_ID.env] == "1"


def test_compose_refuses_a_site_without_its_address_and_fingerprint(fed: Federation) -> None:
    text = kit.site(fed, fed.centre("0"))
    found = {(m["name"], m["message"]) for m in REQUIRED.finditer(text)}
    assert {name for name, _ in found} == {settings.RESEARCHER_ADDRESS.env,
                                           settings.RESEARCHER_FINGERPRINT.env}
    for _, message in found:  # compose's own error: no quote, dollar or brace inside
        assert message.strip() and not set(message) & set('"${}')


def test_only_the_sites_tunnel_reaches_the_host(fed: Federation) -> None:
    site = _site(fed, 2)
    assert site["networks"]["centre-2"] == {"internal": True}
    assert site["networks"]["uplink"] in ({}, None)  # not internal: the published port
    assert site["services"]["node-2"]["networks"] == ["centre-2"]
    assert set(site["services"]["tunnel"]["networks"]) == {"centre-2", "uplink"}


def test_a_site_has_the_compose_files_services(fed: Federation) -> None:
    """Images, commands, users, mounts, scratch, health: docker-compose.yml's, so that the
    renderings cannot drift apart; the node's environment adds the site's settings."""
    composed = yaml.safe_load(compose.render(fed))["services"]
    for centre in fed.centres:
        site = _site(fed, centre.id)["services"]
        del site["tunnel"]  # the kit's own
        for name, got in site.items():
            want = composed[name]
            for key in ("image", "command", "user", "hostname", "read_only", "cap_drop",
                        "security_opt", "restart", "logging", "tmpfs", "healthcheck",
                        "network_mode"):
                assert got.get(key) == want.get(key), (name, key)
            assert got["volumes"] == [v.replace("./data/roles/", "./roles/")
                                      for v in want["volumes"]], name
            if "environment" in want:
                assert want["environment"].items() <= got["environment"].items()


def test_an_imported_centre_mounts_its_folder_in_its_site(tmp_path: Path) -> None:
    fed, source = imported_centre(tmp_path)
    generator = _site(fed, 1)["services"]["generator-1"]
    assert f"{source}:/source:ro" in generator["volumes"] and "/source" in generator["command"]


# ---- the researcher's compose file -------------------------------------------------------
def test_the_researcher_kit_publishes_its_port_through_its_gate_and_runs_no_centre(
        fed: Federation) -> None:
    parsed = yaml.safe_load(kit.researcher(fed))
    services = parsed["services"]
    assert set(services) == {"researcher", "gate", "results"}
    researcher, gate = services["researcher"], services["gate"]
    # The researcher has no port and no route out: only the gate reaches it.
    assert "ports" not in researcher and researcher["networks"] == [kit.KIT_NETWORK]
    assert gate["ports"] == ["${FEDJOURNEY_RESEARCHER_PORT:-50051}:50051"]
    assert gate["networks"] == [kit.PUBLIC_NETWORK, kit.KIT_NETWORK]
    assert gate["command"] == ["fedjourney-gate", "server", "50051", "researcher:50051"]
    assert gate["volumes"] == [f"./credentials/{name}:/run/fedjourney/credentials/{name}:ro"
                               for name in ("ca.pem", "cert.pem", "key.pem")]
    assert gate["cap_drop"] == ["ALL"] and gate["read_only"] and "user" not in gate
    mounted = [v for s in services.values() for v in s["volumes"]]
    assert not any(credentials.AUTHORITY_KEY in v for v in mounted)  # no container has it
    assert parsed["networks"][kit.PUBLIC_NETWORK] in ({}, None)
    assert parsed["networks"][kit.KIT_NETWORK] == {"internal": True}
    assert set(parsed["volumes"]) == {"researcher-state", "results"}
    assert "centre-" not in kit.researcher(fed).replace("centres", "")
    assert services["results"]["network_mode"] == "none"
    assert "depends_on" not in researcher and "depends_on" not in services["results"]
    composed = yaml.safe_load(compose.render(fed))["services"]
    for name in ("researcher", "results"):
        got = services[name]
        for key in ("image", "command", "user", "hostname", "environment", "read_only",
                    "cap_drop", "cap_add", "security_opt", "logging", "tmpfs", "healthcheck"):
            assert got.get(key) == composed[name].get(key), (name, key)
        assert got["volumes"] == [v.replace("./data/roles/", "./roles/")
                                  for v in composed[name]["volumes"]], name


def test_the_researcher_waits_for_the_kits_centres_only(tmp_path: Path) -> None:
    config = _two_centres(tmp_path / "federation.yaml")
    out = tmp_path / "researcher" / "docker-compose.yml"
    assert main(["compose", "--config", str(config), "--kit", "researcher",
                 "--write", str(out)]) == 0
    assert out.read_text() == kit.researcher(load_federation(config))
    assert sorted(p.name for p in (out.parent / "roles").iterdir()) == ["researcher.yaml"]
    view = load_federation(out.parent / "roles" / "researcher.yaml")
    assert view.view == "researcher" and [c.id for c in view.centres] == [0, 1]
    assert (out.parent / "results").is_dir()
    assert "centres 0, 1 " in out.read_text()
    made = out.parent / "credentials"
    assert sorted(p.name for p in made.iterdir()) == sorted(
        [credentials.AUTHORITY_CERT, credentials.AUTHORITY_KEY, "ca.pem", "cert.pem",
         "key.pem"])


# ---- the command line --------------------------------------------------------------------
def test_cli_writes_a_site_kit_with_its_centres_views_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    authority = _authority(tmp_path)
    out = tmp_path / "lyon" / "docker-compose.yml"
    assert main(["compose", "--config", str(DEFAULT_CONFIG), "--kit", "site", "--centre", "1",
                 "--authority", str(authority), "--write", str(out)]) == 0
    fed = load_federation(DEFAULT_CONFIG)
    assert out.read_text() == kit.site(fed, fed.centre("1"))
    roles = out.parent / "roles"
    assert sorted(p.name for p in roles.iterdir()) == ["generator-1.yaml", "node-1.yaml"]
    assert load_federation(roles / "node-1.yaml").centres == (fed.centre("1"),)
    assert not (out.parent / "results").exists()
    assert "site kit of centre 1" in capsys.readouterr().out
    assert sorted(p.name for p in (out.parent / "credentials").iterdir()) == [
        "ca.pem", "cert.pem", "key.pem"]
    # Another site's kit beside it leaves this one's views alone.
    other = out.with_name("uclh.yml")
    assert main(["compose", "--config", str(DEFAULT_CONFIG), "--kit", "site", "--centre",
                 "University College London Hospital", "--authority", str(authority),
                 "--write", str(other)]) == 0
    assert sorted(p.name for p in roles.iterdir()) == [
        "generator-1.yaml", "generator-2.yaml", "node-1.yaml", "node-2.yaml"]


def test_cli_prints_a_kit(fed: Federation, capsys: pytest.CaptureFixture[str]) -> None:
    config = ["--config", str(DEFAULT_CONFIG)]
    assert main(["compose", *config, "--kit", "site", "--centre", "0"]) == 0
    assert capsys.readouterr().out == kit.site(fed, fed.centre("0"))
    assert main(["compose", *config, "--kit", "researcher"]) == 0
    assert capsys.readouterr().out == kit.researcher(fed)


@pytest.mark.parametrize("args, error", [
    (["--kit", "site"], "--kit site needs --centre"),
    (["--kit", "researcher", "--centre", "0"], "--kit researcher takes none"),
    (["--centre", "0"], "--centre and --authority go with --kit site"),
    (["--kit", "researcher", "--swarm"], "--kit takes neither"),
    (["--kit", "researcher", "--check"], "--kit takes neither"),
    (["--kit", "researcher", "--write"], "--kit needs --write FILE"),
    (["--kit", "site", "--centre", "9"], "9"),
    (["--kit", "site", "--centre", "0", "--write", "/tmp/fj-never/kit.yml"],
     "--kit site --write needs --authority DIR"),
    (["--kit", "site", "--centre", "0", "--authority", "/tmp/fj-never", "--write",
      "/tmp/fj-never/kit.yml"], "/tmp/fj-never/authority.pem: no kit authority there"),
    (["--kit", "researcher", "--authority", "/tmp/fj-never"], "--authority goes with --kit site"),
    (["--authority", "/tmp/fj-never"], "go with --kit site"),
])
def test_cli_refuses_a_kit_it_cannot_render(args: list[str], error: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose", "--config", str(DEFAULT_CONFIG), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedjourney: error: ") and error in err and err.count("\n") == 1
    assert not Path("/tmp/fj-never").exists()  # nothing half-written


def _authority(tmp_path: Path) -> Path:
    """The credentials folder of a researcher's kit written in tmp_path/researcher."""
    out = tmp_path / "researcher" / "docker-compose.yml"
    assert main(["compose", "--config", str(DEFAULT_CONFIG), "--kit", "researcher",
                 "--write", str(out)]) == 0
    return out.parent / "credentials"


# ---- fingerprints ------------------------------------------------------------------------
def test_the_fingerprint_is_openssls() -> None:
    assert pinning.fingerprint(CERTIFICATE) == OPENSSL_SAYS.replace(":", "").lower()
    # the first certificate of a text, whatever surrounds it
    assert pinning.fingerprint(f"subject=CN=researcher\n{CERTIFICATE}\n{CERTIFICATE}") == \
        pinning.fingerprint(CERTIFICATE)
    with pytest.raises(ValueError, match="no PEM certificate"):
        pinning.fingerprint("not a certificate")


def _generated(folder: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for `researcher` and its key: with the cryptography
    package where it is installed, else the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import datetime as dt

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor openssl to make a certificate")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-subj", "/CN=researcher", "-days", "2"],
                       check=True, capture_output=True)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "researcher")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=1))
                   .not_valid_after(now + dt.timedelta(days=2))
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


def test_the_fingerprint_of_a_fresh_certificate_is_the_sha256_of_its_der(
        tmp_path: Path) -> None:
    cert, _ = _generated(tmp_path)
    pem = cert.read_text()
    der = ssl.PEM_cert_to_DER_cert(pem)
    assert pinning.fingerprint(pem) == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("text", [
    OPENSSL_SAYS, OPENSSL_SAYS.lower(), OPENSSL_SAYS.replace(":", ""),
    f"  {OPENSSL_SAYS.replace(':', '').lower()}\n", OPENSSL_SAYS.replace(":", " ")])
def test_normalise_accepts_colons_case_and_spaces(text: str) -> None:
    assert pinning.normalise(text) == OPENSSL_SAYS.replace(":", "").lower()


@pytest.mark.parametrize("text", ["", "abc", "0" * 63, "0" * 65, "g" * 64, "0" * 40,
                                  "sha256 Fingerprint=" + OPENSSL_SAYS, "0x" + "0" * 62])
def test_normalise_rejects_what_is_not_a_sha256(text: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
        pinning.normalise(text)


def test_a_sites_settings() -> None:
    want = OPENSSL_SAYS.replace(":", "").lower()
    assert pinning.settings({}) == (contract.RESEARCHER_PORT, None)  # the stack's, unchanged
    assert pinning.settings({settings.RESEARCHER_PORT.env: "",
                             settings.RESEARCHER_FINGERPRINT.env: ""}) == (50051, None)
    assert pinning.settings({settings.RESEARCHER_PORT.env: "6000",
                             settings.RESEARCHER_FINGERPRINT.env: OPENSSL_SAYS}) == (6000, want)
    with pytest.raises(ValueError, match=f"^{settings.RESEARCHER_FINGERPRINT.env}: 'nothex'"):
        pinning.settings({settings.RESEARCHER_FINGERPRINT.env: "nothex"})
    for port in ("0", "65536", "http", "-1"):
        with pytest.raises(ValueError, match=f"^{settings.RESEARCHER_PORT.env}: "):
            pinning.settings({settings.RESEARCHER_PORT.env: port})


# ---- the pinned fetch --------------------------------------------------------------------
@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The real fetch replaced: it returns CERTIFICATE and records its arguments."""
    calls: list[tuple[Any, ...]] = []

    def fake(addr: tuple[str, int], *args: Any, **kwargs: Any) -> str:
        calls.append((addr, args, kwargs))
        return CERTIFICATE

    monkeypatch.setattr(ssl, "get_server_certificate", fake)
    return calls


def test_the_pinned_fetch_returns_the_pinned_certificate(
        fetched: list[tuple[Any, ...]]) -> None:
    pinned = pinning.PinnedSsl(OPENSSL_SAYS)  # as openssl prints it
    assert pinned.get_server_certificate(("researcher", 50051)) == CERTIFICATE
    assert pinned.get_server_certificate(("researcher", 50051), timeout=3) == CERTIFICATE
    assert fetched == [(("researcher", 50051), (), {}), (("researcher", 50051), (),
                                                         {"timeout": 3})]
    # Whatever else Fed-BioMed's client reads of its ssl module is the real one's.
    assert pinned.PROTOCOL_TLS_CLIENT is ssl.PROTOCOL_TLS_CLIENT


def test_the_pinned_fetch_refuses_another_certificate(fetched: list[tuple[Any, ...]]) -> None:
    told: list[pinning.FingerprintMismatch] = []
    pinned = pinning.PinnedSsl("ab" * 32, told.append)
    with pytest.raises(pinning.FingerprintMismatch) as refused:
        pinned.get_server_certificate(("researcher", 6000))
    got = OPENSSL_SAYS.replace(":", "").lower()
    assert (refused.value.got, refused.value.want) == (got, "ab" * 32)
    assert str(refused.value) == (
        f"the researcher at researcher:6000 presents certificate sha256 {got[:16]}..., not "
        f"the pinned {'ab' * 8}...; check FEDJOURNEY_RESEARCHER_FINGERPRINT")
    assert told == [refused.value]
    with pytest.raises(ValueError):
        pinning.PinnedSsl("not a fingerprint")


def test_pin_replaces_the_ssl_module_of_fedbiomeds_client(
        monkeypatch: pytest.MonkeyPatch, fetched: list[tuple[Any, ...]]) -> None:
    """Fed-BioMed is not installed on the host: a stand-in package of the same shape."""
    client: Any = types.ModuleType("fedbiomed.transport.client")
    client.ssl = ssl
    transport: Any = types.ModuleType("fedbiomed.transport")
    transport.client = client
    package: Any = types.ModuleType("fedbiomed")
    package.transport = transport
    for name, module in (("fedbiomed", package), ("fedbiomed.transport", transport),
                         ("fedbiomed.transport.client", client)):
        monkeypatch.setitem(sys.modules, name, module)
    pinned = pinning.pin(OPENSSL_SAYS.replace(":", ""))
    assert client.ssl is pinned
    assert client.ssl.get_server_certificate(("researcher", 50051)) == CERTIFICATE
    pinning.pin("00" * 32)
    with pytest.raises(pinning.FingerprintMismatch):
        client.ssl.get_server_certificate(("researcher", 50051))
    assert ssl.get_server_certificate is not None and sys.modules["ssl"] is ssl


# ---- over loopback: the start-up check and `fedjourney kit-fingerprint` ------------------
@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """(port, fingerprint) of a TLS server on 127.0.0.1 presenting a fresh certificate."""
    cert, key = _generated(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                context.wrap_socket(conn, server_side=True).close()
            except OSError:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], pinning.fingerprint(cert.read_text())
    stop.set()
    server.close()


def test_the_certificate_presented_is_read_once_the_server_answers(
        tls_server: tuple[int, str]) -> None:
    port, want = tls_server
    assert pinning.presented("127.0.0.1", port, deadline=10) == want


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_no_certificate_before_the_deadline_is_none() -> None:
    assert pinning.presented("127.0.0.1", _free_port(), deadline=1.5, probe_s=0.5) is None


def test_a_port_that_accepts_and_closes_is_not_a_researcher() -> None:
    """What a published port does while the server behind it does not listen yet."""
    server = socket.create_server(("127.0.0.1", 0))

    def accept_and_close() -> None:
        while True:
            try:
                server.accept()[0].close()
            except OSError:
                return

    threading.Thread(target=accept_and_close, daemon=True).start()
    try:
        assert pinning.presented("127.0.0.1", server.getsockname()[1], deadline=1.5,
                                 probe_s=0.5) is None
    finally:
        server.close()


class _Story:
    """Stands in for the node's story: its lines, by level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """node/start.py, imported on the host (it loads Fed-BioMed and torch only when it
    runs), dialling loopback for the researcher's name."""
    monkeypatch.setattr(contract, "RESEARCHER", "127.0.0.1")
    yield importlib.import_module("fedjourney.node.start")
    sys.modules.pop("fedjourney.node.start", None)
    vars(sys.modules["fedjourney.node"]).pop("start", None)


def test_the_node_checks_the_pinned_certificate_before_its_client_starts(
        start: Any, tls_server: tuple[int, str]) -> None:
    port, want = tls_server
    story = _Story()
    assert start._presents_pinned(story, port, want, 10) is True
    assert story.lines == [("info", f"the researcher's certificate is the pinned one: "
                                    f"sha256 {want[:16]}")]
    story = _Story()
    assert start._presents_pinned(story, port, "0" * 64, 10) is False
    assert story.lines == [("error", f"UNHEALTHY: the researcher at 127.0.0.1:{port} presents "
                                     f"certificate sha256 {want[:16]}..., not the pinned "
                                     f"{'0' * 16}...; check FEDJOURNEY_RESEARCHER_FINGERPRINT")]


def test_the_node_stops_when_no_researcher_presents_a_certificate(start: Any) -> None:
    story, port = _Story(), _free_port()
    assert start._presents_pinned(story, port, "0" * 64, 1.5) is False
    assert story.lines == [("error", f"UNHEALTHY: no researcher at 127.0.0.1:{port} after "
                                     "2s; stopping")]


def test_cli_prints_the_fingerprint_a_researcher_presents(
        tls_server: tuple[int, str], capsys: pytest.CaptureFixture[str]) -> None:
    port, want = tls_server
    assert main(["kit-fingerprint", f"127.0.0.1:{port}"]) == 0
    out = capsys.readouterr()
    assert out.out == f"{want}\n"
    assert str(contract.RESEARCHER_CERTIFICATE) in out.err


def test_cli_prints_the_fingerprint_of_a_certificate_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pem = tmp_path / "server_certificate.pem"
    pem.write_text(CERTIFICATE)
    assert main(["kit-fingerprint", "--pem", str(pem)]) == 0
    assert capsys.readouterr().out == OPENSSL_SAYS.replace(":", "").lower() + "\n"


@pytest.mark.parametrize("args", [[], ["127.0.0.1:1", "--pem", "x.pem"], ["researcher:http"],
                                  ["--pem", "/nonexistent.pem"]])
def test_cli_kit_fingerprint_errors_are_one_line(
        args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kit-fingerprint", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedjourney: error: ") and err.count("\n") == 1


def test_cli_says_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kit-fingerprint", f"127.0.0.1:{_free_port()}", "--timeout", "2"]) == 2
    assert "no certificate from 127.0.0.1:" in capsys.readouterr().err


@pytest.mark.parametrize("text, want", [
    ("10.0.0.5:6000", ("10.0.0.5", 6000)), ("researcher", ("researcher", 50051)),
    ("[::1]:7000", ("::1", 7000)), ("[fe80::1]", ("fe80::1", 50051))])
def test_addresses(text: str, want: tuple[str, int]) -> None:
    assert pinning.parse_address(text, 50051) == want
