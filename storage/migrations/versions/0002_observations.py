"""Probe results, certificate checks and GPU samples.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "probe_results",
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("backend", sa.Text, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error_kind", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("dns_seconds", sa.Double, nullable=True),
        sa.Column("connect_seconds", sa.Double, nullable=True),
        sa.Column("tls_seconds", sa.Double, nullable=True),
        sa.Column("ttft_seconds", sa.Double, nullable=True),
        sa.Column("e2e_seconds", sa.Double, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("tokens_from_usage", sa.Boolean, nullable=False),
        sa.Column("tokens_per_second", sa.Double, nullable=True),
        sa.Column("itl", sa.Text, nullable=False),
        sa.Column("tls_version", sa.Text, nullable=True),
    )
    op.create_index("ix_probe_results_backend_ts", "probe_results", ["backend", "ts"])
    op.create_index("ix_probe_results_ts", "probe_results", ["ts"])
    op.create_table(
        "certificates",
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
    op.create_table(
        "gpu_samples",
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
    )
    op.create_index("ix_gpu_samples_uuid_ts", "gpu_samples", ["uuid", "ts"])
    op.create_index("ix_gpu_samples_ts", "gpu_samples", ["ts"])


def downgrade() -> None:
    op.drop_table("gpu_samples")
    op.drop_table("certificates")
    op.drop_table("probe_results")
