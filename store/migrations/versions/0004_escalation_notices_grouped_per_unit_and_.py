"""escalation notices grouped per unit and tick

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("escalation", sa.Column("notified_at", store.models.AwareDateTime(timezone=True), nullable=True))
    op.create_index("ix_escalation_notified_at", "escalation", ["notified_at"], unique=False)
    # Notices issued before this release were queued when they were issued: they must not be sent again.
    op.execute("UPDATE escalation SET notified_at = at WHERE status = 'issued'")


def downgrade() -> None:
    op.drop_index("ix_escalation_notified_at", table_name="escalation")
    op.drop_column("escalation", "notified_at")
