"""Audit results: one row per checklist item per run of an ``audits:`` entry (``exporters.audit``),
kept for the checklist page's history and the alert that pages when a check goes from pass to
fail; expired with the other observations.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_results",
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("check_name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("observed", sa.Text, nullable=False),
        sa.Column("fix", sa.Text, nullable=True),
        sa.Column("duration", sa.Double, nullable=False),
    )
    op.create_index("ix_audit_results_target_ts", "audit_results", ["target", "ts"])
    op.create_index("ix_audit_results_ts", "audit_results", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_audit_results_ts", table_name="audit_results")
    op.drop_index("ix_audit_results_target_ts", table_name="audit_results")
    op.drop_table("audit_results")
