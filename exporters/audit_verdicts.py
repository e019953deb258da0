"""The deployment checklist's judgement: facts an audit gathered in, ``CheckResult``\\s out. Pure.

``exporters.audit`` does the I/O (DNS queries, TLS handshakes, HTTP requests) and hands each
group's facts here; every threshold of the checklist lives in this module, so what passes, warns
or fails is testable without a server. Each verdict carries what was observed and, when it is not
a pass, one line saying what to change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from core.audit import CheckResult
from core.samples import CertResult, ProbeResult

__all__ = [
    "BURST_GAP", "DnsFacts", "HeaderFacts", "OcspFacts", "auth_verdict", "dns_verdicts", "header_verdicts",
    "http2_verdict", "long_stream_verdict", "rate_limit_verdict", "stream_verdict", "tls_verdicts",
]

ONE_YEAR = 31_536_000
DNS_TTL_MAX = 300
DNS_SLOW_SECONDS = 0.5
CNAME_HOPS_WARN = 3
EXPIRY_WARN_DAYS = 30
EXPIRY_FAIL_DAYS = 7
#: token chunks closer together than this arrived in the same read: one burst
BURST_GAP = 0.002
#: fewer content chunks than this cannot show buffering
MIN_CHUNKS = 8
#: a stream whose largest burst holds at least this share of its chunks was buffered
BURST_SHARE = 0.5
#: … or whose bursts hold this many chunks on average (a proxy flushing full buffers)
BURST_MEAN = 4


def _seconds(v: float) -> str:
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


# --- DNS --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DnsFacts:
    """What resolving the host showed. ``error``: why no address came back (NXDOMAIN, timeout)."""

    host: str
    addresses: tuple[str, ...] = ()  # "A 10.0.0.1", "AAAA ::1"
    ttl: int | None = None  # the lowest TTL of the address records
    cnames: tuple[str, ...] = ()  # the chain, in order: targets of each CNAME
    seconds: float | None = None
    error: str | None = None


def dns_verdicts(f: DnsFacts) -> list[CheckResult]:
    """
    >>> [(c.check, c.status) for c in dns_verdicts(DnsFacts("a.test", ("A 10.0.0.1",), 3600, (), 0.01))]
    [('dns_resolves', 'pass'), ('dns_ttl', 'warn'), ('dns_cname', 'pass'), ('dns_time', 'pass')]
    """
    out: list[CheckResult] = []
    if not f.addresses:
        why = f.error or "no A or AAAA records"
        out.append(CheckResult("dns_resolves", "fail", f"{f.host}: {why}",
                               f"publish an A or AAAA record for {f.host}"))
        for name in ("dns_ttl", "dns_cname"):
            out.append(CheckResult(name, "skip", "no address records"))
    else:
        shown = ", ".join(f.addresses[:4]) + (f" (+{len(f.addresses) - 4} more)" if len(f.addresses) > 4 else "")
        out.append(CheckResult("dns_resolves", "pass", shown))
        ttl = f.ttl if f.ttl is not None else 0
        if ttl > DNS_TTL_MAX:
            out.append(CheckResult("dns_ttl", "warn", f"TTL {ttl} s",
                                   f"lower the record's TTL to {DNS_TTL_MAX} s or less so a failover reaches "
                                   "clients in minutes"))
        else:
            out.append(CheckResult("dns_ttl", "pass", f"TTL {ttl} s"))
        if not f.cnames:
            out.append(CheckResult("dns_cname", "pass", "no CNAME"))
        else:
            chain = " → ".join((f.host, *f.cnames))
            hops = len(f.cnames)
            if hops >= CNAME_HOPS_WARN:
                out.append(CheckResult("dns_cname", "warn", f"{chain} ({hops} CNAMEs)",
                                       "point the name closer to its target: every CNAME is one more lookup "
                                       "and one more place to break"))
            else:
                out.append(CheckResult("dns_cname", "pass", f"{chain} ({hops} CNAME{'s' if hops > 1 else ''})"))
    if f.seconds is None:
        out.append(CheckResult("dns_time", "skip", "not measured"))
    elif f.seconds > DNS_SLOW_SECONDS:
        out.append(CheckResult("dns_time", "warn", f"resolved in {_seconds(f.seconds)}",
                               "check the authoritative servers' latency (or the resolver's path to them)"))
    else:
        out.append(CheckResult("dns_time", "pass", f"resolved in {_seconds(f.seconds)}"))
    return out


# --- TLS ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OcspFacts:
    """What the server stapled when asked (``status_request``): ``stapled`` bytes' verdict
    ("good", "revoked", "unknown", or why it could not be read); ``responder``: the OCSP URL the
    certificate names (None: it names none, nothing to staple)."""

    stapled: bool
    cert_status: str | None = None
    responder: str | None = None
    error: str | None = None


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def tls_verdicts(cert: CertResult, now: float, tls13: bool | None, legacy: Sequence[str] | None,
                 ocsp: OcspFacts | None) -> list[CheckResult]:
    """``tls13``: did a TLS 1.3-only handshake succeed; ``legacy``: the old versions the server
    accepted ([] none; None: this machine cannot offer them)."""
    if not cert.ok:
        why = cert.error or "no TLS handshake"
        unreachable = why.startswith(("connection", "DNS lookup", "timeout"))
        fix = "check the URL, and that the endpoint is up and reachable from here" if unreachable \
            else "serve TLS on this port with a certificate for the host"
        return [CheckResult("tls_chain", "fail", why, fix),
                *(CheckResult(n, "skip", "no TLS handshake")
                  for n in ("tls_hostname", "tls_expiry", "tls13", "tls_legacy", "tls_ocsp"))]
    out: list[CheckResult] = []
    issuer = f"issued by {cert.issuer}" if cert.issuer else "issuer unknown"
    if cert.verified:
        out.append(CheckResult("tls_chain", "pass", f"trusted, {issuer}"))
    else:
        why = cert.verify_error or cert.error or "the chain does not verify"
        out.append(CheckResult("tls_chain", "fail", f"{why} ({issuer})",
                               "serve the full chain (leaf + intermediates) from a CA clients trust"))
    sans = ", ".join(cert.sans[:4]) or "no subjectAltName"
    if cert.hostname_ok:
        out.append(CheckResult("tls_hostname", "pass", f"covered by {sans}"))
    else:
        out.append(CheckResult("tls_hostname", "fail", f"not covered by {sans}",
                               "reissue the certificate with this host name in its subjectAltName"))
    ends = [t for t in (cert.not_after, cert.chain_not_after) if t is not None]
    if not ends:
        out.append(CheckResult("tls_expiry", "fail", "no expiry date readable", "serve a readable certificate"))
    else:
        end = min(ends)
        days = (end - now) / 86400.0
        which = "" if cert.chain_not_after is None or cert.not_after is None or cert.chain_not_after >= cert.not_after \
            else f" ({cert.chain_not_after_subject or 'an intermediate'} expires first)"
        seen = f"expires {_date(end)}, in {days:.0f} days{which}"
        if days < 0:
            out.append(CheckResult("tls_expiry", "fail", f"expired {_date(end)}{which}", "renew the certificate now"))
        elif days < EXPIRY_FAIL_DAYS:
            out.append(CheckResult("tls_expiry", "fail", seen, "renew the certificate now"))
        elif days < EXPIRY_WARN_DAYS:
            out.append(CheckResult("tls_expiry", "warn", seen,
                                   f"renew before the last {EXPIRY_WARN_DAYS} days (automate it: ACME)"))
        else:
            out.append(CheckResult("tls_expiry", "pass", seen))
    if tls13 is None:
        out.append(CheckResult("tls13", "skip", "not tested"))
    elif tls13:
        out.append(CheckResult("tls13", "pass", "TLS 1.3 offered"))
    else:
        out.append(CheckResult("tls13", "warn", f"TLS 1.3 refused; negotiated {cert.tls_version or '?'}",
                               "enable TLS 1.3 on the front (e.g. nginx ssl_protocols TLSv1.2 TLSv1.3)"))
    if legacy is None:
        out.append(CheckResult("tls_legacy", "skip", "this machine's OpenSSL cannot offer TLS 1.0/1.1"))
    elif legacy:
        out.append(CheckResult("tls_legacy", "fail", f"accepts {' and '.join(legacy)}",
                               "refuse TLS 1.0 and 1.1 (e.g. nginx ssl_protocols TLSv1.2 TLSv1.3)"))
    else:
        out.append(CheckResult("tls_legacy", "pass", "TLS 1.0 and 1.1 refused"))
    out.append(_ocsp_verdict(ocsp))
    return out


def _ocsp_verdict(ocsp: OcspFacts | None) -> CheckResult:
    if ocsp is None:
        return CheckResult("tls_ocsp", "skip", "not tested")
    if ocsp.error is not None and not ocsp.stapled:
        return CheckResult("tls_ocsp", "skip", f"could not ask: {ocsp.error}")
    if ocsp.stapled:
        status = ocsp.cert_status or "unreadable"
        if status == "good":
            return CheckResult("tls_ocsp", "pass", "stapled: good")
        if status == "revoked":
            return CheckResult("tls_ocsp", "fail", "stapled: REVOKED", "replace the revoked certificate now")
        return CheckResult("tls_ocsp", "warn", f"stapled: {status}",
                           "staple a current OCSP response for this certificate")
    if ocsp.responder is None:
        return CheckResult("tls_ocsp", "pass", "not stapled; the certificate names no OCSP responder")
    return CheckResult("tls_ocsp", "warn", f"not stapled (responder {ocsp.responder})",
                       "turn on OCSP stapling (e.g. nginx ssl_stapling on) so clients need not ask the CA")


# --- HTTP -------------------------------------------------------------------------------------------
def http2_verdict(https: bool, alpn: str | None, error: str | None = None) -> CheckResult:
    """
    >>> http2_verdict(True, "h2").status, http2_verdict(True, "http/1.1").status
    ('pass', 'warn')
    """
    if not https:
        return CheckResult("http2", "fail", "plain http: no TLS, so no ALPN",
                           "serve the API over https (HTTP/2 is negotiated in the TLS handshake)")
    if error is not None:
        return CheckResult("http2", "skip", f"no TLS handshake: {error}")
    if alpn == "h2":
        return CheckResult("http2", "pass", "ALPN selected h2")
    shown = f"ALPN selected {alpn}" if alpn else "no ALPN answer (HTTP/1.1)"
    return CheckResult("http2", "warn", shown, "enable HTTP/2 on the front (e.g. nginx listen 443 ssl http2)")


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """The headers of the inference endpoint's answer to an authenticated request sent with an
    ``Origin``, and of the CORS preflight (``preflight``: None when it could not be sent)."""

    https: bool
    status: int | None
    headers: Mapping[str, str]  # lower-cased names
    preflight: Mapping[str, str] | None
    origin: str
    inference: bool  # the headers come from the inference endpoint (else /v1/models)
    error: str | None = None


_MAX_AGE = re.compile(r"(?:^|;)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def _hsts(f: HeaderFacts) -> CheckResult:
    fix = f"send Strict-Transport-Security: max-age={ONE_YEAR}; includeSubDomains"
    if not f.https:
        return CheckResult("hsts", "fail", "plain http: HSTS needs https", "serve the API over https, then " + fix[0].lower() + fix[1:])
    value = f.headers.get("strict-transport-security")
    if value is None:
        return CheckResult("hsts", "fail", "no Strict-Transport-Security header", fix)
    m = _MAX_AGE.search(value)
    if m is None:
        return CheckResult("hsts", "fail", f"Strict-Transport-Security: {value[:80]} (no max-age)", fix)
    age = int(m.group(1))
    if age < ONE_YEAR:
        return CheckResult("hsts", "warn", f"max-age={age} ({age / 86400:.0f} days)", fix)
    return CheckResult("hsts", "pass", f"max-age={age} ({age / 86400:.0f} days)")


def _cors(f: HeaderFacts) -> CheckResult:
    worst: CheckResult | None = None
    for kind, headers in (("response", f.headers), ("preflight", f.preflight)):
        if headers is None:
            continue
        allow = headers.get("access-control-allow-origin")
        creds = headers.get("access-control-allow-credentials", "").strip().lower() == "true"
        if allow is None or not creds:
            continue
        if allow.strip() == "*":
            seen = f"{kind}: Access-Control-Allow-Origin: * with Allow-Credentials: true"
        elif allow.strip() == f.origin:
            seen = f"{kind}: echoes any Origin ({f.origin}) with Allow-Credentials: true"
        else:
            continue
        worst = CheckResult("cors", "fail", seen,
                            "list the allowed origins explicitly, or drop Access-Control-Allow-Credentials")
        break
    if worst is not None:
        return worst
    allow = f.headers.get("access-control-allow-origin") or (f.preflight or {}).get("access-control-allow-origin")
    if allow is None:
        return CheckResult("cors", "pass", "no CORS headers for a foreign Origin")
    return CheckResult("cors", "pass", f"Access-Control-Allow-Origin: {allow[:60]} without credentials")


def header_verdicts(f: HeaderFacts) -> list[CheckResult]:
    """HSTS, X-Content-Type-Options, Referrer-Policy, CORS and Cache-Control."""
    if f.status is None:
        why = f.error or "no answer"
        return [CheckResult(n, "fail" if n == "hsts" and not f.https else "skip", f"no HTTP answer: {why}")
                for n in ("hsts", "content_type_options", "referrer_policy", "cors", "cache_control")]
    out = [_hsts(f)]
    xcto = f.headers.get("x-content-type-options")
    if xcto is not None and xcto.split(",")[0].strip().lower() == "nosniff":  # the first value counts (Fetch)
        out.append(CheckResult("content_type_options", "pass", "nosniff"))
    else:
        out.append(CheckResult("content_type_options", "warn", f"X-Content-Type-Options: {xcto or '(absent)'}",
                               "send X-Content-Type-Options: nosniff"))
    rp = f.headers.get("referrer-policy")
    if rp and rp.strip().lower() not in ("unsafe-url",):
        out.append(CheckResult("referrer_policy", "pass", rp.strip()[:60]))
    else:
        out.append(CheckResult("referrer_policy", "warn", f"Referrer-Policy: {rp or '(absent)'}",
                               "send Referrer-Policy: no-referrer (or strict-origin-when-cross-origin)"))
    out.append(_cors(f))
    if not f.inference:
        out.append(CheckResult("cache_control", "skip", "no model to call the inference endpoint with"))
    else:
        cc = f.headers.get("cache-control")
        directives = {d.strip().split("=", 1)[0].lower() for d in (cc or "").split(",")}
        if "no-store" in directives:
            out.append(CheckResult("cache_control", "pass", f"Cache-Control: {cc}"))
        else:
            out.append(CheckResult("cache_control", "warn", f"Cache-Control: {cc or '(absent)'}",
                                   "send Cache-Control: no-store on completions so no cache keeps prompts or "
                                   "answers"))
    return out


# --- streaming --------------------------------------------------------------------------------------
def _bursts(gaps: Sequence[float]) -> list[int]:
    """Chunk counts of the runs of chunks that arrived within ``BURST_GAP`` of each other."""
    sizes = [1]
    for g in gaps:
        if g <= BURST_GAP:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


def stream_verdict(p: ProbeResult) -> CheckResult:
    """Did the tokens of a streamed completion arrive one by one, end to end?

    A proxy that buffers delivers most chunks in one read: the largest burst (chunks less than
    2 ms apart) holding half the chunks or more is the evidence.

    >>> ok = ProbeResult("a", 0.0, True, ttft_seconds=0.1, e2e_seconds=0.8, output_tokens=16, itl=(0.04,) * 15)
    >>> stream_verdict(ok).status
    'pass'
    >>> buffered = ProbeResult("a", 0.0, True, ttft_seconds=0.79, e2e_seconds=0.8, output_tokens=16,
    ...                        itl=(0.0001,) * 15)
    >>> stream_verdict(buffered).observed
    'all 16 chunks arrived in one burst 790 ms after the request ([DONE] at 800 ms)'
    """
    if not p.ok:
        return CheckResult("stream_incremental", "fail", f"streaming request failed: {p.error or p.error_kind}",
                           "make streamed completions work end to end (see the error)")
    chunks = len(p.itl) + 1 if p.ttft_seconds is not None else 0
    if chunks < MIN_CHUNKS:
        return CheckResult("stream_incremental", "warn", f"only {chunks} content chunks: too few to tell",
                           "raise the audit's stream_tokens (the model stopped early or the server sends many "
                           "tokens per chunk)")
    sizes = _bursts(p.itl)
    biggest = max(sizes)
    ttft, e2e = p.ttft_seconds or 0.0, p.e2e_seconds or 0.0
    fix = "turn response buffering off for the stream (nginx: proxy_buffering off; or send X-Accel-Buffering: no)"
    if biggest >= max(2, math.ceil(BURST_SHARE * chunks)):
        start = sum(sizes[:sizes.index(biggest)])  # chunks before the burst
        at = ttft + sum(p.itl[:start]) if start else ttft
        head = f"all {chunks} chunks" if biggest == chunks else f"{biggest} of {chunks} chunks"
        return CheckResult("stream_incremental", "fail",
                           f"{head} arrived in one burst {_seconds(at)} after the request ([DONE] at {_seconds(e2e)})",
                           fix)
    if len(sizes) * BURST_MEAN <= chunks:
        return CheckResult("stream_incremental", "fail",
                           f"{chunks} chunks arrived in {len(sizes)} bursts (largest {biggest}), first at "
                           f"{_seconds(ttft)}: something between buffers the stream", fix)
    return CheckResult("stream_incremental", "pass",
                       f"{chunks} chunks over {_seconds(max(0.0, e2e - ttft))}, first at {_seconds(ttft)}, "
                       f"largest burst {biggest}")


def long_stream_verdict(p: ProbeResult, max_tokens: int) -> CheckResult:
    """A generation of ``max_tokens`` must reach ``[DONE]``: a proxy's request timeout shorter than
    it cuts the stream."""
    got = f"{p.output_tokens} tokens" if p.output_tokens is not None else "no tokens"
    if p.ok:
        return CheckResult("stream_long", "pass", f"{got} in {_seconds(p.e2e_seconds or 0.0)}, [DONE] received")
    if p.error_kind == "stream_cut":
        gaps = sum(p.itl)
        if p.itl and p.output_tokens is not None and p.output_tokens - 1 > len(p.itl):  # a sample of the gaps
            gaps = gaps / len(p.itl) * (p.output_tokens - 1)
        elapsed = (p.ttft_seconds or 0.0) + gaps
        return CheckResult("stream_long", "fail", f"cut after {_seconds(elapsed)} ({got} of {max_tokens}, no [DONE]): "
                           f"{p.error or 'the connection closed'}",
                           "raise the proxy's or load balancer's request timeout above the longest generation")
    if p.error_kind == "timeout":
        return CheckResult("stream_long", "fail", p.error or "timed out",
                           "raise the audit's long_timeout, or find what stalls the stream")
    return CheckResult("stream_long", "fail", f"{p.error_kind}: {p.error or ''}".rstrip(": "),
                       "make long streamed completions work end to end (see the error)")


# --- rate limiting and auth ----------------------------------------------------------------------------
_RATE_HEADER = re.compile(r"^(x-)?ratelimit-|^x-rate-limit-|^ratelimit$|^ratelimit-policy$")


def rate_limit_verdict(statuses: Sequence[int | None], headers: Sequence[Mapping[str, str]]) -> CheckResult:
    """A burst's answers: ``statuses`` (None: no answer) and each answer's headers (lower-cased).

    >>> rate_limit_verdict([200] * 15 + [429] * 5, [{}] * 15 + [{"retry-after": "1"}] * 5).status
    'pass'
    >>> rate_limit_verdict([200] * 20, [{}] * 20).observed
    '20 requests: 20×200, no 429 and no rate-limit headers'
    """
    n = len(statuses)
    counts: dict[str, int] = {}
    for s in statuses:
        key = str(s) if s is not None else "no answer"
        counts[key] = counts.get(key, 0) + 1
    tally = ", ".join(f"{v}×{k}" for k, v in sorted(counts.items()))
    limited = [h for s, h in zip(statuses, headers, strict=False) if s == 429]
    rate_headers = sorted({k for h in headers for k in h if _RATE_HEADER.match(k)})
    errors = sum(1 for s in statuses if s is None or s >= 500)
    if limited:
        if any("retry-after" in h for h in limited) or rate_headers:
            extra = "Retry-After" if any("retry-after" in h for h in limited) else ", ".join(rate_headers[:3])
            return CheckResult("rate_limit", "pass", f"{n} requests: {tally}; 429 with {extra}")
        return CheckResult("rate_limit", "warn", f"{n} requests: {tally}; 429 without Retry-After",
                           "send Retry-After (or RateLimit headers) with 429 so clients back off correctly")
    if errors:
        return CheckResult("rate_limit", "fail", f"{n} requests: {tally}: the burst met errors, not 429",
                           "limit request rates in front of the engine (answer 429 with Retry-After) instead of "
                           "failing under load")
    if rate_headers:
        return CheckResult("rate_limit", "pass", f"{n} requests: {tally}; limits announced ({', '.join(rate_headers[:3])})")
    return CheckResult("rate_limit", "warn", f"{n} requests: {tally}, no 429 and no rate-limit headers",
                       "put a rate limit in front of the engine (429 with Retry-After) so one client cannot "
                       "starve the others")


def auth_verdict(status: int | None, error: str | None = None) -> CheckResult:
    """The answer to an inference request sent without credentials.

    >>> auth_verdict(401).status, auth_verdict(200).status, auth_verdict(404).status
    ('pass', 'fail', 'warn')
    """
    if status is None:
        return CheckResult("auth_required", "skip", f"no answer: {error or 'request failed'}")
    if status in (401, 403):
        return CheckResult("auth_required", "pass", f"{status} without credentials")
    if 200 <= status < 300:
        return CheckResult("auth_required", "fail", f"answered {status} to a request without credentials",
                           "require an API key (Authorization: Bearer) on the inference endpoint")
    return CheckResult("auth_required", "warn", f"answered {status} (not 401/403) without credentials",
                       "answer 401 to requests without credentials; check the URL is the inference endpoint")
