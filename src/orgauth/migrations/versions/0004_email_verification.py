"""Email verification: users.email_verified_at and email_verification_tokens.

Upgrading marks every existing superuser verified at migration time; every other existing
account starts unverified, so an address nobody ever proved is never treated as verified.
Downgrading drops the table and the column (which accounts were verified is lost).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:50:00.000000
"""

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True)
        )

    users = sa.table(
        "users",
        sa.column("is_superuser", sa.Boolean()),
        sa.column("email_verified_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        users.update()
        .where(users.c.is_superuser.is_(True))
        .values(email_verified_at=datetime.now(UTC))
    )

    op.create_table(
        "email_verification_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('verify', 'change')", name="ck_email_verification_tokens_purpose"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_email_verification_tokens_user_id",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["user_sessions.id"],
            name="fk_email_verification_tokens_session_id",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("email_verification_tokens", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_verification_tokens_token_hash", ["token_hash"], unique=True
        )
        batch_op.create_index("ix_email_verification_tokens_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("email_verification_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_email_verification_tokens_user_id")
        batch_op.drop_index("ix_email_verification_tokens_token_hash")

    op.drop_table("email_verification_tokens")

    # Not in batch mode: on SQLite that would recreate `users`, and dropping the old table
    # with foreign keys on deletes (cascades) every session and membership. SQLite drops a
    # plain column in place since 3.35.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        raise RuntimeError(
            "downgrading below 0004 on SQLite needs SQLite 3.35 or newer "
            f"(this Python has {sqlite3.sqlite_version})"
        )
    op.drop_column("users", "email_verified_at")
