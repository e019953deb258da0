"""exporters.tls.check against real certificates served by real TLS servers on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509

from exporters.tls import check, days_left, hostname_matches, normalise_target
from tests.tls_helpers import (
    DAY,
    Issued,
    make_ca,
    make_leaf,
    raw_server,
    server_context,
    tls_server,
    unused_port,
)


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_ca("inferwatch test root")


def _ca_file(root: Issued, tmp_path: Path) -> str:
    return root.write_pem(tmp_path / "ca.pem")


# --- handshakes ----------------------------------------------------------------------------------
async def test_valid_chain(root: Issued, tmp_path: Path) -> None:
    now = time.time()
    leaf = make_leaf(root, "localhost", "127.0.0.1", not_after=now + 30 * DAY)
    async with tls_server(server_context(leaf, [], tmp_path)) as port:
        result = await check(f"127.0.0.1:{port}", ca_file=_ca_file(root, tmp_path),
                             clock=lambda: now)
    assert result.ok and result.error is None
    assert result.target == f"127.0.0.1:{port}"
    assert result.ts == now
    assert result.verified is True and result.verify_error is None
    assert result.hostname_ok is True  # IP SAN
    assert result.not_after == leaf.not_after
    assert result.chain_not_after == leaf.not_after
    assert result.chain_not_after_subject == leaf.subject
    assert result.subject == "CN=localhost,O=inferwatch tests"
    assert result.issuer == root.subject == "CN=inferwatch test root,O=inferwatch tests"
    assert result.sans == ("DNS:localhost", "IP:127.0.0.1")
    assert result.tls_version == "TLSv1.3"
    assert result.cipher and result.cipher.startswith("TLS_")
    assert result.not_after is not None
    assert days_left(result.not_after, now) == pytest.approx(30, abs=1 / 86400)


async def test_valid_chain_by_dns_name_and_https_url(root: Issued, tmp_path: Path) -> None:
    leaf = make_leaf(root, "localhost")
    async with tls_server(server_context(leaf, [], tmp_path)) as port:
        result = await check(f"https://localhost:{port}/v1/models", server_name="localhost",
                             ca_file=_ca_file(root, tmp_path))
    assert result.ok and result.target == f"localhost:{port}"
    assert result.verified is True and result.hostname_ok is True


async def test_expiring_in_five_days(root: Issued, tmp_path: Path) -> None:
    now = time.time()
    leaf = make_leaf(root, "127.0.0.1", not_after=now + 5 * DAY)
    async with tls_server(server_context(leaf, [], tmp_path)) as port:
        result = await check(f"127.0.0.1:{port}", ca_file=_ca_file(root, tmp_path))
    assert result.ok and result.verified is True and result.hostname_ok is True
    assert result.not_after == leaf.not_after
    assert 4.9 < days_left(result.not_after, time.time()) < 5.1


async def test_expired(root: Issued, tmp_path: Path) -> None:
    now = time.time()
    leaf = make_leaf(root, "127.0.0.1", not_before=now - 40 * DAY, not_after=now - 2 * DAY)
    async with tls_server(server_context(leaf, [], tmp_path)) as port:
        result = await check(f"127.0.0.1:{port}", ca_file=_ca_file(root, tmp_path))
    assert result.ok and result.error is None  # the handshake completed: facts are known
    assert result.verified is False
    assert result.verify_error is not None and "expired" in result.verify_error
    assert result.not_after == leaf.not_after < now
    assert result.hostname_ok is True
    assert result.subject == leaf.subject


async def test_self_signed(tmp_path: Path) -> None:
    leaf = make_leaf(None, "127.0.0.1")
    async with tls_server(server_context(leaf, [], tmp_path)) as port:
        result = await check(f"127.0.0.1:{port}")  # system trust store
    assert result.ok
    assert result.verified is False
    assert result.verify_error is not None
    assert "self-signed" in result.verify_error or "self signed" in result.verify_error
    assert result.issuer == result.subject == leaf.subject
    assert result.hostname_ok is True
    assert result.not_after == leaf.not_after


async def test_unknown_ca(root: Issued, tmp_path: Path) -> None:
    other = make_ca("some other root")
    leaf = make_leaf(other, "127.0.0.1")
    async with tls_server(server_context(leaf, [], tmp_path)) as port:
        result = await check(f"127.0.0.1:{port}", ca_file=_ca_file(root, tmp_path))
    assert result.ok and result.verified is False
    assert result.verify_error == "unable to get local issuer certificate"


async def test_wrong_hostname_chain_still_verifies(root: Issued, tmp_path: Path) -> None:
    # verified is about the chain alone; the name is hostname_ok.
    leaf = make_leaf(root, "api.example.com", "*.api.example.com")
    async with tls_server(server_context(leaf, [], tmp_path)) as port:
        wrong = await check(f"127.0.0.1:{port}", server_name="other.example.com",
                            ca_file=_ca_file(root, tmp_path))
        right = await check(f"127.0.0.1:{port}", server_name="eu.api.example.com",
                            ca_file=_ca_file(root, tmp_path))
        by_ip = await check(f"127.0.0.1:{port}", ca_file=_ca_file(root, tmp_path))
    assert wrong.ok and wrong.verified is True and wrong.hostname_ok is False
    assert right.verified is True and right.hostname_ok is True
    assert by_ip.verified is True and by_ip.hostname_ok is False  # no IP SAN
    assert wrong.sans == ("DNS:api.example.com", "DNS:*.api.example.com")


async def test_tls12_only_server(root: Issued, tmp_path: Path) -> None:
    leaf = make_leaf(root, "127.0.0.1")
    ctx = server_context(leaf, [], tmp_path, maximum_version=ssl.TLSVersion.TLSv1_2)
    async with tls_server(ctx) as port:
        result = await check(f"127.0.0.1:{port}", ca_file=_ca_file(root, tmp_path))
    assert result.ok and result.verified is True
    assert result.tls_version == "TLSv1.2"
    assert result.cipher is not None and result.cipher.startswith("ECDHE-ECDSA-")


async def test_intermediate_expires_before_leaf(root: Issued, tmp_path: Path) -> None:
    now = time.time()
    inter = make_ca("inferwatch test intermediate", issuer=root, not_after=now + 3 * DAY)
    leaf = make_leaf(inter, "127.0.0.1", not_after=now + 60 * DAY)
    async with tls_server(server_context(leaf, [inter], tmp_path)) as port:
        result = await check(f"127.0.0.1:{port}", ca_file=_ca_file(root, tmp_path))
    assert result.ok and result.verified is True and result.hostname_ok is True
    assert result.not_after == leaf.not_after
    assert result.chain_not_after == inter.not_after
    assert result.chain_not_after < result.not_after
    assert result.chain_not_after_subject == inter.subject
    assert result.chain_not_after_subject == "CN=inferwatch test intermediate,O=inferwatch tests"
    assert result.issuer == inter.subject


async def test_expired_intermediate(root: Issued, tmp_path: Path) -> None:
    now = time.time()
    inter = make_ca("old intermediate", issuer=root, not_after=now - DAY)
    leaf = make_leaf(inter, "127.0.0.1", not_after=now + 60 * DAY)
    async with tls_server(server_context(leaf, [inter], tmp_path)) as port:
        result = await check(f"127.0.0.1:{port}", ca_file=_ca_file(root, tmp_path))
    assert result.ok and result.verified is False
    assert result.verify_error is not None and "expired" in result.verify_error
    assert result.chain_not_after == inter.not_after
    assert result.chain_not_after_subject == inter.subject
    assert result.not_after == leaf.not_after


async def test_missing_ca_file_still_reports_facts(root: Issued, tmp_path: Path) -> None:
    leaf = make_leaf(root, "127.0.0.1")
    async with tls_server(server_context(leaf, [], tmp_path)) as port:
        result = await check(f"127.0.0.1:{port}", ca_file=str(tmp_path / "missing.pem"))
    assert result.ok and result.verified is None
    assert result.verify_error is not None and "cannot load CA file" in result.verify_error
    assert result.not_after == leaf.not_after


# --- failures: ok=False with a reason ----------------------------------------------------------
async def test_connection_refused() -> None:
    port = unused_port()
    result = await check(f"127.0.0.1:{port}", timeout=2)
    assert result.ok is False
    assert result.error == "connection refused"
    assert result.target == f"127.0.0.1:{port}"
    assert result.not_after is None and result.verified is None


async def test_plain_http_port() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async with raw_server(http) as port:
        result = await check(f"127.0.0.1:{port}", timeout=2)
    assert result.ok is False
    assert result.error == "no TLS: the server answered plain HTTP"


async def test_server_closes_without_answer() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)

    async with raw_server(hang_up) as port:
        result = await check(f"127.0.0.1:{port}", timeout=2)
    assert result.ok is False
    assert result.error is not None and result.error.startswith("TLS handshake failed: ")


async def test_handshake_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with raw_server(silent) as port:
        started = time.monotonic()
        result = await check(f"127.0.0.1:{port}", timeout=0.5)
        elapsed = time.monotonic() - started
    assert result.ok is False
    assert result.error == "timeout after 0.5s"
    assert elapsed < 2


async def test_invalid_target() -> None:
    result = await check("http://example.com")
    assert result.ok is False and result.error is not None
    assert result.error.startswith("invalid target")


# --- pure helpers --------------------------------------------------------------------------------
def test_days_left() -> None:
    assert days_left(1_000_000 + 5 * 86400, 1_000_000) == 5.0
    assert days_left(1_000_000, 1_000_000 + 43200) == -0.5


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("api.example.com:8443", ("api.example.com", 8443)),
        ("api.example.com", ("api.example.com", 443)),
        ("https://api.example.com", ("api.example.com", 443)),
        ("https://API.example.com:9443/v1/models?x=1", ("api.example.com", 9443)),
        ("[::1]:8443", ("::1", 8443)),
        ("https://[2001:db8::1]/", ("2001:db8::1", 443)),
        ("10.0.0.1:443", ("10.0.0.1", 443)),
    ],
)
def test_normalise_target(target: str, expected: tuple[str, int]) -> None:
    assert normalise_target(target) == expected


@pytest.mark.parametrize("target", ["", "http://x.example", "host:notaport", "host:70000", "https://"])
def test_normalise_target_rejects(target: str) -> None:
    with pytest.raises(ValueError):
        normalise_target(target)


def _cert_with_sans(*names: x509.GeneralName) -> x509.Certificate:
    leaf = make_leaf(None, "placeholder.invalid")
    from cryptography.hazmat.primitives import hashes

    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.cert.subject).issuer_name(leaf.cert.subject)
        .public_key(leaf.key.public_key()).serial_number(1)
        .not_valid_before(leaf.cert.not_valid_before_utc)
        .not_valid_after(leaf.cert.not_valid_after_utc)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(leaf.key, hashes.SHA256())


@pytest.fixture(scope="module")
def wildcard_cert() -> x509.Certificate:
    return _cert_with_sans(
        x509.DNSName("*.example.com"), x509.DNSName("Exact.Example.org"),
        x509.DNSName("*.com"), x509.DNSName("f*.example.net"),
        x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("api.example.com", True),
        ("API.EXAMPLE.COM.", True),
        ("example.com", False),  # the wildcard needs a label
        ("a.b.example.com", False),  # and matches exactly one
        ("exact.example.org", True),
        ("other.example.org", False),
        ("anything.com", False),  # "*.com" is too broad to count
        ("foo.example.net", False),  # partial wildcards never match
        ("10.1.2.3", True),
        ("10.1.2.4", False),
        ("2001:db8::1", True),
        ("[2001:db8:0::1]", True),
    ],
)
def test_hostname_matches(wildcard_cert: x509.Certificate, name: str, ok: bool) -> None:
    assert hostname_matches(wildcard_cert, name) is ok


def test_hostname_ignores_common_name() -> None:
    cert = _cert_with_sans()  # no SAN extension; CN "placeholder.invalid"
    assert hostname_matches(cert, "placeholder.invalid") is False


def test_ip_name_does_not_match_dns_san() -> None:
    cert = _cert_with_sans(x509.DNSName("127.0.0.1"))
    assert hostname_matches(cert, "127.0.0.1") is False


def test_presented_chain_public_api_and_leaf_fallback() -> None:
    from exporters.tls import _presented_chain

    class Public:  # Python 3.13+: SSLObject.get_unverified_chain() returns DER bytes
        def get_unverified_chain(self) -> list[bytes]:
            return [b"leaf", b"intermediate"]

    class LeafOnly:  # neither API: getpeercert(binary_form=True) gives the leaf
        def getpeercert(self, binary_form: bool = False) -> bytes:
            return b"leaf"

    assert _presented_chain(Public()) == (b"leaf", b"intermediate")  # type: ignore[arg-type]
    assert _presented_chain(LeafOnly()) == (b"leaf",)  # type: ignore[arg-type]
