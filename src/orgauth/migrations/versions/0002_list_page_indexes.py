"""Indexes for list pages: members by join order, users by creation, sessions by use.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:23:22.614263
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table("organization_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_organization_members_organization_id_joined_at",
            ["organization_id", "joined_at", "user_id"],
            unique=False,
        )

    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_user_sessions_last_used_at_id", ["last_used_at", "id"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_created_at_id", ["created_at", "id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_created_at_id")

    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_user_sessions_last_used_at_id")

    with op.batch_alter_table("organization_members", schema=None) as batch_op:
        batch_op.drop_index("ix_organization_members_organization_id_joined_at")
