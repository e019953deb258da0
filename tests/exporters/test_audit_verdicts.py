"""The checklist's thresholds, without servers: what passes, warns and fails, and what each says."""

from __future__ import annotations

import pytest

from core.samples import CertResult, ProbeResult
from exporters.audit_verdicts import (
    DnsFacts,
    HeaderFacts,
    OcspFacts,
    auth_verdict,
    dns_verdicts,
    header_verdicts,
    long_stream_verdict,
    rate_limit_verdict,
    stream_verdict,
    tls_verdicts,
)

NOW = 1_800_000_000.0
DAY = 86400.0


def _headers(**h: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in h.items()}


def _by(results: list) -> dict[str, tuple[str, str]]:  # type: ignore[type-arg]
    return {r.check: (r.status, r.observed) for r in results}


@pytest.mark.parametrize(("ttl", "status"), [(300, "pass"), (301, "warn"), (30, "pass")])
def test_dns_ttl_threshold_is_300_seconds(ttl: int, status: str) -> None:
    got = _by(dns_verdicts(DnsFacts("a.test", ("A 10.0.0.1",), ttl, (), 0.01)))
    assert got["dns_ttl"] == (status, f"TTL {ttl} s")


def test_dns_without_addresses_fails_and_skips_the_rest() -> None:
    got = _by(dns_verdicts(DnsFacts("a.test", error="NXDOMAIN (the name does not exist)")))
    assert got["dns_resolves"] == ("fail", "a.test: NXDOMAIN (the name does not exist)")
    assert got["dns_ttl"][0] == got["dns_cname"][0] == got["dns_time"][0] == "skip"


def test_dns_slow_resolution_warns_above_half_a_second() -> None:
    assert _by(dns_verdicts(DnsFacts("a.test", ("A 1.2.3.4",), 60, (), 0.499)))["dns_time"] == ("pass", "resolved in 499 ms")
    assert _by(dns_verdicts(DnsFacts("a.test", ("A 1.2.3.4",), 60, (), 1.25)))["dns_time"] == ("warn", "resolved in 1.25 s")


def _cert(**kw: object) -> CertResult:
    base: dict[str, object] = {"target": "h:443", "ts": NOW, "ok": True, "not_after": NOW + 90 * DAY,
                               "chain_not_after": NOW + 900 * DAY, "issuer": "CN=R", "sans": ("DNS:h",),
                               "verified": True, "hostname_ok": True, "tls_version": "TLSv1.3"}
    base.update(kw)
    return CertResult(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("days", "status"), [(31, "pass"), (29, "warn"), (8, "warn"), (6, "fail"), (-1, "fail")])
def test_tls_expiry_warns_inside_30_days_and_fails_inside_7(days: float, status: str) -> None:
    got = _by(tls_verdicts(_cert(not_after=NOW + days * DAY), NOW, True, [], None))
    assert got["tls_expiry"][0] == status


def test_an_intermediate_expiring_first_is_named() -> None:
    got = _by(tls_verdicts(_cert(chain_not_after=NOW + 10 * DAY, chain_not_after_subject="CN=Inter"), NOW, True, [],
                           None))
    assert got["tls_expiry"][0] == "warn" and "(CN=Inter expires first)" in got["tls_expiry"][1]


def test_tls_handshake_failure_fails_the_chain_and_skips_the_rest() -> None:
    got = _by(tls_verdicts(CertResult("h:443", NOW, False, error="connection refused"), NOW, None, None, None))
    assert got["tls_chain"] == ("fail", "connection refused")
    assert {got[k][0] for k in ("tls_hostname", "tls_expiry", "tls13", "tls_legacy", "tls_ocsp")} == {"skip"}


def test_ocsp_without_a_responder_is_nothing_to_staple() -> None:
    got = _by(tls_verdicts(_cert(), NOW, True, [], OcspFacts(stapled=False)))
    assert got["tls_ocsp"] == ("pass", "not stapled; the certificate names no OCSP responder")


def _facts(headers: dict[str, str], preflight: dict[str, str] | None = None, *, https: bool = True,
           inference: bool = True) -> HeaderFacts:
    return HeaderFacts(https, 200, headers, preflight, "https://x.invalid", inference)


