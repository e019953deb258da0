"""The deployment-checklist audit against real loopback servers set up to pass and to fail each
item: Hypercorn (HTTP/2, TLS 1.3 / TLS 1.2 only / TLS 1.0 accepted), Debian's nginx buffering or
not, a proxy with a total request timeout, a pyOpenSSL server stapling OCSP, a dnspython DNS
server serving a test zone."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.audit import AuditResult
from exporters.audit import AuditSpec, dns_facts, run_audit
from exporters.audit_verdicts import dns_verdicts
from sim.certs import DAY, Issued, make_ca, make_leaf
from tests.audit_servers import (
    KEY,
    NGINX,
    ApiApp,
    DnsServer,
    cutting_proxy,
    nginx_front,
    ocsp_response,
    serve_hypercorn,
    stapling_server,
    write_chain,
)

ALL_BUT = {"dns", "tls", "http", "streaming", "rate_limit", "auth"}


@dataclass
class Pki:
    root: Issued
    ca_file: str
    cert: tuple[str, str]  # chain and key files for localhost
    directory: Path

    def leaf(self, *sans: str, **kw: float | str) -> tuple[Issued, tuple[str, str]]:
        leaf = make_leaf(self.root, *sans, **kw)  # type: ignore[arg-type]
        return leaf, write_chain(leaf, [], self.directory)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    root = make_ca("audit test root")
    leaf = make_leaf(root, "localhost", "127.0.0.1")
    return Pki(root, root.write_pem(tmp_path / "ca.pem"), write_chain(leaf, [], tmp_path), tmp_path)


def spec(url: str, pki: Pki, *, only: set[str] | None = None, **kw: object) -> AuditSpec:
    skip = frozenset(ALL_BUT - only) if only is not None else frozenset()
    base: dict[str, object] = {"api_key": KEY, "ca_file": pki.ca_file, "stream_tokens": 32, "long_tokens": 60,
                               "timeout": 10.0, "long_timeout": 20.0, "skip": skip}
    base.update(kw)
    return AuditSpec(name="t", url=url, **base)  # type: ignore[arg-type]


def statuses(r: AuditResult) -> dict[str, str]:
    return {c.check: c.status for c in r.checks}


def observed(r: AuditResult, check: str) -> str:
    return next(c.observed for c in r.checks if c.check == check)


def fix(r: AuditResult, check: str) -> str | None:
    return next(c.fix for c in r.checks if c.check == check)


async def test_a_well_run_endpoint_passes_every_check(pki: Pki) -> None:
    with serve_hypercorn(ApiApp(), cert=pki.cert) as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki))
    got = statuses(r)
    assert {k: v for k, v in got.items() if not k.startswith("dns")} == {
        k: "pass" for k in got if not k.startswith("dns")}, [(c.check, c.observed) for c in r.checks]
    assert {got[k] for k in ("dns_resolves", "dns_ttl", "dns_cname", "dns_time")} == {"skip"}  # localhost
    assert not r.failed and r.counts() == {"pass": 16, "warn": 0, "fail": 0, "skip": 4}
    assert observed(r, "http2") == "ALPN selected h2"
    assert observed(r, "hsts") == "max-age=63072000 (730 days)"
    assert observed(r, "auth_required") == "401 without credentials"
    assert observed(r, "rate_limit").startswith("20 requests: ") and "429 with Retry-After" in observed(r, "rate_limit")
    assert "32 chunks" in observed(r, "stream_incremental") and "largest burst 1" in observed(r, "stream_incremental")
    assert observed(r, "stream_long").startswith("60 tokens in ")
    assert observed(r, "tls_legacy") == "TLS 1.0 and 1.1 refused"
    assert all(c.fix is None for c in r.checks)


async def test_a_careless_endpoint_fails_or_warns_on_each_gap(pki: Pki) -> None:
    app = ApiApp(headers={}, cors="star_credentials", key=None, rate_limit=None)
    with serve_hypercorn(app, cert=pki.cert, tls="tls12", h2=False) as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki, only={"tls", "http", "auth", "rate_limit"}))
    got = statuses(r)
    assert got["tls_chain"] == "pass" and got["tls_hostname"] == "pass" and got["tls_legacy"] == "pass"
    assert got["tls13"] == "warn" and observed(r, "tls13") == "TLS 1.3 refused; negotiated TLSv1.2"
    assert got["http2"] == "warn" and observed(r, "http2") == "ALPN selected http/1.1"
    assert got["hsts"] == "fail" and observed(r, "hsts") == "no Strict-Transport-Security header"
    assert fix(r, "hsts") == "send Strict-Transport-Security: max-age=31536000; includeSubDomains"
    assert got["content_type_options"] == "warn" and got["referrer_policy"] == "warn"
    assert got["cache_control"] == "warn" and observed(r, "cache_control") == "Cache-Control: (absent)"
    assert got["cors"] == "fail"
    assert observed(r, "cors") == "response: Access-Control-Allow-Origin: * with Allow-Credentials: true"
    assert got["rate_limit"] == "warn" and observed(r, "rate_limit") == \
        "20 requests: 20×200, no 429 and no rate-limit headers"
    assert got["auth_required"] == "fail" and observed(r, "auth_required") == \
        "answered 200 to a request without credentials"
    assert r.failed


async def test_cors_that_echoes_any_origin_with_credentials_fails_and_a_short_hsts_warns(pki: Pki) -> None:
    app = ApiApp(headers={"strict-transport-security": "max-age=86400"}, cors="reflect_credentials")
    with serve_hypercorn(app, cert=pki.cert) as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki, only={"http"}))
    assert statuses(r)["cors"] == "fail" and "echoes any Origin" in observed(r, "cors")
    assert statuses(r)["hsts"] == "warn" and observed(r, "hsts") == "max-age=86400 (1 days)"


async def test_429_without_retry_after_warns(pki: Pki) -> None:
    with serve_hypercorn(ApiApp(rate_limit=3, retry_after=False), cert=pki.cert) as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki, only={"rate_limit"}, burst=10))
    assert statuses(r)["rate_limit"] == "warn"
    assert observed(r, "rate_limit").endswith("429 without Retry-After")


async def test_a_server_accepting_tls_1_0_and_1_1_fails(pki: Pki) -> None:
    with serve_hypercorn(ApiApp(), cert=pki.cert, tls="legacy") as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki, only={"tls"}))
    assert statuses(r)["tls_legacy"] == "fail"
    assert observed(r, "tls_legacy") == "accepts TLS 1.0 and TLS 1.1"
    assert statuses(r)["tls13"] == "pass"


@pytest.mark.parametrize(("days", "status"), [(90, "pass"), (20, "warn"), (5, "fail")])
async def test_certificate_expiry(pki: Pki, days: int, status: str) -> None:
    _, cert = pki.leaf("localhost", not_after=time.time() + days * DAY)
    with serve_hypercorn(ApiApp(), cert=cert) as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki, only={"tls"}))
    assert statuses(r)["tls_expiry"] == status
    assert f"in {days - 1} days" in observed(r, "tls_expiry") or f"in {days} days" in observed(r, "tls_expiry")


async def test_untrusted_chain_and_wrong_name_fail(pki: Pki) -> None:
    _, cert = pki.leaf("other.example.test")
    with serve_hypercorn(ApiApp(), cert=cert) as port:
        wrong_name = await run_audit(spec(f"https://localhost:{port}", pki, only={"tls"}))
        untrusted = await run_audit(spec(f"https://localhost:{port}", pki, only={"tls"}, ca_file=None))
    assert statuses(wrong_name)["tls_chain"] == "pass"
    assert statuses(wrong_name)["tls_hostname"] == "fail"
    assert observed(wrong_name, "tls_hostname") == "not covered by DNS:other.example.test"
    assert statuses(untrusted)["tls_chain"] == "fail"
    assert "unable to get local issuer certificate" in observed(untrusted, "tls_chain")


async def test_plain_http_fails_tls_hsts_and_http2(pki: Pki) -> None:
    with serve_hypercorn(ApiApp()) as port:
        r = await run_audit(spec(f"http://127.0.0.1:{port}", pki, only={"tls", "http", "auth"}))
    got = statuses(r)
    assert got["tls_chain"] == "fail" and got["hsts"] == "fail" and got["http2"] == "fail"
    assert got["auth_required"] == "pass" and got["content_type_options"] == "pass"


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian package nginx-light; .ci/run installs it)")
@pytest.mark.parametrize("buffering", [True, False])
async def test_a_buffering_nginx_front_is_caught_with_the_evidence(pki: Pki, tmp_path: Path, buffering: bool) -> None:
    with serve_hypercorn(ApiApp(headers={"cache-control": "no-store"})) as upstream, \
            nginx_front(upstream, pki.cert, tmp_path / "nginx", buffering=buffering) as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki, only={"streaming", "http", "tls"},
                                 stream_tokens=64))
    got = statuses(r)
    assert got["http2"] == "pass" and got["hsts"] == "pass" and got["tls13"] == "pass"  # nginx's own
    seen = observed(r, "stream_incremental")
    if buffering:
        assert got["stream_incremental"] == "fail", seen
        assert seen.startswith("all 64 chunks arrived in one burst"), seen
        assert "proxy_buffering off" in (fix(r, "stream_incremental") or "")
    else:
        assert got["stream_incremental"] == "pass", seen
        assert seen.startswith("64 chunks over 1.") and "largest burst 1" in seen, seen
    assert got["stream_long"] == "pass"


async def test_a_proxy_timeout_shorter_than_the_generation_cuts_it(pki: Pki) -> None:
    with serve_hypercorn(ApiApp(), cert=pki.cert) as port:
        async with cutting_proxy(port, cut_after=1.0) as proxied:
            r = await run_audit(spec(f"https://localhost:{proxied}", pki, only={"streaming"}, long_tokens=150))
    assert statuses(r)["stream_incremental"] == "pass"  # 32 tokens: 0.7 s, under the cut
    assert statuses(r)["stream_long"] == "fail"
    seen = observed(r, "stream_long")
    assert seen.startswith("cut after ") and "of 150, no [DONE]" in seen, seen
    assert fix(r, "stream_long") == "raise the proxy's or load balancer's request timeout above the longest generation"


@pytest.mark.parametrize(("staple", "status", "seen"), [
    ("good", "pass", "stapled: good"),
    ("revoked", "fail", "stapled: REVOKED"),
    (None, "warn", "not stapled (responder http://ocsp.example.test/)"),
])
async def test_ocsp_stapling(pki: Pki, staple: str | None, status: str, seen: str) -> None:
    leaf, cert = pki.leaf("localhost", ocsp_url="http://ocsp.example.test/")
    der = ocsp_response(leaf, pki.root, staple) if staple in ("good", "revoked") else None  # type: ignore[arg-type]
    with stapling_server(cert, der) as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki, only={"tls"}))
    assert statuses(r)["tls_ocsp"] == status and observed(r, "tls_ocsp") == seen


async def test_dns_checks_against_a_test_zone() -> None:
    server = DnsServer()
    server.start()
    server.zone[("api.good.test.", "A")] = (60, ["127.0.0.1"])
    server.zone[("api.good.test.", "AAAA")] = (60, ["::1"])
    server.zone[("www.good.test.", "CNAME")] = (300, ["lb.good.test."])
    server.zone[("lb.good.test.", "A")] = (30, ["10.0.0.7"])
    server.zone[("slow-failover.test.", "A")] = (3600, ["10.0.0.8"])
    server.zone[("a.chain.test.", "CNAME")] = (60, ["b.chain.test."])
    server.zone[("b.chain.test.", "CNAME")] = (60, ["c.chain.test."])
    server.zone[("c.chain.test.", "CNAME")] = (60, ["d.chain.test."])
    server.zone[("d.chain.test.", "A")] = (60, ["10.0.0.9"])
    server.zone[("dangling.test.", "CNAME")] = (60, ["gone.elsewhere.test."])
    ns = server.nameserver

    async def verdicts(host: str) -> dict[str, tuple[str, str]]:
        return {c.check: (c.status, c.observed) for c in dns_verdicts(await dns_facts(host, ns))}

    good = await verdicts("api.good.test")
    assert good["dns_resolves"] == ("pass", "A 127.0.0.1, AAAA ::1")
    assert good["dns_ttl"] == ("pass", "TTL 60 s") and good["dns_cname"] == ("pass", "no CNAME")
    assert good["dns_time"][0] == "pass"
    www = await verdicts("www.good.test")
    assert www["dns_resolves"] == ("pass", "A 10.0.0.7")
    assert www["dns_cname"] == ("pass", "www.good.test → lb.good.test (1 CNAME)")
    assert (await verdicts("slow-failover.test"))["dns_ttl"] == ("warn", "TTL 3600 s")
    assert (await verdicts("a.chain.test"))["dns_cname"] == (
        "warn", "a.chain.test → b.chain.test → c.chain.test → d.chain.test (3 CNAMEs)")
    missing = await verdicts("missing.test")
    assert missing["dns_resolves"] == ("fail", "missing.test: NXDOMAIN (the name does not exist)")
    assert (await verdicts("dangling.test"))["dns_resolves"][0] == "fail"
    server.delay = 0.6
    slow = await verdicts("api.good.test")
    assert slow["dns_time"][0] == "warn" and slow["dns_time"][1].startswith("resolved in ")

    # the same through a whole audit of a URL on that name (everything else turned off)
    server.delay = 0.0
    r = await run_audit(AuditSpec("t", "https://www.good.test:8443", nameserver=ns,
                                  skip=frozenset(ALL_BUT - {"dns"})))
    assert statuses(r) == {"dns_resolves": "pass", "dns_ttl": "pass", "dns_cname": "pass", "dns_time": "pass",
                           **{c.check: "skip" for c in r.checks if not c.check.startswith("dns")}}


async def test_the_api_key_never_appears_in_results(pki: Pki) -> None:
    class Echo(ApiApp):  # a server that echoes the caller's key in its errors, as some do
        async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
                await self._send_json(send, scope, 401, {"error": {"message": f"Incorrect API key provided: {KEY}"}})
                return
            await super().__call__(scope, receive, send)

    with serve_hypercorn(Echo(), cert=pki.cert) as port:
        r = await run_audit(spec(f"https://localhost:{port}", pki, model="m"))
    text = repr(r)
    assert KEY not in text and "***" in observed(r, "stream_incremental")


async def _drip(reader, writer) -> None:  # type: ignore[no-untyped-def]
    """Answers 200 and then one byte every 0.3 s, forever."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        writer.write(b"1\r\nx\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)


async def _huge(reader, writer) -> None:  # type: ignore[no-untyped-def]
    """Answers every request with a 64 MiB body."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 67108864\r\n\r\n")
    block = b" " * 65536
    for _ in range(1024):
        writer.write(block)
        await writer.drain()


@pytest.mark.parametrize("handler", [_drip, _huge])
async def test_a_hostile_endpoint_cannot_hold_or_flood_the_audit(pki: Pki, handler: object) -> None:
    from tests.tls_helpers import raw_server

    async with raw_server(handler) as port, asyncio.timeout(60):  # every step is bounded: it never hangs
        r = await run_audit(spec(f"http://127.0.0.1:{port}", pki, timeout=1.0, long_timeout=2.0, burst=4,
                                 model="m"))
    got = statuses(r)
    assert got["hsts"] == "fail" and got["stream_incremental"] == "fail" and got["stream_long"] == "fail"
    if handler is _drip:
        assert got["auth_required"] == "skip" and observed(r, "auth_required") == "no answer: no answer within 1s"
        assert got["rate_limit"] == "fail"
