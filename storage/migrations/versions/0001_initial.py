"""Initial schema: scrape status, gauges, counter and histogram deltas (raw and rolled up),
bucket layouts, latest status per backend, cursors.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _series_indexes(table: str) -> None:
    op.create_index(f"ix_{table}_series", table, ["backend", "signal", "ts"])
    op.create_index(f"ix_{table}_ts", table, ["ts"])


def _step(suffix: str) -> list[sa.Column]:
    """Rollup tables carry their bucket width in seconds; raw tables have none."""
    return [sa.Column("step", sa.Double, nullable=False)] if suffix else []


def upgrade() -> None:
    op.create_table(
        "bucket_layouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bounds", sa.Text, nullable=False, unique=True),
    )
    op.create_table(
        "backend_status",
        sa.Column("backend", sa.Text, primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("up", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("duration", sa.Double, nullable=True),
        sa.Column("last_success_ts", sa.Double, nullable=True),
    )
    op.create_table(
        "cursors",
        sa.Column("backend", sa.Text, primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
    )
    for suffix in ("", "_rollup"):
        status = f"scrape_status{suffix}"
        op.create_table(
            status,
            sa.Column("ts", sa.Double, nullable=False),
            sa.Column("backend", sa.Text, nullable=False),
            sa.Column("up", sa.Boolean, nullable=False),
            sa.Column("reason", sa.Text, nullable=True),
            sa.Column("duration", sa.Double, nullable=True),
            *_step(suffix),
        )
        op.create_index(f"ix_{status}_backend_ts", status, ["backend", "ts"])
        op.create_index(f"ix_{status}_ts", status, ["ts"])

        op.create_table(
            f"gauges{suffix}",
            sa.Column("ts", sa.Double, nullable=False),
            sa.Column("backend", sa.Text, nullable=False),
            sa.Column("model", sa.Text, nullable=False),
            sa.Column("signal", sa.Text, nullable=False),
            sa.Column("value", sa.Double, nullable=True),
            *_step(suffix),
        )
        _series_indexes(f"gauges{suffix}")

        op.create_table(
            f"counter_deltas{suffix}",
            sa.Column("ts", sa.Double, nullable=False),
            sa.Column("backend", sa.Text, nullable=False),
            sa.Column("model", sa.Text, nullable=False),
            sa.Column("signal", sa.Text, nullable=False),
            sa.Column("delta", sa.Double, nullable=False),
            sa.Column("interval_seconds", sa.Double, nullable=False),
            *_step(suffix),
        )
        _series_indexes(f"counter_deltas{suffix}")

        op.create_table(
            f"histogram_deltas{suffix}",
            sa.Column("ts", sa.Double, nullable=False),
            sa.Column("backend", sa.Text, nullable=False),
            sa.Column("model", sa.Text, nullable=False),
            sa.Column("signal", sa.Text, nullable=False),
            sa.Column("layout_id", sa.Integer, sa.ForeignKey("bucket_layouts.id"), nullable=False),
            sa.Column("counts", sa.Text, nullable=False),
            sa.Column("sum", sa.Double, nullable=True),
            sa.Column("count", sa.Double, nullable=False),
            sa.Column("interval_seconds", sa.Double, nullable=False),
            *_step(suffix),
        )
        _series_indexes(f"histogram_deltas{suffix}")


def downgrade() -> None:
    for suffix in ("_rollup", ""):
        for table in ("histogram_deltas", "counter_deltas", "gauges", "scrape_status"):
            op.drop_table(f"{table}{suffix}")
    op.drop_table("cursors")
    op.drop_table("backend_status")
    op.drop_table("bucket_layouts")
