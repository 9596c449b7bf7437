"""Organization invitations: organization_invitations.

Upgrading adds the table (no existing data changes). Downgrading drops it: pending
invitations are lost, and their emailed links stop working.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "organization_invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("inviter_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'declined', 'revoked')",
            name="ck_organization_invitations_status",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_organization_invitations_organization_id",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["inviter_id"],
            ["users.id"],
            name="fk_organization_invitations_inviter_id",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("organization_invitations", schema=None) as batch_op:
        batch_op.create_index("ix_organization_invitations_token_hash", ["token_hash"], unique=True)
        batch_op.create_index(
            "ux_organization_invitations_live",
            ["organization_id", "email"],
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )
        batch_op.create_index(
            "ix_organization_invitations_organization_id_status_created_at",
            ["organization_id", "status", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_organization_invitations_email_status", ["email", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("organization_invitations", schema=None) as batch_op:
        batch_op.drop_index("ix_organization_invitations_email_status")
        batch_op.drop_index("ix_organization_invitations_organization_id_status_created_at")
        batch_op.drop_index("ux_organization_invitations_live")
        batch_op.drop_index("ix_organization_invitations_token_hash")

    op.drop_table("organization_invitations")
