"""Silences: "send nothing about alerts matching these labels until then", in the store.

The silence store works over the shared ``storage.database.Database``; the table ``silences``
lives in ``storage.database.metadata`` and is created by migration ``0004``. A silence is active from
``starts_at`` (inclusive) to ``ends_at`` (exclusive); expiring one sets ``ends_at`` to now.
Expired silences are kept (they are few and show what was muted when); the API lists them with
``state: expired``. What a silence does to notifications is described in ``alerts/routing.py``.

>>> from storage.database import Database
>>> db = Database("sqlite:///:memory:"); db.migrate(); store = SilenceStore(db)
>>> from alerts.model import new_silence
>>> s = new_silence({"backend": "vllm-a"}, starts_at=0.0, ends_at=60.0, created_by="ops", comment="deploy")
>>> store.create_silence(s) == s, store.active_silences(now=30.0) == [s]
(True, True)
>>> store.expire_silence(s.id, now=40.0).ends_at, store.active_silences(now=45.0)
(40.0, [])
>>> db.close()
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from alerts.matchers import parse_silence_matchers
from alerts.model import Silence
from storage.database import Database, metadata

__all__ = ["SilenceStore"]



silences = sa.Table(  # mirrors migration 0004
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


class SilenceStore:
    """Silences: created, listed, expired; the active ones at a time."""

    silences_table = silences

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_silence(self, s: Silence) -> Silence:
        with self.db.engine.begin() as conn:
            conn.execute(self.silences_table.insert(), [_row(s)])
        return s

    def get_silence(self, id: str) -> Silence | None:
        t = self.silences_table
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == id)).first()
        return None if row is None else _from_row(row._mapping)

    def list_silences(self, *, since: float | None = None) -> list[Silence]:
        """All silences (``since``: only those ending after it), newest start first."""
        t = self.silences_table
        q = sa.select(t)
        if since is not None:
            q = q.where(t.c.ends_at > since)
        q = q.order_by(t.c.starts_at.desc(), t.c.id)
        with self.db.engine.connect() as conn:
            return [_from_row(r._mapping) for r in conn.execute(q)]

    def active_silences(self, now: float) -> list[Silence]:
        t = self.silences_table
        q = sa.select(t).where(t.c.starts_at <= now, t.c.ends_at > now).order_by(t.c.starts_at, t.c.id)
        with self.db.engine.connect() as conn:
            return [_from_row(r._mapping) for r in conn.execute(q)]

    def expire_silence(self, id: str, now: float) -> Silence | None:
        """End a silence now (one that already ended keeps its ``ends_at``; a pending one ends
        before it starts). None when there is no such silence."""
        t = self.silences_table
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == id)).first()
            if row is None:
                return None
            s = _from_row(row._mapping)
            if s.ends_at > now:
                s = replace(s, ends_at=float(now), starts_at=min(s.starts_at, float(now)), updated_at=float(now))
                conn.execute(sa.update(t).where(t.c.id == id).values(
                    ends_at=s.ends_at, starts_at=s.starts_at, updated_at=s.updated_at))
        return s


def _row(s: Silence) -> dict[str, Any]:
    return {"id": s.id, "matchers": json.dumps(s.matchers_doc(), separators=(",", ":"), ensure_ascii=False),
            "starts_at": s.starts_at, "ends_at": s.ends_at, "created_by": s.created_by, "comment": s.comment,
            "created_at": s.created_at, "updated_at": s.updated_at}


def _from_row(m: sa.RowMapping) -> Silence:
    return Silence(
        id=m["id"], matchers=parse_silence_matchers(json.loads(m["matchers"])), starts_at=float(m["starts_at"]),
        ends_at=float(m["ends_at"]), created_by=m["created_by"], comment=m["comment"],
        created_at=float(m["created_at"]), updated_at=float(m["updated_at"]),
    )
