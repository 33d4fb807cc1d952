"""A hospital kit's credentials: the certificate authority `fedjourney compose --kit
researcher` creates, which signs the researcher gate's certificate and one client
certificate per site (`--kit site --authority ...`).

Fed-BioMed 6.4.1's researcher accepts any client that completes its TLS handshake (its
server's own comment: "current version does not require or check client certificate"). In a
kit, stunnel stands in front of the researcher's published port (the gate) and lets through
only the sites holding a certificate this authority signed; each site's stunnel tunnel
presents it and checks the gate's certificate in turn (images/gate). Fed-BioMed's own TLS,
with the site's pinning of the researcher's certificate (node/pinning.py), runs inside,
unchanged.

Files, in a kit's ./credentials folder (mode 0700: the host's other users cannot read it):
- the researcher's: authority.pem and authority.key (the CA: its key never leaves this
  folder, no container mounts it), and the gate's ca.pem, cert.pem, key.pem;
- a site's: ca.pem (the authority's certificate), cert.pem and key.pem (its own).
The files a container mounts are mode 0644: the container's user (uid 10001) is not the
host's, and the folder's mode, which the mount bypasses, keeps them from the host's users.
"""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedjourney.errors import FedjourneyError

FOLDER = "credentials"  # beside a kit's compose file
AUTHORITY_CERT, AUTHORITY_KEY = "authority.pem", "authority.key"
CA, CERT, KEY = "ca.pem", "cert.pem", "key.pem"  # what a gate or tunnel container mounts
GATE_NAME = "researcher-gate"  # the DNS name on the gate's certificate; each tunnel checks it
AUTHORITY_DAYS = 3650
LEAF_DAYS = 825  # the longest a browser accepts, a sane ceiling for a study's life


class CredentialsError(FedjourneyError):
    """A kit's credentials cannot be read or made; the message names the file and the fix."""


@dataclass(frozen=True)
class Authority:
    """The kit's certificate authority: its certificate and private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, federation: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        # Its own name: another kit's authority is told apart by name, not only by key.
        label = f"fedjourney kit authority {secrets.token_hex(4)}: {federation}"
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label[:64])])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=AUTHORITY_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=False, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    key_cert_sign=True, crl_sign=True, encipher_only=False,
                    decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @classmethod
    def load(cls, folder: Path) -> Authority:
        """The authority a researcher kit keeps in `folder`; CredentialsError naming what is
        missing or unreadable."""
        cert_path, key_path = folder / AUTHORITY_CERT, folder / AUTHORITY_KEY
        for path in (cert_path, key_path):
            if not path.is_file():
                raise CredentialsError(
                    f"{path}: no kit authority there; give --authority the ./{FOLDER} folder "
                    "of the researcher's kit (`fedjourney compose --kit researcher` makes it)")
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except ValueError as exc:
            raise CredentialsError(f"{folder}: the kit authority's files are not a PEM "
                                   f"certificate and key ({exc}); make the researcher's kit "
                                   "again in a new folder") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or \
                _public(key.public_key()) != _public(cert.public_key()):
            raise CredentialsError(f"{key_path} is not the key of {cert_path}")
        return cls(cert, key)

    def issue(self, name: str, server: bool) -> tuple[x509.Certificate,
                                                        ec.EllipticCurvePrivateKey]:
        """A new key and its certificate for `name` (the gate's DNS name, or a site's
        service name), signed by this authority, for a TLS server or client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        return cert, key

    def signed(self, cert: x509.Certificate) -> bool:
        """Whether this authority signed `cert`."""
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def researcher(kit_folder: Path, federation: str) -> Path:
    """The researcher kit's credentials folder: its authority (created on first use, kept
    after: the sites' certificates stay valid when the kit is written again) and the gate's
    certificate. Returns the folder."""
    folder = _folder(kit_folder)
    if (folder / AUTHORITY_CERT).exists() or (folder / AUTHORITY_KEY).exists():
        authority = Authority.load(folder)
    else:
        authority = Authority.create(federation)
        _write(folder / AUTHORITY_KEY, _key_pem(authority.key), 0o600)
        _write(folder / AUTHORITY_CERT, _cert_pem(authority.cert), 0o644)
    _leaf(authority, folder, GATE_NAME, server=True)
    return folder


def site(kit_folder: Path, authority_folder: Path, service: str) -> Path:
    """A site kit's credentials folder: the authority's certificate and the site's own,
    named after its node's service (kept when the same authority signed it). Returns the
    folder."""
    authority = Authority.load(authority_folder)
    folder = _folder(kit_folder)
    _leaf(authority, folder, service, server=False)
    return folder


def _leaf(authority: Authority, folder: Path, name: str, server: bool) -> None:
    _write(folder / CA, _cert_pem(authority.cert), 0o644)
    cert_path, key_path = folder / CERT, folder / KEY
    if cert_path.is_file() and key_path.is_file():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            cert = None
        if cert is not None and authority.signed(cert) and _names(cert) == [name]:
            return  # keep it: whoever holds it is still the same site
    cert, key = authority.issue(name, server)
    # The key first: a certificate is never beside a key that is not its own.
    _write(key_path, _key_pem(key), 0o644)
    _write(cert_path, _cert_pem(cert), 0o644)


def _public(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,  # type: ignore[no-any-return]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _names(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _folder(kit_folder: Path) -> Path:
    folder = kit_folder / FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def _write(path: Path, data: bytes, mode: int) -> None:
    """`data` at path atomically, created with `mode` (never readable by others first)."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.chmod(mode)
    tmp.replace(path)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
