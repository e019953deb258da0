"""Alerting: the notification outbox, alert states and the alert history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("receiver", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("notification", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_at", sa.Double, nullable=True),
        sa.Column("latency", sa.Double, nullable=True),
    )
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"])
    op.create_index("ix_outbox_updated_at", "outbox", ["updated_at"])
    op.create_table(
        "alert_states",
        sa.Column("fingerprint", sa.Text, primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("active_since", sa.Double, nullable=True),
        sa.Column("fired_at", sa.Double, nullable=True),
        sa.Column("resolved_at", sa.Double, nullable=True),
        sa.Column("last_true", sa.Double, nullable=True),
    )
    op.create_table(
        "alert_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("old_state", sa.Text, nullable=False),
        sa.Column("new_state", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("active_since", sa.Double, nullable=True),
        sa.Column("fired_at", sa.Double, nullable=True),
    )
    op.create_index("ix_alert_history_ts", "alert_history", ["ts"])
    op.create_index("ix_alert_history_new_state_ts", "alert_history", ["new_state", "ts"])
    op.create_index("ix_alert_history_fingerprint_ts", "alert_history", ["fingerprint", "ts"])


def downgrade() -> None:
    op.drop_table("alert_history")
    op.drop_table("alert_states")
    op.drop_table("outbox")
