"""Silences: "send nothing about alerts matching these labels until then", in the store.

Part of the store (``collector.store.Store`` inherits ``SilenceStore``); the table ``silences``
lives in the store's ``metadata`` and is created by migration ``0004``. A silence is active from
``starts_at`` (inclusive) to ``ends_at`` (exclusive); expiring one sets ``ends_at`` to now.
Expired silences are kept (they are few and show what was muted when); the API lists them with
``state: expired``. What a silence does to notifications is described in ``alerts/routing.py``.

Also here: ``last_sent``, the last notification per (fingerprint, receiver) read back from the
outbox, which the alert engine loads at start so that repeats survive a restart.

>>> from collector.store import Store
>>> store = Store("sqlite:///:memory:"); store.migrate()
>>> s = new_silence({"backend": "vllm-a"}, starts_at=0.0, ends_at=60.0, created_by="ops", comment="deploy")
>>> store.create_silence(s) == s, store.active_silences(now=30.0) == [s]
(True, True)
>>> store.expire_silence(s.id, now=40.0).ends_at, store.active_silences(now=45.0)
(40.0, [])
>>> store.close()
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

import sqlalchemy as sa

from alerts.routing import Matcher, Sent, parse_silence_matchers

__all__ = ["Silence", "SilenceStore", "define_silence_tables", "new_silence"]

SilenceState = Literal["pending", "active", "expired"]


def define_silence_tables(metadata: sa.MetaData) -> sa.Table:
    """``silences`` on ``metadata`` (mirrors migration ``0004``)."""
    return sa.Table(
        "silences",
        metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("matchers", sa.Text, nullable=False),  # JSON {label: value | "=~regex"}
        sa.Column("starts_at", sa.Double, nullable=False),
        sa.Column("ends_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Index("ix_silences_ends_at", "ends_at"),
    )


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    def state(self, now: float) -> SilenceState:
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def matchers_doc(self) -> dict[str, str]:
        """The matchers as written: ``{label: value}`` or ``{label: "=~regex"}``."""
        return {m.name: f"=~{m.value}" if m.regex else m.value for m in self.matchers}

    def view(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "matchers": self.matchers_doc(), "starts_at": self.starts_at,
                "ends_at": self.ends_at, "created_by": self.created_by, "comment": self.comment,
                "created_at": self.created_at, "updated_at": self.updated_at, "state": self.state(now)}


def new_silence(matchers: Any, *, starts_at: float, ends_at: float, created_by: str,
                comment: str = "", now: float | None = None) -> Silence:
    """A validated new silence with a fresh id; ``ValueError`` (``RoutingError``) when invalid."""
    parsed = parse_silence_matchers(matchers)
    if not ends_at > starts_at:
        raise ValueError("ends_at: must be after starts_at")
    created = starts_at if now is None else now
    return Silence(uuid.uuid4().hex, parsed, float(starts_at), float(ends_at), created_by, comment,
                   float(created), float(created))


class SilenceStore:
    """Silences (a mixin of ``collector.store.Store``)."""

    _engine: sa.Engine
    silences_table: sa.Table
    outbox_table: sa.Table

    def create_silence(self, s: Silence) -> Silence:
        with self._engine.begin() as conn:
            conn.execute(self.silences_table.insert(), [_row(s)])
        return s

    def get_silence(self, id: str) -> Silence | None:
        t = self.silences_table
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == id)).first()
        return None if row is None else _from_row(row._mapping)

    def list_silences(self, *, since: float | None = None) -> list[Silence]:
        """All silences (``since``: only those ending after it), newest start first."""
        t = self.silences_table
        q = sa.select(t)
        if since is not None:
            q = q.where(t.c.ends_at > since)
        q = q.order_by(t.c.starts_at.desc(), t.c.id)
        with self._engine.connect() as conn:
            return [_from_row(r._mapping) for r in conn.execute(q)]

    def active_silences(self, now: float) -> list[Silence]:
        t = self.silences_table
        q = sa.select(t).where(t.c.starts_at <= now, t.c.ends_at > now).order_by(t.c.starts_at, t.c.id)
        with self._engine.connect() as conn:
            return [_from_row(r._mapping) for r in conn.execute(q)]

    def expire_silence(self, id: str, now: float) -> Silence | None:
        """End a silence now (one that already ended keeps its ``ends_at``; a pending one ends
        before it starts). None when there is no such silence."""
        t = self.silences_table
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == id)).first()
            if row is None:
                return None
            s = _from_row(row._mapping)
            if s.ends_at > now:
                s = replace(s, ends_at=float(now), starts_at=min(s.starts_at, float(now)), updated_at=float(now))
                conn.execute(sa.update(t).where(t.c.id == id).values(
                    ends_at=s.ends_at, starts_at=s.starts_at, updated_at=s.updated_at))
        return s

    def last_sent(self, fingerprints: Iterable[str]) -> dict[tuple[str, str], Sent]:
        """The latest outbox notification (any status) per (fingerprint, receiver) of these
        alerts: what the engine's repeat and resolve decisions start from after a restart."""
        t = self.outbox_table
        fps = sorted(set(fingerprints))
        out: dict[tuple[str, str], Sent] = {}
        with self._engine.connect() as conn:
            for i in range(0, len(fps), 500):
                q = (sa.select(t.c.fingerprint, t.c.receiver, t.c.kind, t.c.created_at)
                     .where(t.c.fingerprint.in_(fps[i : i + 500]))
                     .order_by(t.c.created_at, t.c.id))
                for fp, receiver, kind, created_at in conn.execute(q):
                    out[(fp, receiver)] = Sent(kind, float(created_at))
        return out


def _row(s: Silence) -> dict[str, Any]:
    return {"id": s.id, "matchers": json.dumps(s.matchers_doc(), separators=(",", ":"), ensure_ascii=False),
            "starts_at": s.starts_at, "ends_at": s.ends_at, "created_by": s.created_by, "comment": s.comment,
            "created_at": s.created_at, "updated_at": s.updated_at}


def _from_row(m: Any) -> Silence:
    return Silence(
        id=m["id"], matchers=parse_silence_matchers(json.loads(m["matchers"])), starts_at=float(m["starts_at"]),
        ends_at=float(m["ends_at"]), created_by=m["created_by"], comment=m["comment"],
        created_at=float(m["created_at"]), updated_at=float(m["updated_at"]),
    )
