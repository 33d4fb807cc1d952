"""The researcher's certificate, pinned by its SHA-256 fingerprint (a hospital kit's site).

Fed-BioMed 6.4.1's gRPC client trusts on first use: GrpcClient._connect fetches the server's
certificate with `ssl.get_server_certificate((host, port))` and makes it the only root
certificate of the channel's credentials, so gRPC then checks the TLS handshake against
exactly that certificate and the host name dialled. Whoever answers first at that address is
trusted. A site outside the swarm reaches the researcher over networks it does not control,
so it states the certificate it expects, and pin() makes that fetch refuse any other: gRPC
then only talks to the holder of the pinned certificate's key.

pin() is the node's one private touch of Fed-BioMed's client: it replaces the module
attribute `fedbiomed.transport.client.ssl` with a namespace whose get_server_certificate
checks the fingerprint and delegates to the real ssl module
(tests/integration/fedbiomed_contract.py fails if _connect stops calling it). Nothing here
imports Fed-BioMed until pin() is called: the host's `fedjourney kit-fingerprint` uses the
rest.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

from fedjourney.errors import FedjourneyError
from fedjourney.settings import RESEARCHER_FINGERPRINT, RESEARCHER_PORT

HEX = re.compile(r"^[0-9a-f]{64}$")
PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class FingerprintMismatch(Exception):
    """The researcher presented another certificate than the pinned one."""

    def __init__(self, address: str, got: str, want: str) -> None:
        self.address, self.got, self.want = address, got, want
        super().__init__(f"the researcher at {address} presents certificate sha256 "
                         f"{got[:16]}..., not the pinned {want[:16]}...; check "
                         f"{RESEARCHER_FINGERPRINT.env}")


def settings(environ: Mapping[str, str]) -> tuple[int, str | None]:
    """(the port a node dials the researcher's name at, the pinned fingerprint of its
    certificate or None) from a site's environment: the stack's port and None when
    unset. ValueError, naming the variable, when one is malformed."""
    try:
        port: int = RESEARCHER_PORT.read(environ)
    except FedjourneyError as exc:
        raise ValueError(str(exc)) from None
    pinned = RESEARCHER_FINGERPRINT.raw(environ)
    try:
        return port, normalise(pinned) if pinned else None
    except ValueError as exc:
        raise ValueError(f"{RESEARCHER_FINGERPRINT.env}: {exc}") from exc


def fingerprint(pem: str) -> str:
    """sha256 of a PEM certificate's DER, in lowercase hex (what `openssl x509 -fingerprint
    -sha256` prints, without its colons): the first certificate of the text. ValueError
    when it holds none."""
    found = PEM_BLOCK.search(pem)
    if found is None:
        raise ValueError("no PEM certificate (-----BEGIN CERTIFICATE-----) in the text")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(found.group(0))).hexdigest()


def normalise(text: str) -> str:
    """A fingerprint as 64 lowercase hex digits; colons, spaces and case are ignored.
    ValueError when it is not one."""
    value = re.sub(r"[\s:]", "", text).lower()
    if not HEX.match(value):
        raise ValueError(f"{text.strip()[:80]!r} is not a SHA-256 fingerprint: 64 hex digits "
                         "expected, colons allowed")
    return value


def fetch(host: str, port: int, timeout: float | None = None) -> str:
    """The PEM certificate the TLS server at host:port presents (not verified)."""
    if timeout is None:
        return ssl.get_server_certificate((host, port))
    return ssl.get_server_certificate((host, port), timeout=timeout)


class PinnedSsl:
    """Stands in for the ssl module in Fed-BioMed's client: get_server_certificate returns the
    certificate only when its fingerprint is the pinned one, else tells `on_mismatch` (if
    given) and raises FingerprintMismatch; everything else is the real ssl module's."""

    def __init__(self, expected: str,
                 on_mismatch: Callable[[FingerprintMismatch], None] | None = None) -> None:
        self.expected = normalise(expected)
        self.on_mismatch = on_mismatch

    def get_server_certificate(self, addr: tuple[str, int], *args: Any, **kwargs: Any
                               ) -> str:
        pem: str = ssl.get_server_certificate(addr, *args, **kwargs)
        got = fingerprint(pem)
        if got != self.expected:
            refused = FingerprintMismatch(f"{addr[0]}:{addr[1]}", got, self.expected)
            if self.on_mismatch is not None:
                self.on_mismatch(refused)
            raise refused
        return pem

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)


def pin(expected: str, on_mismatch: Callable[[FingerprintMismatch], None] | None = None
        ) -> PinnedSsl:
    """From now on, in this process, Fed-BioMed's client accepts only the researcher
    certificate whose fingerprint is `expected` (ValueError when it is not a fingerprint).
    Fed-BioMed ends its client on the exception; `on_mismatch` can say why first."""
    pinned = PinnedSsl(expected, on_mismatch)
    from fedbiomed.transport import client

    client.ssl = pinned
    return pinned


def presented(host: str, port: int, deadline: float, probe_s: float = 3.0) -> str | None:
    """The fingerprint of the certificate the TLS server at host:port presents, once it
    answers; None when it has not within `deadline` seconds. A published port accepts
    connections before the server behind it listens (and closes them): wait for a
    certificate, not for a connection."""
    until = time.monotonic() + deadline
    while True:
        try:
            return fingerprint(fetch(host, port, probe_s))
        except (OSError, ssl.SSLError, ValueError):
            if time.monotonic() >= until:
                return None
            time.sleep(1)


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """HOST[:PORT] or [IPv6]:PORT as (host, port); ValueError on a bad port."""
    host, port = text, str(default_port)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)
