"""One scrape of one backend: HTTP GET, size cap, parse, normalise. Never raises.

A failed scrape is still a result (``up=False`` with a reason an operator can act on):
``connection refused``, ``timeout after 2s``, ``HTTP 500``, ``not exposition text
(content-type text/html)``, ``body over size cap (16777216 bytes)``, ``truncated body``,
``parse error at line 12: …``.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from core.samples import EngineSnapshot, GpuSample
from exporters.base import Adapter
from exporters.families import MetricFamily, ParseError
from exporters.parser import parse

ACCEPT = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    adapter: Adapter
    timeout: float
    max_bytes: int
    headers: dict[str, str] = field(default_factory=dict)
    #: engines that also export GPU metrics (Triton): a function from families to GPU samples
    gpus: Callable[[Mapping[str, MetricFamily]], list[GpuSample]] | None = None
    gpu_families: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    backend: str
    ts: float
    up: bool
    reason: str | None
    duration: float
    snapshot: EngineSnapshot | None = None
    gpus: tuple[GpuSample, ...] = ()  # GPU metrics some engines export (Triton's nv_gpu_*)


def _connect_reason(exc: BaseException) -> str:
    """Name the root cause of a failed connect (httpx wraps it two or three levels deep)."""
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 10:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return f"DNS lookup failed: {seen.strerror or seen}"
        if isinstance(seen, OSError) and seen.errno is not None:
            return f"connect failed: {seen.strerror or seen}"
        seen = seen.__cause__ or seen.__context__
        depth += 1
    return f"connect failed: {exc}"


def _looks_like_html(head: bytes) -> bool:
    h = head.lstrip()[:64].lower()
    return h.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml"))


async def scrape(target: Target, client: httpx.AsyncClient, clock: Callable[[], float] = time.time) -> ScrapeResult:
    ts = clock()
    start = time.perf_counter()

    def fail(reason: str) -> ScrapeResult:
        return ScrapeResult(target.name, ts, False, reason, time.perf_counter() - start)

    try:
        async with asyncio.timeout(target.timeout):
            body, error = await _fetch(target, client)
    except TimeoutError:
        return fail(f"timeout after {target.timeout:g}s")
    except httpx.ConnectError as exc:
        return fail(_connect_reason(exc))
    except httpx.TimeoutException:
        return fail(f"timeout after {target.timeout:g}s")
    except httpx.RemoteProtocolError as exc:
        text = str(exc)
        if "incomplete" in text.lower() or "closed" in text.lower():
            return fail("truncated body: the connection closed before the announced length was sent")
        return fail(f"HTTP protocol error: {text}")
    except httpx.HTTPError as exc:
        return fail(f"HTTP error: {type(exc).__name__}: {exc}")
    except OSError as exc:
        return fail(f"network error: {exc.strerror or exc}")
    if error is not None:
        return fail(error)
    assert body is not None
    try:
        wanted = target.adapter.wanted()
        families = parse(body, keep=(wanted | target.gpu_families) if wanted is not None else None)
    except ParseError as exc:
        return fail(f"parse error at line {exc.lineno}: {exc.message}")
    snapshot = target.adapter.normalise(families)
    if not (snapshot.gauges or snapshot.counters or snapshot.histograms):
        return fail(f"no {target.adapter.engine} metrics in the body; is `engine` right for this backend?")
    snapshot = _drop_nan(snapshot)
    gpus = tuple(target.gpus(families)) if target.gpus is not None else ()
    return ScrapeResult(target.name, ts, True, None, time.perf_counter() - start, snapshot, gpus)


async def _fetch(target: Target, client: httpx.AsyncClient) -> tuple[bytes | None, str | None]:
    headers = {"Accept": ACCEPT, **target.headers}
    async with client.stream("GET", target.url, headers=headers, timeout=target.timeout) as resp:
        if resp.status_code >= 400:
            return None, f"HTTP {resp.status_code}"
        ctype = resp.headers.get("content-type", "").lower()
        if "html" in ctype or "json" in ctype:
            return None, f"not exposition text (content-type {ctype.split(';')[0]})"
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > target.max_bytes:
            return None, f"body over size cap ({declared} bytes > {target.max_bytes} bytes)"
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_raw():
            size += len(chunk)
            if size > target.max_bytes:
                return None, f"body over size cap (more than {target.max_bytes} bytes)"
            chunks.append(chunk)
    body = b"".join(chunks)
    if resp.headers.get("content-encoding", "identity") not in ("identity", ""):
        # aiter_raw skips decoding so the cap applies to wire bytes; decode afterwards
        body = httpx.Response(200, headers={"content-encoding": resp.headers["content-encoding"]}, content=body).content
        if len(body) > target.max_bytes:
            return None, f"body over size cap (decompressed to more than {target.max_bytes} bytes)"
    if _looks_like_html(body):
        return None, "not exposition text (the body is HTML)"
    return body, None


def _drop_nan(snap: EngineSnapshot) -> EngineSnapshot:
    """NaN gauges/counters carry no information; drop them rather than store a silent wrong number."""
    if all(not math.isnan(v) for v in snap.gauges.values()) and all(not math.isnan(v) for v in snap.counters.values()):
        return snap
    return EngineSnapshot(
        gauges={k: v for k, v in snap.gauges.items() if not math.isnan(v)},
        counters={k: v for k, v in snap.counters.items() if not math.isnan(v)},
        histograms=snap.histograms,
    )
