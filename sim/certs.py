"""Real X.509 certificates for the simulated fleet's TLS endpoints (the demo) and for tests.

Built with ``cryptography`` (EC P-256 keys: fast), so any validity window can be set,
intermediates included::

    root = make_ca("Test Root")
    inter = make_ca("Test Intermediate", issuer=root, not_after=now + 3 * DAY)
    leaf = make_leaf(inter, "localhost", "127.0.0.1", not_after=now + 60 * DAY)
    ctx = server_context(leaf, [inter], tmp_path)
    root.write_pem(tmp_path / "ca.pem")   # a ca_file for the client
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

DAY = 86400.0
_KEY_USAGE_CA = x509.KeyUsage(digital_signature=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                              key_cert_sign=True, crl_sign=True, encipher_only=False,
                              decipher_only=False)
_KEY_USAGE_LEAF = x509.KeyUsage(digital_signature=True, content_commitment=False,
                                key_encipherment=False, data_encipherment=False, key_agreement=False,
                                key_cert_sign=False, crl_sign=False, encipher_only=False,
                                decipher_only=False)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def not_after(self) -> float:
        """Expiry, Unix seconds (whole seconds, as X.509 stores it)."""
        return self.cert.not_valid_after_utc.timestamp()

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write_pem(self, path: Path) -> str:
        path.write_bytes(self.pem())
        return str(path)


def _time(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ts), tz=dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "inferwatch tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _build(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: Issued | None,
           not_before: float, not_after: float, *, ca: bool,
           sans: Sequence[str] = (), ocsp_url: str | None = None) -> Issued:
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_time(not_before))
        .not_valid_after(_time(not_after))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_KEY_USAGE_CA if ca else _KEY_USAGE_LEAF, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if sans:
        names: list[x509.GeneralName] = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ocsp_url is not None:  # Authority Information Access: where clients may ask about revocation
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


def make_ca(common_name: str = "inferwatch test root", *, issuer: Issued | None = None,
            not_before: float | None = None, not_after: float | None = None) -> Issued:
    """A CA certificate: self-signed root, or an intermediate when ``issuer`` is given."""
    now = time.time()
    key = ec.generate_private_key(ec.SECP256R1())
    return _build(_name(common_name), key, issuer,
                  now - DAY if not_before is None else not_before,
                  now + 3650 * DAY if not_after is None else not_after, ca=True)


def make_leaf(issuer: Issued | None, *sans: str, common_name: str | None = None,
              not_before: float | None = None, not_after: float | None = None, ocsp_url: str | None = None) -> Issued:
    """A server certificate for ``sans`` (DNS names or IP literals); self-signed without issuer;
    ``ocsp_url`` names an OCSP responder (AIA), as public CAs' certificates do."""
    now = time.time()
    key = ec.generate_private_key(ec.SECP256R1())
    cn = common_name or (sans[0] if sans else "server")
    return _build(_name(cn), key, issuer,
                  now - DAY if not_before is None else not_before,
                  now + 90 * DAY if not_after is None else not_after, ca=False, sans=sans, ocsp_url=ocsp_url)


def server_context(leaf: Issued, chain: Sequence[Issued], directory: Path, *,
                   maximum_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A server ``SSLContext`` presenting ``leaf`` followed by ``chain`` (intermediates)."""
    cert_path = directory / f"server-{leaf.cert.serial_number:x}.pem"
    key_path = directory / f"server-{leaf.cert.serial_number:x}.key"
    cert_path.write_bytes(leaf.pem() + b"".join(c.pem() for c in chain))
    key_path.write_bytes(leaf.key_pem())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    if maximum_version is not None:
        ctx.maximum_version = maximum_version
    return ctx
