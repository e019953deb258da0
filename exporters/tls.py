"""TLS endpoint check: one real handshake, the certificate chain's facts, never raises.

``check("api.example.com:443")`` (or ``check("https://api.example.com/v1")``) connects, completes
a TLS handshake under ``timeout`` and returns a :class:`~core.samples.CertResult`:

- ``not_after``: the leaf's expiry; ``chain_not_after`` / ``chain_not_after_subject``: the
  earliest expiry anywhere in the chain *the server presented* (an intermediate that expires
  before the leaf is a classic outage; blackbox_exporter reports only the earliest) and which
  certificate that is (RFC 4514 subject);
- ``issuer`` / ``subject`` (RFC 4514), ``sans`` (``DNS:name`` / ``IP:addr`` as in the
  certificate), the negotiated ``tls_version`` ("TLSv1.3") and ``cipher`` (OpenSSL name);
- ``verified`` / ``verify_error``: does the presented chain verify against the system trust store
  (or ``ca_file`` when given), checked by OpenSSL itself, so ``verify_error`` is OpenSSL's reason
  ("certificate has expired", "self-signed certificate", "unable to get local issuer
  certificate"). ``verified`` is about the *chain only* (trust, validity dates, signatures,
  extensions), never about the name: a valid chain served under the wrong name is
  ``verified=True, hostname_ok=False``;
- ``hostname_ok``: does the leaf cover ``server_name or host``, decided here from the leaf's SANs
  (see :func:`hostname_matches`), so it is known even when the chain does not verify.

How: a first handshake verifies (``CERT_REQUIRED``, ``check_hostname`` off, trust from ``ca_file``
or the default paths). When it succeeds, everything comes from it (one connection). When
OpenSSL rejects the chain, its reason is kept and a second handshake with verification off
collects the facts, so an expired, self-signed or untrusted certificate still reports its dates
and names. The handshake runs over memory BIOs on a plain asyncio connection, which lets the
check see the server's first raw bytes and say "the server answered plain HTTP" instead of
OpenSSL's "wrong version number". ``timeout`` bounds the whole check (both handshakes).

``ok`` is ``False`` only when no handshake completed; ``error`` then says why ("connection
refused", "timeout after 10s", "TLS handshake failed: …", "no TLS: the server answered plain
HTTP"). OpenSSL checks validity dates against the real clock; ``clock`` only stamps ``ts``.
"""

from __future__ import annotations

import _ssl
import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from core.samples import CertResult
from exporters.base import Clock, Schedule
from exporters.http import Http

__all__ = ["TlsCheck", "check", "days_left", "hostname_matches", "normalise_target", "trust", "unverified_context"]

DEFAULT_PORT = 443
_READ_CHUNK = 65536
_TLS_RECORD_TYPES = frozenset({20, 21, 22, 23, 24})  # ChangeCipherSpec … Heartbeat
_ENCODING_DER: int = getattr(_ssl, "ENCODING_DER", 2)  # format for Certificate.public_bytes()


def days_left(not_after: float, now: float) -> float:
    """Days (fractional; negative once expired) from ``now`` until ``not_after`` (Unix seconds).

    >>> days_left(86400 * 3, 86400)
    2.0
    """
    return (not_after - now) / 86400.0


class TargetError(ValueError):
    """A target that is neither ``host[:port]`` nor an ``https://`` URL."""


def normalise_target(target: str) -> tuple[str, int]:
    """``host:port`` or ``https://host[:port][/path]`` → ``(host, port)``; port defaults to 443.

    IPv6 literals are written in brackets (``[::1]:8443``) and returned without them.

    >>> normalise_target("https://api.example.com/v1")
    ('api.example.com', 443)
    >>> normalise_target("[::1]:8443")
    ('::1', 8443)
    """
    text = target.strip()
    if not text:
        raise TargetError("empty target")
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme.lower() != "https":
            raise TargetError(f"{target!r}: a TLS check needs an https:// URL or host:port")
    else:
        parts = urlsplit("//" + text)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # port out of range or not a number
        raise TargetError(f"{target!r}: {exc}") from None
    if not host:
        raise TargetError(f"{target!r}: no host")
    return host, DEFAULT_PORT if port is None else port


def _format_target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- hostname matching (RFC 6125 as browsers apply it) -------------------------------------------
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _dns_key(name: str) -> str:
    name = name.rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return name


