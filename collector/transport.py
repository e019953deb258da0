"""An httpx transport that keeps one small connection pool per origin.

The collector uses one pooled ``httpx.AsyncClient`` for the whole fleet. httpcore's pool,
though, scans *every* pooled connection on each request (``_assign_requests_to_connections``),
so with one connection per backend a scrape costs O(fleet size) before it sends a byte: at a
thousand backends that scan costs more CPU than parsing the body. Like Prometheus, which keeps a
connection per target, this transport gives each origin (scheme, host, port) its own tiny
httpcore pool — a request touches only its own backend's connection, reused across scrapes.
"""

from __future__ import annotations

import ssl

import httpx


class PerOriginTransport(httpx.AsyncBaseTransport):
    def __init__(self, connections_per_origin: int = 2, verify: ssl.SSLContext | bool = True,
                 keepalive_expiry: float = 120.0) -> None:
        self._limits = httpx.Limits(max_connections=connections_per_origin,
                                    max_keepalive_connections=connections_per_origin,
                                    keepalive_expiry=keepalive_expiry)
        # one SSL context for every origin: building one per pool costs milliseconds and memory
        self._verify = ssl.create_default_context() if verify is True else verify
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}
        self._verify_for: dict[tuple[bytes, bytes, int | None], ssl.SSLContext] = {}

    def trust(self, url: str, ca_file: str) -> None:
        """Verify ``url``'s origin against ``ca_file`` instead of the system store."""
        u = httpx.URL(url)
        self._verify_for[(u.raw_scheme, u.raw_host, u.port)] = ssl.create_default_context(cafile=ca_file)

    def _pool(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            verify = self._verify_for.get(key, self._verify)
            pool = self._pools[key] = httpx.AsyncHTTPTransport(verify=verify, limits=self._limits)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
