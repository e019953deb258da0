"""The deployment-checklist audit of one inference endpoint: the I/O half (``exporters.audit_verdicts``
judges what this module gathers).

``run_audit(spec)`` walks the checklist (``core.audit.CHECKS``) against ``spec.url``, the API's base
URL (``https://api.example.com`` or ``…/v1``), and returns an ``AuditResult``; it never raises.

- **DNS** (dnspython, the system resolver or ``spec.nameserver``): A and AAAA queried at once and
  timed, the lowest TTL, the CNAME chain the answer carries. An IP address or ``localhost`` has no
  DNS to check (skip).
- **TLS** (https only): the certificate facts of ``exporters.tls.check`` (one verifying handshake,
  a second one for the facts when the chain does not verify), then one handshake each: TLS 1.3
  only; TLS 1.0 and TLS 1.1 only (offered at OpenSSL security level 0 so the *server's* answer is
  what is tested); ALPN ``h2``/``http/1.1``; ``status_request`` through pyOpenSSL (Python's ``ssl``
  cannot ask for a stapled OCSP response), whose answer is read with ``cryptography``.
- **HTTP**: one authenticated request to the inference endpoint (``max_tokens: 1``) sent with a
  foreign ``Origin``, and a CORS preflight; without a model (none given and ``/v1/models`` names
  none), ``GET /v1/models`` stands in and Cache-Control is skipped.
- **Auth**: the same inference request without ``Authorization``.
- **Streaming**: two real streamed completions through ``exporters.probe.probe`` (the probe
  exporter's own timing): ``stream_tokens`` tokens to see them arrive one by one, and
  ``long_tokens`` tokens within ``long_timeout`` to see a long generation reach ``[DONE]``.
- **Rate limiting**, last so that its 429s cannot fail the others: ``burst`` requests at once.

A check named in ``spec.skip`` (or its group: ``dns``, ``tls``, ``http``, ``streaming``,
``rate_limit``, ``auth``) is not run and shows as a skip. The API key is sent only as
``Authorization: Bearer`` and is scrubbed from every observed text.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import select
import socket
import ssl
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver
import httpx
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from core.audit import CHECKS, AuditResult, CheckResult
from core.samples import CertResult
from exporters.audit_verdicts import (
    DnsFacts,
    HeaderFacts,
    OcspFacts,
    auth_verdict,
    dns_verdicts,
    header_verdicts,
    http2_verdict,
    long_stream_verdict,
    rate_limit_verdict,
    stream_verdict,
    tls_verdicts,
)
from exporters.base import Clock, Schedule
from exporters.http import Http
from exporters.probe import api_base, endpoint_url, probe
from exporters.resolver import make_resolver
from exporters.tls import check as tls_check
from exporters.tls import trust, unverified_context

__all__ = ["AUDIT_ORIGIN", "AuditSource", "AuditSpec", "run_audit"]

#: the foreign origin the CORS check sends (``.invalid`` never resolves: RFC 2606)
AUDIT_ORIGIN = "https://inferwatch-audit.invalid"
_PROMPT = "Count from one to one hundred, one number per line."
_BODY_CAP = 1024 * 1024  # bytes of an answer's body the audit reads at most
_ERROR_CHARS = 160


@dataclass(frozen=True, slots=True)
class AuditSpec:
    """One endpoint to audit and how (config ``audits:`` entries and ``inferwatch audit`` both
    become one of these)."""

    name: str
    url: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api: Literal["chat", "completions"] = "chat"
    burst: int = 20
    stream_tokens: int = 64
    long_tokens: int = 1024
    timeout: float = 30.0
    long_timeout: float = 600.0
    nameserver: str | None = None
    ca_file: str | None = None
    skip: frozenset[str] = frozenset()
    interval: float = 3600.0


def _skipped(spec: AuditSpec, check: str) -> bool:
    return check in spec.skip or CHECKS[check][0] in spec.skip


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:_ERROR_CHARS]


# --- DNS ------------------------------------------------------------------------------------------
def _no_dns(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


async def dns_facts(host: str, nameserver: str | None, timeout: float = 5.0) -> DnsFacts:
    """A and AAAA of ``host`` queried at once, with the chain and TTLs their answers carry."""
    try:
        resolver = make_resolver(nameserver, timeout)
    except (dns.exception.DNSException, ValueError, OSError) as exc:
        return DnsFacts(host, error=f"no resolver: {_short(exc)}")
    start = time.perf_counter()
    answers = await asyncio.gather(*(resolver.resolve(host, t, raise_on_no_answer=False) for t in ("A", "AAAA")),
                                   return_exceptions=True)
    seconds = time.perf_counter() - start
    addresses: list[str] = []
    ttls: list[int] = []
    cnames: list[str] = []
    errors: list[str] = []
    for rtype, got in zip(("A", "AAAA"), answers, strict=True):
        if isinstance(got, dns.resolver.NXDOMAIN):
            errors.append("NXDOMAIN (the name does not exist)")
            continue
        if isinstance(got, dns.exception.Timeout):
            errors.append(f"no answer within {timeout:g}s")
            continue
        if isinstance(got, BaseException):
            errors.append(_short(got))
            continue
        if not cnames:
            for rrset in got.response.answer:
                if rrset.rdtype == dns.rdatatype.CNAME:
                    cnames.extend(r.target.to_text().rstrip(".") for r in rrset)
        if got.rrset is not None:
            ttls.append(int(got.rrset.ttl))
            addresses.extend(f"{rtype} {r.to_text()}" for r in got.rrset)
    error = None
    if not addresses:
        if cnames:
            error = f"the CNAME chain ends at {cnames[-1]}, which has no A or AAAA records"
        else:
            error = errors[0] if errors else "no A or AAAA records"
    return DnsFacts(host, tuple(addresses), min(ttls) if ttls else None, tuple(cnames),
                    seconds if not errors or addresses else None, error)


# --- TLS ------------------------------------------------------------------------------------------
async def _handshake(host: str, port: int, ctx: ssl.SSLContext, sni: str | None, timeout: float) -> ssl.SSLObject:
    """One handshake; returns the SSL object (closed connection) or raises."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=sni,
                                                       ssl_handshake_timeout=timeout)
    try:
        obj = writer.get_extra_info("ssl_object")
        if not isinstance(obj, ssl.SSLObject):
            raise ssl.SSLError("no TLS session")
        return obj
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _accepts(host: str, port: int, sni: str | None, version: ssl.TLSVersion, timeout: float) -> bool | None:
    """Does the server complete a handshake at exactly ``version``? None: we cannot offer it."""
    ctx = unverified_context()
    try:
        with warnings.catch_warnings():  # TLSv1/TLSv1_1 are deprecated names: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            if version < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = version
            ctx.maximum_version = version
    except (ValueError, ssl.SSLError):
        return None
    try:
        await _handshake(host, port, ctx, sni, timeout)
    except ssl.SSLError as exc:
        if "no protocols available" in str(exc).lower():
            return None
        return False
    except (OSError, TimeoutError):
        return False
    return True


