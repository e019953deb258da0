"""Service discovery: backends from Prometheus-style target groups, kept current while running.

Three kinds of source (``discovery:`` in the config, ``collector.config.DiscoveryConfig``):

* ``file_sd``: JSON or YAML files (by extension; paths or glob patterns) holding a list of target
  groups ``[{"targets": ["host:port", …], "labels": {…}}]``, exactly Prometheus's format; read
  again every ``refresh_interval`` when a file's modification time or size changed.
* ``http_sd``: the same JSON from a URL (Prometheus's HTTP SD; ``200`` with a JSON array).
* ``dns_sd``: SRV records (target and port of each), or A/AAAA records with a fixed ``port``.

A target becomes a backend (``targets_to_backends``, pure): named by its group's ``backend`` label
when the group has one target, else ``host:port``; engine from the group's ``engine`` label,
else the source's ``engine``; URL ``<__scheme__ or scheme>://host:port`` with ``__metrics_path__``
(or ``metrics_path``); its labels the group's (``__``-prefixed and ``engine``/``backend`` left out)
plus the source's ``labels``. A target group that is not valid is skipped with a problem naming
the file (or URL) and the group's position; the rest of the file still counts.

When a source cannot be read (file gone, HTTP error, DNS failure), it keeps its last good
targets, as Prometheus does, and its error is kept for the log (logged when it changes).
"""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.resolver
import httpx
import yaml
from pydantic import ValidationError

from collector.config import BackendConfig, DiscoveryConfig, DnsSD
from exporters.resolver import make_resolver

__all__ = ["Discoverer", "TargetGroup", "parse_groups", "targets_to_backends"]

log = logging.getLogger("inferwatch.discovery")

#: the most a target-group file or HTTP answer may hold (bytes)
MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class TargetGroup:
    targets: tuple[str, ...]
    labels: Mapping[str, str]


def parse_groups(data: object, where: str) -> tuple[list[TargetGroup], list[str]]:
    """Target groups from decoded JSON/YAML, and a problem per group that is not one.

    >>> parse_groups([{"targets": ["10.0.0.1:8000"], "labels": {"engine": "vllm"}}, {"targets": "x"}], "f.json")
    ([TargetGroup(targets=('10.0.0.1:8000',), labels={'engine': 'vllm'})], ['f.json[1].targets: expected a list of "host:port" strings'])
    """
    if data is None:
        return [], []
    if not isinstance(data, list):
        return [], [f"{where}: expected a list of target groups ({{targets: [...], labels: {{...}}}})"]
    out: list[TargetGroup] = []
    problems: list[str] = []
    for i, g in enumerate(data):
        at = f"{where}[{i}]"
        if not isinstance(g, dict):
            problems.append(f"{at}: expected a mapping with targets and labels")
            continue
        targets = g.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
            problems.append(f'{at}.targets: expected a list of "host:port" strings')
            continue
        labels = g.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            problems.append(f"{at}.labels: expected a mapping of label names to strings")
            continue
        unknown = sorted(set(g) - {"targets", "labels"})
        if unknown:
            problems.append(f"{at}: unknown keys {', '.join(unknown)} (expected targets, labels)")
            continue
        out.append(TargetGroup(tuple(targets), dict(labels)))
    return out, problems


_RESERVED = {"engine", "backend"}


def targets_to_backends(groups: Iterable[TargetGroup], sd: DiscoveryConfig, where: str,
                        ) -> tuple[list[BackendConfig], list[str]]:
    """The backends a source's target groups describe (see the module docstring), and the
    problems of targets that cannot be backends."""
    out: list[BackendConfig] = []
    problems: list[str] = []
    for i, g in enumerate(groups):
        engine = g.labels.get("engine", sd.engine)
        if engine is None:
            problems.append(f"{where}[{i}]: no engine: give the group an engine label or the discovery "
                            f"entry {sd.name!r} an engine")
            continue
        scheme = g.labels.get("__scheme__", sd.scheme)
        path = g.labels.get("__metrics_path__", sd.metrics_path)
        labels = {**sd.labels, **{k: v for k, v in g.labels.items() if not k.startswith("__") and k not in _RESERVED}}
        named = g.labels.get("backend") if len(g.targets) == 1 else None
        for t in g.targets:
            try:
                out.append(BackendConfig.model_validate({
                    "name": named or t, "engine": engine, "url": f"{scheme}://{t}", "metrics_path": path,
                    "labels": labels}))
            except ValidationError as exc:
                why = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
                problems.append(f"{where}[{i}] target {t!r}: {why}")
    return out, problems


@dataclass
class _State:
    """One discovery source's last good backends, per file (or ``""`` for HTTP and DNS)."""

    backends: dict[str, list[BackendConfig]] = field(default_factory=dict)
    stamps: dict[str, tuple[float, int]] = field(default_factory=dict)  # file -> (mtime, size)
    due: float = 0.0
    error: str | None = None


def _decode(raw: bytes, name: str) -> object:
    text = raw.decode("utf-8")
    if name.endswith((".yaml", ".yml")):
        return yaml.safe_load(text)
    return json.loads(text)