@pytest.mark.parametrize(("value", "status"), [
    ("max-age=31536000", "pass"), ("max-age=31535999", "warn"), ('max-age="63072000"; preload', "pass"),
    ("includeSubDomains", "fail"),
])
def test_hsts_needs_a_max_age_of_a_year(value: str, status: str) -> None:
    assert _by(header_verdicts(_facts(_headers(strict_transport_security=value))))["hsts"][0] == status


def test_cors_star_is_fine_without_credentials_and_a_preflight_counts() -> None:
    star = _by(header_verdicts(_facts({"access-control-allow-origin": "*"})))
    assert star["cors"] == ("pass", "Access-Control-Allow-Origin: * without credentials")
    pre = _by(header_verdicts(_facts({}, {"access-control-allow-origin": "https://x.invalid",
                                          "access-control-allow-credentials": "true"})))
    assert pre["cors"] == ("fail", "preflight: echoes any Origin (https://x.invalid) with Allow-Credentials: true")
    listed = _by(header_verdicts(_facts({"access-control-allow-origin": "https://app.example.com",
                                         "access-control-allow-credentials": "true"})))
    assert listed["cors"][0] == "pass"


def test_cache_control_needs_no_store_and_only_on_the_inference_endpoint() -> None:
    assert _by(header_verdicts(_facts({"cache-control": "private, no-store"})))["cache_control"][0] == "pass"
    assert _by(header_verdicts(_facts({"cache-control": "no-cache"})))["cache_control"][0] == "warn"
    assert _by(header_verdicts(_facts({}, inference=False)))["cache_control"][0] == "skip"


def _probe(ttft: float, gaps: tuple[float, ...], **kw: object) -> ProbeResult:
    return ProbeResult("a", NOW, kw.pop("ok", True), ttft_seconds=ttft,  # type: ignore[arg-type]
                       e2e_seconds=ttft + sum(gaps) + 0.001, output_tokens=len(gaps) + 1, itl=gaps, **kw)  # type: ignore[arg-type]


def test_stream_buffered_in_full_buffers_is_caught_by_the_mean_burst() -> None:
    gaps = ((0.0001,) * 20 + (0.4,)) * 3 + (0.0001,) * 4  # 68 chunks in 4 bursts: 21, 21, 21, 5
    got = stream_verdict(_probe(0.5, gaps))
    assert got.status == "fail"
    assert got.observed == "68 chunks arrived in 4 bursts (largest 21), first at 500 ms: something between buffers the stream"


def test_a_stream_too_short_to_tell_warns() -> None:
    assert stream_verdict(_probe(0.1, (0.02,) * 5)).status == "warn"


def test_a_failed_stream_fails_both_streaming_checks() -> None:
    p = ProbeResult("a", NOW, False, error_kind="http_5xx", error="HTTP 502 Bad Gateway")
    assert stream_verdict(p).status == "fail" and "HTTP 502" in stream_verdict(p).observed
    assert long_stream_verdict(p, 1024).observed == "http_5xx: HTTP 502 Bad Gateway"


def test_rate_limit_errors_under_a_burst_fail() -> None:
    got = rate_limit_verdict([200] * 12 + [503] * 8, [{}] * 20)
    assert got.status == "fail" and got.observed.startswith("20 requests: 12×200, 8×503")


def test_rate_limit_headers_alone_pass() -> None:
    got = rate_limit_verdict([200] * 20, [{"x-ratelimit-limit-requests": "100"}] * 20)
    assert got.status == "pass" and "x-ratelimit-limit-requests" in got.observed


@pytest.mark.parametrize(("status", "verdict"), [(401, "pass"), (403, "pass"), (200, "fail"), (404, "warn"),
                                                 (500, "warn"), (None, "skip")])
def test_auth(status: int | None, verdict: str) -> None:
    assert auth_verdict(status).status == verdict


def test_a_cut_long_stream_reports_when_it_was_cut_even_from_a_sample_of_its_gaps() -> None:
    p = ProbeResult("a", NOW, False, error_kind="stream_cut", error="closed before [DONE]", ttft_seconds=0.5,
                    output_tokens=601, itl=(0.05,) * 256)  # the probe keeps 256 of the 600 gaps
    got = long_stream_verdict(p, 1024)
    assert got.status == "fail"
    assert got.observed == "cut after 30.50 s (601 tokens of 1024, no [DONE]): closed before [DONE]"