async def _alpn(host: str, port: int, sni: str | None, timeout: float) -> tuple[str | None, str | None]:
    ctx = unverified_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    try:
        obj = await _handshake(host, port, ctx, sni, timeout)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        return None, _short(exc) or "handshake failed"
    return obj.selected_alpn_protocol(), None


def _responder(leaf: x509.Certificate) -> str | None:
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    for d in aia:
        if d.access_method == AuthorityInformationAccessOID.OCSP:
            return str(d.access_location.value)
    return None


def _ocsp_blocking(host: str, port: int, sni: str | None, timeout: float) -> OcspFacts:
    from OpenSSL import SSL  # pyOpenSSL: the one way to send status_request from Python

    got: list[bytes] = []

    def on_status(_conn: SSL.Connection, data: bytes, _data: object) -> bool:
        got.append(data)
        return True

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE)
    ctx.set_ocsp_client_callback(on_status)
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setblocking(False)
        conn = SSL.Connection(ctx, sock)
        if sni:
            conn.set_tlsext_host_name(sni.encode("idna"))
        conn.request_ocsp()
        conn.set_connect_state()
        poller = select.poll()  # not select(): a busy service has file descriptors above 1024
        while True:
            try:
                conn.do_handshake()
                break
            except (SSL.WantReadError, SSL.WantWriteError) as want:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timeout after {timeout:g}s") from None
                poller.register(sock, select.POLLIN if isinstance(want, SSL.WantReadError) else select.POLLOUT)
                poller.poll(left * 1000)
                poller.unregister(sock)
        peer = conn.get_peer_certificate()
        leaf = peer.to_cryptography() if peer is not None else None
        with contextlib.suppress(SSL.Error, OSError):
            conn.shutdown()
    responder = _responder(leaf) if leaf is not None else None
    data = got[0] if got else b""
    if not data:
        return OcspFacts(stapled=False, responder=responder)
    try:
        resp = ocsp.load_der_ocsp_response(data)
        if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return OcspFacts(True, resp.response_status.name.lower(), responder)
        if leaf is not None and resp.serial_number != leaf.serial_number:
            return OcspFacts(True, "for another certificate", responder)
        return OcspFacts(True, resp.certificate_status.name.lower(), responder)
    except ValueError as exc:
        return OcspFacts(True, f"unreadable ({_short(exc)})", responder)


