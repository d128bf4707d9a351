"""link revocation per item and unit, session versions, login throttling

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 12:57:58.669365
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # New NOT NULL columns carry a server default so existing rows upgrade in place: no item revoked, every unit
    # link and every session at version 0 (still valid).
    op.create_table(
        "loginthrottle",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", store.models.AwareDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", store.models.AwareDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    # Plain ADD COLUMN, which SQLite does in place: a batch copy of unit would drop a table other rows refer to.
    op.add_column("occurrence", sa.Column("links_revoked", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("unit", sa.Column("link_version", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("user", sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("session_version")
    with op.batch_alter_table("unit", schema=None) as batch_op:
        batch_op.drop_column("link_version")
    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.drop_column("links_revoked")
    op.drop_table("loginthrottle")
