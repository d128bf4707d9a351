"""cases, unit requests, inspector and intake accounts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 18:23:31.718760
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("place", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("photos", sa.JSON(), nullable=False),
        sa.Column("photos_taken", sa.JSON(), nullable=False),
        sa.Column("photos_gps", sa.JSON(), nullable=False),
        sa.Column("reporter", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("check_result_id", sa.Integer(), nullable=True),
        sa.Column("found_at", store.models.AwareDateTime(timezone=True), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("dispatches", sa.Integer(), nullable=False),
        sa.Column("closed_at", store.models.AwareDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", store.models.AwareDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["duty.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reporter", "external_id"),
    )
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_category_id"), ["category_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_closed_at"), ["closed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_found_at"), ["found_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_occurrence_id"), ["occurrence_id"], unique=False)

    op.create_table(
        "unitrequest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("due_at", store.models.AwareDateTime(timezone=True), nullable=True),
        sa.Column("review_on", sa.Date(), nullable=True),
        sa.Column("form_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", store.models.AwareDateTime(timezone=True), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("answer", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("decided_at", store.models.AwareDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrence.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("occurrence_id", "form_id"),
    )
    with op.batch_alter_table("unitrequest", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unitrequest_occurrence_id"), ["occurrence_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_unitrequest_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_unitrequest_unit_id"), ["unit_id"], unique=False)

    with op.batch_alter_table("confirmation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence_gps", sa.JSON(), nullable=False, server_default="{}"))

    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_occurrence_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_occurrence_case_id"))
        batch_op.drop_column("case_id")

    with op.batch_alter_table("confirmation", schema=None) as batch_op:
        batch_op.drop_column("evidence_gps")

    with op.batch_alter_table("unitrequest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unitrequest_unit_id"))
        batch_op.drop_index(batch_op.f("ix_unitrequest_status"))
        batch_op.drop_index(batch_op.f("ix_unitrequest_occurrence_id"))

    op.drop_table("unitrequest")
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_occurrence_id"))
        batch_op.drop_index(batch_op.f("ix_case_found_at"))
        batch_op.drop_index(batch_op.f("ix_case_closed_at"))
        batch_op.drop_index(batch_op.f("ix_case_category_id"))

    op.drop_table("case")
