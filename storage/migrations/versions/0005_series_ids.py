"""Compact metric rows: a ``series`` table, data rows that name it by id, bucket counts as bytes.

Every gauge, counter-delta and histogram-delta row (raw and rolled up) carried its backend,
signal and model as text, twice over (the row and its ``(backend, signal, ts)`` index), and
histogram bucket counts as JSON text. Now ``series`` holds each (backend, signal, model) once
and the rows hold its integer id (index ``(series_id, ts)``); bucket counts are
``storage.codec.pack_counts`` bytes. Measured on 4-model vLLM scrapes: 8.4 kB of SQLite file per
scrape before, 4.3 kB after (bench/README.md).

The upgrade rewrites the six metric tables (copying rows, then renaming): on a store holding a
day of a large fleet it takes minutes and needs free disk for a second copy of those tables
while it runs. Histogram rows are converted in Python (``pack_counts`` of the JSON counts), in
batches of ``_BATCH`` rows. The downgrade converts back.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from storage.codec import dumps_floats, loads_floats, pack_counts, unpack_counts

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 10_000
_SUFFIXES = ("", "_rollup")


def _step(suffix: str) -> list[sa.Column]:
    return [sa.Column("step", sa.Double, nullable=False)] if suffix else []


def _columns(kind: str, suffix: str, *, by_id: bool) -> list[sa.Column]:
    """The columns of ``kind`` (gauges, counter_deltas, histogram_deltas) before (``by_id``
    False: backend, model, signal texts; JSON counts) or after this revision."""
    key: list[sa.Column] = (
        [sa.Column("series_id", sa.Integer, nullable=False)]
        if by_id
        else [
            sa.Column("backend", sa.Text, nullable=False),
            sa.Column("model", sa.Text, nullable=False),
            sa.Column("signal", sa.Text, nullable=False),
        ]
    )
    head = [sa.Column("ts", sa.Double, nullable=False), *key]
    if kind == "gauges":
        return [*head, sa.Column("value", sa.Double, nullable=True), *_step(suffix)]
    if kind == "counter_deltas":
        return [
            *head,
            sa.Column("delta", sa.Double, nullable=False),
            sa.Column("interval_seconds", sa.Double, nullable=False),
            *_step(suffix),
        ]
    return [
        *head,
        sa.Column("layout_id", sa.Integer, sa.ForeignKey("bucket_layouts.id"), nullable=False),
        sa.Column("counts", sa.LargeBinary if by_id else sa.Text, nullable=False),
        sa.Column("sum", sa.Double, nullable=True),
        sa.Column("count", sa.Double, nullable=False),
        sa.Column("interval_seconds", sa.Double, nullable=False),
        *_step(suffix),
    ]


def _value_names(kind: str, suffix: str) -> list[str]:
    """The columns copied unchanged (everything but the series key)."""
    return [c.name for c in _columns(kind, suffix, by_id=True) if c.name not in ("ts", "series_id")]


def _rebuild(kind: str, suffix: str, *, by_id: bool, convert: Callable[[object], object] | None) -> None:
    """Replace table ``kind+suffix`` by one in the other shape, rows copied through ``series``."""
    conn = op.get_bind()
    name = f"{kind}{suffix}"
    new = f"{name}_new"
    op.create_table(new, *_columns(kind, suffix, by_id=by_id))
    values = _value_names(kind, suffix)
    old_t = sa.table(name, *[sa.column(c) for c in ("ts", "backend", "model", "signal", "series_id", *values)])
    new_t = sa.table(new, *[sa.column(c.name) for c in _columns(kind, suffix, by_id=by_id)])
    s = sa.table("series", sa.column("id"), sa.column("backend"), sa.column("signal"), sa.column("model"))
    if by_id:
        joined = old_t.join(
            s, sa.and_(s.c.backend == old_t.c.backend, s.c.signal == old_t.c.signal, s.c.model == old_t.c.model)
        )
        key_cols = [s.c.id]
        key_names = ["series_id"]
    else:
        joined = old_t.join(s, s.c.id == old_t.c.series_id)
        key_cols = [s.c.backend, s.c.model, s.c.signal]
        key_names = ["backend", "model", "signal"]
    select = sa.select(old_t.c.ts, *key_cols, *[old_t.c[v] for v in values]).select_from(joined)
    if convert is None:
        conn.execute(new_t.insert().from_select(["ts", *key_names, *values], select))
    else:
        names = ["ts", *key_names, *values]
        at = names.index("counts")
        batch: list[dict[str, object]] = []
        for row in conn.execute(select).yield_per(_BATCH):
            fields = list(row)
            fields[at] = convert(fields[at])
            batch.append(dict(zip(names, fields, strict=True)))
            if len(batch) >= _BATCH:
                conn.execute(new_t.insert(), batch)
                batch = []
        if batch:
            conn.execute(new_t.insert(), batch)
    op.drop_table(name)
    op.rename_table(new, name)
    op.create_index(f"ix_{name}_series", name, ["series_id", "ts"] if by_id else ["backend", "signal", "ts"])
    op.create_index(f"ix_{name}_ts", name, ["ts"])


def _json_to_bytes(text: object) -> bytes:
    return pack_counts(loads_floats(str(text)))


def _bytes_to_json(blob: object) -> str:
    assert isinstance(blob, bytes | memoryview)
    return dumps_floats(unpack_counts(bytes(blob)))


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("backend", sa.Text, nullable=False),
        sa.Column("signal", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.UniqueConstraint("backend", "signal", "model", name="uq_series_key"),
    )
    keys = " UNION ".join(
        f"SELECT backend, signal, model FROM {kind}{suffix}"
        for kind in ("gauges", "counter_deltas", "histogram_deltas")
        for suffix in _SUFFIXES
    )
    op.execute(
        f"INSERT INTO series (backend, signal, model) SELECT backend, signal, model FROM ({keys}) AS k "
        "ORDER BY backend, signal, model"
    )
    for suffix in _SUFFIXES:
        _rebuild("gauges", suffix, by_id=True, convert=None)
        _rebuild("counter_deltas", suffix, by_id=True, convert=None)
        _rebuild("histogram_deltas", suffix, by_id=True, convert=_json_to_bytes)


def downgrade() -> None:
    for suffix in _SUFFIXES:
        _rebuild("gauges", suffix, by_id=False, convert=None)
        _rebuild("counter_deltas", suffix, by_id=False, convert=None)
        _rebuild("histogram_deltas", suffix, by_id=False, convert=_bytes_to_json)
    op.drop_table("series")