async def _ocsp(host: str, port: int, sni: str | None, timeout: float) -> OcspFacts:
    try:
        return await asyncio.to_thread(_ocsp_blocking, host, port, sni, timeout)
    except Exception as exc:  # a check reports, it does not raise
        return OcspFacts(stapled=False, error=_short(exc))


async def _tls(spec: AuditSpec, host: str, port: int, clock: Clock) -> tuple[list[CheckResult], CheckResult]:
    """The TLS group's verdicts and the HTTP/2 (ALPN) verdict."""
    sni = None if _no_dns(host) and host.lower() != "localhost" else host
    timeout = min(spec.timeout, 10.0)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cert: CertResult = await tls_check(target, ca_file=spec.ca_file, timeout=timeout, clock=clock)
    if not cert.ok:
        return tls_verdicts(cert, clock(), None, None, None), http2_verdict(True, None, cert.error)
    tls13, v10, v11, (alpn, alpn_error), stapling = await asyncio.gather(
        _accepts(host, port, sni, ssl.TLSVersion.TLSv1_3, timeout),
        _accepts(host, port, sni, ssl.TLSVersion.TLSv1, timeout),
        _accepts(host, port, sni, ssl.TLSVersion.TLSv1_1, timeout),
        _alpn(host, port, sni, timeout),
        _ocsp(host, port, sni, timeout),
    )
    legacy: list[str] | None = [name for name, ok in (("TLS 1.0", v10), ("TLS 1.1", v11)) if ok]
    if v10 is None and v11 is None:
        legacy = None
    return (tls_verdicts(cert, clock(), tls13, legacy, stapling),
            http2_verdict(True, alpn, alpn_error))


# --- HTTP ------------------------------------------------------------------------------------------
def _models_url(url: str) -> str:
    return api_base(url) + "/models"


def _body(spec: AuditSpec, model: str, max_tokens: int) -> dict[str, object]:
    if spec.api == "chat":
        return {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": max_tokens,
                "stream": False}
    return {"model": model, "prompt": "Say hi", "max_tokens": max_tokens, "stream": False}


def _auth(spec: AuditSpec) -> dict[str, str]:
    return {"Authorization": f"Bearer {spec.api_key}"} if spec.api_key else {}


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes  # at most _BODY_CAP bytes


async def _request(client: httpx.AsyncClient, method: str, url: str, timeout: float, *,
                   json_body: dict[str, object] | None = None, headers: Mapping[str, str] | None = None) -> _Answer:
    """One request, bounded in time as a whole (a server dripping bytes cannot hold it) and in body
    size (a hostile or broken server cannot fill memory). Raises ``httpx.HTTPError`` or
    ``TimeoutError``."""
    async with asyncio.timeout(timeout):
        async with client.stream(method, url, json=json_body, headers=dict(headers or {})) as resp:
            body = bytearray()
            async for chunk in resp.aiter_raw():
                body += chunk
                if len(body) >= _BODY_CAP:
                    break
            return _Answer(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, bytes(body[:_BODY_CAP]))


