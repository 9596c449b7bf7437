"""Permissions and custom organization roles: organization_roles, wider membership roles.

A membership's ``role`` becomes a role key: one of the built-in ``owner``, ``admin`` and
``member``, or the key of one of its organization's ``organization_roles`` rows. The
column widens to 32 characters and loses its built-in-only check constraint; upgrading
rewrites no row. Downgrading turns memberships holding a custom role into ``member``
first, so the narrower column and the restored check constraint accept every row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 06:30:19.402117
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: the only roles the column held before this revision.
BUILT_IN_ROLES = ("owner", "admin", "member")


def upgrade() -> None:

    op.create_table(
        "organization_roles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_organization_roles_organization_id",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("organization_roles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_organization_roles_organization_id_key", ["organization_id", "key"], unique=True
        )

    # On SQLite this recreates organization_members (copying its rows); its primary key,
    # both foreign keys (ON DELETE CASCADE) and its three indexes are reflected and
    # re-created under the same names.
    with op.batch_alter_table("organization_members", schema=None) as batch_op:
        batch_op.drop_constraint("ck_organization_members_role", type_="check")
        batch_op.alter_column(
            "role",
            existing_type=sa.String(length=16),
            type_=sa.String(length=32),
            existing_nullable=False,
        )


def downgrade() -> None:

    # Custom roles go away with their table: their holders stay members. (The invitations
    # revision, which comes after this one, downgrades its own rows before this runs.)
    members = sa.table("organization_members", sa.column("role", sa.String()))
    op.execute(members.update().where(members.c.role.not_in(BUILT_IN_ROLES)).values(role="member"))

    with op.batch_alter_table("organization_roles", schema=None) as batch_op:
        batch_op.drop_index("ix_organization_roles_organization_id_key")

    op.drop_table("organization_roles")

    with op.batch_alter_table("organization_members", schema=None) as batch_op:
        batch_op.alter_column(
            "role",
            existing_type=sa.String(length=32),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
        batch_op.create_check_constraint(
            "ck_organization_members_role", "role IN ('owner', 'admin', 'member')"
        )
