"""GPU samples: SM clock, tensor-pipe activity and the last XID error (dcgm-exporter's
``DCGM_FI_DEV_SM_CLOCK``, ``DCGM_FI_PROF_PIPE_TENSOR_ACTIVE``, ``DCGM_FI_DEV_XID_ERRORS``; the SM
clock from NVML too). Three nullable columns: rows written before read as "not reported".

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = (("sm_clock_hertz", sa.Double), ("tensor_active_ratio", sa.Double), ("last_xid", sa.BigInteger))


def upgrade() -> None:
    with op.batch_alter_table("gpu_samples") as batch:
        for name, kind in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gpu_samples") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
