"""A hospital kit's credentials (host/credentials.py), checked by real TLS handshakes on
loopback with Python's ssl module, configured as the kit's gate configures stunnel: the
server requires a client certificate of the kit's authority, the client checks the gate's
name."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest

from fedjourney.host import credentials
from fedjourney.host.credentials import CredentialsError


def _kits(tmp_path: Path) -> tuple[Path, Path]:
    """(the researcher's credentials folder, site node-1's), from one authority."""
    gate = credentials.researcher(tmp_path / "researcher", "test federation")
    site = credentials.site(tmp_path / "site-1", gate, "node-1")
    return gate, site


def _handshake(gate: Path, client: Path | None) -> str:
    """The common name the gate's side saw on the client's certificate, or the error
    either side raised."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(gate / "cert.pem", gate / "key.pem")
    server.load_verify_locations(gate / "ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                subject = dict(x[0] for x in tls.getpeercert()["subject"])
                seen.append(subject["commonName"])
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen.append(f"refused: {exc}")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ctx = ssl.create_default_context(cafile=gate / "ca.pem")
    if client is not None:
        ctx.load_cert_chain(client / "cert.pem", client / "key.pem")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=credentials.GATE_NAME) as tls:
            tls.recv(2)  # TLS 1.3: the server's verdict on the client arrives after
    except (ssl.SSLError, OSError):
        pass
    thread.join(10)
    listener.close()
    return seen[0]


def test_the_gate_lets_in_a_site_of_its_authority_and_names_it(tmp_path: Path) -> None:
    gate, site = _kits(tmp_path)
    assert _handshake(gate, site) == "node-1"


def test_the_gate_refuses_a_client_without_a_certificate_or_of_another_authority(
        tmp_path: Path) -> None:
    gate, _ = _kits(tmp_path)
    stranger = credentials.site(tmp_path / "stranger",
                                credentials.researcher(tmp_path / "other", "other"), "node-1")
    assert _handshake(gate, None).startswith("refused")
    assert _handshake(gate, stranger).startswith("refused")


def test_the_authority_is_made_once_and_its_key_kept_private(tmp_path: Path) -> None:
    gate, site = _kits(tmp_path)
    before = {p.name: p.read_bytes() for p in gate.iterdir()}
    kept = {p.name: p.read_bytes() for p in site.iterdir()}
    # Writing the kits again keeps every certificate: the sites stay valid.
    assert credentials.researcher(tmp_path / "researcher", "test federation") == gate
    assert credentials.site(tmp_path / "site-1", gate, "node-1") == site
    assert {p.name: p.read_bytes() for p in gate.iterdir()} == before
    assert {p.name: p.read_bytes() for p in site.iterdir()} == kept
    assert sorted(before) == ["authority.key", "authority.pem", "ca.pem", "cert.pem", "key.pem"]
    assert sorted(kept) == ["ca.pem", "cert.pem", "key.pem"]
    for folder in (gate, site):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        # What a container mounts, its user (not the host's) must read; the folder guards it.
        assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE((gate / "authority.key").stat().st_mode) == 0o600
    assert not list(tmp_path.rglob(".*.partial"))


def test_a_site_of_another_centre_or_authority_gets_a_new_certificate(tmp_path: Path) -> None:
    gate, site = _kits(tmp_path)
    first = (site / "cert.pem").read_bytes()
    credentials.site(tmp_path / "site-1", gate, "node-2")  # the folder reused for node-2
    assert (site / "cert.pem").read_bytes() != first
    other = credentials.researcher(tmp_path / "other", "other")
    credentials.site(tmp_path / "site-1", other, "node-2")
    assert _handshake(gate, site).startswith("refused")  # now the other authority's
    assert (site / "ca.pem").read_bytes() == (other / "ca.pem").read_bytes()


@pytest.mark.parametrize("broken", ["missing", "garbage", "other key"])
def test_a_wrong_authority_folder_is_named(tmp_path: Path, broken: str) -> None:
    gate, _ = _kits(tmp_path)
    if broken == "missing":
        (gate / "authority.key").unlink()
        want = "authority.key: no kit authority there"
    elif broken == "garbage":
        (gate / "authority.pem").write_text("not a certificate")
        want = "are not a PEM certificate and key"
    else:
        (gate / "authority.key").write_bytes((gate / "key.pem").read_bytes())
        want = "authority.key is not the key of"
    with pytest.raises(CredentialsError, match=want) as err:
        credentials.site(tmp_path / "site-2", gate, "node-2")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "site-2").exists()
