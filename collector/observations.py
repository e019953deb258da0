"""The observation store: what the outside-in and hardware sources see — streaming probe
results, certificate checks and GPU samples — over the shared ``storage.database.Database``; the
tables live in ``storage.database.metadata`` and are created by migration ``0002``.

* ``probe_results``: one row per probe, raw (probe percentiles are exact, computed from these
  rows); the inter-token gaps as compact JSON.
* ``certificates``: the latest check per target (upserted) — what the API and ``/metrics`` show.
* ``gpu_samples``: one row per GPU (or MIG device) per reading, for charts over time;
* ``audit_results``: one row per checklist item per audit run (migration ``0007``), for the
  checklist page's history and the pass-to-fail alert.

All four are expired by ``ObservationStore.expire`` (after ``Retention.rollup_seconds``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.audit import AuditResult, CheckResult, Status, check_order
from core.numbers import finite
from core.samples import CertResult, GpuProcess, GpuSample, ProbeResult
from storage.database import Database, metadata

_COLS_PROBE_TIMES = ("dns_seconds", "connect_seconds", "tls_seconds", "ttft_seconds", "e2e_seconds")


__all__ = ["AuditState", "ObservationStore"]


def _define_tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    probes = sa.Table(
        "probe_results",
        metadata,
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("backend", sa.Text, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error_kind", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        *(sa.Column(c, sa.Double, nullable=True) for c in _COLS_PROBE_TIMES),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("tokens_from_usage", sa.Boolean, nullable=False),
        sa.Column("tokens_per_second", sa.Double, nullable=True),
        sa.Column("itl", sa.Text, nullable=False),
        sa.Column("tls_version", sa.Text, nullable=True),
        sa.Index("ix_probe_results_backend_ts", "backend", "ts"),
        sa.Index("ix_probe_results_ts", "ts"),
    )
    certs = sa.Table(
        "certificates",
        metadata,
        sa.Column("target", sa.Text, primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("not_after", sa.Double, nullable=True),
        sa.Column("chain_not_after", sa.Double, nullable=True),
        sa.Column("chain_not_after_subject", sa.Text, nullable=True),
        sa.Column("issuer", sa.Text, nullable=True),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("sans", sa.Text, nullable=False),
        sa.Column("verified", sa.Boolean, nullable=True),
        sa.Column("verify_error", sa.Text, nullable=True),
        sa.Column("hostname_ok", sa.Boolean, nullable=True),
        sa.Column("tls_version", sa.Text, nullable=True),
        sa.Column("cipher", sa.Text, nullable=True),
    )
    gpus = sa.Table(
        "gpu_samples",
        metadata,
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("gpu_index", sa.Text, nullable=False),
        sa.Column("uuid", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("memory_used_bytes", sa.BigInteger, nullable=True),
        sa.Column("memory_free_bytes", sa.BigInteger, nullable=True),
        sa.Column("memory_total_bytes", sa.BigInteger, nullable=True),
        sa.Column("utilization_ratio", sa.Double, nullable=True),
        sa.Column("temperature_celsius", sa.Double, nullable=True),
        sa.Column("power_watts", sa.Double, nullable=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("processes", sa.Text, nullable=False),
        sa.Column("errors", sa.Text, nullable=False),
        sa.Column("sm_clock_hertz", sa.Double, nullable=True),
        sa.Column("tensor_active_ratio", sa.Double, nullable=True),
        sa.Column("last_xid", sa.BigInteger, nullable=True),
        sa.Index("ix_gpu_samples_uuid_ts", "uuid", "ts"),
        sa.Index("ix_gpu_samples_ts", "ts"),
    )
    return probes, certs, gpus


probe_results, certificates, gpu_samples = _define_tables()

audit_results = sa.Table(
    "audit_results",
    metadata,
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("check_name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("observed", sa.Text, nullable=False),
    sa.Column("fix", sa.Text, nullable=True),
    sa.Column("duration", sa.Double, nullable=False),
    sa.Index("ix_audit_results_target_ts", "target", "ts"),
    sa.Index("ix_audit_results_ts", "ts"),
)


@dataclass(frozen=True, slots=True)
class AuditState:
    """One check of one audit target as the alert rules see it: the latest run's status, and
    whether an earlier run (still stored) passed it."""

    target: str
    check: str
    status: Status
    passed_before: bool


class ObservationStore:
    """Writes and reads of probe results, certificate checks and GPU samples."""

    probe_results = probe_results
    certificates = certificates
    gpu_samples = gpu_samples
    audit_results = audit_results

    def __init__(self, db: Database) -> None:
        self.db = db

    def write_observations(self, probes: Sequence[ProbeResult] = (), certs: Sequence[CertResult] = (),
                           gpus: Sequence[tuple[float, GpuSample]] = (), audits: Sequence[AuditResult] = ()) -> None:
        """One transaction for the lot; ``gpus`` are (reading time, sample) pairs."""
        if not (probes or certs or gpus or audits):
            return
        with self.db.engine.begin() as conn:
            if audits:
                conn.execute(self.audit_results.insert(), [_audit_row(a, c) for a in audits for c in a.checks])
            if probes:
                conn.execute(self.probe_results.insert(), [_probe_row(p) for p in probes])
            if gpus:
                conn.execute(self.gpu_samples.insert(), [_gpu_row(ts, g) for ts, g in gpus])
            if certs:
                latest: dict[str, CertResult] = {}
                for c in certs:
                    if c.target not in latest or c.ts >= latest[c.target].ts:
                        latest[c.target] = c
                ins = self.db.upsert(self.certificates)
                rows = [_cert_row(c) for c in latest.values()]
                conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=["target"],
                        set_={k: getattr(ins.excluded, k) for k in rows[0] if k != "target"},
                        where=self.certificates.c.ts <= ins.excluded.ts,
                    ),
                    rows,
                )

    def probe_results_between(self, since: float, until: float,
                              backends: Sequence[str] | None = None) -> list[ProbeResult]:
        t = self.probe_results
        q = sa.select(t).where(t.c.ts > since, t.c.ts <= until).order_by(t.c.ts)
        if backends is not None:
            q = q.where(t.c.backend.in_(list(backends)))
        with self.db.engine.connect() as conn:
            return [_probe_from_row(r._mapping) for r in conn.execute(q)]

    def certificate_results(self) -> list[CertResult]:
        t = self.certificates
        with self.db.engine.connect() as conn:
            return [_cert_from_row(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.target))]

    def latest_gpus(self, since: float) -> list[tuple[float, GpuSample]]:
        """The newest sample of every GPU heard from after ``since``, with its time."""
        t = self.gpu_samples
        newest = (
            sa.select(t.c.host, t.c.uuid, t.c.gpu_index, sa.func.max(t.c.ts).label("mts"))
            .where(t.c.ts > since)
            .group_by(t.c.host, t.c.uuid, t.c.gpu_index)
            .subquery()
        )
        q = (
            sa.select(t)
            .join(newest, sa.and_(t.c.host == newest.c.host, t.c.uuid == newest.c.uuid,
                                  t.c.gpu_index == newest.c.gpu_index, t.c.ts == newest.c.mts))
            .order_by(t.c.host, t.c.gpu_index)
        )
        seen: dict[tuple[str, str, str], tuple[float, GpuSample]] = {}
        with self.db.engine.connect() as conn:
            for r in conn.execute(q):  # two readings stamped alike: keep one
                seen.setdefault((r.host, r.uuid, r.gpu_index), (float(r.ts), _gpu_from_row(r._mapping)))
        return list(seen.values())

    def gpu_series(self, uuid: str, since: float, until: float) -> list[tuple[float, GpuSample]]:
        t = self.gpu_samples
        q = sa.select(t).where(t.c.uuid == uuid, t.c.ts > since, t.c.ts <= until).order_by(t.c.ts)
        with self.db.engine.connect() as conn:
            return [(float(r.ts), _gpu_from_row(r._mapping)) for r in conn.execute(q)]

    def latest_audits(self) -> list[AuditResult]:
        """The newest run of every audit target, by target name."""
        t = self.audit_results
        newest = sa.select(t.c.target, sa.func.max(t.c.ts).label("mts")).group_by(t.c.target).subquery()
        q = (sa.select(t).join(newest, sa.and_(t.c.target == newest.c.target, t.c.ts == newest.c.mts))
             .order_by(t.c.target))
        with self.db.engine.connect() as conn:
            return _audits(conn.execute(q))

    def audit_history(self, target: str, since: float, limit: int = 200) -> list[AuditResult]:
        """The runs of ``target`` after ``since``, newest first, at most ``limit``."""
        t = self.audit_results
        times = (sa.select(t.c.ts).where(t.c.target == target, t.c.ts > since).group_by(t.c.ts)
                 .order_by(t.c.ts.desc()).limit(limit).subquery())
        q = sa.select(t).where(t.c.target == target, t.c.ts.in_(sa.select(times.c.ts)))
        with self.db.engine.connect() as conn:
            return sorted(_audits(conn.execute(q)), key=lambda a: -a.ts)

    def audit_states(self) -> list[AuditState]:
        """Every check of every target's newest run, and whether an earlier stored run passed it
        (two indexed queries, whatever the history's length)."""
        t = self.audit_results
        passed = (sa.select(t.c.target, t.c.check_name, sa.func.max(t.c.ts).label("pts"))
                  .where(t.c.status == "pass").group_by(t.c.target, t.c.check_name))
        with self.db.engine.connect() as conn:
            last_pass = {(r.target, r.check_name): float(r.pts) for r in conn.execute(passed)}
        return [AuditState(a.target, c.check, c.status, last_pass.get((a.target, c.check), a.ts) < a.ts)
                for a in self.latest_audits() for c in a.checks]

    def expire(self, before: float) -> None:
        """Delete every probe result, GPU sample, certificate check and audit result at or before
        ``before``."""
        with self.db.engine.begin() as conn:
            for t in (self.probe_results, self.gpu_samples, self.certificates, self.audit_results):
                conn.execute(sa.delete(t).where(t.c.ts <= before))


# --- row conversion ------------------------------------------------------------------------------
def _probe_row(p: ProbeResult) -> dict[str, Any]:
    return {
        "ts": float(p.ts), "backend": p.backend, "ok": bool(p.ok), "error_kind": p.error_kind,
        "error": p.error, "status": p.status,
        **{c: finite(getattr(p, c)) for c in _COLS_PROBE_TIMES},
        "output_tokens": p.output_tokens, "tokens_from_usage": bool(p.tokens_from_usage),
        "tokens_per_second": finite(p.tokens_per_second),
        "itl": json.dumps([round(x, 9) for x in p.itl if math.isfinite(x)], separators=(",", ":")),
        "tls_version": p.tls_version,
    }


def _probe_from_row(m: sa.RowMapping) -> ProbeResult:
    return ProbeResult(
        backend=m["backend"], ts=float(m["ts"]), ok=bool(m["ok"]), error_kind=m["error_kind"], error=m["error"],
        status=m["status"], **{c: m[c] for c in _COLS_PROBE_TIMES}, output_tokens=m["output_tokens"],
        tokens_from_usage=bool(m["tokens_from_usage"]), tokens_per_second=m["tokens_per_second"],
        itl=tuple(float(x) for x in json.loads(m["itl"])), tls_version=m["tls_version"],
    )


def _cert_row(c: CertResult) -> dict[str, Any]:
    return {
        "target": c.target, "ts": float(c.ts), "ok": bool(c.ok), "error": c.error,
        "not_after": finite(c.not_after), "chain_not_after": finite(c.chain_not_after),
        "chain_not_after_subject": c.chain_not_after_subject, "issuer": c.issuer, "subject": c.subject,
        "sans": json.dumps(list(c.sans)), "verified": c.verified, "verify_error": c.verify_error,
        "hostname_ok": c.hostname_ok, "tls_version": c.tls_version, "cipher": c.cipher,
    }


def _cert_from_row(m: sa.RowMapping) -> CertResult:
    return CertResult(
        target=m["target"], ts=float(m["ts"]), ok=bool(m["ok"]), error=m["error"], not_after=m["not_after"],
        chain_not_after=m["chain_not_after"], chain_not_after_subject=m["chain_not_after_subject"],
        issuer=m["issuer"], subject=m["subject"], sans=tuple(json.loads(m["sans"])), verified=m["verified"],
        verify_error=m["verify_error"], hostname_ok=m["hostname_ok"], tls_version=m["tls_version"],
        cipher=m["cipher"],
    )


def _gpu_row(ts: float, g: GpuSample) -> dict[str, Any]:
    return {
        "ts": float(ts),
        "host": g.host, "gpu_index": g.index, "uuid": g.uuid, "name": g.name,
        "memory_used_bytes": g.memory_used_bytes, "memory_free_bytes": g.memory_free_bytes,
        "memory_total_bytes": g.memory_total_bytes, "utilization_ratio": finite(g.utilization_ratio),
        "temperature_celsius": finite(g.temperature_celsius), "power_watts": finite(g.power_watts),
        "source": g.source,
        "processes": json.dumps([[p.pid, p.name, p.used_memory_bytes] for p in g.processes]),
        "errors": json.dumps(list(g.errors)),
        "sm_clock_hertz": finite(g.sm_clock_hertz), "tensor_active_ratio": finite(g.tensor_active_ratio),
        "last_xid": g.last_xid,
    }


def _gpu_from_row(m: sa.RowMapping) -> GpuSample:
    return GpuSample(
        host=m["host"], index=m["gpu_index"], uuid=m["uuid"], name=m["name"],
        memory_used_bytes=m["memory_used_bytes"], memory_free_bytes=m["memory_free_bytes"],
        memory_total_bytes=m["memory_total_bytes"], utilization_ratio=m["utilization_ratio"],
        temperature_celsius=m["temperature_celsius"], power_watts=m["power_watts"], source=m["source"],
        processes=tuple(GpuProcess(int(p[0]), p[1], p[2]) for p in json.loads(m["processes"])),
        errors=tuple(json.loads(m["errors"])),
        sm_clock_hertz=m["sm_clock_hertz"], tensor_active_ratio=m["tensor_active_ratio"], last_xid=m["last_xid"],
    )


def _audit_row(a: AuditResult, c: CheckResult) -> dict[str, Any]:
    return {"ts": float(a.ts), "target": a.target, "url": a.url, "check_name": c.check, "status": c.status,
            "observed": c.observed, "fix": c.fix, "duration": float(a.duration)}


def _audits(rows: Iterable[sa.Row[Any]]) -> list[AuditResult]:
    """Rows (any order) -> one ``AuditResult`` per (target, ts), checks in checklist order."""
    runs: dict[tuple[str, float], tuple[str, float, list[CheckResult]]] = {}
    for r in rows:
        key = (r.target, float(r.ts))
        run = runs.setdefault(key, (r.url, float(r.duration), []))
        run[2].append(CheckResult(r.check_name, r.status, r.observed, r.fix))
    return [AuditResult(target, url, ts, duration, tuple(sorted(checks, key=lambda c: check_order(c.check))))
            for (target, ts), (url, duration, checks) in runs.items()]