async def _first_model(client: httpx.AsyncClient, spec: AuditSpec) -> str | None:
    try:
        answer = await _request(client, "GET", _models_url(spec.url), spec.timeout, headers=_auth(spec))
        data = json.loads(answer.body).get("data") if answer.status == 200 else None
    except (httpx.HTTPError, TimeoutError, ValueError, AttributeError):
        return None
    if isinstance(data, list) and data and isinstance(data[0], dict) and isinstance(data[0].get("id"), str):
        return str(data[0]["id"])
    return None


async def _headers(client: httpx.AsyncClient, spec: AuditSpec, model: str | None, https: bool) -> HeaderFacts:
    origin = {"Origin": AUDIT_ORIGIN}
    try:
        if model is not None:
            answer = await _request(client, "POST", endpoint_url(spec.url, spec.api), spec.timeout,
                                    json_body=_body(spec, model, 1), headers={**_auth(spec), **origin})
        else:
            answer = await _request(client, "GET", _models_url(spec.url), spec.timeout,
                                    headers={**_auth(spec), **origin})
    except (httpx.HTTPError, TimeoutError) as exc:
        why = f"no answer within {spec.timeout:g}s" if isinstance(exc, TimeoutError) else _short(exc)
        return HeaderFacts(https, None, {}, None, AUDIT_ORIGIN, model is not None, why)
    preflight: dict[str, str] | None
    try:
        pre = await _request(client, "OPTIONS", endpoint_url(spec.url, spec.api), spec.timeout, headers={
            **origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        preflight = pre.headers
    except (httpx.HTTPError, TimeoutError):
        preflight = None
    return HeaderFacts(https, answer.status, answer.headers, preflight, AUDIT_ORIGIN, model is not None)


async def _unauthenticated(client: httpx.AsyncClient, spec: AuditSpec, model: str | None) -> CheckResult:
    try:
        answer = await _request(client, "POST", endpoint_url(spec.url, spec.api), spec.timeout,
                                json_body=_body(spec, model or "audit", 1))
    except TimeoutError:
        return auth_verdict(None, f"no answer within {spec.timeout:g}s")
    except httpx.HTTPError as exc:
        return auth_verdict(None, _short(exc))
    return auth_verdict(answer.status)


async def _burst(spec: AuditSpec, model: str | None) -> CheckResult:
    limits = httpx.Limits(max_connections=spec.burst, max_keepalive_connections=0)
    async with httpx.AsyncClient(verify=trust(spec.ca_file), timeout=spec.timeout, limits=limits,
                                 trust_env=False) as client:
        async def one() -> tuple[int | None, dict[str, str]]:
            try:
                if model is not None:
                    answer = await _request(client, "POST", endpoint_url(spec.url, spec.api), spec.timeout,
                                            json_body=_body(spec, model, 1), headers=_auth(spec))
                else:
                    answer = await _request(client, "GET", _models_url(spec.url), spec.timeout, headers=_auth(spec))
            except (httpx.HTTPError, TimeoutError):
                return None, {}
            return answer.status, answer.headers

        got = await asyncio.gather(*(one() for _ in range(spec.burst)))
    return rate_limit_verdict([s for s, _ in got], [h for _, h in got])


async def _http(spec: AuditSpec, https: bool, clock: Clock) -> list[CheckResult]:
    out: list[CheckResult] = []
    async with httpx.AsyncClient(verify=trust(spec.ca_file), timeout=spec.timeout, follow_redirects=False,
                                 trust_env=False) as client:
        model = spec.model or await _first_model(client, spec)
        if not all(_skipped(spec, n) for n in ("hsts", "content_type_options", "referrer_policy", "cors",
                                                "cache_control")):
            out += header_verdicts(await _headers(client, spec, model, https))
        if not _skipped(spec, "auth_required"):
            out.append(await _unauthenticated(client, spec, model))
    no_model = "no model: give one (--model / model:) or serve /v1/models"
    verify = trust(spec.ca_file)
    if not _skipped(spec, "stream_incremental"):
        if model is None:
            out.append(CheckResult("stream_incremental", "skip", no_model))
        else:
            p = await probe(spec.name, spec.url, model=model, prompt=_PROMPT, max_tokens=spec.stream_tokens,
                            timeout=spec.timeout, api=spec.api, api_key=spec.api_key, verify=verify, clock=clock)
            out.append(stream_verdict(p))
    if not _skipped(spec, "stream_long"):
        if model is None:
            out.append(CheckResult("stream_long", "skip", no_model))
        else:
            p = await probe(spec.name, spec.url, model=model, prompt=_PROMPT, max_tokens=spec.long_tokens,
                            timeout=spec.long_timeout, api=spec.api, api_key=spec.api_key, verify=verify,
                            clock=clock)
            out.append(long_stream_verdict(p, spec.long_tokens))
    if not _skipped(spec, "rate_limit"):
        out.append(await _burst(spec, model))
    return out


# --- the run ---------------------------------------------------------------------------------------
async def _gather(spec: AuditSpec, clock: Clock) -> list[CheckResult]:
    parts = urlsplit(spec.url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    jobs: list[asyncio.Task[list[CheckResult]]] = []

    async def dns_group() -> list[CheckResult]:
        if _no_dns(host):
            why = "is resolved locally" if host.lower().startswith("localhost") else "is an IP address"
            return [CheckResult(n, "skip", f"{host} {why}: no DNS to check")
                    for n in ("dns_resolves", "dns_ttl", "dns_cname", "dns_time")]
        return dns_verdicts(await dns_facts(host, spec.nameserver, min(spec.timeout, 5.0)))

    async def tls_group() -> list[CheckResult]:
        if not https:
            plain = "plain http: no TLS"
            return [CheckResult("tls_chain", "fail", plain, "serve the API over https"),
                    *(CheckResult(n, "skip", plain)
                      for n in ("tls_hostname", "tls_expiry", "tls13", "tls_legacy", "tls_ocsp")),
                    http2_verdict(False, None)]
        checks, h2 = await _tls(spec, host, port, clock)
        return [*checks, h2]

    jobs.append(asyncio.create_task(dns_group()))
    jobs.append(asyncio.create_task(tls_group()))
    http = await _http(spec, https, clock)
    found = [c for j in jobs for c in await j] + http
    by_name = {c.check: c for c in found}
    out: list[CheckResult] = []
    for name in CHECKS:
        if _skipped(spec, name):
            out.append(CheckResult(name, "skip", "turned off (skip)"))
        elif name in by_name:
            c = by_name[name]
            out.append(replace(c, observed=_scrub(c.observed, spec.api_key)))
    return out


async def run_audit(spec: AuditSpec, clock: Clock = time.time) -> AuditResult:
    """Walk the checklist against ``spec.url`` once; never raises (bar cancellation)."""
    ts = clock()
    start = time.perf_counter()
    try:
        checks = await _gather(spec, clock)
    except Exception as exc:  # a bug here must not end the collector's loop: report it as a fail
        checks = [CheckResult("dns_resolves", "skip", "audit stopped"),
                  CheckResult("auth_required", "fail", f"the audit itself failed: {_scrub(_short(exc), spec.api_key)}",
                              "report this as a bug in inferwatch")]
    return AuditResult(spec.name, spec.url, ts, time.perf_counter() - start, tuple(checks))


@dataclass(frozen=True, slots=True)
class AuditSource:
    """The audit of one ``audits:`` entry, run every ``spec.interval`` (never overlapping itself)."""

    spec: AuditSpec
    schedule: Schedule = "after"

    @property
    def name(self) -> str:
        return f"audit {self.spec.name}"

    @property
    def interval(self) -> float:
        return self.spec.interval

    async def collect(self, http: Http, clock: Clock = time.time) -> AuditResult:
        return await run_audit(self.spec, clock)