class Discoverer:
    """Runs the config's discovery sources; ``refresh(now)`` reads those that are due and says
    whether the discovered backends changed; ``backends`` is the current list (stable order)."""

    def __init__(self, sources: Sequence[DiscoveryConfig], http: httpx.AsyncClient, base: Path | None = None) -> None:
        self.sources = list(sources)
        self.http = http
        self.base = base or Path.cwd()  # relative file_sd paths are read from here (the config's folder)
        self._states = {sd.name: _State() for sd in self.sources}
        self.problems: dict[str, list[str]] = {}  # source -> problems of its last read

    @property
    def backends(self) -> list[BackendConfig]:
        out: list[BackendConfig] = []
        for sd in self.sources:
            for key in sorted(self._states[sd.name].backends):
                out.extend(self._states[sd.name].backends[key])
        return out

    def errors(self) -> dict[str, str | None]:
        return {name: st.error for name, st in self._states.items()}

    async def refresh(self, now: float) -> bool:
        """Read every source that is due; True when the discovered backends changed."""
        before = [b.model_dump_json() for b in self.backends]
        for sd in self.sources:
            st = self._states[sd.name]
            if now < st.due:
                continue
            st.due = now + sd.refresh_interval
            try:
                if sd.file_sd is not None:
                    await asyncio.to_thread(self._read_files, sd, st)
                elif sd.http_sd is not None:
                    await self._fetch(sd, st)
                else:
                    await self._lookup(sd, st)
                error = None
            except Exception as exc:  # keep the last good targets, as Prometheus does
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if error != st.error:
                if error:
                    log.warning("[discovery] %s: %s; keeping its last %d targets", sd.name, error,
                                sum(len(v) for v in st.backends.values()))
                elif st.error:
                    log.info("[discovery] %s: reading again", sd.name)
            st.error = error
        return [b.model_dump_json() for b in self.backends] != before

    def _note(self, sd: DiscoveryConfig, problems: list[str]) -> None:
        if problems and problems != self.problems.get(sd.name):
            log.warning("[discovery] %s: %s", sd.name, "; ".join(problems))
        self.problems[sd.name] = problems

    def _read_files(self, sd: DiscoveryConfig, st: _State) -> None:
        assert sd.file_sd is not None
        paths: list[str] = []
        for pattern in sd.file_sd.files:
            full = pattern if os.path.isabs(pattern) else str(self.base / pattern)
            paths.extend(sorted(glob.glob(full)) if glob.has_magic(full) else [full])
        problems: list[str] = []
        seen = set()
        for path in paths:
            seen.add(path)
            try:
                info = os.stat(path)
            except OSError as exc:
                problems.append(f"{path}: cannot read: {exc.strerror or exc}")
                continue
            stamp = (info.st_mtime, info.st_size)
            if st.stamps.get(path) == stamp:
                continue
            if info.st_size > MAX_BYTES:
                problems.append(f"{path}: over {MAX_BYTES // (1024 * 1024)} MiB")
                continue
            try:
                data = _decode(Path(path).read_bytes(), path)
            except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
                problems.append(f"{path}: not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: "
                                f"{str(exc).splitlines()[0]}")
                continue
            groups, bad = parse_groups(data, path)
            backends, bad2 = targets_to_backends(groups, sd, path)
            problems += bad + bad2
            st.backends[path] = backends
            st.stamps[path] = stamp
        for gone in set(st.backends) - seen:  # a file removed (or no longer matched): its targets go
            st.backends.pop(gone, None)
            st.stamps.pop(gone, None)
        self._note(sd, problems)

    async def _fetch(self, sd: DiscoveryConfig, st: _State) -> None:
        h = sd.http_sd
        assert h is not None
        headers = {"Authorization": f"Bearer {h.bearer_token}"} if h.bearer_token else {}
        resp = await self.http.get(h.url, headers=headers, timeout=min(30.0, h.refresh_interval))
        if resp.status_code != 200:
            raise RuntimeError(f"{h.url}: HTTP {resp.status_code}")
        if len(resp.content) > MAX_BYTES:
            raise RuntimeError(f"{h.url}: answer over {MAX_BYTES // (1024 * 1024)} MiB")
        groups, bad = parse_groups(json.loads(resp.content), h.url)
        backends, bad2 = targets_to_backends(groups, sd, h.url)
        st.backends[""] = backends
        self._note(sd, bad + bad2)

    async def _lookup(self, sd: DiscoveryConfig, st: _State) -> None:
        d = sd.dns_sd
        assert d is not None
        groups: list[TargetGroup] = []
        for name in d.names:
            targets = await dns_targets(d, name)
            groups.append(TargetGroup(tuple(targets), {}))
        backends, bad = targets_to_backends(groups, sd, "dns")
        st.backends[""] = backends
        self._note(sd, bad)


async def dns_targets(d: DnsSD, name: str) -> list[str]:
    """``host:port`` of every record of ``name``: SRV (target, port; sorted), or A/AAAA with
    ``d.port``. An empty answer (NXDOMAIN, no records) is no targets."""
    resolver = make_resolver(d.nameserver, 5.0)
    try:
        answer = await resolver.resolve(name, d.type)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    out: list[str] = []
    for rr in answer:
        if d.type == "SRV":
            host = rr.target.to_text().rstrip(".")
            out.append(f"{host}:{rr.port}")
        else:
            addr = rr.to_text()
            out.append(f"[{addr}]:{d.port}" if ":" in addr else f"{addr}:{d.port}")
    return sorted(out)
