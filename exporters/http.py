"""Fetching an exposition over HTTP with the limits every scrape honours. Never hangs, never
buffers more than the cap.

``fetch_exposition`` is shared by engine scrapes and dcgm-exporter scrapes; a failure raises
``FetchError`` whose ``reason`` an operator can act on: ``connection refused``, ``timeout after
2s``, ``HTTP 500``, ``not exposition text (content-type text/html)``, ``body over size cap
(16777216 bytes)``, ``truncated body: …``. The cap applies to the bytes on the wire and again
after decompression.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

__all__ = ["ACCEPT", "FetchError", "Limits", "fetch_exposition"]

ACCEPT = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one fetch may take: ``timeout`` seconds in all, ``max_body_bytes`` of body."""

    timeout: float
    max_body_bytes: int


class FetchError(Exception):
    """Why a fetch gave no exposition text (``reason``, fit for an operator)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


async def fetch_exposition(client: httpx.AsyncClient, url: str, limits: Limits,
                           headers: Mapping[str, str] | None = None) -> bytes:
    """The body of ``GET url``, checked: status < 400, not HTML or JSON, within the size cap."""
    try:
        async with asyncio.timeout(limits.timeout):
            return await _fetch(client, url, limits, {"Accept": ACCEPT, **(headers or {})})
    except FetchError:
        raise
    except TimeoutError:
        raise FetchError(f"timeout after {limits.timeout:g}s") from None
    except httpx.ConnectError as exc:
        raise FetchError(_connect_reason(exc)) from None
    except httpx.TimeoutException:
        raise FetchError(f"timeout after {limits.timeout:g}s") from None
    except httpx.RemoteProtocolError as exc:
        text = str(exc)
        if "incomplete" in text.lower() or "closed" in text.lower():
            raise FetchError("truncated body: the connection closed before the announced length was sent") from None
        raise FetchError(f"HTTP protocol error: {text}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"HTTP error: {type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise FetchError(f"network error: {exc.strerror or exc}") from None


async def _fetch(client: httpx.AsyncClient, url: str, limits: Limits, headers: Mapping[str, str]) -> bytes:
    async with client.stream("GET", url, headers=headers, timeout=limits.timeout) as resp:
        if resp.status_code >= 400:
            raise FetchError(f"HTTP {resp.status_code}")
        ctype = resp.headers.get("content-type", "").lower()
        if "html" in ctype or "json" in ctype:
            raise FetchError(f"not exposition text (content-type {ctype.split(';')[0]})")
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise FetchError(f"body over size cap ({declared} bytes > {limits.max_body_bytes} bytes)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_raw():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise FetchError(f"body over size cap (more than {limits.max_body_bytes} bytes)")
            chunks.append(chunk)
    body = b"".join(chunks)
    if resp.headers.get("content-encoding", "identity") not in ("identity", ""):
        # aiter_raw skips decoding so the cap applies to wire bytes; decode afterwards
        body = httpx.Response(200, headers={"content-encoding": resp.headers["content-encoding"]}, content=body).content
        if len(body) > limits.max_body_bytes:
            raise FetchError(f"body over size cap (decompressed to more than {limits.max_body_bytes} bytes)")
    if _looks_like_html(body):
        raise FetchError("not exposition text (the body is HTML)")
    return body