def _dns_matches(pattern: str, host: str) -> bool:
    pattern, host = _dns_key(pattern), _dns_key(host)
    if not pattern or not host:
        return False
    if "*" not in pattern:
        return pattern == host
    # A wildcard is only the whole left-most label, with at least two labels after it, and
    # matches exactly one label ("*.example.com" covers "a.example.com", not "example.com"
    # nor "a.b.example.com"); partial wildcards ("f*.example.com") never match.
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    host_first, _, host_rest = host.partition(".")
    return bool(host_first) and host_rest == rest


def hostname_matches(cert: x509.Certificate, name: str) -> bool:
    """Does ``cert`` cover ``name``? SANs only, the way browsers and Go decide.

    An IP address matches only IP SANs; a DNS name only DNS SANs (case-insensitive, trailing dot
    ignored, one ``*`` as the whole left-most label). The subject CN is never consulted (CA/B
    Forum certificates always carry SANs; browsers ignore the CN).
    """
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    except ValueError:  # malformed extension
        return False
    addr = _ip(name.strip("[]"))
    if addr is not None:
        return any(ip == addr for ip in sans.get_values_for_type(x509.IPAddress))
    return any(_dns_matches(dns, name) for dns in sans.get_values_for_type(x509.DNSName))


# --- certificate facts -------------------------------------------------------------------------
def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    dns = [f"DNS:{name}" for name in ext.get_values_for_type(x509.DNSName)]
    ips = [f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def _not_after(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


@dataclass(frozen=True, slots=True)
class _Handshake:
    chain: tuple[bytes, ...]  # DER, leaf first, as presented
    version: str | None
    cipher: str | None


def _presented_chain(sslobj: ssl.SSLObject) -> tuple[bytes, ...]:
    """The certificates the server sent, leaf first, DER; the leaf alone where unavailable."""
    getter: Any = getattr(sslobj, "get_unverified_chain", None)  # public from Python 3.13
    if getter is None:
        getter = getattr(getattr(sslobj, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        try:
            items = getter() or []
            der = [item if isinstance(item, bytes) else item.public_bytes(_ENCODING_DER)
                   for item in items]
            if der:
                return tuple(der)
        except (AttributeError, TypeError, ValueError, ssl.SSLError):
            pass
    leaf = sslobj.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


# --- the handshake -----------------------------------------------------------------------------
class _NoTLS(Exception):
    """The server answered, but not with TLS."""


def _classify_plain(first: bytes) -> str:
    if first.startswith(b"HTTP/"):
        return "no TLS: the server answered plain HTTP"
    if first.startswith((b"SSH-", b"220 ", b"+OK", b"* OK")):
        banner = first.split(b"\r", 1)[0].decode("ascii", "replace")
        return f"no TLS: the server answered {banner!r}"
    return "no TLS: the server answered with non-TLS data"


async def _handshake(host: str, port: int, ctx: ssl.SSLContext, sni: str | None) -> _Handshake:
    """Connect, run the client handshake over memory BIOs, send close_notify and close."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=sni)
        first_read = True
        while True:
            try:
                sslobj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                if outgoing.pending:  # our alert, so the server logs why (best effort)
                    writer.write(outgoing.read())
                raise
            if outgoing.pending:
                writer.write(outgoing.read())
                await writer.drain()
            data = await reader.read(_READ_CHUNK)
            if not data:
                raise ConnectionResetError("the server closed the connection during the handshake")
            if first_read:  # a TLS server's first byte is a record type; anything else is not TLS
                first_read = False
                if data[0] not in _TLS_RECORD_TYPES:
                    raise _NoTLS(_classify_plain(data[:16]))
            incoming.write(data)
        cipher = sslobj.cipher()
        result = _Handshake(chain=_presented_chain(sslobj), version=sslobj.version(),
                            cipher=cipher[0] if cipher else None)
        try:  # polite close: send our close_notify (and the last handshake flight, if any)
            sslobj.unwrap()
        except ssl.SSLError:
            pass
        if outgoing.pending:
            writer.write(outgoing.read())
            await writer.drain()
        return result
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


def _verifying_context(ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    ctx.check_hostname = False  # the name is checked separately: hostname_ok
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def trust(ca_file: str | None) -> ssl.SSLContext | bool:
    """What an HTTP client verifies servers with: ``ca_file``'s CAs, or (True) the system store."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def unverified_context() -> ssl.SSLContext:
    """A client context that completes a handshake with any certificate (for facts, not trust)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _connect_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed: {exc.strerror or exc}"
    if isinstance(exc, ConnectionResetError) and exc.args and isinstance(exc.args[0], str):
        return f"TLS handshake failed: {exc.args[0]}"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return f"TLS handshake failed: {str(reason).replace('_', ' ').lower()}"
    if isinstance(exc, OSError):
        return f"connection failed: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


async def _collect(host: str, port: int, sni: str | None, ca_file: str | None,
                   ) -> tuple[_Handshake, bool | None, str | None]:
    """Handshake(s) → (facts, verified, verify_error). Raises connection/handshake errors."""
    try:
        verify_ctx: ssl.SSLContext | None = _verifying_context(ca_file)
        ca_problem = None
    except (OSError, ssl.SSLError) as exc:
        verify_ctx, ca_problem = None, f"cannot load CA file {ca_file!r}: {exc}"
    if verify_ctx is not None:
        try:
            return await _handshake(host, port, verify_ctx, sni), True, None
        except ssl.SSLCertVerificationError as exc:
            verify_error = exc.verify_message or exc.reason or str(exc)
        return await _handshake(host, port, unverified_context(), sni), False, verify_error
    return await _handshake(host, port, unverified_context(), sni), None, ca_problem


def _result(target: str, ts: float, hs: _Handshake, verified: bool | None,
            verify_error: str | None, name: str) -> CertResult:
    certs: list[x509.Certificate] = []
    for der in hs.chain:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue
    if not certs:
        return CertResult(target=target, ts=ts, ok=True, error="the server presented no certificate",
                          verified=verified, verify_error=verify_error, tls_version=hs.version,
                          cipher=hs.cipher)
    leaf = certs[0]
    earliest = leaf
    for cert in certs[1:]:
        if _not_after(cert) < _not_after(earliest):
            earliest = cert
    return CertResult(
        target=target, ts=ts, ok=True,
        not_after=_not_after(leaf),
        chain_not_after=_not_after(earliest),
        chain_not_after_subject=earliest.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        subject=leaf.subject.rfc4514_string(),
        sans=_sans(leaf),
        verified=verified, verify_error=verify_error,
        hostname_ok=hostname_matches(leaf, name),
        tls_version=hs.version, cipher=hs.cipher,
    )


async def check(target: str, *, server_name: str | None = None, ca_file: str | None = None,
                timeout: float = 10.0, clock: Callable[[], float] = time.time) -> CertResult:
    """Handshake with ``target`` and report its certificate chain; never raises (see module doc).

    ``server_name`` is sent as SNI and checked against the leaf (default: the target's host; an
    IP address is checked against IP SANs and sent without SNI). ``ca_file`` replaces the system
    trust store for ``verified``.
    """
    ts = clock()
    try:
        host, port = normalise_target(target)
    except TargetError as exc:
        return CertResult(target=target, ts=ts, ok=False, error=f"invalid target: {exc}")
    label = _format_target(host, port)
    name = server_name or host
    sni = None if _ip(name.strip("[]")) is not None else name
    try:
        async with asyncio.timeout(timeout):
            hs, verified, verify_error = await _collect(host, port, sni, ca_file)
    except TimeoutError:
        return CertResult(target=label, ts=ts, ok=False, error=f"timeout after {_seconds(timeout)}")
    except _NoTLS as exc:
        return CertResult(target=label, ts=ts, ok=False, error=str(exc))
    except Exception as exc:  # a check never raises; the reason is the result
        return CertResult(target=label, ts=ts, ok=False, error=_connect_error(exc))
    try:
        return _result(label, ts, hs, verified, verify_error, name)
    except Exception as exc:  # an unparsable certificate is a finding, not a crash
        return CertResult(target=label, ts=ts, ok=True, error=f"cannot read the certificate: {exc}",
                          verified=verified, verify_error=verify_error, tls_version=hs.version,
                          cipher=hs.cipher)


@dataclass(frozen=True, slots=True)
class TlsCheck:
    """The certificate-check source of one TLS endpoint (``host:port``)."""

    target: str
    timeout: float
    interval: float
    server_name: str | None = None
    ca_file: str | None = None
    schedule: Schedule = "after"

    @property
    def name(self) -> str:
        return f"tls {self.target}"

    async def collect(self, http: Http, clock: Clock = time.time) -> CertResult:
        return await check(self.target, server_name=self.server_name, ca_file=self.ca_file, timeout=self.timeout,
                           clock=clock)
