"""desk accounts, talks, numbered escalations with approval and 收到, inspections, revocable links, 核查

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 02:20:27.890216
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # New NOT NULL columns carry a server default, so rows written by the first release upgrade in place:
    # their escalations were issued notices, their links version 0, their confirmations not yet checked.
    op.create_table(
        "documentcounter",
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "year"),
    )
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("district", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("api_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", store.models.AwareDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_api_token_hash"), ["api_token_hash"], unique=False)

    op.create_table(
        "campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("duty_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", store.models.AwareDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["duty_id"],
            ["duty.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "finding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("site", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("problem", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("responsible_general", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("responsible_area", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("responsible_point", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("found_at", store.models.AwareDateTime(timezone=True), nullable=False),
        sa.Column("inspector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("reinspect_by", store.models.AwareDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrence.id"],
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["unit.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_campaign_id"), ["campaign_id"], unique=False)

    op.create_table(
        "talk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("attendees", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("minutes", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("recorded_at", store.models.AwareDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrence.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("talk", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_talk_occurrence_id"), ["occurrence_id"], unique=False)

    op.create_table(
        "reinspection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("at", store.models.AwareDateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("inspector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["finding.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reinspection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reinspection_finding_id"), ["finding_id"], unique=False)

    with op.batch_alter_table("confirmation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence_taken", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("verdict", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("verified_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("verified_at", store.models.AwareDateTime(timezone=True), nullable=True))

    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="issued")
        )
        batch_op.add_column(
            sa.Column("document", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("approved_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("approved_at", store.models.AwareDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_at", store.models.AwareDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_repeat_at", store.models.AwareDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_escalation_next_repeat_at"), ["next_repeat_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_escalation_status"), ["status"], unique=False)

    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_at", store.models.AwareDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("link_version", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("finding_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_occurrence_finding_id"), ["finding_id"], unique=False)

    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_occurrence_finding_id"))
        batch_op.drop_column("finding_id")
        batch_op.drop_column("link_version")
        batch_op.drop_column("review_at")

    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalation_status"))
        batch_op.drop_index(batch_op.f("ix_escalation_next_repeat_at"))
        batch_op.drop_column("next_repeat_at")
        batch_op.drop_column("repeats")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approved_by")
        batch_op.drop_column("document")
        batch_op.drop_column("status")

    with op.batch_alter_table("confirmation", schema=None) as batch_op:
        batch_op.drop_column("verified_at")
        batch_op.drop_column("verified_by")
        batch_op.drop_column("verdict")
        batch_op.drop_column("evidence_taken")

    with op.batch_alter_table("reinspection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reinspection_finding_id"))

    op.drop_table("reinspection")
    with op.batch_alter_table("talk", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_talk_occurrence_id"))

    op.drop_table("talk")
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_campaign_id"))

    op.drop_table("finding")
    op.drop_table("campaign")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_api_token_hash"))

    op.drop_table("user")
    op.drop_table("documentcounter")
    # ### end Alembic commands ###
